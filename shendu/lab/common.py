"""Shared machinery of the claims lab: the seed list, a progress bar, Fashion-MNIST and MNIST
as tensors, a small training loop and figure saving. Concept: the **claim** lines of CONCEPTS.md.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import shendu
from shendu import nn, optim

FULL_SEEDS, QUICK_SEEDS = 3, 1


def seed_list(seed=0, seeds=None, quick=False) -> list:
    """The seeds a run uses: ``seeds`` of them (default 3, quick 1) starting at ``seed``."""
    n = seeds if seeds is not None else (QUICK_SEEDS if quick else FULL_SEEDS)
    if int(n) < 1:
        raise ValueError(f"lab: --seeds must be >= 1, got {n}")
    return [int(seed) + i for i in range(int(n))]


class Progress:
    """A one-line text bar on stderr: ``claim [#####.....] 5/10``; silent when disabled."""

    def __init__(self, label, total, enabled=True, stream=None, width=30):
        self.label, self.total, self.done = label, max(int(total), 1), 0
        self.enabled, self.stream, self.width = enabled, stream or sys.stderr, width
        self.start = time.perf_counter()

    def update(self, n=1):
        self.done = min(self.done + n, self.total)
        if self.enabled:
            filled = self.width * self.done // self.total
            elapsed = time.perf_counter() - self.start
            self.stream.write(f"\r  {self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
                              f"{self.done}/{self.total} {elapsed:.0f}s")
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()


def _quiet():
    return Progress("", 1, enabled=False)


_DATA_CACHE = {}


def fashion_mnist(n_train, n_val, flat=True):
    """The first ``n_train`` training and ``n_val`` test images of Fashion-MNIST (the full set
    when installed, else shendu's shipped subset), scaled to [0, 1].

    Returns (x_train, y_train, x_val, y_val, source): x (N, 784) if ``flat`` else
    (N, 1, 28, 28) float32, y (N,) int64, source says which set was read.
    """
    from shendu.data.mnist import load_fashion_mnist
    if "fashion" not in _DATA_CACHE:
        _DATA_CACHE["fashion"] = (load_fashion_mnist(train=True), load_fashion_mnist(train=False))
    train, test = _DATA_CACHE["fashion"]
    if n_train > len(train) or n_val > len(test):
        raise ValueError(f"lab: asked for {n_train} training / {n_val} test images, the "
                         f"Fashion-MNIST found ({train.source}) has {len(train)} / {len(test)}")
    shape = (-1, 784) if flat else (-1, 1, 28, 28)
    xs = [ds.data[:n].float().reshape(*shape) / 255.0 for ds, n in ((train, n_train),
                                                                     (test, n_val))]
    source = f"Fashion-MNIST ({'shipped subset' if train.is_subset else 'full set'})"
    return xs[0], train.targets[:n_train], xs[1], test.targets[:n_val], source


def mnist(n_train, n_val, flat=False):
    """The first ``n_train`` training and ``n_val`` test images of MNIST (found through
    SHENDU_DATA or the usual folders), scaled to [0, 1]; without MNIST on disk, Fashion-MNIST
    (``fashion_mnist``) stands in and ``source`` says so.

    Returns (x_train, y_train, x_val, y_val, source): x (N, 1, 28, 28) float32 (N, 784 if
    ``flat``), y (N,) int64.
    """
    from shendu.data import MNIST
    if "mnist" not in _DATA_CACHE:
        try:
            _DATA_CACHE["mnist"] = (MNIST(train=True), MNIST(train=False))
        except FileNotFoundError:
            _DATA_CACHE["mnist"] = None  # looked once: do not search the disk again
    if _DATA_CACHE["mnist"] is None:
        x, y, xv, yv, source = fashion_mnist(n_train, n_val, flat)
        return x, y, xv, yv, source + " (MNIST not found: set SHENDU_DATA)"
    train, test = _DATA_CACHE["mnist"]
    if n_train > len(train) or n_val > len(test):
        raise ValueError(f"lab: asked for {n_train} training / {n_val} test images, MNIST "
                         f"({train.source}) has {len(train)} / {len(test)}")
    shape = (-1, 784) if flat else (-1, 1, 28, 28)
    xs = [ds.data[:n].float().reshape(*shape) / 255.0 for ds, n in ((train, n_train),
                                                                     (test, n_val))]
    return xs[0], train.targets[:n_train], xs[1], test.targets[:n_val], "MNIST"


def accuracy(model, x, y, batch=1000) -> float:
    """Fraction of ``x`` (N, ...) the model labels as ``y`` (N,), in eval mode, no grad."""
    was_training = model.training
    model.eval()
    correct = 0
    with shendu.no_grad():
        for i in range(0, x.shape[0], batch):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    model.train(was_training)
    return correct / x.shape[0]


def train_steps(model, x, y, steps, lr, batch=64, seed=0, optimizer="sgd", weight_decay=0.0,
                l1=0.0, clip=None, on_step=None, attack=None):
    """Mini-batch cross-entropy training for a fixed number of steps.

    ``l1`` adds l1 * sum|w| over weight matrices to the loss; ``clip`` clips the gradient's
    global norm; ``on_step(step, loss)`` may return True to stop early; ``attack(model, x, y)
    -> x_adv`` (e.g. ``shendu.viz.PGD``) replaces every batch by its attacked version before
    the step (adversarial training, Madry et al.).
    Returns the list of per-step training losses (non-finite values kept as they are).
    """
    generator = shendu.Generator(seed=seed)
    make = {"sgd": lambda p: optim.SGD(p, lr=lr, weight_decay=weight_decay),
            "momentum": lambda p: optim.SGD(p, lr=lr, momentum=0.9, weight_decay=weight_decay),
            "adam": lambda p: optim.Adam(p, lr=lr, weight_decay=weight_decay)}
    opt = make[optimizer](model.parameters())
    loss_fn = nn.CrossEntropyLoss()
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")
               and p.dim() > 1]
    losses = []
    model.train()
    for step in range(steps):
        idx = shendu.randint(0, x.shape[0], (batch,), generator=generator)
        xb = x[idx] if attack is None else attack(model, x[idx], y[idx])
        loss = loss_fn(model(xb), y[idx])
        total = loss + l1 * sum(w.abs().sum() for w in weights) if l1 else loss
        opt.zero_grad()
        total.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        losses.append(loss.item())
        if on_step is not None and on_step(step, losses[-1]):
            break
    return losses


