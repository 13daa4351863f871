"""From a run's record to findings: the rules of Tables 2 and 3 with their thresholds.

Every rule reads numbers the ``Doctor`` measured and returns a ``Finding`` whose ``evidence``
holds those numbers next to the threshold they crossed. The thresholds (``THRESHOLDS``) and
why each has its value:

Table 2 (N3.1.1), judged on the validation set, error = 1 - accuracy (or the loss when no
accuracy was logged):
- ``high_error`` 0.5: an error is "high" when the model has closed less than half of the way
  from chance (error 1 - 1/C for C classes) to perfect, i.e. error > 0.5 * (1 - 1/C).
- ``gap`` 0.1: over-fitting needs validation error above training error by 10 points and
  training error below half the validation error ("good on training, poor on test").
- ``converged_drop`` 0.02: training loss that fell by less than 2% over the last epoch, after
  falling 10% below the chance loss ln(C), has converged ("converged too low": a bigger model);
  otherwise it has "not converged" (train longer, raise the learning rate).

Table 3 (N3.1.2), over the sampled steps, gradients per weight layer (first = nearest the
input, last = the head):
- ``vanishing_ratio`` 1e-3: "gradients shrink toward zero going back": the median of
  ||grad first|| / ||grad last|| is below 1/1000.
- ``exploding_ratio`` 1e3: the same ratio above 1000 (gradients grow going back).
- ``update_ratio`` 0.1: "updates unstable": a step changes some hidden layer's weights by more
  than 10% of their norm (healthy SGD/Adam steps move weights by about 1e-3 of their norm;
  the first sampled step is left out: Adam's first step moves every weight by a full lr).
- ``loss_over_chance`` 4: a step loss above 4 times the chance loss ln(C) (a uniform guess):
  the outputs, and with them the gradients, have blown up.
- ``divergence`` 1.5: "training diverges": the mean loss of the last tenth of the steps is
  above 1.5 times that of the first tenth.
- ``dead_fraction`` 0.5: a ReLU-family layer with more than half of its units (channels for
  conv layers) never positive over a whole window of sampled batches (N3.2.2's dead zone).
- ``saturated_fraction`` 0.5: a sigmoid/tanh layer with more than half of its outputs in the
  tails where the derivative is below 1% of its peak (see ``doctor.SIGMOID_TAIL``).
- ``oscillation`` 0.1 and ``learned_drop`` 0.25: the loss first came down (a 10-step mean
  below 75% of the initial loss), then in the second half of the steps more than 10% of the
  step losses jump back above the initial loss, without diverging.
- ``slow_progress`` 0.1: the loss fell by less than 10% from the first to the last tenth of the
  steps (with no other fault to explain it), i.e. it still crawls down from where it started.
Non-finite values (loss, gradients, weights, inputs) have no threshold: one is a fault.
"""
from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass, field

CODES = ("nonfinite", "exploding_gradients", "vanishing_gradients", "dead_relu",
         "saturated_activations", "loss_oscillation", "slow_convergence", "underfitting",
         "overfitting")  # in order of severity: repair treats the first one found

THRESHOLDS = {"high_error": 0.5, "gap": 0.1, "converged_drop": 0.02,
              "vanishing_ratio": 1e-3, "exploding_ratio": 1e3, "update_ratio": 0.1,
              "divergence": 1.5, "loss_over_chance": 4.0, "dead_fraction": 0.5, "saturated_fraction": 0.5,
              "oscillation": 0.1, "learned_drop": 0.25, "slow_progress": 0.1}


@dataclass
class Remedy:
    """One cure: ``name`` (a short key), the concept ID of the notes, and what to change."""

    name: str
    concept: str
    change: str

    def __str__(self):
        return f"{self.change} ({self.concept})"


@dataclass
class Finding:
    """One fault: its code, the layer (or None), the first step it showed at, the numbers
    that triggered it (with the threshold) and the remedies, best first."""

    code: str
    where: str | None
    first_step: int | None
    evidence: dict
    remedies: list = field(default_factory=list)
    summary: str = ""

    def to_dict(self):
        return {"code": self.code, "where": self.where, "first_step": self.first_step,
                "summary": self.summary, "evidence": self.evidence,
                "remedies": [vars(r) for r in self.remedies]}


