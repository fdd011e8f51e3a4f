#!/bin/bash
# peak.sh OUT CMD...: runs CMD once; writes "TREE_KB OWN_KB" to OUT. TREE is GNU time's %M (the
# largest single process of the tree, RUN steps included: pip here); OWN is the high-water RSS
# (VmHWM) of CMD's own process, read every 10 ms until it exits (the build tool alone).
set -euo pipefail
out=$1
shift
/usr/bin/time -f %M -o "$out.tree" "$@" >/dev/null 2>&1 &
tpid=$!
cpid=
until [ -n "$cpid" ] || ! kill -0 "$tpid" 2>/dev/null; do
	cpid=$(pgrep -P "$tpid" | head -1 || true)
done
own=0
while [ -n "$cpid" ] && h=$(grep -s '^VmHWM' "/proc/$cpid/status"); do
	h=${h//[^0-9]/}
	[ -n "$h" ] && own=$h
	sleep 0.01
done
wait "$tpid"
echo "$(tail -1 "$out.tree") $own" > "$out"
