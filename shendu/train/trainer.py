"""Trainer: fit / evaluate / predict with Keras's loop order and torch's step order.

One training step is  zero_grad -> forward -> loss (+ L1/L2 penalty, N3.2.5) -> backward ->
gradient clipping (N3.2.6) -> optimizer.step. Callbacks see every stage through the hooks of
``shendu.train.callbacks.Callback``.
"""
from __future__ import annotations

import math
import time

from shendu import autograd, backend, distributed
from shendu.ops.loss import l1_penalty, l2_penalty
from shendu.optim import Newton
from shendu.tensor import Tensor
from shendu.train.callbacks import CallbackList, GradientClipping
from shendu.train.metrics import RunningMean, get_metric


class History:
    """Per-epoch logs: ``history['loss'][i]`` is epoch ``epoch[i]``'s training loss."""

    def __init__(self, history=None, epoch=None):
        self.history = {k: list(v) for k, v in (history or {}).items()}
        self.epoch = list(epoch or [])

    def append(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            # keys that appear late (e.g. val_* after a resume without validation) stay aligned
            self.history.setdefault(key, [math.nan] * (len(self.epoch) - 1)).append(value)
        for key, values in self.history.items():
            if len(values) < len(self.epoch):
                values.append(math.nan)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={sorted(self.history)})"


def _split_batch(batch, where):
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise ValueError(f"Trainer.{where}: expected each batch to be an (input, target) pair, got "
                     f"{type(batch).__name__}"
                     + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else ""))


def _batch_size(x):
    return x.shape[0] if isinstance(x, Tensor) and x.ndim > 0 else 1


