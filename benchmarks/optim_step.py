"""Training-step and optimizer-step time, shendu (fused optimizer kernels on / off) against
PyTorch CPU, alternating in one process.

Two models with equal weights and batches in both frameworks:
- MLP 784-256-128-10 (ReLU), batch 128, cross-entropy, Adam;
- tiny GPT (benchmarks/lm.py's: 4 layers, 4 heads, 128 wide, block 64, batch 32), AdamW with
  nanoGPT's decay groups.
For each it times the whole step (zero_grad, forward, backward, step) and the optimizer step
alone (``opt.step()`` on fixed gradients), shendu with shendu.optim.fused on ("fused") and off
("numpy"), and torch; the order of the three rotates every repeat. Prints medians and ratios
to torch.

Run: ``python benchmarks/optim_step.py [--repeats N] [--threads 1 2]``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/lm.py

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as TF  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import shendu  # noqa: E402
import lm  # noqa: E402  (benchmarks/lm.py, beside this script)
from shendu.optim import fused  # noqa: E402


def mlp_steppers(rng):
    """{'step': (ours, torch), 'opt': (ours, torch)} for the MLP with Adam."""
    ours = shendu.nn.Sequential(shendu.nn.Linear(784, 256), shendu.nn.ReLU(),
                                shendu.nn.Linear(256, 128), shendu.nn.ReLU(),
                                shendu.nn.Linear(128, 10))
    theirs = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                 torch.nn.Linear(256, 128), torch.nn.ReLU(),
                                 torch.nn.Linear(128, 10))
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                            for k, v in ours.state_dict().items()})
    opt, topt = shendu.optim.Adam(ours.parameters()), torch.optim.Adam(theirs.parameters())
    x = rng.standard_normal((128, 784), dtype=np.float32)
    y = rng.integers(0, 10, 128)
    sx, sy, tx, ty = shendu.tensor(x), shendu.tensor(y), torch.tensor(x), torch.tensor(y)

    def step_ours():
        opt.zero_grad()
        loss = shendu.nn.functional.cross_entropy(ours(sx), sy)
        loss.backward()
        opt.step()
        return loss.item()

    def step_torch():
        topt.zero_grad()
        loss = TF.cross_entropy(theirs(tx), ty)
        loss.backward()
        topt.step()
        return loss.item()

    return (step_ours, step_torch), (opt, topt)


def timed(runs, repeats):
    """runs {name: fn}; medians in ms, the order rotating each repeat."""
    names = list(runs)
    times = {n: [] for n in names}
    for k in range(repeats):
        order = names[k % len(names):] + names[:k % len(names)]
        for name in order:
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
    return {n: 1000 * statistics.median(t) for n, t in times.items()}


def with_fused(on, fn):
    def run():
        fused.enabled = on
        try:
            return fn()
        finally:
            fused.enabled = True
    return run


def bench(which, repeats):
    rng = np.random.default_rng(0)
    if which == "mlp":
        (step_ours, step_torch), (opt, topt) = mlp_steppers(rng)
    else:
        step_ours, step_torch = lm.steppers("gpt", rng)
        opt = topt = None
    for _ in range(3):  # warm-up (and numba's compile / cache load)
        with_fused(True, step_ours)(), with_fused(False, step_ours)(), step_torch()
    rows = {"step": timed({"fused": with_fused(True, step_ours),
                           "numpy": with_fused(False, step_ours), "torch": step_torch}, repeats)}
    if opt is None:  # the GPT's optimizers live in lm.steppers' closure
        cells = dict(zip(step_ours.__code__.co_freevars, step_ours.__closure__))
        tcells = dict(zip(step_torch.__code__.co_freevars, step_torch.__closure__))
        opt, topt = cells["opt"].cell_contents, tcells["topt"].cell_contents
    rows["opt.step"] = timed({"fused": with_fused(True, opt.step),
                              "numpy": with_fused(False, opt.step), "torch": topt.step},
                             repeats * 4)
    for what, ms in rows.items():
        print(f"  {which} {what:8s} fused {ms['fused']:7.2f} ms  numpy {ms['numpy']:7.2f} ms  "
              f"torch {ms['torch']:7.2f} ms   fused/torch {ms['fused'] / ms['torch']:.2f}  "
              f"numpy/torch {ms['numpy'] / ms['torch']:.2f}  fused/numpy "
              f"{ms['fused'] / ms['numpy']:.2f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", choices=["mlp", "gpt"], default=None)
    args = parser.parse_args()
    for threads in args.threads:
        torch.set_num_threads(threads)
        shendu.set_num_threads(threads)
        print(f"threads {threads}, load average {os.getloadavg()[0]:.2f}", flush=True)
        for which in ("mlp", "gpt"):
            if args.only in (None, which):
                bench(which, args.repeats)


if __name__ == "__main__":
    main()
