#!/bin/sh
# Assemble what integration/gpu-real/prove.sh needs on a GPU machine that has no Debian packages:
# OUT/gpurun and its NVML helper OUT/gpurun-nvml (`make build`), OUT/rootfs = the busybox rootfs plus this machine's glibc (the
# "busybox:glibc" flavour: the driver's nvidia-smi and libcuda are glibc programs) and cudacheck.
# Usage: integration/gpu-real/prepare.sh OUT_DIR
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=$1
mkdir -p "$OUT"
make -C "$REPO" build >&2
cp "$REPO/target/release/gpurun" "$REPO/target/release/gpurun-nvml" "$OUT/"
"$REPO/bundles/build.sh" "$OUT/bb" >/dev/null
rm -rf "$OUT/rootfs" && mv "$OUT/bb/rootfs" "$OUT/rootfs" && rm -rf "$OUT/bb"
cc -O2 -o "$OUT/rootfs/bin/cudacheck" "$HERE/cudacheck.c" -ldl
# The loader and the glibc libraries a driver binary links against (nvidia-smi: libc, libm, libdl,
# libpthread, librt; libcuda: the same plus libgcc_s).
for lib in /lib64/ld-linux-x86-64.so.2 /lib/x86_64-linux-gnu/libc.so.6 /lib/x86_64-linux-gnu/libm.so.6 \
	/lib/x86_64-linux-gnu/libdl.so.2 /lib/x86_64-linux-gnu/libpthread.so.0 \
	/lib/x86_64-linux-gnu/librt.so.1 /lib/x86_64-linux-gnu/libgcc_s.so.1; do
	mkdir -p "$OUT/rootfs$(dirname "$lib")"
	cp -L "$lib" "$OUT/rootfs$lib"
done
ln -sfn lib "$OUT/rootfs/usr/lib" 2>/dev/null || { mkdir -p "$OUT/rootfs/usr" && ln -sfn ../lib "$OUT/rootfs/usr/lib"; }
echo "$OUT"