class Trainer:
    """Train a model with an optimizer and a loss, calling Keras-style callbacks.

    Args:
        model: a ``shendu.nn.Module``.
        optimizer: a ``shendu.optim`` optimizer over the model's parameters.
        loss_fn: ``loss_fn(output, target) -> scalar Tensor`` (mean over the batch).
        callbacks: list of ``Callback``. Defaults to none.
        metrics: names ('accuracy', 'top5') or callables ``fn(output, target) -> float``,
            averaged over the samples of each epoch. Defaults to ('accuracy',).
        device: 'cpu' or 'cuda'; batches are moved there. Defaults to 'cpu'.
        grad_clip_norm: clip the joint gradient norm to this value. Defaults to None.
        grad_clip_value: clamp every gradient element to [-v, v]. Defaults to None.
        l1: weight of the L1 penalty l1 * sum|w|. Defaults to 0.
        l2: weight of the L2 penalty l2 * sum(w^2). Defaults to 0.
        adversarial: ``attack(model, x, y) -> x_adv`` applied to every training batch before
            the step (e.g. ``shendu.viz.PGD(eps=0.3)``: Madry et al.'s adversarial
            training; the logged training metrics are then on the attacked batches).
            Defaults to None. Concept: N6.2.
        meta: JSON values stored as ``'meta'`` in every checkpoint (what rebuilds the model and
            its data without other files, e.g. the CLI's config). Defaults to None.

    The penalties cover weight tensors only (parameters with ndim >= 2), never biases or norm
    scales, and are added to the loss that is back-propagated; the logged ``loss`` is the data
    loss alone, so it stays comparable with ``val_loss``. Concept: N3.2.5, N3.2.6.

    Example:
        >>> import shendu
        >>> from shendu import nn, optim
        >>> from shendu.data import DataLoader, TensorDataset
        >>> X, y = shendu.randn(32, 4), shendu.randint(0, 3, (32,))
        >>> model = nn.Linear(4, 3)
        >>> trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss())
        >>> history = trainer.fit(DataLoader(TensorDataset(X, y), batch_size=8), epochs=2)
        >>> sorted(history.history), history.epoch
        (['accuracy', 'loss', 'lr', 'time'], [0, 1])
    """

    def __init__(self, model, optimizer, loss_fn, callbacks=None, metrics=("accuracy",),
                 device="cpu", grad_clip_norm=None, grad_clip_value=None, l1=0.0, l2=0.0,
                 adversarial=None, meta=None):
        if l1 < 0 or l2 < 0:
            raise ValueError(f"Trainer: l1 and l2 must be >= 0, got l1={l1}, l2={l2}")
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.device = backend.normalize_device(device)
        self.metrics = [get_metric(m) for m in (metrics or ())]
        self.l1, self.l2 = float(l1), float(l2)
        if adversarial is not None and not callable(adversarial):
            raise TypeError(f"Trainer: adversarial must be a callable attack(model, x, y), got "
                            f"{type(adversarial).__name__}")
        self.adversarial = adversarial
        callbacks = list(callbacks or [])
        if grad_clip_norm is not None or grad_clip_value is not None:
            callbacks.append(GradientClipping(grad_clip_norm, grad_clip_value))
        self.callbacks = CallbackList(callbacks, trainer=self)
        self.history = History()
        self.stop_training = False
        self.train_loader = None
        self.model.to(self.device)
        self._needs_closure = isinstance(optimizer, Newton)
        self.meta = dict(meta or {})

    # --- one step ---------------------------------------------------------------------------
    def _to_device(self, x):
        return x.to(self.device) if isinstance(x, Tensor) and x.device != self.device else x

    def penalty(self):
        """l1 * sum|w| + l2 * sum(w^2) over weight tensors (ndim >= 2); None if both are 0.

        With plain SGD, l2 = weight_decay / 2 gives the same steps as ``weight_decay``.
        """
        weights = [p for p in self.model.parameters() if p.ndim >= 2 and p.requires_grad]
        if (self.l1 == 0 and self.l2 == 0) or not weights:
            return None
        terms = []
        if self.l1:
            terms.append(self.l1 * l1_penalty(weights))
        if self.l2:
            terms.append(self.l2 * l2_penalty(weights))
        return terms[0] if len(terms) == 1 else terms[0] + terms[1]

    def train_step(self, x, y, batch):
        """One optimizer step on (x, y); returns (output, data loss) detached.

        A second-order optimizer (``shendu.optim.Newton``) gets a closure returning the loss
        with its graph and differentiates it itself, so there is no backward or clipping here.
        """
        results = {}

        def objective():
            results["output"] = output = self.model(x)
            results["loss"] = loss = self.loss_fn(output, y)
            penalty = self.penalty()
            return loss if penalty is None else loss + penalty

        self.optimizer.zero_grad()
        if self._needs_closure:
            self.optimizer.step(objective)
        else:
            objective().backward()
            self.callbacks.on_before_optimizer_step(batch)
            self.optimizer.step()
        return results["output"].detach(), results["loss"].detach()

    def _update_metrics(self, running, output, y, n):
        for name, fn in self.metrics:
            running.setdefault(name, RunningMean()).update(fn(output, y), n)

    # --- fit ------------------------------------------------------------------------------
    def fit(self, train_loader, val_loader=None, epochs=1, resume_from=None, initial_epoch=0):
        """Train from ``initial_epoch`` up to (not including) ``epochs``; returns History.

        ``epochs`` is the index of the final epoch, as in Keras: a run resumed from a
        checkpoint of epoch k (0-based) continues at k + 1 and still stops at ``epochs``.
        """
        self.train_loader = train_loader
        callback_states = None
        if resume_from is not None:
            initial_epoch, callback_states = self.load_checkpoint(resume_from)
        else:
            self.history = History()
        try:
            steps = len(train_loader)
        except TypeError:
            steps = None
        self.callbacks.set_params({"epochs": epochs, "initial_epoch": initial_epoch,
                                   "steps": steps})
        self.stop_training = False
        self.callbacks.on_train_begin()
        if callback_states is not None:
            self._load_callback_states(callback_states)
        for epoch in range(initial_epoch, epochs):
            if hasattr(getattr(train_loader, "sampler", None), "set_epoch"):
                train_loader.sampler.set_epoch(epoch)  # a DistributedSampler reshuffles
            logs = self._train_epoch(train_loader, epoch)
            if val_loader is not None:
                val_logs = self.evaluate(val_loader)
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
            logs["time"] = time.perf_counter() - self._epoch_start
            self.history.append(epoch, logs)
            self.callbacks.on_epoch_end(epoch, logs)
            if distributed.any_rank(self.stop_training):  # ranks stop together or not at all
                break
        self.callbacks.on_train_end()
        return self.history

    def _train_epoch(self, loader, epoch):
        self._epoch_start = time.perf_counter()
        lr = self.optimizer.param_groups[0]["lr"]
        self.callbacks.on_epoch_begin(epoch)
        self.model.train()
        loss_mean, running = RunningMean(), {}
        for batch, data in enumerate(loader):
            self.callbacks.on_train_batch_begin(batch)
            x, y = _split_batch(data, "fit")
            x, y = self._to_device(x), self._to_device(y)
            if self.adversarial is not None:
                x = self.adversarial(self.model, x, y)
            output, loss = self.train_step(x, y, batch)
            n = _batch_size(x)
            loss_value = float(loss.item())
            loss_mean.update(loss_value, n)
            self._update_metrics(running, output, y, n)
            self.callbacks.on_train_batch_end(batch, {"batch": batch, "size": n,
                                                      "loss": loss_value})
            if distributed.any_rank(self.stop_training):
                self.stop_training = True
                break
        self.model.eval()
        logs = {"loss": loss_mean.value}
        logs.update({name: m.value for name, m in running.items()})
        logs = distributed.average_scalars(logs)  # each rank saw its share of the samples
        logs["lr"] = float(lr)
        return logs

    # --- evaluate / predict -------------------------------------------------------------------
    def evaluate(self, loader):
        """Mean loss and metrics over ``loader`` in eval mode, under no_grad.

        Returns a dict like {'loss': ..., 'accuracy': ...}; the model's train/eval mode is
        restored afterwards.
        """
        was_training = self.model.training
        self.model.eval()
        self.callbacks.on_test_begin()
        loss_mean, running = RunningMean(), {}
        with autograd.no_grad():
            for batch, data in enumerate(loader):
                self.callbacks.on_test_batch_begin(batch)
                x, y = _split_batch(data, "evaluate")
                x, y = self._to_device(x), self._to_device(y)
                output = self.model(x)
                n = _batch_size(x)
                loss_value = float(self.loss_fn(output, y).item())
                loss_mean.update(loss_value, n)
                self._update_metrics(running, output, y, n)
                self.callbacks.on_test_batch_end(batch, {"batch": batch, "size": n,
                                                         "loss": loss_value})
        logs = {"loss": loss_mean.value}
        logs.update({name: m.value for name, m in running.items()})
        self.callbacks.on_test_end(logs)
        self.model.train(was_training)
        return logs

    def predict(self, data, batch_size=256):
        """Concatenated model outputs, in eval mode under no_grad.

        ``data`` is a Tensor (split into batches of ``batch_size`` along dim 0) or an iterable
        of batches, each an input Tensor or an (input, target) pair whose target is ignored.
        """
        from shendu.ops.shape import cat
        if isinstance(data, Tensor):
            if data.ndim == 0:
                raise ValueError("Trainer.predict: expected a batch tensor (N, ...), got a "
                                 "0-d tensor")
            data = [data[i:i + batch_size] for i in range(0, data.shape[0], batch_size)]
        was_training = self.model.training
        self.model.eval()
        self.callbacks.on_predict_begin()
        outputs = []
        with autograd.no_grad():
            for batch, x in enumerate(data):
                if isinstance(x, (tuple, list)):
                    x = x[0]
                self.callbacks.on_predict_batch_begin(batch)
                outputs.append(self.model(self._to_device(x)).detach())
                self.callbacks.on_predict_batch_end(batch)
        self.callbacks.on_predict_end()
        self.model.train(was_training)
        if not outputs:
            raise ValueError("Trainer.predict: got no batches")
        return cat(outputs, 0)

    # --- checkpoints ----------------------------------------------------------------------------
    def _generators(self):
        """The RNG streams a resumed run must continue: the default CPU generator, the
        training loader's own generator if it has one, and those of its dataset (random
        augmentations: data0, data1, ...)."""
        gens = {"default": backend.default_generator("cpu")}
        own = getattr(self.train_loader, "generator", None)
        if own is not None and own is not gens["default"]:
            gens["loader"] = own
        seen = {id(g) for g in gens.values()}
        data = [g for g in _dataset_generators(getattr(self.train_loader, "dataset", None))
                if id(g) not in seen]
        gens.update((f"data{i}", gen) for i, gen in enumerate(data))
        return gens

    def checkpoint(self, epoch):
        """The resumable state after 0-based ``epoch``: a nested dict for ``shendu.save``."""
        states = {}
        for i, cb in enumerate(self.callbacks):
            if hasattr(cb, "state_dict"):
                states[f"{i}:{type(cb).__name__}"] = cb.state_dict()
        state = {"model": self._bare_model().state_dict(),
                 "optimizer": self.optimizer.state_dict(), "epoch": int(epoch),
                 "history": {"history": self.history.history, "epoch": self.history.epoch},
                 "rng": {k: g.get_state() for k, g in self._generators().items()},
                 "callbacks": states}
        if self.meta:
            state["meta"] = self.meta
        return state

    def _bare_model(self):
        """The model without its DistributedDataParallel wrapper, whose state_dict loads into
        the same architecture in a single process."""
        wrapped = isinstance(self.model, distributed.DistributedDataParallel)
        return self.model.module if wrapped else self.model

    def save_checkpoint(self, path, epoch):
        from shendu.serialization import save
        save(self.checkpoint(epoch), path)

    def load_checkpoint(self, path):
        """Restore model, optimizer, history and RNG states from ``path``.

        Returns (next epoch, callback states); callback states are applied by ``fit`` after
        ``on_train_begin`` (which resets them).
        """
        from shendu.serialization import load
        state = load(path)
        for key in ("model", "optimizer", "epoch", "history", "rng"):
            if key not in state:
                raise ValueError(f"Trainer.load_checkpoint: {path!r} is not a Trainer checkpoint "
                                 f"(missing {key!r}; has {sorted(state)})")
        self._bare_model().load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.history = History(state["history"]["history"], state["history"]["epoch"])
        gens = self._generators()
        for name, gen_state in state["rng"].items():
            if name not in gens:
                raise ValueError(f"Trainer.load_checkpoint: the checkpoint holds the state of a "
                                 f"{name!r} generator but the training loader has none")
            gens[name].set_state(gen_state)
        return int(state["epoch"]) + 1, state.get("callbacks", {})

    def _load_callback_states(self, states):
        for i, cb in enumerate(self.callbacks):
            key = f"{i}:{type(cb).__name__}"
            if key in states and hasattr(cb, "load_state_dict"):
                cb.load_state_dict(states[key])


def _dataset_generators(dataset):
    """Every shendu.Generator reachable from ``dataset`` through the attributes datasets and
    transforms are built from (Subset.dataset, ConcatDataset.datasets, .transform,
    Compose.transforms, RandomCrop.generator, ...), in a fixed order."""
    found, stack, visited = [], [dataset], set()
    while stack:
        obj = stack.pop(0)
        if obj is None or id(obj) in visited:
            continue
        visited.add(id(obj))
        if isinstance(obj, backend.Generator):
            found.append(obj)
            continue
        for name in ("dataset", "datasets", "transform", "transforms", "generator"):
            value = getattr(obj, name, None)
            stack.extend(value if isinstance(value, (list, tuple)) else [value])
    return found
