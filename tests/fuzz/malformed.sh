#!/bin/sh
# malformed.sh - vmc must survive malformed input: for every generated bad
# file, `vmc check FILE` exits with status 1 (never a crash, a hang or 0)
# and prints at least one located error `FILE:LINE:COL: error: ...`.
#
# The inputs are made on the fly, deterministically, in a temporary
# directory: truncations of every shipped model and stdlib module at many
# byte offsets, seeded random bytes and token soup, NUL/0xff/broken UTF-8,
# 10^5-deep nesting, huge numbers, 100k-character identifiers and lines,
# import cycles and missing modules, and files that are empty or hold only
# comments or imports (for those, which may be valid, exit 0 is accepted).
#
#   tests/fuzz/malformed.sh            run everything
#   KEEP=1 tests/fuzz/malformed.sh     keep the inputs and print where
#   TRUNCATIONS=500 tests/fuzz/malformed.sh
#                                      cut each model at more offsets (25)
#   RANDOM_CASES=1000 tests/fuzz/malformed.sh
#                                      more random inputs (45; SEED=N for others)
#   FUZZ_FRONTEND=path/to/fuzz_frontend tests/fuzz/malformed.sh
#                                      also feed the inputs to the libFuzzer
#                                      harness (used when built, by default)
#
# Environment as for tests/golden/run.sh: VMC, VML_STDLIB, top_srcdir.
set -u
LC_ALL=C
export LC_ALL

here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${top_srcdir-}" ] && [ -d "$top_srcdir/models" ]; then
  top=$(cd "$top_srcdir" && pwd)
else
  top=$(cd "$here/../.." && pwd)
fi

abspath() {
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
  echo "malformed.sh: no vmc to test (${VMC:-compiler/vmc not built}); build it or set VMC" >&2
  exit 99
fi
if [ -z "${VML_STDLIB-}" ] && [ -d "$top/stdlib" ]; then
  VML_STDLIB=$top/stdlib
  export VML_STDLIB
fi

harness=${FUZZ_FRONTEND-}
if [ -z "$harness" ]; then
  for c in "$PWD/tests/fuzz/fuzz_frontend" "$top/tests/fuzz/fuzz_frontend"; do
    if [ -x "$c" ]; then harness=$c; break; fi
  done
fi

to=
if command -v timeout >/dev/null 2>&1; then to="timeout 10"; fi

work=$(mktemp -d "${TMPDIR:-/tmp}/vml-malformed.XXXXXX") || exit 99
if [ -n "${KEEP-}" ]; then
  trap 'echo "inputs kept in $work"' EXIT
else
  trap 'rm -rf "$work"' EXIT
fi
trap 'exit 130' HUP INT TERM
cases=$work/cases
mkdir -p "$cases"

# Each case is a directory cases/NAME holding main.vm (the file checked) and
# perhaps modules it imports, plus a file `expect`: "bad" (status 1 and a
# located error) or "any" (status 0, or 1 with an error message).
n=0
newcase() { # NAME CLASS: creates the directory, sets $c to it
  n=$((n + 1))
  c=$cases/$(printf '%04d' $n)-$1
  mkdir -p "$c"
  echo "$2" >"$c/expect"
}
# Repeats a string N times, quickly (doubling).
rep() {
  awk -v s="$1" -v n="$2" 'BEGIN {
    out = ""; while (n > 0) { if (n % 2) out = out s; s = s s; n = int(n / 2) }
    printf "%s", out }'
}

