#!/bin/bash
# Prove gpurun's GPU path on a machine with a real NVIDIA GPU and driver (no Debian packages, no
# network needed). Input: the directory integration/gpu-real/prepare.sh made (gpurun + a
# busybox:glibc rootfs with cudacheck). Everything it creates lives under a private temp dir and a
# private --root, and is removed at the end; the only host change it may make is to add the driver's
# library directory to the host's ld cache when the driver was installed without it (printed).
# Usage: integration/gpu-real/prove.sh PREPARED_DIR [RUNS]
set -uo pipefail
P=$(cd "$1" && pwd)
RUNS=${2:-30}
G=$P/gpurun
T=$(mktemp -d /tmp/gpurun-gpu.XXXXXX)
R=$T/root
trap 'for c in $("$G" --root "$R" list -q 2>/dev/null); do "$G" --root "$R" delete --force "$c"; done; rm -rf "$T"; rmdir /sys/fs/cgroup/gpurun-prove /sys/fs/cgroup/*/gpurun-prove 2>/dev/null' EXIT
step() { printf '\n== %s\n' "$*"; }
fail=0
check() { if "$@"; then echo "PASS: $desc"; else echo "FAIL: $desc"; fail=1; fi; }

step machine
uname -r; grep PRETTY_NAME /etc/os-release
nvidia-smi -L
nvidia-smi --query-gpu=name,driver_version,pci.bus_id,memory.total,mig.mode.current --format=csv
ls -la /dev/nvidia* 2>&1; ls /dev/nvidia-caps 2>&1
stat -fc 'cgroup fs: %T' /sys/fs/cgroup; cat /proc/self/cgroup
# Containers' cgroups go under /gpurun-prove: the cgroup this script runs in may sit in a threaded
# subtree (a child of it could not hold processes).
own=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)
for d in "$own" "$(dirname "$own")"; do echo "$d: type $(cat "$d/cgroup.type" 2>&1), subtree_control '$(cat "$d/cgroup.subtree_control" 2>&1)'"; done
mkdir "$own/gpurun-probe" 2>/dev/null && echo "a new child of it: type $(cat "$own/gpurun-probe/cgroup.type")" && rmdir "$own/gpurun-probe"

step driver libraries in the host ld cache
if ! ldconfig -p | grep -q 'libnvidia-ml.so.1 '; then
	lib=$(find /usr /lib /lib64 /opt -name 'libnvidia-ml.so.1' 2>/dev/null | head -1)
	[ -n "$lib" ] || { echo "no libnvidia-ml.so.1 on this machine"; exit 1; }
	echo "$(dirname "$lib")" >/etc/ld.so.conf.d/zz-gpurun-prove.conf && ldconfig
	echo "NOTE: the driver's $(dirname "$lib") was not in the host ld cache; added it"
fi
ldconfig -p | grep -E 'libnvidia-ml.so.1 |libcuda.so.1 '
export GPURUN_CONFIG=$T/config.toml
printf '[nvidia]\ncdi-spec-dirs = ["%s/cdi"]\n' "$T" >"$GPURUN_CONFIG"

step gpurun cdi list
"$G" cdi list
step gpurun cdi generate '(head)'
mkdir -p "$T/cdi" && "$G" cdi generate --output "$T/cdi/nvidia.yaml" && head -40 "$T/cdi/nvidia.yaml"

# bundle NAME ENV_JSON ARGS_JSON [ANNOTATIONS_JSON]: a bundle over the shared rootfs (with
# CAP_MKNOD, so that a container can try to reach a GPU it was not given).
bundle() {
	mkdir -p "$T/$1" && (cd "$T/$1" && "$G" spec) || return 1
	python3 - "$T/$1/config.json" "$P/rootfs" "$2" "$3" "${4:-{\}}" <<-'PY'
		import json, sys
		path, rootfs, env, args, ann = sys.argv[1:]
		c = json.load(open(path))
		c["root"] = {"path": rootfs, "readonly": False}
		c["process"]["terminal"] = False
		c["process"]["args"] = json.loads(args)
		c["process"]["env"] += json.loads(env)
		c["annotations"] = json.loads(ann)
		c["linux"]["cgroupsPath"] = "/gpurun-prove/" + path.split("/")[-2]
		caps = c["process"]["capabilities"]
		caps.update({k: v + ["CAP_MKNOD"] for k, v in caps.items()})
		json.dump(c, open(path, "w"))
	PY
}
run() { local b=$1; shift; "$G" --root "$R" run --bundle "$T/$b" "$b-$RANDOM" "$@"; }

