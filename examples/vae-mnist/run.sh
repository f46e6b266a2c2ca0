#!/bin/sh
# run.sh - the shipped VAE (models/vae.vm: 784-500-500-20, Bernoulli decoder,
# Adam 1e-3, batch 128) trained for 20 epochs on the fixed binarized MNIST,
# then evaluated on the test split.  Prints the learning curve and the test
# ELBO; leaves the run in examples/vae-mnist/out/.
#
#   sh examples/vae-mnist/run.sh [--threads N] [--seed N]    (from the repository)
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
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-unset}, vml $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')"
"$vmc" compile "$top/models/vae.vm" -o vae.vmx
"$vmrun" train vae.vmx --data "$data" --epochs 20 --seed 1 --out run "$@"
echo
echo "epoch  train loss  valid ELBO  active units  seconds"
sed 's/.*"epoch":\([0-9]*\).*"train.0":\([-0-9.e]*\).*"valid_elbo":\([-0-9.e]*\).*"active_units":{"z":\([0-9]*\)}.*"seconds":\([0-9.]*\)}/\1 \2 \3 \4 \5/' \
  run/metrics.jsonl | awk '{ printf "%5d  %10.3f  %10.3f  %12d  %7.1f\n", $1, $2, $3, $4, $5 }'
echo
"$vmrun" eval vae.vmx --run run --data "$data" --split test
# The pictures of this directory: decoder means of 64 prior samples, 16 test
# images above their reconstructions, the test set's encoder means (first two
# principal components, coloured by digit: the grayscale test images carry
# the labels), the learning curve.
"$vmrun" sample --run run --no-noise -o sample-means.png
"$vmrun" reconstruct --run run --data "$data" --split test --seed 1 -o reconstructions.png
labelled=$top/../shared/data/mnist/t10k-images-idx3-ubyte.gz
[ -f "$labelled" ] && "$vmrun" plot latent --run run --data "$labelled" --split train -o latent.png
"$vmrun" plot metrics --run run -o metrics.png