# ---------------------------------------------------------------- truncations
# For each byte offset of a file: is the prefix that long surely malformed,
# that is, inside a string or with a bracket left open?  Comments and
# strings are followed so that their brackets do not count.
open_prefixes() { # FILE -> lines "OFFSET OPEN" for about $TRUNCATIONS offsets
  awk -v want="${TRUNCATIONS:-25}" '
    { text = text $0 "\n" }
    END {
      len = length(text); depth = 0; str = 0; com = 0
      open[0] = 0
      for (i = 1; i <= len; i++) {
        ch = substr(text, i, 1)
        if (com) { if (ch == "\n") com = 0 }
        else if (str) {
          if (ch == "\\") { i++; open[i - 1] = 1 }
          else if (ch == "\"" || ch == "\n") str = 0
        }
        else if (ch == "#") com = 1
        else if (ch == "\"") str = 1
        else if (ch == "(" || ch == "[" || ch == "{") depth++
        else if (ch == ")" || ch == "]" || ch == "}") depth--
        open[i] = (depth > 0 || str)
      }
      step = int(len / want); if (step < 1) step = 1
      for (k = 1; k < len; k += step) {
        off = k + (k * 7919) % step   # not always at the same phase
        if (off >= len) off = len - 1
        print off, open[off]
      }
    }' "$1"
}

