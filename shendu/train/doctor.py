"""The training doctor: a callback that watches a run for the faults of Tables 2 and 3.

``Doctor`` records, while a ``Trainer`` runs: the loss of every step; the train/val logs of
every epoch; every ``sample_every`` steps the gradient norm and the update/weight ratio
||w_after - w_before|| / ||w_before|| of each weight layer, and (through forward hooks) how
many units of each ReLU-family layer fire and how many sigmoid/tanh outputs sit in the
saturated tails; and the first non-finite value in input, loss, gradients or weights, with its
step and layer. ``doctor.diagnosis()`` turns that record into findings
(``shendu.train.diagnosis``); ``Doctor(repair=True)`` also acts on them
(``shendu.train.repair``). Concept: N3.1.1 (Table 2), N3.1.2 (Table 3), N3.2 (remedies).

Cost: the per-step work is one float comparison and, for the input, one ``isfinite`` pass;
the rest runs on one step in ``sample_every`` (default 10).
"""
from __future__ import annotations

import math

from shendu import autograd, backend, nn
from shendu.train.callbacks import Callback

RELU_FAMILY = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU)
SATURATING = {nn.Sigmoid: "sigmoid", nn.Tanh: "tanh"}
# the tails where the derivative is below 1% of its peak: sigmoid' = y(1 - y) <= 0.0025
# (y <= 0.0025 or y >= 0.9975); tanh' = 1 - y^2 <= 0.01 (|y| >= 0.995)
SIGMOID_TAIL = 0.0025
TANH_TAIL = 0.995


def weight_layers(model):
    """[(name, module, [weights])] for modules owning weight tensors (ndim >= 2), in
    registration order (the forward order of the zoo's sequential models)."""
    layers = []
    for name, module in model.named_modules():
        weights = [p for p in module.parameters(recurse=False) if p.ndim >= 2]
        if weights:
            layers.append((name or type(module).__name__, module, weights))
    return layers


def activation_layers(model):
    """[(name, module, kind)] with kind 'relu' (ReLU family), 'sigmoid' or 'tanh'; a tanh
    ``nn.RNN`` counts as tanh (its outputs are the tanh states)."""
    found = []
    for name, module in model.named_modules():
        kind = None
        if isinstance(module, RELU_FAMILY):
            kind = "relu"
        elif type(module) in SATURATING:
            kind = SATURATING[type(module)]
        elif isinstance(module, nn.RNN):
            kind = "tanh" if module.mode == "RNN_TANH" else "relu"
        if kind is not None:
            found.append((name or type(module).__name__, module, kind))
    return found


def _sum_squares(arrays):
    xp = backend.xp_of(arrays[0])
    return float(sum(float(xp.vdot(a.ravel(), a.ravel())) for a in arrays))


def _finite(array):
    return bool(backend.xp_of(array).isfinite(array).all())


