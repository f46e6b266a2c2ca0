#!/bin/sh
# vqvae.sh - the shipped VQ-VAE (models/vqvae.vm, -D K=32 -D D=16 for speed)
# end to end on a small synthetic set of 28 x 28 pictures in [-1, 1] (bars,
# boxes and crosses written by awk as a text file, nothing to download):
# both stages train; every report in metrics.jsonl has the codebook usage
# and perplexity of the held-out split, within their bounds (used <= K,
# 1 <= perplexity <= K), and the prior's -log r(c) once the prior stage has
# begun; eval prints them, as text and as JSON, and its perplexity and usage
# are those of the codes `vmrun encode` writes; a run killed at the end of
# the autoencoder stage and resumed gives the checkpoint of an uninterrupted
# run, byte for byte; sample draws codes from the PixelCNN prior and
# reconstruct shows originals above their reconstructions, as PNGs.  A
# codebook updated by moving averages (codebook = ema(...)) is the one
# computed by hand, its state is in the checkpoint (bit-identical resume),
# and the EMA variant of the model trains both stages.
#
# Environment: VMC and VMRUN (the programs to test; default: the ones in the
# build tree), VML_STDLIB (passed on to vmc).  Prints "N passed, N failed".
. "$(dirname "$0")/common.sh"

cd "$tmp" || exit 99

K=32
# 160 pictures, 784 values a line in [-1, 1]: background -1, one bar, box or
# cross of +1 (brightness 0.5..1) at a random place.  The model's valid = 0.1
# holds out the last 16.
awk 'BEGIN {
  srand(11)
  for (n = 0; n < 160; n++) {
    for (i = 0; i < 784; i++) px[i] = -1
    kind = int(rand() * 4); r0 = 4 + int(rand() * 12); c0 = 4 + int(rand() * 12); s = 6 + int(rand() * 8)
    v = 0.5 + rand() / 2
    for (t = 0; t < s; t++) {
      if (kind == 0) { px[(r0 + 3) * 28 + c0 + t] = v; px[(r0 + 4) * 28 + c0 + t] = v }
      if (kind == 1) { px[(r0 + t) * 28 + c0 + 3] = v; px[(r0 + t) * 28 + c0 + 4] = v }
      if (kind == 2) { px[r0 * 28 + c0 + t] = v; px[(r0 + s) * 28 + c0 + t] = v
                       px[(r0 + t) * 28 + c0] = v; px[(r0 + t) * 28 + c0 + s] = v }
      if (kind == 3) { px[(r0 + t) * 28 + c0 + t] = v; px[(r0 + t) * 28 + c0 + s - t] = v }
    }
    line = px[0]
    for (i = 1; i < 784; i++) line = line " " px[i]
    print line
  }
}' >shapes.txt

"$vmc" compile -D K=$K -D D=16 "$top/models/vqvae.vm" -o vqvae.vmx >compile.log 2>&1 || {
  cat compile.log
  exit 99
}
# --steps 3: three reports a stage (the in-tree build runs under ASan)
run() { "$vmrun" train vqvae.vmx --data shapes.txt --steps 3 --batch 16 --seed 5 --threads 1 "$@"; }

run --out straight >straight.log 2>&1
rc=$?
check "train both stages exits 0" [ $rc -eq 0 ]
[ $rc -eq 0 ] || cat straight.log
m=straight/metrics.jsonl
check "metrics: three reports of each stage" \
  [ "$(grep -c '"stage":"autoencoder"' $m)" -eq 3 -a "$(grep -c '"stage":"pixelcnn"' $m)" -eq 3 ]
check "metrics: every report has the held-out codes of c" \
  [ "$(grep -c '"valid":{"examples":16,"codes":{"c":{"classes":32,"used":[0-9]' $m)" -eq 6 ]
check "metrics: every report has the reconstruction error" [ "$(grep -c '"rec_mse":{"x":[0-9]' $m)" -eq 6 ]
check "metrics: the prior's nll from the pixelcnn stage on, not before" \
  [ "$(grep '"stage":"pixelcnn"' $m | grep -c '"perplexity":[0-9.e+-]*,"nll":[0-9]')" -eq 3 -a \
    "$(grep '"stage":"autoencoder"' $m | grep -c '"nll"')" -eq 0 ]
bounds() { # every "used" and "perplexity" of a file within [1, K]
  sed -n 's/.*"used":\([0-9]*\),"usage":[^,]*,"perplexity":\([^,}]*\).*/\1 \2/p' "$1" >bounds.txt
  [ -s bounds.txt ] && awk -v K=$K '{ if (!($1 >= 1 && $1 <= K && $2 >= 1 - 1e-9 && $2 <= $1 + 1e-6)) bad = 1 }
    END { exit bad }' bounds.txt
}
check "metrics: 1 <= used <= K and 1 <= perplexity <= used" bounds $m
check "the progress line shows usage and perplexity" grep -q 'valid c: [0-9]*/32 codes, perplexity' straight.log
"$vmrun" plot metrics --run straight -o curves.png >plot.log 2>&1
check "plot metrics: the two losses and c's codes used, perplexity and prior -log r" \
  grep -q '^wrote curves.png: 5 panels, 6 reports' plot.log

