#!/usr/bin/env bash
# Trace the functions gpurun's common commands execute and write them, in first-execution
# order, as an lld --symbol-ordering-file. See link/README.md.
# Usage (as root): link/gen-order.sh BIN OUT
#   BIN: an unstripped gpurun (the symbol names come from it: trace the build you will relink)
#   OUT: the ordering file to write (one mangled symbol per line)
# Env: GEN_ORDER_EXACT=1 steps every instruction (no steptrace -f: slower, misses nothing).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
[ $# -eq 2 ] || { echo "usage: $0 BIN OUT" >&2; exit 2; }
BIN=$(readlink -f "$1")
OUT=$2
ID=go$$ # container-id prefix, unique to this run
FAST=-f
[ "${GEN_ORDER_EXACT:-0}" = 1 ] && FAST=""
TMP=""

log() { printf '\033[1m[gen-order]\033[0m %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (containers are created)"
[ -x "$BIN" ] || die "$BIN: not an executable"
[ "$(uname -m)" = x86_64 ] || die "steptrace reads x86_64 registers only"

install_deps() {
	local p missing=()
	for p in gcc binutils jq procps busybox-static; do
		dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return
	log "installing: ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
}

gpurun() { "$BIN" --root "$TMP/root" "$@"; }

# Every container under our --root is deleted, also after a failure; then, as a safety net,
# any process still rooted in our bundles is killed and any cgroup named after us removed.
cleanup() {
	local d m
	[ -n "$TMP" ] && [ -d "$TMP" ] || return 0
	for d in "$TMP"/root/*/; do
		[ -d "$d" ] && gpurun delete --force "$(basename "$d")" >/dev/null 2>&1 || true
	done
	for m in /proc/[0-9]*/mountinfo; do
		awk -v t="$TMP/" '$5 == "/" && index($4, t) == 1 { f = 1 } END { exit !f }' "$m" 2>/dev/null &&
			kill -KILL "$(basename "$(dirname "$m")")" 2>/dev/null
	done
	find /sys/fs/cgroup -mindepth 2 -maxdepth 6 -depth -type d -name "$ID-*" -exec rmdir {} \; 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

setup() {
	TMP=$(mktemp -d /tmp/gen-order.XXXXXX)
	mkdir -p "$TMP/root" "$TMP/traces" "$TMP/spec"
	gcc -O2 -o "$TMP/steptrace" "$HERE"/steptrace.c "$HERE"/steptrace-text.c "$HERE"/steptrace-fast.c
	"$REPO/bundles/build.sh" "$TMP/true" >/dev/null
	jq '.process.args = ["/bin/true"] | .process.terminal = false | del(.linux.cgroupsPath)' \
		"$REPO/bundles/configs/hello.json" >"$TMP/true/config.json"
	mkdir -p "$TMP/sleep" && cp -a "$TMP/true/rootfs" "$TMP/sleep/"
	jq '.process.args = ["sleep", "3600"]' "$TMP/true/config.json" >"$TMP/sleep/config.json"
}

# trace NAME ARGS...: run `gpurun ARGS...` under steptrace into traces/NN-NAME.txt. The
# command must succeed. Its output goes to files (a `run -d` container keeps them open).
N=0
trace() {
	local name=$1 f t0 t1 rc=0
	shift
	N=$((N + 1))
	f=$TMP/traces/$(printf %02d "$N")-$name
	t0=$(date +%s.%N)
	# shellcheck disable=SC2086 # FAST: one flag or none
	"$TMP/steptrace" $FAST "$f.txt" "$BIN" "$@" </dev/null >"$f.out" 2>"$f.err" || rc=$?
	t1=$(date +%s.%N)
	[ $rc -eq 0 ] || die "gpurun $* exited $rc under steptrace: $(cat "$f.err")"
	log "$(printf '%-16s %6.1f s  %s' "$name" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
		"$(grep '^steptrace:' "$f.err" | sed 's/^steptrace: //')")"
}

# Wait until container $1's state reads "stopped" (its process ran and exited, or was killed).
wait_stopped() {
	local _
	for _ in $(seq 200); do
		gpurun state "$1" 2>/dev/null | jq -e '.status == "stopped"' >/dev/null && return 0
		sleep 0.05
	done
	die "container $1 did not stop"
}

# Container $1 runs, and its init is not left stopped by the tracer (it was detached).
check_running() {
	local pid st
	pid=$(gpurun state "$1" | jq -e -r 'select(.status == "running") | .pid') ||
		die "container $1 is not running"
	st=$(awk '{ print $3 }' "/proc/$pid/stat")
	[ "$st" != T ] && [ "$st" != t ] || die "container $1's init $pid is stopped"
}

run_traces() {
	local r=--root root=$TMP/root
	trace run $r "$root" run --bundle "$TMP/true" "$ID-run"
	trace create $r "$root" create --bundle "$TMP/true" "$ID-a"
	trace start $r "$root" start "$ID-a"
	trace state $r "$root" state "$ID-a"
	wait_stopped "$ID-a" # its init, detached by the create trace, ran /bin/true on start
	gpurun create --bundle "$TMP/true" "$ID-b"
	trace kill-created $r "$root" kill "$ID-b" KILL
	wait_stopped "$ID-b"
	trace delete $r "$root" delete "$ID-b"
	gpurun delete "$ID-a"
	trace run-detached $r "$root" run -d --bundle "$TMP/sleep" "$ID-d"
	check_running "$ID-d"
	trace state-running $r "$root" state "$ID-d"
	trace exec $r "$root" exec "$ID-d" /bin/true
	trace ps $r "$root" ps "$ID-d"
	trace list $r "$root" list
	trace pause $r "$root" pause "$ID-d"
	trace resume $r "$root" resume "$ID-d"
	trace events-stats $r "$root" events --stats "$ID-d"
	trace kill $r "$root" kill "$ID-d"
	trace delete-force $r "$root" delete --force "$ID-d"
	trace spec $r "$root" spec --bundle "$TMP/spec"
	trace features $r "$root" features
	trace version --version
}

# Map the traced addresses to BIN's function symbols and write OUT. nm -n lists symbols by
# address; a function is a start address with its names (aliases) and an end: start + size,
# or, for size-0 symbols only, the next symbol's start. Addresses outside every function
# (none expected) are counted and reported.
write_order() {
	nm -n -S --defined-only "$BIN" |
		awk '$(NF-1) ~ /^[tTW]$/ { print (NF == 4 ? $1 " " $2 : $1 " 0"), $NF }' >"$TMP/syms"
	[ -s "$TMP/syms" ] || die "$BIN has no function symbols (stripped?)"
	local text
	text=$(size -A "$BIN" | awk '$1 == ".text" { print $2 }')
	# shellcheck disable=SC2016
	awk -v text="$text" -v out="$OUT.tmp" '
		function hex(h,   i, n) {
			n = 0
			for (i = 1; i <= length(h); i++) n = n * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1
			return n
		}
		# the function containing address a, or 0
		function find(a,   lo, hi, mid) {
			lo = 1; hi = nf
			if (nf == 0 || a < start[1]) return 0
			while (lo < hi) { mid = int((lo + hi + 1) / 2); if (start[mid] <= a) lo = mid; else hi = mid - 1 }
			return a < end[lo] ? lo : 0
		}
		FILENAME == ARGV[1] {   # the symbol list: addr size name, by address
			a = hex($1); s = hex($2)
			if (nf == 0 || a != start[nf]) { start[++nf] = a; size[nf] = 0; names[nf] = "" }
			names[nf] = names[nf] (names[nf] == "" ? "" : "\n") $3
			if (s > size[nf]) size[nf] = s
			next
		}
		FNR == 1 {              # a new trace file: one command
			if (!nends) {         # symbols done: a size-0 one reaches to the next symbol
				for (i = 1; i <= nf; i++) end[i] = size[i] ? start[i] + size[i] : (i < nf ? start[i + 1] : start[i] + 1)
				nends = 1
			}
			if (cmd != "") summary[++ncmd] = cmd " " newf
			cmd = FILENAME; sub(/.*\/[0-9]+-/, "", cmd); sub(/\.txt$/, "", cmd); newf = 0
		}
		{                       # seq addr, by seq
			if ($2 in seen) next
			seen[$2] = 1
			f = find(hex($2))
			if (!f) { if (unmapped++ < 5) where = where " " $2 " (" cmd ")"; next }
			if (f in done) next
			done[f] = 1; newf++; total++; bytes += end[f] - start[f]
			n = split(names[f], alias, "\n")
			for (j = 1; j <= n; j++) if (!(alias[j] in printed)) { printed[alias[j]] = 1; print alias[j] > out }
		}
		END {
			if (cmd != "") summary[++ncmd] = cmd " " newf
			for (i = 1; i <= ncmd; i++) { split(summary[i], p, " "); printf "  %-16s %6d new functions\n", p[1], p[2] > "/dev/stderr" }
			printf "  total: %d functions, %.0f KiB of %.0f KiB .text (%.1f%%); %d addresses outside any symbol\n",
				total, bytes / 1024, text / 1024, 100 * bytes / text, unmapped > "/dev/stderr"
			if (unmapped) print "  outside any symbol:" where > "/dev/stderr"
		}
	' "$TMP/syms" "$TMP"/traces/*.txt
	mv "$OUT.tmp" "$OUT"
}

install_deps
setup
log "tracing $BIN (each command single-stepped${FAST:+, library calls fast-forwarded}: expect minutes)"
run_traces
write_order
log "wrote $OUT ($(wc -l <"$OUT") symbols)"
