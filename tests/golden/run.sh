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

# Plan of one case: one line per section, as
#   file START END NAME     extra file: lines START..END
#   args LINE               the %% args: line (LINE is its number)
#   argv LINE               the %% argv: line
#   source START END        the main source
#   expect LINE STATUS      the %% expect line; the output follows it
#   error MESSAGE           a malformed case
plan() {
  awk '
    function close_section(end) {
      if (kind == "file") print "file", start, end, fname
      else if (kind == "source" && end >= start) print "source", start, end
      kind = ""
    }
    /^%%/ {
      close_section(NR - 1)
      line = $0
      if (line ~ /^%% file: /) {
        fname = substr(line, 10)
        if (fname !~ /^[A-Za-z0-9_][A-Za-z0-9_.\/-]*$/ || fname ~ /\.\./) {
          print "error bad file name \"" fname "\" on line " NR; exit
        }
        kind = "file"; start = NR + 1
      } else if (line ~ /^%% args:/ || line ~ /^%% argv:/) {
        print substr(line, 4, 4), NR
        kind = "source"; start = NR + 1
        seen_args = 1
      } else if (line ~ /^%% expect [0-9]+$/) {
        if (!seen_args) { print "error %% expect before %% args on line " NR; exit }
        print "expect", NR, substr(line, 11)
        seen_expect = 1
        exit
      } else {
        print "error unknown directive on line " NR ": " line; exit
      }
    }
    END {
      if (!seen_expect) print "error no %% expect line"
    }
  ' "$1"
}

# Replaces every occurrence of the literal string $2 by $3 (no regexps).
subst() {
  awk -v from="$1" -v to="$2" '
    from == "" { print; next }
    {
      out = ""; s = $0
      while ((i = index(s, from)) > 0) {
        out = out substr(s, 1, i - 1) to
        s = substr(s, i + length(from))
      }
      print out s
    }'
}

pass=0
fail=0
failed=
for arg; do
  name=$(basename "$arg" .vmt)
  case $arg in
  */*) vmt=$arg ;;
  *) vmt=$here/$name.vmt ;;
  esac
  if [ ! -f "$vmt" ]; then
    echo "FAIL $name (no such case: $vmt)"
    fail=$((fail + 1)); failed="$failed $name"
    continue
  fi
  dir=$tmproot/$name
  mkdir -p "$dir"
  plan "$vmt" >"$tmproot/plan"
  args= argv=0 expline= want= err=
  while read -r what a b c; do
    case $what in
    file)
      mkdir -p "$dir/$(dirname "$c")"
      if [ "$b" -ge "$a" ]; then sed -n "${a},${b}p" "$vmt"; fi >"$dir/$c" ;;
    args | argv)
      [ "$what" = argv ] && argv=1
      args=$(sed -n "${a}p" "$vmt" | cut -c9-) ;;
    source) sed -n "${a},${b}p" "$vmt" >"$dir/$name.vm" ;;
    expect) expline=$a want=$b ;;
    error) err="$a $b $c" ;;
    esac
  done <"$tmproot/plan"
  if [ -n "$err" ]; then
    echo "FAIL $name (malformed case: $err)"
    fail=$((fail + 1)); failed="$failed $name"
    continue
  fi
  [ -f "$dir/$name.vm" ] || : >"$dir/$name.vm"
  tail -n +"$((expline + 1))" "$vmt" >"$tmproot/expected"

  if [ "$argv" = 1 ]; then
    cmd="$to \"\$vmc\" $args"
  else
    cmd="$to \"\$vmc\" $args \"\$name.vm\""
  fi
  (cd "$dir" && eval "$cmd") >"$tmproot/raw" 2>&1 </dev/null
  got=$?
  # Paths that differ between machines are shown as <stdlib> and <tmp>.
  subst "$stdlib" "<stdlib>" <"$tmproot/raw" | subst "$dir" "<tmp>" >"$tmproot/actual"
  if [ "$(tail -c 1 "$tmproot/raw" | od -An -c | tr -d ' ')" != '\n' ] && [ -s "$tmproot/raw" ]; then
    # awk ended the last line; keep the output byte-exact
    head -c -1 "$tmproot/actual" >"$tmproot/actual.2" && mv "$tmproot/actual.2" "$tmproot/actual"
  fi

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
    rm -rf "$dir"
    continue
  fi

  if [ "$got" = "$want" ] && cmp -s "$tmproot/expected" "$tmproot/actual"; then
    echo "PASS $name"
    pass=$((pass + 1))
    rm -rf "$dir"
  else
    if [ "$got" != "$want" ]; then
      echo "FAIL $name (exit status $got, expected $want)"
    else
      echo "FAIL $name"
    fi
    diff -u "$tmproot/expected" "$tmproot/actual" |
      sed -e "1s|.*|--- $name.vmt (expected)|" -e "2s|.*|+++ vmc $args $name.vm (actual)|"
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
