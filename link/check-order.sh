#!/usr/bin/env bash
# Is link/hot-symbols.txt still the order of this gpurun? Counts how many of its Rust names
# (mangled _ZN…/_R…: libc's names never change, so they are left out of the share) the binary
# has. Code changes rename Rust symbols (their hash); lld skips the names it cannot find and
# those functions fall back into cold .text, which raised the peak RSS of `run` from 2.3 to
# 3.8 MiB once without anything failing. Below MIN_PERCENT found, this fails: run `make order`.
# Usage: link/check-order.sh BIN [MIN_PERCENT]   (BIN: an unstripped gpurun; default 90)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$1
MIN=${2:-90}
ORDER=$HERE/hot-symbols.txt
if [ ! -f "$BIN" ]; then
	echo "check-order: skipped: $BIN is not built (make build-bin builds it)" >&2
	exit 0
fi
# not piped into grep -q: readelf's SIGPIPE would read as "stripped" under pipefail
sections=$(readelf -S "$BIN") || { echo "check-order: $BIN: not an ELF file" >&2; exit 2; }
if ! grep -q '\.symtab' <<< "$sections"; then
	echo "check-order: $BIN has no symbol table (stripped): give the unstripped build" >&2
	exit 2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nm "$BIN" | awk 'NF >= 3 { print $3 }' | sort -u > "$tmp/syms"
grep -E '^(_ZN|_R)' "$ORDER" | sort -u > "$tmp/rust"
total=$(wc -l < "$tmp/rust")
[ "$total" -gt 0 ] || { echo "check-order: $ORDER has no Rust names" >&2; exit 2; }
found=$(comm -12 "$tmp/rust" "$tmp/syms" | wc -l)
pct=$((found * 100 / total))
echo "check-order: $found of the $total Rust functions of link/hot-symbols.txt are in $BIN ($pct%)"
if [ "$pct" -lt "$MIN" ]; then
	echo "check-order: the link order is stale (under $MIN%): run \`make order\` and commit link/hot-symbols.txt" >&2
	exit 1
fi
