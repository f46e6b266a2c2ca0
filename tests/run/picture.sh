#!/bin/sh
# picture.sh - vmrun sample, reconstruct and interpolate on 4Frames (built-in
# data, no files needed): the AVB model (implicit encoder), the small VAE of
# ff_vae.vm and a VAE on real-valued 2-D data (its reconstructions are
# pictures of 1 x 2 values; its samples a scatter, tests/run/gauss2d.sh).
# Each command writes a PNG of the expected width and height and says so in
# one line; the same --seed gives the same bytes and another seed other
# bytes; a bad -o, a missing run, a missing split or too many examples fail
# with exit status 2 and leave no file.
#
# Environment: VMC and VMRUN (the programs to test; default: the ones in the
# build tree), VML_STDLIB (passed on to vmc).  Prints "N passed, N failed".
. "$(dirname "$0")/common.sh"

cd "$tmp" || exit 99

# Pictures are grids of cells with 2 gray pixels between and around them; a
# cell is a 2 x 2 frame at 32 pixels per value (64 x 64), or 1 x 2 values of
# real data at 32 (32 x 64).
grid() { # $1 rows, $2 columns, $3 cell height, $4 cell width: "WIDTHxHEIGHT"
  echo "$(($2 * $4 + ($2 + 1) * 2))x$(($1 * $3 + ($1 + 1) * 2))"
}
png_size() { # WIDTHxHEIGHT from the IHDR of a PNG, or nothing for another file
  [ -f "$1" ] && [ "$(od -An -c -j1 -N3 "$1" | tr -d ' ')" = PNG ] &&
    od -An -tu1 -j16 -N8 "$1" | awk '{ printf "%dx%d\n", (($1 * 256 + $2) * 256 + $3) * 256 + $4, (($5 * 256 + $6) * 256 + $7) * 256 + $8 }'
}
is_size() { [ "$(png_size "$1")" = "$2" ]; }
one_line() { # $1 the output of a command, $2 the file it should name
  [ "$(wc -l <"$1")" -eq 1 ] && grep -q "^wrote $2: " "$1"
}
no_file() { [ ! -e "$1" ] && [ ! -e "$1.tmp" ]; }
fails() { # $1 the error text expected; then the vmrun command; exit 2 and that message
  want=$1
  shift
  "$vmrun" "$@" >fail.out 2>fail.err
  rc=$?
  [ $rc -eq 2 ] && grep -q -- "$want" fail.err || {
    echo "  got exit $rc: $(cat fail.err)"
    return 1
  }
}

# ---------------------------------------------------------------- AVB
mkdir avb && cd avb || exit 99
"$vmc" compile "$top/models/avb.vm" >compile.log 2>&1 || {
  cat compile.log
  exit 99
}
# Small batches keep the training fast (the in-tree build runs under ASan).
"$vmrun" train --steps 30 --seed 1 --batch 32 --threads 1 >train.log 2>&1
check "avb: train 30 steps" [ -s runs/avb-1/checkpoint.safetensors ]

"$vmrun" sample -n 16 -o s.png >s.out 2>&1
check "avb: sample -n 16 writes a 4 x 4 grid" is_size s.png "$(grid 4 4 64 64)"
check "avb: sample says what it wrote, in one line" one_line s.out s.png
"$vmrun" sample -o s64.png >/dev/null 2>&1
check "avb: sample writes 64 samples by default (8 x 8)" is_size s64.png "$(grid 8 8 64 64)"
"$vmrun" sample -n 16 --no-noise -o m.png >m.out 2>&1
check "avb: sample --no-noise writes the means" is_size m.png "$(grid 4 4 64 64)"
check "avb: the means are not the samples" sh -c '! cmp -s s.png m.png'
"$vmrun" sample -n 16 --seed 1 -o s1.png >/dev/null 2>&1
check "avb: the run's seed is the default" cmp -s s.png s1.png
"$vmrun" sample -n 16 --seed 7 -o a.png >/dev/null 2>&1 && "$vmrun" sample -n 16 --seed 7 -o b.png >/dev/null 2>&1
check "avb: sample, the same --seed, the same bytes" cmp -s a.png b.png
"$vmrun" sample -n 16 --seed 8 -o c.png >/dev/null 2>&1
check "avb: sample, another --seed, other bytes" sh -c '[ -s c.png ] && ! cmp -s a.png c.png'

"$vmrun" reconstruct --split train -n 8 -o r.png >r.out 2>&1
check "avb: reconstruct -n 8: originals above reconstructions" is_size r.png "$(grid 2 8 64 64)"
check "avb: reconstruct says what it wrote" one_line r.out r.png
"$vmrun" reconstruct --split train -o r16.png >/dev/null 2>&1
check "avb: reconstruct takes 16 examples by default" is_size r16.png "$(grid 2 16 64 64)"
"$vmrun" reconstruct --split train -n 20 -o r20.png >/dev/null 2>&1
check "avb: reconstruct -n 20: two pairs of rows of 16" is_size r20.png "$(grid 4 16 64 64)"