for f in "$top"/models/*.vm "$top"/stdlib/*.vm "$top"/examples/*.vm; do
  [ -f "$f" ] || continue
  base=$(basename "$f" .vm)
  open_prefixes "$f" >"$work/offsets"
  while read -r off isopen; do
    if [ "$isopen" = 1 ]; then cls=bad; else cls=any; fi
    newcase "trunc-$base-$off" "$cls"
    head -c "$off" "$f" >"$c/main.vm"
  done <"$work/offsets"
  # The whole file with its last line cut in the middle of a token, and
  # with junk appended: both surely bad.
  newcase "junk-after-$base" bad
  { cat "$f"; printf '\n}\n$\n'; } >"$c/main.vm"
  newcase "nul-after-$base" bad
  { cat "$f"; printf "\000\n"; } >"$c/main.vm"
done

# ---------------------------------------------------------------- random bytes
# Park-Miller generator (exact in awk's doubles): the same bytes everywhere.
# Every file ends with "\n$\n": '$' is an error in any context (a newline
# ends comments and strings), so each input is surely malformed.
nrandom=${RANDOM_CASES:-45}
awk -v dir="$cases" -v start="$n" -v count="$nrandom" -v seed="${SEED:-20240601}" '
  function rnd(m) { seed = (seed * 16807) % 2147483647; return seed % m }
  BEGIN {
    ntok = split("model m { } ( ) [ ] , = ~ | || : ; . import as fn net " \
      "hyper data from in encoder decoder prior critic implicit " \
      "autoregressive param init loss train stage minimize maximize with " \
      "over freeze for if else return log KL E flow through estimator " \
      "true false and or not + - * / % @ < > <= >= == != × x z q p " \
      "nn.mlp Normal 0 1 784 1e-3 .5 \"s\" \"unterminated # comment",
      tok, " ")
    for (t = 0; t < count; t++) {
      kind = t % 3
      name = sprintf("%s/%04d-%s-%d", dir, start + t + 1,
                     kind == 0 ? "bytes" : kind == 1 ? "tokens" : "text", t)
      system("mkdir -p \"" name "\"")
      print "bad" > (name "/expect"); close(name "/expect")
      f = name "/main.vm"
      len = 1 + rnd(kind == 1 ? 400 : 3000)
      for (i = 0; i < len; i++) {
        if (kind == 0) printf "%c", rnd(256) > f                 # any byte
        else if (kind == 1) printf "%s%s", tok[1 + rnd(ntok)], rnd(8) ? " " : "\n" > f
        else printf "%c", 9 + rnd(118) > f                       # ASCII text
      }
      printf "\n$\n" > f
      close(f)
    }
  }'
n=$((n + nrandom))

# ---------------------------------------------------------------- bytes
bytes() { # NAME CLASS PRINTF-FORMAT
  newcase "$1" "$2"
  printf "$3" >"$c/main.vm"
}
bytes nul bad 'model m {\000}\n'
bytes nul-only bad '\000'
bytes ff bad 'model m { hyper a = 1 \377 }\n'
bytes ff-only bad '\377\377\377\377'
bytes utf8-cut-times bad 'model m { loss l = 2 \303'            # half of '×' at EOF
bytes utf8-cut-times-mid bad 'model m { loss l = 2 \303 3 }\n'
bytes utf8-lone-continuation bad 'model m { hyper a = \227 }\n'
bytes utf8-overlong-slash bad 'model m { hyper a = \300\257 }\n'
bytes utf8-4byte bad 'model m { hyper \360\237\230\200 = 1 }\n'
bytes utf8-in-string-ok-then-bad bad 'model m { data x : bit[4] from files("\316\273") $ }\n'
bytes bom any '\357\273\277model m { }\n'      # a BOM may one day be skipped
bytes cr-only-lines bad 'model m {\r  hyper a = $\r}\r'
bytes crlf any 'model m {\r\n  hyper a = 1\r\n}\r\n'
bytes no-final-newline any 'model m { }'
bytes string-eof bad 'model m { data x : bit[4] from files("abc'
bytes string-backslash-eof bad 'model m { data x : bit[4] from files("abc\\'
bytes string-backslash-newline bad 'model m { data x : bit[4] from files("abc\\\n") }\n'
bytes string-nul bad 'model m { data x : bit[4] from files("a\000b") }\n$\n'
bytes comment-eof any '# only a comment, no newline'
bytes empty any ''
bytes blank any '\n\n   \t\n'
bytes only-imports any 'import nn\nimport nn as n2\n'
bytes semicolon-top bad ';\n'
bytes brace-top bad '}\n'
bytes model-unclosed bad 'model m {'
bytes model-no-name bad 'model { }\n'
bytes keyword-soup bad 'model model model { { { ) ) ) ] ] ]\n'
bytes dangling-operators bad 'model m { loss l = + * / - }\n'
bytes bar-soup bad 'model m { loss l = p(| | |) || KL(||) }\n'
bytes times-alone bad '\303\227\n'
bytes control-chars bad 'model m {\001\002\003\033[31m }\n'
bytes del bad 'model m { \177 }\n'
bytes only-dollar bad '$'

# ---------------------------------------------------------------- big inputs
big() { # NAME CLASS: a new case; its main.vm is $c/main.vm
  newcase "$1" "$2"
  m=$c/main.vm
}
N=100000
big deep-parens bad
{ printf 'model m {\n  loss l = '; rep '(' $N; printf '1'; rep ')' $N; printf '\n}\n'; } >"$m"
big deep-brackets bad
{ printf 'model m {\n  loss l = '; rep '[' $N; printf '1'; rep ']' $N; printf '\n}\n'; } >"$m"
big deep-braces bad
{ printf 'model m {\n  encoder q(z | x) '; rep '{ ' $N; rep '} ' $N; printf '\n}\n'; } >"$m"
big deep-ifs bad
{ printf 'fn f(x) {\n'; rep 'if x { ' $N; rep '} ' $N; printf '\n  return x\n}\n'; } >"$m"
big deep-unary-minus bad
{ printf 'model m {\n  loss l = '; rep '- ' $N; printf '1\n}\n'; } >"$m"
big deep-not bad
{ printf 'model m {\n  loss l = '; rep 'not ' $N; printf 'true\n}\n'; } >"$m"
big deep-calls bad
{ printf 'model m {\n  loss l = '; rep 'f(' $N; printf '1'; rep ')' $N; printf '\n}\n'; } >"$m"
big long-member-chain bad
{ printf 'model m {\n  loss l = undefined_a'; rep '.b' $N; printf '\n}\n'; } >"$m"
big long-index-chain bad
{ printf 'model m {\n  loss l = undefined_a'; rep '[0]' $N; printf '\n}\n'; } >"$m"
# Long left-leaning chains parse without a deep parser stack but give a
# deep tree: later passes must not recurse out of stack.  The names are
# undefined, so the file is an error for the name resolver.
big long-sum-undefined bad
{ printf 'model m {\n  loss l = undefined_a'; rep ' + undefined_a' $N; printf '\n}\n'; } >"$m"
# Ten times longer (2 MB): now the name resolver (resolve.c) meets it too.
big longer-sum-undefined bad
{ printf 'model m {\n  loss l = u'; rep '+u' 1000000; printf '\n}\n'; } >"$m"
# The same with defined names: now the tree reaches the evaluator (shape.c),
# and a type error at the end makes the file an error.
big long-sum-defined bad
{ printf 'model m {\n  hyper a = 1\n  loss l = a'; rep ' + a' $N; printf ' + "s"\n}\n'; } >"$m"
big long-member-chain-defined bad
{ printf 'model m {\n  hyper a = 1\n  loss l = a'; rep '.b' $N; printf '\n}\n'; } >"$m"
big long-index-chain-defined bad
{ printf 'model m {\n  hyper a = [1]\n  loss l = a'; rep '[0]' $N; printf '\n}\n'; } >"$m"
big long-call-chain-defined bad
{ printf 'fn f() = f\nmodel m {\n  loss l = f'; rep '()' $N; printf ' + "s"\n}\n'; } >"$m"
big long-list-sum-defined bad
{ printf 'model m {\n  hyper a = [1]'; rep ' + [1]' $N; printf '\n  loss l = a + "s"\n}\n'; } >"$m"
big long-product-then-junk bad
{ printf 'model m {\n  loss l = 1'; rep ' * 1' $N; printf ' $\n}\n'; } >"$m"
big long-list-then-junk bad
{ printf 'model m {\n  hyper a = [1'; rep ', 1' $N; printf ']\n  $\n}\n'; } >"$m"
big huge-integer-100k-digits bad
{ printf 'model m {\n  hyper a = '; rep '9' 100000; printf '\n}\n'; } >"$m"
big huge-integer bad
printf 'model m {\n  hyper a = 99999999999999999999999\n}\n' >"$m"
big huge-float bad
printf 'model m {\n  hyper a = 1e999999\n}\n' >"$m"
big huge-exponent bad
printf 'model m {\n  hyper a = 1e999999999999999999999999999\n}\n' >"$m"
big tiny-float-then-junk bad
{ printf 'model m {\n  hyper a = 0.'; rep '0' 100000; printf '1 $\n}\n'; } >"$m"
big long-float-overflow bad
{ printf 'model m {\n  hyper a = 1.'; rep '5' 100000; printf 'e999\n}\n'; } >"$m"
big long-identifier bad
{ printf 'model m {\n  hyper '; rep 'a' 100000; printf ' = 1\n}\n'; } >"$m"
big long-line-error-at-end bad
{ printf 'model m {\n  hyper a = 1 '; rep '     ' 200000; printf '$\n}\n'; } >"$m"
big long-string bad
{ printf 'model m {\n  data x : bit[4] from files("'; rep 'abcdefghij' 100000; printf '") $\n}\n'; } >"$m"
big long-unterminated-string bad
{ printf 'model m {\n  data x : bit[4] from files("'; rep 'abcdefghij' 100000; printf '\n}\n'; } >"$m"
big many-lines-then-error bad
{ rep '# comment line\n' 100000; printf 'model m { $ }\n'; } >"$m"
big ten-thousand-errors bad
{ printf 'model m {\n'; rep '  hyper a = $\n' 10000; printf '}\n'; } >"$m"
big ten-thousand-syntax-errors bad
{ printf 'model m {\n'; rep '  loss l = ) ( ]\n' 10000; printf '}\n'; } >"$m"
big many-models bad
{ rep 'model m { $ }\n' 5000; } >"$m"
big many-imports-then-error bad
{ rep 'import nn\n' 10000; printf 'model m { $ }\n'; } >"$m"

# ---------------------------------------------------------------- imports
newcase import-missing bad
printf 'import does_not_exist\nmodel m { }\n' >"$c/main.vm"
newcase import-missing-alias bad
printf 'import does_not_exist as d\nmodel m { }\n' >"$c/main.vm"
newcase import-cycle bad
printf 'import other\nmodel m { }\n' >"$c/main.vm"
printf 'import main\nfn f(x) = x\n' >"$c/other.vm"
newcase import-self bad
printf 'import main\nmodel m { }\n' >"$c/main.vm"
newcase import-cycle-3 bad
printf 'import b\nmodel m { }\n' >"$c/main.vm"
printf 'import c\nfn f(x) = x\n' >"$c/b.vm"
printf 'import b\nfn g(x) = x\n' >"$c/c.vm"
newcase import-syntax-error bad
printf 'import bad\nmodel m { }\n' >"$c/main.vm"
printf 'fn f(x) = x $\n' >"$c/bad.vm"
newcase import-binary-module bad
printf 'import junk\nmodel m { }\n' >"$c/main.vm"
printf '\377\000\001\002' >"$c/junk.vm"
newcase import-directory bad
printf 'import sub\nmodel m { }\n' >"$c/main.vm"
mkdir -p "$c/sub.vm"
newcase import-empty-name bad
printf 'import\nmodel m { }\n' >"$c/main.vm"
newcase import-model-in-module bad
printf 'import mod\nmodel m { }\n' >"$c/main.vm"
printf 'model inner { $ }\n' >"$c/mod.vm"

# ---------------------------------------------------------------- run
# One case: prints "ok NAME" or "FAIL NAME: why" and a few output lines.
run_case() {
  c=$1
  name=${c##*/}
  read -r cls <"$c/expect"
  (cd "$c" && $to "$vmc" check main.vm) >"$c/out" 2>&1 </dev/null
  st=$?
  why=
  if [ $st -eq 124 ]; then
    why="timed out (10 s)"
  elif [ $st -ge 128 ]; then
    why="crashed (status $st: signal $((st - 128)))"
  elif grep -q -e 'Sanitizer' -e 'runtime error:' "$c/out"; then
    why="sanitizer report"
  elif [ "$cls" = bad ]; then
    if [ $st -ne 1 ]; then
      why="exit status $st, expected 1"
    elif ! grep -E -q '^[^:]+:[0-9]+:[0-9]+: error: ' "$c/out"; then
      why="no located error in the output"
    fi
  else
    if [ $st -ne 0 ] && [ $st -ne 1 ]; then
      why="exit status $st, expected 0 or 1"
    elif [ $st -eq 1 ] && ! grep -q 'error: ' "$c/out"; then
      why="exit status 1 without an error message"
    fi
  fi
  if [ -z "$why" ]; then
    echo "ok $name"
  else
    echo "FAIL $name: $why"
    head -c 600 "$c/out" | head -n 6 | sed 's/^/    /'
  fi
  if [ -n "$harness" ]; then
    if $to "$harness" "$c/main.vm" >"$c/harness.out" 2>&1 </dev/null; then
      echo "ok harness $name"
    else
      echo "FAIL harness $name: the fuzz harness failed on it"
      tail -n 20 "$c/harness.out" | sed 's/^/    /'
    fi
  fi
}

