"""Adam and AdamW: one implementation, two weight-decay couplings (torch.optim.Adam/AdamW)."""
from __future__ import annotations

from shendu import backend
from shendu.optim import fused
from shendu.optim.optimizer import BETAS, NON_NEGATIVE, Optimizer, lerp_
from shendu.tensor import Tensor


class Adam(Optimizer):
    """Adam: SGD scaled per coordinate by bias-corrected moment estimates.

    Update per parameter p with gradient g at step t (torch's formulation, eps outside sqrt):
        g = -g if maximize
        weight decay, coupled (Adam):      g = g + weight_decay * p
        weight decay, decoupled (AdamW):   p = p * (1 - lr * weight_decay)
        m = lerp(m, g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g^2
        v_max = max(v_max, v) if amsgrad, and v_max is used for v below
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Weight decay and L2 regularisation (N3.2.5): coupled decay adds weight_decay * p to the
    gradient, exactly like an L2 term weight_decay/2 * ||p||^2 in the loss, so the decay is then
    divided by sqrt(v) with the rest of the gradient: weights with large gradients are decayed
    less. Decoupled decay (AdamW, Loshchilov & Hutter 2019) shrinks p directly by
    lr * weight_decay * p, the same for every weight, which is what "small, spread weights"
    intends; with adaptive methods the two are no longer equivalent.

    Args:
        params: iterable of Tensors or of param-group dicts.
        lr: learning rate. Default: 1e-3.
        betas: decay rates (beta1, beta2) of the first and second moments. Default: (0.9, 0.999).
        eps: added to the denominator for stability. Default: 1e-8.
        weight_decay: decay coefficient (coupled L2 for Adam). Default: 0.
        amsgrad: use the running maximum of v (Reddi et al. 2018). Default: False.
        maximize: ascend the objective instead of descending. Default: False.
        decoupled_weight_decay: use AdamW's decoupled decay. Default: False.

    Shape:
        state buffers (``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``) match the parameter.

    Concept: N3.2.3 (Adam). Kingma & Ba 2015.

    Example:
        >>> import shendu
        >>> w = shendu.tensor([1.0, -2.0], requires_grad=True)
        >>> opt = Adam([w], lr=0.1)
        >>> (w * w).sum().backward(); opt.step()
        >>> opt.state[w]["exp_avg"].shape, opt.state[w]["step"]
        ((2,), 1)
    """

    hyper_rules = {"lr": ("learning rate", NON_NEGATIVE), "eps": ("epsilon value", NON_NEGATIVE),
                   "betas": ("betas", BETAS), "weight_decay": ("weight_decay value", NON_NEGATIVE)}

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False):
        betas = tuple(betas) if isinstance(betas, list) else betas
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _update(self, param, grad, group, state):
        xp = backend.xp_of(param)
        lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), \
            float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        if not state:
            state["step"] = 0
            state["exp_avg"] = Tensor._wrap(xp.zeros_like(param))
            state["exp_avg_sq"] = Tensor._wrap(xp.zeros_like(param))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = Tensor._wrap(xp.zeros_like(param))
        state["step"] += 1
        step = state["step"]
        exp_avg, exp_avg_sq = state["exp_avg"]._data, state["exp_avg_sq"]._data
        amsgrad_buf = state["max_exp_avg_sq"]._data if group["amsgrad"] else None
        if fused.usable(param, grad, exp_avg, exp_avg_sq,
                        *(() if amsgrad_buf is None else (amsgrad_buf,))):
            # one pass instead of the ~12 below; the code below is its tested reference
            fused.adam_(param, grad, exp_avg, exp_avg_sq, amsgrad_buf, lr=lr, beta1=beta1,
                        beta2=beta2, eps=eps, weight_decay=weight_decay,
                        decoupled=bool(group["decoupled_weight_decay"]),
                        maximize=group["maximize"], step=step)
            return
        if group["maximize"]:
            grad = -grad
        if weight_decay != 0:
            if group["decoupled_weight_decay"]:
                param *= 1.0 - lr * weight_decay
            else:
                decayed = param * weight_decay
                decayed += grad
                grad = decayed
        scratch = xp.empty_like(param)  # the one temporary of the step
        lerp_(exp_avg, grad, 1.0 - beta1, scratch)
        xp.multiply(grad, 1.0 - beta2, out=scratch)  # torch's addcmul order: (value * g) * g
        scratch *= grad
        exp_avg_sq *= beta2
        exp_avg_sq += scratch

        bias_correction1 = 1.0 - beta1 ** step
        bias_correction2_sqrt = (1.0 - beta2 ** step) ** 0.5
        step_size = lr / bias_correction1
        second = exp_avg_sq
        if group["amsgrad"]:
            second = amsgrad_buf
            xp.maximum(second, exp_avg_sq, out=second)
        if step_size == 0.0:
            return
        # torch's capturable form: fold -step_size into the denominator, saving a pass
        neg_step = -step_size
        denom = xp.sqrt(second, out=scratch)
        denom /= bias_correction2_sqrt * neg_step
        denom += eps / neg_step
        xp.divide(exp_avg, denom, out=denom)
        param += denom


class AdamW(Adam):
    """Adam with decoupled weight decay: p = p * (1 - lr * weight_decay) before the Adam step.

    Same update and arguments as :class:`Adam` (see its docstring for the difference between
    coupled L2 and decoupled decay, N3.2.5), but ``weight_decay`` defaults to 1e-2 and is
    applied to the weights directly instead of through the adaptive gradient scaling.

    Shape:
        state buffers match the parameter.

    Concept: N3.2.3 (AdamW). Loshchilov & Hutter 2019.

    Example:
        >>> import shendu
        >>> w = shendu.tensor([1.0, -2.0], requires_grad=True)
        >>> opt = AdamW([w], lr=0.1)
        >>> opt.param_groups[0]["weight_decay"]
        0.01
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        for group in self.param_groups:  # AdamW is decoupled whatever the checkpoint says
            group["decoupled_weight_decay"] = True
