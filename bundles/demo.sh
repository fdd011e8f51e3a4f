#!/bin/sh
# The README's first command (`make demo`): run the busybox bundle through the whole OCI
# lifecycle, printing each step. Usage: bundles/demo.sh GPURUN_BINARY
set -eu
GPURUN=$(readlink -f "${1:?usage: demo.sh path/to/gpurun}")
HERE=$(cd "$(dirname "$0")" && pwd)
BUNDLE="$HERE/busybox"
ROOT=$(mktemp -d /tmp/gpurun-demo.XXXXXX)
ID="demo-$$"
G="$GPURUN --root $ROOT"
trap '$G delete --force "$ID" >/dev/null 2>&1 || true; rm -rf "$ROOT"' EXIT

"$HERE/build.sh" "$BUNDLE" >/dev/null
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step $G create --bundle "$BUNDLE" "$ID"
step $G state "$ID"
step $G start "$ID"
# The container prints its greeting and exits; wait for that before looking again.
i=0
while [ "$($G state "$ID" | sed -n 's/.*"status": "\(.*\)".*/\1/p')" != stopped ] && [ $i -lt 100 ]; do
	sleep 0.05; i=$((i + 1))
done
step $G state "$ID"
step $G delete "$ID"
printf '\n$ %s run (create + start + wait + delete in one step)\n' "$G"
cd "$BUNDLE" && $G run "$ID-run"
echo "exit status: $?"
