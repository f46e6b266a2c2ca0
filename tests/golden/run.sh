#!/bin/sh
# run.sh - run the golden tests: each tests/golden/NAME.vmt is a vml source,
# the vmc arguments, and the exact output and exit status expected.
#
#   tests/golden/run.sh                  run every case
#   tests/golden/run.sh NAME...          run some (NAME, NAME.vmt or a path)
#   tests/golden/run.sh --update [NAME...]
#                                        rewrite the expectations from what
#                                        vmc prints now (then read the diff!)
#
# Environment: VMC (the vmc to test; default: the one in the build tree),
# VML_STDLIB (passed on to vmc; default: the stdlib/ of the source tree).
# The file format is described in tests/golden/README.md.
set -u
LC_ALL=C
export LC_ALL

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

update=0
if [ "${1-}" = "--update" ]; then
  update=1
  shift
fi

# --- find vmc -----------------------------------------------------------
abspath() { # a path made absolute (the program runs in a temporary dir)
  case $1 in
  /*) printf '%s\n' "$1" ;;
  */*) printf '%s/%s\n' "$(cd "$(dirname "$1")" && pwd)" "$(basename "$1")" ;;
  *) command -v "$1" ;;
  esac
}
if [ -n "${VMC-}" ]; then
  vmc=$(abspath "$VMC") || vmc=
else
  vmc=
  for c in "$PWD/compiler/vmc" "$top/compiler/vmc" "$PWD/../compiler/vmc"; do
    if [ -x "$c" ]; then vmc=$(abspath "$c"); break; fi
  done
fi
if [ -z "$vmc" ] || [ ! -x "$vmc" ]; then
  echo "run.sh: no vmc to test (${VMC:-compiler/vmc not built}); build it or set VMC" >&2
  exit 99 # a hard error for automake's test driver, not a skip
fi
if [ -z "${VML_STDLIB-}" ] && [ -d "$top/stdlib" ]; then
  VML_STDLIB=$top/stdlib
  export VML_STDLIB
fi
stdlib=${VML_STDLIB-}
if [ -n "$stdlib" ] && [ -d "$stdlib" ]; then stdlib=$(cd "$stdlib" && pwd); fi

to=
if command -v timeout >/dev/null 2>&1; then to="timeout 10"; fi

tmproot=$(mktemp -d "${TMPDIR:-/tmp}/vml-golden.XXXXXX") || exit 99
trap 'rm -rf "$tmproot"' EXIT
trap 'exit 130' HUP INT TERM

