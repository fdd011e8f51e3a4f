#!/bin/bash
# qemu-kernel.sh DIR: make DIR ready for vmrun-qemu: Debian's current linux-image-amd64
# (fetched with apt-get download, unpacked, never installed), its kernel as an uncompressed
# ELF, and a small initramfs (busybox + qemu-init + the modules needed to reach the root).
# Does nothing when DIR is already complete. Needs apt-get, dpkg-deb,
# depmod (kmod), cpio, python3, busybox (busybox-static).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
D=${1:?usage: qemu-kernel.sh DIR}
mkdir -p "$D" && D=$(cd "$D" && pwd)
[ -s "$D/vmlinux" ] && [ -s "$D/initramfs.gz" ] && [ "$D/initramfs.gz" -nt "$HERE/qemu-init" ] &&
	[ "$D/initramfs.gz" -nt "$HERE/qemu-kernel.sh" ] && exit 0
cd "$D"
kernel_pkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }'; }
pkg=$(kernel_pkg)
if [ -z "$pkg" ] || { ! ls "$pkg"_*.deb >/dev/null 2>&1 && ! apt-get download "$pkg" >/dev/null 2>&1; }; then
	# No package lists yet, or stale ones naming a kernel the mirror has dropped.
	apt-get update -q >/dev/null
	pkg=$(kernel_pkg)
	[ -n "$pkg" ] || { echo "qemu-kernel: apt knows no linux-image-amd64" >&2; exit 1; }
	apt-get download "$pkg" >/dev/null
fi
rm -rf root && dpkg-deb -x "$pkg"_*.deb root
kver=$(ls root/lib/modules)
depmod -b "$D/root" "$kver" # for modprobe in the guest (overlay, veth, ...)
# QEMU boots an ELF vmlinux through its PVH entry directly; the bzImage's own xz
# decompressor would cost seconds under TCG.
python3 - "root/boot/vmlinuz-$kver" vmlinux <<'PY'
import lzma, sys
data = open(sys.argv[1], "rb").read()
start = data.find(b"\xfd7zXZ\x00")
if start < 0:
    sys.exit("qemu-kernel: no xz payload in " + sys.argv[1])
open(sys.argv[2], "wb").write(lzma.LZMADecompressor().decompress(data[start:]))
PY
rm -rf initramfs && mkdir -p initramfs/bin initramfs/mods
cp "$(command -v busybox)" initramfs/bin/busybox
cp "$HERE/qemu-init" initramfs/init && chmod 755 initramfs/init
# Loaded in this order by qemu-init: 9p over virtio-pci for the host's /, overlay for the
# writable layer on top. autofs4 only with VMRUN_SYSTEMD=1: systemd loads it otherwise, and says so
# on the console before it has read its log level.
mods="netfs fscache 9pnet 9p virtio_ring virtio 9pnet_virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci overlay"
for m in $mods autofs4; do
	f=$(find "root/lib/modules/$kver" -name "$m.ko*" | head -n1)
	[ -n "$f" ] || { echo "qemu-kernel: module $m missing from $pkg" >&2; exit 1; }
	case $f in
	*.xz) xz -dc "$f" >"initramfs/mods/$m.ko" ;;
	*) cp "$f" "initramfs/mods/$m.ko" ;;
	esac
done
echo "$mods" >initramfs/mods/order
echo "$kver" >initramfs/kver
(cd initramfs && find . | cpio -o -H newc --quiet | gzip -1) >initramfs.gz.new
mv initramfs.gz.new initramfs.gz
echo "qemu-kernel: $pkg ready in $D"
