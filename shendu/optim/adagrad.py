"""Adagrad and Adadelta: per-coordinate steps from accumulated squared gradients (torch.optim).

Concept: N3.2.3 (adaptive learning rates). Both follow torch's single-tensor algorithms
operation for operation; ``foreach`` is accepted for torch scripts and changes nothing
(shendu has one implementation).
"""
from __future__ import annotations

from shendu import backend
from shendu.optim import fused
from shendu.optim.optimizer import NON_NEGATIVE, Optimizer, _finite_number
from shendu.tensor import Tensor


def _decayed(param, grad, group):
    """g = -g if maximize; g = g + weight_decay * p (coupled L2, N3.2.5)."""
    if group["maximize"]:
        grad = -grad
    weight_decay = float(group["weight_decay"])
    if weight_decay != 0:
        grad = grad + param * weight_decay
    return grad


class Adagrad(Optimizer):
    """Adagrad: divide by the root of the running sum of squared gradients.

    Update per parameter p with gradient g at step t (torch's formulation):
        g = -g if maximize;  g = g + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g^2;  p = p - clr * g / (sqrt(s) + eps)

    Args:
        params: iterable of Tensors or of param-group dicts.
        lr: learning rate. Default: 1e-2.
        lr_decay: learning-rate decay per step. Default: 0.
        weight_decay: L2 penalty added to the gradient. Default: 0.
        initial_accumulator_value: starting value of the sum s. Default: 0.
        eps: added to the denominator. Default: 1e-10.
        foreach: accepted for torch compatibility; no effect.
        maximize: ascend the objective instead. Default: False.

    Shape:
        state ``sum`` matches the parameter; it exists from construction, as in torch.

    Concept: N3.2.3. Duchi, Hazan & Singer 2011.
    """

    hyper_rules = {"lr": ("learning rate", NON_NEGATIVE),
                   "lr_decay": ("lr_decay value", NON_NEGATIVE),
                   "weight_decay": ("weight_decay value", NON_NEGATIVE),
                   "initial_accumulator_value": ("initial_accumulator_value", NON_NEGATIVE),
                   "eps": ("epsilon value", NON_NEGATIVE)}

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, foreach=None, *, maximize=False):
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                        maximize=maximize)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p._data, group, self.state[p])

    @staticmethod
    def _init_state(param, group, state):
        state["step"] = 0
        state["sum"] = Tensor._wrap(backend.xp_of(param).full_like(
            param, group["initial_accumulator_value"]))

    def _update(self, param, grad, group, state):
        xp = backend.xp_of(param)
        if not state:
            self._init_state(param, group, state)
        state["step"] += 1
        grad = _decayed(param, grad, group)
        clr = float(group["lr"]) / (1 + (state["step"] - 1) * float(group["lr_decay"]))
        state_sum = state["sum"]._data
        state_sum += grad * grad
        std = xp.sqrt(state_sum)
        std += float(group["eps"])
        param -= clr * grad / std


class Adadelta(Optimizer):
    """Adadelta: steps scaled by the ratio of running RMS of updates to RMS of gradients.

    Update per parameter p with gradient g (torch's formulation):
        g = -g if maximize;  g = g + weight_decay * p
        v = rho * v + (1 - rho) * g^2
        delta = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta^2;  p = p - lr * delta

    Args:
        params: iterable of Tensors or of param-group dicts.
        lr: scale of the update. Default: 1.0.
        rho: decay of both running averages. Default: 0.9.
        eps: added inside both roots. Default: 1e-6.
        weight_decay: L2 penalty added to the gradient. Default: 0.
        foreach: accepted for torch compatibility; no effect.
        maximize: ascend the objective instead. Default: False.

    Shape:
        state ``square_avg`` (v) and ``acc_delta`` (u) match the parameter.

    Concept: N3.2.3. Zeiler 2012.
    """

    hyper_rules = {"lr": ("learning rate", NON_NEGATIVE),
                   "rho": ("rho value", (lambda v: _finite_number(v) and 0 <= v <= 1,
                                         "a number in [0, 1]")),
                   "eps": ("epsilon value", NON_NEGATIVE),
                   "weight_decay": ("weight_decay value", NON_NEGATIVE)}

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *,
                 maximize=False):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _update(self, param, grad, group, state):
        xp = backend.xp_of(param)
        rho, eps = float(group["rho"]), float(group["eps"])
        if not state:
            state["step"] = 0
            state["square_avg"] = Tensor._wrap(xp.zeros_like(param))
            state["acc_delta"] = Tensor._wrap(xp.zeros_like(param))
        state["step"] += 1
        square_avg, acc_delta = state["square_avg"]._data, state["acc_delta"]._data
        if fused.usable(param, grad, square_avg, acc_delta):
            fused.adadelta_(param, grad, square_avg, acc_delta, lr=float(group["lr"]), rho=rho,
                            eps=eps, weight_decay=float(group["weight_decay"]),
                            maximize=group["maximize"])
            return
        grad = _decayed(param, grad, group)
        square_avg *= rho
        square_avg += (1 - rho) * grad * grad
        std = xp.sqrt(square_avg + eps)
        delta = xp.sqrt(acc_delta + eps)
        delta /= std
        delta *= grad
        acc_delta *= rho
        acc_delta += (1 - rho) * delta * delta
        param -= float(group["lr"]) * delta
