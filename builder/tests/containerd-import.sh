#!/bin/bash
# Import an OCI archive made by gpurun-build into a private containerd (ctr images import) and
# run it with the runtime under test (--runc-binary). Prints the container's output.
# Usage: RUNTIME=target/release/gpurun builder/tests/containerd-import.sh ARCHIVE IMAGE_NAME
# Exit 0 = imported and ran, 1 = failed, 77 = containerd unavailable (skip).
set -uo pipefail
ARCHIVE=$1
IMAGE=$2
RUNTIME=${RUNTIME:?set RUNTIME to the runtime binary}

if ! command -v containerd >/dev/null || ! command -v ctr >/dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y containerd >/dev/null 2>&1 || true
	fi
	command -v containerd >/dev/null && command -v ctr >/dev/null || { echo "skipped: containerd not installed"; exit 77; }
fi

W=$(mktemp -d /tmp/gpurun-build-ctrd.XXXXXX)
NS=gb$$
cat > "$W/config.toml" <<EOT
version = 2
root = "$W/root"
state = "$W/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$W/containerd.sock"
[ttrpc]
  address = "$W/containerd.sock.ttrpc"
[debug]
  address = "$W/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$W/opt"
EOT
containerd --config "$W/config.toml" --log-level warn > "$W/containerd.log" 2>&1 &
CPID=$!
CTR="ctr --address $W/containerd.sock --namespace $NS"

cleanup() {
	set +e
	for t in $($CTR task ls -q 2>/dev/null); do $CTR task kill -a -s SIGKILL "$t" >/dev/null 2>&1; $CTR task delete -f "$t" >/dev/null 2>&1; done
	for c in $($CTR container ls -q 2>/dev/null); do $CTR container delete "$c" >/dev/null 2>&1; done
	for i in $($CTR images ls -q 2>/dev/null); do $CTR images rm "$i" >/dev/null 2>&1; done
	$CTR content prune references >/dev/null 2>&1
	$CTR namespace remove $NS >/dev/null 2>&1
	kill $CPID 2>/dev/null; wait $CPID 2>/dev/null
	for p in $(pgrep -f "containerd-shim-runc-v2 -namespace $NS "); do kill -9 "$p" 2>/dev/null; done
	for h in /sys/fs/cgroup/*/$NS /sys/fs/cgroup/$NS; do [ -d "$h" ] && rmdir "$h" 2>/dev/null; done
	grep " $W" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m"; done
	rm -rf "$W"
}
trap cleanup EXIT

for i in $(seq 100); do $CTR version >/dev/null 2>&1 && break; sleep 0.1; done
$CTR version >/dev/null 2>&1 || { echo "containerd did not start:"; tail "$W/containerd.log"; exit 1; }

$CTR images import "$ARCHIVE" || { echo "ctr images import failed"; exit 1; }
$CTR images ls -q | grep -qx "$IMAGE" || { echo "image $IMAGE not listed after import:"; $CTR images ls; exit 1; }
$CTR run --rm --runtime io.containerd.runc.v2 --runc-binary "$RUNTIME" "$IMAGE" gb-$$ || { echo "ctr run failed"; tail "$W/containerd.log"; exit 1; }