@dataclass
class Diagnosis:
    """The doctor's verdict: ``findings`` (most severe first); healthy when empty."""

    findings: list
    repairs: list = field(default_factory=list)

    @property
    def codes(self):
        return {f.code for f in self.findings}

    @property
    def healthy(self):
        return not self.findings

    def to_dict(self):
        return {"codes": sorted(self.codes), "findings": [f.to_dict() for f in self.findings],
                "repairs": self.repairs}

    @classmethod
    def from_dict(cls, data):
        findings = [Finding(f["code"], f["where"], f["first_step"], f["evidence"],
                            [Remedy(**r) for r in f["remedies"]], f.get("summary", ""))
                    for f in data["findings"]]
        return cls(findings, list(data.get("repairs", [])))

    def __str__(self):
        lines = []
        if not self.findings:
            lines.append("doctor: healthy - no fault of Tables 2-3 found")
        for f in self.findings:
            at = (f" in {f.where}" if f.where else "") + \
                (f" from step {f.first_step}" if f.first_step is not None else "")
            lines.append(f"doctor: {f.code}{at}: {f.summary}")
            lines.append("  evidence: " + ", ".join(f"{k}={_fmt(v)}" for k, v in
                                                    f.evidence.items()))
            for i, r in enumerate(f.remedies):
                lines.append(f"  {'remedy' if i == 0 else '    or'}: {r}")
        for r in self.repairs:
            before = r["before"] if r["before"] is not None and math.isfinite(r["before"]) \
                else "n/a (first epoch)"
            lines.append(f"repair at epoch {r['epoch']} (step {r['step']}): {r['change']} "
                         f"({r['concept']}) for {r['code']}; {r['metric']} {_fmt(before)} -> "
                         f"{_fmt(r.get('after'))} at the end")
        return "\n".join(lines)


def _fmt(value):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3g}"
    return str(value)


def _mean(values):
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


# --- Table 2 ------------------------------------------------------------------------------------

def _errors(epochs):
    """(train error, val error, unit) of the last epoch, from accuracy if logged else loss."""
    if epochs.get("accuracy") and epochs.get("val_accuracy"):
        return 1 - epochs["accuracy"][-1], 1 - epochs["val_accuracy"][-1], "error"
    if epochs.get("loss") and epochs.get("val_loss"):
        return epochs["loss"][-1], epochs["val_loss"][-1], "loss"
    return None


def fitting_findings(epochs, num_classes=None, thresholds=THRESHOLDS):
    """Table 2 from per-epoch logs {'loss': [...], 'accuracy': [...], 'val_...': [...]}."""
    errors = _errors(epochs)
    if errors is None:
        return []
    train_err, val_err, unit = errors
    if not (math.isfinite(train_err) and math.isfinite(val_err)):
        return []
    classes = num_classes or 10
    chance = 1 - 1 / classes if unit == "error" else math.log(classes)
    high = thresholds["high_error"] * chance
    losses = epochs.get("loss", [])
    drop = (losses[-2] - losses[-1]) / abs(losses[-2]) if len(losses) >= 2 and losses[-2] \
        else math.nan
    found = []
    if train_err > high and val_err > high:
        # converged: it learned something (loss below the chance loss ln C by 10%) and then
        # stopped improving; a loss still at ln C has not started (e.g. a tiny learning rate)
        learned = bool(losses) and losses[-1] < 0.9 * math.log(classes)
        converged = learned and math.isfinite(drop) and drop < thresholds["converged_drop"]
        state = "converged too low" if converged else "not converged"
        ev = {f"train_{unit}": train_err, f"val_{unit}": val_err, "high_above": high,
              "last_epoch_loss_drop": drop, "converged_below": thresholds["converged_drop"],
              "chance_loss": math.log(classes),
              "state": state}
        remedies = ([Remedy("bigger_model", "N2.1", "more layers or wider layers (depth and "
                            "width are hyper-parameters)"),
                     Remedy("less_regularization", "N3.2.5", "less dropout / weight decay")]
                    if converged else
                    [Remedy("raise_lr", "N3.2.3", "raise the learning rate x10 or train longer"),
                     Remedy("adam", "N3.2.3", "switch to Adam, lr 1e-3")])
        found.append(Finding("underfitting", None, None, ev, remedies,
                             f"training and validation {unit} both high ({state})"))
    elif val_err - train_err > thresholds["gap"] and train_err < val_err / 2:
        ev = {f"train_{unit}": train_err, f"val_{unit}": val_err,
              "gap": val_err - train_err, "gap_above": thresholds["gap"]}
        found.append(Finding("overfitting", None, None, ev,
                             [Remedy("regularize", "N3.2.5", "dropout 0.3 or weight decay 5e-4"),
                              Remedy("early_stopping", "N3.2.6", "early stopping on val_loss "
                                     "with restore_best_weights"),
                              Remedy("more_data", "N2.1", "more training data or augmentation")],
                             f"training {unit} low, validation {unit} high"))
    return found


