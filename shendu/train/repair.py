"""Repair (AutoTrainer's idea on the notes' remedies): roll back, apply a remedy, go on.

At every epoch end (and at once on a non-finite value) ``Treatment.check`` diagnoses the run
since the last repair. On a fault it restores the last healthy weights (taken at an epoch end
with no finding, or at the start), clears the optimizer's state, applies the first remedy of
the most severe finding that applies to this run and was not tried before, and logs it. Each
remedy is a function here named like the ``Remedy.name`` of ``shendu.train.diagnosis``;
it returns what it changed, or None when it does not apply (e.g. re-initialising a model whose
init already matches its activations). Concept: N3.2.2-N3.2.6.
"""
from __future__ import annotations

import math

from shendu import autograd, nn, optim
from shendu.train.diagnosis import diagnose_record

# Table 2 findings need a trend, so they may only trigger a repair from a segment's 2nd epoch
TREND_CODES = {"underfitting", "overfitting", "loss_oscillation"}
REPEATABLE = {"lower_lr", "raise_lr"}  # x10 each time, up to Doctor.max_repairs
INIT_TOLERANCE = 4.0  # a weight whose std is 4x off the matching init's counts as mis-initialised


def _kind(model):
    """'relu' when the model has ReLU-family layers, else 'tanh'/'sigmoid' (its first such)."""
    from shendu.train.doctor import activation_layers
    kinds = [k for _, _, k in activation_layers(model)]
    return "relu" if "relu" in kinds or not kinds else kinds[0]


def _affine(model):
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def _target_std(weight, kind):
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(weight)
    if kind == "relu":
        return math.sqrt(2.0 / fan_in)
    return nn.init.calculate_gain(kind) * math.sqrt(2.0 / (fan_in + fan_out))


def init_mismatch(model):
    """A description of the first layer whose init does not suit its activation (weight std
    off by more than INIT_TOLERANCE, or biases below -1 that keep ReLUs shut), else None."""
    kind = _kind(model)
    for name, m in model.named_modules():
        if not isinstance(m, (nn.Linear, nn.Conv2d)):
            continue
        std = float(m.weight.data.std())
        target = _target_std(m.weight, kind)
        if not target / INIT_TOLERANCE < std < target * INIT_TOLERANCE:
            return f"{name}: weight std {std:.3g}, {kind} init wants {target:.3g}"
        if m.bias is not None and float(m.bias.data.mean()) < -1:
            return f"{name}: mean bias {float(m.bias.data.mean()):.3g}"
    return None


def reinit(model, kind=None):
    """kaiming_uniform_ (ReLU) or xavier_uniform_ (tanh/sigmoid) weights, zero biases."""
    kind = kind or _kind(model)
    with autograd.no_grad():
        for m in _affine(model):
            if kind == "relu":
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain(kind))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return "kaiming_uniform_" if kind == "relu" else f"xavier_uniform_ (gain for {kind})"


def _swap(model, match, make):
    """Replace every sub-module for which ``match(module)`` holds by ``make(module)``."""
    names = [n for n, m in model.named_modules() if n and match(m)]
    for name in names:
        parent, _, leaf = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, leaf, make(owner._modules[leaf]))
    return names


def _span(names):
    return names[0] if len(names) == 1 else f"{names[0]}..{names[-1]} ({len(names)} layers)"


# --- the remedies: fn(trainer, doctor) -> str (what changed) or None (does not apply) -------

def remedy_lower_lr(trainer, doctor, factor=0.1):
    groups = trainer.optimizer.param_groups
    old = groups[0]["lr"]
    direction = "down" if factor < 1 else "up"
    if old * factor < 1e-6 or doctor.lr_direction not in (None, direction):
        return None  # the learning rate moves one way only: no see-saw between remedies
    doctor.lr_direction = direction
    for g in groups:
        g["lr"] *= factor
    return f"learning rate {old:.3g} -> {groups[0]['lr']:.3g}"


def remedy_raise_lr(trainer, doctor):
    limit = 0.01 if isinstance(trainer.optimizer, optim.Adam) else 0.5
    if trainer.optimizer.param_groups[0]["lr"] * 10 > limit:
        return None
    return remedy_lower_lr(trainer, doctor, factor=10.0)


def remedy_clip(trainer, doctor):
    if doctor.clip_norm is not None:
        return None
    doctor.clip_norm = 1.0
    return "clip the gradient norm at 1.0"


def remedy_adam(trainer, doctor):
    if isinstance(trainer.optimizer, optim.Adam):
        return None
    trainer.optimizer = optim.Adam(trainer.model.parameters(), lr=1e-3)
    return "optimizer -> Adam(lr=1e-3)"


def remedy_reinit(trainer, doctor):
    why = init_mismatch(trainer.model)
    if why is None:
        return None
    return f"re-initialise with {reinit(trainer.model)} ({why})"


def remedy_relu(trainer, doctor):
    names = _swap(trainer.model, lambda m: isinstance(m, (nn.Sigmoid, nn.Tanh)),
                  lambda m: nn.ReLU())
    if not names:
        return None
    init = reinit(trainer.model, "relu")
    doctor.attach(trainer.model)
    return f"replace Sigmoid/Tanh by ReLU in {_span(names)}, {init} init"


def remedy_leaky_relu(trainer, doctor):
    names = _swap(trainer.model, lambda m: type(m) is nn.ReLU, lambda m: nn.LeakyReLU(0.1))
    if not names:
        return None
    doctor.attach(trainer.model)
    return f"replace ReLU by LeakyReLU(0.1) in {_span(names)}"


