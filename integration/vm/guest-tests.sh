#!/bin/sh
# guest-tests.sh TEST_BIN... : run prebuilt Rust test executables one after the
# other (inside the vmrun guest) and exit 1 if any of them failed.
#   env: GPURUN_BIN    runtime under test (the tests read it)
#        VM_TEST_ARGS  extra arguments for every test binary (filter, --nocapture, ...)
#        VM_TEST_TIMEOUT  seconds per binary (default 600; 124 = timed out)
#        VM_RESULTS    if set, a writable dir for BIN.log files and summary.txt
echo "guest: $(uname -r), $(stat -fc %T /sys/fs/cgroup) at /sys/fs/cgroup," \
	"controllers: $(cat /sys/fs/cgroup/cgroup.controllers), cgroup: $(cut -d: -f3 /proc/self/cgroup)"
echo "guest: GPURUN_BIN=${GPURUN_BIN:-unset}"
[ $# -gt 0 ] || { echo "guest-tests.sh: no test binaries given"; exit 2; }
# Engine scripts keep their state under TMPDIR: a tmpfs, not the guest's overlay root (their
# snapshotters cannot stack overlays on an overlay).
export TMPDIR=/run/tmp
mkdir -p "$TMPDIR" && chmod 1777 "$TMPDIR"
failed= summary=
for t in "$@"; do
	name=$(basename "$t")
	echo "=== $name"
	if [ -n "${VM_RESULTS:-}" ]; then
		# keep the binary's status through the pipe to tee
		{ timeout -k 5 "${VM_TEST_TIMEOUT:-600}" "$t" ${VM_TEST_ARGS:-} 2>&1; echo $? >"$VM_RESULTS/$name.rc"; } | tee "$VM_RESULTS/$name.log"
		rc=$(cat "$VM_RESULTS/$name.rc")
	else
		timeout -k 5 "${VM_TEST_TIMEOUT:-600}" "$t" ${VM_TEST_ARGS:-} 2>&1
		rc=$?
	fi
	[ "$rc" = 0 ] && r=ok || { r="FAILED (exit $rc$([ "$rc" = 124 ] && echo ", timed out"))"; failed="$failed $name"; }
	summary="$summary$(printf '%-40s %s' "$name" "$r")
"
done
echo "=== summary"
printf '%s' "$summary" | tee ${VM_RESULTS:+"$VM_RESULTS/summary.txt"}
[ -z "$failed" ] || { echo "failed:$failed"; exit 1; }
