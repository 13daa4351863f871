"""Stochastic gradient descent, with momentum and Nesterov momentum (torch.optim.SGD)."""
from __future__ import annotations

from shendu.optim import fused
from shendu.optim.optimizer import NON_NEGATIVE, Optimizer
from shendu.tensor import Tensor


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    Update per parameter p with gradient g (torch's formulation):
        g = -g if maximize;  g = g + weight_decay * p
        b = g (first step), else b = momentum * b + (1 - dampening) * g
        g = g + momentum * b if nesterov else b          (only when momentum != 0)
        p = p - lr * g

    ``weight_decay`` here is L2 regularisation (N3.2.5) folded into the gradient: with plain
    SGD it equals adding weight_decay/2 * ||p||^2 to the loss.

    Args:
        params: iterable of Tensors or of param-group dicts.
        lr: learning rate. Default: 1e-3.
        momentum: momentum factor. Default: 0.
        dampening: dampening of the momentum's gradient term. Default: 0.
        weight_decay: L2 penalty coefficient. Default: 0.
        nesterov: use Nesterov momentum (needs momentum > 0 and dampening == 0).
        maximize: ascend the objective instead of descending. Default: False.

    Shape:
        every state buffer (``momentum_buffer``) has its parameter's shape and dtype.

    Concept: N3.2.3 (SGD; SGD + momentum). Polyak 1964; Sutskever et al. 2013 (Nesterov).

    Example:
        >>> import shendu
        >>> w = shendu.tensor([1.0, -2.0], requires_grad=True)
        >>> opt = SGD([w], lr=0.1, momentum=0.9)
        >>> (w * w).sum().backward(); opt.step()
        >>> w.shape
        (2,)
    """

    hyper_rules = {"lr": ("learning rate", NON_NEGATIVE), "momentum": ("momentum value",
                   NON_NEGATIVE), "dampening": ("dampening value", NON_NEGATIVE),
                   "weight_decay": ("weight_decay value", NON_NEGATIVE)}

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"SGD: Nesterov momentum requires a momentum and zero dampening, "
                             f"got momentum={momentum}, dampening={dampening}")

    def _update(self, param, grad, group, state):
        lr, momentum = float(group["lr"]), float(group["momentum"])
        weight_decay = float(group["weight_decay"])
        buf = state.get("momentum_buffer") if momentum != 0 else None
        first = momentum != 0 and buf is None
        if first and fused.usable(param, grad):
            buf = Tensor._wrap(fused.np.empty_like(param))  # the kernel fills it with grad
            state["momentum_buffer"] = buf
        if fused.usable(param, grad, *(() if buf is None else (buf._data,))):
            # one pass instead of up to 7 below; the code below is its tested reference
            fused.sgd_(param, grad, None if buf is None else buf._data, lr=lr,
                       momentum=momentum, dampening=float(group["dampening"]),
                       weight_decay=weight_decay, nesterov=group["nesterov"],
                       maximize=group["maximize"], first=first)
            return
        if group["maximize"]:
            grad = -grad
        if weight_decay != 0:
            decayed = param * weight_decay
            decayed += grad
            grad = decayed
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = Tensor._wrap(grad.copy())
                state["momentum_buffer"] = buf
            else:
                data = buf._data
                data *= momentum
                alpha = 1.0 - float(group["dampening"])
                data += grad if alpha == 1.0 else grad * alpha
            grad = grad + buf._data * momentum if group["nesterov"] else buf._data
        param -= grad * lr
