#!/usr/bin/env bash
# Benchmark gpurun against crun and runc. See bench/README.md.
# Usage: bench/run.sh [GPURUN_BIN]   (default: target/release/gpurun)
# Env:   BENCH_RUNS (default 50) timed runs per scenario and runtime,
#        BENCH_DOCKER_RUNS (default 20) runs of the Docker row (h),
#        BENCH_CONC_RUNS (default BENCH_RUNS) runs of the 50-concurrent scenario,
#        BENCH_ROUNDS (default 5) hyperfine rounds the runs are split into (interleaving).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
GPURUN=$(readlink -f "${1:-$REPO/target/release/gpurun}")
RUNS=${BENCH_RUNS:-50}
CONC_RUNS=${BENCH_CONC_RUNS:-$RUNS}
ROUNDS=${BENCH_ROUNDS:-5}
CONC=50                          # containers in scenario (f)
OUT=$HERE/out
RESULTS=$HERE/results.md
PREFIX=gb$$                      # container-id prefix, unique to this benchmark run
RUNTIMES=(gpurun crun runc)
declare -A BIN ROOT NOTE
TMP=""
HF_PID=""

log() { printf '\033[1m[bench]\033[0m %s\n' "$*" >&2; }

install_deps() {
	local p missing=()
	for p in runc crun hyperfine strace time jq busybox-static; do
		dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return
	[ "$(id -u)" = 0 ] || { log "missing packages: ${missing[*]} (run as root)"; exit 1; }
	log "installing: ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
}

# Every runtime invocation goes through this: a private mount namespace without the
# cgroup2 mount, so crun accepts the hybrid host (the host's mounts are untouched). The
# throw-away tmpfs on /sys/fs/cgroup/unified catches the "unified/<id>" dirs and
# cgroup.procs files crun/runc would otherwise create in the host's /sys/fs/cgroup tmpfs
# (hidden under the host's cgroup2 mount, never removed).
WRAP_SH='umount /sys/fs/cgroup/unified && mount -t tmpfs -o size=1m gbench /sys/fs/cgroup/unified && exec "$@"'
WRAP=(unshare -m --propagation private sh -c "$WRAP_SH" --)
WRAP_STR="unshare -m --propagation private sh -c '$WRAP_SH' --"
wrap() { "${WRAP[@]}" "$@"; }

# Delete every container under each private --root, then any cgroup left with our prefix.
delete_all() {
	local rt d
	for rt in "${RUNTIMES[@]}"; do
		[ -n "${ROOT[$rt]:-}" ] && [ -d "${ROOT[$rt]}" ] || continue
		for d in "${ROOT[$rt]}"/*/; do
			[ -d "$d" ] && wrap "${BIN[$rt]}" --root "${ROOT[$rt]}" delete --force "$(basename "$d")" >/dev/null 2>&1 || true
		done
	done
}
cleanup() {
	# An interrupted hyperfine leaves its command's `run -d`s in flight: stop it, let them land.
	if [ -n "${HF_PID:-}" ]; then
		kill -TERM "$HF_PID" $(pgrep -P "$HF_PID") 2>/dev/null
		wait "$HF_PID" 2>/dev/null
		sleep 1
	fi
	delete_all
	kill_strays
	sleep 0.5
	delete_all
	find /sys/fs/cgroup -mindepth 2 -maxdepth 5 -depth -type d -name "$PREFIX*" -exec rmdir {} \; 2>/dev/null || true
	[ -n "$TMP" ] && rm -rf "$TMP"
}
# Safety net for a `run -d` interrupted mid-way (no state left to delete): SIGKILL, by
# pid, every process whose root mount is one of this benchmark's bundle rootfs.
kill_strays() {
	local m
	[ -n "$TMP" ] || return 0
	for m in /proc/[0-9]*/mountinfo; do
		awk -v t="$TMP/" '$5 == "/" && index($4, t) == 1 { f = 1 } END { exit !f }' "$m" 2>/dev/null &&
			kill -KILL "$(basename "$(dirname "$m")")" 2>/dev/null
	done
	return 0
}
on_exit() { local rc=$?; set +e; trap - EXIT INT TERM; log "cleaning up"; cleanup; exit "$rc"; }

