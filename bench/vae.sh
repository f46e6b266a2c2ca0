#!/bin/bash
# bench/vae.sh: speed and memory of `vmrun train` on models/vae.vm against the PyTorch
# reference bench/torch/vae.py, at 1 and 2 threads, on the binarized MNIST.
# Run from the repository (or the build tree) after building: bash bench/vae.sh [--epochs N]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

epochs=1
threads_list="1 2"
gflop_per_epoch=355   # matmul flops of forward + backward over 50,000 examples (bench/README.md)
usage="usage: bash bench/vae.sh [--epochs N] [--threads 'T...'] [options]
  --epochs N    epochs per measurement (default 1)
  --threads L   thread counts to measure (default '1 2')
$usage_common"
parse_common "$@"
set -- ${rest[@]+"${rest[@]}"}
while [ $# -gt 0 ]; do
  case $1 in
    --epochs) epochs=${2:?}; shift 2 ;;
    --threads) threads_list=${2:?}; shift 2 ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done

setup
print_env

# sgemm peak: the FLOP limit of an epoch is gflop_per_epoch / peak at the same thread count.
cc=${CC:-cc}
if flags=$(pkg-config --cflags --libs openblas 2>/dev/null); then :; else
  flags="$(sed -n 's/^BLAS_CFLAGS = //p' "$build/Makefile" 2>/dev/null) $(sed -n 's/^BLAS_LIBS = //p' "$build/Makefile" 2>/dev/null)"
  [ -n "${flags// /}" ] || flags=-lopenblas
fi
# shellcheck disable=SC2086
$cc -O2 "$root/bench/sgemm_peak.c" $flags -o "$work/sgemm_peak" || die "cannot build bench/sgemm_peak.c with: $cc -O2 ... $flags"
echo
echo "== sgemm peak (cblas_sgemm, 2048 x 2048, best of 5; bench/sgemm_peak.c)"
# shellcheck disable=SC2086
measure "$work/sgemm.rusage" "$work/sgemm_peak" 2048 5 $threads_list | tee "$work/sgemm.txt"

echo
echo "== training, $epochs epoch(s) per run, seed $seed"
echo "timed: seconds per epoch of the training steps only (shuffle, batch gather, forward, backward,"
echo "       Adam), mean over the epochs; excluded: process start, data loading, initialization,"
echo "       the validation pass after each epoch, checkpoints, the test pass."
echo "       vml: from vmrun's per-epoch examples/s; pytorch: time.perf_counter around the epoch's loop."
echo "memory: maximum resident set size of the whole process (getrusage of the child), test pass included."
for t in $threads_list; do
  echo "threads $t: vml     env $(vml_env "$t") vmrun train --threads $t"
  echo "threads $t: pytorch env $(torch_env "$t") torch.set_num_threads($t)"
  echo "           (pytorch's best settings: every thread pool at $t threads, idle OpenMP threads"
  echo "            sleep instead of spinning, glibc malloc neither mmaps nor trims: no page-fault churn)"
  vml_train "vml-t$t" "$epochs" "$t"
  torch_train "torch-t$t" "$epochs" "$t"
done

echo
"$py" - "$work" "$gflop_per_epoch" $threads_list <<EOF
$results_py
import re
work, gflop, threads = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
peak = {m.group(1): float(m.group(2))
        for m in re.finditer(r"threads=(\d+) gflops=([0-9.]+)", open(f"{work}/sgemm.txt").read())}
rss, wall, rc, others = open(f"{work}/sgemm.rusage").read().split()
if float(others) > 0.05 * float(wall):
    print(f"WARNING: other processes used {100 * float(others) / float(wall):.0f}% of a CPU during the sgemm"
          " measurement; the peak may be low")
rows = []
for t in threads:
    v, p = load(work, f"vml-t{t}"), load(work, f"torch-t{t}")
    limit = gflop / peak[t]
    print(f"== threads {t}")
    for r, who in ((v, "vml    "), (p, "pytorch")):
        print(f"{who}  {r['mean_seconds']:7.3f} s/epoch  ({', '.join('%.3f' % s for s in r['seconds'])})"
              f"  max RSS {r['maxrss_mb']:6.1f} MB  valid ELBO {r['valid'][-1]:.3f}  test ELBO {r['test']:.3f}"
              f"  process wall {r['wall']:.1f} s  other load {100 * r['others']:.0f}%")
    print(f"pytorch/vml: time {p['mean_seconds'] / v['mean_seconds']:.3f}, memory {p['maxrss_mb'] / v['maxrss_mb']:.3f}")
    print(f"FLOP limit: {gflop:.0f} GFLOP / {peak[t]:.1f} GFLOP/s = {limit:.3f} s/epoch;"
          f" vml {v['mean_seconds'] / limit:.2f}x the limit (target <= 1.3), pytorch {p['mean_seconds'] / limit:.2f}x")
    for r in (v, p):
        if r["warning"]:
            print(r["warning"])
    if not v["timed"].startswith("training steps only"):
        print("note: vml timed by", v["timed"])
    rows.append((t, v, p, limit))
print()
print("summary  threads  vml s/ep  torch s/ep  torch/vml  vml/limit  vml MB  torch MB  torch/vml mem")
for t, v, p, limit in rows:
    print(f"         {t:>7}  {v['mean_seconds']:8.3f}  {p['mean_seconds']:10.3f}  {p['mean_seconds'] / v['mean_seconds']:9.3f}"
          f"  {v['mean_seconds'] / limit:9.2f}  {v['maxrss_mb']:6.1f}  {p['maxrss_mb']:8.1f}  {p['maxrss_mb'] / v['maxrss_mb']:13.3f}")
EOF
