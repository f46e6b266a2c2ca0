#!/bin/sh
# make-corpus.sh OUTDIR - a seed corpus for fuzz_frontend: every source in
# the golden cases (main files and %% file: modules), the shipped models,
# the stdlib and the examples, one file each in OUTDIR.
#
#   tests/fuzz/make-corpus.sh /tmp/vml-corpus
#   tests/fuzz/fuzz_frontend -dict=tests/fuzz/vml.dict /tmp/vml-corpus tests/fuzz/corpus
set -eu
LC_ALL=C
export LC_ALL
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
out=$1
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
mkdir -p "$out"

for vmt in "$top"/tests/golden/*.vmt; do
  [ -f "$vmt" ] || continue
  name=$(basename "$vmt" .vmt)
  # Sources run from a %% file: or %% args:/argv: line to the next %% line.
  awk -v out="$out" -v name="$name" '
    /^%% expect/ { exit }
    /^%%/ {
      if (f) close(f)
      if ($0 ~ /^%% file: /) {
        m = substr($0, 10); gsub(/[^A-Za-z0-9_.-]/, "_", m)
        f = out "/golden-" name "-" m
      } else f = out "/golden-" name ".vm"
      printf "" > f
      next
    }
    f { print > f }
  ' "$vmt"
done
for f in "$top"/models/*.vm "$top"/stdlib/*.vm "$top"/examples/*.vm "$here"/corpus/*; do
  [ -f "$f" ] || continue
  d=$(basename "$(dirname "$f")")
  cp "$f" "$out/$d-$(basename "$f")"
done
echo "$(ls "$out" | wc -l) files in $out"
