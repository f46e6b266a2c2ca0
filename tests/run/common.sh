# common.sh - what the tests/run scripts share, sourced first thing as
# `. "$(dirname "$0")/common.sh"`: set -u and the C locale; $here (the
# scripts' directory) and $top (the source tree); the programs under test
# (VMC, VMRUN, or the build tree's), VML_STDLIB, a temporary directory
# removed at exit ($tmp), and check/finish for "N passed, N failed".
set -u
LC_ALL=C
export LC_ALL
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

abspath() { # a path made absolute (the programs run in a temporary dir)
  case $1 in
  /*) printf '%s\n' "$1" ;;
  */*) printf '%s/%s\n' "$(cd "$(dirname "$1")" && pwd)" "$(basename "$1")" ;;
  *) command -v "$1" ;;
  esac
}
find_prog() { # $1 env value, $2 path in the tree
  if [ -n "$1" ]; then
    abspath "$1"
  else
    for c in "$PWD/$2" "$top/$2"; do
      if [ -x "$c" ]; then abspath "$c"; return; fi
    done
  fi
}
vmc=$(find_prog "${VMC-}" compiler/vmc) || vmc=
vmrun=$(find_prog "${VMRUN-}" runtime/vmrun) || vmrun=
for p in "$vmc" "$vmrun"; do
  if [ -z "$p" ] || [ ! -x "$p" ]; then
    echo "$0: no vmc or vmrun to test; build them or set VMC and VMRUN" >&2
    exit 99
  fi
done
if [ -z "${VML_STDLIB-}" ] && [ -d "$top/stdlib" ]; then
  VML_STDLIB=$top/stdlib
  export VML_STDLIB
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vml-run.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' HUP INT TERM

passed=0
failed=0
check() { # $1 what, then a command that must succeed
  what=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
    echo "PASS: $what"
  else
    failed=$((failed + 1))
    echo "FAIL: $what"
  fi
}
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
