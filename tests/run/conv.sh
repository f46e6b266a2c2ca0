#!/bin/sh
# conv.sh - the convolutional VAE of examples/mnist-conv-vae end to end on a
# small part of the real binarized MNIST (the 10,000 images of its valid
# file, 2% of them held out for validation), a few steps of batch 32, so that
# it runs in seconds under ASan: the model compiles, trains with finite
# losses and a validation ELBO that improves, gives the same checkpoint
# byte for byte at 1 and 2 threads, evaluates, samples and reconstructs.
#
# Needs ../shared/data (skips, exit 77, without it).  Environment: VMC, VMRUN,
# VML_STDLIB as for smoke.sh.  Prints "N passed, N failed".
. "$(dirname "$0")/common.sh"

data=$top/../shared/data
if [ ! -f "$data/binarized-mnist/valid-images-idx3-ubyte.gz" ]; then
  echo "conv.sh: no $data/binarized-mnist; skipped" >&2
  exit 77
fi
data=$(cd "$data/binarized-mnist" && pwd)

cd "$tmp" || exit 99
# the example's model, on the small file
sed -e 's|files("binarized-mnist".*|files("binarized-mnist", train = "valid-images-idx3-ubyte.gz", valid = 0.02)|' \
  -e '/valid = "valid-images/d' "$top/examples/mnist-conv-vae/conv-vae.vm" >conv.vm
"$vmc" compile -I "$top/stdlib" conv.vm -o conv.vmx >compile.log 2>&1
rc=$?
check "the conv VAE compiles" [ $rc -eq 0 ]
[ $rc -eq 0 ] || {
  cat compile.log
  finish
  exit 1
}
run() { # $1 threads, $2 run directory
  "$vmrun" train conv.vmx --data "$data" --steps 8 --batch 32 --seed 5 --threads "$1" --out "$2" >"$2.log" 2>&1
}

run 1 one
rc=$?
check "train 8 steps exits 0" [ $rc -eq 0 ]
check "metrics.jsonl has the validation ELBO" grep -q '"valid_elbo":-[0-9]' one/metrics.jsonl
valid_elbos() { sed -n 's/.*"valid_elbo":\([-0-9.e]*\).*/\1/p' one/metrics.jsonl; }
elbos=$(valid_elbos | tr '\n' ' ')
losses=$(sed -n 's/.*"train.0":\([-0-9.e]*\).*/\1/p' one/metrics.jsonl | tr '\n' ' ')
finite() { # every word a finite number
  for v in "$@"; do
    awk "BEGIN{ v = \"$v\" + 0; exit !(\"$v\" ~ /^-?[0-9.]+(e[-+]?[0-9]+)?\$/ && v == v) }" || return 1
  done
  [ $# -gt 0 ]
}
# shellcheck disable=SC2086 # the values are words
check "the training losses are finite ($losses)" finite $losses
# shellcheck disable=SC2086
check "the validation ELBOs are finite ($elbos)" finite $elbos
first=$(valid_elbos | head -n 1)
last=$(valid_elbos | tail -n 1)
check "the validation ELBO improves ($first to $last)" awk "BEGIN{exit !($last > $first)}"

run 2 two
check "2 threads give the same checkpoint as 1, byte for byte" cmp -s one/checkpoint.safetensors two/checkpoint.safetensors

"$vmrun" eval --run one --data "$data" --split test --examples 50 --threads 1 --json >eval.json 2>eval.err
rc=$?
check "eval exits 0" [ $rc -eq 0 ]
check "eval gives the test ELBO of 50 examples" grep -q '"examples":50,"elbo":-[0-9.]*' eval.json
"$vmrun" sample --run one -n 16 --threads 1 -o sample.png >sample.log 2>&1
check "sample writes a PNG" sh -c 'head -c 8 sample.png | od -An -c | grep -q "P   N   G"'
"$vmrun" reconstruct --run one --data "$data" --split test -n 8 --threads 1 -o rec.png >rec.log 2>&1
check "reconstruct writes a PNG" sh -c 'head -c 8 rec.png | od -An -c | grep -q "P   N   G"'

finish
