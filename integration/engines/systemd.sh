#!/bin/bash
# Docker 20.10, containerd 1.6's CRI and Podman 4.3 with the systemd cgroup driver, as a node whose
# PID 1 is systemd is configured, each driving the OCI runtime under test with --systemd-cgroup
# (dockerd's and containerd's shims pass it to every call but their last `delete`; podman only to
# `create`: the runtime must remember its driver; calls.log shows the argv):
#   a. dockerd, daemon.json exec-opts native.cgroupdriver=systemd, the runtime its default runtime:
#      run --memory --cpus --pids-limit -> docker-<ID>.scope in system.slice (systemctl show and the
#      cgroup files), cgroupns 0::/ inside, exec, update, stop leaves no unit, start again
#      (the same unit name anew), rm leaves no unit
#   b. containerd's CRI with SystemdCgroup = true and BinaryName = the runtime, driven as kubelet
#      does (cri/cri.py, a CRI client from cri/api.proto): a host-network pod whose cgroup_parent
#      is a kubelet-style pod slice (kubepods-besteffort-pod<UID>.slice), the sandbox image a local
#      busybox-based pause image; a container with a memory and CPU limit -> cri-containerd-<ID>.scope
#      in that slice; ExecSync, UpdateContainerResources, stop/remove leave no unit
#   c. podman with containers.conf cgroup_manager = "systemd": run --memory -> libpod-<ID>.scope in
#      machine.slice, exec, rm leaves no unit
# Usage: VM_SYSTEMD=1 integration/vm/run-suite.sh    (in the systemd guest, through cargo test)
#        integration/engines/systemd.sh setup         (on the host, as root: apt-get what it drives;
#                                                      run-suite.sh does it before the guest boots)
#        RUNTIME=/usr/sbin/runc integration/engines/systemd.sh   (validate the script)
# One private containerd (own root/state/sockets, CRI on, CNI unused: host network) serves dockerd
# and the CRI client; private dockerd (own data/exec root, socket, pidfile, no bridge, no iptables)
# and podman (own --root/--runroot/--tmpdir, file events, no network). All stopped by PID, every
# unit and file removed at exit. Exit 0 = all checks passed, 1 = some failed, 77 = skipped (PID 1 is
# not systemd, or none of the engines is installed and ENGINES_NO_INSTALL is set).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3 # Debian's, with python3-grpcio and python3-protobuf (not a pyenv shim on PATH)
PKGS="docker.io containerd podman python3-grpcio python3-protobuf protobuf-compiler"
missing_pkgs() {
	local p m=
	for p in $PKGS; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || m="$m $p"; done
	echo "$m"
}
setup() { # installs what is missing (root, apt-get); 0 also when it cannot (the checks then skip)
	local m; m=$(missing_pkgs)
	[ -n "$m" ] || return 0
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		echo "systemd.sh setup: not root or no apt-get, not installed:$m (those checks will skip)"
		return 0
	fi
	echo "systemd.sh setup: installing$m"
	local a="DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600"
	{ env $a update && env $a install -y --no-install-recommends $m; } >/tmp/systemd-eng-apt.log 2>&1 ||
		{ tail -5 /tmp/systemd-eng-apt.log; echo "systemd.sh setup: apt-get install$m failed"; return 1; }
}
if [ "${1:-}" = setup ]; then setup; exit; fi

[ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && [ -d /run/systemd/system ] ||
	skip_all "PID 1 is not systemd (it is $(cat /proc/1/comm 2>/dev/null)): run VM_SYSTEMD=1 integration/vm/run-suite.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root"
[ -x "$RUNTIME" ] || { echo "runtime $RUNTIME not found (cargo build --release)"; exit 1; }
[ -n "${ENGINES_NO_INSTALL:-}" ] || setup || exit 1

# What each part needs; a part whose engine is missing is skipped, saying so.
SKIP_DOCKER= SKIP_CRI= SKIP_PODMAN=
command -v containerd >/dev/null && command -v ctr >/dev/null || { SKIP_DOCKER="containerd not installed"; SKIP_CRI=$SKIP_DOCKER; }
[ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || SKIP_DOCKER="docker.io not installed"
# (not by importing them: that alone takes seconds under TCG)
command -v protoc >/dev/null && [ -x $PY ] && [ -f /usr/lib/python3/dist-packages/grpc/__init__.py ] &&
	[ -f /usr/lib/python3/dist-packages/google/protobuf/__init__.py ] ||
	SKIP_CRI=${SKIP_CRI:-"no CRI client: python3-grpcio, python3-protobuf or protobuf-compiler missing"}
command -v podman >/dev/null || SKIP_PODMAN="podman not installed"
if [ -n "$SKIP_DOCKER" ] && [ -n "$SKIP_CRI" ] && [ -n "$SKIP_PODMAN" ]; then
	skip_all "$SKIP_DOCKER; $SKIP_CRI; $SKIP_PODMAN${ENGINES_NO_INSTALL:+ (ENGINES_NO_INSTALL set)}"
fi
busctl --system status >/dev/null 2>&1 || { echo "no D-Bus system bus: the systemd driver needs one"; exit 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}"/sd-eng.XXXXXX)
chmod 711 "$W"
make_wrapper "$W"
RB=$W/bin/$RT_NAME # the logging wrapper: every engine's runtime
R=$W/bundle/rootfs
CADDR=$W/containerd.sock
CTRD="ctr --address $CADDR"
CPID= DPID= CRI_FD= CRI_PID= P=
D=$W/bin/docker
UNITS=()                       # scopes of our containers (stopped at exit if still there)
KP_EXISTED=$(systemctl list-units --all --plain --no-legend 'kubepods.slice' | grep -c .)
HOST_DIRS=(/run/containerd/s /run/containerd/runc /run/containerd /run/docker /run/libpod /run/containers/storage /run/containers)
HOST_CREATED=()
for d in "${HOST_DIRS[@]}"; do [ -e "$d" ] || HOST_CREATED+=("$d"); done

mark() { printf '  [%.0fs] %s\n' "$(echo "$(date +%s.%N) - $T0" | bc)" "$*"; } # progress, time since start
# props UNIT PROP...: "P=V P=V ..." in sorted order (systemctl's own order is not -p's)
props() {
	local u=$1 p a=(); shift
	for p in "$@"; do a+=(-p "$p"); done
	systemctl show "$u" "${a[@]}" | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//'
}
# cgfiles UNIT FILE...: the values in the unit's cgroup, one line
cgfiles() {
	local cg f out=; cg=$(systemctl show -p ControlGroup --value "$1"); shift
	[ -n "$cg" ] || { echo "  no ControlGroup" >&2; return 1; }
	for f in "$@"; do out="$out $(cat "/sys/fs/cgroup$cg/$f")"; done
	echo "${out# }"
}
# no_units PATTERN...: no unit (loaded, any state) matches; systemd unloads a dead scope a moment later
no_units() { wait_until 10 bash -c "[ -z \"\$(systemctl list-units --all --plain --no-legend $*)\" ] || { systemctl list-units --all --plain --no-legend $*; false; }"; }
# got_systemd_flag ID: the runtime's create for container ID had --systemd-cgroup
got_systemd_flag() { [ -n "$1" ] && grep -E " create .*$1" "$W/calls.log" | grep -q -- ' --systemd-cgroup ' || { grep -E " create .*$1" "$W/calls.log"; false; }; }

cleanup() {
	set +e
	if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
		local ids; ids=$(timeout 30 $D ps -aq 2>/dev/null)
		[ -n "$ids" ] && timeout 60 $D rm -f $ids >/dev/null 2>&1
		kill "$DPID"; wait "$DPID"
	fi
	if [ -n "$CRI_PID" ]; then exec {CRI_FD}>&-; wait "$CRI_PID"; fi
	if [ -n "$CPID" ] && kill -0 "$CPID" 2>/dev/null; then
		local ns t
		for ns in k8s.io moby; do
			for t in $($CTRD -n $ns task ls -q 2>/dev/null); do $CTRD -n $ns task kill -a -s SIGKILL "$t" >/dev/null 2>&1; done
			for t in $($CTRD -n $ns task ls -q 2>/dev/null); do
				for i in $(seq 50); do $CTRD -n $ns task delete -f "$t" >/dev/null 2>&1 && break; sleep 0.1; done
			done
		done
		kill "$CPID"; wait "$CPID"
	fi
	if command -v podman >/dev/null && [ -d "$W/podman" ]; then
		$P rm -af -t 0 >/dev/null 2>&1
		for c in $(pgrep -f "conmon .*$W"); do kill -9 "$c"; done
	fi
	# shims left by a killed containerd: ours are those started with our address
	for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $CADDR( |\$)"); do kill -9 "$p"; done
	for a in "$W"/ctrd/state/io.containerd.runtime.v2.task/*/*/address; do
		[ -f "$a" ] && s=$(sed 's#^unix://##' "$a") && [ -S "$s" ] && rm -f "$s"
	done
	local u
	for u in "${UNITS[@]}"; do
		[ -n "$(systemctl list-units --all --plain --no-legend "$u")" ] && { systemctl stop "$u"; systemctl reset-failed "$u"; } 2>/dev/null
	done
	[ -n "${POD_SLICE:-}" ] && systemctl stop "$POD_SLICE" 2>/dev/null
	[ "$KP_EXISTED" = 0 ] && systemctl stop kubepods.slice 2>/dev/null
	grep " $W" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m"; done
	for d in "${HOST_CREATED[@]}"; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
	[ -n "${KEEP:-}" ] && echo "kept $W" || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

echo "systemd $(systemctl --version | awk 'NR==1{print $2}') (state: $(systemctl is-system-running)), runtime $RUNTIME (via $RB), base $W"
# the busybox rootfs: a copy of bundles/busybox (run-suite.sh builds it on the host) where it is
# complete, else built here (bundles/build.sh: ~400 links, a fork each, slow under TCG)
mkdir -p "$W/bundle"
if [ -x "$REPO/bundles/busybox/rootfs/bin/sh" ] && cmp -s /bin/busybox "$REPO/bundles/busybox/rootfs/bin/busybox"; then
	cp -a "$REPO/bundles/busybox/rootfs" "$W/bundle/" || exit 1
else
	"$REPO/bundles/build.sh" "$W/bundle" >/dev/null || { echo "bundles/build.sh failed"; exit 1; }
fi
mark "rootfs ready"

# mk_oci_image OUT.tar NAME CMD_JSON: an OCI image archive of the busybox rootfs (one layer)
mk_oci_image() {
	local out=$1 name=$2 cmd=$3 L=$W/oci d n
	mkdir -p "$L/blobs/sha256"
	blob() { d=$(sha256sum "$1" | cut -d' ' -f1); n=$(stat -c %s "$1"); mv "$1" "$L/blobs/sha256/$d"; }
	tar -C "$R" --numeric-owner --owner=0 --group=0 -cf "$L/layer" . || return 1
	blob "$L/layer"; local ld=$d ln=$n
	jq -n --arg diff "sha256:$ld" --argjson cmd "$cmd" '{architecture: "amd64", os: "linux",
		config: {Env: ["PATH=/bin"], Cmd: $cmd}, rootfs: {type: "layers", diff_ids: [$diff]}}' >"$L/config"
	blob "$L/config"; local cd=$d cn=$n
	jq -n --arg c "sha256:$cd" --argjson cn "$cn" --arg l "sha256:$ld" --argjson ln "$ln" '{schemaVersion: 2,
		mediaType: "application/vnd.oci.image.manifest.v1+json",
		config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cn},
		layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar", digest: $l, size: $ln}]}' >"$L/manifest"
	blob "$L/manifest"
	jq -n --arg m "sha256:$d" --argjson mn "$n" --arg name "$name" '{schemaVersion: 2, manifests: [{
		mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m, size: $mn,
		annotations: {"io.containerd.image.name": $name, "org.opencontainers.image.ref.name": ($name | sub(".*:"; ""))}}]}' >"$L/index.json"
	echo '{"imageLayoutVersion": "1.0.0"}' >"$L/oci-layout"
	tar -C "$L" -cf "$out" oci-layout index.json blobs && rm -rf "$L"
}

