"""Training callbacks: the Keras protocol on top of ``shendu.train.Trainer``.

A callback overrides any of the no-op hooks below; ``logs`` is a plain dict of floats
(validation entries carry the ``val_`` prefix). A callback stops training by setting
``self.trainer.stop_training = True``; nothing is raised. Concept: N3.2.6 (early stopping,
gradient clipping).
"""
from __future__ import annotations

import math
import os
import sys
import warnings


class Callback:
    """Base class: every hook is a no-op. ``self.trainer``, ``self.model`` and ``self.params``
    (epochs, initial_epoch, steps) are set by the Trainer before ``on_train_begin``.

    ``order`` sorts callbacks (stable, ascending) so that savers run after the callbacks whose
    state they save; callbacks with ``state_dict``/``load_state_dict`` are checkpointed.
    ``rank_zero_only`` callbacks (files, progress output) run only on rank 0 of a distributed
    job (``shendu.distributed``); the others run on every rank.
    """

    order = 0
    rank_zero_only = False

    def __init__(self):
        self.trainer = None
        self.params = {}

    @property
    def model(self):
        return None if self.trainer is None else self.trainer.model

    def set_trainer(self, trainer):
        self.trainer = trainer

    def set_params(self, params):
        self.params = dict(params)

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass
    def on_before_optimizer_step(self, batch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass


_HOOKS = [name for name in vars(Callback) if name.startswith("on_")]


class CallbackList:
    """Fans every hook call out to its callbacks, sorted by ``order``."""

    def __init__(self, callbacks=None, trainer=None, params=None):
        callbacks = list(callbacks or [])
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"CallbackList: expected Callback instances, got "
                                f"{type(cb).__name__}")
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)
        from shendu.distributed import get_rank
        self._active = [cb for cb in self.callbacks if not cb.rank_zero_only or get_rank() == 0]
        if trainer is not None:
            self.set_trainer(trainer)
        if params is not None:
            self.set_params(params)

    def set_trainer(self, trainer):
        for cb in self.callbacks:
            cb.set_trainer(trainer)

    def set_params(self, params):
        for cb in self.callbacks:
            cb.set_params(params)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self):
        return len(self.callbacks)

    def __getattr__(self, name):
        if name not in _HOOKS:
            raise AttributeError(f"CallbackList has no attribute {name!r}")

        def fan_out(*args, **kwargs):
            for cb in self._active:
                getattr(cb, name)(*args, **kwargs)
        return fan_out


def _resolve_mode(owner, monitor, mode):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    if "loss" in monitor:
        return "min"
    raise ValueError(f"{owner}: mode='auto' only infers 'min' for a loss key; cannot tell the "
                     f"direction of monitor={monitor!r}: pass mode='max' or mode='min'")


