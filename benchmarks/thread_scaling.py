"""How much a second thread buys shendu and PyTorch on every workload of benchmarks/all.py.

For each workload both frameworks' steps are built once; then, with 1 thread and again with
``--threads`` (default 2), shendu and torch steps alternate (the order flips every repeat) and
the medians are kept. The table gives both frameworks' ms at each count and their speed-up
(1-thread time / N-thread time). A speed-up near 1 means the step's parallel regions are too
short for the cost of waking the other threads; near N, the threads are used.

Run: ``python benchmarks/thread_scaling.py [--threads 2] [--repeats 9] [--only NAME ...]``
(CPU only).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import all as workloads  # noqa: E402  (sets torch's and OpenBLAS's wait policies first)
import numpy as np  # noqa: E402
import torch  # noqa: E402

import shendu  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=workloads._positive_int, default=2,
                        help="the thread count compared with 1 (default 2)")
    parser.add_argument("--repeats", type=workloads._positive_int, default=9,
                        help="timed steps per framework, workload and thread count")
    parser.add_argument("--warmup", type=workloads._non_negative_int, default=2)
    parser.add_argument("--only", nargs="+", metavar="NAME", default=None,
                        choices=list(workloads.WORKLOADS),
                        help=f"run only these workloads, of: {' '.join(workloads.WORKLOADS)}")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    counts = (1, args.threads)
    print(f"threads {counts[0]} and {counts[1]}, {args.warmup} warm-up + median of "
          f"{args.repeats} alternating steps each, load average {workloads._load()}")
    print(f"| {'workload':10} | {'shendu 1':>9} | {f'shendu {counts[1]}':>9} | "
          f"{'speed-up':>8} | {'torch 1':>8} | {f'torch {counts[1]}':>8} | {'speed-up':>8} |")
    print(f"|{'-' * 12}|{'-' * 11}|{'-' * 11}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 10}|",
          flush=True)
    for name in args.only or list(workloads.WORKLOADS):
        step_ours, step_torch = workloads.WORKLOADS[name](np.random.default_rng(0), "cpu")
        times = {}
        for count in counts:
            torch.set_num_threads(count)
            shendu.set_num_threads(count)
            times[count] = workloads.measure(step_ours, step_torch, args.repeats,
                                             args.warmup, "cpu")
        (ours1, theirs1), (ours_n, theirs_n) = times[counts[0]], times[counts[1]]
        print(f"| {name:10} | {1e3 * ours1:9.2f} | {1e3 * ours_n:9.2f} | "
              f"{ours1 / ours_n:8.2f} | {1e3 * theirs1:8.2f} | {1e3 * theirs_n:8.2f} | "
              f"{theirs1 / theirs_n:8.2f} |", flush=True)
    print(f"load average at end: {workloads._load()}")


if __name__ == "__main__":
    main()
