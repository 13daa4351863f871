"""Forward+backward time of core ops, shendu against PyTorch CPU, in the same process.

Run: ``python benchmarks/ops.py [--quick] [--case SUBSTRING] [--profile SUBSTRING]
[--device cpu|cuda]``.

Each case runs forward and backward (float32, a random upstream gradient or a scalar loss) in
both frameworks, both on the CPU or (``--device cuda``) both on the GPU; runs alternate
shendu/torch (the order flips every repeat) so that machine noise hits both, and the table
reports medians and the ratio shendu_ms / torch_ms.
``--profile`` runs cProfile on the shendu side of the matching cases and prints the top entries.
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
import torch.nn.functional as TF

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import shendu
import shendu.nn.functional as F
from _common import add_device_argument, check_device, synchronize


def _pair(arrays, device, requires_grad=True):
    """The same float32 data as shendu and torch leaves on ``device``."""
    ours = [shendu.tensor(a, device=device, requires_grad=requires_grad and a.dtype.kind == "f")
            for a in arrays]
    theirs = [torch.tensor(a, device=device,
                           requires_grad=requires_grad and a.dtype.kind == "f") for a in arrays]
    return ours, theirs


def _clear(tensors):
    for t in tensors:
        t.grad = None


def _with_grad(ours, theirs, out_shape, rng, forward_ours, forward_theirs):
    """Runners for y = forward(*inputs); y.backward(g) with one fixed random g."""
    g = rng.standard_normal(out_shape, dtype=np.float32)
    g_ours = shendu.tensor(g, device=ours[0].device)
    g_theirs = torch.tensor(g, device=theirs[0].device)

    def run_ours():
        _clear(ours)
        forward_ours(*ours).backward(g_ours)

    def run_theirs():
        _clear(theirs)
        forward_theirs(*theirs).backward(g_theirs)

    return run_ours, run_theirs


def case_conv(rng, device, n, c_in, c_out, size):
    x = rng.standard_normal((n, c_in, size, size), dtype=np.float32)
    w = rng.standard_normal((c_out, c_in, 3, 3), dtype=np.float32) * 0.1
    b = rng.standard_normal((c_out,), dtype=np.float32)
    ours, theirs = _pair([x, w, b], device)
    return _with_grad(ours, theirs, (n, c_out, size, size), rng,
                      lambda x, w, b: F.conv2d(x, w, b, padding=1),
                      lambda x, w, b: TF.conv2d(x, w, b, padding=1))


def case_max_pool(rng, device):
    ours, theirs = _pair([rng.standard_normal((64, 32, 32, 32), dtype=np.float32)], device)
    return _with_grad(ours, theirs, (64, 32, 16, 16), rng,
                      lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2))


def case_matmul(rng, device):
    ours, theirs = _pair([rng.standard_normal((512, 512), dtype=np.float32) for _ in range(2)],
                         device)
    return _with_grad(ours, theirs, (512, 512), rng, lambda a, b: a @ b, lambda a, b: a @ b)


def case_cross_entropy(rng, device):
    logits = rng.standard_normal((4096, 1000), dtype=np.float32)
    target = rng.integers(0, 1000, size=4096).astype(np.int64)
    (x, t), (tx, tt) = _pair([logits, target], device)

    def run_ours():
        _clear([x])
        F.cross_entropy(x, t).backward()

    def run_theirs():
        _clear([tx])
        TF.cross_entropy(tx, tt).backward()

    return run_ours, run_theirs


def _lstm_chain(xs, w_hh, h, c, steps, sigmoid, tanh):
    """gates = x_t + h @ W_hh; i, f, g, o = chunk 4; c = s(f)c + s(i)tanh(g); h = s(o)tanh(c)."""
    for t in range(steps):
        gates = xs[t] + h @ w_hh
        i, f, g, o = gates.chunk(4, 1)
        c = sigmoid(f) * c + sigmoid(i) * tanh(g)
        h = sigmoid(o) * tanh(c)
    return h.sum()


def case_lstm(rng, device, steps=64, batch=64, hidden=256):
    xs = rng.standard_normal((steps, batch, 4 * hidden), dtype=np.float32)
    w_hh = rng.standard_normal((hidden, 4 * hidden), dtype=np.float32) * hidden ** -0.5
    zeros = np.zeros((batch, hidden), dtype=np.float32)
    # the input projection is precomputed and constant: the case measures the recurrent
    # elementwise chain and the per-op overhead, not a 64x full-size slice-gradient scatter
    (w, ), (tw, ) = _pair([w_hh], device)
    (x, h0, c0), (tx, th0, tc0) = _pair([xs, zeros, zeros], device, requires_grad=False)

    def run_ours():
        _clear([w])
        _lstm_chain(x, w, h0, c0, steps, shendu.sigmoid, shendu.tanh).backward()

    def run_theirs():
        _clear([tw])
        _lstm_chain(tx, tw, th0, tc0, steps, torch.sigmoid, torch.tanh).backward()

    return run_ours, run_theirs


CASES = {
    "conv2d N=64 3->32 32x32 k3 p1": lambda rng, device: case_conv(rng, device, 64, 3, 32, 32),
    "conv2d N=64 64->64 16x16 k3 p1": lambda rng, device: case_conv(rng, device, 64, 64, 64,
                                                                    16),
    "max_pool2d 2x2 (64,32,32,32)": case_max_pool,
    "matmul 512x512x512": case_matmul,
    "cross_entropy N=4096 C=1000": case_cross_entropy,
    "LSTM chain 64 steps B=64 H=256": case_lstm,
}


def _time(fn, device):
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def measure(run_ours, run_theirs, repeats, device, warmup=2):
    for _ in range(warmup):
        run_ours()
        run_theirs()
    ours, theirs = [], []
    for r in range(repeats):
        if r % 2:
            theirs.append(_time(run_theirs, device))
            ours.append(_time(run_ours, device))
        else:
            ours.append(_time(run_ours, device))
            theirs.append(_time(run_theirs, device))
    return ((statistics.median(ours) * 1e3, statistics.median(theirs) * 1e3),
            (min(ours) * 1e3, min(theirs) * 1e3))


def profile(name, run_ours, top=25):
    run_ours()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(5):
        run_ours()
    prof.disable()
    print(f"\n--- cProfile of shendu: {name} (5 runs) ---")
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--case", default="", help="run only cases containing this text")
    parser.add_argument("--profile", default=None, help="cProfile the matching cases")
    parser.add_argument("--repeats", type=int, default=None)
    add_device_argument(parser)
    args = parser.parse_args(argv)
    check_device(args.device, __file__)
    torch.set_num_threads(2)
    repeats = args.repeats or (5 if args.quick else 21)
    rng = np.random.default_rng(0)
    # medians are the headline; the minima are what a quiet machine gives, and their ratio is
    # the steadier number when other processes share the cores
    print(f"{'case':34s} {'shendu ms':>10s} {'torch ms':>10s} {'ratio':>7s}   "
          f"{'min ms':>8s} {'torch min':>9s} {'ratio':>6s}")
    for name, make in CASES.items():
        if args.case not in name:
            continue
        run_ours, run_theirs = make(rng, args.device)
        (ours, theirs), (ours_min, theirs_min) = measure(run_ours, run_theirs, repeats,
                                                         args.device)
        print(f"{name:34s} {ours:10.2f} {theirs:10.2f} {ours / theirs:7.2f}   "
              f"{ours_min:8.2f} {theirs_min:9.2f} {ours_min / theirs_min:6.2f}", flush=True)
        if args.profile is not None and args.profile in name:
            profile(name, run_ours)


if __name__ == "__main__":
    main()
