# Shared helpers for the engine scripts (sourced, bash).
#   RUNTIME   OCI runtime under test (default: /work/main/target/release/gpurun; /usr/sbin/runc to validate)
#   KEEP=1    keep the temp dir
#   GPURUN_SKIP_LOG  where skips are logged (default: <repo>/target/skips.log; read by
#             integration/skips-summary.sh, shared with the Rust tests' gpurun_integration::skip)
# Every runtime call the engine makes goes through a logging wrapper:  $W/bin/<basename RUNTIME>
# which appends argv, exit code and stderr to $W/calls.log (printed on failure, and kept as
# $CALLS_OUT when set).

ENGINES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$ENGINES_DIR/../.." && pwd)
RUNTIME=${RUNTIME:-$REPO/target/release/gpurun}
RT_NAME=$(basename "$RUNTIME")
PASS=0; FAIL=0; FAILED=(); SKIP=0; SKIPPED=()
T0=$(date +%s.%N)
SKIP_LOG=${GPURUN_SKIP_LOG:-$REPO/target/skips.log}
SCRIPT_NAME=$(basename "$0" .sh)

say() { printf '\n=== %s\n' "$*"; }

# check NAME CMD...: run a step, record pass/fail, never abort the script
check() {
	local name=$1; shift
	local t=$(date +%s.%N)
	if "$@"; then
		PASS=$((PASS+1)); printf 'PASS %-40s (%.1fs)\n' "$name" "$(echo "$(date +%s.%N) - $t" | bc)"
	else
		local rc=$?
		FAIL=$((FAIL+1)); FAILED+=("$name"); printf 'FAIL %-40s rc=%s (%.1fs)\n' "$name" "$rc" "$(echo "$(date +%s.%N) - $t" | bc)"
	fi
}

# skip NAME REASON...: a check that cannot run here: printed with its reason, counted in the
# summary, and appended to the skip log ("engines/<script>::NAME<TAB>REASON")
skip() {
	local name=$1; shift
	SKIP=$((SKIP+1)); SKIPPED+=("$name: $*")
	printf 'SKIP %-40s %s\n' "$name" "$*"
	mkdir -p "$(dirname "$SKIP_LOG")" 2>/dev/null
	printf 'engines/%s::%s\t%s\n' "$SCRIPT_NAME" "$name" "$*" | tr -d '\r' >> "$SKIP_LOG" ||
		echo "  (could not log the skip to $SKIP_LOG)" >&2
}

# skip_all REASON...: the whole script cannot run here (no engine): logged as one skip, exit 77
skip_all() {
	skip "$SCRIPT_NAME (all checks)" "$*"
	echo "skipped: $*"
	exit 77
}

# check_tty NAME CMD...: a check that needs script(1) for a pty (util-linux): a counted skip
# without it
check_tty() {
	if command -v script >/dev/null; then check "$@"; else skip "$1" "script(1) not installed (util-linux): no pty to attach"; fi
}

# quiet CMD...: CMD with its stdout dropped (ids and names engines print)
quiet() { "$@" >/dev/null; }

# in_pty CMD: run the shell command CMD on a fresh pty (script(1)); it must print a line
# ending "tty-ok" (docker may echo ^D before it). What it printed is shown when it did not.
# The commands sleep after printing: an engine may shut the console when the process exits,
# before its copier has read the last output.
in_pty() {
	local out; out=$(timeout 30 script -qec "$1" /dev/null </dev/null 2>&1 | tr -d '\r')
	printf '%s\n' "$out" | grep -q 'tty-ok[[:space:]]*$' && return 0
	printf '  in a pty, no tty-ok line from: %s\n  it printed: [%s]\n' "$1" "$out" >&2
	return 1
}

# expect_out WANT CMD...: stdout of CMD (stripped of \r) must equal WANT
expect_out() {
	local want=$1; shift
	local got; got=$("$@" | tr -d '\r'); local rc=${PIPESTATUS[0]}
	[ "$rc" = 0 ] || { echo "  command failed rc=$rc: $*" >&2; return 1; }
	[ "$got" = "$want" ] || { echo "  got [$got] want [$want]: $*" >&2; return 1; }
}

