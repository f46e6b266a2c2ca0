#!/bin/sh
# smoke.sh - vmrun end to end on the AVB model (4Frames, synthetic data):
# it trains, writes metrics and a checkpoint, is reproducible from --seed,
# resumes bit-identically through its 2:1 critic/model steps, evaluates
# nothing (avb has no elbo entry point), and refuses a truncated .vmx with
# exit status 2 and a message naming the file; and the adaptive-contrast
# variant of examples/four-frames trains.
#
# Environment: VMC and VMRUN (the programs to test; default: the ones in the
# build tree), VML_STDLIB (passed on to vmc).  Prints "N passed, N failed".
. "$(dirname "$0")/common.sh"

ok() { passed=$((passed + 1)); echo "PASS: $1"; }
bad() { failed=$((failed + 1)); echo "FAIL: $1"; }

cd "$tmp" || exit 99
mkdir w && cd w || exit 99
if "$vmc" compile "$top/models/avb.vm" >../compile.log 2>&1 && [ -f avb.vmx ]; then
  ok "vmc compiles models/avb.vm"
else
  bad "vmc compiles models/avb.vm"
  cat ../compile.log
  echo "$passed passed, $failed failed"
  exit 1
fi

# Small batches keep the test fast (the in-tree build runs under ASan).
train() { # $1 out dir
  "$vmrun" train --steps 50 --seed 1 --batch 32 --threads 1 --out "$1" >"$1.log" 2>&1
}

train run1
rc=$?
if [ $rc -eq 0 ]; then ok "vmrun train exits 0"; else bad "vmrun train exits 0 (got $rc)"; cat run1.log; fi
if [ -s run1/metrics.jsonl ] && [ "$(grep -c '^{"epoch":' run1/metrics.jsonl)" -ge 1 ]; then
  ok "metrics.jsonl has lines"
else
  bad "metrics.jsonl has lines"
fi
if [ -s run1/checkpoint.safetensors ]; then ok "checkpoint written"; else bad "checkpoint written"; fi
if [ -f run1/avb.vmx ]; then ok "the .vmx is copied into the run"; else bad "the .vmx is copied into the run"; fi

train run2
if [ -s run2/checkpoint.safetensors ] && cmp -s run1/checkpoint.safetensors run2/checkpoint.safetensors; then
  ok "same seed, byte-identical checkpoints"
else
  bad "same seed, byte-identical checkpoints"
fi

# 50 steps = 15 steps + --resume to 50 (the steps alternate
# 2 critic updates and 1 model update, each with its own Adam state).
"$vmrun" train --steps 15 --seed 1 --batch 32 --threads 1 --out half >half.log 2>&1 &&
  "$vmrun" train --resume half --steps 50 --threads 1 >resume.log 2>&1
rc=$?
# The tensors are compared, not the header: the two runs reported at
# different steps (every step of 15, every 5th of 50), so their report
# counters differ.
tensors() { # the data section of a safetensors file
  n=$(od -An -tu8 -N8 "$1" | tr -d ' ')
  tail -c +$((n + 9)) "$1"
}
tensors run1/checkpoint.safetensors >t1 && tensors half/checkpoint.safetensors >t2
if [ $rc -eq 0 ] && [ -s t1 ] && cmp -s t1 t2; then
  ok "15 steps + resume to 50 = 50 steps: the same parameters and optimizer state, byte for byte"
else
  bad "15 steps + resume to 50 = 50 steps: the same parameters and optimizer state, byte for byte (rc $rc)"
  cat resume.log
fi
"$vmrun" train --resume half --seed 2 >bad-resume.log 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q -- '--seed cannot be given with --resume' bad-resume.log; then
  ok "--resume refuses a new seed"
else
  bad "--resume refuses a new seed"
fi

# The default output directory: runs/avb-1.
"$vmrun" train --steps 2 --seed 3 --batch 16 --threads 1 >default.log 2>&1
if [ -s runs/avb-1/checkpoint.safetensors ]; then ok "default output runs/avb-1"; else bad "default output runs/avb-1"; cat default.log; fi

# A truncated .vmx: exit 2 and a message naming the file.
mkdir ../bad && cd ../bad || exit 99
size=$(wc -c <../w/avb.vmx)
head -c $((size / 2)) ../w/avb.vmx >broken.vmx
"$vmrun" train broken.vmx --steps 1 >out.log 2>err.log
rc=$?
if [ $rc -eq 2 ] && grep -q 'broken\.vmx' err.log; then
  ok "truncated .vmx: exit 2 naming the file"
else
  bad "truncated .vmx: exit 2 naming the file (got $rc: $(head -n 2 err.log))"
fi

# No .vmx in the directory: a clear error, exit 2.
mkdir ../empty && cd ../empty || exit 99
"$vmrun" train >out.log 2>err.log
rc=$?
if [ $rc -eq 2 ] && grep -q 'no \.vmx' err.log; then ok "no .vmx: exit 2"; else bad "no .vmx: exit 2 (got $rc)"; fi

# AVB with adaptive contrast (nn.implicit_moments: 17 noise draws per
# example) compiles, trains and keeps its loss finite: the moments' gradient
# through the normalized critic input is sound.
mkdir ../ac && cd ../ac || exit 99
if "$vmc" compile "$top/examples/four-frames/avb-ac.vm" >c.log 2>&1 &&
  "$vmrun" train --steps 20 --seed 1 --batch 32 --threads 1 --out r >t.log 2>&1 &&
  grep -q '"step":20' r/metrics.jsonl && ! grep -qi 'nan\|inf' r/metrics.jsonl; then
  ok "adaptive contrast (examples/four-frames/avb-ac.vm) trains 20 steps"
else
  bad "adaptive contrast (examples/four-frames/avb-ac.vm) trains 20 steps"
  cat c.log t.log
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
