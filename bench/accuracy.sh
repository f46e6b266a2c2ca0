#!/bin/bash
# bench/accuracy.sh: do vmrun train and the PyTorch reference reach the same ELBO?
# Trains models/vae.vm and bench/torch/vae.py for 20 epochs at 2 threads (same data,
# batch, optimizer, seed number -- not the same random streams), prints the valid
# ELBO of every epoch side by side, both test ELBOs and their difference (target: within
# 1 nat). Takes minutes. Run from the repository after building: bash bench/accuracy.sh
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

epochs=20
threads=2
usage="usage: bash bench/accuracy.sh [--epochs N] [--threads T] [options]
  --epochs N    epochs of each side (default 20)
  --threads T   threads of each side (default 2)
$usage_common"
parse_common "$@"
set -- ${rest[@]+"${rest[@]}"}
while [ $# -gt 0 ]; do
  case $1 in
    --epochs) epochs=${2:?}; shift 2 ;;
    --threads) threads=${2:?}; shift 2 ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done

setup
print_env
echo
echo "== $epochs epochs at $threads threads, seed $seed, batch 128, adam lr 1e-3"
echo "vml:     env $(vml_env "$threads") vmrun train --epochs $epochs --threads $threads --seed $seed"
echo "pytorch: env $(torch_env "$threads") bench/torch/vae.py --epochs $epochs --threads $threads --seed $seed"
vml_train vml "$epochs" "$threads"
torch_train torch "$epochs" "$threads"

"$py" - "$work" <<EOF
$results_py
v, p = load(sys.argv[1], "vml"), load(sys.argv[1], "torch")
print("epoch  vml valid ELBO  pytorch valid ELBO  difference")
for i, (a, b) in enumerate(zip(v["valid"], p["valid"]), 1):
    print(f"{i:5}  {a:14.3f}  {b:18.3f}  {a - b:10.3f}")
d = v["test"] - p["test"]
print(f"test ELBO (one sample per example, mean over 10,000): vml {v['test']:.3f}  pytorch {p['test']:.3f}"
      f"  difference {d:+.3f} nats: {'within' if abs(d) <= 1 else 'NOT within'} 1 nat")
print(f"seconds per epoch (training steps only): vml {v['mean_seconds']:.3f}  pytorch {p['mean_seconds']:.3f}")
for r in (v, p):
    if r["warning"]:
        print(r["warning"].replace("its time", "its seconds per epoch"))
EOF
