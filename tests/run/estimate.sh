#!/bin/sh
# estimate.sh - vmrun eval's estimators of log p(x) against the exact value.
# A tiny VAE with a 2-D latent on 4Frames (tests/run/vae2d.vm), trained
# briefly: --quadrature integrates p(x, z) over a grid of z, and on the same
# examples the importance-weighted bound with K = 5000 and AIS agree with it
# within 0.05 nats, the bound is not above it, and the ELBO is below all of
# them.  Then: --json is one object; the same seed gives the same numbers at
# 1 and 2 threads; --iw on AVB (an implicit encoder) and --quadrature on a
# 20-D VAE are refused, pointing to --ais; AIS on a briefly trained AVB is
# finite and agrees with quadrature (AVB's latent is 2-D too).
#
# Environment: VMC, VMRUN, VML_STDLIB as for smoke.sh.  Prints
# "N passed, N failed".  Everything runs on one thread (ASan build).
. "$(dirname "$0")/common.sh"

cd "$tmp" || exit 99
"$vmc" compile "$here/vae2d.vm" -o vae2d.vmx >compile.log 2>&1 &&
  "$vmc" compile "$top/models/avb.vm" -o avb.vmx >>compile.log 2>&1 &&
  "$vmc" compile "$top/models/vae.vm" -o vae.vmx >>compile.log 2>&1 || {
  cat compile.log
  exit 99
}

# A number from a one-line JSON object: $1 file, $2 key.
field() { sed -n "s/.*\"$2\":\(-\{0,1\}[0-9][-+.0-9e]*\).*/\1/p" "$1"; }
# awk decides: $1 an expression over the numbers that follow as a, b, c
# (false when one of them is missing).
holds() {
  expr=$1
  shift
  for v in "$@"; do [ -n "$v" ] || return 1; done
  awk -v a="${1-}" -v b="${2-}" -v c="${3-}" "BEGIN { exit !($expr) }" </dev/null
}
# One JSON object on one line (python3 parses it when it is there).
one_object() {
  [ "$(wc -l <"$1")" -eq 1 ] || return 1
  if [ -x /usr/bin/python3 ]; then
    /usr/bin/python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); sys.exit(not isinstance(d, dict))' "$1"
  else
    grep -q '^{.*}$' "$1"
  fi
}

"$vmrun" train vae2d.vmx --steps 1000 --seed 1 --threads 1 --out v >train.log 2>&1
rc=$?
check "train the 2-D VAE on 4Frames" [ $rc -eq 0 ]
ev() { "$vmrun" eval --run v --split train --threads 1 "$@"; }

# 201 points per dimension: within 1e-4 nats of 801 points on this model.
ev --quadrature --grid 201 --examples 32 --json >quad.json 2>quad.err
check "--quadrature exits 0" [ $? -eq 0 ]
check "--quadrature --json is one JSON object" one_object quad.json
check "--quadrature --json names the estimator and its grid" \
  grep -q '"examples":32,"estimator":"quadrature","log_likelihood":-[0-9.]*,"stderr":[0-9.e-]*,"grid":201' quad.json
ev --iw 5000 --examples 32 --json >iw.json 2>iw.err
check "--iw 5000 exits 0" [ $? -eq 0 ]
ev --ais --examples 32 --json >ais.json 2>ais.err
check "--ais exits 0" [ $? -eq 0 ]
check "--ais --json has the settings and the acceptance" \
  grep -q '"ais_steps":500,"chains":16,"leapfrog":10,.*"acceptance":0\.[0-9]*' ais.json
ev --json >elbo.json 2>elbo.err
ev --iw 100 --json >iw100.json 2>iw100.err
q=$(field quad.json log_likelihood)
i=$(field iw.json log_likelihood)
a=$(field ais.json log_likelihood)
w=$(field iw.json mean_logw)
e=$(field elbo.json elbo)
i100=$(field iw100.json log_likelihood)
echo "first 32 examples: quadrature $q, iw(5000) $i, ais $a, mean log w $w; whole split: elbo $e, iw(100) $i100"
check "--iw 5000 agrees with quadrature within 0.05 nats ($i vs $q)" holds 'a - b < 0.05 && b - a < 0.05' "$i" "$q"
check "--ais agrees with quadrature within 0.05 nats ($a vs $q)" holds 'a - b < 0.05 && b - a < 0.05' "$a" "$q"
check "the IW bound is not above quadrature ($i <= $q + 0.01)" holds 'a <= b + 0.01' "$i" "$q"
check "the mean log w (an ELBO of 5000 draws) is below quadrature and AIS" holds 'a < b - 0.05 && a < c - 0.05' "$w" "$q" "$a"
# The plain ELBO draws one z per example: on the whole split (1000
# examples) it is precise to about 0.03, the gap to log p(x) is 0.17, and
# the first 32 examples' mean log p(x) is within 0.02 of the split's.
check "the ELBO of the split is below its IW bound with K = 100 ($e < $i100)" holds 'a < b' "$e" "$i100"
check "the ELBO is below quadrature and AIS ($e < $q, $a)" holds 'a < b && a < c' "$e" "$q" "$a"

