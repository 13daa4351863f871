"""N3.2.6: batch norm reaches a target accuracy in fewer steps; gradient clipping keeps a
diverging run stable.

Batch norm: the same deep MLP with and without BatchNorm1d, SGD; test accuracy every few
steps; steps to the target (a run that never reaches it counts as the whole budget, so the
measured gain is a lower bound). Clipping: a learning rate chosen so large that the plain run
diverges; the same run with the global gradient norm clipped to 1. Measured: steps survived
before the loss becomes non-finite or exceeds 10x its first value (the budget if never).
"""
from __future__ import annotations

import math

import shendu
from shendu.lab.common import (_quiet, accuracy, curve_band, fashion_mnist, mlp, pyplot,
                               save_figure, seed_list, train_steps)
from shendu.lab.result import ClaimResult, compare, summarize

BN_ID, CLIP_ID = "N3.2.6-batchnorm-faster", "N3.2.6-clipping-stable"


def run_batchnorm(quick=False, seed=0, seeds=None, out=None, progress=None):
    progress = progress or _quiet()
    seeds = seed_list(seed, seeds, quick)
    n_train, steps, every, target, width = (512, 30, 5, 0.5, 32) if quick else \
        (20000, 800, 20, 0.8, 128)
    x, y, xv, yv, source = fashion_mnist(n_train, 300 if quick else 2000)
    reached, curves = {"batch norm": [], "plain": []}, {"batch norm": [], "plain": []}
    for s in seeds:
        for name in reached:
            shendu.manual_seed(s)
            net = mlp([784] + [width] * 5 + [10], batch_norm=name == "batch norm")
            accs = []

            def check(step, loss):
                if (step + 1) % every == 0:
                    accs.append(accuracy(net, xv, yv))
                    return accs[-1] >= target
                return False
            train_steps(net, x, y, steps, lr=0.02, batch=64, seed=s, on_step=check)
            hit = next((i for i, a in enumerate(accs) if a >= target), None)
            reached[name].append(steps if hit is None else (hit + 1) * every)
            curves[name].append(accs)
        progress.update()
    verdict, reason = compare(reached["batch norm"], reached["plain"], "batch norm", "plain",
                              higher_is_better=False)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for name, c in curves.items():
        for i, acc in enumerate(c):
            ax.plot([(j + 1) * every for j in range(len(acc))], acc, color="C0" if
                    name == "batch norm" else "C1", label=name if i == 0 else None)
    ax.axhline(target, color="k", ls=":", label=f"target {target}")
    ax.set_xlabel("step"), ax.set_ylabel("test accuracy"), ax.legend()
    ax.set_title("6-layer MLP, SGD lr 0.02: batch norm vs plain")
    return ClaimResult(
        BN_ID, "N3.2.6", "batch norm reaches a target accuracy in fewer steps",
        f"MLP 784-{width}x5-10 (ReLU) with/without BatchNorm1d, plain SGD lr 0.02, batch 64, "
        f"budget {steps} steps on {n_train} {source} images; test accuracy on {xv.shape[0]} "
        f"images every {every} steps; steps to reach {target} (the budget if never)",
        {f"{k} steps to {target}": summarize(v) for k, v in reached.items()},
        verdict, reason, save_figure(fig, out, BN_ID), quick, seeds)


def _survived(losses, steps):
    for i, loss in enumerate(losses):
        if not math.isfinite(loss) or loss > 10 * losses[0]:
            return i
    return steps


def run_clipping(quick=False, seed=0, seeds=None, out=None, progress=None):
    progress = progress or _quiet()
    seeds = seed_list(seed, seeds, quick)
    n_train, steps, width = (512, 30, 64) if quick else (20000, 400, 256)
    lr = 1.0
    x, y, _, _, source = fashion_mnist(n_train, 1)
    survived, curves = {"clipped (norm 1)": [], "plain": []}, {"clipped (norm 1)": [],
                                                                "plain": []}
    for s in seeds:
        for name in survived:
            shendu.manual_seed(s)
            net = mlp([784, width, width, width, 10])
            losses = train_steps(net, x, y, steps, lr=lr, batch=64, seed=s,
                                 optimizer="momentum", clip=1.0 if name != "plain" else None,
                                 on_step=lambda step, loss: not math.isfinite(loss))
            survived[name].append(_survived(losses, steps))
            curves[name].append([min(v, 100.0) if math.isfinite(v) else 100.0 for v in losses])
        progress.update()
    verdict, reason = compare(survived["clipped (norm 1)"], survived["plain"],
                              "clipped (norm 1)", "plain")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for name, c in curves.items():
        for i, losses in enumerate(c):
            ax.plot(losses, color="C0" if name != "plain" else "C3",
                    label=name if i == 0 else None)
    ax.set_yscale("log"), ax.set_xlabel("step"), ax.set_ylabel("training loss (capped at 100)")
    ax.set_title(f"SGD momentum, lr {lr} (diverges unclipped)"), ax.legend()
    return ClaimResult(
        CLIP_ID, "N3.2.6", "clipping keeps a diverging run stable",
        f"MLP 784-{width}x3-10 (ReLU), SGD momentum 0.9 at lr {lr} (chosen to diverge), batch "
        f"64, {steps} steps on {n_train} {source} images, with/without clip_grad_norm_(1.0); "
        "steps survived before the loss is non-finite or > 10x its first value",
        {f"{k} steps survived": summarize(v) for k, v in survived.items()},
        verdict, reason, save_figure(fig, out, CLIP_ID), quick, seeds)