def mlp(sizes, activation=nn.ReLU, batch_norm=False, dropout=0.0):
    """Linear layers of the given widths with ``activation`` (and optional BatchNorm1d /
    Dropout) between them; no activation after the last."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            if batch_norm:
                layers.append(nn.BatchNorm1d(n_out))
            layers.append(activation())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (extra: pip install shendu[plot])."""
    try:
        import matplotlib
    except ImportError as err:
        raise RuntimeError("shendu lab draws its figures with matplotlib: pip install "
                           "'shendu[plot]'") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, out, claim_id) -> str | None:
    """Write ``fig`` to ``out/<claim_id>.png`` (nothing when ``out`` is None); returns the path."""
    plt = pyplot()
    path = None
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        path = str(Path(out) / f"{claim_id}.png")
        fig.tight_layout()
        fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def curve_band(ax, curves, label, color=None):
    """Plot the mean of per-seed curves (lists of floats, cut to the shortest) with a min-max
    band over seeds."""
    n = min(len(c) for c in curves)
    cols = [[c[i] for c in curves] for i in range(n)]
    mid = [sum(col) / len(col) for col in cols]
    line, = ax.plot(range(n), mid, label=label, color=color)
    if len(curves) > 1:
        ax.fill_between(range(n), [min(c) for c in cols], [max(c) for c in cols],
                        color=line.get_color(), alpha=0.2)
