#!/usr/bin/env bash
# Check steptrace, with and without -f, on steptrace-test.c: which processes' code it records
# (main, signal handlers, fork child, vfork child before its exec, thread, callbacks from libc),
# that it detaches a process that execs and one left running when the program exits, and
# that it passes the exit status on.
# Usage: link/test-steptrace.sh   (needs gcc, binutils; as any user that may ptrace its children)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d /tmp/test-steptrace.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fails=0
check() { # check WHAT COMMAND...
	local what=$1
	shift
	if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi
}

gcc -O2 -Wall -Wextra -o "$TMP/steptrace" "$HERE"/steptrace.c "$HERE"/steptrace-text.c "$HERE"/steptrace-fast.c
gcc -O2 -fno-plt -pthread -o "$TMP/prog" "$HERE/steptrace-test.c"
mkfifo "$TMP/fifo"

# addresses ADDR..ADDR+SIZE (hex) hit in the trace
hits() {
	awk -v lo="$1" -v sz="$2" '
		function hex(h,   i, n) {
			n = 0
			for (i = 1; i <= length(h); i++) n = n * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1
			return n
		}
		BEGIN { lo = hex(lo); hi = lo + hex(sz) }
		{ a = hex($2); if (a >= lo && a < hi) n++ }
		END { print n + 0 }' "$TMP/trace.txt"
}
sym() { nm -S "$TMP/prog" | awk -v f="$1" '$4 == f { print $1, $2 }'; }
readelf -SW "$TMP/prog" | sed 's/^ *\[ *[0-9]*\]//' | awk '$7 ~ /X/ { print $3, $5 }' >"$TMP/xsections"

for mode in exact -f; do
	echo "--- steptrace ${mode/exact/}"
	flag=${mode/exact/}
	rc=0
	# shellcheck disable=SC2086 # flag: one or none
	"$TMP/steptrace" $flag "$TMP/trace.txt" "$TMP/prog" "$TMP/fifo" 2>"$TMP/err" || rc=$?
	cat "$TMP/err"
	check "exit status 42 passed on (got $rc)" [ "$rc" = 42 ]

	# The child left blocked in open(FIFO) must run on, neither stopped nor killed: it writes
	# one byte once we open the reading end.
	timeout 10 cat "$TMP/fifo" >"$TMP/byte" || true
	check "child left behind was detached and ran on" [ "$(wc -c <"$TMP/byte")" = 1 ]

	for f in main on_usr1 parent_only fork_child_only vfork_child_only thread_only \
		compare_cb compare_third_cb on_alarm_cb after_free_runs; do
		read -r addr size <<<"$(sym "$f")"
		check "$f recorded" [ "$(hits "$addr" "$size")" -gt 0 ]
	done
	for f in never_called leftover_child_only; do
		read -r addr size <<<"$(sym "$f")"
		check "$f not recorded" [ "$(hits "$addr" "$size")" = 0 ]
	done
	free=$(sed -n 's/.* \([0-9]*\) calls run free.*/\1/p' "$TMP/err")
	if [ "$mode" = -f ]; then
		check "calls run free with -f ($free)" [ "${free:-0}" -gt 0 ]
	else
		check "no call run free without -f" [ "${free:-x}" = 0 ]
	fi

	# Every address lies in an executable section (the load bias was right), once, in order.
	inside=0
	while read -r addr size; do inside=$((inside + $(hits "$addr" "$size"))); done <"$TMP/xsections"
	check "all addresses in executable sections" [ "$inside" = "$(wc -l <"$TMP/trace.txt")" ]
	check "addresses unique" [ "$(cut -d' ' -f2 "$TMP/trace.txt" | sort | uniq -d | wc -l)" = 0 ]
	# shellcheck disable=SC2016 # an awk program
	check "sequence numbers 0..n-1 in order" awk '$1 != NR - 1 { exit 1 }' "$TMP/trace.txt"
done

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all checks passed"
