#!/bin/sh
# hyperfine --prepare for the edit rows: append a numbered comment line to FILE, so every run
# sees a changed file (new content, size and mtime).
set -eu
n=$(wc -l < "$1")
echo "# edit $n $(date +%s%N)" >> "$1"
