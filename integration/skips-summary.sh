#!/bin/bash
# skips-summary.sh [LOG]: "N skipped", then the reasons, grouped, with how many skips and which
# tests gave each. LOG: $GPURUN_SKIP_LOG, default target/skips.log: one line per skip,
# "<test>\t<reason>", written by gpurun_integration::skip (integration/src/skip.rs) and by the
# engine scripts' skip (integration/engines/lib.sh). Empty the log before a run (rm -f it).
# Exit status 0 (skips are reported, not failures).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOG=${1:-${GPURUN_SKIP_LOG:-$ROOT/target/skips.log}}
if [ ! -s "$LOG" ]; then
	echo "0 skipped"
	exit 0
fi
n=$(grep -c . "$LOG")
echo "$n skipped"
# reason -> count and tests, most frequent first
awk -F'\t' 'NF >= 2 {
	r = $2; for (i = 3; i <= NF; i++) r = r " " $i
	c[r]++
	if (!((r, $1) in seen)) { seen[r, $1] = 1; v = (r in t) ? t[r] ", " $1 : $1; t[r] = v }
}
NF < 2 { c["(no reason given)"]++; t["(no reason given)"] = $0 }
END { for (r in c) printf "%d\t%s\t%s\n", c[r], r, t[r] }' "$LOG" |
	sort -t$'\t' -k1,1nr -k2 |
	awk -F'\t' '{ printf "  %3d  %s\n       %s\n", $1, $2, $3 }'
