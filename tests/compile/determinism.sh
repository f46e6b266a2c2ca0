#!/bin/sh
# determinism.sh - vmc compile is deterministic: every shipped model
# (models/*.vm) compiled twice, in two directories reached by different
# paths, gives byte-identical .vmx files; the file starts with "vmx 1",
# ends with "end" and holds no absolute path.  Also: `vmc diff` of a model
# against its own .vmx finds no difference (the reader and the compiler
# build the same structure).
#
# Environment: VMC (default: compiler/vmc of the tree), top_srcdir (default:
# the tree this script sits in), VML_STDLIB (default: $top_srcdir/stdlib).
set -u
LC_ALL=C
export LC_ALL
here=$(cd "$(dirname "$0")" && pwd)
top=${top_srcdir:-$(cd "$here/../.." && pwd)}
vmc=${VMC:-$top/compiler/vmc}
if [ ! -x "$vmc" ]; then
  echo "determinism.sh: no vmc at $vmc" >&2
  exit 99
fi
VML_STDLIB=${VML_STDLIB:-$top/stdlib}
export VML_STDLIB
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vml-determinism.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/a" "$tmp/b" "$tmp/b/deeper"

fail=0
n=0
for m in "$top"/models/*.vm; do
  name=$(basename "$m" .vm)
  cp "$m" "$tmp/b/deeper/$name.vm"
  if ! (cd "$tmp/a" && "$vmc" compile "$m" >/dev/null 2>&1); then
    echo "FAIL $name: vmc compile failed"; fail=1; continue
  fi
  if ! (cd "$tmp/b" && "$vmc" compile "deeper/$name.vm" >/dev/null 2>&1); then
    echo "FAIL $name: vmc compile of a copy failed"; fail=1; continue
  fi
  for x in "$tmp"/a/*.vmx; do
    [ -f "$x" ] || continue
    b=$tmp/b/$(basename "$x")
    if ! cmp -s "$x" "$b"; then
      echo "FAIL $name: $(basename "$x") differs between two compilations"
      diff "$x" "$b" | head -20
      fail=1
    fi
    if [ "$(head -n 1 "$x")" != "vmx 1" ] || [ "$(tail -n 1 "$x")" != "end" ]; then
      echo "FAIL $name: $(basename "$x") lacks the 'vmx 1' header or the 'end' line"; fail=1
    fi
    if grep -q -e "$tmp" -e "$top" "$x"; then
      echo "FAIL $name: $(basename "$x") holds an absolute path"; fail=1
    fi
    if ! (cd "$tmp/a" && "$vmc" diff "$m" "$(basename "$x")" >"$tmp/diff.out" 2>&1); then
      echo "FAIL $name: vmc diff $name.vm $(basename "$x") is not empty"; cat "$tmp/diff.out"; fail=1
    fi
    n=$((n + 1))
  done
  rm -f "$tmp"/a/*.vmx "$tmp"/b/*.vmx
done
echo "$n models compiled twice"
exit $fail
