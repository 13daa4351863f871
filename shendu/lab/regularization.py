"""N3.2.5: dropout and L2 shrink the train/validation gap; L1 makes weights sparse.

One over-fitting setup: a wide MLP trained well past fitting a small Fashion-MNIST training
set. Gap = training accuracy - test accuracy at the end, for the plain net, with dropout 0.5
and with L2 (SGD weight decay). Sparsity = fraction of first-layer weights with |w| < 1e-3,
plain vs with an L1 penalty on the loss. Runs are cached within a process (the plain net is
shared by the three claims).
"""
from __future__ import annotations

import shendu
from shendu.lab.common import (_quiet, accuracy, fashion_mnist, mlp, pyplot, save_figure,
                               seed_list, train_steps)
from shendu.lab.result import ClaimResult, compare, summarize

DROPOUT_ID, L2_ID, L1_ID = "N3.2.5-dropout-gap", "N3.2.5-l2-gap", "N3.2.5-l1-sparse"
VARIANTS = {"plain": {}, "dropout 0.5": {"dropout": 0.5}, "L2 (weight decay 5e-3)":
            {"weight_decay": 5e-3}, "L1 (1e-4 sum|w|)": {"l1": 1e-4}}
SMALL = 1e-3
_RUNS = {}


def _config(quick):
    return (256, 40, 64) if quick else (1000, 1500, 256)


def _run_variant(name, quick, seed):
    key = (name, quick, seed)
    if key not in _RUNS:
        n_train, steps, width = _config(quick)
        x, y, xv, yv, source = fashion_mnist(n_train, 500 if quick else 5000)
        kw = VARIANTS[name]
        shendu.manual_seed(seed)
        net = mlp([784, width, width, 10], dropout=kw.get("dropout", 0.0))
        train_steps(net, x, y, steps, lr=0.05, batch=64, seed=seed, optimizer="momentum",
                    weight_decay=kw.get("weight_decay", 0.0), l1=kw.get("l1", 0.0))
        w = net[0].weight
        _RUNS[key] = {"gap": accuracy(net, x, y) - accuracy(net, xv, yv),
                      "val": accuracy(net, xv, yv),
                      "small": (w.abs() < SMALL).sum().item() / w.numel(),
                      "weights": w.detach().abs().flatten().tolist(), "source": source}
    return _RUNS[key]


def _setup(quick, extra):
    n_train, steps, width = _config(quick)
    return (f"MLP 784-{width}-{width}-10 (ReLU), SGD momentum 0.9 lr 0.05, batch 64, {steps} "
            f"steps on {n_train} Fashion-MNIST training images (over-fits), {500 if quick else 5000}"
            f" test images; {extra}")


def _gap_claim(claim_id, variant, statement, quick, seed, seeds, out, progress):
    progress = progress or _quiet()
    seeds = seed_list(seed, seeds, quick)
    runs = {"plain": [], variant: []}
    for s in seeds:
        for name in runs:
            runs[name].append(_run_variant(name, quick, s))
        progress.update()
    gaps = {k: [r["gap"] for r in v] for k, v in runs.items()}
    verdict, reason = compare(gaps[variant], gaps["plain"], variant, "plain",
                              higher_is_better=False)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 3))
    ax.bar(list(gaps), [summarize(v)["mean"] for v in gaps.values()],
           yerr=[summarize(v)["std"] for v in gaps.values()], color=["C0", "C2"])
    ax.set_ylabel("train acc - test acc"), ax.set_title(f"generalization gap ({len(seeds)} seeds)")
    return ClaimResult(
        claim_id, "N3.2.5", statement, _setup(quick, "measured: train - test accuracy"),
        {f"{k} gap": summarize(v) for k, v in gaps.items()} |
        {f"{k} test acc": summarize([r["val"] for r in v]) for k, v in runs.items()},
        verdict, reason, save_figure(fig, out, claim_id), quick, seeds)


def run_dropout(quick=False, seed=0, seeds=None, out=None, progress=None):
    return _gap_claim(DROPOUT_ID, "dropout 0.5", "dropout shrinks the train/validation gap",
                      quick, seed, seeds, out, progress)


def run_l2(quick=False, seed=0, seeds=None, out=None, progress=None):
    return _gap_claim(L2_ID, "L2 (weight decay 5e-3)", "L2 shrinks the train/validation gap",
                      quick, seed, seeds, out, progress)


def run_l1(quick=False, seed=0, seeds=None, out=None, progress=None):
    progress = progress or _quiet()
    seeds = seed_list(seed, seeds, quick)
    l1 = "L1 (1e-4 sum|w|)"
    runs = {"plain": [], l1: []}
    for s in seeds:
        for name in runs:
            runs[name].append(_run_variant(name, quick, s))
        progress.update()
    small = {k: [r["small"] for r in v] for k, v in runs.items()}
    verdict, reason = compare(small[l1], small["plain"], l1, "plain", min_effect=0.05)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    for name, v in runs.items():
        ax.hist([max(w, 1e-8) for w in v[0]["weights"]], bins=[10 ** (e / 4) for e in
                range(-32, 1)], alpha=0.6, label=name)
    ax.axvline(SMALL, color="k", ls=":", label=f"|w| < {SMALL:g}")
    ax.set_xscale("log"), ax.set_xlabel("|w|, first layer (seed %d)" % seeds[0]), ax.legend()
    return ClaimResult(
        L1_ID, "N3.2.5", "L1 makes weights sparse",
        _setup(quick, f"measured: fraction of first-layer weights with |w| < {SMALL:g}; the "
               "claim needs at least 5 percentage points more than the plain net"),
        {f"{k} fraction |w|<{SMALL:g}": summarize(v) for k, v in small.items()},
        verdict, reason, save_figure(fig, out, L1_ID), quick, seeds)
