"""Per-layer time of one 3x3 stride-1 padding-1 convolution, forward + input and weight
gradients: shendu's compiled direct kernels vs shendu's NumPy reference vs PyTorch CPU.

The layers are ResNet-20's (batch 64: 3->16 and 16->16 at 32x32, 32->32 at 16x16, 64->64 at
8x8) and two wider VGG-11-small ones, to show where the NumPy reference wins. The three
variants alternate (kernel, NumPy, torch, kernel, ...) so that all see the same machine load;
the medians and ratios are printed. ``--threads 1 2`` repeats the table for each count
(shendu.set_num_threads and torch.set_num_threads). Ratio columns are time / torch time.

Run: ``python benchmarks/conv_kernels.py [--repeats 15] [--threads 1 2] [--batch-size 64]``.
"""
from __future__ import annotations

import argparse
import os

# torch's OpenMP workers spin after each op and starve numba's and OpenBLAS's threads when
# the three alternate (as in all.py); must be set before torch is imported
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import statistics
import time

import numpy as np
import torch

import shendu
from shendu import backend
from shendu.nn import functional as F
from shendu.ops import conv

LAYERS = [  # (in channels, out channels, height = width)
    (3, 16, 32), (16, 16, 32), (32, 32, 16), (64, 64, 8),     # ResNet-20
    (3, 32, 32), (32, 64, 16), (64, 128, 8), (128, 128, 8),    # VGG-11 small
    (128, 256, 4), (256, 256, 4), (256, 256, 2),
    (32, 32, 28), (64, 64, 14),                                 # ResNet-20 on 28x28 images
]


def shendu_step(x, w, seed, compiled):
    """One forward + backward of conv2d(x, w, padding=1) with the kernels on or off."""
    xs, ws = shendu.tensor(x, requires_grad=True), shendu.tensor(w, requires_grad=True)
    seed = shendu.tensor(seed)

    def step():
        backend.use_compiled_kernels(compiled)
        try:
            xs.grad = ws.grad = None
            F.conv2d(xs, ws, padding=1).backward(seed)
        finally:
            backend.use_compiled_kernels(True)
    return step


def torch_step(x, w, seed):
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    seed = torch.from_numpy(seed)

    def step():
        xt.grad = wt.grad = None
        torch.nn.functional.conv2d(xt, wt, padding=1).backward(seed)
    return step


def timed(step):
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def table(batch, repeats, threads):
    shendu.set_num_threads(threads)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    print(f"threads {threads}, batch {batch}, median of {repeats} alternating repeats, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'layer':>16}{'kernel ms':>11}{'numpy ms':>10}{'torch ms':>10}"
          f"{'kernel/np':>10}{'kernel/t':>9}{'numpy/t':>9}")
    for c, o, hw in LAYERS:
        x = rng.standard_normal((batch, c, hw, hw)).astype(np.float32)
        w = (rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
        seed = rng.standard_normal((batch, o, hw, hw)).astype(np.float32)
        steps = [shendu_step(x, w, seed, True), shendu_step(x, w, seed, False),
                 torch_step(x, w, seed)]
        times = [[], [], []]
        for step in steps:
            step()                                   # warm-up (and numba's compile/cache)
        for _ in range(repeats):
            for step, record in zip(steps, times):
                record.append(timed(step))
        k, n, t = (statistics.median(r) for r in times)
        print(f"{f'{c}->{o} {hw}x{hw}':>16}{1e3 * k:11.2f}{1e3 * n:10.2f}{1e3 * t:10.2f}"
              f"{k / n:10.2f}{k / t:9.2f}{n / t:9.2f}")


def main():
    # the table measures the kernels on every layer, also those conv._choose leaves to NumPy
    # (its channel limit is set from this table)
    conv._DIRECT_MAX_CHANNELS = 1 << 30
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    for threads in args.threads:
        table(args.batch_size, args.repeats, threads)


if __name__ == "__main__":
    main()