# ---------------------------------------------------------------- eval
"$vmrun" eval --run straight --split valid --threads 1 >eval.txt 2>&1
check "eval prints the codebook usage and perplexity" grep -q '^  c: [0-9]* of 32 codes used ([0-9.]*%), perplexity' eval.txt
check "eval prints the prior's -log r(c)" grep -q '^  c: -log r(c) [0-9.]* nats per example' eval.txt
check "eval prints the reconstruction error" grep -q '^  x: reconstruction mean squared error' eval.txt
"$vmrun" eval --run straight --split valid --json --threads 1 >eval.json 2>&1
check "eval --json: one object with codes, nll and rec_mse" \
  grep -q '^{"run":"straight","model":"vqvae","split":"valid","examples":16,"codes":{"c":{"classes":32,.*"nll":.*"rec_mse":{"x":' eval.json
check "eval --json: 1 <= used <= K and 1 <= perplexity <= used" bounds eval.json
# the same numbers from the codes themselves: encode's c0..c48 columns
"$vmrun" encode --run straight --split valid --sample -o codes.csv >/dev/null 2>&1
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i ~ /^c[0-9]+$/) col[i] = 1; next }
  { for (i in col) { n[$i]++; total++ } }
  END { for (c in n) { p = n[c] / total; h -= p * log(p); used++ }; printf "%d %.4f\n", used, exp(h) }' codes.csv >fromcodes.txt
sed -n 's/.*"used":\([0-9]*\),"usage":[^,]*,"perplexity":\([^,}]*\).*/\1 \2/p' eval.json |
  awk '{ printf "%d %.4f\n", $1, $2 }' >fromeval.txt
check "eval's usage and perplexity are those of encode's codes" cmp -s fromcodes.txt fromeval.txt
check "eval on a split the data lack fails" sh -c '"$0" eval --run straight --split test >/dev/null 2>&1; [ $? -eq 2 ]' "$vmrun"

# ---------------------------------------------------------------- resume
# A run killed once the autoencoder stage has made its last report, then
# resumed: the prior stage starts from that checkpoint (or the one before;
# either way, the run must end where the uninterrupted one did).
mkfifo out.fifo
run --out cut >out.fifo 2>cut.err &
pid=$!
while read -r line; do
  case $line in *"step 3/3 [autoencoder]"*) kill -9 $pid 2>/dev/null; break ;; esac
done <out.fifo
wait $pid 2>/dev/null
check "the killed run has a checkpoint of the autoencoder stage only" \
  sh -c '[ -s cut/checkpoint.safetensors ] && ! grep -q pixelcnn cut/metrics.jsonl'
"$vmrun" train --resume cut --steps 3 --threads 1 >resume.log 2>&1
check "--resume across the stage boundary exits 0" [ $? -eq 0 ]
check "  and gives the uninterrupted run's checkpoint, byte for byte" \
  cmp -s straight/checkpoint.safetensors cut/checkpoint.safetensors
check "  and its metrics, but for the times" sh -c \
  'sed "s/,\"examples_per_second\".*//" straight/metrics.jsonl >a.txt; sed "s/,\"examples_per_second\".*//" cut/metrics.jsonl >b.txt; cmp -s a.txt b.txt'

# ---------------------------------------------------------------- pictures
png_size() { # WIDTHxHEIGHT from the IHDR of a PNG
  [ -f "$1" ] && [ "$(od -An -c -j1 -N3 "$1" | tr -d ' ')" = PNG ] &&
    od -An -tu1 -j16 -N8 "$1" | awk '{ printf "%dx%d\n", (($1 * 256 + $2) * 256 + $3) * 256 + $4, (($5 * 256 + $6) * 256 + $7) * 256 + $8 }'
}
# cells of 28 x 28 pictures zoomed to 84 x 84, 2 gray pixels between and around
"$vmrun" sample --run straight -n 4 --no-noise --threads 1 -o s.png >s.out 2>&1
check "sample: codes from the PixelCNN prior, decoded: 2 x 2 pictures" [ "$(png_size s.png)" = 174x174 ]
"$vmrun" sample --run straight -n 4 --no-noise --threads 1 -o s2.png >/dev/null 2>&1
check "sample: the same seed, the same bytes" cmp -s s.png s2.png
"$vmrun" reconstruct --run straight --split valid -n 4 --threads 1 -o r.png >r.out 2>&1
check "reconstruct: 4 originals above 4 reconstructions" [ "$(png_size r.png)" = 346x174 ]