# --- containerd: one private daemon, CRI on (SystemdCgroup, the runtime), for dockerd and CRI ------
if [ -z "$SKIP_CRI" ] || [ -z "$SKIP_DOCKER" ]; then
	mkdir -p "$W/cni/bin" "$W/cni/net.d"
	cat >"$W/containerd.toml" <<-EOT
	version = 2
	root = "$W/ctrd/root"
	state = "$W/ctrd/state"
	[grpc]
	  address = "$CADDR"
	[ttrpc]
	  address = "$CADDR.ttrpc"
	[debug]
	  address = "$W/containerd-debug.sock"
	[plugins."io.containerd.internal.v1.opt"]
	  path = "$W/opt"
	[plugins."io.containerd.grpc.v1.cri"]
	  sandbox_image = "localhost/gpr-pause:1"
	  stream_server_port = "0"
	  [plugins."io.containerd.grpc.v1.cri".cni]
	    bin_dir = "$W/cni/bin"
	    conf_dir = "$W/cni/net.d"
	  [plugins."io.containerd.grpc.v1.cri".containerd]
	    snapshotter = "overlayfs"
	    default_runtime_name = "runc"
	    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
	      runtime_type = "io.containerd.runc.v2"
	      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
	        BinaryName = "$RB"
	        SystemdCgroup = true
	EOT
	containerd --config "$W/containerd.toml" --log-level info >"$W/containerd.log" 2>&1 &
	CPID=$!