"$vmrun" interpolate --split train -n 3 --points 5 -o i.png >i.out 2>&1
check "avb: interpolate -n 3 --points 5: a row per pair" is_size i.png "$(grid 3 5 64 64)"
check "avb: interpolate says what it wrote" one_line i.out i.png
"$vmrun" interpolate --split train -o i10.png >/dev/null 2>&1
check "avb: interpolate: 8 pairs of 10 points by default" is_size i10.png "$(grid 8 10 64 64)"
"$vmrun" interpolate --split train -n 3 --points 5 --seed 4 -o ia.png >/dev/null 2>&1 &&
  "$vmrun" interpolate --split train -n 3 --points 5 --seed 4 -o ib.png >/dev/null 2>&1
check "avb: interpolate, the same --seed, the same bytes" cmp -s ia.png ib.png

# Errors: exit 2, a message, and no file (nor its temporary).
check "-o with another extension fails" fails "unknown extension" sample -o x.jpg
check "  and leaves no file" no_file x.jpg
check "-o in a missing directory fails" fails "no directory" reconstruct --split train -o nodir/x.png
check "  and leaves no file" no_file nodir/x.png
check "a split the data do not have fails" fails "no test split" reconstruct -o t.png
check "  and leaves no file" no_file t.png
check "--run of a missing run fails" fails "nowhere" interpolate --split train --run nowhere -o n.png
check "  and leaves no file" no_file n.png
mkdir ../empty
(cd ../empty && "$vmrun" sample -o e.png >out.log 2>err.log)
rc=$?
check "no run under runs/: exit 2" [ $rc -eq 2 ]
check "  naming the problem" grep -q 'no runs/ directory' ../empty/err.log
check "  and leaves no file" no_file ../empty/e.png
check "a grid too large to look at fails" fails "larger than 16384 pixels" sample -n 100000 -o big.png
check "  and leaves no file" no_file big.png
cd .. || exit 99

# ---------------------------------------------------------------- a VAE
mkdir vae && cd vae || exit 99
"$vmc" compile "$here/ff_vae.vm" >compile.log 2>&1 || {
  cat compile.log
  exit 99
}
"$vmrun" train --seed 2 --threads 1 >train.log 2>&1
check "ff_vae: train 30 steps" [ -s runs/ff_vae-1/checkpoint.safetensors ]
"$vmrun" sample -n 9 --no-noise -o m.png >/dev/null 2>&1
check "ff_vae: sample --no-noise -n 9: 3 x 3" is_size m.png "$(grid 3 3 64 64)"
"$vmrun" reconstruct --split train -n 200 -o r.png >/dev/null 2>&1
check "ff_vae: reconstruct the whole split (200: 13 pairs of rows)" is_size r.png "$(grid 26 16 64 64)"
check "ff_vae: -n larger than the split fails" fails "needs 201 examples, but the train split has 200" \
  reconstruct --split train -n 201 -o big.png
check "  and leaves no file" no_file big.png
check "ff_vae: more pairs than the split holds fails" fails "needs 202 examples" \
  interpolate --split train -n 101 --points 2 -o big.png
"$vmrun" interpolate --split train -n 2 --points 4 -o i.png >/dev/null 2>&1
check "ff_vae: interpolate -n 2 --points 4" is_size i.png "$(grid 2 4 64 64)"
cd .. || exit 99

# ---------------------------------------------------------------- real 2-D data
mkdir real && cd real || exit 99
sed -e 's/bit\[4\] from synthetic.four_frames(n = 200)/real[2] from synthetic.gaussian(n = 200)/' \
  -e 's/Bernoulli(logits = nn.mlp(z, \[hidden, 4\], act = relu))/Normal(nn.mlp(z, [hidden, 2], act = relu), 1)/' \
  -e 's/model ff_vae/model gauss_vae/' "$here/ff_vae.vm" >gauss_vae.vm
"$vmc" compile gauss_vae.vm >compile.log 2>&1 && "$vmrun" train --seed 3 --threads 1 >train.log 2>&1
check "gauss_vae: a VAE on real 2-D data trains" [ -s runs/gauss_vae-1/checkpoint.safetensors ]
"$vmrun" sample -n 4 -o s.png >/dev/null 2>&1
check "gauss_vae: samples of real[2] data are a scatter (see gauss2d.sh)" is_size s.png 800x800
"$vmrun" reconstruct --split train -n 3 -o r.png >/dev/null 2>&1
check "gauss_vae: reconstruct" is_size r.png "$(grid 2 3 32 64)"
cd .. || exit 99

finish