# ---------------------------------------------------------------- EMA codebook
# codebook = ema(decay, eps): a model whose encoder output is the data itself
# (z = x, 2-D points), its codebook from zeros, two steps over all 40 points:
# the codebook then is what awk computes by hand (Sonnet's VectorQuantizerEMA:
# debiased moving averages of counts and sums, Laplace-smoothed counts), and
# encode gives every point the nearest of those codes.
mkdir ema && cd ema || exit 99
cat >ema_check.vm <<'EOF2'
import nn
model ema_check {
  hyper K = 4
  data x : real[2] from files("points.txt")
  param e : [K, 2] init zeros
  encoder q(zq, c | x) {
    ze = reshape(x, [2, 1])
    c = nearest(ze, e)
    zq = ze + sg(embed(e, c) - ze)
  }
  decoder p(x | zq) { x ~ Normal(nn.dense(reshape(zq, [2]), 2), 1) }
  loss rec = -log p(x | zq)
  train { minimize rec with sgd(lr = 0.1, codebook = ema(decay = 0.5, eps = 0.01)) over p, e; steps 2 }
}
EOF2
awk 'BEGIN { srand(3); for (i = 0; i < 40; i++) { a = 6.2832 * rand(); r = 1 + 2 * rand(); printf "%.4f %.4f\n", r * cos(a) + 0.5, r * sin(a) } }' >points.txt
cat >check.awk <<'EOF2'
function near(x, y,   k, b, bd, d) { b = 0; bd = 1e300
  for (k = 0; k < K; k++) { d = (x - E[k,0])^2 + (y - E[k,1])^2; if (d < bd) { bd = d; b = k } }
  return b }
function ema(t,   k, b, tot, n) { b = 1 - g^t; tot = 0
  for (k = 0; k < K; k++) { N[k] = g * N[k] + (1 - g) * cnt[k]; M[k,0] = g * M[k,0] + (1 - g) * S[k,0]
    M[k,1] = g * M[k,1] + (1 - g) * S[k,1]; tot += N[k] / b }
  for (k = 0; k < K; k++) { n = (N[k] / b + eps) / (tot + K * eps) * tot; E[k,0] = M[k,0] / b / n; E[k,1] = M[k,1] / b / n } }
function step(t,   i, k) { for (k = 0; k < K; k++) { cnt[k] = 0; S[k,0] = 0; S[k,1] = 0 }
  for (i = 0; i < np; i++) { k = near(X[i], Y[i]); cnt[k]++; S[k,0] += X[i]; S[k,1] += Y[i] }
  ema(t) }
FNR == NR { X[np + 0] = $1; Y[np + 0] = $2; np++; next }
FNR == 1 { for (k = 0; k < K; k++) { E[k,0] = 0; E[k,1] = 0; N[k] = 0; M[k,0] = 0; M[k,1] = 0 }; step(1); step(2); next }
{ split($0, f, ","); i = FNR - 2; k = near(X[i], Y[i])
  if (f[3] != k || (f[1] - E[k,0])^2 + (f[2] - E[k,1])^2 > 1e-8) { bad++; print "  example " i ": code " f[3] " at " f[1] ", " f[2] "; expected " k " at " E[k,0] ", " E[k,1] } }
END { exit bad > 0 || FNR != np + 1 }
EOF2
"$vmc" compile ema_check.vm -o ema_check.vmx >compile.log 2>&1 || {
  cat compile.log
  exit 99
}
"$vmrun" train ema_check.vmx --batch 40 --seed 1 --threads 1 --out run >train.log 2>&1 &&
  "$vmrun" encode --run run --split train --sample -o z.csv >/dev/null 2>&1
check "ema: the codebook after two steps is the one computed by hand" awk -v K=4 -v g=0.5 -v eps=0.01 -f check.awk points.txt z.csv
check "  (and not the one of another decay)" sh -c '! awk -v K=4 -v g=0.6 -v eps=0.01 -f check.awk points.txt z.csv >/dev/null'
"$vmrun" train ema_check.vmx --batch 8 --steps 4 --seed 2 --threads 1 --out straight >/dev/null 2>&1
"$vmrun" train ema_check.vmx --batch 8 --steps 2 --seed 2 --threads 1 --out cut >/dev/null 2>&1 &&
  "$vmrun" train --resume cut --steps 4 --threads 1 >/dev/null 2>&1
check "ema: its state is in the checkpoint: 2 steps + --resume + 2 = 4 steps, byte for byte" \
  sh -c '[ -s straight/checkpoint.safetensors ] && cmp -s straight/checkpoint.safetensors cut/checkpoint.safetensors'
check "  under optim/GRAPH/e/ema_count and ema_sum" \
  sh -c 'grep -aq "optim/train.0/e/ema_count" cut/checkpoint.safetensors && grep -aq "optim/train.0/e/ema_sum" cut/checkpoint.safetensors'
cd .. || exit 99
# the EMA variant of the shipped model (examples/mnist-vqvae/vqvae-ema.vm), both stages
"$vmc" compile -D K=$K -D D=16 "$top/examples/mnist-vqvae/vqvae-ema.vm" -o vqvae_ema.vmx >compile.log 2>&1 || {
  cat compile.log
  exit 99
}
"$vmrun" train vqvae_ema.vmx --data shapes.txt --steps 2 --batch 8 --seed 5 --threads 1 --out ema-run >ema-run.log 2>&1
check "vqvae-ema.vm: both stages train" [ $? -eq 0 -a "$(grep -c '"codes":{"c":' ema-run/metrics.jsonl)" -eq 4 ]
check "vqvae-ema.vm: 1 <= used <= K and 1 <= perplexity <= used" bounds ema-run/metrics.jsonl

finish
