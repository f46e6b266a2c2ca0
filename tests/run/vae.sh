#!/bin/sh
# vae.sh - vmrun on the real binarized MNIST with a small VAE (hidden 32, so
# that it runs in seconds under ASan): training writes metrics with the
# validation ELBO, KL per dimension and active units; 2 epochs straight and
# 1 epoch + --resume + 1 epoch give byte-identical checkpoints (also with
# dynamic binarization, whose draws depend on the epoch); eval prints the
# ELBO and its terms as JSON; a NaN stops training naming the node and keeps
# the last good checkpoint; bad data is refused naming the file.
#
# Needs ../shared/data (skips, exit 77, without it).  Environment: VMC, VMRUN,
# VML_STDLIB as for smoke.sh.  Prints "N passed, N failed".
. "$(dirname "$0")/common.sh"

data=$top/../shared/data
if [ ! -d "$data/binarized-mnist" ] || [ ! -d "$data/mnist" ]; then
  echo "vae.sh: no $data/binarized-mnist or $data/mnist; skipped" >&2
  exit 77
fi
data=$(cd "$data" && pwd)

cd "$tmp" || exit 99
"$vmc" compile -D hidden=32 -D latent=8 "$top/models/vae.vm" -o vae.vmx >compile.log 2>&1 || {
  cat compile.log
  exit 99
}
run() { # vmrun train with the small settings; $@ more options
  "$vmrun" train vae.vmx --data "$data/binarized-mnist" --threads 1 --seed 7 "$@"
}

run --epochs 2 --out straight >straight.log 2>&1
rc=$?
check "train 2 epochs exits 0" [ $rc -eq 0 ]
check "metrics.jsonl has one line per epoch" [ "$(grep -c '^{"epoch":' straight/metrics.jsonl)" -eq 2 ]
check "metrics has the validation ELBO" grep -q '"valid_elbo":-[0-9]' straight/metrics.jsonl
check "metrics has KL per dimension of z" grep -q '"kl_dims":{"z":\[[-0-9.e]*\(,[-0-9.e]*\)\{7\}\]}' straight/metrics.jsonl
check "metrics has active units" grep -q '"active_units":{"z":[0-8]}' straight/metrics.jsonl
last=$(tail -n 1 straight/metrics.jsonl)
elbo=$(printf '%s\n' "$last" | sed 's/.*"valid_elbo":\([-0-9.e]*\).*/\1/')
check "the ELBO improves to better than -200 nats in 2 epochs (got $elbo)" awk "BEGIN{exit !($elbo > -200)}"

run --epochs 1 --out resumed >r1.log 2>&1
"$vmrun" train --resume resumed --epochs 2 --threads 1 >r2.log 2>&1
rc=$?
check "--resume exits 0" [ $rc -eq 0 ]
check "2 epochs = 1 epoch + resume + 1 epoch, byte for byte" cmp -s straight/checkpoint.safetensors resumed/checkpoint.safetensors
check "the resumed run's metrics continue (2 lines)" [ "$(grep -c '^{"epoch":' resumed/metrics.jsonl)" -eq 2 ]
check "resuming a finished run changes nothing" sh -c "cp resumed/checkpoint.safetensors before &&
  '$vmrun' train --resume resumed --threads 1 >r3.log 2>&1 && cmp -s before resumed/checkpoint.safetensors"

"$vmrun" eval vae.vmx --run straight --data "$data/binarized-mnist" --split test --json >eval.json 2>eval.err
rc=$?
check "eval --json exits 0" [ $rc -eq 0 ]
check "eval --json gives elbo, rec, kl and 10000 examples" grep -q '"examples":10000,"elbo":-[0-9.]*,"rec":-[0-9.]*,"kl":[0-9.]*' eval.json
check "eval --json is one line" [ "$(wc -l <eval.json)" -eq 1 ]
check "eval without --run takes the newest run under runs/" sh -c "mkdir -p runs && cp -r straight runs/vae-1 &&
  '$vmrun' eval --data '$data/binarized-mnist' --json | grep -q 'runs/vae-1'"

# A learning rate that diverges: training stops at the first non-finite
# value, naming the node and its source position; a checkpoint, if one was
# written before, is a good one (it evaluates); metrics has no partial line.
run --steps 100 --lr 0.3 --out nan >nan.out 2>nan.err
rc=$?
check "a NaN stops training with exit 1" [ $rc -eq 1 ]
check "the NaN error names a node and its .vm position" \
  grep -q 'node %[0-9]* ([a-z_]*[,)].* at [a-z]*\.vm:[0-9]*:[0-9]*: non-finite value' nan.err
if [ -f nan/checkpoint.safetensors ]; then
  check "the error names the last good checkpoint" grep -q 'last good checkpoint is nan/checkpoint.safetensors' nan.err
  check "the last good checkpoint evaluates" sh -c "'$vmrun' eval --run nan --split valid --json >/dev/null"
else
  check "the error says no checkpoint was reached" grep -q 'before the first checkpoint' nan.err
fi
check "metrics.jsonl has only whole lines" sh -c '! grep -v "^{.*}\$" nan/metrics.jsonl'

# Dynamic binarization: grayscale MNIST, a fresh draw each epoch;
# reproducible, and resumable bit for bit.
sed 's|files("binarized-mnist".*|files("mnist", train = "t10k-images-idx3-ubyte.gz", valid = 0.2, binarize = "dynamic")|' \
  "$top/models/vae.vm" | sed '/valid = "valid-images/d' >dyn.vm
"$vmc" compile -D hidden=32 -D latent=8 -I "$top/stdlib" dyn.vm -o dyn.vmx >dyn.log 2>&1
check "a model with binarize = \"dynamic\" compiles" [ -f dyn.vmx ]
dyn() { "$vmrun" train dyn.vmx --data "$data/mnist" --threads 1 --seed 3 "$@"; }
dyn --epochs 2 --out d1 >d1.log 2>&1 && dyn --epochs 1 --out d2 >d2.log 2>&1 &&
  "$vmrun" train --resume d2 --epochs 2 --threads 1 >d3.log 2>&1
check "dynamic binarization trains and resumes bit-identically" cmp -s d1/checkpoint.safetensors d2/checkpoint.safetensors
sed 's|"dynamic"|127|' dyn.vm >thr.vm && "$vmc" compile -D hidden=32 -D latent=8 -I "$top/stdlib" thr.vm -o thr.vmx >/dev/null 2>&1
"$vmrun" train thr.vmx --data "$data/mnist" --threads 1 --seed 3 --epochs 1 --out t1 >t1.log 2>&1
first_loss() { head -n 1 "$1" | sed 's/.*"train.0":\([-0-9.e]*\).*/\1/'; }
losses_differ() { [ -n "$(first_loss "$2")" ] && [ "$(first_loss "$1")" != "$(first_loss "$2")" ]; }
check "dynamic and threshold binarization train on different data (epoch-1 losses differ)" \
  losses_differ d1/metrics.jsonl t1/metrics.jsonl

# Bad data: a truncated IDX file is refused, naming the file.
mkdir bad && gzip -dc "$data/binarized-mnist/valid-images-idx3-ubyte.gz" | head -c 5000 >bad/train-images-idx3-ubyte
run --epochs 1 --data bad --out badrun >bad.out 2>bad.err
rc=$?
check "truncated data: exit 2" [ $rc -eq 2 ]
check "truncated data: the error names the file" grep -q 'bad/train-images-idx3-ubyte' bad.err

finish
