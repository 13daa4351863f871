"""Loss functions (Concept: N3.2.1) and weight penalties for regularization (Concept: N3.2.5).

Every loss takes torch's arguments and ``reduction`` in {'mean', 'sum', 'none'}. Element-wise
losses refuse a target whose shape differs from the input's: torch broadcasts with a warning,
which silently turns an (N, 1) vs (N,) mix-up into an (N, N) loss.
"""
from __future__ import annotations

from shendu import backend
from shendu.autograd import Function, is_grad_enabled
from shendu.ops.activation import Softplus, log_softmax, softmax
from shendu.tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction, op):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_float(x, op, what="input"):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: {what} must be a Tensor, got {type(x).__name__}")
    if not backend.is_floating(x.dtype):
        raise TypeError(f"{op}: {what} must be a floating point tensor, got {x.dtype}")


def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def _row_grids(xp, shape, target):
    """An index tuple picking ``x[n, target[n, *d], *d]`` for x of ``shape`` (class axis 1)."""
    grids = list(xp.indices(target.shape, sparse=True))
    return (grids[0], target, *grids[1:])


def _nan(xp, dtype):
    return xp.asarray(float("nan"), dtype=dtype)


class CrossEntropy(Function):
    """Fused log-softmax + negative log-likelihood over the class axis 1.

    Fused for stability and speed: with q the per-row target distribution (one-hot or
    probabilities, label-smoothed and class-weighted) and S = sum_c q_c, the loss of a row is
    S * logsumexp(x) - sum_c q_c x_c and its gradient is S * softmax(x) - q. The
    exponentials and 1 / sum(exp) are kept from the forward pass, so the backward is one
    multiply plus a sparse correction.
    Without create_graph the backward runs on arrays; with it, the same formula is built from
    Tensor ops (softmax recomputed from the input), so second derivatives are exact.
    """

    def forward(self, x, target, weight=None, ignore_index=-100, reduction="mean",
                label_smoothing=0.0, soft=False):
        xp = backend.xp_of(x)
        n_classes, eps = x.shape[1], label_smoothing
        self.reduction, self.soft, self.eps = reduction, soft, eps
        wb = None if weight is None else weight.reshape((1, -1) + (1,) * (x.ndim - 2))
        shifted = x - x.max(axis=1, keepdims=True)
        if soft:
            q = target * (1.0 - eps) + eps / n_classes if eps else target
            q = q if wb is None else q * wb
            row_weight, dot = q.sum(axis=1), (shifted * q).sum(axis=1)
            self.saved_q, self.saved_wb = q, wb
        else:
            valid = target != ignore_index
            safe = xp.where(valid, target, 0)
            index = _row_grids(xp, x.shape, safe)
            picked_w = valid.astype(x.dtype) if weight is None else weight[safe] * valid
            dot = shifted[index] * ((1.0 - eps) * picked_w)
            row_weight = picked_w * (1.0 - eps)
            smooth = None
            if eps:
                total_w = float(n_classes) if weight is None else float(weight.sum())
                smooth = (eps / n_classes) * valid.astype(x.dtype)
                c_sum = shifted.sum(axis=1) if wb is None else (shifted * wb).sum(axis=1)
                dot = dot + smooth * c_sum
                row_weight = row_weight + smooth * total_w
            self.saved_index, self.saved_picked = index, (1.0 - eps) * picked_w
            self.saved_smooth, self.saved_wb = smooth, wb
            self.denom = float(picked_w.sum())
        if soft:
            self.denom = float(x.size // n_classes)
        logp_needed = soft and self.needs_input_grad[1]
        exp = xp.exp(shifted) if logp_needed else xp.exp(shifted, out=shifted)
        sumexp = exp.sum(axis=1, keepdims=True)
        lse = xp.log(sumexp)
        if logp_needed:
            self.saved_logp = shifted - lse
        # softmax = exp / sumexp; the division is folded into the backward's one multiply
        self.saved_exp, self.saved_inv, self.saved_s = exp, 1.0 / sumexp, row_weight
        loss = row_weight * lse.squeeze(1) - dot
        if reduction == "none":
            return loss
        total = loss.sum()
        if reduction == "sum":
            return total
        return total / self.denom if self.denom else _nan(xp, x.dtype)

    def _row_scale(self, grad):
        """The upstream gradient per row, shaped to broadcast along the class axis."""
        if self.reduction == "none":
            return grad.unsqueeze(1)
        if self.reduction == "mean":
            return grad / self.denom if self.denom else grad * float("nan")
        return grad

    def backward(self, grad):
        scale = self._row_scale(grad)
        if is_grad_enabled():
            return self._backward_graph(scale)
        xp = backend.xp_of(self.saved_exp)
        s = scale._data
        row = self.saved_s * s.squeeze(1) if s.ndim else self.saved_s * s
        grad_x = grad_t = None
        if self.needs_input_grad[0]:
            grad_x = self.saved_exp * (xp.expand_dims(row, 1) * self.saved_inv)
            if self.soft:
                grad_x -= self.saved_q * s
            else:
                grad_x[self.saved_index] -= self.saved_picked * (s.squeeze(1) if s.ndim else s)
                if self.eps:
                    smooth = xp.expand_dims(self.saved_smooth, 1) * s
                    grad_x -= smooth if self.saved_wb is None else smooth * self.saved_wb
            grad_x = Tensor._wrap(grad_x)
        if self.soft and self.needs_input_grad[1]:
            factor = self.saved_logp * (-(1.0 - self.eps))
            factor = factor if self.saved_wb is None else factor * self.saved_wb
            grad_t = Tensor._wrap(factor * s)
        return grad_x, grad_t

    def _backward_graph(self, scale):
        """The backward as Tensor ops on the inputs, for create_graph=True."""
        x, target = self.inputs
        wb = None if self.saved_wb is None else Tensor._wrap(self.saved_wb)
        if self.soft:
            n_classes = x.shape[1]
            q = target * (1.0 - self.eps) + self.eps / n_classes if self.eps else target
            q = q if wb is None else q * wb
            row = q.sum(1, keepdim=True)
        else:
            xp = backend.xp_of(self.saved_exp)
            dense = xp.zeros(x.shape, dtype=x.dtype)
            dense[self.saved_index] = self.saved_picked
            if self.eps:
                smooth = xp.expand_dims(self.saved_smooth, 1)
                dense += smooth if self.saved_wb is None else smooth * self.saved_wb
            q, row = Tensor._wrap(dense), Tensor._wrap(xp.expand_dims(self.saved_s, 1))
        grad_x = scale * (row * softmax(x, 1) - q) if self.needs_input_grad[0] else None
        grad_t = None
        if self.soft and self.needs_input_grad[1]:
            factor = log_softmax(x, 1) * (-(1.0 - self.eps))
            grad_t = scale * (factor if wb is None else factor * wb)
        return grad_x, grad_t


def _class_weight(weight, n_classes, x, op):
    if weight is None:
        return None
    _check_float(weight, op, "weight")
    if weight.shape != (n_classes,):
        raise ValueError(f"{op}: weight must have shape ({n_classes},), one entry per class of "
                         f"input {x.shape}, got {weight.shape}")
    if weight.requires_grad and is_grad_enabled():
        raise RuntimeError(f"{op}: the derivative for 'weight' is not implemented (as in "
                           "torch); pass weight.detach()")
    return weight._data.astype(x.dtype, copy=False)


def _check_index_target(x, target, ignore_index, op):
    expected = x.shape[:1] + x.shape[2:]
    if target.device != x.device:
        raise ValueError(f"{op}: target is on {target.device} but input is on {x.device}; "
                         "move both to one device")
    if target.dtype.kind not in "iu":
        raise TypeError(f"{op}: a class-index target must be an integer tensor (int64), got "
                        f"{target.dtype} target of shape {target.shape} for input {x.shape}; "
                        f"class probabilities must have the input's shape {x.shape}")
    if target.shape != expected:
        raise ValueError(f"{op}: class-index target must have shape {expected} for input "
                         f"{x.shape} (classes on dim 1), got {target.shape}")
    t = target._data
    n_classes = x.shape[1]
    bad = (t != ignore_index) & ((t < 0) | (t >= n_classes))
    if bad.any():
        value = int(t[bad].reshape(-1)[0])
        raise IndexError(f"{op}: target class {value} is out of range for {n_classes} classes "
                         f"(expected 0 <= target < {n_classes} or ignore_index={ignore_index})")


def _batched(x, target, op):
    """Give a (C,) input a batch of one, as torch does."""
    if x.ndim == 0:
        raise ValueError(f"{op}: input must have at least 1 dim (C,) or (N, C, ...), got a "
                         "0-d tensor")
    if x.ndim == 1:
        return x.unsqueeze(0), target.unsqueeze(0), True
    return x, target, False


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """Cross-entropy between logits and class indices or class probabilities.

    loss_n = -sum_c w_c q_nc log softmax(x_n)_c with q the one-hot target (or the given
    probabilities), mixed as q (1 - label_smoothing) + label_smoothing / C. 'mean' divides by
    the summed weight of the non-ignored targets (index targets) or by the number of rows
    (probability targets), exactly as torch. Fused and stable for logits of any magnitude.

    Shape:
        input (N, C), (N, C, d1, ...) or (C,); target (N,) / (N, d1, ...) / () int64, or
        probabilities shaped like input; output () or, with reduction='none', (N, d1, ...).

    Concept: N3.2.1.
    """
    op = "cross_entropy"
    _check_float(input, op)
    _check_reduction(reduction, op)
    if not isinstance(target, Tensor):
        raise TypeError(f"{op}: target must be a Tensor, got {type(target).__name__}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0.0, 1.0], got {label_smoothing}")
    x, t, unbatched = _batched(input, target, op)
    w = _class_weight(weight, x.shape[1], x, op)
    soft = t.shape == x.shape and backend.is_floating(t.dtype)
    if soft:
        if ignore_index >= 0:
            raise ValueError(f"{op}: ignore_index={ignore_index} is not supported for class "
                             "probability targets (as in torch)")
        t = t.to(x.dtype)
    else:
        _check_index_target(x, t, ignore_index, op)
    out = CrossEntropy.apply(x, t, weight=w, ignore_index=ignore_index, reduction=reduction,
                             label_smoothing=float(label_smoothing), soft=soft)
    return out.reshape(()) if unbatched and reduction == "none" else out


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of log-probabilities: loss_n = -w_{y_n} x[n, y_n].

    'mean' divides by the summed weight of the non-ignored targets, as torch.

    Shape:
        input (N, C), (N, C, d1, ...) or (C,); target (N,) / (N, d1, ...) / () int64.

    Concept: N3.2.1.
    """
    op = "nll_loss"
    _check_float(input, op)
    _check_reduction(reduction, op)
    if not isinstance(target, Tensor):
        raise TypeError(f"{op}: target must be a Tensor, got {type(target).__name__}")
    x, t, unbatched = _batched(input, target, op)
    w = _class_weight(weight, x.shape[1], x, op)
    _check_index_target(x, t, ignore_index, op)
    xp = x._xp
    valid = t._data != ignore_index
    safe = xp.where(valid, t._data, 0)
    picked_w = valid.astype(x.dtype) if w is None else w[safe] * valid
    picked = x.gather(1, Tensor._wrap(xp.expand_dims(safe, 1))).squeeze(1)
    loss = picked * Tensor._wrap(-picked_w)
    if reduction == "none":
        return loss.reshape(()) if unbatched else loss
    if reduction == "sum":
        return loss.sum()
    denom = float(picked_w.sum())
    return loss.sum() / denom if denom else loss.sum() * float("nan")


def _same_shape(x, target, op):
    _check_float(x, op)
    _check_float(target, op, "target")
    if target.shape != x.shape:
        raise ValueError(f"{op}: target shape {target.shape} differs from input shape "
                         f"{x.shape}; losses do not broadcast, reshape one of them")
    return target.to(x.dtype)


def _check_broadcast_to(t, shape, op, what):
    if t is None:
        return None
    _check_float(t, op, what)
    try:
        ok = t._xp.broadcast_shapes(t.shape, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{op}: {what} of shape {t.shape} must broadcast to the input shape "
                         f"{shape} without changing it")
    return t


def _weighted_reduce(loss, weight, reduction, op):
    """torch's per-element ``weight`` of mse/l1: 'mean' divides by sum(weight)."""
    if weight is None:
        return _reduce(loss, reduction)
    _check_float(weight, op, "weight")
    if weight.shape != loss.shape:
        raise ValueError(f"{op}: weight must have the input's shape {loss.shape}, got "
                         f"{weight.shape}")
    weight = weight.to(loss.dtype)
    loss = loss * weight
    if reduction == "mean":
        return loss.sum() / weight.sum()
    return _reduce(loss, reduction)


def mse_loss(input, target, reduction="mean", weight=None):
    """Mean squared error: w (x - y)^2, reduced ('mean' with weight: divided by sum(w)).

    Shape: input, target and weight (*), same shape.
    """
    target = _same_shape(input, target, "mse_loss")
    _check_reduction(reduction, "mse_loss")
    diff = input - target
    return _weighted_reduce(diff * diff, weight, reduction, "mse_loss")


def l1_loss(input, target, reduction="mean", weight=None):
    """Mean absolute error: w |x - y|, reduced ('mean' with weight: divided by sum(w)).

    Shape: input, target and weight (*), same shape.
    """
    target = _same_shape(input, target, "l1_loss")
    _check_reduction(reduction, "l1_loss")
    return _weighted_reduce((input - target).abs(), weight, reduction, "l1_loss")


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    """Huber-style loss: 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = x - y).

    Shape: input and target (*), same shape.
    """
    target = _same_shape(input, target, "smooth_l1_loss")
    _check_reduction(reduction, "smooth_l1_loss")
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    diff = input - target
    absolute = diff.abs()
    if beta == 0:
        return _reduce(absolute, reduction)
    from shendu.ops.elementwise import where
    loss = where(absolute.detach() < beta, diff * diff * (0.5 / beta), absolute - 0.5 * beta)
    return _reduce(loss, reduction)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta): smooth_l1_loss(beta=delta)
    times delta, so the slope far from 0 is delta instead of 1.

    Shape: input and target (*), same shape; weight (optional) the same shape.
    """
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")
    per_element = smooth_l1_loss(input, target, "none", delta) * delta
    _check_reduction(reduction, "huber_loss")
    return _weighted_reduce(per_element, weight, reduction, "huber_loss")


def kl_div(input, target, reduction="mean", log_target=False):
    """KL(target || exp(input)) per element: target (log target - input), 0 where target = 0
    (or exp(t) (t - input) with log_target). 'batchmean' divides the sum by the batch size:
    the true KL divergence; 'mean' divides by the element count, as torch does.

    Shape: input (log-probabilities) and target (*), same shape.
    """
    op = "kl_div"
    if reduction not in _REDUCTIONS + ("batchmean",):
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS + ('batchmean',)}, "
                         f"got {reduction!r}")
    target = _same_shape(input, target, op)
    if log_target:
        loss = target.exp() * (target - input)
    else:
        from shendu.ops.elementwise import where
        positive = target.detach() > 0
        safe = where(positive, target, Tensor._wrap(target._xp.ones((), target.dtype)))
        loss = where(positive, target * (safe.log() - input), input * 0.0)
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction)


def _clamped_log(p):
    """max(log p, -100) as torch's BCE; clamping p first avoids log(0) warnings."""
    return p.clamp(min=1e-45).log().clamp(min=-100.0)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """-w (y log x + (1 - y) log(1 - x)) for probabilities x, each log clamped at -100 (torch).

    Shape: input and target (*), same shape; weight broadcastable to it.

    Concept: N3.2.1.
    """
    op = "binary_cross_entropy"
    target = _same_shape(input, target, op)
    _check_reduction(reduction, op)
    weight = _check_broadcast_to(weight, input.shape, op, "weight")
    data = input._data
    if ((data < 0) | (data > 1)).any():
        raise ValueError(f"{op}: all elements of input should be probabilities in [0, 1]; got "
                         f"values in [{float(data.min())}, {float(data.max())}]; use "
                         "binary_cross_entropy_with_logits for logits")
    loss = -(target * _clamped_log(input) + (1.0 - target) * _clamped_log(1.0 - input))
    if weight is not None:
        loss = loss * weight.to(input.dtype)
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None):
    """Sigmoid + binary cross-entropy in one stable expression (torch's formula).

    loss = w ((1 - y) x + l softplus(-x)) with l = 1 + (pos_weight - 1) y, which equals
    -w (pos_weight y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))) without overflow.

    Shape: input and target (*), same shape; weight broadcastable to it; pos_weight (C,)
    broadcast along the last dim.

    Concept: N3.2.1.
    """
    op = "binary_cross_entropy_with_logits"
    target = _same_shape(input, target, op)
    _check_reduction(reduction, op)
    weight = _check_broadcast_to(weight, input.shape, op, "weight")
    pos_weight = _check_broadcast_to(pos_weight, input.shape, op, "pos_weight")
    softplus_neg = Softplus.apply(-input)
    if pos_weight is not None:
        softplus_neg = softplus_neg * ((pos_weight.to(input.dtype) - 1.0) * target + 1.0)
    loss = (1.0 - target) * input + softplus_neg
    if weight is not None:
        loss = loss * weight.to(input.dtype)
    return _reduce(loss, reduction)


def _params(params, op):
    params = [params] if isinstance(params, Tensor) else list(params)
    if not params:
        raise ValueError(f"{op}: got no parameters")
    for i, p in enumerate(params):
        _check_float(p, op, f"parameter {i}")
    return params


def l1_penalty(params):
    """L1 regularization term sum_i |w_i| over every parameter (sparse weights).

    Add ``lam * l1_penalty(model.parameters())`` to the loss. Concept: N3.2.5.
    """
    params = _params(params, "l1_penalty")
    total = params[0].abs().sum()
    for p in params[1:]:
        total = total + p.abs().sum()
    return total


def l2_penalty(params):
    """L2 regularization term sum_i w_i^2 over every parameter (small, spread weights).

    Add ``lam / 2 * l2_penalty(model.parameters())`` to the loss; with SGD this equals
    weight_decay=lam. Concept: N3.2.5.
    """
    params = _params(params, "l2_penalty")
    total = (params[0] * params[0]).sum()
    for p in params[1:]:
        total = total + (p * p).sum()
    return total
