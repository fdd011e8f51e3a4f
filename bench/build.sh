#!/bin/bash
# gpurun-build: cold build and no-change rebuild of a 5-step Dockerfile (hyperfine), with the
# bundle output and with the OCI layout output; then the AI-service rows against buildah
# (bench/build/ai.sh). Writes bench/build-results.md. BENCH_LABEL: a title suffix (which engine).
# Usage (root): bench/build.sh [target/release/gpurun-build] [target/release/gpurun]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=$(realpath "${1:-$HERE/../target/release/gpurun-build}")
RUNTIME=$(realpath "${2:-$HERE/../target/release/gpurun}")
command -v hyperfine >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q hyperfine >/dev/null
W=$(mktemp -d /tmp/gpurun-build-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
START=$(date +%s)
"$HERE/../bundles/build.sh" "$W/bb" >/dev/null
mkdir -p "$W/ctx"
cat > "$W/ctx/Dockerfile" <<EOF
FROM dir:$W/bb/rootfs
COPY app.py requirements.txt /srv/app/
RUN echo "fastapi==0.110.0" > /srv/app/installed.txt && mkdir -p /var/tmp/wheels && rm -rf /var/tmp/wheels
RUN echo "app:x:1000:1000::/srv/app:/bin/sh" >> /etc/passwd && chown -R 1000 /srv/app
CMD ["sh", "-c", "cat /srv/app/installed.txt"]
EOF
echo 'print("serving")' > "$W/ctx/app.py"
echo 'fastapi==0.110.0' > "$W/ctx/requirements.txt"
B="$BUILD --runtime $RUNTIME --cache-dir $W/cache"
$B --bundle "$W/out" "$W/ctx" >/dev/null   # warm the page cache and check it builds
hyperfine -N --warmup 1 --runs 10 --export-markdown "$W/cold.md" \
	--prepare "rm -rf $W/cache $W/out $W/layout" \
	-n "cold build → bundle" "$B --bundle $W/out $W/ctx" \
	-n "cold build → OCI layout" "$B --oci-layout $W/layout $W/ctx"
$B --bundle "$W/out" --oci-layout "$W/layout" "$W/ctx" >/dev/null
hyperfine -N --warmup 3 --runs 30 --export-markdown "$W/warm.md" \
	-n "no-change rebuild → bundle" "$B --bundle $W/out $W/ctx" \
	-n "no-change rebuild → OCI layout" "$B --oci-layout $W/layout $W/ctx"
"$HERE/build/ai.sh" "$BUILD" "$RUNTIME" "$W/ai" > "$W/ai.md"
{
	echo "# gpurun-build benchmark${BENCH_LABEL:+: $BENCH_LABEL}"
	echo
	echo "$(nproc) CPUs, $(uname -r), $(date -u +%F); gpurun-build $(sha256sum "$BUILD" | cut -c1-12)"
	echo "(sha256), \`bench/build.sh\` took $(($(date +%s) - START)) s; load average at the end"
	echo "$(cut -d' ' -f1-3 /proc/loadavg) (other jobs on the machine make the rows noisy)."
	echo
	echo "## 5-step Dockerfile (FROM dir:, COPY, RUN, RUN, CMD), busybox base"
	echo
	echo "Cold = empty cache; rebuild = every step cached."
	echo
	cat "$W/cold.md"
	echo
	cat "$W/warm.md"
	echo
	cat "$W/ai.md"
} > "$HERE/build-results.md"
cat "$HERE/build-results.md"
