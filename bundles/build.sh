#!/bin/sh
# Build a minimal busybox OCI bundle: OUT_DIR/rootfs + OUT_DIR/config.json.
# Usage: bundles/build.sh [OUT_DIR]   (default: bundles/busybox). Idempotent.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-"$HERE/busybox"}
ROOTFS="$OUT/rootfs"

if [ ! -x /bin/busybox ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "build.sh: /bin/busybox missing; run as root or install busybox-static" >&2
		exit 1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y busybox-static >&2
fi

mkdir -p "$ROOTFS/bin"
for d in proc sys dev tmp etc root; do
	mkdir -p "$ROOTFS/$d"
done
chmod 1777 "$ROOTFS/tmp"
chmod 700 "$ROOTFS/root"

# Copy via a temp name so a concurrent reader never sees a half-written binary.
if ! cmp -s /bin/busybox "$ROOTFS/bin/busybox"; then
	cp /bin/busybox "$ROOTFS/bin/busybox.tmp.$$"
	mv -f "$ROOTFS/bin/busybox.tmp.$$" "$ROOTFS/bin/busybox"
fi

for applet in $(/bin/busybox --list); do
	[ "$applet" = busybox ] && continue
	[ -e "$ROOTFS/bin/$applet" ] || [ -L "$ROOTFS/bin/$applet" ] || ln -s busybox "$ROOTFS/bin/$applet"
done

cat > "$ROOTFS/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$ROOTFS/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP

[ -e "$OUT/config.json" ] || cp "$HERE/configs/hello.json" "$OUT/config.json"

echo "bundle ready: $OUT"