# Like expect_out, but for state that settles asynchronously (an engine reaps a killed task
# after `kill` has returned): retry for up to 5 s.
eventually_out() {
	local i
	for i in $(seq 50); do
		expect_out "$@" 2>/dev/null && return 0
		sleep 0.1
	done
	expect_out "$@"
}

# expect_rc WANT CMD...: exit status of CMD must be WANT
expect_rc() {
	local want=$1; shift
	"$@"; local rc=$?
	[ "$rc" = "$want" ] || { echo "  exit status $rc, want $want: $*" >&2; return 1; }
}

# make_wrapper DIR: writes DIR/bin/$RT_NAME, a logging wrapper around $RUNTIME.
# Paths are baked in (conmon clears the environment).  Verbs that hand their stdio to a
# container process (create/run/exec) keep stderr untouched (it is the container's stderr);
# for them the tail of --log (if given) is logged on failure instead.
make_wrapper() {
	local d=$1
	mkdir -p "$d/bin"
	cat > "$d/bin/$RT_NAME" <<WRAP
#!/bin/bash
REAL=$RUNTIME
LOG=$d/calls.log
WRAP
	cat >> "$d/bin/$RT_NAME" <<'WRAP'
verb=; logf=; skip=
for a in "$@"; do
	if [ -n "$skip" ]; then [ "$skip" = log ] && logf=$a; skip=; continue; fi
	case "$a" in
	--log) skip=log;;
	--root|--log-format|--criu|--rootless) skip=1;;
	--log=*) logf=${a#--log=};;
	-*) ;;
	*) verb=$a; break;;
	esac
done
ts=$(date +%H:%M:%S.%N | cut -c1-12)
case "$verb" in
create|run|exec)
	"$REAL" "$@"; rc=$?
	{ printf '%s rc=%s: %s\n' "$ts" "$rc" "$*"
	  if [ "$rc" != 0 ] && [ -n "$logf" ] && [ -f "$logf" ]; then tail -n 3 "$logf" | sed 's/^/    log: /'; fi
	} >> "$LOG"
	exit $rc;;
*)
	errf=$(mktemp /tmp/rtwrap.XXXXXX)
	"$REAL" "$@" 2>"$errf"; rc=$?
	{ printf '%s rc=%s: %s\n' "$ts" "$rc" "$*"
	  [ -s "$errf" ] && sed 's/^/    stderr: /' "$errf"
	  if [ "$rc" != 0 ] && [ -n "$logf" ] && [ -f "$logf" ]; then tail -n 3 "$logf" | sed 's/^/    log: /'; fi
	} >> "$LOG"
	cat "$errf" >&2; rm -f "$errf"
	exit $rc;;
esac
WRAP
	chmod +x "$d/bin/$RT_NAME"
	: > "$d/calls.log"
}

# summary NAME: print results ("N passed, N failed, N skipped"); exit 1 if anything failed
summary() {
	local dt; dt=$(echo "$(date +%s.%N) - $T0" | bc)
	echo
	printf '%s with %s: %d passed, %d failed, %d skipped in %.0fs\n' "$1" "$RUNTIME" "$PASS" "$FAIL" "$SKIP" "$dt"
	[ "$SKIP" = 0 ] || printf '  skipped: %s\n' "${SKIPPED[@]}"
	if [ "$FAIL" != 0 ]; then
		printf '  failed: %s\n' "${FAILED[@]}"
		echo "--- runtime calls with nonzero exit (from $W/calls.log):"
		grep -A4 -E ' rc=[1-9][0-9]*: ' "$W/calls.log" | head -100
	fi
	[ -n "${CALLS_OUT:-}" ] && cp "$W/calls.log" "$CALLS_OUT"
	[ "$FAIL" = 0 ]
}

# no_mounts_under DIR: nothing mounted below DIR anymore
no_mounts_under() {
	! grep -q " $1" /proc/self/mountinfo || { echo "  mounts left under $1:"; grep " $1" /proc/self/mountinfo; false; }
}

# wait_until SECS CMD...: retry CMD (quietly) every 0.2 s until it succeeds, at most SECS
# seconds; the last try's output is shown
wait_until() {
	local secs=$1; shift
	local end=$(( $(date +%s) + secs ))
	while [ "$(date +%s)" -lt "$end" ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	"$@"
}