class Doctor(Callback):
    """Record a run's health and diagnose it (and with ``repair=True``, treat it).

    Args:
        sample_every: measure gradients, updates and activations on one step in this many.
            Defaults to 10.
        window: sampled batches over which a ReLU unit must never fire to count as dead.
            Defaults to 10.
        repair: on a confirmed fault, roll back and apply a remedy (``shendu.train.repair``).
            Defaults to False.
        thresholds: overrides of ``shendu.train.diagnosis.THRESHOLDS``. Defaults to none.
        max_repairs: most remedies one run may get. Defaults to 4.
        log: where repair messages go (a ``print``-like function). Defaults to print.

    Example:
        >>> doctor = Doctor()
        >>> trainer = Trainer(model, optimizer, loss_fn, callbacks=[doctor])  # doctest: +SKIP
        >>> trainer.fit(train_loader, val_loader, epochs=5)                     # doctest: +SKIP
        >>> print(doctor.diagnosis())                                           # doctest: +SKIP
    """

    order = -50  # before GradientClipping: the doctor measures the raw gradients

    def __init__(self, sample_every=10, window=10, repair=False, thresholds=None,
                 max_repairs=4, log=print):
        super().__init__()
        if int(sample_every) < 1 or int(window) < 1:
            raise ValueError(f"Doctor: sample_every and window must be >= 1, got "
                             f"{sample_every} and {window}")
        from shendu.train.diagnosis import THRESHOLDS
        unknown = sorted(set(thresholds or {}) - set(THRESHOLDS))
        if unknown:
            raise ValueError(f"Doctor: unknown threshold(s) {unknown}; known: "
                             f"{sorted(THRESHOLDS)}")
        self.sample_every, self.window = int(sample_every), int(window)
        self.repair, self.max_repairs, self.log = bool(repair), int(max_repairs), log
        self.thresholds = {**THRESHOLDS, **(thresholds or {})}
        self._handles = []
        self.record = None
        self.clip_norm = None  # set by the clipping remedy
        self.sanitize_inputs = False  # set by the input-cleaning remedy
        self.lr_direction = None  # 'down' or 'up' once a remedy moved the learning rate
        self.treatment = None

    # --- hooks on the model -------------------------------------------------------------------
    def attach(self, model):
        """(Re-)register the forward hooks on ``model``'s activation layers and its input."""
        self.detach()
        self._weight_layers = weight_layers(model)
        self._acts = activation_layers(model)
        rec = self.record
        rec["layers"] = [name for name, _, _ in self._weight_layers]
        for name in rec["layers"]:
            rec["grad_norm"].setdefault(name, [math.nan] * len(rec["grad_steps"]))
            rec["update_ratio"].setdefault(name, [math.nan] * len(rec["grad_steps"]))
        self._fired = {}
        for name, module, kind in self._acts:
            if rec["activations"].get(name, {}).get("kind") != kind:  # new, or swapped
                rec["activations"][name] = {"kind": kind, "steps": [], "fraction": []}
            self._handles.append(module.register_forward_hook(self._activation_hook(name, kind)))
        self._handles.append(model.register_forward_pre_hook(self._input_hook))
        self._handles.append(model.register_forward_hook(self._output_hook))

    def detach(self):
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _input_hook(self, module, inputs):
        if not self._training_step or not inputs or not hasattr(inputs[0], "data"):
            return None
        x = inputs[0]._data
        if x.dtype.kind != "f" or _finite(x):
            return None
        if self.sanitize_inputs:  # the data remedy: non-finite inputs become 0
            xp = backend.xp_of(x)
            return (type(inputs[0])._wrap(xp.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)),
                    *inputs[1:])
        self._note_nonfinite("input", "the input batch")
        return None

    def _output_hook(self, module, inputs, output):
        if self._sampling and hasattr(output, "shape") and len(output.shape) >= 2:
            self.record["num_classes"] = int(output.shape[-1])

    def _activation_hook(self, name, kind):
        def hook(module, inputs, output):
            if not self._sampling:
                return None
            y = (output[0] if isinstance(output, tuple) else output)._data
            xp = backend.xp_of(y)
            if kind == "relu":
                axes = tuple(i for i in range(y.ndim) if i != (1 if y.ndim == 4 else y.ndim - 1))
                fired = (y > 0).any(axis=axes)
                seen = self._fired.get(name)
                self._fired[name] = fired if seen is None or seen.shape != fired.shape \
                    else seen | fired
            else:
                tails = ((y <= SIGMOID_TAIL) | (y >= 1 - SIGMOID_TAIL)) if kind == "sigmoid" \
                    else (xp.abs(y) >= TANH_TAIL)
                entry = self.record["activations"][name]
                entry["steps"].append(self._step)
                entry["fraction"].append(float(tails.mean()))
            return None
        return hook

    # --- callback hooks -------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self.record = {"sample_every": self.sample_every, "window": self.window,
                       "steps_per_epoch": self.params.get("steps"), "num_classes": None,
                       "loss": [], "epochs": {}, "epoch_steps": [], "layers": [],
                       "grad_steps": [], "grad_norm": {}, "update_ratio": {},
                       "activations": {}, "nonfinite": None, "repairs": []}
        self._step, self._sampling, self._training_step, self._sampled_batches = 0, False, False, 0
        self._before, self._epoch = None, 0
        self.attach(self.model)
        if self.repair:
            from shendu.train.repair import Treatment
            self.treatment = Treatment(self)

    def on_train_batch_begin(self, batch, logs=None):
        self._training_step = True
        self._sampling = self._step % self.sample_every == 0

    def on_before_optimizer_step(self, batch, logs=None):
        if self._sampling:
            self._measure_gradients()
        if self.clip_norm is not None:  # the clipping remedy, after measuring the raw gradients
            from shendu.nn.utils import clip_grad_norm_
            clip_grad_norm_(list(self.model.parameters()), self.clip_norm)

    def _measure_gradients(self):
        rec = self.record
        rec["grad_steps"].append(self._step)
        self._before = []
        for name, _, weights in self._weight_layers:
            grads = [w.grad._data for w in weights if w.grad is not None]
            norm = math.sqrt(_sum_squares(grads)) if grads else math.nan
            rec["grad_norm"][name].append(norm)
            if grads and not math.isfinite(norm):
                self._note_nonfinite(name, "gradient")
            self._before.append([w._data.copy() for w in weights])

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", math.nan))
        self.record["loss"].append(loss)
        if not math.isfinite(loss):
            self._note_nonfinite(self._nonfinite_layer(), "loss")
        if self._sampling:
            self._measure_updates()
        self._sampling = self._training_step = False
        if self.treatment is not None and self.record["nonfinite"] is not None:
            # a non-finite run cannot wait for the epoch's end
            last = {k: v[-1] for k, v in self.record["epochs"].items() if v}
            self.treatment.check(self._epoch, last, mid_epoch=True)
        self._step += 1

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            if key != "time":
                self.record["epochs"].setdefault(key, []).append(float(value))
        self.record["epoch_steps"].append(self._step)
        if self._fired:  # a dead-unit window never spans two epochs' worth of repairs
            self._close_window()
        if self.treatment is not None:
            self.treatment.check(epoch, logs or {})

    def on_train_end(self, logs=None):
        if self.treatment is not None:
            self.treatment.finish()
        self.detach()

    # --- measurements ---------------------------------------------------------------------------
    def _measure_updates(self):
        if self._before is None:  # a closure optimizer (Newton) has no before-step event
            return
        rec = self.record
        for (name, _, weights), before in zip(self._weight_layers, self._before):
            num = _sum_squares([w._data - b for w, b in zip(weights, before)])
            den = _sum_squares(before)
            rec["update_ratio"][name].append(math.sqrt(num / den) if den > 0 else math.nan)
            if not all(_finite(w._data) for w in weights):
                self._note_nonfinite(name, "weight")
        self._before = None
        self._sampled_batches += 1
        if self._sampled_batches % self.window == 0:
            self._close_window()

    def _close_window(self):
        for name, fired in self._fired.items():
            entry = self.record["activations"][name]
            entry["steps"].append(self._step)
            entry["fraction"].append(1.0 - float(fired.mean()))
        self._fired = {}

    def _nonfinite_layer(self):
        """The weight layer nearest the loss whose gradient or weight is non-finite (where a
        backward overflow starts), or None when they are all finite."""
        for name, _, weights in reversed(self._weight_layers):
            arrays = [w._data for w in weights] + [w.grad._data for w in weights
                                                  if w.grad is not None]
            if not all(_finite(a) for a in arrays):
                return name
        return None

    def _note_nonfinite(self, where, what):
        if self.record["nonfinite"] is None:
            self.record["nonfinite"] = {"step": self._step, "where": where, "what": what}

    # --- results --------------------------------------------------------------------------------
    def diagnosis(self):
        """The ``Diagnosis`` of everything recorded so far (after a repair: of the run as it
        ended, with the repairs listed)."""
        from shendu.train.diagnosis import diagnose_record
        if self.record is None:
            raise RuntimeError("Doctor.diagnosis: the doctor has not seen a run yet; pass it "
                               "to Trainer(callbacks=[doctor]) and call fit first")
        record = self.record if self.treatment is None else self.treatment.current_record()
        result = diagnose_record(record, self.thresholds)
        result.repairs = list(self.record["repairs"])
        return result

    def to_dict(self):
        """JSON-ready {'diagnosis': ..., 'record': ...} (what ``doctor.json`` holds)."""
        return {"diagnosis": self.diagnosis().to_dict(), "record": self.record,
                "thresholds": self.thresholds}


def snapshot(trainer):
    """A copy of the model's and optimizer's state (a rollback point)."""
    with autograd.no_grad():
        model = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    return {"model": model, "optimizer": trainer.optimizer.state_dict()}
