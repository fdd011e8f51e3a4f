#!/bin/bash
# Podman 4.3 (conmon) driving an OCI runtime given by path (--runtime).
# Usage: integration/engines/podman.sh                          (gpurun: target/release/gpurun)
#        RUNTIME=/usr/sbin/runc integration/engines/podman.sh   (validate the script)
# Private --root/--runroot/--tmpdir in a temp dir, cgroupfs manager, file events, no network;
# everything is removed at exit.  Exit 0 = all passed, 1 = some failed, 77 = podman unavailable.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

if ! command -v podman >/dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y podman >/dev/null 2>&1 || true
	fi
	command -v podman >/dev/null || skip_all "podman not installed and apt-get install podman failed"
fi
[ -x "$RUNTIME" ] || { echo "runtime $RUNTIME not found (cargo build --release)"; exit 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}"/podman-eng.XXXXXX)
make_wrapper "$W"
RB=$W/bin/$RT_NAME
# podman raises nofile to 1048576 by default: that fails without CAP_SYS_RESOURCE, so stay
# within the caller's hard limits
NOFILE=$(ulimit -Hn); [ "$NOFILE" = unlimited ] && NOFILE=1048576; [ "$NOFILE" -gt 65536 ] && NOFILE=65536
NPROC=$(ulimit -Hu); [ "$NPROC" = unlimited ] && NPROC=4096; [ "$NPROC" -gt 4096 ] && NPROC=4096
cat > "$W/containers.conf" <<EOT
[containers]
default_ulimits = ["nofile=$NOFILE:$NOFILE", "nproc=$NPROC:$NPROC"]
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime_supports_json = ["gpurun", "crun", "runc", "kata", "runsc", "krun"]
EOT
export CONTAINERS_CONF=$W/containers.conf
P="podman --root $W/storage --runroot $W/runroot --tmpdir $W/tmp --runtime $RB --cgroup-manager=cgroupfs --events-backend=file --storage-driver=overlay"

# podman (not the runtime) makes libpod_parent/{conmon,libpod-<id>}: remove it if we created it
LP_EXISTED=$(ls -d /sys/fs/cgroup/*/libpod_parent /sys/fs/cgroup/libpod_parent 2>/dev/null | head -1)
cleanup() {
	set +e
	$P rm -af -t 0 >/dev/null 2>&1
	$P rmi -af >/dev/null 2>&1
	for c in $(pgrep -f "conmon .*$W"); do kill -9 "$c" 2>/dev/null; done
	grep " $W" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m"; done
	[ -z "$LP_EXISTED" ] && for h in /sys/fs/cgroup/*/libpod_parent /sys/fs/cgroup/libpod_parent; do
		[ -d "$h" ] && { rmdir "$h"/conmon "$h" 2>/dev/null; }; done
	[ -n "${KEEP:-}" ] && echo "kept $W" || rm -rf "$W"
}
trap cleanup EXIT

echo "podman $(podman --version | awk '{print $3}'), runtime $RUNTIME (via $RB), base $W"
R=$W/bundle/rootfs
"$REPO/bundles/build.sh" "$W/bundle" >/dev/null || { echo "bundles/build.sh failed"; exit 1; }
RUN="$P run --rm"; ROOT="--rootfs $R"   # --rootfs takes the path as the first positional

say "podman info"
check "info"                  bash -o pipefail -c "$P info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} cgroups={{.Host.CgroupsVersion}} events={{.Host.EventLogger}}' | sed 's/^/  /'"

say "podman run --rm --rootfs (foreground)"
check "run echo hi"           expect_out hi $RUN $ROOT sh -c 'echo hi'
check "run exit status 3"     expect_rc 3 $RUN $ROOT sh -c 'exit 3'
check "run stdin (-i)"        expect_out abc bash -c "echo abc | $RUN -i $ROOT cat"
check "run stderr"            expect_out err bash -c "$RUN $ROOT sh -c 'echo err >&2' 2>&1 >/dev/null"
check "run env/workdir/user"  expect_out "/tmp 65534 X=1" $RUN --env X=1 --workdir /tmp --user 65534:65534 $ROOT sh -c 'echo $(pwd) $(id -u) X=$X'
check "run --read-only"       expect_out ro $RUN --read-only $ROOT sh -c 'touch /x 2>/dev/null && echo rw || echo ro'
check "run --cap-drop"        expect_out ok $RUN --cap-drop CHOWN $ROOT sh -c 'chown 1 /tmp 2>/dev/null || echo ok'
check "run --privileged"      expect_out ok $RUN --privileged $ROOT sh -c 'test -e /dev/kmsg && echo ok'
check "run --hostname"        expect_out box $RUN --hostname box $ROOT hostname
check "run missing binary -> 127" expect_rc 127 $RUN $ROOT /nonexistent
# terminal: conmon passes --console-socket; `script` gives podman a pty to attach to
tty_run() { in_pty "$RUN -t $ROOT sh -c 'tty && echo tty-ok; sleep 1'"; }
check_tty "run -t (pty)" tty_run
lim() {
	$RUN --memory 64m --pids-limit 50 --cpus 0.5 $ROOT sh -c '
	if [ -f /sys/fs/cgroup/memory.max ]; then echo $(cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max) $(cut -d" " -f1 /sys/fs/cgroup/cpu.max)
	else echo $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us); fi'
}
check "run --memory 64m --pids-limit 50 --cpus 0.5" expect_out "67108864 50 50000" lim

