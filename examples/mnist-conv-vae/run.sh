#!/bin/sh
# run.sh - the convolutional VAE (conv-vae.vm: two stride-2 4x4 convolutions
# of 32 and 64 channels to a 32-dim diagonal Gaussian, a dense layer and two
# stride-2 transposed convolutions back to Bernoulli pixels; Adam 1e-3,
# batch 128) trained for 20 epochs on the fixed binarized MNIST, then
# evaluated on the test split: the ELBO on all 10,000 images, and the ELBO
# and the 5000-sample importance-weighted bound on 100 spread over the split
# (docs/RESULTS.md's numbers were measured on the first 100, when --examples
# took those).  Draws the pictures of this
# directory; leaves the run in examples/mnist-conv-vae/out/.
#
#   sh examples/mnist-conv-vae/run.sh [--threads N] [--seed N]    (from the repository)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
vmc=$top/compiler/vmc
vmrun=$top/runtime/vmrun
data=$top/../shared/data/binarized-mnist
[ -x "$vmc" ] && [ -x "$vmrun" ] || { echo "run.sh: build first (./quickstart)" >&2; exit 2; }
[ -d "$data" ] || { echo "run.sh: no $data" >&2; exit 2; }

out=$here/out
rm -rf "$out"
mkdir -p "$out"
cd "$out"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-unset}, vml $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?'), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$vmc" compile "$here/conv-vae.vm" -o conv-vae.vmx
start=$(date +%s)
"$vmrun" train conv-vae.vmx --data "$data" --epochs 20 --seed 1 --out run "$@"
echo "trained in $(($(date +%s) - start)) s"
echo
echo "epoch  train loss  valid ELBO  active units  examples/s  seconds"
sed 's/.*"epoch":\([0-9]*\).*"train.0":\([-0-9.e]*\).*"valid_elbo":\([-0-9.e]*\).*"active_units":{"z":\([0-9]*\)}.*"examples_per_second":\([0-9.]*\).*"seconds":\([0-9.]*\)}/\1 \2 \3 \4 \5 \6/' \
  run/metrics.jsonl | awk '{ printf "%5d  %10.3f  %10.3f  %12d  %10.0f  %7.1f\n", $1, $2, $3, $4, $5, $6 }'
echo
"$vmrun" eval --run run --data "$data" --split test
"$vmrun" eval --run run --data "$data" --split test --examples 100 --json
start=$(date +%s)
"$vmrun" eval --run run --data "$data" --split test --iw 5000 --examples 100 --json
echo "IW-5000 bound in $(($(date +%s) - start)) s"
# The pictures: decoder means of 64 prior samples, 16 test images above
# their reconstructions, the learning curve.
"$vmrun" sample --run run --no-noise -o sample-means.png
"$vmrun" reconstruct --run run --data "$data" --split test --seed 1 -o reconstructions.png
"$vmrun" plot metrics --run run -o metrics.png
