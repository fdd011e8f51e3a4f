#!/bin/bash
# run-suite.sh [CMD [ARG...]] : run gpurun's tests on a pure cgroup v2 kernel.
# Installs the Debian packages it needs (as root), then boots a guest and runs inside it, in
# the repository root: User-Mode Linux (vmrun) where it can run this machine's programs, else
# QEMU with TCG (vmrun-qemu; Debian's kernel, fetched once into target/vm-kernel).
#   no CMD: the gpurun-integration test executables, built here on the host
#           (cargo build/test --no-run) and run in the guest by guest-tests.sh: those named
#           in VM_TESTS (default: the ones whose subject differs on cgroup v2; "all": every one)
#   CMD:    that command instead, e.g.  run-suite.sh sh -c 'runc --version'
# The guest sees the host's / (writes discarded) plus VM_RESULTS read-write.
#   env: GPURUN_BIN (default target/release/gpurun), VM_TEST_ARGS (extra args
#        for each test binary), VM_RESULTS (default target/vm-results),
#        VM_TEST_TIMEOUT (s per test binary, default 1800: the engine tests are slow in a VM),
#        VM (uml or qemu: skip the choice), VM_MEM (default 1G under UML, 2G under QEMU),
#        VMRUN_TIMEOUT (default 3000), VMRUN_ENV (more vars to forward)
#        VM_SYSTEMD=1: the guest boots systemd as PID 1 (VMRUN_SYSTEMD), for the runtime's
#          --systemd-cgroup driver; VM_TESTS then defaults to "systemd systemd_hosts systemd_engines",
#          VM_RESULTS to target/vm-results-systemd, and the engines those tests drive (Docker,
#          containerd with its CRI, Podman, a Python CRI client) are set up here on the host first
#          (integration/engines/systemd.sh setup): the guest has no network
#        VM_LSM=apparmor|selinux: a short QEMU guest with that Linux security module on
#          (VMRUN_LSM): VM_TESTS defaults to lsm_apparmor or lsm_selinux, VM_RESULTS to
#          target/vm-results-apparmor or -selinux; installs apparmor (apparmor_parser) and
#          docker.io, or checkpolicy, here first
# Exit status: the command's (non-zero if any test failed). When no VM can boot here (not
# x86_64, no apt-get or root to install what it needs) it fails too: exit 1 with a line
# "run-suite: no VM can boot here: REASON" (the pure-v2 tests did not run, so nothing passed).
set -uo pipefail
VM_SYSTEMD=${VM_SYSTEMD:-${VMRUN_SYSTEMD:-}}
VM_LSM=${VM_LSM:-}
# The name of this kind of run, for its results dir and its skips: "", -systemd, -apparmor, ...
KIND=
if [ -n "$VM_LSM" ]; then
	# Debian's stock kernel (QEMU) has both; the UML one is not used for these.
	case $VM_LSM in apparmor | selinux) ;; *) echo "run-suite: VM_LSM=$VM_LSM: apparmor or selinux" >&2; exit 1 ;; esac
	[ "$VM_SYSTEMD" != 1 ] || { echo "run-suite: VM_LSM and VM_SYSTEMD=1: one or the other" >&2; exit 1; }
	export VMRUN_LSM=$VM_LSM GPURUN_REQUIRE_LSM=$VM_LSM
	VM=qemu KIND=-$VM_LSM
	VM_TESTS=${VM_TESTS:-lsm_$VM_LSM}
elif [ "$VM_SYSTEMD" = 1 ]; then
	export VMRUN_SYSTEMD=1
	KIND=-systemd
	VM_TESTS=${VM_TESTS:-systemd systemd_hosts systemd_engines}
else
	VM_TESTS=${VM_TESTS:-cgroups cgroups_cmds cgroups_io cgroups_paths cgroups_update checkpoint checkpoint_gpu checkpoint_podman checkpoint_restore checkpoint_terminal engines events exec faults gpu gpu_cdi gpu_docker gpu_driver_files gpu_procfs hooks intel_rdt lifecycle mount_attrs mounts namespaces netdevices process_attrs rootless update_flags update_resources userns}