# The cases run in a few parallel lanes (vmc starts slowly under ASan).
lanes=$(nproc 2>/dev/null || echo 2)
[ "$lanes" -gt 4 ] && lanes=4
[ "$lanes" -lt 1 ] && lanes=1
lane=0
while [ $lane -lt $lanes ]; do
  (
    k=0
    for c in "$cases"/*/; do
      [ $((k % lanes)) -eq $lane ] && run_case "${c%/}"
      k=$((k + 1))
    done
  ) >"$work/lane$lane" &
  lane=$((lane + 1))
done
wait
cat "$work"/lane* >"$work/results"

grep -v '^ok ' "$work/results"
pass=$(grep -c '^ok [0-9]' "$work/results")
fail=$(grep -c '^FAIL [0-9]' "$work/results")
if [ -n "$harness" ]; then
  hpass=$(grep -c '^ok harness ' "$work/results")
  hfail=$(grep -c '^FAIL harness ' "$work/results")
  echo "fuzz harness ($harness): $hpass passed, $hfail failed"
else
  hfail=0
fi
echo "$pass passed, $fail failed"
if [ "$fail" -gt 0 ] || [ "$hfail" -gt 0 ]; then
  [ -n "${KEEP-}" ] || echo "(KEEP=1 $0 keeps the inputs for a look)"
  exit 1
fi
exit 0
