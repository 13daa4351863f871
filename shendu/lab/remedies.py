"""N3.1.2 (Table 3): each remedy measurably fixes the fault it is listed for.

Vanishing gradients -> ReLU family, batch norm, Xavier/He init; exploding gradients -> ReLU
family, gradient clipping, Adam, batch norm. Every (fault, remedy) pair is a faulty run of the
training doctor's fault zoo (``shendu.train.fault_zoo``) against the same run with exactly
one remedy applied by ``fault_zoo.remedied`` (same data, seed, optimizer settings, epochs and
batches). Where the zoo holds several instances of a fault, each remedy is tried on each of
them, so a remedy that fixes one cause of the fault but not another shows as such. Measured:
validation accuracy (1,000 held-out images) at the end, over seeds; the doctor (repair off)
also reports whether it detects the fault in each run. "Measurably fixes" is a one-sided
Welch test over seeds with a gain of at least ``MIN_GAIN`` accuracy; the claim holds only if
every pair does.
"""
from __future__ import annotations

from shendu import nn
from shendu.lab.common import _quiet, pyplot, save_figure, seed_list
from shendu.lab.result import ClaimResult, combine, compare, summarize

CLAIM_ID = "N3.1.2-remedies-fix-faults"
EPOCHS = 3
MIN_GAIN = 0.10  # 10 accuracy points: a fault zoo run at chance (0.1) must really recover
TANH_TWIN = "mlp_deep_tanh_large_gauss_init"  # built here, not a zoo case (see _twin)


def _twin():
    """The zoo has no exploding case with a saturating activation, which the ReLU remedy
    needs: the tanh twin of ``mlp_relu_large_gauss_init`` (784-256x4-10, N(0, 1) weights, SGD
    lr 0.01 momentum 0.9), built from the zoo's helpers and trained on that case's data."""
    from shendu.train.fault_zoo import _deep, _init, _sgd, mlp

    def build():
        model = _init(mlp(_deep(nn.Tanh, 4, 256), nn.Tanh), "gauss", 1.0)
        return model, _sgd(0.01)(model)
    return build


# (fault, zoo case, remedies tried on it); TANH_TWIN runs under its ReLU original's settings
FAULTS = [
    ("vanishing", "mlp_deep_sigmoid_default_init", ("relu", "batch_norm", "init")),
    ("vanishing", "mlp_deep_tanh_small_init", ("relu", "batch_norm", "init")),
    ("exploding", "mlp_relu_large_gauss_init", ("clip", "adam", "batch_norm")),
    ("exploding", "mlp_relu_high_lr", ("clip", "adam", "batch_norm")),
    ("exploding", TANH_TWIN, ("relu",)),
]
QUICK_FAULTS = [("vanishing", "mlp_deep_tanh_small_init", ("init",)),
                ("exploding", "mlp_relu_high_lr", ("adam",))]
LABELS = {"relu": "ReLU (+He init)", "batch_norm": "batch norm", "init": "Xavier/He init",
          "clip": "clip norm 1", "adam": "Adam 1e-3"}
_RUNS = {}


def _run(case, remedy, seed, epochs):
    """(val accuracy, fault detected by the doctor) of one run, cached per process (the
    faulty run is shared by the remedies tried on its case)."""
    from shendu.train.fault_zoo import remedied, run_case
    key = (case, remedy, seed, epochs)
    if key not in _RUNS:
        name, build = case, None
        if case == TANH_TWIN:
            name, build = "mlp_relu_large_gauss_init", _twin()
        clip = None
        if remedy is not None:
            build, clip = remedied(name, remedy, build=build)
        result = run_case(name, seed=seed, build=build, grad_clip_norm=clip, epochs=epochs)
        _RUNS[key] = (result.val_accuracy, result.fault in result.codes)
    return _RUNS[key]


