# Shared by bench/vae.sh and bench/accuracy.sh (sourced, not run).
# Sets: root build vmc vmrun data py work; defines die, usage_common, parse_common,
# print_env, vml_env, torch_env, measure, vml_train, torch_train.

die() { echo "${0##*/}: $*" >&2; exit 1; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${VML_BUILD:-}
data=${VML_DATA:-}
py=${PYTHON:-/usr/bin/python3}   # Debian's python with python3-torch, not a venv's
keep=0
seed=0

usage_common='  --build DIR   the vml build tree (default: ., else the source tree); or $VML_BUILD
  --data DIR    the binarized-mnist directory (default: ./binarized-mnist, else
                ../shared/data/binarized-mnist next to the source or build tree); or $VML_DATA
  --seed N      the seed of both sides (default 0)
  --keep        keep the work directory (runs, logs, metrics) instead of deleting it'

# parse_common ARG...: handles the common options; leaves the rest in the array `rest`.
parse_common() {
  rest=()
  while [ $# -gt 0 ]; do
    case $1 in
      --build) build=${2:?--build needs a directory}; shift 2 ;;
      --data) data=${2:?--data needs a directory}; shift 2 ;;
      --seed) seed=${2:?--seed needs a number}; shift 2 ;;
      --keep) keep=1; shift ;;
      *) rest+=("$1"); shift ;;
    esac
  done
}

# setup: find the tools, the data and python; make the work directory.
setup() {
  if [ -z "$build" ]; then
    if [ -x ./compiler/vmc ] && [ -x ./runtime/vmrun ]; then build=$(pwd); else build=$root; fi
  fi
  build=$(cd "$build" 2>/dev/null && pwd) || die "no build directory $build"
  vmc=$build/compiler/vmc vmrun=$build/runtime/vmrun
  [ -x "$vmc" ] && [ -x "$vmrun" ] ||
    die "vml is not built: no $build/compiler/vmc or $build/runtime/vmrun (run ./quickstart or make; or pass --build DIR)"
  if [ -z "$data" ]; then
    for d in ./binarized-mnist "$root/../shared/data/binarized-mnist" "$build/../shared/data/binarized-mnist"; do
      [ -d "$d" ] && { data=$d; break; }
    done
  fi
  [ -n "$data" ] || die "no binarized-mnist data: looked in ./binarized-mnist and ../shared/data/binarized-mnist; pass --data DIR"
  [ -d "$data" ] || die "no data directory $data (pass --data DIR: the binarized-mnist directory)"
  data=$(cd "$data" && pwd)
  for s in train valid test; do
    [ -f "$data/$s-images-idx3-ubyte.gz" ] || die "data incomplete: no $data/$s-images-idx3-ubyte.gz"
  done
  [ -x "$py" ] || die "no $py (Debian's python3 with python3-torch; or set PYTHON)"
  "$py" -c 'import torch, numpy' 2>/dev/null ||
    die "$py cannot import torch and numpy: apt-get install python3-torch python3-numpy"
  work=$(mktemp -d "${TMPDIR:-/tmp}/vml-bench.XXXXXX")
  if [ "$keep" = 1 ]; then echo "work directory (kept): $work"; else trap 'rm -rf "$work"' EXIT; fi
  "$vmc" compile "$root/models/vae.vm" -o "$work/vae.vmx" || die "vmc compile models/vae.vm failed"
}

print_env() {
  local commit
  commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
  git -C "$root" diff --quiet HEAD -- compiler runtime stdlib models 2>/dev/null || commit="$commit (+ local changes)"
  echo "== environment"
  echo "cpu:               $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
    "($(nproc) cpus available, $(lscpu 2>/dev/null | sed -n 's/^Thread(s) per core: *//p') thread(s) per core as reported)"
  echo "load average:      $(cut -d' ' -f1-3 /proc/loadavg) (other load disturbs the timings; each run reports it)"
  echo "OPENBLAS_CORETYPE: ${OPENBLAS_CORETYPE-(unset: OpenBLAS picks its kernel itself)}"
  echo "vml:               commit $commit, tools in $build"
  echo "data:              $data"
  "$py" - <<'EOF'
import ctypes, sys, numpy, torch
torch.mm(torch.ones(8, 8), torch.ones(8, 8))
libs = sorted({l.split()[-1] for l in open("/proc/self/maps") if "blas" in l or "mkl" in l})
try:
    lib = ctypes.CDLL("libopenblas.so.0")
    lib.openblas_get_config.restype = ctypes.c_char_p
    ob = lib.openblas_get_config().decode()
except OSError:
    ob = "not loaded"
print(f"python:            {sys.executable} {sys.version.split()[0]}, torch {torch.__version__}, numpy {numpy.__version__}")
print(f"torch BLAS:        {' '.join(libs) or 'none mapped'}; {ob}")
EOF
}

