#!/bin/bash
# run-suite.sh [CMD [ARG...]] : run gpurun's tests on a pure cgroup v2 kernel.
# Installs the Debian packages it needs (as root), then boots a User-Mode Linux
# guest with integration/vm/vmrun and runs inside it, in the repository root:
#   no CMD: the gpurun-integration test executables, built here on the host
#           (cargo build/test --no-run) and run in the guest by guest-tests.sh
#   CMD:    that command instead, e.g.  run-suite.sh sh -c 'runc --version'
# The guest sees the host's / (writes discarded) plus VM_RESULTS read-write.
#   env: GPURUN_BIN (default target/release/gpurun), VM_TEST_ARGS (extra args
#        for each test binary), VM_RESULTS (default target/vm-results),
#        VM_TEST_TIMEOUT (s per test binary, default 1800: the engine tests are slow in UML),
#        VM_MEM (default 1G), VMRUN_TIMEOUT (default 3000), VMRUN_ENV (more vars to forward)
# Exit status: the command's (non-zero if any test failed). Exits 0 with a line
# "skipped: REASON" only when User-Mode Linux cannot run on this machine.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"
skip() { echo "skipped: $*"; exit 0; }
die() { echo "run-suite: $*" >&2; exit 1; }

# 1. Debian packages: the UML kernel, busybox (guest init uses insmod/poweroff),
#    jq (reads cargo's JSON), runc (to compare against: GPURUN_BIN=/usr/sbin/runc).
[ "$(uname -m)" = x86_64 ] || skip "User-Mode Linux needs an x86_64 host, this is $(uname -m)"
missing=
for p in user-mode-linux busybox-static jq runc; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	command -v apt-get >/dev/null || skip "no apt-get to install:$missing"
	[ "$(id -u)" = 0 ] || skip "not root, cannot install:$missing"
	echo "run-suite: installing$missing"
	apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 "$@"; }
	{ apt_get update && apt_get install -y --no-install-recommends $missing; } >/tmp/run-suite-apt.log 2>&1 ||
		{ tail -5 /tmp/run-suite-apt.log; command -v linux.uml >/dev/null &&
			die "apt-get install$missing failed"; skip "cannot install user-mode-linux (apt-get failed)"; }
fi

# 2. Default command: build on the host, list the integration test executables.
if [ $# -eq 0 ]; then
	CARGO=${CARGO:-$(command -v cargo || echo "$HOME/.cargo/bin/cargo")}
	# mock-nvml: the stand-in libnvidia-ml.so the GPU tests load.
	"$CARGO" build --release -p gpurun -p mock-nvml || die "cargo build failed"
	json=$("$CARGO" test --release -p gpurun-integration --no-run --message-format=json) ||
		die "cargo test --no-run failed"
	mapfile -t tests < <(jq -r 'select(.reason == "compiler-artifact" and .profile.test
		and .executable != null) | .executable' <<<"$json" | sort)
	# The engine tests (containerd, Podman, buildah) run here too: UML makes them slow
	# (minutes), hence the longer per-binary timeout. The engines are installed on the host by
	# the host run of the same tests (`make integration`); the guest never runs apt-get.
	export VM_TEST_TIMEOUT=${VM_TEST_TIMEOUT:-1800} ENGINES_NO_INSTALL=1
	[ ${#tests[@]} -gt 0 ] || die "no integration test executables found"
	bundles/build.sh >/dev/null || die "bundles/build.sh failed" # once here, not in every guest
	set -- "$HERE/guest-tests.sh" "${tests[@]}"
fi

# 3. Boot the guest and run the command.
export GPURUN_BIN=$(realpath -m "${GPURUN_BIN:-target/release/gpurun}")
export VM_RESULTS=${VM_RESULTS:-$ROOT/target/vm-results} VM_TEST_ARGS=${VM_TEST_ARGS:-}
mkdir -p "$VM_RESULTS" && rm -f "$VM_RESULTS"/*.log "$VM_RESULTS"/*.rc "$VM_RESULTS"/summary.txt
export VMRUN_ENV="GPURUN_BIN VM_RESULTS VM_TEST_ARGS VM_TEST_TIMEOUT ENGINES_NO_INSTALL RUST_BACKTRACE RUST_LOG ${VMRUN_ENV:-}"
export VMRUN_TIMEOUT=${VMRUN_TIMEOUT:-3000}
t0=$(date +%s)
"$HERE/vmrun" -m "${VM_MEM:-1G}" -w "$VM_RESULTS" -- "$@"
rc=$?
echo "run-suite: exit $rc after $(($(date +%s) - t0))s in the VM"
if [ "$rc" = 125 ]; then
	# Did the UML kernel itself fail to start (no ptrace, noexec /tmp, ...)?
	# Boot it bare with init=/bin/true: a working kernel panics on init's exit.
	d=$(mktemp -d /tmp/vmprobe.XXXXXX)
	out=$(timeout -k 5 60 linux.uml mem=128M umid="probe$$" uml_dir="$d" root=/dev/root rootfstype=hostfs \
		rootflags=/ ro init=/bin/true con=null ssl=null con0=null,fd:1 quiet </dev/null 2>&1)
	rm -rf "$d"
	grep -aq 'Attempted to kill init' <<<"$out" ||
		skip "User-Mode Linux cannot boot on this machine: $(tr -d '\r' <<<"$out" | grep -a . | tail -1)"
fi
exit "$rc"
