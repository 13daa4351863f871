"""N3.2.4 (Table 5): with the init that matches the activation, activation variance stays
stable through a deep net; with the wrong one it collapses or blows up.

Forward pass of Fashion-MNIST images through a deep, wide ReLU MLP (no training): Kaiming
(He) init keeps Var(h_l) roughly constant, Xavier makes it shrink by about 2x per layer
(collapse), a fixed N(0, 0.1^2) makes it grow by fan_in * 0.01 / 2 per layer (blow-up).
Measured: |log10(Var(h_last) / Var(h_first))|, a decade or more counts as unstable.
"""
from __future__ import annotations

import math

import shendu
from shendu import nn
from shendu.lab.common import _quiet, curve_band, fashion_mnist, pyplot, save_figure, seed_list
from shendu.lab.result import ClaimResult, combine, compare, summarize

CLAIM_ID = "N3.2.4-init-variance"
INITS = {
    "Kaiming (matching)": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "Xavier (wrong for ReLU)": lambda w: nn.init.xavier_normal_(w),
    "N(0, 0.1^2) (wrong)": lambda w: nn.init.normal_(w, 0.0, 0.1),
}


def _variances(init, depth, width, x, seed):
    shendu.manual_seed(seed)
    h, out = x, []
    with shendu.no_grad():
        for i in range(depth):
            layer = nn.Linear(h.shape[1], width)
            init(layer.weight), nn.init.zeros_(layer.bias)
            h = layer(h).relu()
            out.append(h.var().item())
    return out


def run(quick=False, seed=0, seeds=None, out=None, progress=None):
    progress = progress or _quiet()
    seeds = seed_list(seed, seeds, quick)
    depth, width = (8, 128) if quick else (30, 512)
    x, *_ = fashion_mnist(256, 1)
    x = (x - x.mean()) / x.std()
    drift, curves = {k: [] for k in INITS}, {k: [] for k in INITS}
    for s in seeds:
        for name, init in INITS.items():
            v = _variances(init, depth, width, x, s)
            curves[name].append([math.log10(max(vi, 1e-300)) for vi in v])
            drift[name].append(abs(math.log10(max(v[-1], 1e-300) / v[0])))
        progress.update()
    matched = "Kaiming (matching)"
    verdict, reason = combine([compare(drift[matched], drift[k], matched, k,
                                       higher_is_better=False, min_effect=1.0)
                               for k in INITS if k != matched])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for name, c in curves.items():
        curve_band(ax, c, name)
    ax.set_xlabel("layer"), ax.set_ylabel("log10 Var(activation)"), ax.legend(fontsize=8)
    ax.set_title(f"{depth}-layer ReLU MLP, width {width}, at init")
    return ClaimResult(
        CLAIM_ID, "N3.2.4", "with the matching init, activation variance stays stable through a "
        "deep net; with the wrong one it collapses or blows up",
        f"{depth} Linear+ReLU layers of width {width}, zero biases, 256 standardized "
        "Fashion-MNIST images, no training; |log10 Var(last)/Var(first)| per init, the "
        "matching init must drift at least 1 decade less than each wrong one",
        {f"{k} |log10 drift|": summarize(v) for k, v in drift.items()},
        verdict, reason, save_figure(fig, out, CLAIM_ID), quick, seeds)
