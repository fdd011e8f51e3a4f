#!/bin/bash
# The AI-service rows of bench/build.sh: a Flask + numpy service on a Debian base in four
# Dockerfile shapes (single, multi, venv, weights .Dockerfile), built by gpurun-build
# and by buildah in the same run: cold build, rebuild after an app.py edit, no-change rebuild
# (hyperfine), peak memory of one cold build. Prints a markdown section on stdout.
# Usage (root): ai.sh GPURUN_BUILD GPURUN WORKDIR   (WORKDIR: empty scratch dir, removed after)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=$1 RUNTIME=$2 W=$3
BUILDAH=${BUILDAH:-/usr/bin/buildah}
CACHE=$("$HERE/base.sh")
BASE=oci:$CACHE/debian-oci:base
SHAPES=${BENCH_AI_SHAPES:-single multi venv weights}
WEIGHTS_MB=${BENCH_WEIGHTS_MB:-500} # MiB

bh() { "$BUILDAH" --root "$W/bh-root" --runroot "$W/bh-run" --storage-driver "$DRIVER" "$@"; }
cleanup() {
	bh rm -a >/dev/null 2>&1 || true
	bh rmi -a -f >/dev/null 2>&1 || true
	# containers/storage can leave its overlay home mounted: deepest first
	{ grep -F " $W/" /proc/self/mountinfo || true; } | awk '{print $5}' | sort -r |
		while read -r m; do umount -l "$m" || true; done
	if [ -n "$LOOPFS" ] && mountpoint -q "$W"; then umount "$W" || umount -l "$W"; fi
	rm -rf "$W"
	[ -z "$LOOPFS" ] || rm -f "$LOOPFS"
}
LOOPFS=""
trap cleanup EXIT
mkdir -p "$W"
# Both tools' storage (and the contexts) on a journaled ext4 of its own, a sparse loop file, as
# a node's /var/lib is. This dev VM's root is ext4 without a journal, where each new inode is
# checked against every recently freed one (ext4's recently_deleted): right after a wipe, tar
# there created files at ~250 µs each against ~20 µs on the loop fs (perf: half of its time),
# and a cold row measured mostly which tool came after the larger wipe. BENCH_LOOPFS=0: off.
if [ "${BENCH_LOOPFS:-1}" = 1 ]; then
	LOOPFS=$W.ext4
	truncate -s 32G "$LOOPFS"
	mkfs.ext4 -q -F "$LOOPFS"
	mount -o loop "$LOOPFS" "$W"
fi
# overlay if this kernel and storage accept it, else vfs (much slower for buildah: say which)
DRIVER=overlay
bh info >/dev/null 2>&1 || { rm -rf "$W/bh-root" "$W/bh-run"; DRIVER=vfs; }

G="$BUILD --runtime $RUNTIME --network host --build-arg BASE=$BASE -q"
BUD="$BUILDAH --root $W/bh-root --runroot $W/bh-run --storage-driver $DRIVER bud --layers \
--isolation oci --runtime /usr/sbin/runc --network host --build-arg BASE=$BASE -q"
WIPE_BH="sh -c '$BUILDAH --root $W/bh-root --runroot $W/bh-run --storage-driver $DRIVER rm -a; \
$BUILDAH --root $W/bh-root --runroot $W/bh-run --storage-driver $DRIVER rmi -a -f' >/dev/null 2>&1"

# one row: NAME JSON (hyperfine export with gpurun-build first, buildah second) GOAL
row() {
	jq -r --arg n "$1" --arg goal "$3" '.results as $r
		| def t(x): "\(x.median*1000|round/1000) (\(x.min*1000|round/1000)–\(x.max*1000|round/1000))";
		"| \($n) | \(t($r[0])) | \(t($r[1])) | **\($r[0].median/$r[1].median*1000|round/1000)** | \($goal) |"' "$2"
}
hf() { hyperfine --style basic --export-json "$@" >&2; }
# hf_rounds OUT.json ROUNDS HYPERFINE-ARGS...: one run of each command per round, ROUNDS rounds,
# merged into one export (times, min, max, median per command). The two tools alternate, so a
# slow minute of this shared machine falls on both rather than on whichever ran then.
hf_rounds() {
	local out=$1 rounds=$2 r
	shift 2
	local parts=()
	for r in $(seq "$rounds"); do
		hf "$out.$r" --runs 1 "$@"
		parts+=("$out.$r")
	done
	jq -s '. as $all | {results: [range(0; $all[0].results | length) as $i
		| ([$all[].results[$i].times[]] | sort) as $t | ($t | length) as $n
		| {command: $all[0].results[$i].command, times: $t, min: $t[0], max: $t[-1],
		   median: (if $n % 2 == 1 then $t[($n - 1) / 2] else ($t[$n / 2 - 1] + $t[$n / 2]) / 2 end)}]}' \
		"${parts[@]}" > "$out"
}

