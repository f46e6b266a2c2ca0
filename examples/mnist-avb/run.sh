#!/bin/sh
# run.sh - AVB against the VAE of the same size on the fixed binarized MNIST.
# Trains examples/mnist-avb/avb-mnist.vm (implicit encoder fed 64-dim noise,
# critic T(x, z)) and models/vae.vm for 20 epochs each with seed 1, then
# estimates both models' test log-likelihood with AIS (the only estimator
# for AVB, whose encoder has no density) on 100 test images spread over the split, the
# VAE's also with the 5000-sample importance-weighted bound, and draws
# samples, reconstructions and the latent space of both.
#
#   sh examples/mnist-avb/run.sh [--threads N]      (from the repository)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
vmc=$top/compiler/vmc
vmrun=$top/runtime/vmrun
data=$top/../shared/data/binarized-mnist
labelled=$top/../shared/data/mnist/t10k-images-idx3-ubyte.gz
[ -x "$vmc" ] && [ -x "$vmrun" ] || { echo "run.sh: build first (./quickstart)" >&2; exit 2; }
[ -d "$data" ] || { echo "run.sh: no $data" >&2; exit 2; }

out=$here/out
rm -rf "$out"
mkdir -p "$out"
cd "$out"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-unset}, vml $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')"

opts="$*"
n=100 # test images for AIS: each takes 16 chains x 500 temperatures x 10 leapfrog steps
for m in avb vae; do
  [ $m = avb ] && src=$here/avb-mnist.vm || src=$top/models/vae.vm
  "$vmc" compile "$src" -o $m.vmx
  start=$(date +%s)
  # shellcheck disable=SC2086 # the options are words
  "$vmrun" train $m.vmx --data "$data" --epochs 20 --seed 1 --out $m $opts >$m.log
  echo "$m: trained in $(($(date +%s) - start)) s"
  # shellcheck disable=SC2086
  "$vmrun" eval --run $m --data "$data" --split test --ais --examples $n $opts
  "$vmrun" sample --run $m --no-noise -o $m-sample-means.png
  "$vmrun" reconstruct --run $m --data "$data" --split test --seed 1 -o $m-reconstructions.png
  "$vmrun" plot metrics --run $m -o $m-metrics.png
  [ -f "$labelled" ] && "$vmrun" plot latent --run $m --data "$labelled" --split train -o $m-latent.png
done
# shellcheck disable=SC2086
"$vmrun" eval --run vae --data "$data" --split test --iw 5000 --examples $n $opts
"$vmrun" eval --run vae --data "$data" --split test
