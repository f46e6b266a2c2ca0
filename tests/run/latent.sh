#!/bin/sh
# latent.sh - vmrun encode and vmrun plot on a short AVB run (4Frames,
# synthetic: only a train split): encode writes CSV (header, a label
# column) and NPY (+ FILE-labels.npy) with the right shapes, is
# reproducible from --seed and defaults to the run's seed; plot latent and
# plot metrics write 800x800 PNGs; a bad -o extension, a missing split and
# empty or malformed metrics fail with exit 2 and leave no file.  Then a
# tiny VAE on IDX files with a label file next to the test images (made
# here with python3, skipped without it): labels are found, a 3-D latent
# is plotted by its principal components.
#
# Environment: VMC, VMRUN, VML_STDLIB as for smoke.sh.  Prints "N passed,
# N failed".
. "$(dirname "$0")/common.sh"

cd "$tmp" || exit 99
"$vmc" compile "$top/models/avb.vm" >compile.log 2>&1 || {
  cat compile.log
  exit 99
}
# Small batches keep it fast (the in-tree build runs under ASan); the
# default run directory, runs/avb-1, is the one the commands find.
"$vmrun" train --steps 30 --seed 1 --batch 32 --threads 1 >train.log 2>&1 || {
  cat train.log
  exit 99
}
v() { "$vmrun" "$@" --threads 1; }

# png_size FILE: "WIDTH HEIGHT" from the IHDR chunk, empty if not a PNG.
png_size() {
  [ "$(od -An -tx1 -N8 "$1" | tr -d ' \n')" = 89504e470d0a1a0a ] || return 0
  od -An -tu1 -j16 -N8 "$1" | awk '{print $1*16777216 + $2*65536 + $3*256 + $4, $5*16777216 + $6*65536 + $7*256 + $8}'
}
# npy_len FILE: the bytes before the data (magic, version, length, header).
npy_len() { od -An -tu1 -j8 -N2 "$1" | awk '{print 10 + $1 + 256 * $2}'; }
# npy_is FILE TEXT: the header holds TEXT.
npy_is() { head -c "$(npy_len "$1")" "$1" | tail -c +11 | grep -qF "$2"; }
# npy_size FILE BYTES: the header, 64-byte aligned, then BYTES of data.
npy_size() { n=$(npy_len "$1") && [ $((n % 64)) -eq 0 ] && [ "$(wc -c <"$1")" -eq $((n + $2)) ]; }
no_file() { [ ! -e "$1" ] && [ ! -e "$1.tmp" ]; }

# ------------------------------------------------------------ encode, CSV
v encode --split train -o z.csv >enc.log 2>&1
rc=$?
check "encode -o z.csv exits 0" [ $rc -eq 0 ]
check "encode says what it wrote" grep -q '^wrote z.csv: 1000 examples' enc.log
check "CSV header z0,z1,label" [ "$(head -n 1 z.csv)" = "z0,z1,label" ]
check "CSV has 1000 rows" [ "$(tail -n +2 z.csv | wc -l)" -eq 1000 ]
check "every CSV row has 3 columns, labels 0..3" \
  awk -F, 'NR > 1 && (NF != 3 || $3 !~ /^[0-3]$/) {bad = 1} END {exit bad}' z.csv

v encode --split train --examples 10 -o ten.csv >/dev/null 2>&1
check "--examples 10: 10 rows" [ "$(tail -n +2 ten.csv | wc -l)" -eq 10 ]
# spread over the split with their labels: examples 0, 100, 200, ... (the
# encodings are draws of an implicit encoder; the labels tell which)
awk -F, 'NR > 1 && (NR - 2) % 100 == 0 {print $3}' z.csv >every100.txt
check "--examples 10: every 100th example of the 1000, by their labels" \
  sh -c 'tail -n +2 ten.csv | cut -d, -f3 | cmp -s - every100.txt'

