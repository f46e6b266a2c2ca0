#!/bin/sh
# models.sh - golden IR of every shipped model: `vmc compile models/NAME.vm`
# must write exactly tests/compile/expected/NAME.golden (the expected .vmx
# text; named .golden because it is an expectation, not a build product).
#
#   tests/compile/models.sh            compare
#   tests/compile/models.sh --update   rewrite the expectations (then read
#                                      the diff: every change is a change
#                                      of what the runtime will execute)
#
# Environment: VMC (default: compiler/vmc of the tree), top_srcdir,
# VML_STDLIB, as for tests/golden/run.sh.
set -u
LC_ALL=C
export LC_ALL
here=$(cd "$(dirname "$0")" && pwd)
top=${top_srcdir:-$(cd "$here/../.." && pwd)}
vmc=${VMC:-$top/compiler/vmc}
[ -x "$vmc" ] || { echo "models.sh: no vmc at $vmc" >&2; exit 99; }
VML_STDLIB=${VML_STDLIB:-$top/stdlib}
export VML_STDLIB
update=0
[ "${1-}" = "--update" ] && update=1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vml-models.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT

pass=0
fail=0
for m in "$top"/models/*.vm; do
  name=$(basename "$m" .vm)
  want=$top/tests/compile/expected/$name.golden
  if ! (cd "$tmp" && "$vmc" compile -o "$name.vmx" "$m" 2>"$name.err"); then
    echo "FAIL $name: vmc compile failed"
    cat "$tmp/$name.err"
    fail=$((fail + 1))
    continue
  fi
  if [ "$update" = 1 ]; then
    cp "$tmp/$name.vmx" "$want"
    echo "UPDATED $name"
    pass=$((pass + 1))
  elif cmp -s "$tmp/$name.vmx" "$want"; then
    echo "PASS $name"
    pass=$((pass + 1))
  else
    echo "FAIL $name: the compiled graph differs from tests/compile/expected/$name.golden"
    diff -u "$want" "$tmp/$name.vmx" | head -40
    fail=$((fail + 1))
  fi
done
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
