#!/bin/sh
# flow.sh - vmrun sample from a flow prior (flow_vae.vm: a MADE flow over a
# 2-D latent, on 4Frames): the latents are the base draws mapped back
# through the inverted flow, reproducibly from --seed; a flow that is not
# affine autoregressive (cube_flow.vm) is refused with exit 2 and no file.
# tests/unit/test_flow.c checks the flow itself (triangular Jacobian,
# log-determinant).
#
# Environment: VMC and VMRUN (the programs to test; default: the ones in the
# build tree), VML_STDLIB (passed on to vmc).  Prints "N passed, N failed".
. "$(dirname "$0")/common.sh"

cd "$tmp" || exit 99
for m in flow_vae cube_flow; do
  "$vmc" compile "$here/$m.vm" >compile.log 2>&1 || {
    cat compile.log
    exit 99
  }
done

"$vmrun" train flow_vae.vmx --seed 1 --threads 1 >train.log 2>&1
check "flow_vae: trains" [ -s runs/flow_vae-1/checkpoint.safetensors ]
"$vmrun" sample --run runs/flow_vae-1 -n 16 -o a.png >a.out 2>&1
check "flow_vae: sample from the flow prior writes a PNG" grep -q "^wrote a.png: 16 samples" a.out
"$vmrun" sample --run runs/flow_vae-1 -n 16 -o b.png >/dev/null 2>&1
check "flow_vae: the same seed gives the same picture" cmp -s a.png b.png
"$vmrun" sample --run runs/flow_vae-1 -n 16 --seed 2 -o c.png >/dev/null 2>&1
check "flow_vae: another seed gives another picture" sh -c '[ -s c.png ] && ! cmp -s a.png c.png'
"$vmrun" sample --run runs/flow_vae-1 -n 300 --no-noise -o many.png >/dev/null 2>&1
check "flow_vae: 300 samples (3 batches) of decoder means" [ -s many.png ]

"$vmrun" train cube_flow.vmx --seed 1 --threads 1 >train2.log 2>&1
"$vmrun" sample --run runs/cube_flow-1 -n 4 -o d.png >d.out 2>d.err
rc=$?
check "cube_flow: a non-affine flow is refused with exit 2" [ $rc -eq 2 ]
check "cube_flow: the error says why" grep -q "does not invert at dimension 1.*eps_i = z_i sigma_i + mu_i" d.err
check "cube_flow: no picture is left" sh -c '[ ! -e d.png ] && [ ! -e d.png.tmp ]'
finish
