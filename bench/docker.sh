#!/usr/bin/env bash
# Docker end to end: `docker run --rm --network none IMAGE true` (client → dockerd → containerd →
# containerd-shim-runc-v2 → the runtime's create/start/delete) with gpurun, crun and runc as the
# runtime. One private Docker 20.10 daemon (own data/exec root, socket, managed containerd,
# cgroupfs driver, no bridge, no iptables) with the three registered by --add-runtime, `--runtime
# NAME` per run; interleaved hyperfine rounds. On a hybrid host every runtime is registered as
# the same unshare wrapper bench/run.sh uses (crun refuses hybrid cgroups), so the three pay
# the same extra cost.
# Usage: bench/docker.sh [GPURUN_BIN]   Env: BENCH_DOCKER_RUNS (default 20), BENCH_ROUNDS (default 5).
# Prints one markdown table row; bench/run.sh appends it to bench/results.md.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
GPURUN=$(readlink -f "${1:-$REPO/target/release/gpurun}")
RUNS=${BENCH_DOCKER_RUNS:-20}
ROUNDS=${BENCH_ROUNDS:-5}
DOCKERD=/usr/sbin/dockerd
DOCKER=/usr/bin/docker           # not /usr/local/bin/docker (another client)
log() { printf '\033[1m[bench-docker]\033[0m %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { log "needs root"; exit 1; }
missing=()
for p in docker.io runc crun hyperfine jq busybox-static; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing: ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 || { log "apt-get install failed"; exit 1; }
fi
TMP=$(mktemp -d /tmp/gpurun-dockerbench.XXXXXX)
S=$TMP/docker.sock
D="$DOCKER -H unix://$S"
CGP=/gpurun-dbench-$$
DPID=
HOST_DIRS=(/run/docker/plugins /run/docker /run/containerd/s /run/containerd /opt/containerd/bin /opt/containerd/lib /opt/containerd)
HOST_CREATED=()
for d in "${HOST_DIRS[@]}"; do [ -e "$d" ] || HOST_CREATED+=("$d"); done
CG_MOUNTS=$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i+1) == "cgroup" || $(i+1) == "cgroup2") print $5; break } }' /proc/self/mountinfo | sort -u)

cleanup() {
	set +e
	if [ -n "$DPID" ]; then
		ids=$($D ps -aq 2>/dev/null); [ -n "$ids" ] && $D rm -f $ids >/dev/null 2>&1
		kill "$DPID"; wait "$DPID" 2>/dev/null
	fi
	for p in $(pgrep -f "containerd-shim-runc-v2 -namespace moby -id [0-9a-f]+ -address $TMP/"); do kill -9 "$p"; done
	grep " $TMP" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m"; done
	for m in $CG_MOUNTS; do [ -d "$m$CGP" ] && find "$m$CGP" -depth -type d -exec rmdir {} \; 2>/dev/null; done
	for d in "${HOST_CREATED[@]}"; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The runtimes, each behind a wrapper script (the unshare trick of bench/run.sh on hybrid hosts).
declare -A BIN=([gpurun]=$GPURUN [crun]=$(command -v crun) [runc]=$(command -v runc))
RTS=(gpurun crun runc)
HYBRID=; grep -q ' /sys/fs/cgroup/unified .* - cgroup2 ' /proc/self/mountinfo && HYBRID=1
mkdir -p "$TMP/bin"
ARGS=()
for rt in "${RTS[@]}"; do
	if [ -n "$HYBRID" ]; then
		printf '#!/bin/sh\nexec unshare -m --propagation private sh -c %s -- %s "$@"\n' \
			"'umount /sys/fs/cgroup/unified && mount -t tmpfs -o size=1m gbench /sys/fs/cgroup/unified && exec \"\$@\"'" \
			"${BIN[$rt]}" >"$TMP/bin/$rt"
	else
		printf '#!/bin/sh\nexec %s "$@"\n' "${BIN[$rt]}" >"$TMP/bin/$rt"
	fi
	chmod +x "$TMP/bin/$rt"
	ARGS+=(--add-runtime "b-$rt=$TMP/bin/$rt")   # "runc" itself is a reserved name
done
echo "{\"deprecated-key-path\": \"$TMP/key.json\"}" >"$TMP/daemon.json"
$DOCKERD --config-file "$TMP/daemon.json" --data-root "$TMP/data" --exec-root "$TMP/exec" \
	-H "unix://$S" --pidfile "$TMP/dockerd.pid" --storage-driver overlay2 \
	--exec-opt native.cgroupdriver=cgroupfs --cgroup-parent "$CGP" "${ARGS[@]}" \
	--iptables=false --ip6tables=false --ip-masq=false --ip-forward=false --bridge none \
	>"$TMP/dockerd.log" 2>&1 &
DPID=$!
for i in $(seq 150); do $D version >/dev/null 2>&1 && break; sleep 0.2; done
$D version >/dev/null 2>&1 || { log "dockerd did not start: $(tail -3 "$TMP/dockerd.log")"; exit 1; }
"$REPO/bundles/build.sh" "$TMP/bundle" >/dev/null
tar -C "$TMP/bundle/rootfs" -c . | $D import - gpr-bench >/dev/null
OK=()
for rt in "${RTS[@]}"; do
	if $D run --rm --network none --runtime "b-$rt" gpr-bench true >/dev/null 2>"$TMP/err"; then OK+=("$rt")
	else log "$rt cannot run through docker: $(head -n1 "$TMP/err")"; fi
done
[ ${#OK[@]} -gt 0 ] || exit 1

per=$(((RUNS + ROUNDS - 1) / ROUNDS))
for ((r = 1; r <= ROUNDS; r++)); do
	warm=1; [ "$r" = 1 ] && warm=3
	cmds=(); for rt in "${OK[@]}"; do cmds+=(-n "$rt" "$D run --rm --network none --runtime b-$rt gpr-bench true"); done
	log "round $r/$ROUNDS ($per runs each: ${OK[*]})"
	hyperfine -N --style none --warmup "$warm" --runs "$per" --export-json "$TMP/round$r.json" "${cmds[@]}" >/dev/null
done
median() {
	jq -rs --arg c "$1" '[.[].results[] | select(.command == $c) | .times[]] | sort
		| if length == 0 then empty elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end
		| . * 1000' "$TMP"/round*.json
}
cell() { local v; v=$(median "$1"); [ -n "$v" ] && awk -v x="$v" 'BEGIN { printf "%.0f", x }' || echo "n/a"; }
g=$(cell gpurun) c=$(cell crun) r=$(cell runc)
ratio=$(awk -v a="$g" -v b="$c" 'BEGIN { n = "^[0-9.]+$"; if (a !~ n || b !~ n || b + 0 <= 0) print "–"; else printf "%.2f×", a / b }')
ver=$($D version -f '{{.Server.Version}}')
echo "| (h) docker run --rm IMAGE true, end to end (ms) | $g | $c | $r | $ratio | Docker $ver, one dockerd, --runtime per run, --network none, $((per * ROUNDS)) runs each in $ROUNDS interleaved rounds; client + dockerd + containerd + shim + $([ -n "$HYBRID" ] && echo "the unshare wrapper" || echo "the runtime"), nothing subtracted |"
