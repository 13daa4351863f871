"""Char-LSTM training step, shendu vs PyTorch CPU in one process.

Embedding(65, 64) -> LSTM(64, 256) -> Linear(256, 65), sequence 64, batch 32, cross-entropy,
Adam, gradient clipping at norm 1.0: the same weights and batches in both frameworks. Steps
alternate shendu/torch (the order flips every repeat) and the script prints the median
milliseconds per step and the ratio shendu/torch (target <= 1.5).

Run: ``python benchmarks/rnn.py [--repeats N] [--threads 2] [--mode lstm|gru|rnn]
[--composed] [--profile] [--device cpu|cuda]`` (cuda: both frameworks on the GPU).
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as tnn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import shendu
from _common import add_device_argument, check_device
from shendu import nn

VOCAB, EMBED, HIDDEN, SEQ, BATCH = 65, 64, 256, 64, 32


class CharModel(nn.Module):
    def __init__(self, mode, fused):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, EMBED)
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[mode](EMBED, HIDDEN,
                                                                        fused=fused)
        self.head = nn.Linear(HIDDEN, VOCAB)

    def forward(self, ids):
        out, _ = self.rnn(self.embed(ids))  # (L, N, H)
        return self.head(out)  # (L, N, VOCAB)


class TorchCharModel(tnn.Module):
    def __init__(self, mode):
        super().__init__()
        self.embed = tnn.Embedding(VOCAB, EMBED)
        self.rnn = {"lstm": tnn.LSTM, "gru": tnn.GRU, "rnn": tnn.RNN}[mode](EMBED, HIDDEN)
        self.head = tnn.Linear(HIDDEN, VOCAB)

    def forward(self, ids):
        out, _ = self.rnn(self.embed(ids))
        return self.head(out)


def steppers(mode, fused, rng, device):
    ours, theirs = CharModel(mode, fused), TorchCharModel(mode)
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                            for k, v in ours.state_dict().items()})
    ours.to(device), theirs.to(device)
    opt, topt = shendu.optim.Adam(ours.parameters()), torch.optim.Adam(theirs.parameters())
    ids = rng.integers(0, VOCAB, size=(SEQ + 1, BATCH))
    x, y = (shendu.from_numpy(a).to(device) for a in (ids[:-1], ids[1:].reshape(-1)))
    tx, ty = (torch.from_numpy(a).to(device) for a in (ids[:-1], ids[1:].reshape(-1)))

    def step_ours():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(ours(x).reshape(-1, VOCAB), y)
        loss.backward()
        nn.utils.clip_grad_norm_(ours.parameters(), 1.0)
        opt.step()
        return loss.item()

    def step_torch():
        topt.zero_grad()
        loss = tnn.functional.cross_entropy(theirs(tx).reshape(-1, VOCAB), ty)
        loss.backward()
        tnn.utils.clip_grad_norm_(theirs.parameters(), 1.0)
        topt.step()
        return loss.item()

    return step_ours, step_torch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mode", default="lstm", choices=["lstm", "gru", "rnn"])
    parser.add_argument("--composed", action="store_true", help="fused=False (Tensor ops)")
    parser.add_argument("--profile", action="store_true", help="cProfile the shendu step")
    add_device_argument(parser)
    args = parser.parse_args()
    check_device(args.device, __file__)
    torch.set_num_threads(args.threads)
    step_ours, step_torch = steppers(args.mode, not args.composed, np.random.default_rng(0),
                                     args.device)
    loss, tloss = step_ours(), step_torch()  # warm-up; same weights and batch: same loss
    print(f"first-step loss: shendu {loss:.6f}  torch {tloss:.6f}")
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(lambda: [step_ours() for _ in range(5)])
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
        return
    times = {"shendu": [], "torch": []}
    for k in range(args.repeats):
        pair = [("shendu", step_ours), ("torch", step_torch)]
        for name, step in pair if k % 2 == 0 else pair[::-1]:
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    ms = {name: 1000 * statistics.median(t) for name, t in times.items()}
    print(f"char-{args.mode} step ({'composed' if args.composed else 'fused'}, "
          f"{args.device}): shendu "
          f"{ms['shendu']:.1f} ms  torch {ms['torch']:.1f} ms  ratio "
          f"{ms['shendu'] / ms['torch']:.2f}")


if __name__ == "__main__":
    main()
