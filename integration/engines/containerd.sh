#!/bin/bash
# containerd 1.6 (ctr + containerd-shim-runc-v2) driving an OCI runtime through --runc-binary.
# Usage: integration/engines/containerd.sh            (gpurun: target/release/gpurun)
#        RUNTIME=/usr/sbin/runc integration/engines/containerd.sh   (validate the script)
# Private containerd (own root/state/sockets in a temp dir, CRI disabled); everything is removed
# at exit.  Exit 0 = all checks passed, 1 = some failed, 77 = containerd unavailable (skip).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

if ! command -v containerd >/dev/null || ! command -v ctr >/dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y containerd >/dev/null 2>&1 || true
	fi
	command -v containerd >/dev/null && command -v ctr >/dev/null || skip_all "containerd not installed and apt-get install containerd failed"
fi
[ -x "$RUNTIME" ] || { echo "runtime $RUNTIME not found (cargo build --release)"; exit 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}"/ctrd-eng.XXXXXX)
NS=eng$$
ID=c$$
RB=$W/bin/$RT_NAME        # logging wrapper passed as --runc-binary
make_wrapper "$W"
SNAP=overlayfs
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
containerd --config "$W/config.toml" --log-level info > "$W/containerd.log" 2>&1 &
CPID=$!
CTR="ctr --address $W/containerd.sock --namespace $NS"
RUN="$CTR run --runtime io.containerd.runc.v2 --runc-binary $RB --env PATH=/bin"