step 'NVIDIA_VISIBLE_DEVICES=all: the driver'"'"'s nvidia-smi -L inside a busybox container'
bundle smi '["NVIDIA_VISIBLE_DEVICES=all"]' '["nvidia-smi","-L"]'
out=$(run smi 2>&1); echo "$out"
desc="nvidia-smi -L in the container lists the host's GPU"; check grep -q "$(nvidia-smi -L | head -1)" <<<"$out"

step 'CUDA driver API in the container (libcuda found through the container ld cache)'
bundle cuda '["NVIDIA_VISIBLE_DEVICES=all"]' '["cudacheck"]'
out=$(run cuda 2>&1); echo "$out"
desc="cuInit + 64 MiB device round trip in the container"; check grep -q 'round trip ok' <<<"$out"

step 'NVIDIA_VISIBLE_DEVICES=0: device nodes, read-only driver mounts, ld cache'
bundle look '["NVIDIA_VISIBLE_DEVICES=0","NVIDIA_DRIVER_CAPABILITIES=compute,utility"]' \
	'["sh","-c","ls -la /dev/nvidia*; grep -E \"nvidia|cuda\" /proc/self/mountinfo | head -8; ldconfig -p 2>/dev/null | grep libcuda || echo no-ldconfig; touch /usr/bin/nvidia-smi 2>&1; head -c 1 /dev/nvidia0 >/dev/null 2>&1; echo open-nvidia0=$?; grep ModifyDeviceFiles /proc/driver/nvidia/params; grep \" /proc/driver/nvidia \" /proc/self/mountinfo"]'
out=$(run look 2>&1); echo "$out"
desc="the mounted nvidia-smi is read-only"; check grep -q 'Read-only file system' <<<"$out"
desc="/proc/driver/nvidia is a tmpfs whose params say ModifyDeviceFiles: 0"; check grep -q 'ModifyDeviceFiles: 0' <<<"$out"

step 'no GPU requested: a mknod of /dev/nvidia0 cannot be opened (device cgroup)'
bundle nogpu '[]' '["sh","-c","rm -f /tmp/n0; mknod /tmp/n0 c 195 0 && cat /tmp/n0 >/dev/null; echo rc=$?"]'
out=$(run nogpu 2>&1); echo "$out"
desc="device rules deny a GPU that was not requested"; check grep -q 'Operation not permitted' <<<"$out"

step 'default cgroup placement (no cgroupsPath: under our own cgroup, which holds processes)'
bundle dflt '["NVIDIA_VISIBLE_DEVICES=all"]' '["echo","placed"]'
python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); del c["linux"]["cgroupsPath"]; json.dump(c,open(sys.argv[1],"w"))' "$T/dflt/config.json"
out=$(run dflt 2>&1); echo "$out"
desc="a container in a child of a populated cgroup"; check grep -qx placed <<<"$out"

step 'the procfs fast path and NVML select the same devices'
printf '[nvidia]\nprocfs = ""\ncdi-spec-dirs = ["%s/cdi"]\n' "$T" >"$T/nvml.toml"
uuid=$(nvidia-smi --query-gpu=uuid --format=csv,noheader | head -1)
bus=$(nvidia-smi --query-gpu=pci.bus_id --format=csv,noheader | head -1)
for sel in all 0 "$uuid" "$bus" none; do
	bundle sel '["NVIDIA_VISIBLE_DEVICES='"$sel"'"]' '["sh","-c","ls /dev | grep ^nvidia | tr \"\\n\" \" \""]'
	a=$(run sel 2>&1) b=$(GPURUN_CONFIG=$T/nvml.toml run sel 2>&1)
	echo "$sel: procfs [$a] nvml [$b]"
	desc="same devices for $sel"; check test "$a" = "$b"
	rm -rf "$T/sel"
done

