#!/usr/bin/python3
"""Prints PyTorch's SGD/Adam/AdamW results for the fixed inputs of
tests/unit/test_optim.c (test_torch_reference), as C hex-float arrays.

Run with the system python that has Debian's python3-torch:
    /usr/bin/python3 tests/python/torch_optim_reference.py
The numbers in test_optim.c were pasted from this output (torch 1.13.0a0,
Debian bookworm python3-torch 1.13.1+dfsg-4).

Inputs (all exact in float32), N = 37 floats so that both PyTorch's
vectorized loop and its scalar tail are covered:
    p0[i]   = ((i * 37) % 19 - 9) / 16
    g_k[i]  = ((i * 13 + k * 7) % 23 - 11) / 32      for steps k = 0, 1, 2
"""
import torch

N = 37
STEPS = 3


def p0():
    return torch.tensor([((i * 37) % 19 - 9) / 16 for i in range(N)], dtype=torch.float32)


def grad(k):
    return torch.tensor([((i * 13 + k * 7) % 23 - 11) / 32 for i in range(N)], dtype=torch.float32)


CASES = [
    ("sgd_plain", torch.optim.SGD, dict(lr=0.01)),
    ("sgd_momentum_wd", torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("sgd_nesterov", torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("adam", torch.optim.Adam, dict(lr=1e-3)),
    ("adam_wd", torch.optim.Adam, dict(lr=0.01, weight_decay=0.1)),
    ("adam_maximize", torch.optim.Adam, dict(lr=0.01, betas=(0.5, 0.99), eps=1e-3, maximize=True)),
    ("adamw", torch.optim.AdamW, dict(lr=0.01)),
    ("adamw_wd", torch.optim.AdamW, dict(lr=0.003, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.3)),
]


def carray(name, t):
    vals = ", ".join(float(x).hex() + "f" for x in t.tolist())
    return "static const float %s[%d] = {%s};" % (name, N, vals)


def main():
    print("/* torch %s */" % torch.__version__)
    for name, cls, kw in CASES:
        p = torch.nn.Parameter(p0())
        opt = cls([p], **kw)
        for k in range(STEPS):
            opt.zero_grad()
            p.grad = grad(k)
            opt.step()
        print(carray("torch_" + name, p.detach()))


if __name__ == "__main__":
    main()