# ------------------------------------------------------------ encode, NPY
v encode --split train -o z.npy >npy.log 2>&1
rc=$?
check "encode -o z.npy exits 0" [ $rc -eq 0 ]
check "NPY header: float32, shape (1000, 2)" \
  npy_is z.npy "{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 2), }"
check "NPY: 1000 x 2 float32 after the header" npy_size z.npy 8000
check "labels in z-labels.npy: int64, shape (1000,)" \
  npy_is z-labels.npy "{'descr': '<i8', 'fortran_order': False, 'shape': (1000,), }"
check "z-labels.npy: 1000 int64 after the header" npy_size z-labels.npy 8000
if [ -x /usr/bin/python3 ]; then
  check "NPY values equal the CSV's" /usr/bin/python3 -c '
import struct, sys
raw = open("z.npy", "rb").read()
n = raw[8] + 256 * raw[9]
z = struct.unpack("<2000f", raw[10 + n:])
lab = open("z-labels.npy", "rb").read()
m = lab[8] + 256 * lab[9]
labels = struct.unpack("<1000q", lab[10 + m:])
rows = [l.split(",") for l in open("z.csv").read().split()[1:]]
sys.exit(any(abs(float(r[0]) - z[2 * i]) > 1e-6 or abs(float(r[1]) - z[2 * i + 1]) > 1e-6 or int(r[2]) != labels[i]
             for i, r in enumerate(rows)))'
fi

# ------------------------------------------------------------ seeds
v encode --split train --seed 5 -o s5a.csv >/dev/null 2>&1
v encode --split train --seed 5 -o s5b.csv >/dev/null 2>&1
v encode --split train --seed 6 -o s6.csv >/dev/null 2>&1
check "same --seed, identical encodings" cmp -s s5a.csv s5b.csv
check "another --seed, other draws (AVB's encoder is a sampler)" sh -c '! cmp -s s5a.csv s6.csv'
v encode --split train --seed 1 -o s1.csv >/dev/null 2>&1
check "the default seed is the run's (trained with --seed 1)" cmp -s s1.csv z.csv
v encode --split train --sample -o sample.csv >/dev/null 2>&1
check "--sample: for AVB z.mean is the sample itself" cmp -s sample.csv z.csv
v encode --run runs/avb-1 --split train -o run.csv >/dev/null 2>&1
check "--run names the same run" cmp -s run.csv z.csv

# ------------------------------------------------------------ plots
v plot latent --split train -o latent.png >plot.log 2>&1
rc=$?
check "plot latent exits 0" [ $rc -eq 0 ]
check "plot latent says it coloured by input" \
  grep -q '^wrote latent.png: 1000 posterior samples of z (train split), coloured by input' plot.log
check "plot latent: an 800x800 PNG" [ "$(png_size latent.png)" = "800 800" ]
v plot latent --split train --examples 10 -o few.png >few.log 2>&1
check "10 examples of 4 inputs: 1000 posterior samples still" grep -q '^wrote few.png: 1000 posterior samples' few.log
v plot metrics -o metrics.png >metrics.log 2>&1
rc=$?
check "plot metrics exits 0" [ $rc -eq 0 ]
check "plot metrics: an 800x800 PNG" [ "$(png_size metrics.png)" = "800 800" ]
check "plot metrics: 2 panels (adversary, elbo), 10 reports by step" \
  grep -q '^wrote metrics.png: 2 panels, 10 reports by step' metrics.log

