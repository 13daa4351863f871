"""N3.2.2 (Table 4, figure 3): activations and their derivatives.

- derivatives: autograd's derivative of every activation equals its closed form;
- sigmoid gradients vanish with depth: in a deep sigmoid MLP the first layer's weight
  gradient is orders of magnitude smaller than the last layer's, unlike the same ReLU MLP
  (sigmoid' <= 1/4, so each layer multiplies the backward signal by at most 1/4 * |W|);
- ReLU activations are sparse, and dead ReLUs (zero on every input) exist and can be counted,
  after training a ReLU MLP on Fashion-MNIST with a large learning rate;
- ReLU nets converge faster than sigmoid nets: same MLP, data, optimizer and budget.
"""
from __future__ import annotations

import math

import shendu
from shendu import nn
from shendu.lab.common import (_quiet, curve_band, fashion_mnist, mlp, pyplot, save_figure,
                               seed_list, train_steps)
from shendu.lab.result import ClaimResult, check_each, combine, compare, summarize

DERIVATIVE_ID, VANISH_ID = "N3.2.2-derivatives", "N3.2.2-sigmoid-vanishing"
SPARSE_ID, DEAD_ID, CONVERGE_ID = ("N3.2.2-relu-sparse", "N3.2.2-dead-relu",
                                   "N3.2.2-relu-vs-sigmoid")


def _closed_forms():
    """name -> (activation module, derivative in closed form as a function of x)."""
    def sig(x):
        return 1.0 / (1.0 + (-x).exp())
    return {
        "ReLU": (nn.ReLU(), lambda x: (x > 0).double()),
        "Sigmoid": (nn.Sigmoid(), lambda x: sig(x) * (1 - sig(x))),
        "Tanh": (nn.Tanh(), lambda x: 1 - x.tanh() ** 2),
        "LeakyReLU(0.1)": (nn.LeakyReLU(0.1), lambda x: 0.1 + 0.9 * (x > 0).double()),
        "ELU(1)": (nn.ELU(1.0), lambda x: shendu.where(x >= 0, x * 0 + 1.0, x.exp())),
    }


def run_derivatives(quick=False, seed=0, seeds=None, out=None, progress=None):
    progress = progress or _quiet()
    seeds = seed_list(seed, seeds, quick)
    forms = _closed_forms()
    worst, curves = [], {}
    for s in seeds:
        gen = shendu.Generator(seed=s)
        # random points, none within 1e-6 of the kinks at 0 where the derivative is undefined
        x = shendu.randn(2000, dtype=shendu.float64, generator=gen) * 4
        x = shendu.where(x.abs() < 1e-6, x * 0 + 0.5, x).requires_grad_()
        err = 0.0
        for name, (act, closed) in forms.items():
            (grad,) = shendu.autograd.grad(act(x).sum(), [x])
            err = max(err, (grad - closed(x.detach())).abs().max().item())
        worst.append(err)
        progress.update()
    verdict, reason = check_each(worst, lambda v: v < 1e-12,
                                 "max |autograd - closed form| < 1e-12 over all activations")
    plt = pyplot()
    grid = shendu.linspace(-4, 4, 401, dtype=shendu.float64).requires_grad_()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for name, (act, _) in forms.items():
        y = act(grid)
        (g,) = shendu.autograd.grad(y.sum(), [grid])
        axes[0].plot(grid.detach().tolist(), y.detach().tolist(), label=name)
        axes[1].plot(grid.detach().tolist(), g.tolist(), label=name)
    axes[0].set_title("activation"), axes[1].set_title("derivative by back-propagation")
    axes[0].set_ylim(-1.5, 4), axes[1].legend(fontsize=7)
    return ClaimResult(
        DERIVATIVE_ID, "N3.2.2", "figure 3 redrawn from autograd: each activation's "
        "derivative, computed by back-propagation, equals its closed form",
        "ReLU, Sigmoid (y(1-y)), Tanh, LeakyReLU(0.1), ELU(1) at 2000 random float64 points "
        "per seed (x ~ 4 N(0,1), kinks avoided)",
        {"max |autograd - closed form|": summarize(worst)}, verdict, reason,
        save_figure(fig, out, DERIVATIVE_ID), quick, seeds)