fi

# Everything slow to start (seconds each under TCG) starts at once: containerd (above), dockerd
# once containerd's socket is there, and the CRI client (importing grpc alone takes seconds).
# The CRI client: requests go in through one fifo, answers come back through another (a line each).
if [ -z "$SKIP_CRI" ]; then
	mkdir -p "$W/pb" "$W/pods"
	protoc -I "$ENGINES_DIR/cri" --python_out="$W/pb" "$ENGINES_DIR/cri/api.proto" || { echo "protoc failed"; exit 1; }
	mkfifo "$W/cri.in" "$W/cri.out"
	$PY "$ENGINES_DIR/cri/cri.py" "$W/pb" "unix://$CADDR" <"$W/cri.in" >"$W/cri.out" 2>"$W/cri.log" &
	CRI_PID=$!
	exec {CRI_FD}>"$W/cri.in" {CRI_OUT}<"$W/cri.out"
fi

if [ -z "$SKIP_DOCKER" ]; then
	wait_until 60 test -S "$CADDR" || { echo "containerd did not start:"; tail -20 "$W/containerd.log"; exit 1; }
	# the client on our daemon, without ~/.docker/config.json (credential helpers, contexts)
	cat >"$D" <<-EOT
	#!/bin/sh
	unset DOCKER_HOST DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
	DOCKER_CONFIG=$W/cli exec /usr/bin/docker -H unix://$W/docker.sock "\$@"
	EOT
	chmod +x "$D"
	# the node's /etc/docker/daemon.json, but ours (the trust key too: 20.10 has no flag for it)
	jq -n --arg rb "$RB" --arg key "$W/key.json" '{"exec-opts": ["native.cgroupdriver=systemd"],
		runtimes: {undertest: {path: $rb}}, "default-runtime": "undertest", "deprecated-key-path": $key}' >"$W/daemon.json"
	PATH=$PATH:/usr/sbin:/sbin /usr/sbin/dockerd --config-file "$W/daemon.json" --data-root "$W/docker" \
		--exec-root "$W/dexec" -H "unix://$W/docker.sock" --pidfile "$W/dockerd.pid" --containerd "$CADDR" \
		--storage-driver overlay2 --bridge none --iptables=false --ip6tables=false --ip-masq=false \
		--ip-forward=false >"$W/dockerd.log" 2>&1 &
	DPID=$!
fi
[ -n "$SKIP_CRI" ] || mk_oci_image "$W/pause.tar" localhost/gpr-pause:1 '["sleep", "2147483647"]' ||
	{ echo "cannot build the image"; exit 1; }
if [ -n "$CPID" ]; then
	wait_until 60 $CTRD version >/dev/null || { echo "containerd did not start:"; tail -20 "$W/containerd.log"; exit 1; }
	mark "containerd $(containerd --version | awk '{print $3}') at $CADDR"
fi

# --- a. Docker ------------------------------------------------------------------------------------
say "a. docker: native.cgroupdriver=systemd"
IMG=gpr-bb
if [ -n "$SKIP_DOCKER" ]; then
	skip "docker part" "$SKIP_DOCKER"