# vml_env T / torch_env T: the environment of each side at T threads (printed and used).
vml_env() { echo "OPENBLAS_NUM_THREADS=$1 OMP_NUM_THREADS=$1"; }
torch_env() {
  echo "OMP_NUM_THREADS=$1 OPENBLAS_NUM_THREADS=$1 MKL_NUM_THREADS=$1 OMP_WAIT_POLICY=PASSIVE" \
    "MALLOC_MMAP_THRESHOLD_=10000000000 MALLOC_TRIM_THRESHOLD_=10000000000"
}

# measure OUT CMD...: run CMD; write "MAXRSS_KB WALL_SECONDS EXIT OTHERS_CPU_SECONDS" to OUT:
# the child's peak memory (getrusage), and the CPU time the rest of the machine used meanwhile
# (busy time in /proc/stat minus the child's), which shows whether other load disturbed it.
measure() {
  local out=$1; shift
  "$py" -c '
import os, resource, subprocess, sys, time
def busy():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
b, t = busy(), time.perf_counter()
rc = subprocess.call(sys.argv[2:])
wall, b = time.perf_counter() - t, busy() - b
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write("%d %.3f %d %.2f\n" % (ru.ru_maxrss, wall, rc, max(0.0, b - ru.ru_utime - ru.ru_stime)))
sys.exit(rc)' "$out" "$@"
}

# vml_train NAME EPOCHS THREADS: train into $work/NAME (log, metrics, rusage), then eval on test.
vml_train() {
  local name=$1 epochs=$2 t=$3
  # shellcheck disable=SC2046
  measure "$work/$name.rusage" env $(vml_env "$t") "$vmrun" train "$work/vae.vmx" --data "$data" \
    --epochs "$epochs" --threads "$t" --seed "$seed" --out "$work/$name" >"$work/$name.log" 2>&1 ||
    { cat "$work/$name.log" >&2; die "vmrun train failed (log above)"; }
  env $(vml_env "$t") "$vmrun" eval "$work/vae.vmx" --run "$work/$name" --data "$data" --split test --json \
    --threads "$t" >"$work/$name.test.json" 2>>"$work/$name.log" ||
    { cat "$work/$name.log" >&2; die "vmrun eval failed (log above)"; }
}

# torch_train NAME EPOCHS THREADS: bench/torch/vae.py; its log ends with a JSON line.
torch_train() {
  local name=$1 epochs=$2 t=$3
  # shellcheck disable=SC2046
  measure "$work/$name.rusage" env $(torch_env "$t") "$py" "$root/bench/torch/vae.py" --data "$data" \
    --epochs "$epochs" --threads "$t" --seed "$seed" --json >"$work/$name.log" 2>&1 ||
    { cat "$work/$name.log" >&2; die "bench/torch/vae.py failed (log above)"; }
}

# results NAME...: a JSON object per run (kind, per-epoch train seconds, valid ELBOs, test ELBO, max RSS)
# for the python summaries of the two scripts. vml's per-epoch time is 1/(examples/s) times the
# examples, from vmrun's epoch lines: training steps only. Without those lines it falls back to
# metrics.jsonl "seconds" (cumulative; later epochs then include the previous validation pass).
results_py='
import json, re, sys
def load(work, name):
    rss, wall, rc, others = open(f"{work}/{name}.rusage").read().split()
    r = {"name": name, "maxrss_mb": int(rss) / 1024, "wall": float(wall), "others": float(others) / float(wall)}
    log = open(f"{work}/{name}.log").read()
    if name.startswith("vml"):
        m = re.search(r"on (\d+) examples", log)
        n = int(m.group(1)) if m else 50000
        rates = [float(x) for x in re.findall(r"^epoch \d+/\d+.*?([0-9.]+) examples/s", log, re.M)]
        met = [json.loads(l) for l in open(f"{work}/{name}/metrics.jsonl") if l.strip()]
        if len(rates) == len(met) and rates:
            r["seconds"] = [n / x for x in rates]
            r["timed"] = "training steps only (vmrun epoch lines: examples/s)"
        else:
            cum = [e["seconds"] for e in met]
            r["seconds"] = [b - a for a, b in zip([0] + cum, cum)]
            r["timed"] = "metrics.jsonl seconds (epochs after the first include a validation pass)"
        r["valid"] = [e.get("valid_elbo") for e in met]
        r["test"] = json.load(open(f"{work}/{name}.test.json"))["elbo"]
    else:
        j = json.loads(log.strip().splitlines()[-1])
        r["seconds"] = [e["seconds"] for e in j["epochs"]]
        r["timed"] = "training steps only (vae.py, time.perf_counter)"
        r["valid"] = [e["valid_elbo"] for e in j["epochs"]]
        r["test"] = j["test_elbo"]
    r["mean_seconds"] = sum(r["seconds"]) / len(r["seconds"])
    pct = 100 * r["others"]
    r["warning"] = (f"WARNING: other processes used {pct:.0f}% of a CPU during the {name} run;"
                    " its time may be inflated (rerun on a quiet machine)") if pct > 5 else None
    return r
'