fi
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"
novm() { echo "run-suite: no VM can boot here: $*" >&2; exit 1; }
die() { echo "run-suite: $*" >&2; exit 1; }

# 1. Debian packages: busybox (guest init), jq (reads cargo's JSON), runc (to compare
#    against: GPURUN_BIN=/usr/sbin/runc), and the VM: User-Mode Linux where it can run this
#    machine's programs, else QEMU (TCG) with Debian's stock kernel (README.md says why).
[ "$(uname -m)" = x86_64 ] || novm "the VMs here need an x86_64 host, this is $(uname -m)"
install() {
	local p missing=
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
	done
	[ -n "$missing" ] || return 0
	command -v apt-get >/dev/null || novm "no apt-get to install:$missing"
	[ "$(id -u)" = 0 ] || novm "not root, cannot install:$missing"
	echo "run-suite: installing$missing"
	apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 "$@"; }
	{ apt_get update && apt_get install -y --no-install-recommends $missing; } >/tmp/run-suite-apt.log 2>&1 ||
		{ tail -5 /tmp/run-suite-apt.log; die "apt-get install$missing failed"; }
}
# criu: the checkpoint tests run only here (Debian's 3.17 cannot on the hosts' 6.18 kernel)
install busybox-static jq runc criu
# VM_SYSTEMD=1: the guest boots the host's systemd, with the host's D-Bus daemon
[ "$VM_SYSTEMD" != 1 ] || install systemd dbus
# VM_LSM: apparmor_parser loads the tests' profile (and dockerd its docker-default), the Docker
# case needs the engine; checkpolicy compiles the tests' SELinux policy.
case $VM_LSM in
apparmor) install apparmor docker.io ;;
selinux) install checkpolicy ;;
esac
# A UML kernel that works panics with init's exit status 0 when init=/bin/true exits. UML 6.1
# cannot restore the FPU state of a host process on CPUs whose XSAVE area it does not know
# (AVX-512/AMX: ptrace refuses its short buffer), so there every program dies at once (0x0b).
uml_works() {
	local d out
	d=$(mktemp -d /tmp/vmprobe.XXXXXX)
	out=$(timeout -k 5 60 linux.uml mem=128M umid="probe$$" uml_dir="$d" root=/dev/root rootfstype=hostfs \
		rootflags=/ ro init=/bin/true con=null ssl=null con0=null,fd:1 quiet </dev/null 2>&1)
	rm -rf "$d"
	grep -aq 'Attempted to kill init! exitcode=0x00000000' <<<"$out"
}
VM=${VM:-}
if [ -z "$VM" ]; then
	install user-mode-linux
	if uml_works; then VM=uml; else
		VM=qemu
		echo "run-suite: User-Mode Linux cannot run programs on this CPU; using QEMU (TCG) instead"
	fi
fi
case $VM in
uml) install user-mode-linux; VMRUN=$HERE/vmrun ;;
qemu)
	install qemu-system-x86 kmod cpio python3 xz-utils
	export VMRUN_KERNEL_DIR=${VMRUN_KERNEL_DIR:-$ROOT/target/vm-kernel}
	"$HERE/qemu-kernel.sh" "$VMRUN_KERNEL_DIR" || die "cannot prepare the QEMU guest kernel"
	VMRUN=$HERE/vmrun-qemu ;;
*) die "VM=$VM: uml or qemu" ;;
esac