else
	wait_until 90 $D version >/dev/null || { echo "dockerd did not start:"; tail -20 "$W/dockerd.log"; exit 1; }
	mark "docker $($D version -f '{{.Server.Version}}')"
	check "dockerd: systemd driver, cgroup v2, default runtime undertest" expect_out "systemd 2 undertest" \
		$D info -f '{{.CgroupDriver}} {{.CgroupVersion}} {{.DefaultRuntime}}'
	check "import busybox image" bash -c "tar -C $R -c . | $D import - $IMG >/dev/null"
	L=lim
	docker_run() {
		ID=$($D run -d --name $L --network none --memory=64m --cpus=0.5 --pids-limit=50 $IMG sleep 300) &&
			[ -n "$ID" ] && CPID1=$($D inspect -f '{{.State.Pid}}' $L)
	}
	ID= CPID1=
	check "run -d --memory=64m --cpus=0.5 --pids-limit=50" docker_run
	U=docker-$ID.scope
	UNITS+=("$U")
	echo "  unit $U"
	check "runtime create had --systemd-cgroup" got_systemd_flag "$ID"
	check "inside: cgroupns root 0::/, memory.max" expect_out "0::/ 67108864" \
		$D exec $L sh -c 'echo $(cat /proc/self/cgroup /sys/fs/cgroup/memory.max)'
	check "init in /system.slice/$U" expect_out "0::/system.slice/$U" \
		cat /proc/$CPID1/cgroup
	check "unit: active in system.slice, MemoryMax TasksMax CPUQuota" \
		expect_out "ActiveState=active CPUQuotaPerSecUSec=500ms MemoryMax=67108864 Slice=system.slice TasksMax=50" \
		props "$U" ActiveState Slice MemoryMax TasksMax CPUQuotaPerSecUSec
	check "cgroup files agree" expect_out "67108864 50 50000 100000" cgfiles "$U" memory.max pids.max cpu.max
	check "exec exit status 5" expect_rc 5 $D exec $L sh -c 'exit 5'
	check "update --memory 128m --memory-swap 256m --cpus 1 --pids-limit 100" \
		bash -c "$D update --memory 128m --memory-swap 256m --cpus 1 --pids-limit 100 $L >/dev/null"
	check "unit updated" expect_out "CPUQuotaPerSecUSec=1s MemoryMax=134217728 TasksMax=100" \
		props "$U" MemoryMax TasksMax CPUQuotaPerSecUSec
	check "cgroup files updated" expect_out "134217728 100 100000 100000" cgfiles "$U" memory.max pids.max cpu.max
	check "stop -t 1"          bash -c "$D stop -t 1 $L >/dev/null"
	check "stopped: no unit"   no_units "$U"
	# the same container again: the same unit name, created anew (the old one must be gone)
	check "start again"        bash -c "$D start $L >/dev/null"
	check "unit active again, updated limits kept" expect_out "ActiveState=active MemoryMax=134217728 TasksMax=100" \
		props "$U" ActiveState MemoryMax TasksMax
	check "rm -f"              bash -c "$D rm -f $L >/dev/null"
	check "no docker-* units left" no_units "'docker-*.scope'"
	check "no containers left" expect_out "" $D ps -aq
	stop_dockerd() { kill "$DPID" && wait "$DPID"; DPID=; }
	check "dockerd stops"      stop_dockerd
fi

# --- b. containerd's CRI (kubelet's calls) ---------------------------------------------------------
say "b. containerd CRI: SystemdCgroup = true, a kubelet-style pod slice"
if [ -n "$SKIP_CRI" ]; then
	skip "CRI part" "$SKIP_CRI"
