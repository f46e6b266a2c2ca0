#!/bin/sh
# run.sh - the AVB paper's toy experiment (Mescheder et al. 2017, fig. 4):
# four 2x2 binary images, each with one pixel on, a 2-D latent.  Trains
# models/avb.vm (implicit posterior, critic), avb-ac.vm (the same with
# adaptive contrast) and vae-4frames.vm (diagonal Gaussian posterior), with
# the same seed; estimates each model's log-likelihood (exact, by
# quadrature over z; AIS; and for the VAE the 5000-sample IW bound) and
# draws each posterior.  The optimum is -log 4 = -1.386 nats.
#
#   sh examples/four-frames/run.sh [--threads N]      (from the repository)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
vmc=$top/compiler/vmc
vmrun=$top/runtime/vmrun
[ -x "$vmc" ] && [ -x "$vmrun" ] || { echo "run.sh: build first (./quickstart)" >&2; exit 2; }

out=$here/out
rm -rf "$out"
mkdir -p "$out"
cd "$out"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-unset}, vml $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')"

opts="$*"
train() { # NAME MODEL.vm
  "$vmc" compile "$2" -o "$1.vmx"
  start=$(date +%s)
  # shellcheck disable=SC2086 # the options are words
  "$vmrun" train "$1.vmx" --seed 1 --out "$1" $opts >"$1.log"
  echo "$1: trained in $(($(date +%s) - start)) s"
}
train avb "$top/models/avb.vm"
train avb-ac "$here/avb-ac.vm"
train vae "$here/vae-4frames.vm"

# 4Frames is generated, with only a train split: every estimate is on it.
for m in avb avb-ac vae; do
  echo "== $m"
  # the ELBO needs an encoder density: the VAE's (AVB's is implicit)
  [ $m = vae ] && "$vmrun" eval --run "$m" --split train
  "$vmrun" eval --run "$m" --split train --quadrature --examples 200
  "$vmrun" eval --run "$m" --split train --ais --examples 200
  # posterior samples (the VAE's encoder means alone would be four dots)
  "$vmrun" plot latent --run "$m" --split train --sample -o "$m-posterior.png"
  "$vmrun" plot metrics --run "$m" -o "$m-metrics.png"
done
"$vmrun" eval --run vae --split train --iw 5000 --examples 200
