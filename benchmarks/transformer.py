"""Forward+backward time of a tiny GPT-like block stack, shendu against PyTorch CPU.

Run: ``python benchmarks/transformer.py [--repeats N] [--dropout P] [--profile]
[--device cpu|cuda]`` (cuda: both frameworks on the GPU).

The stack is nanoGPT's shape (n_layer 4, n_head 4, n_embd 128, block 64, batch 32): a
TransformerEncoder of pre-norm GELU layers with a causal mask, then a final LayerNorm, built
from the same weights in both frameworks. Each run is forward, a mean-squared loss against a
fixed target and backward (float32). Runs alternate shendu/torch, the order flipping each
repeat; the table reports medians and the ratio shendu_ms / torch_ms.
``--profile`` runs cProfile over the shendu side and prints the top entries.
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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import shendu
from _common import add_device_argument, check_device, synchronize
from shendu import nn


def build(n_layer=4, n_head=4, n_embd=128, block=64, batch=32, dropout=0.0, seed=0):
    """Both stacks with equal weights, their inputs, target and the causal masks."""
    shendu.manual_seed(seed)
    layer = nn.TransformerEncoderLayer(n_embd, n_head, 4 * n_embd, dropout, "gelu",
                                       batch_first=True, norm_first=True)
    ours = nn.TransformerEncoder(layer, n_layer, nn.LayerNorm(n_embd))
    tlayer = torch.nn.TransformerEncoderLayer(n_embd, n_head, 4 * n_embd, dropout, "gelu",
                                              batch_first=True, norm_first=True)
    theirs = torch.nn.TransformerEncoder(tlayer, n_layer, torch.nn.LayerNorm(n_embd),
                                         enable_nested_tensor=False)
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                            for k, v in ours.state_dict().items()})
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, block, n_embd), dtype=np.float32)
    y = rng.standard_normal((batch, block, n_embd), dtype=np.float32)
    mask = nn.Transformer.generate_square_subsequent_mask(block)
    tmask = torch.nn.Transformer.generate_square_subsequent_mask(block)
    return ours, theirs, (x, y, mask, tmask)


def runners(ours, theirs, data, device="cpu"):
    x, y, mask, tmask = data
    ours.to(device), theirs.to(device)
    mask, tmask = mask.to(device), tmask.to(device)
    sx, sy = shendu.tensor(x, device=device, requires_grad=True), shendu.tensor(y, device=device)
    tx, ty = torch.tensor(x, device=device, requires_grad=True), torch.tensor(y, device=device)

    def run_ours():
        ours.zero_grad()
        out = ours(sx, mask=mask, is_causal=True)
        ((out - sy) ** 2).mean().backward()

    def run_theirs():
        theirs.zero_grad()
        out = theirs(tx, mask=tmask, is_causal=True)
        ((out - ty) ** 2).mean().backward()

    return run_ours, run_theirs


def measure(run_ours, run_theirs, repeats, device="cpu"):
    times = {"shendu": [], "torch": []}
    run_ours(), run_theirs()  # warm-up
    for i in range(repeats):
        pair = [("shendu", run_ours), ("torch", run_theirs)]
        for name, fn in (pair if i % 2 == 0 else pair[::-1]):
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true")
    add_device_argument(parser)
    args = parser.parse_args(argv)
    check_device(args.device, __file__)
    torch.set_num_threads(args.threads)
    ours, theirs, data = build(dropout=args.dropout)
    run_ours, run_theirs = runners(ours, theirs, data, args.device)
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(5):
            run_ours()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return
    ms = measure(run_ours, run_theirs, args.repeats, args.device)
    print(f"GPT-like stack (4 x 128, 4 heads, L 64, N 32), dropout {args.dropout}, "
          f"{args.device}: "
          f"shendu {ms['shendu']:.1f} ms, torch {ms['torch']:.1f} ms, "
          f"ratio {ms['shendu'] / ms['torch']:.2f}")


if __name__ == "__main__":
    main()