# Bundles (/bin/true and sleep 3600, same config for every runtime) and the
# step scripts hyperfine times for multi-command scenarios (args: RT ROOT ...).
setup() {
	TMP=$(mktemp -d /tmp/gpurun-bench.XXXXXX)
	"$REPO/bundles/build.sh" "$TMP/true" >/dev/null
	jq '.process.args = ["/bin/true"] | .process.terminal = false | del(.linux.cgroupsPath)' \
		"$REPO/bundles/configs/hello.json" >"$TMP/true/config.json"
	mkdir -p "$TMP/sleep" && cp -a "$TMP/true/rootfs" "$TMP/sleep/"
	jq '.process.args = ["sleep", "3600"]' "$TMP/true/config.json" >"$TMP/sleep/config.json"
	BIN=([gpurun]=$GPURUN [crun]=$(command -v crun) [runc]=$(command -v runc) [noop]=/bin/true)
	for rt in "${RUNTIMES[@]}" noop; do ROOT[$rt]=$TMP/root-$rt; mkdir -p "${ROOT[$rt]}"; done
	mkdir -p "$TMP/pid" "$OUT"
	# (b) create -> start -> wait for the init to exit -> delete
	cat >"$TMP/lifecycle.sh" <<-'EOF'
		rt=$1 root=$2 id=$3-$$ pf=$4/$3-$$
		$rt --root "$root" create --bundle "$5" --pid-file "$pf" "$id" || exit 1
		$rt --root "$root" start "$id" || exit 1
		pid=; { read -r pid <"$pf"; } 2>/dev/null
		while [ -n "$pid" ] && { read -r st </proc/$pid/stat; } 2>/dev/null; do
			case $st in *") Z "*|*") X "*) break ;; esac
		done
		exec $rt --root "$root" delete "$id"
	EOF
	# (c) create + delete --force
	cat >"$TMP/createdel.sh" <<-'EOF'
		rt=$1 root=$2 id=$3-$$
		$rt --root "$root" create --bundle "$4" "$id" || exit 1
		exec $rt --root "$root" delete --force "$id"
	EOF
	# (f) N x `run -d` in parallel; fails if any of them fails
	cat >"$TMP/concurrent.sh" <<-'EOF'
		rt=$1 root=$2 id=$3-$$ n=$5 pids= i=1 rc=0
		while [ $i -le $n ]; do
			$rt --root "$root" run -d --bundle "$4" "$id-$i" </dev/null >/dev/null 2>&1 &
			pids="$pids $!"; i=$((i + 1))
		done
		for p in $pids; do wait $p || rc=1; done
		exit $rc
	EOF
	# delete --force everything under a root (prepare/cleanup of (f))
	cat >"$TMP/wipe.sh" <<-'EOF'
		rt=$1 root=$2
		for d in "$root"/*/; do [ -d "$d" ] && $rt --root "$root" delete --force "$(basename "$d")" >/dev/null 2>&1; done
		exit 0
	EOF
}

check_runtimes() {
	local rt
	for rt in "${RUNTIMES[@]}"; do
		if ! wrap "${BIN[$rt]}" --root "${ROOT[$rt]}" run --bundle "$TMP/true" "$PREFIX-check" </dev/null >/dev/null 2>"$TMP/err"; then
			log "$rt cannot run the bundle through the wrapper: $(cat "$TMP/err")"; exit 1
		fi
	done
	log "all runtimes run the bundle through the wrapper (crun included)"
}

# bench NAME RUNS CMDFN [extra hyperfine args...]: CMDFN RT prints the command for RT
# (runtime "noop" = /bin/true gives the harness overhead). Runs are split into ROUNDS
# hyperfine invocations so that the runtimes interleave; times are merged afterwards.
bench() {
	local name=$1 runs=$2 fn=$3 r per warm rt
	shift 3
	per=$(((runs + ROUNDS - 1) / ROUNDS))
	for ((r = 1; r <= ROUNDS; r++)); do
		warm=1; [ "$r" = 1 ] && warm=5
		local args=()
		for rt in "${RTS[@]}" noop; do args+=(-n "$rt" "$($fn "$rt")"); done
		log "$name: round $r/$ROUNDS ($per runs each: ${RTS[*]} + harness overhead)"
		hyperfine -N --style none --warmup "$warm" --runs "$per" "$@" \
			--export-json "$OUT/$name.round$r.json" "${args[@]}" >/dev/null &
		HF_PID=$!
		wait "$HF_PID"
		HF_PID=""
	done
	jq -s '{scenario: $n, results: ([.[].results[]] | group_by(.command)
		| map({command: .[0].command, times: [.[].times[]]}))}' --arg n "$name" \
		"$OUT/$name".round*.json >"$OUT/$name.json"
}

cmd_run()       { echo "$WRAP_STR ${BIN[$1]} --root ${ROOT[$1]} run --bundle $TMP/true $PREFIX-r"; }
cmd_lifecycle() { echo "$WRAP_STR sh $TMP/lifecycle.sh ${BIN[$1]} ${ROOT[$1]} $PREFIX-l $TMP/pid $TMP/true"; }
cmd_createdel() { echo "$WRAP_STR sh $TMP/createdel.sh ${BIN[$1]} ${ROOT[$1]} $PREFIX-c $TMP/true"; }
cmd_state()     { echo "$WRAP_STR ${BIN[$1]} --root ${ROOT[$1]} state $PREFIX-sleeper"; }
cmd_exec()      { echo "$WRAP_STR ${BIN[$1]} --root ${ROOT[$1]} exec $PREFIX-sleeper /bin/true"; }
cmd_conc()      { echo "$WRAP_STR sh $TMP/concurrent.sh ${BIN[$1]} ${ROOT[$1]} $PREFIX-f $TMP/sleep $CONC"; }

scenario_run()       { RTS=("${RUNTIMES[@]}"); bench a_run "$RUNS" cmd_run; }
# (a2) the same after 50 ms without any cgroup migration on the host, as an engine starting
# one container now and then sees it (the wait is hyperfine's untimed --prepare).
scenario_run_idle()  { RTS=("${RUNTIMES[@]}"); bench a2_run_idle "$RUNS" cmd_run --prepare "sleep 0.05"; }
scenario_lifecycle() { RTS=("${RUNTIMES[@]}"); bench b_lifecycle "$RUNS" cmd_lifecycle; }
scenario_createdel() { RTS=("${RUNTIMES[@]}"); bench c_create_delete "$RUNS" cmd_createdel; }

start_sleepers() {
	for rt in "${RUNTIMES[@]}"; do
		wrap "${BIN[$rt]}" --root "${ROOT[$rt]}" run -d --bundle "$TMP/sleep" "$PREFIX-sleeper" </dev/null >/dev/null 2>&1 ||
			{ log "$rt: cannot start the sleeper container"; exit 1; }
	done
}
scenario_state() { RTS=("${RUNTIMES[@]}"); bench d_state "$RUNS" cmd_state; }
scenario_exec() {
	RTS=()
	for rt in "${RUNTIMES[@]}"; do
		if wrap "${BIN[$rt]}" --root "${ROOT[$rt]}" exec "$PREFIX-sleeper" /bin/true </dev/null >/dev/null 2>"$TMP/err"; then
			RTS+=("$rt")
		else
			NOTE[exec_$rt]="n/a ($(head -c 60 "$TMP/err" | head -n1))"
			log "skipping exec for $rt: $(head -n1 "$TMP/err")"
		fi
	done
	bench e_exec "$RUNS" cmd_exec
}
scenario_concurrent() {
	RTS=("${RUNTIMES[@]}")
	local wipe=() rt
	for rt in "${RTS[@]}" noop; do wipe+=(--prepare "$WRAP_STR sh $TMP/wipe.sh ${BIN[$rt]} ${ROOT[$rt]}"); done
	# hyperfine takes one --prepare per command, in command order; wipe also after each round.
	bench f_concurrent50 "$CONC_RUNS" cmd_conc "${wipe[@]}"
	for rt in "${RTS[@]}"; do wrap sh "$TMP/wipe.sh" "${BIN[$rt]}" "${ROOT[$rt]}"; done
}

# Peak RSS (median of 5 `run`s, /usr/bin/time inside the wrapper so only the runtime and
# its children count), syscall count (strace -f -c of one `run`), binary size.
measure_misc() {
	local rt i
	for rt in "${RUNTIMES[@]}"; do
		for i in 1 2 3 4 5; do
			wrap /usr/bin/time -f %M -o "$TMP/rss" "${BIN[$rt]}" --root "${ROOT[$rt]}" run --bundle "$TMP/true" "$PREFIX-m" </dev/null >/dev/null 2>&1
			cat "$TMP/rss"
		done | sort -n | sed -n 3p >"$OUT/rss_kib.$rt"
		wrap strace -f -c -o "$OUT/strace_c.$rt.txt" "${BIN[$rt]}" --root "${ROOT[$rt]}" run --bundle "$TMP/true" "$PREFIX-s" </dev/null >/dev/null 2>&1
		wrap strace -f -tt -o "$OUT/strace_tt.$rt.txt" "${BIN[$rt]}" --root "${ROOT[$rt]}" run --bundle "$TMP/true" "$PREFIX-t" </dev/null >/dev/null 2>&1
		awk '$NF == "total" { print $4 }' "$OUT/strace_c.$rt.txt" >"$OUT/syscalls.$rt"
		stat -L -c %s "${BIN[$rt]}" >"$OUT/size.$rt"
	done
}

# median_ms SCENARIO COMMAND -> median in ms (empty if absent)
median_ms() {
	jq -r --arg c "$2" '.results[] | select(.command == $c) | .times | sort
		| if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end
		| . * 1000' "$OUT/$1.json"
}
fmt() { awk -v x="$1" 'BEGIN { printf (x >= 100 ? "%.0f" : "%.2f"), x }'; }
ratio() { # only for two positive numbers
	awk -v a="$1" -v b="$2" 'BEGIN { n = "^[0-9.]+$"; if (a !~ n || b !~ n || b + 0 <= 0) print "–"; else printf "%.2f×", a / b }'
}

row() { # row LABEL G C R NOTE  (values already numbers or text)
	printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" "$(ratio "$2" "$3")" "$5"
}

table() {
	local s label base v rt cells
	echo "| scenario (median) | gpurun | crun | runc | gpurun÷crun | note |"
	echo "|---|---:|---:|---:|---:|---|"
	for s in a_run:"(a) run /bin/true (ms)" a2_run_idle:"(a2) run /bin/true, 50 ms idle before each (ms)" b_lifecycle:"(b) create→start→wait→delete (ms)" \
		c_create_delete:"(c) create + delete --force (ms)" d_state:"(d) state of running ctr (ms)" \
		e_exec:"(e) exec /bin/true (ms)" f_concurrent50:"(f) $CONC× run -d in parallel (ms)"; do
		label=${s#*:} s=${s%%:*}
		base=$(median_ms "$s" noop)
		cells=()
		for rt in "${RUNTIMES[@]}"; do
			v=$(median_ms "$s" "$rt")
			if [ -n "$v" ]; then cells+=("$(fmt "$(awk -v a="$v" -v b="$base" 'BEGIN { print a - b }')")")
			else cells+=("${NOTE[exec_$rt]:-n/a}"); fi
		done
		row "$label" "${cells[@]}" "net of $(fmt "$base") ms harness overhead"
	done
	cells=(); for rt in "${RUNTIMES[@]}"; do cells+=("$(awk '{ printf "%.1f", $1 / 1024 }' "$OUT/rss_kib.$rt")"); done
	row "peak RSS of run (MiB)" "${cells[@]}" "max resident, runtime + its children, median of 5"
	cells=(); for rt in "${RUNTIMES[@]}"; do cells+=("$(cat "$OUT/syscalls.$rt")"); done
	row "syscalls of run (count)" "${cells[@]}" "strace -f -c total, incl. container's /bin/true"
	cells=(); for rt in "${RUNTIMES[@]}"; do cells+=("$(awk '{ printf "%.2f", $1 / 1048576 }' "$OUT/size.$rt")"); done
	row "binary size (MiB)" "${cells[@]}" "file size; gpurun static (libc inside), crun/runc: shared libraries not counted"
	[ -z "${GPU_ROW:-}" ] || echo "$GPU_ROW"
	[ -z "${DOCKER_ROW:-}" ] || echo "$DOCKER_ROW"
}

report() {
	local t
	t=$(table)
	{
		echo "# gpurun benchmark results"
		echo
		echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
		echo "- kernel: $(uname -r); CPU: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1) ($(nproc) cores)"
		echo "- $("$GPURUN" --version 2>/dev/null | head -n1 || true); $(crun --version | head -n1); $(runc --version | head -n1)"
		echo "- runs per scenario: $RUNS ($CONC_RUNS for (f)) in $ROUNDS interleaved rounds; hyperfine -N, warmup 5"
		echo "- every command runs through \`$WRAP_STR\`; its cost (and that of the"
		echo "  step scripts, measured with /bin/true as the runtime) is subtracted. Raw JSON: bench/out/"
		echo
		echo "$t"
	} >"$RESULTS"
	echo "$t"
	log "wrote $RESULTS and $OUT/"
}

main() {
	[ -x "$GPURUN" ] || { echo "usage: $0 GPURUN_BIN (not executable: $GPURUN)" >&2; exit 2; }
	[ "$(id -u)" = 0 ] || { echo "bench/run.sh: needs root" >&2; exit 1; }
	install_deps
	trap on_exit EXIT
	trap 'exit 130' INT TERM
	rm -rf "$OUT"
	setup
	check_runtimes
	scenario_run
	scenario_run_idle
	scenario_lifecycle
	scenario_createdel
	start_sleepers
	scenario_state
	scenario_exec
	scenario_concurrent
	measure_misc
	# (g) gpurun's GPU path vs a plain container (mock NVML, fake driver): bench/gpu.sh.
	GPU_ROW=$(BENCH_RUNS=$RUNS BENCH_ROUNDS=$ROUNDS "$HERE/gpu.sh" "$GPURUN") || GPU_ROW=""
	# (h) `docker run --rm IMAGE true` through each runtime, one private dockerd: bench/docker.sh.
	DOCKER_ROW=$(BENCH_ROUNDS=$ROUNDS "$HERE/docker.sh" "$GPURUN") || DOCKER_ROW=""
	report
}

main "$@"
