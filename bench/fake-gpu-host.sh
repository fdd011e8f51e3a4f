#!/bin/sh
# Build a fake NVIDIA host under DIR for GPU benchmarks and demos without a GPU (the shell
# twin of integration/src/gpu.rs): 2×H100 described for the mock NVML, a driver root with
# tiny real shared objects and its own ld.so.cache, an nvidia-smi stand-in, a dev root with
# mknod'ed nodes, a driver procfs, and DIR/config.toml. Then: GPURUN_CONFIG=DIR/config.toml
# MOCK_NVML_CONFIG=DIR/machine.json gpurun … (a container with NVIDIA_VISIBLE_DEVICES=all).
# Usage: bench/fake-gpu-host.sh DIR [MOCK_NVML_SO]   (needs root for mknod, and cc)
set -eu
DIR=$1
REPO=$(cd "$(dirname "$0")/.." && pwd)
NVML=${2:-$REPO/target/release/libmock_nvml.so}
V=550.54.15
LIB=$DIR/driver/usr/lib/x86_64-linux-gnu
[ -f "$NVML" ] || { echo "$NVML missing: cargo build --release -p mock-nvml" >&2; exit 1; }
mkdir -p "$LIB" "$DIR/driver/usr/bin" "$DIR/driver/etc" "$DIR/devroot/dev"
echo 'int nvidia_stand_in;' >"$DIR/empty.c"
for l in libcuda.so.1 libnvidia-ml.so.1 libnvidia-ptxjitcompiler.so.1; do
	cc -shared -fPIC -nostdlib -Wl,-soname,$l -o "$LIB/${l%.1}.$V" "$DIR/empty.c"
done
echo /usr/lib/x86_64-linux-gnu >"$DIR/driver/etc/ld.so.conf"
ldconfig -r "$DIR/driver"
cat >"$DIR/driver/usr/bin/nvidia-smi" <<'SMI'
#!/bin/sh
for d in /dev/nvidia[0-9]*; do [ -c "$d" ] && echo "GPU ${d#/dev/nvidia}: stand-in ($d)"; done; exit 0
SMI
chmod 755 "$DIR/driver/usr/bin/nvidia-smi"
for n in nvidiactl:255 nvidia0:0 nvidia1:1; do
	[ -e "$DIR/devroot/dev/${n%:*}" ] || mknod -m 666 "$DIR/devroot/dev/${n%:*}" c 195 "${n#*:}"
done
[ -e "$DIR/devroot/dev/nvidia-uvm" ] || mknod -m 666 "$DIR/devroot/dev/nvidia-uvm" c 509 0
gpu() {
	printf '{"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-%s-1111-2222-3333-444444444444", "minor": %s,' "$1$1$1$1$1$1$1$1" "$1"
	printf ' "pci_bus_id": "00000000:1%s:00.0", "memory_total": 85520809984, "compute_capability": [9, 0], "brand": 14}' "$1"
}
echo "{\"driver_version\": \"$V\", \"cuda_version\": 12040, \"devices\": [$(gpu 0), $(gpu 1)]}" >"$DIR/machine.json"
# The kernel driver's procfs, which a real host always has with the driver loaded: gpurun reads
# whole GPUs there at create and leaves NVML for MIG and requirement checks.
mkdir -p "$DIR/proc-driver/nvidia/gpus"
echo "NVRM version: NVIDIA UNIX x86_64 Kernel Module  $V  Release Build" >"$DIR/proc-driver/nvidia/version"
for i in 0 1; do
	d=$DIR/proc-driver/nvidia/gpus/0000:1$i:00.0
	mkdir -p "$d"
	printf 'Model: \t\t NVIDIA H100 80GB HBM3\nGPU UUID: \t GPU-%s-1111-2222-3333-444444444444\nBus Location: \t 0000:1%s:00.0\nDevice Minor: \t %s\nGPU Excluded:\t No\n' \
		"$i$i$i$i$i$i$i$i" "$i" "$i" >"$d/information"
done
cat >"$DIR/config.toml" <<TOML
[nvidia]
driver-root = "$DIR/driver"
dev-root = "$DIR/devroot"
nvml-library = "$NVML"
cdi-spec-dirs = ["$DIR/cdi"]
procfs = "$DIR/proc-driver/nvidia"
TOML