say "detached: exec, pause/unpause, stop, kill, rm"
ID=$($P run -d --name sleeper --rootfs "$R" sleep 300); echo "  id $ID"
st() { $P inspect -f '{{.State.Status}}' "$1"; }
check "run -d: running"       expect_out running st sleeper
check "exec echo"             expect_out hi $P exec sleeper echo hi
check "exec exit status 4"    expect_rc 4 $P exec sleeper sh -c 'exit 4'
check "exec -i stdin"         expect_out xyz bash -c "echo xyz | $P exec -i sleeper cat"
check "exec --user/--env/--workdir" expect_out "65534 Y=2 /tmp" $P exec --user 65534 --env Y=2 --workdir /tmp sleeper sh -c 'echo $(id -u) Y=$Y $(pwd)'
check "exec -d"               $P exec -d sleeper sleep 5
tty_exec() { in_pty "$P exec -t sleeper sh -c 'tty && echo tty-ok; sleep 1'"; }
check_tty "exec -t (pty)" tty_exec
check "pause"                 $P pause sleeper
check "paused"                expect_out paused st sleeper
check "unpause"               $P unpause sleeper
check "running again"         expect_out running st sleeper
check "top"                   bash -c "$P top sleeper | grep -q 'sleep 300'"
check "stop -t 1 (TERM ignored by pid 1, then KILL)" $P stop -t 1 sleeper
check "exited"                eventually_out exited st sleeper
check "start again"           $P start sleeper
check "running after start"   expect_out running st sleeper
check "kill"                  $P kill sleeper
check "exited (137)"          eventually_out "exited 137" $P inspect -f '{{.State.Status}} {{.State.ExitCode}}' sleeper
check "rm"                    $P rm sleeper

$P run -d --name trapper --rootfs "$R" sh -c 'trap "exit 7" TERM; echo started; while :; do sleep 0.1; done' >/dev/null
sleep 0.5
check "logs"                  expect_out started $P logs trapper
check "stop (TERM -> exit 7)" $P stop -t 5 trapper
check "exit code 7"           expect_out 7 $P inspect -f '{{.State.ExitCode}}' trapper
check "rm"                    $P rm trapper

$P create --name created --rootfs "$R" sh -c 'echo from-created' >/dev/null
check "create + start -a"     expect_out from-created $P start -a created
check "rm created"            $P rm created
check "rm -f running"         bash -c "$P run -d --name rmf --rootfs $R sleep 300 >/dev/null && $P rm -f -t 0 rmf >/dev/null"

say "image: umoci-built OCI archive"
if command -v umoci >/dev/null; then
	mk_image() {
		set -e
		local L=$W/layout
		umoci init --layout "$L"; umoci new --image "$L:latest"
		umoci unpack --image "$L:latest" "$W/ub" >/dev/null
		cp -a "$R/." "$W/ub/rootfs/"
		umoci repack --image "$L:latest" "$W/ub" >/dev/null
		umoci config --image "$L:latest" --config.cmd sh --config.cmd -c --config.cmd 'echo from-image' --config.env PATH=/bin
		rm -rf "$W/ub"; tar -C "$L" -cf "$W/bb.tar" .
	}
	check "build OCI archive"   bash -c "$(declare -f mk_image); W=$W R=$R mk_image"
	check "run oci-archive:"    expect_out from-image $P run --rm "oci-archive:$W/bb.tar"
	check "load + run image"    bash -c "$P load -q -i $W/bb.tar >/dev/null && $P tag \$($P images -q | head -1) localhost/bb:latest && [ \"\$($P run --rm localhost/bb:latest sh -c 'echo img > /x; cat /x')\" = img ]"
else
	skip "image path (umoci OCI archive)" "umoci not installed"
fi

say "cleanup"
check "no containers left"    bash -c "[ -z \"\$($P ps -aq)\" ]"
$P rmi -af >/dev/null 2>&1
check "no container mounts left" bash -c "! grep -E ' $W/storage/overlay/[^ ]+/merged ' /proc/self/mountinfo"
# container cgroups are the runtime's job (runc and gpurun remove libpod-<id> on delete)
check "no libpod-<id> cgroups left" bash -c "! find /sys/fs/cgroup/ -maxdepth 3 -type d -name 'libpod-*' | grep ."
summary podman