def diagnose(history, num_classes=None, thresholds=None):
    """The Table 2 verdict (``underfitting``/``overfitting``) from a ``History`` or the path
    of a run's ``history.csv``; a ``Diagnosis``."""
    thresholds = {**THRESHOLDS, **(thresholds or {})}
    if isinstance(history, (str, bytes)) or hasattr(history, "__fspath__"):
        epochs = {}
        with open(history, newline="") as f:
            for row in csv.DictReader(f):
                for key, value in row.items():
                    if key != "epoch" and value not in ("", None):
                        epochs.setdefault(key, []).append(float(value))
    elif hasattr(history, "history"):
        epochs = history.history
    else:
        raise TypeError(f"diagnose: expected a History or a history.csv path, got "
                        f"{type(history).__name__}")
    return Diagnosis(fitting_findings(epochs, num_classes, thresholds))


# --- Table 3 and the activation checks -------------------------------------------------------

def _tenth(values):
    n = max(1, len(values) // 10)
    return _mean(values[:n]), _mean(values[-n:])


def _first_index(flags):
    return next((i for i, f in enumerate(flags) if f), None)


def gradient_findings(rec, t):
    found = []
    layers, steps = rec["layers"], rec["grad_steps"]
    if len(layers) < 2 or not steps:
        return found
    first, last = rec["grad_norm"][layers[0]], rec["grad_norm"][layers[-1]]
    ratios = [a / b for a, b in zip(first, last) if b > 0 and math.isfinite(a / b)]
    ratio = statistics.median(ratios) if ratios else math.nan
    # hidden layers only (a small-init head moves a lot relative to its tiny weights), and not
    # the first sampled step (Adam's first step moves every weight by a full lr)
    updates = {name: max([u for u in rec["update_ratio"][name][1:] if math.isfinite(u)]
                         or [math.nan]) for name in layers[:-1]}
    worst = max(updates, key=lambda n: updates[n] if math.isfinite(updates[n]) else -1)
    start, end = _tenth(rec["loss"])
    growth = end / start if start > 0 and math.isfinite(end) else math.nan
    chance = math.log(rec.get("num_classes") or 10)
    peak = max(rec["loss"]) / chance if rec["loss"] else math.nan
    if ratio < t["vanishing_ratio"]:
        flags = [b > 0 and a / b < t["vanishing_ratio"] for a, b in zip(first, last)]
        i = _first_index(flags)
        found.append(Finding(
            "vanishing_gradients", f"{layers[0]} (of {len(layers)} layers)",
            steps[i] if i is not None else steps[0],
            {"grad_first_over_last": ratio, "below": t["vanishing_ratio"],
             "grad_norm_first": statistics.median(first), "grad_norm_last":
             statistics.median(last)},
            [Remedy("relu", "N3.2.2", "replace Sigmoid/Tanh by ReLU in the hidden layers"),
             Remedy("reinit", "N3.2.4", "kaiming_uniform_ init for ReLU, xavier_uniform_ for "
                    "tanh/sigmoid"),
             Remedy("batch_norm", "N3.2.6", "batch normalization after each hidden layer")],
            "gradients shrink toward zero going back to the input"))
    exploding = {}
    if ratio > t["exploding_ratio"]:
        exploding["grad_first_over_last"], exploding["ratio_above"] = ratio, t["exploding_ratio"]
    if updates[worst] > t["update_ratio"]:
        exploding["update_over_weight"], exploding["update_above"] = updates[worst], \
            t["update_ratio"]
    if growth > t["divergence"]:
        exploding["loss_end_over_start"], exploding["divergence_above"] = growth, t["divergence"]
    if peak > t["loss_over_chance"]:
        exploding["max_loss_over_chance_loss"], exploding["loss_above"] = peak, \
            t["loss_over_chance"]
    if exploding:
        flags = [u > t["update_ratio"] for u in rec["update_ratio"][worst]]
        i = _first_index(flags[1:])
        firsts = [] if i is None else [steps[i + 1]]
        j = _first_index([v > t["loss_over_chance"] * chance for v in rec["loss"]])
        firsts += [] if j is None or not math.isfinite(peak) or peak <= t["loss_over_chance"] \
            else [rec["loss_offset"] + j]
        found.append(Finding(
            "exploding_gradients", worst, min(firsts) if firsts else None, exploding,
            [Remedy("reinit", "N3.2.4", "kaiming_uniform_ / xavier_uniform_ init matching the "
                    "activation, if the init is off (e.g. a wide Gaussian)"),
             Remedy("lower_lr", "N3.2.3", "lower the learning rate x10"),
             Remedy("clip", "N3.2.6", "clip the gradient norm at 1.0"),
             Remedy("adam", "N3.2.3", "switch to Adam, lr 1e-3"),
             Remedy("batch_norm", "N3.2.6", "batch normalization after each hidden layer")],
            "gradients and updates too large; training unstable"))
    return found


def activation_findings(rec, t):
    found = []
    dead, saturated = {}, {}
    for name, entry in rec["activations"].items():
        fractions = entry["fraction"]
        if not fractions:
            continue
        threshold = t["dead_fraction"] if entry["kind"] == "relu" else t["saturated_fraction"]
        # dead: the last window; saturated: the median sampled batch of the last half
        value = fractions[-1] if entry["kind"] == "relu" else \
            statistics.median(fractions[len(fractions) // 2:])
        if value > threshold:
            i = _first_index([f > threshold for f in fractions])
            (dead if entry["kind"] == "relu" else saturated)[name] = (value, entry["steps"][i])
    if dead:
        names = list(dead)
        found.append(Finding(
            "dead_relu", ", ".join(names), min(s for _, s in dead.values()),
            {**{f"dead_fraction[{n}]": v for n, (v, _) in dead.items()},
             "above": t["dead_fraction"], "window_sampled_batches": rec["window"]},
            [Remedy("reinit", "N3.2.4", f"kaiming_uniform_ init and zero biases in {names[0]}"
                    + (f"..{names[-1]}" if len(names) > 1 else "")),
             Remedy("lower_lr", "N3.2.3", "lower the learning rate x10"),
             Remedy("leaky_relu", "N3.2.2", "LeakyReLU(0.1) instead of ReLU")],
            "ReLU units that never fire"))
    if saturated:
        names = list(saturated)
        found.append(Finding(
            "saturated_activations", ", ".join(names), min(s for _, s in saturated.values()),
            {**{f"saturated_fraction[{n}]": v for n, (v, _) in saturated.items()},
             "above": t["saturated_fraction"]},
            [Remedy("reinit", "N3.2.4", "xavier_uniform_ init, if the init is off (keeps "
                    "pre-activations small)"),
             Remedy("relu", "N3.2.2", f"replace Sigmoid/Tanh by ReLU in {names[0]}"
                    + (f"..{names[-1]}" if len(names) > 1 else "")),
             Remedy("batch_norm", "N3.2.6", "batch normalization before the activation")],
            "sigmoid/tanh outputs stuck in the flat tails"))
    return found


def loss_findings(rec, t, other_codes):
    losses = rec["loss"]
    if len(losses) < 20:
        return []
    found = []
    start, end = _tenth(losses)
    late = losses[len(losses) // 2:]
    above = sum(1 for v in late if math.isfinite(v) and v > start) / len(late)
    smooth = [_mean(losses[i:i + 10]) for i in range(0, len(losses) - 9, 10)]
    learned = min(smooth) < (1 - t["learned_drop"]) * start  # it went down before jumping
    if above > t["oscillation"] and learned and "exploding_gradients" not in other_codes:
        i = _first_index([v > start for v in late])
        found.append(Finding(
            "loss_oscillation", None, len(losses) - len(late) + (i or 0),
            {"late_steps_above_initial_loss": above, "above": t["oscillation"],
             "initial_loss": start},
            [Remedy("lower_lr", "N3.2.3", "lower the learning rate x10"),
             Remedy("clip", "N3.2.6", "clip the gradient norm at 1.0")],
            "the loss keeps jumping back above where it started"))
    progress = (start - end) / start if start > 0 else math.nan
    if progress < t["slow_progress"] and end / start <= t["divergence"] and not other_codes & {
            "vanishing_gradients", "dead_relu", "saturated_activations", "loss_oscillation"}:
        found.append(Finding(
            "slow_convergence", None, 0,
            {"loss_first_tenth": start, "loss_last_tenth": end, "relative_drop": progress,
             "below": t["slow_progress"]},
            [Remedy("raise_lr", "N3.2.3", "raise the learning rate x10"),
             Remedy("adam", "N3.2.3", "switch to Adam, lr 1e-3"),
             Remedy("batch_norm", "N3.2.6", "batch normalization (faster convergence)")],
            "the loss decreases too slowly"))
    return found


def nonfinite_finding(rec):
    event = rec["nonfinite"]
    if event is None:
        return []
    data = event["where"] == "input"
    remedies = ([Remedy("clean_inputs", "N2.1", "remove or impute the non-finite values in "
                        "the data set (the training set must be valid numbers)")] if data else
                [Remedy("reinit", "N3.2.4", "kaiming_uniform_ / xavier_uniform_ init matching "
                        "the activation, if the init is off"),
                 Remedy("lower_lr", "N3.2.3", "lower the learning rate x10"),
                 Remedy("clip", "N3.2.6", "clip the gradient norm at 1.0"),
                 Remedy("adam", "N3.2.3", "switch to Adam, lr 1e-3")])
    return [Finding("nonfinite", event["where"], event["step"],
                    {"first_in": event["what"], "step": event["step"]}, remedies,
                    f"a non-finite value (nan/inf) in the {event['what']}")]


def diagnose_record(rec, thresholds=None):
    """All findings for a ``Doctor`` record, most severe first."""
    t = {**THRESHOLDS, **(thresholds or {})}
    found = nonfinite_finding(rec)
    losses = [v for v in rec["loss"] if math.isfinite(v)]
    # the finite prefix keeps step numbers right; a run goes non-finite and stays so
    cut = next((i for i, v in enumerate(rec["loss"]) if not math.isfinite(v)), len(rec["loss"]))
    losses = rec["loss"][:cut] if cut >= 20 or cut == len(rec["loss"]) else losses
    finite_rec = {**rec, "loss": losses, "loss_offset": rec.get("loss_offset", 0)}
    found += gradient_findings(finite_rec, t)
    found += activation_findings(rec, t)
    found += loss_findings(finite_rec, t, {f.code for f in found})
    if all(math.isfinite(v) for v in rec["epochs"].get("loss", [])):  # a broken run is not
        found += fitting_findings(rec["epochs"], rec.get("num_classes"), t)  # judged on fit
    return Diagnosis(sorted(found, key=lambda f: CODES.index(f.code)))
