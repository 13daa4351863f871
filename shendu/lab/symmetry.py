"""N2.1: weights are not unique. Rescaling a ReLU layer by c > 0 and the next by 1/c, or
permuting hidden units (rows of W1 and b1, columns of W2 alike), gives the same function,
because relu(c z) = c relu(z) for c > 0. A negative c is the control: relu(-z) != -relu(z),
so the check must fail there, showing it can fail.
"""
from __future__ import annotations

import shendu
from shendu import nn
from shendu.lab.common import save_figure, seed_list, pyplot, _quiet
from shendu.lab.result import ClaimResult, check_each, combine, summarize

CLAIM_ID = "N2.1-relu-symmetry"
TOLERANCE = 1e-9


def _relative_change(seed, c=None, permute=False):
    shendu.manual_seed(seed)
    net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 5)).double()
    x = shendu.randn(256, 20, dtype=shendu.float64)
    with shendu.no_grad():
        before = net(x)
        w1, b1, w2 = net[0].weight, net[0].bias, net[2].weight
        if c is not None:
            w1.mul_(c), b1.mul_(c), w2.mul_(1.0 / c)
        if permute:
            order = shendu.randperm(64)
            w1.copy_(w1[order]), b1.copy_(b1[order]), w2.copy_(w2[:, order])
        after = net(x)
    return ((after - before).abs().max() / before.abs().max()).item()


def run(quick=False, seed=0, seeds=None, out=None, progress=None):
    progress = progress or _quiet()
    seeds = seed_list(seed, seeds, quick)
    cases = {"scale c=3.7": dict(c=3.7), "scale c=0.01": dict(c=0.01),
             "permute hidden units": dict(permute=True), "control: c=-1": dict(c=-1.0)}
    values = {name: [] for name in cases}
    for s in seeds:
        for name, kw in cases.items():
            values[name].append(_relative_change(s, **kw))
        progress.update()
    parts = [check_each(values[k], lambda v: v < TOLERANCE, f"{k}: max |change| / max |f| < "
                        f"{TOLERANCE:g}") for k in cases if not k.startswith("control")]
    # the control must change the function, else the check could not tell anything apart
    parts.append(check_each(values["control: c=-1"], lambda v: v > 1e-3,
                            "control c=-1 changes the function (> 1e-3)"))
    verdict, reason = combine(parts)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = list(cases)
    ax.bar(names, [max(max(values[n]), 1e-18) for n in names], color=["C0", "C0", "C0", "C3"])
    ax.axhline(TOLERANCE, color="k", ls="--", label=f"tolerance {TOLERANCE:g}")
    ax.set_yscale("log"), ax.set_ylabel("max |f' - f| / max |f| (worst seed)")
    ax.set_title("ReLU net: rescaling / permuting hidden units (float64)"), ax.legend()
    ax.tick_params(axis="x", labelsize=8)
    return ClaimResult(
        CLAIM_ID, "N2.1",
        "scaling one ReLU layer's weights by c > 0 and the next layer's by 1/c, or permuting "
        "hidden units, leaves the network's function unchanged",
        "random 20-64-5 ReLU MLP in float64, 256 random inputs per seed; relative max output "
        "change after each transform; c=-1 as a control that must change it",
        {k: summarize(v) for k, v in values.items()}, verdict, reason,
        save_figure(fig, out, CLAIM_ID), quick, seeds)
