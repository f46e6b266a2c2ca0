#!/bin/sh
# coverage.sh - checks that every diagnostic the compiler can print appears
# in the expected output of at least one golden case (tests/golden/*.vmt).
#
# It reads the format string of every call
#   diag_error(d, span, "FORMAT", ...)      -> "error: MESSAGE"
#   diag_warning(d, span, "FORMAT", ...)    -> "warning: MESSAGE"
#   diag_note(d, span, "FORMAT", ...)       -> "note: MESSAGE"
#   fail_usage("FORMAT", arg)               -> "error: MESSAGE (see vmc --help)"
# in compiler/*.c and grammar/vml.l, grammar/vml.y, turns it into a pattern
# (each printf conversion such as %s %d %lld %g %.9g %c %02x matches any
# text, %% a percent sign) and looks for a line of some expected output that
# ends with "error: " (or "warning: ", "note: ") followed by the message.
#
# A call may span several lines; adjacent string literals are joined
# ("a" "b" is "ab"); literals separated by anything else (cond ? "a" : "b")
# are separate messages, each of which must be covered.  A message that no
# test can reach goes into tests/golden/coverage-allow.txt, one per line:
#   FILE: FORMAT -- REASON
# with FILE the source's base name and FORMAT exactly as extracted (the
# text between the quotes, escapes as written; see the FAIL lines).
#
# Limits: a message is identified by its text, so two call sites with the
# same format string in one file are one entry, and a line covering one
# covers both.  A format that is not a string literal (a variable) is
# listed as UNCHECKED and does not fail the test.
#
# Prints FAIL (uncovered), and with -v also PASS, per message, then
# "N passed, N failed"; exits 1 if any message is uncovered.
# Environment: top_srcdir (the source tree; default: two levels above this
# script), srcdir (the directory of the cases; default: this script's).
set -u
LC_ALL=C
export LC_ALL

verbose=0
if [ "${1-}" = "-v" ]; then verbose=1; shift; fi

here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${top_srcdir-}" ]; then
  top=$top_srcdir
else
  top=$(cd "$here/../.." && pwd)
fi
# Under automake, srcdir is the top source dir; the cases live below it.
cases=$here
if [ -n "${srcdir-}" ] && [ -d "$srcdir/tests/golden" ]; then cases=$srcdir/tests/golden; fi
allow=$cases/coverage-allow.txt

set -- "$top"/compiler/*.c "$top"/grammar/vml.l "$top"/grammar/vml.y
for f; do
  [ -f "$f" ] || { echo "coverage.sh: no source $f (set top_srcdir)" >&2; exit 99; }
done
ls "$cases"/*.vmt >/dev/null 2>&1 || { echo "coverage.sh: no cases in $cases" >&2; exit 99; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vml-coverage.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' HUP INT TERM

# --- 1. the messages: "KIND<TAB>FILE<TAB>FORMAT" per message ----------------
for f; do
  awk -v file="$(basename "$f")" -v sq="'" '
    { text = text $0 "\n" }
    END {
      n = split("diag_error diag_warning diag_note fail_usage", fns, " ")
      kind["diag_error"] = "error"; kind["diag_warning"] = "warning"
      kind["diag_note"] = "note"; kind["fail_usage"] = "usage"
      fmtarg["diag_error"] = 3; fmtarg["diag_warning"] = 3
      fmtarg["diag_note"] = 3; fmtarg["fail_usage"] = 1
      for (k = 1; k <= n; k++) scan(fns[k])
    }
    function idchar(c) { return c ~ /[A-Za-z0-9_]/ }
    # Every call of fname in text: the format argument.
    function scan(fname,    s, off, i, pos, before) {
      s = text; off = 0
      while ((i = index(s, fname "(")) > 0) {
        pos = off + i
        before = pos > 1 ? substr(text, pos - 1, 1) : ""
        if (before == "" || !idchar(before)) call(fname, pos + length(fname) + 1)
        off = pos + length(fname)
        s = substr(text, off + 1)
      }
    }
    # Reads the arguments from position p (just after the open paren) to the
    # matching close paren; collects the literals of argument fmtarg[fname].
    function call(fname, p,    depth, argno, c, lit, group, ngroups, i, line, nonlit, raw) {
      depth = 0; argno = 1; group = ""; ngroups = 0; nonlit = 0; lit = 0; raw = ""
      lit = substr(text, 1, p)
      line = 1 + gsub(/\n/, "", lit)
      split("", groups)
      for (i = p; i <= length(text); i++) {
        c = substr(text, i, 1)
        if (c == "\"") {            # a string literal: read it raw
          lit = ""
          for (i++; i <= length(text); i++) {
            c = substr(text, i, 1)
            if (c == "\\") { lit = lit c substr(text, i + 1, 1); i++; continue }
            if (c == "\"") break
            lit = lit c
          }
          if (argno == fmtarg[fname]) group = group lit
          continue
        }
        if (c == sq) {               # a char literal
          for (i++; i <= length(text) && substr(text, i, 1) != sq; i++)
            if (substr(text, i, 1) == "\\") i++
          continue
        }
        if (c ~ /[ \t\n]/) continue
        if (c == "(" || c == "[" || c == "{") { depth++; }
        else if (c == ")" || c == "]" || c == "}") {
          if (depth == 0) break
          depth--
        } else if (c == "," && depth == 0) {
          if (argno == fmtarg[fname] && group != "") groups[++ngroups] = group
          group = ""
          argno++
          continue
        }
        # any other token inside the format argument ends a literal group
        if (argno == fmtarg[fname]) {
          raw = raw c
          if (group != "") groups[++ngroups] = group
          group = ""
          nonlit = 1
        }
      }
      if (argno == fmtarg[fname] && group != "") groups[++ngroups] = group
      if (argno < fmtarg[fname] && !ngroups) return   # not enough arguments: no call
      if (raw ~ /^constchar\*/) return               # the definition of the function
      if (!ngroups) {
        if (nonlit) printf "%s\t%s\t%s\n", "unchecked", file, "(line " line ")"
        return
      }
      for (i = 1; i <= ngroups; i++) printf "%s\t%s\t%s\n", kind[fname], file, groups[i]
    }
  ' "$f"