# Human output: a line naming the estimator.
ev --iw 50 --examples 8 >iw.txt 2>&1
check "--iw prints the bound, its standard error and K" \
  grep -q 'log p(x) >= -[0-9.]* (stderr [0-9.]*)  importance-weighted bound, K = 50' iw.txt
ev --examples 8 --json >elbo8.json 2>&1
check "--examples 8 evaluates the ELBO on 8 examples" grep -q '"examples":8,"elbo":' elbo8.json

# --examples N takes N examples spread over the split, not its first N: on
# a file of 100 copies of one image followed by 100 of another, 2 examples
# are one of each, and their exact log-likelihood is that of all 200.
{
  for i in $(seq 100); do echo "1,0,0,0"; done
  for i in $(seq 100); do echo "0,0,0,1"; done
} >sorted.csv
sed 's/synthetic.four_frames/files("sorted.csv")/' "$here/vae2d.vm" >sorted.vm
"$vmc" compile sorted.vm -o sorted.vmx >>compile.log 2>&1
"$vmrun" train sorted.vmx --steps 50 --seed 1 --threads 1 --out s >>train.log 2>&1
quad() { "$vmrun" eval --run s --split train --threads 1 --quadrature --grid 101 --json "$@" 2>&1; }
quad >all.json
quad --examples 2 >two.json
quad --examples 1 >one.json
check "--examples 2 of a sorted file: one of each kind (the mean of all 200)" \
  holds 'a - b < 1e-6 && b - a < 1e-6 && c > 0' "$(field two.json log_likelihood)" "$(field all.json log_likelihood)" "$(field two.json stderr)"
check "--examples 1 of a sorted file: the first kind alone" \
  holds 'a != b' "$(field one.json log_likelihood)" "$(field two.json log_likelihood)"

# Reproducible from the seed, for any thread count; another seed, other draws.
small() { "$vmrun" eval --run v --split train --examples 4 --json "$@" 2>&1 | sed 's/,"seconds":.*//'; }
small --ais --ais-steps 20 --threads 1 >a1.json
small --ais --ais-steps 20 --threads 2 >a2.json
small --iw 200 --threads 1 >i1.json
small --iw 200 --threads 2 >i2.json
small --iw 200 --threads 1 --seed 9 >i9.json
check "--ais: the same numbers at 1 and 2 threads" cmp -s a1.json a2.json
check "--iw: the same numbers at 1 and 2 threads" cmp -s i1.json i2.json
check "--iw --seed 9 draws other numbers" sh -c "! cmp -s i1.json i9.json && grep -q '\"seed\":9' i9.json"

# Refusals, before the checkpoint is read (exit 2, a message that helps).
"$vmrun" eval avb.vmx --run nowhere --iw 10 >out.log 2>err.log
rc=$?
check "--iw on AVB: exit 2, pointing to --ais" sh -c "[ $rc -eq 2 ] && grep -q 'implicit encoder.*--ais' err.log"
"$vmrun" eval vae.vmx --run nowhere --quadrature >out.log 2>err.log
rc=$?
check "--quadrature on the 20-D VAE: exit 2, naming the dimensions" \
  sh -c "[ $rc -eq 2 ] && grep -q 'model vae has 20 latent dimensions; --quadrature integrates over at most 2' err.log"

# AVB: AIS is its only estimator of log p(x); its latent is 2-D, so
# quadrature checks it.
"$vmrun" train avb.vmx --steps 100 --seed 1 --batch 32 --threads 1 --out avb >avb-train.log 2>&1
check "train AVB briefly" [ $? -eq 0 ]
"$vmrun" eval --run avb --split train --threads 1 --iw 10 >out.log 2>err.log
rc=$?
check "--iw on a trained AVB run: exit 2, pointing to --ais" sh -c "[ $rc -eq 2 ] && grep -q -- '--ais' err.log"
"$vmrun" eval --run avb --split train --threads 1 --ais --ais-steps 200 --examples 16 --json >avb-ais.json 2>avb-ais.err
check "--ais on AVB exits 0" [ $? -eq 0 ]
"$vmrun" eval --run avb --split train --threads 1 --quadrature --grid 201 --examples 16 --json >avb-quad.json 2>&1
aa=$(field avb-ais.json log_likelihood)
aq=$(field avb-quad.json log_likelihood)
echo "AVB, first 16 examples: ais $aa, quadrature $aq"
check "--ais on AVB is a finite negative number ($aa)" holds 'a < 0 && a > -100' "$aa"
check "--ais on AVB agrees with quadrature within 0.05 nats ($aa vs $aq)" holds 'a - b < 0.05 && b - a < 0.05' "$aa" "$aq"

finish