# 2. Default command: build on the host, list the integration test executables.
if [ $# -eq 0 ]; then
	CARGO=${CARGO:-$(command -v cargo || echo "$HOME/.cargo/bin/cargo")}
	# mock-nvml: the stand-in libnvidia-ml.so the GPU tests load.
	"$CARGO" build --release -p gpurun -p mock-nvml || die "cargo build failed"
	json=$("$CARGO" test --release -p gpurun-integration --no-run --message-format=json) ||
		die "cargo test --no-run failed"
	mapfile -t tests < <(jq -r 'select(.reason == "compiler-artifact" and .profile.test
		and .executable != null) | .executable' <<<"$json" | sort)
	# Only what differs on a pure cgroup v2 host runs here (cgroups, the device filter, the
	# engines, exec/userns/rootless joining a v2 cgroup); the rest ran on the host already.
	if [ "$VM_TESTS" != all ]; then
		keep=()
		for t in "${tests[@]}"; do
			name=$(basename "$t"); name=${name%-*}
			[[ " $VM_TESTS " == *" $name "* ]] && keep+=("$t")
		done
		tests=("${keep[@]}")
	fi
	# The engine tests (containerd, Podman, buildah) run here too: UML makes them slow
	# (minutes), hence the longer per-binary timeout. The engines are installed on the host by
	# the host run of the same tests (`make integration`); the guest never runs apt-get.
	export VM_TEST_TIMEOUT=${VM_TEST_TIMEOUT:-1800} ENGINES_NO_INSTALL=1
	[ ${#tests[@]} -gt 0 ] || die "no integration test executables found"
	# The engines of the systemd node tests, installed here: the guest has no network.
	if [ "$VM_SYSTEMD" = 1 ] && [[ " $VM_TESTS " == *" systemd_engines "* || $VM_TESTS == all ]]; then
		bash integration/engines/systemd.sh setup || die "integration/engines/systemd.sh setup failed"
	fi
	bundles/build.sh >/dev/null || die "bundles/build.sh failed" # once here, not in every guest
	set -- "$HERE/guest-tests.sh" "${tests[@]}"
fi

# 3. Boot the guest and run the command.
export GPURUN_BIN=$(realpath -m "${GPURUN_BIN:-target/release/gpurun}")
export VM_RESULTS=${VM_RESULTS:-$ROOT/target/vm-results$KIND} VM_TEST_ARGS=${VM_TEST_ARGS:-}
mkdir -p "$VM_RESULTS" && rm -f "$VM_RESULTS"/*.log "$VM_RESULTS"/*.rc "$VM_RESULTS"/summary.txt
# Skips in the guest (gpurun_integration::skip, engines/lib.sh) go to VM_RESULTS (the guest's
# only writable host dir), then join the host's skip log, their test names prefixed "vm:".
HOST_SKIP_LOG=${GPURUN_SKIP_LOG:-$ROOT/target/skips.log}
export GPURUN_SKIP_LOG=$VM_RESULTS/skips.log
export VMRUN_ENV="GPURUN_BIN GPURUN_SKIP_LOG GPURUN_REQUIRE_LSM VMRUN_SYSTEMD VM_RESULTS VM_TEST_ARGS VM_TEST_TIMEOUT ENGINES_NO_INSTALL RUST_BACKTRACE RUST_LOG ${VMRUN_ENV:-}"
export VMRUN_TIMEOUT=${VMRUN_TIMEOUT:-3000}
t0=$(date +%s)
"$VMRUN" -m "${VM_MEM:-$([ "$VM" = uml ] && echo 1G || echo 2G)}" -w "$VM_RESULTS" -- "$@"
rc=$?
if [ -s "$GPURUN_SKIP_LOG" ]; then
	mkdir -p "$(dirname "$HOST_SKIP_LOG")" && sed "s/^/vm$KIND:/" "$GPURUN_SKIP_LOG" >> "$HOST_SKIP_LOG"
	echo "run-suite: $(grep -c . "$GPURUN_SKIP_LOG") skipped in the VM (added to $HOST_SKIP_LOG)"
fi
echo "run-suite: exit $rc after $(($(date +%s) - t0))s in the VM$([ "$VM_SYSTEMD" = 1 ] && echo ' (systemd as PID 1)')${VM_LSM:+ ($VM_LSM)}"
exit "$rc"
