#!/bin/bash
# Podman 4.3 `container checkpoint` / `restore` through the runtime under test (--runtime): a
# counter container is checkpointed with --leave-running (it counts on), then checkpointed (it
# stops counting), restored (it counts on from where it stopped; exec works in it), removed.
# Run by integration/tests/checkpoint_podman.rs; needs root, podman and a working CRIU
# (`criu check`: the QEMU VM of integration/vm). Exit 77 = cannot run here.
set -uo pipefail
. "$(dirname "$0")/../../engines/lib.sh"

command -v podman >/dev/null || skip_all "podman not installed"
command -v criu >/dev/null || skip_all "criu not installed"
criu check >/dev/null 2>&1 || skip_all "criu check fails on this kernel ($(uname -r)): run in the QEMU VM (integration/vm)"
[ -x "$RUNTIME" ] || { echo "runtime $RUNTIME not found (cargo build --release)"; exit 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}"/podman-ckpt.XXXXXX)
make_wrapper "$W"
RB=$W/bin/$RT_NAME
cat > "$W/containers.conf" <<EOT
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime_supports_json = ["gpurun", "crun", "runc"]
EOT
export CONTAINERS_CONF=$W/containers.conf
P="podman --root $W/storage --runroot $W/runroot --tmpdir $W/tmp --runtime $RB --cgroup-manager=cgroupfs --events-backend=file --storage-driver=overlay"

LP_EXISTED=$(ls -d /sys/fs/cgroup/*/libpod_parent /sys/fs/cgroup/libpod_parent 2>/dev/null | head -1)
cleanup() {
	set +e
	$P rm -af -t 0 >/dev/null 2>&1
	for c in $(pgrep -f "conmon .*$W"); do kill -9 "$c" 2>/dev/null; done
	grep " $W" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m"; done
	[ -z "$LP_EXISTED" ] && for h in /sys/fs/cgroup/*/libpod_parent /sys/fs/cgroup/libpod_parent; do
		[ -d "$h" ] && { rmdir "$h"/conmon "$h" 2>/dev/null; }; done
	[ -n "${KEEP:-}" ] && echo "kept $W" || rm -rf "$W"
}
trap cleanup EXIT

echo "podman $(podman --version | awk '{print $3}'), criu $(criu --version | awk 'NR==1{print $2}'), runtime $RUNTIME (via $RB), base $W"
"$REPO/bundles/build.sh" "$W/bundle" >/dev/null || { echo "bundles/build.sh failed"; exit 1; }
R=$W/bundle/rootfs
mkdir -p "$R/tmp"
st() { $P inspect --format '{{.State.Status}}' "$1"; }
count() { cat "$R/tmp/count" 2>/dev/null; }
counts_past() { [ "$(count)" -gt "$1" ] 2>/dev/null; }

say "podman container checkpoint / restore"
$P run -d --name counter --rootfs "$R" sh -c 'i=0; while true; do echo $i > /tmp/count; i=$((i+1)); sleep 0.1; done' >/dev/null
check "counter runs"               wait_until 10 counts_past 2
check "checkpoint --leave-running" $P container checkpoint --leave-running counter
check "still running"              expect_out running st counter
C2=$(count)
check "still counting"             wait_until 10 counts_past "$C2"
check "checkpoint"                 $P container checkpoint counter
check "exited after checkpoint"    expect_out exited st counter
C1=$(count); sleep 0.5
check "counter stopped at $C1"     expect_out "$C1" count
check "restore"                    $P container restore counter
check "running after restore"      expect_out running st counter
check "counts on past $C1"         wait_until 10 counts_past "$C1"
check "exec in the restored one"   expect_out hi $P exec counter echo hi
check "rm -f"                      $P rm -f -t 0 counter

# --export / --import: the restore gets a fresh rootfs (the image plus the exported changes),
# without the mountpoints the first create made in it
say "podman container checkpoint --export / restore --import"
ccount() { $P exec moved cat /tmp/count 2>/dev/null; }
ccounts_past() { [ "$(ccount)" -gt "$1" ] 2>/dev/null; }
check "import the rootfs as an image" eval "tar -C '$R' -c . | $P import - localhost/ckpt-bb >/dev/null"
$P run -d --name moved localhost/ckpt-bb sh -c 'i=0; while true; do echo $i > /tmp/count; i=$((i+1)); sleep 0.1; done' >/dev/null
check "image counter runs"         wait_until 10 ccounts_past 2
E0=$(ccount)
check "checkpoint --export"        quiet $P container checkpoint --export "$W/moved.tar.gz" moved
check "rm the checkpointed one"    quiet $P rm -f -t 0 moved
check "restore --import"           quiet $P container restore --import "$W/moved.tar.gz"
# a container started afresh would count from 0: this one goes on from where it was dumped
resumed() { local c; c=$(ccount) && [ "$c" -ge "$1" ] || { echo "  count [$c], want >= $1" >&2; false; }; }
check "imported one resumes at >= $E0" resumed "$E0"
check "and counts on"              wait_until 10 ccounts_past "$E0"
check "rm -f (imported)"           quiet $P rm -f -t 0 moved
$P rmi -f localhost/ckpt-bb >/dev/null 2>&1
summary "podman checkpoint"
