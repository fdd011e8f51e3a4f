#!/usr/bin/env bash
# What the GPU path costs: create→start→wait→delete of the same /bin/true container, plain vs
# NVIDIA_VISIBLE_DEVICES=all (2 GPUs, compute+utility, ld cache) on a fake driver
# (bench/fake-gpu-host.sh: its procfs, the mock NVML), interleaved hyperfine rounds, gpurun only.
# A third command does the GPU container with ldconfig = "builtin" (no ldconfig process).
# Then `events --stats` of a running plain container vs a running GPU container (2 GPUs, the
# mock NVML reporting two of its processes and one other): what the gpurun-nvml query costs.
# Usage: bench/gpu.sh [GPURUN_BIN]   Env: BENCH_RUNS (default 50), BENCH_ROUNDS (default 5).
# Prints two markdown table rows; bench/run.sh appends them to bench/results.md.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
GPURUN=$(readlink -f "${1:-$REPO/target/release/gpurun}")
RUNS=${BENCH_RUNS:-50}
ROUNDS=${BENCH_ROUNDS:-5}
TMP=$(mktemp -d /tmp/gpurun-gpubench.XXXXXX)
trap 'for d in "$TMP"/root/*/; do [ -d "$d" ] && "$GPURUN" --root "$TMP/root" delete --force "$(basename "$d")" >/dev/null 2>&1; done; rm -rf "$TMP"' EXIT
log() { printf '\033[1m[bench-gpu]\033[0m %s\n' "$*" >&2; }

"$HERE/fake-gpu-host.sh" "$TMP/host"
export GPURUN_CONFIG=$TMP/host/config.toml MOCK_NVML_CONFIG=$TMP/host/machine.json
"$REPO/bundles/build.sh" "$TMP/plain" >/dev/null
jq '.process.args = ["/bin/true"] | .process.terminal = false | del(.linux.cgroupsPath)' \
	"$REPO/bundles/configs/hello.json" >"$TMP/plain/config.json"
mkdir -p "$TMP/gpu" "$TMP/root" "$TMP/pid" && cp -a "$TMP/plain/rootfs" "$TMP/gpu/"
jq '.process.env += ["NVIDIA_VISIBLE_DEVICES=all"]' "$TMP/plain/config.json" >"$TMP/gpu/config.json"
"$GPURUN" --root "$TMP/root" run --bundle "$TMP/gpu" gpucheck >/dev/null || { log "the GPU bundle does not run"; exit 1; }
# The same GPU container with ldconfig = "builtin" (no ldconfig process).
sed 's/^cdi-spec-dirs/ldconfig = "builtin"\ncdi-spec-dirs/' "$GPURUN_CONFIG" >"$TMP/host/config-builtin.toml"
cat >"$TMP/lifecycle.sh" <<-'SH'
	rt=$1 root=$2 id=$3-$$ pf=$4/$3-$$
	$rt --root "$root" create --bundle "$5" --pid-file "$pf" "$id" || exit 1
	$rt --root "$root" start "$id" || exit 1
	pid=; { read -r pid <"$pf"; } 2>/dev/null
	while [ -n "$pid" ] && { read -r st </proc/$pid/stat; } 2>/dev/null; do
		case $st in *") Z "*|*") X "*) break ;; esac
	done
	exec $rt --root "$root" delete "$id"
SH
per=$(((RUNS + ROUNDS - 1) / ROUNDS))
for ((r = 1; r <= ROUNDS; r++)); do
	log "round $r/$ROUNDS ($per runs each: plain, gpu)"
	hyperfine -N --style none --warmup 3 --runs "$per" --export-json "$TMP/round$r.json" \
		-n plain "sh $TMP/lifecycle.sh $GPURUN $TMP/root p $TMP/pid $TMP/plain" \
		-n gpu "sh $TMP/lifecycle.sh $GPURUN $TMP/root g $TMP/pid $TMP/gpu" \
		-n builtin "env GPURUN_CONFIG=$TMP/host/config-builtin.toml sh $TMP/lifecycle.sh $GPURUN $TMP/root b $TMP/pid $TMP/gpu" >/dev/null
done
median() {
	jq -rs --arg c "$1" '[.[].results[] | select(.command == $c) | .times[]] | sort
		| if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end
		| . * 1000' "$TMP"/"${2:-round}"*.json
}
# events --stats: a running plain and a running GPU container (sh + sleep each).
for b in plain gpu; do
	mkdir -p "$TMP/s$b" && cp -a "$TMP/plain/rootfs" "$TMP/s$b/"
	jq '.process.args = ["sh", "-c", "sleep 3600 & wait"]' "$TMP/$b/config.json" >"$TMP/s$b/config.json"
	"$GPURUN" --root "$TMP/root" run -d --bundle "$TMP/s$b" "stats-$b" >/dev/null </dev/null
done
jq --arg f "$TMP/host/processes.json" '.processes_file = $f' "$MOCK_NVML_CONFIG" >"$TMP/host/m.json"
mv "$TMP/host/m.json" "$MOCK_NVML_CONFIG"
mapfile -t gp < <("$GPURUN" --root "$TMP/root" ps -f json stats-gpu | jq '.[]')
jq -n --argjson a "${gp[0]}" --argjson b "${gp[1]}" '[
	{gpu: 0, pid: $a, used_memory: 1073741824, sm: 30, mem: 5},
	{gpu: 1, pid: $b, used_memory: 536870912, type: "graphics", sm: 10, mem: 1},
	{gpu: 0, pid: 1, used_memory: 2147483648, sm: 50, mem: 20}]' >"$TMP/host/processes.json"
"$GPURUN" --root "$TMP/root" events --stats stats-gpu | jq -e '.data.gpu[0].usedMemory == 1073741824' >/dev/null ||
	{ log "the GPU container's stats lack its GPU usage"; exit 1; }
for ((r = 1; r <= ROUNDS; r++)); do
	log "round $r/$ROUNDS ($per runs each: events --stats plain, gpu)"
	hyperfine -N --style none --warmup 3 --runs "$per" --export-json "$TMP/stats$r.json" \
		-n splain "$GPURUN --root $TMP/root events --stats stats-plain" \
		-n sgpu "$GPURUN --root $TMP/root events --stats stats-gpu" >/dev/null
done
plain=$(median plain) gpu=$(median gpu) builtin=$(median builtin)
splain=$(median splain stats) sgpu=$(median sgpu stats)
awk -v p="$plain" -v g="$gpu" -v b="$builtin" 'BEGIN { printf "| (g) GPU container create→start→wait→delete, fake driver (ms) | %.2f | – | – | – | plain %.2f ms: the GPU path adds %.2f ms (ldconfig), %.2f ms with ldconfig = \"builtin\" |\n", g, p, g - p, b - p }'
awk -v p="$splain" -v g="$sgpu" 'BEGIN { printf "| (g) GPU container events --stats, mock NVML (ms) | %.2f | – | – | – | plain container %.2f ms: the gpurun-nvml query (2 GPUs) adds %.2f ms |\n", g, p, g - p }'