done | sort -u >"$tmp/messages"

# --- 2. the expected outputs of every case ---------------------------------
for c in "$cases"/*.vmt; do
  awk 'found { print; next } /^%% expect [0-9]+$/ { found = 1 }' "$c"
done | grep -E '(error|warning|note): ' >"$tmp/lines"

# --- 3. match ----------------------------------------------------------------
[ -f "$allow" ] || : >"$tmp/noallow"
awk -v verbose="$verbose" -v allowfile="$([ -f "$allow" ] && echo "$allow" || echo "$tmp/noallow")" '
  BEGIN {
    FS = "\t"
    while ((getline l < allowfile) > 0) {
      if (l ~ /^[ \t]*(#|$)/) continue
      k = index(l, " -- ")
      if (k == 0) { print "coverage-allow.txt: no \" -- REASON\" in: " l; bad_allow = 1; continue }
      allowed[substr(l, 1, k - 1)] = 1
      allowed_seen[substr(l, 1, k - 1)] = 0
    }
  }
  FILENAME != ARGV[1] { lines[++nlines] = $0; next }
  { kinds[++nmsg] = $1; files[nmsg] = $2; fmts[nmsg] = $3 }
  # C escapes of a literal as printed
  function unescape(s,    out, i, c) {
    out = ""
    for (i = 1; i <= length(s); i++) {
      c = substr(s, i, 1)
      if (c == "\\") {
        c = substr(s, ++i, 1)
        if (c == "n") c = "\n"; else if (c == "t") c = "\t"
      }
      out = out c
    }
    return out
  }
  # Splits a format into literal pieces around conversions: np pieces in P.
  function pieces(fmt,    s, cur, n, i, c, rest, m) {
    s = unescape(fmt); cur = ""; n = 0
    for (i = 1; i <= length(s); i++) {
      c = substr(s, i, 1)
      if (c != "%") { cur = cur c; continue }
      if (substr(s, i + 1, 1) == "%") { cur = cur "%"; i++; continue }
      rest = substr(s, i + 1)
      if (match(rest, /^[-+ #0]*[0-9*]*(\.[0-9*]+)?(hh|h|ll|l|L|z|j|t)?[diouxXeEfgGcspaA]/)) {
        P[++n] = cur; cur = ""
        i += RLENGTH
      } else {
        cur = cur c
      }
    }
    P[++n] = cur
    return n
  }
  # Does text t match P[1] * P[2] * ... * P[np] exactly?
  function glob(t, np,    i, k, last) {
    if (substr(t, 1, length(P[1])) != P[1]) return 0
    t = substr(t, length(P[1]) + 1)
    if (np == 1) return t == ""
    for (i = 2; i < np; i++) {
      k = index(t, P[i])
      if (k == 0) return 0
      t = substr(t, k + length(P[i]))
    }
    last = P[np]
    return length(t) >= length(last) && substr(t, length(t) - length(last) + 1) == last
  }
  function covered(kind, np,    j, l, prefix, k, rest) {
    prefix = kind == "usage" ? "error: " : kind ": "
    if (kind == "usage") P[np] = P[np] " (see vmc --help)"
    for (j = 1; j <= nlines; j++) {
      l = lines[j]
      rest = l
      while ((k = index(rest, prefix)) > 0) {
        rest = substr(rest, k + length(prefix))
        if (glob(rest, np)) return 1
      }
    }
    return 0
  }
  END {
    pass = fail = 0
    for (m = 1; m <= nmsg; m++) {
      key = files[m] ": " fmts[m]
      if (kinds[m] == "unchecked") { print "UNCHECKED " files[m] " " fmts[m] ": the format is not a literal"; continue }
      np = pieces(fmts[m])
      if (covered(kinds[m], np)) {
        if (key in allowed) { print "NOTE " key ": covered, but listed in coverage-allow.txt" }
        if (verbose) print "PASS " kinds[m] " " key
        pass++
      } else if (key in allowed) {
        allowed_seen[key] = 1
        if (verbose) print "ALLOWED " kinds[m] " " key
        pass++
      } else {
        print "FAIL " kinds[m] " " key
        fail++
      }
      if (key in allowed) allowed_seen[key] = 1
    }
    for (k in allowed_seen)
      if (!allowed_seen[k]) { print "STALE coverage-allow.txt entry (no such message): " k; fail++ }
    if (bad_allow) fail++
    print pass " passed, " fail " failed"
    exit fail > 0
  }
' "$tmp/messages" "$tmp/lines"