class MonitorCallback(Callback):
    """Shared 'did the monitored value improve?' logic (min_delta-aware, min or max mode)."""

    def __init__(self, monitor="val_loss", mode="auto", min_delta=0.0):
        super().__init__()
        self.monitor = monitor
        self.mode = _resolve_mode(type(self).__name__, monitor, mode)
        self.min_delta = abs(float(min_delta))
        self.best = None

    def _is_improvement(self, current, reference):
        if reference is None:
            return True
        if self.mode == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta

    def _monitor_value(self, logs):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"{type(self).__name__}: monitored key {self.monitor!r} is not in the "
                          f"logs; available keys: {', '.join(sorted(logs or {})) or 'none'}",
                          RuntimeWarning, stacklevel=3)
        return value


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class EarlyStopping(MonitorCallback):
    """Stop training when ``monitor`` has not improved for ``patience`` epochs (N3.2.6).

    Args:
        monitor: logs key to watch. Defaults to 'val_loss'.
        min_delta: smallest change that counts as an improvement. Defaults to 0.
        patience: epochs without improvement before stopping. Defaults to 0.
        mode: 'min', 'max' or 'auto' ('auto' means 'min' for keys containing 'loss' and is
            an error otherwise). Defaults to 'auto'.
        baseline: training stops unless the value beats this within ``patience`` epochs.
            Defaults to None.
        restore_best_weights: load the best epoch's weights when training ends. Defaults to
            False.
        start_from_epoch: epochs to wait before watching (a warm-up). Defaults to 0.

    Attributes:
        stopped_epoch: the 0-based epoch at which training was stopped (0 if it was not).
        best_epoch: the 0-based epoch with the best monitored value.
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta)
        if patience < 0 or start_from_epoch < 0:
            raise ValueError(f"EarlyStopping: patience and start_from_epoch must be >= 0, got "
                             f"{patience} and {start_from_epoch}")
        self.patience = patience
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_epoch = 0
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        current = self._monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = _snapshot(self.model)  # a run that never improves still restores
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = float(current), epoch
            if self.restore_best_weights:
                self.best_weights = _snapshot(self.model)
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.trainer.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)

    def state_dict(self):
        state = {"wait": self.wait, "best": self.best, "best_epoch": self.best_epoch}
        if self.best_weights is not None:
            state["best_weights"] = self.best_weights
        return state

    def load_state_dict(self, state):
        self.wait, self.best, self.best_epoch = state["wait"], state["best"], state["best_epoch"]
        self.best_weights = state.get("best_weights")


class ModelCheckpoint(MonitorCallback):
    """Save a resumable checkpoint (model, optimizer, epoch, history, RNG states) each epoch.

    The file is written atomically by ``shendu.save`` and is what ``Trainer.fit(resume_from=)``
    reads. ``path`` may hold ``{epoch}`` (1-based) and logs keys, e.g. 'ckpt-{epoch:02d}.st'.

    Args:
        path: destination file.
        monitor: logs key deciding 'best' when ``save_best_only``. Defaults to 'val_loss'.
        mode: 'min', 'max' or 'auto' (as EarlyStopping). Defaults to 'auto'.
        save_best_only: write only when ``monitor`` improves. Defaults to False.
    """

    order = 100  # after the callbacks whose state (scheduler, early stopping) it saves
    rank_zero_only = True

    def __init__(self, path, monitor="val_loss", mode="auto", save_best_only=False):
        super().__init__(monitor, mode)
        self.path = os.fspath(path)
        self.save_best_only = save_best_only
        self.last_saved = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            current = self._monitor_value(logs)
            if current is None or not self._is_improvement(current, self.best):
                return
            self.best = float(current)
        path = self.path.format(epoch=epoch + 1, **logs)
        self.trainer.save_checkpoint(path, epoch)
        self.last_saved = path

    def state_dict(self):
        return {"best": self.best}

    def load_state_dict(self, state):
        self.best = state["best"]


class GradientClipping(Callback):
    """Clip gradients after backward, before the optimizer step (N3.2.6).

    Uses ``shendu.nn.utils.clip_grad_norm_`` (joint L2 norm <= max_norm) and/or
    ``clip_grad_value_`` (every element into [-max_value, max_value]); the Trainer's
    ``grad_clip_norm`` / ``grad_clip_value`` arguments install this callback.
    """

    def __init__(self, max_norm=None, max_value=None):
        super().__init__()
        if max_norm is None and max_value is None:
            raise ValueError("GradientClipping: give max_norm and/or max_value")
        for name, v in (("max_norm", max_norm), ("max_value", max_value)):
            if v is not None and not v > 0:
                raise ValueError(f"GradientClipping: {name} must be > 0, got {v!r}")
        self.max_norm, self.max_value = max_norm, max_value
        self.last_norm = None

    def on_before_optimizer_step(self, batch, logs=None):
        from shendu.nn.utils import clip_grad_norm_, clip_grad_value_
        params = list(self.model.parameters())
        if self.max_norm is not None:
            self.last_norm = float(clip_grad_norm_(params, self.max_norm))
        if self.max_value is not None:
            clip_grad_value_(params, self.max_value)


class LRScheduler(Callback):
    """Step a torch-style learning-rate scheduler once per epoch or once per batch.

    ``ReduceLROnPlateau`` is stepped with the monitored value (``monitor`` defaults to
    'val_loss' for it); other schedulers get ``step()`` unless ``monitor`` is given.
    """

    def __init__(self, scheduler, per="epoch", monitor=None):
        super().__init__()
        if per not in ("epoch", "batch"):
            raise ValueError(f"LRScheduler: per must be 'epoch' or 'batch', got {per!r}")
        self.scheduler, self.per = scheduler, per
        if monitor is None and type(scheduler).__name__ == "ReduceLROnPlateau":
            monitor = "val_loss"
        if monitor is not None and per == "batch":
            raise ValueError("LRScheduler: a monitored value is only available per epoch; "
                             "use per='epoch' with monitor")
        self.monitor = monitor

    def on_train_batch_end(self, batch, logs=None):
        if self.per == "batch":
            self.scheduler.step()

    def on_epoch_end(self, epoch, logs=None):
        if self.per != "epoch":
            return
        if self.monitor is None:
            self.scheduler.step()
            return
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"LRScheduler: monitored key {self.monitor!r} is not in the logs; "
                          f"available keys: {', '.join(sorted(logs or {}))}; not stepping",
                          RuntimeWarning, stacklevel=2)
            return
        self.scheduler.step(value)

    def state_dict(self):
        return self.scheduler.state_dict()

    def load_state_dict(self, state):
        self.scheduler.load_state_dict(state)


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch loss is NaN or infinite, naming the epoch and step."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self.message = (f"TerminateOnNaN: loss is {loss} at epoch {self.epoch} "
                            f"(0-based), step {batch}; stopping training")
            print(self.message, file=sys.stderr)
            self.trainer.stop_training = True