# ------------------------------------------------------------ errors
exit2() { [ "$1" -eq 2 ] && no_file "$2"; }
fails() { # $1 what, $2 file that must not appear, $3 message, then the command
  f_what=$1 f_file=$2 f_msg=$3
  shift 3
  "$@" >err.out 2>err.log
  rc=$?
  check "$f_what: exit 2, no file" exit2 $rc "$f_file"
  check "$f_what: says so" grep -q "$f_msg" err.log
}
fails "encode -o z.txt" z.txt 'expected a file ending in .npy or .csv' v encode --split train -o z.txt
fails "plot latent -o latent.jpg" latent.jpg 'expected a file ending in .png' v plot latent --split train -o latent.jpg
fails "encode without a test split" test.csv 'has no test split (it has: train' v encode -o test.csv
fails "plot latent without a test split" test.png 'has no test split' v plot latent -o test.png
mkdir empty-run && cp runs/avb-1/avb.vmx runs/avb-1/checkpoint.safetensors empty-run/ && : >empty-run/metrics.jsonl
fails "empty metrics.jsonl" empty.png 'no metrics yet' v plot metrics --run empty-run -o empty.png
head -n 2 runs/avb-1/metrics.jsonl >empty-run/metrics.jsonl
echo '{"epoch":3,"loss":{"train.0":1.2,}' >>empty-run/metrics.jsonl
fails "a malformed metrics line" bad.png 'empty-run/metrics.jsonl:3: malformed' \
  v plot metrics --run empty-run -o bad.png

# ------------------------------------------------------------ labels from IDX files
if [ -x /usr/bin/python3 ]; then
  mkdir tiny && /usr/bin/python3 -c '
import gzip, random, struct
random.seed(3)
def images(name, n):
    with gzip.open("tiny/%s-images-idx3-ubyte.gz" % name, "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28))
        for i in range(n):  # label i % 3: the first, middle or last third of the pixels lit
            f.write(bytes(255 if j // 262 == i % 3 and random.random() < 0.8 else 0 for j in range(784)))
images("train", 60)
images("valid", 20)
images("test", 30)
with gzip.open("tiny/test-labels-idx1-ubyte.gz", "wb") as f:
    f.write(struct.pack(">II", 0x801, 30) + bytes(i % 3 for i in range(30)))
'
  mkdir vae && cd vae || exit 99
  "$vmc" compile -D hidden=16 -D latent=3 "$top/models/vae.vm" -o vae.vmx >compile.log 2>&1 &&
    "$vmrun" train --data ../tiny --epochs 1 --batch 20 --seed 2 --threads 1 >train.log 2>&1
  rc=$?
  check "a tiny VAE trains on the IDX files" [ $rc -eq 0 ]
  v encode --data ../tiny -o t.csv >enc.log 2>&1
  labels() { tail -n +2 t.csv | cut -d, -f4 | tr '\n' ' '; }
  check "encode: header z0,z1,z2,label" [ "$(head -n 1 t.csv)" = "z0,z1,z2,label" ]
  want=$(awk 'BEGIN { for (i = 0; i < 30; i++) printf "%d ", i % 3 }')
  check "encode finds the labels next to the test images" [ "$(labels)" = "$want" ]
  v encode --data ../tiny --split train -o u.csv >/dev/null 2>&1
  v encode --data ../tiny --split train -o u.npy >/dev/null 2>&1
  check "no label file for the training images: no label column" [ "$(head -n 1 u.csv)" = "z0,z1,z2" ]
  check "no label file: no u-labels.npy" sh -c '[ -s u.npy ] && [ ! -e u-labels.npy ]'
  v plot latent --data ../tiny -o t.png >plot.log 2>&1
  check "plot latent of a 3-D latent: principal components, coloured by label" \
    grep -q '^wrote t.png: 30 encoder means of z (test split), principal components, coloured by label' plot.log
  check "plot latent: an 800x800 PNG" [ "$(png_size t.png)" = "800 800" ]
  v plot latent --data ../tiny --sample -o s.png >plot.log 2>&1
  check "plot latent --sample: the VAE's posterior draws" \
    grep -q '^wrote s.png: 30 posterior samples of z (test split)' plot.log
  check "plot latent --sample draws other points than the means" sh -c '! cmp -s t.png s.png'
  v plot metrics -o m.png >metrics.log 2>&1
  check "plot metrics with the validation ELBO: 1 panel, 1 report by epoch" \
    grep -q '^wrote m.png: 1 panel, 1 report by epoch' metrics.log
  cd .. || exit 99
else
  echo "latent.sh: no /usr/bin/python3 to write IDX files; the label checks are skipped" >&2
fi

finish