step 'bad selection and unmet requirement fail clearly and leave nothing'
bundle bad '["NVIDIA_VISIBLE_DEVICES=7"]' '["true"]'
out=$(run bad 2>&1); echo "rc=$? $out"
desc="NVIDIA_VISIBLE_DEVICES=7 is refused"; check grep -qi 'gpu' <<<"$out"
bundle req '["NVIDIA_VISIBLE_DEVICES=all","NVIDIA_REQUIRE_CUDA=cuda>=99.0"]' '["true"]'
out=$(run req 2>&1); echo "rc=$? $out"
desc="cuda>=99.0 is refused naming the constraint"; check grep -q 'cuda>=99.0' <<<"$out"
desc="nothing left in the state dir"; check test -z "$("$G" --root "$R" list -q)"

step 'CDI: annotation cdi.k8s.io/gpu=nvidia.com/gpu=all (spec from gpurun cdi generate)'
bundle cdirun '[]' '["nvidia-smi","-L"]' '{"cdi.k8s.io/gpu":"nvidia.com/gpu=all"}'
out=$(run cdirun 2>&1); echo "$out"
desc="nvidia-smi -L through CDI"; check grep -q 'GPU 0' <<<"$out"

step 'where the time goes'
cat /proc/driver/nvidia/version 2>&1 | head -1; cat /proc/driver/nvidia/gpus/*/information 2>&1 | head -12
ms() { echo $(( ($2 - $1) / 1000 )); }
# usec COMMAND...: median wall time of 15 runs, in ms
usec() {
	for ((i = 0; i < 15; i++)); do
		t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000 ))
	done | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[8]/1000}'
}
echo "gpurun --version (process start): $(usec "$G" --version) ms"
echo "gpurun cdi list (NVML init, enumerate, shutdown): $(usec "$G" cdi list) ms"
echo "nvidia-smi -L: $(usec nvidia-smi -L) ms"

step "create-time overhead: create, and create→start→wait→delete, plain vs GPU ($RUNS runs each, interleaved)"
bundle plain '[]' '["true"]'
bundle gpu '["NVIDIA_VISIBLE_DEVICES=all"]' '["true"]'
bundle gpuutil '["NVIDIA_VISIBLE_DEVICES=all","NVIDIA_DRIVER_CAPABILITIES=utility"]' '["true"]'
sed 's/^\[nvidia\]/[nvidia]\nldconfig = "builtin"/' "$GPURUN_CONFIG" >"$T/builtin.toml"
variants="plain gpu gpu-builtin gpu-nvml gpuutil"
for ((i = 0; i < RUNS; i++)); do
	for v in $variants; do
		b=${v%-*} id=$v-t$i cfg=$GPURUN_CONFIG
		[ "$v" = gpu-builtin ] && cfg=$T/builtin.toml
		[ "$v" = gpu-nvml ] && cfg=$T/nvml.toml
		t0=$(date +%s%N)
		GPURUN_CONFIG=$cfg "$G" --root "$R" create --bundle "$T/$b" --pid-file "$T/pid" "$id" || { echo "create $v failed"; fail=1; break 2; }
		t1=$(date +%s%N)
		"$G" --root "$R" start "$id"; pid=$(cat "$T/pid")
		while [ -e /proc/$pid ] && ! grep -q ') Z ' /proc/$pid/stat 2>/dev/null; do :; done
		"$G" --root "$R" delete "$id"
		t2=$(date +%s%N)
		echo "$(ms $t0 $t1) $(ms $t0 $t2)" >>"$T/$v.times"
	done
done
med() { sort -n -k"$2" "$T/$1.times" | awk -v k="$2" '{a[NR]=$k} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m/1000}'; }
echo "| | create (ms) | create→start→wait→delete (ms) |"
echo "| --- | --- | --- |"
for v in $variants; do echo "| $v | $(med $v 1) | $(med $v 2) |"; done
for v in gpu gpu-builtin gpu-nvml gpuutil; do
	echo "$v adds $(awk -v g="$(med $v 1)" -v p="$(med plain 1)" 'BEGIN{printf "%.2f", g-p}') ms to create (median)"
done
step result
[ $fail = 0 ] && echo "ALL PASSED" || echo "SOME CHECKS FAILED"
exit $fail
