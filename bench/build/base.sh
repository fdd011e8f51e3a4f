#!/bin/bash
# Makes (once, cached under $CACHE) what the AI Dockerfile rows build on, offline afterwards:
#  $CACHE/debian       debootstrap minbase of the host's suite with python3, venv and pip
#  $CACHE/debian-oci   that rootfs as a one-layer OCI image layout, tag "base", made by buildah
#                      so that both tools read the same layer with `FROM oci:DIR:base`
#  $CACHE/wheels       the wheels of requirements.txt for the image's Python (pip stays offline
#                      in the timed builds: --no-index --find-links)
# Needs the Debian mirror and PyPI on the first run only. Usage: base.sh (prints $CACHE)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${GPURUN_BUILD_BENCH_CACHE:-/var/tmp/gpurun-build-bench}
mkdir -p "$CACHE"
suite=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
suite=${suite:-bookworm}

if [ ! -e "$CACHE/debian/etc/debian_version" ]; then
	command -v debootstrap >/dev/null ||
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
	rm -rf "$CACHE/debian.tmp"
	echo "base.sh: debootstrap $suite (once) ..." >&2
	debootstrap --variant=minbase --include=python3,python3-venv,python3-pip \
		"$suite" "$CACHE/debian.tmp" http://deb.debian.org/debian >&2
	mv "$CACHE/debian.tmp" "$CACHE/debian"
fi

if [ ! -e "$CACHE/wheels/.done" ] ||
	! cmp -s "$HERE/requirements.txt" "$CACHE/wheels/requirements.txt"; then
	# the image's interpreter decides the wheel tags, not the host's
	py=$(basename "$(ls -d "$CACHE"/debian/usr/lib/python3.[0-9]* | head -1)")
	ver=${py#python}
	rm -rf "$CACHE/wheels"
	echo "base.sh: pip download for $py (once) ..." >&2
	if command -v pip3 >/dev/null; then
		pip3 download -q --only-binary=:all: --python-version "$ver" --implementation cp \
			--abi "cp${ver/./}" --platform manylinux2014_x86_64 --platform "linux_$(uname -m)" \
			-d "$CACHE/wheels" -r "$HERE/requirements.txt" >&2
	else
		echo "base.sh: pip3 not found on the host (needed once for the wheels)" >&2
		exit 1
	fi
	cp "$HERE/requirements.txt" "$CACHE/wheels/requirements.txt"
	touch "$CACHE/wheels/.done"
fi

if [ ! -e "$CACHE/debian-oci/index.json" ]; then
	echo "base.sh: OCI layout of the rootfs (once) ..." >&2
	T=$(mktemp -d "$CACHE/mk.XXXXXX")
	bh() { buildah --root "$T/root" --runroot "$T/run" --storage-driver vfs "$@"; }
	cleanup() {
		bh rm -a >/dev/null 2>&1 || true
		bh rmi -a -f >/dev/null 2>&1 || true
		rm -rf "$T"
	}
	trap cleanup EXIT
	# like the debian:SUITE image: no downloaded .debs, no package lists
	tar -C "$CACHE/debian" --numeric-owner --xattrs --exclude='./var/cache/apt/archives/*.deb' \
		--exclude='./var/lib/apt/lists/*' -cf "$T/rootfs.tar" .
	c=$(bh from scratch)
	# ADD of a local tar extracts it with its owners and modes (COPY of a directory would not)
	bh add "$c" "$T/rootfs.tar" / >/dev/null
	bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--cmd '["python3"]' "$c"
	bh commit -q "$c" "bench-base:$suite" >/dev/null
	rm -rf "$CACHE/debian-oci.tmp"
	bh push -q "bench-base:$suite" "oci:$CACHE/debian-oci.tmp:base" >/dev/null
	mv "$CACHE/debian-oci.tmp" "$CACHE/debian-oci"
fi
echo "$CACHE"
