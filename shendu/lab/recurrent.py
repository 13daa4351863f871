"""N4.1.3: on a long-range dependency task, LSTM/GRU learn where a plain RNN fails.

The adding problem (Hochreiter & Schmidhuber 1997): every step of a length-T sequence gives a
random value in [0, 1) and a marker bit; exactly two steps are marked, one in each half; the
target, read after the last step, is the sum of the two marked values. Predicting the mean
(1.0) scores MSE 1/6; solving it needs information carried across up to T steps.
Measured: test MSE after the same budget for RNN (tanh), GRU and LSTM of the same width.
"""
from __future__ import annotations

import shendu
from shendu import nn, optim
from shendu.lab.common import _quiet, curve_band, pyplot, save_figure, seed_list
from shendu.lab.result import ClaimResult, combine, compare, summarize

CLAIM_ID = "N4.1.3-gated-long-range"
CELLS = {"RNN": nn.RNN, "GRU": nn.GRU, "LSTM": nn.LSTM}


def adding_batch(batch, length, generator):
    """Inputs (batch, length, 2) [value, marker] and targets (batch,) of the adding task."""
    values = shendu.rand(batch, length, generator=generator)
    half = length // 2
    first = shendu.randint(0, half, (batch, 1), generator=generator)
    second = shendu.randint(half, length, (batch, 1), generator=generator)
    steps = shendu.arange(length).reshape(1, length)
    marker = ((steps == first) | (steps == second)).float()
    return shendu.stack([values, marker], dim=-1), (values * marker).sum(1)


class _Regressor(nn.Module):
    def __init__(self, cell, hidden):
        super().__init__()
        self.rnn = cell(2, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1]).reshape(-1)


def _train(cell, length, hidden, steps, seed):
    shendu.manual_seed(seed)
    model = _Regressor(cell, hidden)
    opt = optim.Adam(model.parameters(), lr=3e-3)
    gen = shendu.Generator(seed=seed)
    loss_fn, losses = nn.MSELoss(), []
    for _ in range(steps):
        x, y = adding_batch(64, length, gen)
        loss = loss_fn(model(x), y)
        opt.zero_grad(), loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    x, y = adding_batch(1000, length, shendu.Generator(seed=10_000 + seed))
    with shendu.no_grad():
        return loss_fn(model(x), y).item(), losses


def run(quick=False, seed=0, seeds=None, out=None, progress=None):
    progress = progress or _quiet()
    seeds = seed_list(seed, seeds, quick)
    length, hidden, steps = (8, 8, 15) if quick else (50, 32, 1500)
    mse, curves = {k: [] for k in CELLS}, {k: [] for k in CELLS}
    for s in seeds:
        for name, cell in CELLS.items():
            test_mse, losses = _train(cell, length, hidden, steps, s)
            mse[name].append(test_mse), curves[name].append(losses)
        progress.update()
    verdict, reason = combine([compare(mse[k], mse["RNN"], k, "RNN", higher_is_better=False,
                                       min_effect=0.02) for k in ("LSTM", "GRU")])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for name, c in curves.items():
        window = max(len(c[0]) // 30, 1)
        curve_band(ax, [[sum(l[i:i + window]) / window for i in range(0, len(l) - window + 1,
                                                                       window)] for l in c], name)
    ax.axhline(1 / 6, color="k", ls=":", label="predict the mean (1/6)")
    ax.set_yscale("log"), ax.set_xlabel(f"step / {window}"), ax.set_ylabel("training MSE")
    ax.set_title(f"adding problem, T = {length}"), ax.legend()
    return ClaimResult(
        CLAIM_ID, "N4.1.3", "on a long-range dependency task, LSTM/GRU learn where a plain RNN "
        "fails",
        f"adding problem, T = {length}; one layer of width {hidden} (RNN tanh / GRU / LSTM) + "
        f"Linear, Adam lr 3e-3, grad-norm clip 1, batch 64, {steps} steps; test MSE on 1000 "
        "fresh sequences (mean-predictor 0.167); gated cells must beat the RNN by >= 0.02",
        {f"{k} test MSE": summarize(v) for k, v in mse.items()},
        verdict, reason, save_figure(fig, out, CLAIM_ID), quick, seeds)