def run(quick=False, seed=0, seeds=None, out=None, progress=None):
    progress = progress or _quiet()
    seeds = seed_list(seed, seeds, quick)
    faults = QUICK_FAULTS if quick else FAULTS
    # 3 of the zoo's 4 epochs (120 steps) keep 3 seeds x 18 runs within the lab's ~4 minutes
    epochs = 1 if quick else EPOCHS
    pairs = [(fault, case, r) for fault, case, remedies in faults for r in remedies]
    acc = {p: {"faulty": [], "remedied": []} for p in pairs}
    found = {p: {"faulty": 0, "remedied": 0} for p in pairs}
    for s in seeds:
        for p in pairs:
            _, case, remedy = p
            for which, r in (("faulty", None), ("remedied", remedy)):
                a, detected = _run(case, r, s, epochs)
                acc[p][which].append(a)
                found[p][which] += int(detected)
        progress.update()
    parts, measurement = [], {}
    for p in pairs:
        fault, case, remedy = p
        label = f"{fault}: {case} + {LABELS[remedy]}"
        verdict, why = compare(acc[p]["remedied"], acc[p]["faulty"], label, "faulty run",
                               min_effect=MIN_GAIN)
        # compare names the groups only when one wins: name the pair in every part
        parts.append((verdict, why if label in why else f"{label}: {why}"))
        measurement[f"{case} + {remedy} val acc"] = summarize(acc[p]["remedied"])
    for fault, case, _ in faults:
        first = next(p for p in pairs if p[1] == case)
        measurement[f"{case} (faulty) val acc"] = summarize(acc[first]["faulty"])
    verdict, reason = combine(parts)
    detection = "; ".join(
        f"{case}: {found[next(p for p in pairs if p[1] == case)]['faulty']}/{len(seeds)}"
        for _, case, _ in faults)
    fig = _figure(pairs, acc, found, len(seeds))
    return ClaimResult(
        CLAIM_ID, "N3.1.2", "each remedy of Table 3 measurably fixes the fault it is listed for",
        "fault zoo runs (shendu.train.fault_zoo: 2,000 MNIST or Fashion-MNIST training images, "
        f"{epochs} epoch(s) of batch 50 = {40 * epochs} steps, 1,000 validation "
        "images), each against the same run with exactly one remedy (fault_zoo.remedied): "
        "ReLU = Sigmoid/Tanh replaced by ReLU with kaiming_uniform_ init (the doctor's relu "
        "repair), init = xavier_"
        "uniform_/kaiming_uniform_ matching the activation, batch norm after every hidden "
        "Linear, clip = gradient norm clipped at 1.0, Adam = optimizer replaced by Adam lr "
        f"1e-3. Vanishing cases: {', '.join(c for f, c, _ in faults if f == 'vanishing')}; "
        f"exploding: {', '.join(c for f, c, _ in faults if f == 'exploding')}"
        + (f" ({TANH_TWIN} = the tanh twin of mlp_relu_large_gauss_init, for the ReLU remedy)"
           if any(c == TANH_TWIN for _, c, _ in faults) else "") + ". A "
        f"pair holds if validation accuracy rises by > {MIN_GAIN} with one-sided Welch p < 0.05 "
        f"over seeds; the claim needs every pair. Doctor detects the fault in the faulty runs: "
        f"{detection}",
        measurement, verdict, reason, save_figure(fig, out, CLAIM_ID), quick, seeds)


def _figure(pairs, acc, found, n_seeds):
    """Grouped bars: validation accuracy of the faulty run and of the remedied run per pair,
    seed std as error bars; under each pair, how many seeds the doctor flagged the fault in."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(pairs) + 2), 4.2))
    xs = list(range(len(pairs)))
    for offset, which, color in ((-0.2, "faulty", "C3"), (0.2, "remedied", "C2")):
        values = [acc[p][which] for p in pairs]
        ax.bar([x + offset for x in xs], [summarize(v)["mean"] for v in values], 0.4,
               yerr=[summarize(v)["std"] for v in values], color=color, label=which, capsize=2)
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{case.replace('mlp_', '')}\n+ {LABELS[r]}\nflagged "
                        f"{found[p]['faulty']}->{found[p]['remedied']}/{n_seeds}"
                        for p in pairs for _, case, r in [p]], rotation=60, ha="right",
                       fontsize=6)
    boundary = sum(1 for f, _, _ in pairs if f == "vanishing") - 0.5
    ax.axvline(boundary, color="k", lw=0.8, ls=":")
    ax.text(boundary - 0.1, 1.02, "vanishing", ha="right", fontsize=8)
    ax.text(boundary + 0.1, 1.02, "exploding", ha="left", fontsize=8)
    ax.axhline(0.1, color="grey", lw=0.8, ls="--", label="chance")
    ax.set_ylim(0, 1.08), ax.set_ylabel("validation accuracy")
    ax.set_title("Table 3: faulty run vs the same run with one remedy", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    return fig