rows=() mem=()
for s in $SHAPES; do
	ctx=$W/ctx-$s
	mkdir -p "$ctx"
	cp "$HERE/$s.Dockerfile" "$ctx/Dockerfile"
	cp "$HERE/app.py" "$HERE/requirements.txt" "$ctx/"
	cp -r "$CACHE/wheels" "$ctx/wheels"
	if [ "$s" = weights ]; then
		head -c "${WEIGHTS_MB}M" /dev/urandom > "$ctx/weights.bin"
	fi
	g="$G --cache-dir $W/cache-$s --oci-layout $W/out-$s $ctx"
	b="$BUD -t bench-$s $ctx"
	hf_rounds "$W/$s-cold.json" 3 \
		--prepare "rm -rf $W/cache-$s $W/out-$s" --prepare "$WIPE_BH" \
		-n "gpurun-build $s cold" "$g" -n "buildah $s cold" "$b"
	hf "$W/$s-edit.json" --warmup 1 --runs 5 --prepare "$HERE/edit.sh $ctx/app.py" \
		-n "gpurun-build $s edit" "$g" -n "buildah $s edit" "$b"
	hf "$W/$s-same.json" --warmup 1 --runs 5 \
		-n "gpurun-build $s no-change" "$g" -n "buildah $s no-change" "$b"
	rows+=("$(row "$s: cold build" "$W/$s-cold.json" "≤ 1")")
	rows+=("$(row "$s: \`app.py\` edited" "$W/$s-edit.json" "≤ 0.5")")
	rows+=("$(row "$s: no change" "$W/$s-same.json" "≤ 0.3")")
	if [ "$s" = single ]; then
		# the bundle output (what `gpurun run` takes) against the same buildah image build
		$G --cache-dir "$W/cache-$s" --bundle "$W/bundle-$s" "$ctx" >/dev/null 2>&1
		hf "$W/$s-bundle.json" --warmup 1 --runs 5 --prepare "$HERE/edit.sh $ctx/app.py" \
			-n "gpurun-build $s edit --bundle" \
			"$G --cache-dir $W/cache-$s --bundle $W/bundle-$s $ctx" \
			-n "buildah $s edit" "$b"
		rows+=("$(row "$s: \`app.py\` edited, gpurun-build \`--bundle\`" "$W/$s-bundle.json" "≤ 0.5")")
	fi
	# peak memory of one cold build of each, after a wipe (untimed)
	rm -rf "$W/cache-$s" "$W/out-$s" "$W/bundle-$s"
	"$HERE/peak.sh" "$W/$s-mem-g" $g
	sh -c "$WIPE_BH"
	"$HERE/peak.sh" "$W/$s-mem-b" $b
	read -r gt go < "$W/$s-mem-g"
	read -r bt bo < "$W/$s-mem-b"
	mem+=("| $s | $((go / 1024)) | $((bo / 1024)) | $((gt / 1024)) | $((bt / 1024)) |")
	sh -c "$WIPE_BH"
	rm -rf "$W/cache-$s" "$W/out-$s"
done

cat <<EOF
## AI service: Flask + numpy on Debian $(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release), four Dockerfile shapes, gpurun-build vs buildah

\`bench/build/{single,multi,venv,weights}.Dockerfile\`, \`FROM oci:…/debian-oci:base\` for both tools
(debootstrap minbase + python3, python3-venv, python3-pip as one OCI layer, made once by
\`bench/build/base.sh\`); pip installs $(grep -c '==' "$HERE/requirements.txt") pinned packages offline from a wheel directory
in the context; \`weights\` copies a ${WEIGHTS_MB} MiB file of random bytes, then \`app.py\`. gpurun-build: \`--oci-layout\` output, own \`--cache-dir\` per shape;
$("$BUILDAH" --version | cut -d' ' -f1-3): \`bud --layers --isolation oci --runtime runc\`, private
\`--root\`, storage driver **$DRIVER**; both \`--network host\`; both tools' storage on $([ -n "$LOOPFS" ] &&
echo "a journaled ext4 of its own (loop file)" || echo "the host's filesystem"). Seconds, median (min–max) of
hyperfine: cold 3 runs, the tools alternating (cache or buildah storage emptied before each, base
import included), rebuilds 5 runs after 1 warmup; "edited" appends a line to \`app.py\` before each run. Ratio =
gpurun-build / buildah medians; goal from issue 21.

| row | gpurun-build (s) | buildah (s) | ratio | goal |
|---|---:|---:|---:|---:|
$(printf '%s\n' "${rows[@]}")

Peak memory (MB) of one cold build: "own" is the build tool's process alone (VmHWM, sampled
every 10 ms; buildah's re-exec'd helpers not included), "tree" is GNU time's %M, the largest
single process of the whole tree, which here is pip in a RUN step for both (\`weights\` has no
RUN step: there "tree" is the tool itself and its helpers).

| shape | gpurun-build own | buildah own | gpurun-build tree | buildah tree |
|---|---:|---:|---:|---:|
$(printf '%s\n' "${mem[@]}")
EOF
