"""Learning-rate schedules (torch.optim.lr_scheduler): the learning rate as a hyper-parameter
that changes during training (Concept: N2.1, N3.2.3).

Each scheduler writes ``group['lr']`` of its optimizer's param groups; call ``scheduler.step()``
after ``optimizer.step()``. The recurrences are torch's own ("chainable" forms, each lr computed
from the previous one), so the sequences agree with torch to the last bits.
"""
from __future__ import annotations

import math
from collections import Counter

from shendu.optim.optimizer import (NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE,
                                    POSITIVE_INT, Optimizer, check_value)


class LRScheduler:
    """Base class: sets ``group['initial_lr']``, then ``step()`` advances ``last_epoch``.

    Subclasses implement ``get_lr()``, the list of new learning rates (one per param group)
    at ``self.last_epoch``. Construction performs the first step (last_epoch -1 -> 0).

    Args:
        optimizer: the wrapped Optimizer.
        last_epoch: index of the last epoch when resuming; -1 starts fresh. Default: -1.

    Concept: N2.1 (learning rate as a hyper-parameter).
    """

    def __init__(self, optimizer, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: {type(optimizer).__name__} is not an "
                            "Optimizer")
        if not (isinstance(last_epoch, int) and last_epoch >= -1):
            raise ValueError(f"{type(self).__name__}: Invalid last_epoch: {last_epoch!r} "
                             "(expected an integer >= -1)")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"{type(self).__name__}: param 'initial_lr' is not specified "
                                   f"in param_groups[{i}] when resuming with last_epoch="
                                   f"{last_epoch}; load the optimizer's state first")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def _check_args(self, **rules):
        """Check each constructor argument, given as ``name=(value, rule)`` (rules from
        shendu.optim.optimizer; a list or tuple value is checked item by item), so a zero
        step_size or a string gamma fails here instead of as a ZeroDivisionError later."""
        for key, (value, rule) in rules.items():
            for item in value if isinstance(value, (list, tuple)) else (value,):
                check_value(type(self).__name__, key, item, rule)

    def get_lr(self) -> list:
        raise NotImplementedError(f"{type(self).__name__} must implement get_lr(), the "
                                  "learning rate of every param group at this step")

    def get_last_lr(self) -> list:
        """The learning rates set by the latest ``step()``, one per param group."""
        return self._last_lr

    def step(self):
        """Advance one epoch (or iteration) and write the new learning rates."""
        self._step_count += 1
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        """Every attribute but the optimizer (torch's format)."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict):
        self.__dict__.update(state_dict)

    def _group_lrs(self):
        return [group["lr"] for group in self.optimizer.param_groups]


class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` epochs: lr = base_lr * gamma^(t // s).

    Args: optimizer; step_size (int); gamma (default 0.1); last_epoch (default -1).
    Concept: N2.1.
    """

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self._check_args(step_size=(step_size, POSITIVE_INT), gamma=(gamma, POSITIVE))
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._group_lrs()
        return [lr * self.gamma for lr in self._group_lrs()]

    def _get_closed_form_lr(self):  # SequentialLR restarts a schedule with these
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the lr by ``gamma`` at each epoch listed in ``milestones``.

    lr = base_lr * gamma^(number of milestones <= t).
    Args: optimizer; milestones (iterable of ints); gamma (default 0.1); last_epoch.
    Concept: N2.1.
    """

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self._check_args(milestones=(list(milestones), NON_NEGATIVE_INT), gamma=(gamma, POSITIVE))
        self.milestones = Counter(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch not in self.milestones:
            return self._group_lrs()
        factor = self.gamma ** self.milestones[self.last_epoch]
        return [lr * factor for lr in self._group_lrs()]

    def _get_closed_form_lr(self):
        passed = sum(n for m, n in self.milestones.items() if m <= self.last_epoch)
        return [base * self.gamma ** passed for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiply the lr by ``gamma`` every epoch: lr = base_lr * gamma^t.

    Args: optimizer; gamma (float); last_epoch (default -1).
    Concept: N2.1.
    """

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self._check_args(gamma=(gamma, POSITIVE))
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self._is_initial:
            return self._group_lrs()
        return [lr * self.gamma for lr in self._group_lrs()]

    def _get_closed_form_lr(self):
        return [base * self.gamma ** self.last_epoch for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing (SGDR without restarts), computed recursively as torch does.

    lr_t = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2, continuing
    periodically past T_max.
    Args: optimizer; T_max (int); eta_min (default 0.0); last_epoch (default -1).
    Concept: N2.1. Loshchilov & Hutter 2017.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):  # noqa: N803 - torch's
        self._check_args(T_max=(T_max, POSITIVE_INT), eta_min=(eta_min, NON_NEGATIVE))
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t, t_max, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._group_lrs()
        if self._step_count == 1 and t > 0:
            return [eta_min + (base - eta_min) * (1 + math.cos(t * math.pi / t_max)) / 2
                    for base in self.base_lrs]
        if (t - 1 - t_max) % (2 * t_max) == 0:
            return [lr + (base - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
                    for base, lr in zip(self.base_lrs, self._group_lrs())]
        return [(1 + math.cos(math.pi * t / t_max)) / (1 + math.cos(math.pi * (t - 1) / t_max))
                * (lr - eta_min) + eta_min for lr in self._group_lrs()]

    def _get_closed_form_lr(self):
        return [self.eta_min + (base - self.eta_min) *
                (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base in self.base_lrs]


class LinearLR(LRScheduler):
    """Scale the lr linearly from ``start_factor`` to ``end_factor`` over ``total_iters``.

    lr = base_lr * (start + (end - start) * min(t, total_iters) / total_iters).
    Args: optimizer; start_factor (default 1/3); end_factor (default 1.0); total_iters
    (default 5); last_epoch (default -1).
    Concept: N2.1 (warm-up).
    """

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5,
                 last_epoch=-1):
        self._check_args(start_factor=(start_factor, NON_NEGATIVE), end_factor=(end_factor,
                         NON_NEGATIVE), total_iters=(total_iters, POSITIVE_INT))
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError(f"LinearLR: starting multiplicative factor expected to be greater "
                             f"than 0 and less or equal to 1, got {start_factor}")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError(f"LinearLR: ending multiplicative factor expected to be between 0 "
                             f"and 1, got {end_factor}")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        start, end, t = self.start_factor, self.end_factor, self.last_epoch
        if t == 0:
            return [lr * start for lr in self._group_lrs()]
        if self._is_initial or t > self.total_iters:
            return self._group_lrs()
        factor = 1.0 + (end - start) / (self.total_iters * start + (t - 1) * (end - start))
        return [lr * factor for lr in self._group_lrs()]

    def _get_closed_form_lr(self):
        progress = min(self.total_iters, self.last_epoch) / self.total_iters
        return [base * (self.start_factor + (self.end_factor - self.start_factor) * progress)
                for base in self.base_lrs]


class OneCycleLR(LRScheduler):
    """The 1cycle policy: lr warms up to ``max_lr`` then anneals far below the start.

    Two phases (three with ``three_phase``), each annealed by cosine (default) or linearly:
        initial_lr = max_lr / div_factor -> max_lr over pct_start * total_steps, then
        max_lr -> min_lr = initial_lr / final_div_factor until total_steps - 1.
    With ``cycle_momentum`` the momentum (SGD's ``momentum`` or Adam's beta1) moves the opposite
    way, max_momentum -> base_momentum -> max_momentum. Step it once per batch.

    Args:
        optimizer; max_lr (float or one per group); total_steps, or epochs and steps_per_epoch;
        pct_start (default 0.3); anneal_strategy 'cos' | 'linear' (default 'cos');
        cycle_momentum (default True); base_momentum (0.85); max_momentum (0.95);
        div_factor (25.0); final_div_factor (1e4); three_phase (False); last_epoch (-1).

    Concept: N2.1. Smith & Topin 2018, "Super-Convergence".
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start=0.3, anneal_strategy="cos", cycle_momentum=True,
                 base_momentum=0.85, max_momentum=0.95, div_factor=25.0, final_div_factor=1e4,
                 three_phase=False, last_epoch=-1):
        self._check_args(max_lr=(max_lr, NON_NEGATIVE), base_momentum=(base_momentum,
                         NON_NEGATIVE), max_momentum=(max_momentum, NON_NEGATIVE),
                         div_factor=(div_factor, POSITIVE),
                         final_div_factor=(final_div_factor, POSITIVE))
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"OneCycleLR: {type(optimizer).__name__} is not an Optimizer")
        self.total_steps = _total_steps(total_steps, epochs, steps_per_epoch)
        if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
            raise ValueError(f"OneCycleLR: expected float between 0 and 1 pct_start, but got "
                             f"{pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be one of 'cos' or 'linear', "
                             f"instead got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        up = float(pct_start * self.total_steps) - 1
        if three_phase:
            self._schedule_phases = [
                (up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (float(2 * pct_start * self.total_steps) - 2, "max_lr", "initial_lr",
                 "base_momentum", "max_momentum"),
                (self.total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum")]
        else:
            self._schedule_phases = [
                (up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (self.total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")]
        groups = optimizer.param_groups
        max_lrs = _per_group("max_lr", max_lr, groups)
        if last_epoch == -1:
            for group, top in zip(groups, max_lrs):
                group["initial_lr"] = top / div_factor
                group["max_lr"] = top
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError(f"OneCycleLR: {type(optimizer).__name__} has neither momentum "
                                 "nor betas; pass cycle_momentum=False")
            self.use_beta1 = "betas" in optimizer.defaults
            tops = _per_group("max_momentum", max_momentum, groups)
            bases = _per_group("base_momentum", base_momentum, groups)
            if last_epoch == -1:
                for group, top, base in zip(groups, tops, bases):
                    self._set_momentum(group, top)
                    group["max_momentum"] = top
                    group["base_momentum"] = base
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group, value):
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self):
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {step} times; the specified number of "
                             f"total steps is {self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, (end_step, lr0, lr1, m0, m1) in enumerate(self._schedule_phases):
                if step <= end_step or i == len(self._schedule_phases) - 1:
                    pct = (step - start_step) / (end_step - start_step)
                    lrs.append(self._anneal(group[lr0], group[lr1], pct))
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(group[m0], group[m1], pct))
                    break
                start_step = end_step
        return lrs


def _total_steps(total_steps, epochs, steps_per_epoch):
    if total_steps is not None:
        if not isinstance(total_steps, int) or total_steps <= 0:
            raise ValueError(f"OneCycleLR: expected positive integer total_steps, but got "
                             f"{total_steps}")
        return total_steps
    if epochs is not None and steps_per_epoch is not None:
        for name, value in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"OneCycleLR: expected positive integer {name}, but got "
                                 f"{value}")
        return epochs * steps_per_epoch
    raise ValueError("OneCycleLR: you must define either total_steps OR (epochs AND "
                     "steps_per_epoch)")


def _per_group(name, value, groups):
    if isinstance(value, (list, tuple)):
        if len(value) != len(groups):
            raise ValueError(f"{name} must have the same length as optimizer.param_groups: "
                             f"{name} has {len(value)} values, param_groups has {len(groups)}")
        return list(value)
    return [value] * len(groups)


class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by ``factor`` once a metric has stopped improving for ``patience`` epochs.

    Improvement (mode 'min', threshold_mode 'rel'): metric < best * (1 - threshold); 'abs':
    metric < best - threshold; mode 'max' mirrors both. After a reduction, ``cooldown`` epochs
    pass before bad epochs count again. lr never goes below ``min_lr``, and a change smaller
    than ``eps`` is skipped. Call ``step(metric)`` once per epoch.

    Args:
        optimizer; mode 'min' | 'max' (default 'min'); factor (0.1); patience (10);
        threshold (1e-4); threshold_mode 'rel' | 'abs' ('rel'); cooldown (0);
        min_lr (float or one per group, 0); eps (1e-8).

    Concept: N2.1 (learning rate as a hyper-parameter), N3.2.6 (training tricks).
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8):
        self._check_args(factor=(factor, NON_NEGATIVE), patience=(patience, NON_NEGATIVE_INT),
                         threshold=(threshold, NON_NEGATIVE), cooldown=(cooldown,
                         NON_NEGATIVE_INT), min_lr=(min_lr, NON_NEGATIVE), eps=(eps, NON_NEGATIVE))
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor should be < 1.0, got {factor}")
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"ReduceLROnPlateau: {type(optimizer).__name__} is not an Optimizer")
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode {mode!r} is unknown; expected 'min' or "
                             "'max'")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: threshold mode {threshold_mode!r} is unknown; "
                             "expected 'rel' or 'abs'")
        self.optimizer = optimizer
        self.factor = factor
        self.min_lrs = _per_group("min_lr", min_lr, optimizer.param_groups)
        self.default_min_lr = None if isinstance(min_lr, (list, tuple)) else min_lr
        self.patience, self.cooldown, self.eps = patience, cooldown, eps
        self.mode, self.threshold, self.threshold_mode = mode, threshold, threshold_mode
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.last_epoch = 0
        self._last_lr = self._group_lrs()
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def _match_groups(self):
        groups = self.optimizer.param_groups
        if len(groups) == len(self.min_lrs):
            return
        if self.default_min_lr is None:
            raise RuntimeError(f"ReduceLROnPlateau: the optimizer has {len(groups)} param groups "
                               f"but min_lr was given for {len(self.min_lrs)}; update min_lrs "
                               "after adding a param group")
        self.min_lrs = [self.default_min_lr] * len(groups)

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def is_better(self, current, best) -> bool:
        if self.mode == "min":
            if self.threshold_mode == "rel":
                return current < best * (1.0 - self.threshold)
            return current < best - self.threshold
        if self.threshold_mode == "rel":
            return current > best * (self.threshold + 1.0)
        return current > best + self.threshold

    def step(self, metrics):  # noqa: D401 - torch's signature takes the metric
        """Record this epoch's metric and reduce the lr when it has plateaued."""
        current = float(metrics)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs during cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._match_groups()
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                old_lr = float(group["lr"])
                new_lr = max(old_lr * self.factor, min_lr)
                if old_lr - new_lr > self.eps:
                    group["lr"] = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._group_lrs()


# torch's path for these is torch.optim.lr_scheduler too; they live in their own module
from shendu.optim.lr_scheduler_extra import (CosineAnnealingWarmRestarts, CyclicLR,  # noqa: E402
                                             LambdaLR, SequentialLR)
