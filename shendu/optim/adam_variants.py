"""Adamax, NAdam and RAdam: Adam's moment estimates with other normalisations (torch.optim).

Concept: N3.2.3 (Adam and its variants). Each follows torch's single-tensor algorithm
operation for operation; ``foreach`` is accepted for torch scripts and changes nothing.
"""
from __future__ import annotations

from shendu import backend
from shendu.optim.optimizer import BETAS, NON_NEGATIVE, Optimizer, lerp_
from shendu.tensor import Tensor

_np = backend.namespace("cpu")


# checked by Optimizer.__init__ and add_param_group (optimizer.check_hyper_group)
ADAM_LIKE_RULES = {"lr": ("learning rate", NON_NEGATIVE), "eps": ("epsilon value", NON_NEGATIVE),
                   "betas": ("betas", BETAS),
                   "weight_decay": ("weight_decay value", NON_NEGATIVE)}


def _grad_with_decay(param, grad, group, decoupled):
    """Maximize flips g; weight decay is coupled (g += wd * p) or decoupled (p *= 1 - lr wd)."""
    if group["maximize"]:
        grad = -grad
    weight_decay = float(group["weight_decay"])
    if weight_decay != 0:
        if decoupled:
            param *= 1 - float(group["lr"]) * weight_decay
        else:
            grad = grad + param * weight_decay
    return grad


def _moments(param, grad, state, beta1, beta2, second="exp_avg_sq"):
    xp = backend.xp_of(param)
    if "exp_avg" not in state:
        state["exp_avg"] = Tensor._wrap(xp.zeros_like(param))
        state[second] = Tensor._wrap(xp.zeros_like(param))
    exp_avg = state["exp_avg"]._data
    lerp_(exp_avg, grad, 1 - beta1, xp.empty_like(param))
    return exp_avg, state[second]._data


class Adamax(Optimizer):
    """Adamax: Adam with the infinity norm, u = max(beta2 * u, |g| + eps).

    Update per parameter p with gradient g at step t:
        g = -g if maximize;  g = g + weight_decay * p
        m = lerp(m, g, 1 - beta1);  u = max(beta2 * u, |g| + eps)
        p = p - lr / (1 - beta1^t) * m / u

    Args: params; lr (2e-3); betas ((0.9, 0.999)); eps (1e-8); weight_decay (0); foreach
    (no effect); maximize (False).

    Shape:
        state ``exp_avg`` and ``exp_inf`` match the parameter.

    Concept: N3.2.3. Kingma & Ba 2015, section 7.
    """

    hyper_rules = ADAM_LIKE_RULES

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 foreach=None, *, maximize=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        foreach=foreach, maximize=maximize)
        super().__init__(params, defaults)

    def _update(self, param, grad, group, state):
        xp = backend.xp_of(param)
        beta1, beta2 = (float(b) for b in group["betas"])
        state["step"] = state.get("step", 0) + 1
        grad = _grad_with_decay(param, grad, group, decoupled=False)
        exp_avg, exp_inf = _moments(param, grad, state, beta1, beta2, second="exp_inf")
        exp_inf *= beta2
        xp.maximum(exp_inf, xp.abs(grad) + float(group["eps"]), out=exp_inf)
        clr = float(group["lr"]) / (1 - beta1 ** state["step"])
        param -= clr * exp_avg / exp_inf


class NAdam(Optimizer):
    """NAdam: Adam with Nesterov momentum and a warming-up momentum schedule mu_t.

    Update per parameter p with gradient g at step t (torch's formulation):
        mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay));  P_t = P_{t-1} * mu_t
        m = lerp(m, g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g^2
        d = sqrt(v / (1 - beta2^t)) + eps
        p = p - lr * (1 - mu_t) / (1 - P_t) * g / d - lr * mu_{t+1} / (1 - P_t mu_{t+1}) * m / d

    The product ``mu_product`` (P_t) is rounded to float32 after every step, because torch
    keeps it in a float32 scalar tensor; the result then matches torch to float64 precision.

    Args: params; lr (2e-3); betas ((0.9, 0.999)); eps (1e-8); weight_decay (0);
    momentum_decay (4e-3); decoupled_weight_decay (False: coupled L2; True: NAdamW's
    p *= 1 - lr * weight_decay); foreach (no effect); maximize (False).

    Shape:
        state ``exp_avg`` and ``exp_avg_sq`` match the parameter; ``mu_product`` is a float.

    Concept: N3.2.3. Dozat 2016.
    """

    hyper_rules = {**ADAM_LIKE_RULES, "momentum_decay": ("momentum_decay value", NON_NEGATIVE)}

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 momentum_decay=4e-3, decoupled_weight_decay=False, *, foreach=None,
                 maximize=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, foreach=foreach,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _update(self, param, grad, group, state):
        xp = backend.xp_of(param)
        lr, eps, decay = float(group["lr"]), float(group["eps"]), float(group["momentum_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        if not state:
            state["step"], state["mu_product"] = 0, 1.0
        state["step"] += 1
        step = state["step"]
        grad = _grad_with_decay(param, grad, group, group["decoupled_weight_decay"])
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * decay)))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * decay)))
        mu_product = float(_np.float32(state["mu_product"]) * _np.float32(mu))
        state["mu_product"] = mu_product
        exp_avg, exp_avg_sq = _moments(param, grad, state, beta1, beta2)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        denom = xp.sqrt(exp_avg_sq / (1 - beta2 ** step))
        denom += eps
        param += (-lr * (1.0 - mu) / (1.0 - mu_product)) * grad / denom
        param += ((-lr * mu_next) / (1.0 - mu_product * mu_next)) * exp_avg / denom


class RAdam(Optimizer):
    """RAdam: Adam whose adaptive step is switched on only once its variance is tractable.

    Update per parameter p with gradient g at step t (torch's formulation):
        m = lerp(m, g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g^2;  m_hat = m / (1 - beta1^t)
        rho_inf = 2 / (1 - beta2) - 1;  rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
        rho_t > 5:  r = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
                    p = p - lr * m_hat * sqrt(1 - beta2^t) / (sqrt(v) + eps) * r
        otherwise:  p = p - lr * m_hat   (plain momentum SGD)

    Args: params; lr (1e-3); betas ((0.9, 0.999)); eps (1e-8); weight_decay (0);
    decoupled_weight_decay (False); foreach (no effect); maximize (False).

    Shape:
        state ``exp_avg`` and ``exp_avg_sq`` match the parameter.

    Concept: N3.2.3. Liu et al. 2020.
    """

    hyper_rules = ADAM_LIKE_RULES

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        decoupled_weight_decay=decoupled_weight_decay, foreach=foreach,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _update(self, param, grad, group, state):
        xp = backend.xp_of(param)
        lr, eps = float(group["lr"]), float(group["eps"])
        beta1, beta2 = (float(b) for b in group["betas"])
        state["step"] = state.get("step", 0) + 1
        step = state["step"]
        grad = _grad_with_decay(param, grad, group, group["decoupled_weight_decay"])
        exp_avg, exp_avg_sq = _moments(param, grad, state, beta1, beta2)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        bias_correction1, bias_correction2 = 1 - beta1 ** step, 1 - beta2 ** step
        corrected = exp_avg / bias_correction1
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * (beta2 ** step) / bias_correction2
        if rho_t > 5.0:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf
                    / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            adaptive = bias_correction2 ** 0.5 / (xp.sqrt(exp_avg_sq) + eps)
            param -= corrected * lr * adaptive * rect
        else:
            param -= corrected * lr