def _layer_grad_norms(activation, depth, seed, x, y):
    shendu.manual_seed(seed)
    net = mlp([784] + [64] * depth + [10], activation)
    loss = nn.CrossEntropyLoss()(net(x), y)
    loss.backward()
    return [m.weight.grad.norm().item() for m in net if isinstance(m, nn.Linear)]


def run_vanishing(quick=False, seed=0, seeds=None, out=None, progress=None):
    progress = progress or _quiet()
    seeds = seed_list(seed, seeds, quick)
    depth = 6 if quick else 12
    x, y, _, _, source = fashion_mnist(256, 1)
    logs = {"Sigmoid": [], "ReLU": []}
    norms = {"Sigmoid": [], "ReLU": []}
    for s in seeds:
        for name, act in (("Sigmoid", nn.Sigmoid), ("ReLU", nn.ReLU)):
            g = _layer_grad_norms(act, depth, s, x, y)
            norms[name].append(g)
            logs[name].append(math.log10(g[0] / g[-1]))
        progress.update()
    verdict, reason = compare(logs["ReLU"], logs["Sigmoid"], "ReLU", "Sigmoid",
                              higher_is_better=True, min_effect=1.0)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for name, curves in norms.items():
        curve_band(ax, curves, name)
    ax.set_yscale("log"), ax.set_xlabel("layer (0 = first)"), ax.set_ylabel("||dL/dW||")
    ax.set_title(f"{depth + 1}-layer MLP at init, one batch of 256"), ax.legend()
    return ClaimResult(
        VANISH_ID, "N3.2.2", "sigmoid gradients vanish with depth",
        f"MLP 784-{'64-' * depth}10 at shendu's default (torch) init, cross-entropy on 256 "
        f"{source} images; log10 of ||grad W_first|| / ||grad W_last||, Sigmoid vs ReLU; the "
        "claim needs the sigmoid net's ratio at least 10x (1 decade) smaller",
        {"Sigmoid log10 first/last": summarize(logs["Sigmoid"]),
         "ReLU log10 first/last": summarize(logs["ReLU"])},
        verdict, reason, save_figure(fig, out, VANISH_ID), quick, seeds)


_TRAINED = {}


def _hidden_activations(net, x):
    """Outputs of every ReLU/Tanh module of ``net`` on ``x``: list of (N, width) tensors."""
    acts, handles = [], []
    for m in net:
        if isinstance(m, (nn.ReLU, nn.Tanh)):
            handles.append(m.register_forward_hook(lambda mod, i, o: acts.append(o)))
    with shendu.no_grad():
        net.eval()(x)
    for h in handles:
        h.remove()
    return acts


def _trained(activation, quick, seed):
    """An MLP trained on Fashion-MNIST with a large SGD step (cached per run); returns
    (net, validation images, setup text)."""
    key = (activation.__name__, quick, seed)
    if key not in _TRAINED:
        n_train, steps, width = (512, 30, 64) if quick else (20000, 600, 256)
        x, y, xv, _, source = fashion_mnist(n_train, 500 if quick else 2000)
        shendu.manual_seed(seed)
        net = mlp([784, width, width, 10], activation)
        train_steps(net, x, y, steps, lr=0.5, batch=64, seed=seed)
        setup = (f"MLP 784-{width}-{width}-10, {activation.__name__}, plain SGD lr 0.5 (large on "
                 f"purpose), batch 64, {steps} steps on {n_train} {source} images; "
                 f"activations measured on {xv.shape[0]} test images")
        _TRAINED[key] = (net, xv, setup)
    return _TRAINED[key]


def run_dead(quick=False, seed=0, seeds=None, out=None, progress=None):
    progress = progress or _quiet()
    seeds = seed_list(seed, seeds, quick)
    dead, per_layer = [], []
    for s in seeds:
        net, xv, setup = _trained(nn.ReLU, quick, s)
        counts = [int(((a > 0).sum(0) == 0).sum().item()) for a in _hidden_activations(net, xv)]
        per_layer.append(counts), dead.append(sum(counts))
        progress.update()
    verdict, reason = check_each(dead, lambda v: v >= 1,
                                 ">= 1 hidden unit that outputs 0 on every test image")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    for i, counts in enumerate(per_layer):
        ax.bar([f"layer {j + 1}\nseed {seeds[i]}" for j in range(len(counts))], counts)
    ax.set_ylabel("dead units (zero on all test images)"), ax.set_title("dead ReLUs, counted")
    ax.tick_params(axis="x", labelsize=7)
    return ClaimResult(
        DEAD_ID, "N3.2.2", "dead ReLUs exist and can be counted", setup,
        {"dead units": summarize(dead)}, verdict, reason, save_figure(fig, out, DEAD_ID),
        quick, seeds)


