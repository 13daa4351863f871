"""RMSprop: divide the gradient by a running RMS of its recent magnitudes (torch.optim.RMSprop)."""
from __future__ import annotations

from shendu import backend
from shendu.optim.optimizer import NON_NEGATIVE, Optimizer, lerp_
from shendu.tensor import Tensor


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e), optionally centered and with momentum.

    Update per parameter p with gradient g (torch's formulation):
        g = -g if maximize;  g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g^2
        centered: m = lerp(m, g, 1 - alpha);  avg = sqrt(v - m^2) + eps
        otherwise:                             avg = sqrt(v) + eps
        momentum > 0: b = momentum * b + g / avg;  p = p - lr * b
        otherwise:    p = p - lr * g / avg

    Args:
        params: iterable of Tensors or of param-group dicts.
        lr: learning rate. Default: 1e-2.
        alpha: smoothing constant of the squared-gradient average. Default: 0.99.
        eps: added to the denominator for stability. Default: 1e-8.
        weight_decay: L2 penalty (N3.2.5) added to the gradient. Default: 0.
        momentum: momentum factor. Default: 0.
        centered: normalise by the estimated variance instead of the raw second moment.
        maximize: ascend the objective instead of descending. Default: False.

    Shape:
        state buffers (``square_avg``, ``grad_avg``, ``momentum_buffer``) match the parameter.

    Concept: N3.2.3. Tieleman & Hinton 2012; Graves 2013 (centered).

    Example:
        >>> import shendu
        >>> w = shendu.tensor([1.0, -2.0], requires_grad=True)
        >>> opt = RMSprop([w], lr=0.01, centered=True)
        >>> (w * w).sum().backward(); opt.step()
        >>> opt.state[w]["square_avg"].shape
        (2,)
    """

    hyper_rules = {"lr": ("learning rate", NON_NEGATIVE), "eps": ("epsilon value", NON_NEGATIVE),
                   "momentum": ("momentum value", NON_NEGATIVE),
                   "weight_decay": ("weight_decay value", NON_NEGATIVE),
                   "alpha": ("alpha value", NON_NEGATIVE)}

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, *, maximize=False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _update(self, param, grad, group, state):
        xp = backend.xp_of(param)
        lr, alpha, eps = float(group["lr"]), float(group["alpha"]), float(group["eps"])
        momentum, weight_decay = float(group["momentum"]), float(group["weight_decay"])
        if not state:
            state["step"] = 0
            state["square_avg"] = Tensor._wrap(xp.zeros_like(param))
            if momentum > 0:
                state["momentum_buffer"] = Tensor._wrap(xp.zeros_like(param))
            if group["centered"]:
                state["grad_avg"] = Tensor._wrap(xp.zeros_like(param))
        state["step"] += 1
        if group["maximize"]:
            grad = -grad
        if weight_decay != 0:
            decayed = param * weight_decay
            decayed += grad
            grad = decayed
        square_avg = state["square_avg"]._data
        avg = xp.multiply(grad, 1.0 - alpha)  # torch's addcmul order: (value * g) * g
        avg *= grad
        square_avg *= alpha
        square_avg += avg
        if group["centered"]:
            grad_avg = state["grad_avg"]._data
            lerp_(grad_avg, grad, 1.0 - alpha, avg)
            xp.multiply(grad_avg, grad_avg, out=avg)
            xp.subtract(square_avg, avg, out=avg)
            xp.sqrt(avg, out=avg)
        else:
            xp.sqrt(square_avg, out=avg)
        avg += eps
        if momentum > 0:
            buf = state["momentum_buffer"]._data
            buf *= momentum
            xp.divide(grad, avg, out=avg)
            buf += avg
            param -= buf * lr
        else:
            xp.divide(grad * -lr, avg, out=avg)
            param += avg
