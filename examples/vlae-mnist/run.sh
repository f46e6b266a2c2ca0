#!/bin/sh
# run.sh - the VLAE (models/vlae.vm: a MADE autoregressive-flow prior over a
# 16-dim latent) against the VAE of the same size (models/vae.vm compiled
# with -D latent=16: the same 784-500-500 encoder and decoder, a standard
# normal prior) on the fixed binarized MNIST.  Both train 20 epochs with
# seed 1; then each is evaluated on the test split: the ELBO over all 10,000
# images, and the ELBO and the 5000-sample importance-weighted bound on 1000
# spread over the split,
# and draws samples (the VLAE's latents by inverting its flow),
# reconstructions and its training curves.
#
#   sh examples/vlae-mnist/run.sh [--threads N]      (from the repository)
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

opts="$*"
n=1000 # test images for the IW bound: 5000 samples each
"$vmc" compile "$top/models/vlae.vm" -o vlae.vmx
"$vmc" compile -D latent=16 "$top/models/vae.vm" -o vae16.vmx
for m in vlae vae16; do
  start=$(date +%s)
  # shellcheck disable=SC2086 # the options are words
  "$vmrun" train $m.vmx --data "$data" --epochs 20 --seed 1 --out $m $opts >$m.log
  echo "$m: trained in $(($(date +%s) - start)) s"
  # shellcheck disable=SC2086
  "$vmrun" eval --run $m --data "$data" --split test $opts
  # shellcheck disable=SC2086
  "$vmrun" eval --run $m --data "$data" --split test --examples $n $opts
  start=$(date +%s)
  # shellcheck disable=SC2086
  "$vmrun" eval --run $m --data "$data" --split test --iw 5000 --examples $n $opts
  echo "$m: IW-5000 on $n images in $(($(date +%s) - start)) s"
  "$vmrun" sample --run $m --no-noise -o $m-sample-means.png
  "$vmrun" sample --run $m -o $m-samples.png
  "$vmrun" reconstruct --run $m --data "$data" --split test --seed 1 -o $m-reconstructions.png
  "$vmrun" plot metrics --run $m -o $m-metrics.png
done