cleanup() {
	set +e
	for t in $($CTR task ls -q 2>/dev/null); do $CTR task kill -a -s SIGKILL "$t" >/dev/null 2>&1; done
	for t in $($CTR task ls -q 2>/dev/null); do
		for i in $(seq 50); do $CTR task delete -f "$t" >/dev/null 2>&1 && break; sleep 0.1; done
	done
	for c in $($CTR container ls -q 2>/dev/null); do $CTR container delete "$c" >/dev/null 2>&1; done
	for i in $($CTR images ls -q 2>/dev/null); do $CTR images rm "$i" >/dev/null 2>&1; done
	$CTR content prune references >/dev/null 2>&1
	$CTR namespace remove $NS >/dev/null 2>&1
	kill $CPID 2>/dev/null; wait $CPID 2>/dev/null
	# shims exit when their tasks are deleted; kill any that survived (only ours: matched by socket)
	for p in $(pgrep -f "containerd-shim-runc-v2 -namespace $NS "); do kill -9 "$p" 2>/dev/null; done
	rmdir /run/containerd/runc/$NS /run/containerd/runc /run/containerd 2>/dev/null
	for h in /sys/fs/cgroup/*/$NS /sys/fs/cgroup/$NS; do [ -d "$h" ] && rmdir "$h" 2>/dev/null; done
	grep " $W" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m"; done
	[ -n "${KEEP:-}" ] && echo "kept $W" || rm -rf "$W"
}
trap cleanup EXIT

for i in $(seq 100); do $CTR version >/dev/null 2>&1 && break; sleep 0.1; done
$CTR version >/dev/null 2>&1 || { echo "containerd did not start:"; tail "$W/containerd.log"; exit 1; }
echo "containerd $(containerd --version | awk '{print $3}'), runtime $RUNTIME (via $RB), base $W"

R=$W/bundle/rootfs
"$REPO/bundles/build.sh" "$W/bundle" >/dev/null || { echo "bundles/build.sh failed"; exit 1; }

# --- foreground runs ------------------------------------------------------------------------
say "ctr run --rm (foreground)"
check "run echo hi"          expect_out hi $RUN --rm --rootfs "$R" $ID-a sh -c 'echo hi'
check "run exit status 3"    expect_rc 3 $RUN --rm --rootfs "$R" $ID-b sh -c 'exit 3'
# (ctr run never closes the task's stdin on EOF: read one line instead of cat)
check "run stdin piped"      expect_out abc bash -c "echo abc | $RUN --rm --rootfs $R $ID-c sh -c 'read x; echo \$x'"
check "run stderr"           expect_out err bash -c "$RUN --rm --rootfs $R $ID-d sh -c 'echo err >&2' 2>&1 >/dev/null"
check "run env/cwd"          expect_out "/tmp X=1" $RUN --rm --env X=1 --cwd /tmp --rootfs "$R" $ID-e sh -c 'echo $(pwd) X=$X'
check "run readonly rootfs"  expect_out ro $RUN --rm --read-only --rootfs "$R" $ID-f sh -c 'touch /x 2>/dev/null && echo rw || echo ro'
check "run --seccomp (default profile)" expect_out ok $RUN --rm --seccomp --rootfs "$R" $ID-s1 echo ok
check "run --privileged"     expect_out ok $RUN --rm --privileged --rootfs "$R" $ID-s2 sh -c 'test -e /dev/kmsg && echo ok'
check "run --net-host"       expect_out ok $RUN --rm --net-host --rootfs "$R" $ID-s3 echo ok
check "run --cap-drop"       expect_out ok $RUN --rm --cap-drop CAP_CHOWN --rootfs "$R" $ID-s4 sh -c 'chown 1 /tmp 2>/dev/null || echo ok'
# --null-io: the shim hands the runtime O_RDONLY /dev/null as stdio; runc re-opens it O_RDWR
# (reOpenDevNull) so the container can write to stdout/stderr
check "run --null-io (echo exits 0)" expect_rc 0 $RUN --rm --null-io --rootfs "$R" $ID-s5 sh -c 'echo hidden && echo hidden >&2'
# terminal: the shim passes --console-socket; `script` gives ctr a pty to attach to
tty_run() { in_pty "$RUN --rm -t --rootfs $R $ID-t sh -c 'tty && echo tty-ok; sleep 1'"; }
check_tty "run -t (pty)" tty_run

# --- detached container with limits ------------------------------------------------------------
say "detached task with limits: exec, ps, pause/resume, kill, delete"
C=$ID-g
# ctr's default spec has no /sys/fs/cgroup mount: add one (ro) to read the limits from inside
check "run -d with limits"   $RUN -d --mount type=cgroup,src=cgroup,dst=/sys/fs/cgroup,options=ro:nosuid:noexec:nodev --memory-limit 67108864 --cpu-quota 50000 --cpu-period 100000 --rootfs "$R" $C sleep 300
PID=$($CTR task ls | awk -v id=$C '$1==id{print $2}')
echo "  task pid $PID"
task_status() { $CTR task ls | awk -v id=$C '$1==id{print $3}'; }
check "task RUNNING"         expect_out RUNNING task_status
# The task's cgroup dirs, whatever the layout: the shim's cgroupsPath is /$NS/$C, under
# /sys/fs/cgroup on pure v2, under each v1 hierarchy and unified/ on hybrid and v1 hosts
cg_dirs() { local d; for d in /sys/fs/cgroup/$NS/$C /sys/fs/cgroup/*/$NS/$C; do [ -d "$d" ] && echo "$d"; done; }
cg_made() { local g; g=$(cg_dirs); [ -n "$g" ] || { echo "  no cgroup $NS/$C under /sys/fs/cgroup; the task's: $(tr '\n' ' ' </proc/$PID/cgroup)"; return 1; }; }
cg_removed() { local g; g=$(cg_dirs); [ -z "$g" ] || { echo "  left:" $g; return 1; }; }
check "task cgroup made"     cg_made
cg_limits_host() {
	if [ -n "$(sed -n 's/^[0-9]*:memory://p' /proc/$PID/cgroup)" ]; then
		local m c
		m=$(sed -n 's/^[0-9]*:memory://p' /proc/$PID/cgroup); c=$(sed -n 's/^[0-9]*:cpu,cpuacct://p;s/^[0-9]*:cpu://p' /proc/$PID/cgroup | head -1)
		local cd=/sys/fs/cgroup/cpu,cpuacct; [ -d $cd ] || cd=/sys/fs/cgroup/cpu
		echo "$(cat /sys/fs/cgroup/memory$m/memory.limit_in_bytes) $(cat $cd$c/cpu.cfs_quota_us)"
	else
		local g; g=$(sed -n 's/^0:://p' /proc/$PID/cgroup)
		echo "$(cat /sys/fs/cgroup$g/memory.max) $(cut -d' ' -f1 /sys/fs/cgroup$g/cpu.max)"
	fi
}
check "limits seen from host" expect_out "67108864 50000" cg_limits_host
mem_in() { $CTR task exec --exec-id e1 $C sh -c 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max 2>/dev/null || { ls /sys/fs/cgroup; grep cgroup /proc/self/mountinfo; } >&2'; }
check "exec cat memory limit" expect_out 67108864 mem_in
check "exec exit status 5"   expect_rc 5 $CTR task exec --exec-id e2 $C sh -c 'exit 5'
check "exec stdin"           expect_out xyz bash -c "echo xyz | $CTR task exec --exec-id e3 $C cat"
check "exec as user 65534"   expect_out 65534 $CTR task exec --exec-id e4 --user 65534 $C id -u
check "task ps lists init"   bash -c "$CTR task ps $C | awk 'NR>1{print \$1}' | grep -qx $PID"
check "task pause"           $CTR task pause $C
check "task PAUSED"          expect_out PAUSED task_status
check "task resume"          $CTR task resume $C
check "task RUNNING again"   expect_out RUNNING task_status
# the sleep keeps the pty open until its output is drained: the shim shuts the console down as
# soon as the process exits, and a short process's last line may still sit in the tty buffer
tty_exec() { in_pty "$CTR task exec -t --exec-id t1 $C sh -c 'tty && echo tty-ok; sleep 1'"; }
check_tty "exec -t (pty)" tty_exec
check "exec after resume"    expect_out ok $CTR task exec --exec-id e5 $C echo ok
check "task kill SIGKILL"    $CTR task kill -s SIGKILL $C
wait_stopped() { for i in $(seq 50); do [ "$(task_status)" = STOPPED ] && return 0; sleep 0.1; done; task_status; return 1; }
check "task STOPPED"         wait_stopped
check "task delete"          $CTR task delete $C
check "container delete"     $CTR container delete $C
check "cgroup removed"       cg_removed

# SIGTERM via ctr task kill (default signal), and delete while the init already exited
C=$ID-h
check "run -d sh (trap TERM)" $RUN -d --rootfs "$R" $C sh -c 'trap "exit 7" TERM; while :; do sleep 0.1; done'
sleep 0.3
check "task kill (SIGTERM)"   $CTR task kill $C
wait_stopped_h() { for i in $(seq 50); do $CTR task ls | grep -q "^$C .*STOPPED" && return 0; sleep 0.1; done; return 1; }
check "stopped after TERM"    wait_stopped_h
# ctr task delete reports a nonzero exit status of the task on stderr (a warning "... exit with
# non-zero exit code N"), and exits 0: the status must be the trap's 7
task_delete_status() { $CTR task delete $C 2>&1 >/dev/null | grep -o 'exit code [0-9]*'; }
check "task delete -> 7"      expect_out "exit code 7" task_delete_status
$CTR container delete $C >/dev/null 2>&1

# (ctr 1.6 has no `task update`: the shim's update --resources is not reachable from ctr)

# --- image path: OCI archive built locally with umoci, imported, unpacked by the snapshotter ------
say "image: umoci-built OCI archive -> ctr images import -> ctr run"
if command -v umoci >/dev/null; then
	mk_image() {
		set -e
		local L=$W/layout
		umoci init --layout "$L"
		umoci new --image "$L:latest"
		umoci unpack --image "$L:latest" "$W/ub" >/dev/null
		cp -a "$R/." "$W/ub/rootfs/"
		umoci repack --image "$L:latest" "$W/ub" >/dev/null
		umoci config --image "$L:latest" --config.cmd sh --config.cmd -c --config.cmd 'echo from-image' --config.env PATH=/bin
		rm -rf "$W/ub"
		tar -C "$L" -cf "$W/bb.tar" .
	}
	check "build OCI archive"  bash -c "$(declare -f mk_image); W=$W R=$R mk_image"
	check "ctr images import"  $CTR images import --base-name localhost/bb "$W/bb.tar"
	$CTR images ls -q | sed 's/^/  image: /'
	check "run image (default cmd)" expect_out from-image $RUN --rm localhost/bb:latest $ID-j
	check "run image (cmd)"    expect_out hi2 $RUN --rm localhost/bb:latest $ID-k sh -c 'echo hi2 > /x; cat /x'
	check "run image -d + exec" bash -c "$RUN -d localhost/bb:latest $ID-l sleep 300 && $CTR task exec --exec-id x $ID-l true && $CTR task kill -s SIGKILL $ID-l && sleep 0.5 && $CTR task delete $ID-l && $CTR container delete $ID-l"
else
	skip "image path (umoci OCI archive)" "umoci not installed"
fi

# --- cleanup checks ------------------------------------------------------------------------
say "cleanup"
check "no tasks left"         bash -c "[ -z \"\$($CTR task ls -q)\" ]"
check "no containers left"    bash -c "[ -z \"\$($CTR container ls -q)\" ]"
for i in $($CTR images ls -q 2>/dev/null); do $CTR images rm "$i" >/dev/null 2>&1; done
check "no rootfs mounts left" bash -c "for i in \$(seq 20); do grep -q ' $W/state' /proc/self/mountinfo || exit 0; sleep 0.1; done; grep ' $W' /proc/self/mountinfo; exit 1"
summary containerd