# --- the cases ------------------------------------------------------------
if [ $# -eq 0 ]; then
  set -- "$here"/*.vmt
  [ -e "$1" ] || { echo "run.sh: no cases in $here" >&2; exit 99; }
fi

# Unpacks one case into the directory $2: writes its files and main source
# there, the text after "%% args:" to $4, and prints "expect LINE STATUS" (the line of the
# %% expect directive and the status), "argv" for a %% argv: case, or
# "error MESSAGE" for a malformed case.  The expected output is taken from
# the .vmt with tail (byte for byte, even without a final newline).
unpack() {
  awk -v dir="$2" -v name="$3" -v argsfile="$4" '
    function open_file(path) {
      if (out != "") close(out)
      out = dir "/" path
      if (path ~ /\//) system("mkdir -p \"" dir "/" substr(path, 1, match(path, /\/[^\/]*$/) - 1) "\"")
      printf "" > out
    }
    /^%%/ {
      if (out != "") { close(out); out = "" }
      line = $0
      if (line ~ /^%% file: /) {
        fname = substr(line, 10)
        if (fname !~ /^[A-Za-z0-9_][A-Za-z0-9_.\/-]*$/ || fname ~ /\.\./) {
          print "error bad file name \"" fname "\" on line " NR; bad = 1; exit
        }
        open_file(fname)
      } else if (line ~ /^%% args:/ || line ~ /^%% argv:/) {
        if (line ~ /^%% argv:/) print "argv"
        print substr(line, 9) > argsfile; close(argsfile)
        open_file(name ".vm")
        seen_args = 1
      } else if (line ~ /^%% expect [0-9]+$/) {
        if (!seen_args) { print "error %% expect before %% args on line " NR; bad = 1; exit }
        print "expect", NR, substr(line, 11)
        seen_expect = 1
        exit
      } else {
        print "error unknown directive on line " NR ": " line; bad = 1; exit
      }
      next
    }
    out != "" { print > out }
    END { if (!seen_expect && !bad) print "error no %% expect line" }
  ' "$1"
}

# sed expressions that show machine-dependent paths as <stdlib> and <tmp>
# (sed, unlike awk, keeps a missing final newline missing).
bre() { printf '%s\n' "$1" | sed 's/[]\/$*.^[]/\\&/g'; }
dir=$tmproot/case
{ [ -z "$stdlib" ] || echo "s/$(bre "$stdlib")/<stdlib>/g"
  echo "s/$(bre "$dir")/<tmp>/g"; } >"$tmproot/shown.sed"

pass=0
fail=0
failed=
for arg; do
  name=${arg##*/}
  name=${name%.vmt}
  case $arg in
  */*) vmt=$arg ;;
  *) vmt=$here/$name.vmt ;;
  esac
  if [ ! -f "$vmt" ]; then
    echo "FAIL $name (no such case: $vmt)"
    fail=$((fail + 1)); failed="$failed $name"
    continue
  fi
  rm -rf "$dir"
  mkdir "$dir"
  : >"$tmproot/args"
  unpack "$vmt" "$dir" "$name" "$tmproot/args" >"$tmproot/plan"
  argv=0 expline= want= err=
  while read -r what a b; do
    case $what in
    argv) argv=1 ;;
    expect) expline=$a want=$b ;;
    error) err="$a $b" ;;
    esac
  done <"$tmproot/plan"
  if [ -n "$err" ]; then
    echo "FAIL $name (malformed case: $err)"
    fail=$((fail + 1)); failed="$failed $name"
    continue
  fi
  IFS= read -r args <"$tmproot/args"
  [ -f "$dir/$name.vm" ] || : >"$dir/$name.vm"
  tail -n +"$((expline + 1))" "$vmt" >"$tmproot/expected"

  if [ "$argv" = 1 ]; then
    cmd="$to \"\$vmc\" $args" shown="vmc ${args# }"
  else
    cmd="$to \"\$vmc\" $args \"\$name.vm\"" shown="vmc ${args# } $name.vm"
  fi
  (cd "$dir" && eval "$cmd") >"$tmproot/raw" 2>&1 </dev/null
  got=$?
  sed -f "$tmproot/shown.sed" "$tmproot/raw" >"$tmproot/actual"

  if [ "$update" = 1 ]; then
    { head -n "$((expline - 1))" "$vmt"
      echo "%% expect $got"
      cat "$tmproot/actual"; } >"$tmproot/new"
    if cmp -s "$tmproot/new" "$vmt"; then
      echo "PASS $name"
      pass=$((pass + 1))
    else
      cat "$tmproot/new" >"$vmt"
      echo "UPDATED $name (exit $got)"
      pass=$((pass + 1))
    fi
    continue
  fi

  if [ "$got" = "$want" ] && cmp -s "$tmproot/expected" "$tmproot/actual"; then
    echo "PASS $name"
    pass=$((pass + 1))
  else
    if [ "$got" != "$want" ]; then
      echo "FAIL $name (exit status $got, expected $want)"
    else
      echo "FAIL $name"
    fi
    diff -u "$tmproot/expected" "$tmproot/actual" |
      sed -e "1s|.*|--- $name.vmt (expected)|" -e "2s|.*|+++ $shown (actual)|"
    fail=$((fail + 1)); failed="$failed $name"
  fi
done

echo "$pass passed, $fail failed"
if [ "$fail" -gt 0 ]; then
  echo "failed:$failed"
  [ "$update" = 1 ] || echo "(after an intended change: tests/golden/run.sh --update NAME..., then review git diff)"
  exit 1
fi
exit 0
