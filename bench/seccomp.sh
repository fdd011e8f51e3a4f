#!/usr/bin/env bash
# seccomp cost: compile + load time of the default profile (434 syscall names), and
# `run /bin/true` with and without it (hyperfine). Usage: bench/seccomp.sh [GPURUN_BIN]
# Env: BENCH_RUNS (default 50). Root needed for the `run` part.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
GPURUN=$(readlink -f "${1:-$REPO/target/release/gpurun}")
RUNS=${BENCH_RUNS:-50}
PROFILE=$REPO/bundles/seccomp/default.json

cargo build --release --example seccomp_timing --manifest-path "$REPO/Cargo.toml" >&2
"$REPO/target/release/examples/seccomp_timing" "$PROFILE" 1000

[ "$(id -u)" = 0 ] || { echo "run part skipped: needs root"; exit 0; }
command -v hyperfine >/dev/null || { echo "run part skipped: hyperfine not installed"; exit 0; }
[ -x "$REPO/bundles/busybox/rootfs/bin/sh" ] || sh "$REPO/bundles/build.sh" "$REPO/bundles/busybox" >&2
TMP=$(mktemp -d /tmp/gpurun-bench-seccomp.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
for v in plain seccomp; do
	mkdir -p "$TMP/$v"
	cp -a "$REPO/bundles/busybox/rootfs" "$TMP/$v/"
	jq --slurpfile p "$PROFILE" --arg v "$v" \
		'.process.args = ["/bin/true"] | if $v == "seccomp" then .linux.seccomp = $p[0] else . end' \
		"$REPO/bundles/configs/hello.json" > "$TMP/$v/config.json"
done
hyperfine -N --warmup 5 --runs "$RUNS" \
	-n "run (no seccomp)" "$GPURUN --root $TMP/root run --bundle $TMP/plain bs-plain" \
	-n "run (default profile)" "$GPURUN --root $TMP/root run --bundle $TMP/seccomp bs-seccomp"