else
	check "ctr -n k8s.io images import (pause image)" bash -c "$CTRD -n k8s.io images import $W/pause.tar >/dev/null"
	# cri METHOD JSON: one call; prints the response (JSON); status 1 on an error
	cri() {
		local line
		echo "$1 $2" >&"$CRI_FD"
		IFS= read -r line <&"$CRI_OUT" || { echo "  CRI client gone:" >&2; cat "$W/cri.log" >&2; return 1; }
		echo "$line"
		! jq -e 'has("error")' <<<"$line" >/dev/null || { echo "  $1: $line" >&2; return 1; }
	}
	crij() { cri "$1" "$2" | jq -r "$3"; } # crij METHOD JSON FILTER
	cri_ok() { cri "$@" >/dev/null; }
	check "Version: containerd, v1" expect_out "containerd v1" crij Version '{"version": "v1"}' '"\(.runtime_name) \(.runtime_api_version)"'
	POD_UID=$(cat /proc/sys/kernel/random/uuid)
	POD_SLICE=kubepods-besteffort-pod${POD_UID//-/_}.slice # what kubelet's systemd driver sends
	SANDBOX=$(jq -nc --arg uid "$POD_UID" --arg slice "$POD_SLICE" --arg logs "$W/pods" '{
		metadata: {name: "gpr-pod", uid: $uid, namespace: "default"}, log_directory: $logs,
		linux: {cgroup_parent: $slice, security_context: {namespace_options: {network: "NODE", pid: "CONTAINER", ipc: "POD"}}}}')
	POD=
	run_pod() { POD=$(crij RunPodSandbox "{\"config\": $SANDBOX}" .pod_sandbox_id) && [ -n "$POD" ]; }
	check "RunPodSandbox (host network, cgroup_parent $POD_SLICE)" run_pod
	PU=cri-containerd-$POD.scope
	UNITS+=("$PU")
	check "sandbox: runtime create had --systemd-cgroup" got_systemd_flag "$POD"
	check "sandbox unit: active in the pod slice" expect_out "ActiveState=active Slice=$POD_SLICE" props "$PU" ActiveState Slice
	CONFIG=$(jq -nc --arg logs c1.log '{metadata: {name: "c1"}, image: {image: "localhost/gpr-pause:1"},
		command: ["sleep", "300"], log_path: $logs,
		linux: {resources: {memory_limit_in_bytes: 67108864, cpu_period: 100000, cpu_quota: 50000}}}')
	CID=
	create_ctr() { CID=$(crij CreateContainer "{\"pod_sandbox_id\": \"$POD\", \"config\": $CONFIG, \"sandbox_config\": $SANDBOX}" .container_id) && [ -n "$CID" ]; }
	check "CreateContainer (memory 64Mi, cpu 500m)" create_ctr
	CU=cri-containerd-$CID.scope
	UNITS+=("$CU")
	check "StartContainer" cri_ok StartContainer "{\"container_id\": \"$CID\"}"
	check "ContainerStatus: RUNNING" expect_out CONTAINER_RUNNING crij ContainerStatus "{\"container_id\": \"$CID\"}" .status.state
	check "runtime create had --systemd-cgroup" got_systemd_flag "$CID"
	echo "  unit $CU"
	check "unit: active in the pod slice, MemoryMax, CPUQuota" \
		expect_out "ActiveState=active CPUQuotaPerSecUSec=500ms MemoryMax=67108864 Slice=$POD_SLICE" \
		props "$CU" ActiveState Slice MemoryMax CPUQuotaPerSecUSec
	check "cgroup: kubepods.slice/kubepods-besteffort.slice/$POD_SLICE/$CU" \
		expect_out "/kubepods.slice/kubepods-besteffort.slice/$POD_SLICE/$CU" systemctl show -p ControlGroup --value "$CU"
	check "cgroup files: memory.max cpu.max" expect_out "67108864 50000 100000" cgfiles "$CU" memory.max cpu.max
	check "ExecSync: output" expect_out "hi 0" crij ExecSync "{\"container_id\": \"$CID\", \"cmd\": [\"echo\", \"hi\"], \"timeout\": 60}" '"\(.stdout | rtrimstr("\n")) \(.exit_code)"'
	check "ExecSync: exit status 3" expect_out 3 crij ExecSync "{\"container_id\": \"$CID\", \"cmd\": [\"sh\", \"-c\", \"exit 3\"], \"timeout\": 60}" .exit_code
	check "ExecSync: memory.max inside" expect_out 67108864 crij ExecSync "{\"container_id\": \"$CID\", \"cmd\": [\"cat\", \"/sys/fs/cgroup/memory.max\"], \"timeout\": 60}" '.stdout | rtrimstr("\n")'
	check "UpdateContainerResources (memory 128Mi, cpu 1)" cri_ok UpdateContainerResources "{\"container_id\": \"$CID\", \"linux\": {\"memory_limit_in_bytes\": 134217728, \"cpu_period\": 100000, \"cpu_quota\": 100000}}"
	check "unit updated" expect_out "CPUQuotaPerSecUSec=1s MemoryMax=134217728" props "$CU" MemoryMax CPUQuotaPerSecUSec
	check "cgroup files updated" expect_out "134217728 100000 100000" cgfiles "$CU" memory.max cpu.max
	check "StopContainer" cri_ok StopContainer "{\"container_id\": \"$CID\", \"timeout\": 0}"
	check "ContainerStatus: EXITED" expect_out CONTAINER_EXITED crij ContainerStatus "{\"container_id\": \"$CID\"}" .status.state
	check "stopped: no unit" no_units "$CU"
	check "RemoveContainer"  cri_ok RemoveContainer "{\"container_id\": \"$CID\"}"
	check "StopPodSandbox"   cri_ok StopPodSandbox "{\"pod_sandbox_id\": \"$POD\"}"
	check "RemovePodSandbox" cri_ok RemovePodSandbox "{\"pod_sandbox_id\": \"$POD\"}"
	check "no cri-containerd-* units left" no_units "'cri-containerd-*.scope'"
	check "no tasks left in k8s.io" expect_out "" $CTRD -n k8s.io task ls -q
	# kubelet removes the pod's slice once the pod is gone
	check "pod slice stops" systemctl stop "$POD_SLICE"
fi
if [ -n "$CPID" ]; then
	stop_containerd() { kill "$CPID" && wait "$CPID"; CPID=; }
	check "containerd stops" stop_containerd
fi

# --- c. Podman ------------------------------------------------------------------------------------
say "c. podman: cgroup_manager = \"systemd\""
if [ -n "$SKIP_PODMAN" ]; then
	skip "podman part" "$SKIP_PODMAN"
else
	mkdir -p "$W/podman"
	NOFILE=$(ulimit -Hn); [ "$NOFILE" = unlimited ] && NOFILE=1048576; [ "$NOFILE" -gt 65536 ] && NOFILE=65536
	cat >"$W/podman/containers.conf" <<-EOT
	[containers]
	default_ulimits = ["nofile=$NOFILE:$NOFILE"]
	netns = "none"
	[engine]
	cgroup_manager = "systemd"
	events_logger = "file"
	runtime_supports_json = ["gpurun", "crun", "runc"]
	EOT
	export CONTAINERS_CONF=$W/podman/containers.conf
	P="podman --root $W/podman/storage --runroot $W/podman/runroot --tmpdir $W/podman/tmp --runtime $RB --events-backend=file --storage-driver=overlay"
	# (no `podman info`: it spends a minute in the kernel under TCG)
	PODMAN_ID=
	podman_run() { PODMAN_ID=$($P run -d --name lim --memory 64m --rootfs "$R" sleep 300) && [ -n "$PODMAN_ID" ]; }
	check "run -d --memory 64m (containers.conf: cgroup_manager systemd)" podman_run
	U=libpod-$PODMAN_ID.scope
	UNITS+=("$U" "libpod-conmon-$PODMAN_ID.scope")
	echo "  unit $U"
	check "runtime create had --systemd-cgroup" got_systemd_flag "$PODMAN_ID"
	check "unit: active in machine.slice, MemoryMax" expect_out "ActiveState=active MemoryMax=67108864 Slice=machine.slice" \
		props "$U" ActiveState Slice MemoryMax
	check "cgroup file memory.max" expect_out 67108864 cgfiles "$U" memory.max
	check "inside: 0::/, memory.max" expect_out "0::/ 67108864" $P exec lim sh -c 'echo $(cat /proc/self/cgroup /sys/fs/cgroup/memory.max)'
	check "exec exit status 4"  expect_rc 4 $P exec lim sh -c 'exit 4'
	check "rm -f -t 0"          bash -c "$P rm -f -t 0 lim >/dev/null"
	check "no libpod-* units left" no_units "'libpod-*.scope'"
	check "no containers left"  expect_out "" $P ps -aq
fi

say "nothing left"
check "no mounts under $W"  wait_until 10 no_mounts_under "$W"
summary systemd-engines
