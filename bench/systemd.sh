#!/usr/bin/env bash
# The systemd cgroup driver's cost: `run` of busybox `true` with `--systemd-cgroup` (a transient
# scope through D-Bus, as on a Docker/Kubernetes node) and without (cgroupfs), for gpurun, crun
# and runc, in one VM booting systemd as PID 1 (integration/vm, VMRUN_SYSTEMD=1: QEMU/TCG here,
# so every number is several times a real host's; compare ratios). Interleaved hyperfine rounds.
# Usage: bench/systemd.sh [GPURUN_BIN]   Env: BENCH_SD_RUNS (default 20 per runtime and driver),
#        BENCH_ROUNDS (default 5). Prints one markdown table row per driver.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
[ "${1:-}" = --guest ] || GPURUN=$(readlink -f "${1:-$REPO/target/release/gpurun}")
RUNS=${BENCH_SD_RUNS:-20}
ROUNDS=${BENCH_ROUNDS:-5}
log() { printf '\033[1m[bench-systemd]\033[0m %s\n' "$*" >&2; }

if [ "${1:-}" != --guest ]; then
	[ "$(id -u)" = 0 ] || { log "needs root"; exit 1; }
	for p in runc crun hyperfine jq busybox-static qemu-system-x86; do
		dpkg -s "$p" >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$p" >&2
	done
	"$REPO/bundles/build.sh" >/dev/null
	export VMRUN_KERNEL_DIR=${VMRUN_KERNEL_DIR:-$REPO/target/vm-kernel}
	"$REPO/integration/vm/qemu-kernel.sh" "$VMRUN_KERNEL_DIR" >&2
	OUT=$(mktemp -d /tmp/gpurun-sdbench.XXXXXX)
	trap 'rm -rf "$OUT"' EXIT
	export GPURUN=$GPURUN BENCH_SD_RUNS=$RUNS BENCH_ROUNDS=$ROUNDS
	VMRUN_SYSTEMD=1 VMRUN_ENV="GPURUN BENCH_SD_RUNS BENCH_ROUNDS" \
		"$REPO/integration/vm/vmrun-qemu" -w "$OUT" -- "$0" --guest "$OUT" >&2
	cat "$OUT/rows.md"
	exit 0
fi

# In the guest (systemd is PID 1; the host's / is the root, writes go to a tmpfs layer).
OUT=$2
W=$(mktemp -d /run/sdbench.XXXXXX)
declare -A BIN=([gpurun]=$GPURUN [crun]=$(command -v crun) [runc]=$(command -v runc))
RTS=(gpurun crun runc)
# One rootfs, two configs: the systemd one names a slice:prefix:name path, as engines send.
for driver in cgroupfs systemd; do
	mkdir -p "$W/$driver"
	path=; [ $driver = systemd ] && path=system.slice:sdbench:sdbench
	jq --arg root "$REPO/bundles/busybox/rootfs" --arg path "$path" \
		'.root.path = $root | .process.args = ["/bin/true"] | .process.terminal = false
		 | if $path != "" then .linux.cgroupsPath = $path else . end' \
		"$REPO/bundles/configs/hello.json" >"$W/$driver/config.json"
done
flag() { [ "$1" = systemd ] && echo --systemd-cgroup; true; }
for round in $(seq "$ROUNDS"); do
	for driver in cgroupfs systemd; do
		for rt in "${RTS[@]}"; do
			hyperfine -N --style none --warmup 2 --runs $((RUNS / ROUNDS)) \
				--export-json "$W/$driver.$rt.$round.json" \
				"${BIN[$rt]} --root $W/root.$rt $(flag $driver) run --bundle $W/$driver sdbench" >/dev/null
		done
	done
done
median() { # all rounds' times of one runtime and driver, median in ms
	jq -s '[.[].results[0].times[]] | sort | .[length/2|floor] * 1000 | round' "$W/$1.$2".*.json
}
{
	for driver in cgroupfs systemd; do
		g=$(median $driver gpurun) c=$(median $driver crun) r=$(median $driver runc)
		printf '| (i) `run true` in the systemd VM, %s driver (ms) | %s | %s | %s | %.2f× | %s, `bench/systemd.sh` (%s runs each, QEMU/TCG: compare ratios) |\n' \
			"$driver" "$g" "$c" "$r" "$(echo "$g / $c" | bc -l)" "$(date +%F)" "$RUNS"
	done
} >"$OUT/rows.md"