def run_sparse(quick=False, seed=0, seeds=None, out=None, progress=None):
    progress = progress or _quiet()
    seeds = seed_list(seed, seeds, quick)
    zeros = {"ReLU": [], "Tanh": []}
    for s in seeds:
        for name, act in (("ReLU", nn.ReLU), ("Tanh", nn.Tanh)):
            net, xv, setup = _trained(act, quick, s)
            acts = _hidden_activations(net, xv)
            zeros[name].append(sum((a == 0).sum().item() for a in acts)
                               / sum(a.numel() for a in acts))
        progress.update()
    verdict, reason = compare(zeros["ReLU"], zeros["Tanh"], "ReLU", "Tanh", min_effect=0.25)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 3))
    ax.bar(list(zeros), [sum(v) / len(v) for v in zeros.values()],
           yerr=[summarize(v)["std"] for v in zeros.values()])
    ax.set_ylabel("fraction of hidden activations == 0"), ax.set_ylim(0, 1)
    ax.set_title("sparsity of trained hidden layers")
    return ClaimResult(
        SPARSE_ID, "N3.2.2", "ReLU activations are sparse",
        setup.replace("Tanh", "ReLU vs Tanh") + "; 'sparse' needs at least 25 percentage points "
        "more exact zeros than the Tanh net", {f"{k} zero fraction": summarize(v)
                                               for k, v in zeros.items()},
        verdict, reason, save_figure(fig, out, SPARSE_ID), quick, seeds)


def run_converge(quick=False, seed=0, seeds=None, out=None, progress=None):
    from shendu.lab.common import accuracy
    progress = progress or _quiet()
    seeds = seed_list(seed, seeds, quick)
    n_train, steps, width = (512, 20, 32) if quick else (20000, 500, 128)
    x, y, xv, yv, source = fashion_mnist(n_train, 500 if quick else 2000)
    tail = max(steps // 5, 1)
    final, acc, curves = {"ReLU": [], "Sigmoid": []}, {"ReLU": [], "Sigmoid": []}, \
        {"ReLU": [], "Sigmoid": []}
    for s in seeds:
        for name, act in (("ReLU", nn.ReLU), ("Sigmoid", nn.Sigmoid)):
            shendu.manual_seed(s)
            net = mlp([784, width, width, 10], act)
            losses = train_steps(net, x, y, steps, lr=0.1, batch=64, seed=s)
            final[name].append(sum(losses[-tail:]) / tail), curves[name].append(losses)
            acc[name].append(accuracy(net, xv, yv))
        progress.update()
    verdict, reason = compare(final["ReLU"], final["Sigmoid"], "ReLU", "Sigmoid",
                              higher_is_better=False)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for name, c in curves.items():
        curve_band(ax, c, name)
    ax.set_xlabel("step"), ax.set_ylabel("training loss (batch)"), ax.legend()
    ax.set_title("same MLP, SGD lr 0.1: ReLU vs Sigmoid")
    return ClaimResult(
        CONVERGE_ID, "N3.2.2", "ReLU nets converge faster than sigmoid nets",
        f"MLP 784-{width}-{width}-10, default init, plain SGD lr 0.1, batch 64, {steps} steps on "
        f"{n_train} {source} images; measured: mean training loss over the last {tail} steps "
        "(lower = further converged in the same budget), test accuracy alongside",
        {"ReLU final loss": summarize(final["ReLU"]),
         "Sigmoid final loss": summarize(final["Sigmoid"]),
         "ReLU test acc": summarize(acc["ReLU"]), "Sigmoid test acc": summarize(acc["Sigmoid"])},
        verdict, reason, save_figure(fig, out, CONVERGE_ID), quick, seeds)
