#!/usr/bin/python3
"""PyTorch reference for models/vae.vm: the same VAE, data, loss, optimizer.

Encoder 784-500-500 (relu), mean = dense(500->20), std = softplus(dense(500->20));
standard-normal prior; decoder 20-500-500-784 (relu between), Bernoulli logits.
Loss = -(E[log p(x|z)] - KL(q||p)), one sample, analytic KL, batch mean.
Adam lr 1e-3 (default betas), batch 128, glorot-uniform weights, zero biases,
a fresh shuffle every epoch, the last short batch kept (as vmrun train does).

Run with Debian's python (python3-torch, python3-numpy):
  /usr/bin/python3 bench/torch/vae.py --data ../shared/data/binarized-mnist --epochs 1 --threads 2

Timed per epoch ("seconds"): the training steps only -- shuffle, batch gather,
forward, backward, Adam. Not timed: loading the data, the validation pass after
each epoch, the final test pass.
"""
import argparse
import gzip
import json
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load_idx(path):
    """An IDX image file (gzip) as an N x 784 uint8 tensor of 0/1."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n, rows, cols = struct.unpack(">4I", raw[:16])
    if magic != 0x803:
        raise SystemExit(f"{path}: not an IDX image file (magic {magic:#x})")
    return torch.from_numpy(np.frombuffer(raw, np.uint8, offset=16).reshape(n, rows * cols).copy())


class VAE(nn.Module):
    def __init__(self, dim=784, hidden=500, latent=20):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.mean = nn.Linear(hidden, latent)
        self.std = nn.Linear(hidden, latent)
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, dim))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def neg_elbo_sum(self, x):
        """-(log p(x|z) - KL(q(z|x) || N(0,1))) summed over the batch, z ~ q one sample."""
        h = self.enc(x)
        mu, sd = self.mean(h), F.softplus(self.std(h))
        z = mu + sd * torch.randn_like(sd)
        nll = F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="sum")
        kl = 0.5 * (mu * mu + sd * sd - 1).sum() - torch.log(sd).sum()
        return nll + kl


@torch.no_grad()
def mean_elbo(model, data, batch=128):
    total = 0.0
    for i in range(0, len(data), batch):
        total += model.neg_elbo_sum(data[i:i + batch].float()).item()
    return -total / len(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/binarized-mnist")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--json", action="store_true", help="end with one JSON line of all results")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    t = time.perf_counter()
    train, valid, test = (load_idx(os.path.join(a.data, f"{s}-images-idx3-ubyte.gz"))
                          for s in ("train", "valid", "test"))
    load_seconds = time.perf_counter() - t
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    n = len(train)
    epochs = []
    for epoch in range(1, a.epochs + 1):
        t = time.perf_counter()
        perm, loss_sum, steps = torch.randperm(n), 0.0, 0
        for i in range(0, n, a.batch):
            x = train[perm[i:i + a.batch]].float()
            loss = model.neg_elbo_sum(x) / len(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item()
            steps += 1
        secs = time.perf_counter() - t
        v = mean_elbo(model, valid)
        epochs.append({"epoch": epoch, "seconds": secs, "train_elbo": -loss_sum / steps, "valid_elbo": v})
        print(f"epoch {epoch}/{a.epochs}  train elbo {-loss_sum / steps:.6g}  valid elbo {v:.6g}  "
              f"{secs:.3f} s (training steps only)  {n / secs:.0f} examples/s", flush=True)
    test_elbo = mean_elbo(model, test)
    valid_elbo = epochs[-1]["valid_elbo"] if epochs else mean_elbo(model, valid)
    print(f"test elbo {test_elbo:.6f}  valid elbo {valid_elbo:.6f}  (one-sample ELBO, mean over the split)")
    if a.json:
        print(json.dumps({"torch": torch.__version__, "threads": a.threads, "seed": a.seed,
                          "load_seconds": load_seconds, "epochs": epochs,
                          "test_elbo": test_elbo, "valid_elbo": valid_elbo}))


if __name__ == "__main__":
    main()
