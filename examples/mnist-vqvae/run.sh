#!/bin/sh
# run.sh - the shipped VQ-VAE with a PixelCNN prior (models/vqvae.vm) on
# grayscale MNIST in [-1, 1]: the first 9000 images of the official test set
# train it, the last 1000 are held out (the model's valid = 0.1).  Trains
# both stages (autoencoder 20 epochs, then the PixelCNN prior on the frozen
# codes 10 epochs; --epochs N sets both), prints the learning curves with the
# held-out codebook usage, perplexity and prior NLL, evaluates the held-out
# split, and draws reconstructions, samples from the prior and the training
# curves.  Leaves the run in examples/mnist-vqvae/out/.  With --ema, then
# the same for vqvae-ema.vm (the codebook updated by moving averages) in
# out/ema/.
#
#   sh examples/mnist-vqvae/run.sh [--threads N] [--epochs N] [--ema]    (from the repository)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
vmc=$top/compiler/vmc
vmrun=$top/runtime/vmrun
data=$top/../shared/data/mnist
[ -x "$vmc" ] && [ -x "$vmrun" ] || { echo "run.sh: build first (./quickstart)" >&2; exit 2; }
[ -f "$data/t10k-images-idx3-ubyte.gz" ] || { echo "run.sh: no $data/t10k-images-idx3-ubyte.gz" >&2; exit 2; }
threads=
epochs=
ema=0
while [ $# -gt 0 ]; do
  case $1 in
  --threads) threads="--threads $2"; shift 2 ;;
  --epochs) epochs="--epochs $2"; shift 2 ;;
  --ema) ema=1; shift ;;
  *) echo "usage: run.sh [--threads N] [--epochs N] [--ema]" >&2; exit 2 ;;
  esac
done

out=$here/out
rm -rf "$out"
mkdir -p "$out"
cd "$out"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-unset}, vml $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')"
# $1 the model: train, the learning curves, eval, the pictures (in the current directory)
one() {
  "$vmc" compile "$1" -o vqvae.vmx
  start=$(date +%s)
  # shellcheck disable=SC2086 # the options are words
  "$vmrun" train vqvae.vmx --data "$data" --seed 1 --out run $threads $epochs >train.log
  echo "trained in $(($(date +%s) - start)) s"
  echo
  echo "report  stage        train loss  codes used  perplexity  prior NLL  rec. MSE  seconds"
  sed -e 's/.*"epoch":\([0-9]*\),"stage":"\([a-z]*\)","loss":{"train.[0-9]":\([-0-9.e+]*\)}.*"used":\([0-9]*\),"usage":[^,]*,"perplexity":\([0-9.e+-]*\)\(,"nll":\)*\([0-9.e+-]*\)}.*"rec_mse":{"x":\([0-9.e+-]*\)}.*"seconds":\([0-9.]*\)}/\1 \2 \3 \4 \5 x\7 \8 \9/' \
    run/metrics.jsonl |
    awk '{ printf "%6d  %-11s  %10.3f  %6d/128  %10.2f  %9s  %8.5f  %7.1f\n", $1, $2, $3, $4, $5, $6 == "x" ? "-" : substr($6, 2), $7, $8 }'
  echo
  # shellcheck disable=SC2086
  "$vmrun" eval --run run --split valid $threads
  # shellcheck disable=SC2086
  "$vmrun" eval --run run --split valid --json $threads >eval.json
  # 32 held-out digits above their reconstructions; 64 samples: codes drawn from
  # the PixelCNN one position at a time, decoded to the decoder's means (the
  # Normal decoder's unit-variance noise would hide the digits)
  # shellcheck disable=SC2086
  "$vmrun" reconstruct --run run --split valid -n 32 --seed 1 -o reconstructions.png $threads
  # shellcheck disable=SC2086
  "$vmrun" sample --run run --no-noise -n 64 --seed 1 -o samples.png $threads
  "$vmrun" plot metrics --run run -o metrics.png
}

one "$top/models/vqvae.vm"
if [ $ema = 1 ]; then
  mkdir ema
  cd ema
  echo
  echo "# vqvae-ema.vm: the codebook by moving averages (decay 0.99)"
  one "$here/vqvae-ema.vm"
fi
