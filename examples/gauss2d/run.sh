#!/bin/sh
# run.sh - the seed's 2-D experiment (CS294-158 HW3, part a): a VAE with a
# 2-D latent and a 2-D Gaussian decoder of learned diagonal variance on two
# full-covariance Gaussian sets of 100000 points (gauss1.vm: long axis at
# 45 degrees; gauss2.vm: at 135), and for comparison a decoder of fixed
# unit variance on the first (gauss1-unit.vm).  Trains each (20 epochs,
# seed 1), evaluates the ELBO and the importance-weighted bound (K = 100)
# on the whole set, draws 1000 samples with and without decoder noise over
# the data, and measures the spread of 10000 of each along the data's long
# axis and across it.  The data's own log-density, the best any model can
# do, is -4.447 nats a point.
#
#   sh examples/gauss2d/run.sh [--threads N]      (from the repository)
#
# VMC and VMRUN name other programs than the tree's (e.g. a build without
# sanitizers).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
vmc=${VMC:-$top/compiler/vmc}
vmrun=${VMRUN:-$top/runtime/vmrun}
[ -x "$vmc" ] && [ -x "$vmrun" ] || { echo "run.sh: build first (./quickstart)" >&2; exit 2; }
: "${VML_STDLIB:=$top/stdlib}"
export VML_STDLIB

out=$here/out
rm -rf "$out"
mkdir -p "$out"
cd "$out"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, vml $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')"

opts="$*"
train() { # NAME MODEL.vm
  "$vmc" compile "$2" -o "$1.vmx"
  start=$(date +%s)
  # shellcheck disable=SC2086 # the options are words
  "$vmrun" train "$1.vmx" --seed 1 --out "$1" $opts >"$1.log"
  echo "$1: trained in $(($(date +%s) - start)) s; $(tail -2 "$1.log" | head -1)"
}

# The spread of a CSV of samples along the direction at $2 degrees and
# across it, and their mean.
spread() {
  awk -F, -v deg="$2" 'NR > 1 {
      c = cos(deg * 3.14159265358979 / 180); s = sin(deg * 3.14159265358979 / 180)
      u = c * $1 + s * $2; v = -s * $1 + c * $2
      n++; su += u; sv += v; suu += u * u; svv += v * v; s0 += $1; s1 += $2
    } END {
      mu = su / n; mv = sv / n
      printf "std %.3f along, %.3f across; mean (%.3f, %.3f)\n", sqrt(suu / n - mu * mu), sqrt(svv / n - mv * mv), s0 / n, s1 / n
    }' "$1"
}

train gauss1 "$here/gauss1.vm"
train gauss2 "$here/gauss2.vm"
train gauss1-unit "$here/gauss1-unit.vm"

# The sets are generated, with only a train split: every estimate is on it.
for m in gauss1 gauss2 gauss1-unit; do
  case $m in gauss2) angle=135 ;; *) angle=45 ;; esac
  echo "== $m"
  # shellcheck disable=SC2086
  "$vmrun" eval --run "$m" --split train $opts
  # shellcheck disable=SC2086
  "$vmrun" eval --run "$m" --split train --iw 100 $opts
  "$vmrun" sample --run "$m" -o "$m-samples.png"
  "$vmrun" sample --run "$m" --no-noise -o "$m-means.png"
  "$vmrun" sample --run "$m" -n 10000 -o "$m-samples.csv" >/dev/null
  "$vmrun" sample --run "$m" -n 10000 --no-noise -o "$m-means.csv" >/dev/null
  echo "  10000 samples:       $(spread "$m-samples.csv" $angle)"
  echo "  10000 decoder means: $(spread "$m-means.csv" $angle)"
  "$vmrun" plot latent --run "$m" --split train --examples 5000 -o "$m-latent.png"
done
"$vmrun" plot metrics --run gauss1 -o gauss1-metrics.png
