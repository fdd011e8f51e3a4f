#!/bin/bash
# buildah 1.28 (buildah run / buildah build with --isolation oci) driving an OCI runtime by path.
# Usage: integration/engines/buildah.sh                          (gpurun: target/release/gpurun)
#        RUNTIME=/usr/sbin/runc integration/engines/buildah.sh   (validate the script)
# Private --root/--runroot in a temp dir; no registry: the base is `buildah from scratch` plus a
# copy of the busybox rootfs.  Exit 0 = all passed, 1 = some failed, 77 = buildah unavailable.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

if ! command -v buildah >/dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y buildah >/dev/null 2>&1 || true
	fi
	command -v buildah >/dev/null || skip_all "buildah not installed and apt-get install buildah failed"
fi
[ -x "$RUNTIME" ] || { echo "runtime $RUNTIME not found (cargo build --release)"; exit 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}"/buildah-eng.XXXXXX)
make_wrapper "$W"
RB=$W/bin/$RT_NAME
NOFILE=$(ulimit -Hn); [ "$NOFILE" = unlimited ] && NOFILE=1048576; [ "$NOFILE" -gt 65536 ] && NOFILE=65536
cat > "$W/containers.conf" <<EOT
[containers]
default_ulimits = ["nofile=$NOFILE:$NOFILE"]
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
EOT
export CONTAINERS_CONF=$W/containers.conf
export TMPDIR=$W/tmp; mkdir -p "$TMPDIR"    # buildah puts its run bundles under $TMPDIR (default /var/tmp)
B="buildah --root $W/storage --runroot $W/runroot --storage-driver overlay"
BR="--runtime $RB --isolation oci --network none"

cleanup() {
	set +e
	$B rm -a >/dev/null 2>&1
	$B rmi -af >/dev/null 2>&1
	grep " $W" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m"; done
	[ -n "${KEEP:-}" ] && echo "kept $W" || rm -rf "$W"
}
trap cleanup EXIT

echo "buildah $(buildah --version | awk '{print $3}'), runtime $RUNTIME (via $RB), base $W"
R=$W/bundle/rootfs
"$REPO/bundles/build.sh" "$W/bundle" >/dev/null || { echo "bundles/build.sh failed"; exit 1; }

say "buildah from scratch + copy + run"
CTR=$($B from scratch)
check "copy busybox rootfs"   $B copy --quiet "$CTR" "$R" /
check "config env/cmd"        $B config --env PATH=/bin --cmd 'sh' "$CTR"
check "run echo hi > /x"      $B run $BR "$CTR" -- sh -c 'echo hi > /x'
check "run cat /x"            expect_out hi $B run $BR "$CTR" -- cat /x
check "run exit status 3"     expect_rc 3 $B run $BR "$CTR" -- sh -c 'exit 3'
check "run --user"            expect_out 65534 $B run $BR --user 65534 "$CTR" -- id -u
check "run stdin"             expect_out abc bash -c "echo abc | $B run $BR $CTR -- cat"
check "commit"                $B commit --quiet "$CTR" localhost/bb:latest

say "buildah build (Containerfile with RUN)"
mkdir -p "$W/ctx"
printf 'FROM localhost/bb:latest\nRUN echo built > /y && cat /x /y\n' > "$W/ctx/Containerfile"
check "build"                 $B build --quiet $BR --pull-never -t localhost/bb2:latest "$W/ctx"
C2=$($B from --pull-never localhost/bb2:latest 2>/dev/null)
check "built layer has /y"    expect_out "hi built" $B run $BR "$C2" -- sh -c 'echo $(cat /x /y)'

say "cleanup"
$B rm -a >/dev/null 2>&1
$B rmi -af >/dev/null 2>&1
check "no containers left"    bash -c "[ -z \"\$($B containers -q)\" ]"
check "no run bundles left"   bash -c "! ls -d $TMPDIR/buildah* 2>/dev/null | grep ."
check "no mounts left"        bash -c "! grep -E ' $W/storage/overlay/[^ ]+/merged ' /proc/self/mountinfo"
summary buildah