def remedy_regularize(trainer, doctor):
    from shendu.train.doctor import RELU_FAMILY
    groups = trainer.optimizer.param_groups
    if any(g.get("weight_decay", 0) > 0 for g in groups) or trainer.l2 > 0:
        return None
    for g in groups:
        g["weight_decay"] = 5e-4
    hidden = (*RELU_FAMILY, nn.Sigmoid, nn.Tanh)
    names = _swap(trainer.model, lambda m: isinstance(m, hidden),
                  lambda m: nn.Sequential(m, nn.Dropout(0.3)))
    doctor.attach(trainer.model)
    return "weight decay 5e-4" + (f" and dropout 0.3 after {_span(names)}" if names else "")


def remedy_early_stopping(trainer, doctor):
    if doctor.treatment.keep_best:
        return None
    doctor.treatment.keep_best = True
    return "early stopping: keep the weights of the best val_loss epoch from here on"


def remedy_clean_inputs(trainer, doctor):
    if doctor.sanitize_inputs:
        return None
    doctor.sanitize_inputs = True
    return "replace non-finite input values by 0 (clean the data set for good)"


REMEDIES = {name[len("remedy_"):]: fn for name, fn in globals().items()
            if name.startswith("remedy_")}


class Treatment:
    """The repair loop of ``Doctor(repair=True)``; ``doctor.record['repairs']`` logs it."""

    def __init__(self, doctor):
        from shendu.train.doctor import snapshot
        self.doctor = doctor
        self.trainer = doctor.trainer
        self.healthy = snapshot(self.trainer)
        self.start_step, self.start_epoch = 0, 0
        self.tried = set()
        self.keep_best = False  # set by the early-stopping remedy
        self.best = None  # (val_loss, weights) of the best epoch since then

    def current_record(self):
        """The doctor's record restricted to the steps since the last repair."""
        rec, s = self.doctor.record, self.start_step
        keep = [i for i, step in enumerate(rec["grad_steps"]) if step >= s]
        acts = {}
        for name, e in rec["activations"].items():
            idx = [i for i, step in enumerate(e["steps"]) if step > s]
            acts[name] = {"kind": e["kind"], "steps": [e["steps"][i] for i in idx],
                          "fraction": [e["fraction"][i] for i in idx]}
        nonfinite = rec["nonfinite"] if rec["nonfinite"] and rec["nonfinite"]["step"] >= s \
            else None
        return {**rec, "loss": rec["loss"][s:], "loss_offset": s,
                "grad_steps": [rec["grad_steps"][i] for i in keep],
                "grad_norm": {k: [v[i] for i in keep] for k, v in rec["grad_norm"].items()},
                "update_ratio": {k: [v[i] for i in keep] for k, v in rec["update_ratio"].items()},
                "activations": acts, "nonfinite": nonfinite,
                "epochs": {k: v[self.start_epoch:] for k, v in rec["epochs"].items()}}

    def check(self, epoch, logs, mid_epoch=False):
        """Diagnose the segment since the last repair; treat its most severe finding."""
        from shendu.train.doctor import snapshot
        loss = logs.get("val_loss", math.nan)
        if self.keep_best and not mid_epoch and math.isfinite(loss) and (
                self.best is None or loss < self.best[0]):
            self.best = (loss, snapshot(self.trainer), logs)
        diagnosis = diagnose_record(self.current_record(), self.doctor.thresholds)
        segment_epochs = epoch + 1 - self.start_epoch
        findings = [f for f in diagnosis.findings
                    if f.code not in TREND_CODES or segment_epochs >= 2]
        if not findings:
            if not diagnosis.findings:
                self.healthy = snapshot(self.trainer)
            return
        if len(self.doctor.record["repairs"]) >= self.doctor.max_repairs:
            return
        current = snapshot(self.trainer)
        for finding in findings:
            for remedy in finding.remedies:
                if remedy.name in self.tried - REPEATABLE or remedy.name not in REMEDIES:
                    continue
                self._restore(self.healthy)
                change = REMEDIES[remedy.name](self.trainer, self.doctor)
                if change is None:
                    continue
                self.tried.add(remedy.name)
                self._log(epoch, finding, remedy, change, logs, mid_epoch)
                self.healthy = snapshot(self.trainer)  # the treated state is the new baseline
                return
        self._restore(current)  # nothing applies: leave the run as it was

    def _restore(self, state):
        model = self.trainer.model
        keys = model.state_dict()
        model.load_state_dict({k: v for k, v in state["model"].items() if k in keys},
                              strict=False)
        self.trainer.optimizer.state.clear()

    def _log(self, epoch, finding, remedy, change, logs, mid_epoch):
        rec = self.doctor.record
        metric = "val_loss" if "val_loss" in logs and "val_accuracy" not in logs \
            else "val_accuracy"  # before the first epoch ends there is no value yet (nan)
        step = self.doctor._step + (1 if mid_epoch else 0)
        entry = {"epoch": epoch, "step": step, "code": finding.code, "where": finding.where,
                 "remedy": remedy.name, "concept": remedy.concept, "change": change,
                 "metric": metric, "before": float(logs.get(metric, math.nan)), "after": None}
        rec["repairs"].append(entry)
        self.doctor.log(f"doctor: {finding.code} at epoch {epoch}: rolled back; {change} "
                        f"({remedy.concept})")
        self.start_step = step
        self.start_epoch = epoch if mid_epoch else epoch + 1
        self.doctor._fired = {}
        rec["nonfinite"] = None  # the segment after the repair starts clean

    def finish(self):
        epochs = self.doctor.record["epochs"]
        final = {k: v[-1] for k, v in epochs.items() if v}
        if self.best is not None:
            self._restore(self.best[1])
            final = self.best[2]
            self.doctor.log(f"doctor: early stopping restored the weights of val_loss "
                            f"{self.best[0]:.4g}")
        for entry in self.doctor.record["repairs"]:
            entry["after"] = float(final.get(entry["metric"], math.nan))
