"""Gradient clipping (Concept: N3.2.6) and parameter/vector conversion."""
from __future__ import annotations

from shendu import autograd
from shendu.tensor import Tensor


def _with_grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so their joint norm is at most ``max_norm``.

    total = (sum_p ||g_p||^norm_type)^(1/norm_type)  (max |g| for norm_type=inf);
    every g is multiplied by min(1, max_norm / (total + 1e-6)). Returns ``total``.
    """
    from shendu.optim.optimizer import NON_NEGATIVE, POSITIVE, check_value
    # a negative max_norm would flip every gradient's sign (the coefficient goes negative)
    check_value("clip_grad_norm_", "max_norm", max_norm, NON_NEGATIVE)
    if norm_type != float("inf"):
        check_value("clip_grad_norm_", "norm_type", norm_type, POSITIVE)
    params = _with_grads(parameters)
    if not params:
        from shendu.creation import tensor
        return tensor(0.0)
    xp = params[0]._xp
    norm_type = float(norm_type)
    with autograd.no_grad():
        grads = [p.grad._data for p in params]
        if norm_type == float("inf"):
            norms = [xp.abs(g).max() for g in grads]
            total = max(float(n) for n in norms)
        else:
            total = float(sum(float((xp.abs(g) ** norm_type).sum()) for g in grads)
                          ) ** (1.0 / norm_type)
        if error_if_nonfinite and not xp.isfinite(total):
            raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the "
                               f"gradients is non-finite ({total}); set "
                               "error_if_nonfinite=False to clip anyway")
        coef = min(1.0, max_norm / (total + 1e-6))
        if coef < 1.0:
            for p in params:
                p.grad.mul_(coef)
    return Tensor._wrap(xp.asarray(total, dtype=params[0].grad.dtype))


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient element into [-clip_value, clip_value]."""
    from shendu.optim.optimizer import NON_NEGATIVE, check_value
    check_value("clip_grad_value_", "clip_value", clip_value, NON_NEGATIVE)
    with autograd.no_grad():
        for p in _with_grads(parameters):
            p.grad.clamp_(-clip_value, clip_value)


def parameters_to_vector(parameters):
    """Concatenate the flattened parameters into one 1-D tensor (a differentiable op)."""
    from shendu.ops.shape import cat
    return cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec, parameters):
    """Copy consecutive slices of ``vec`` into the parameters (in place, no graph)."""
    if vec.ndim != 1:
        raise ValueError(f"vector_to_parameters: expected a 1-D vector, got shape {vec.shape}")
    params = list(parameters)
    total = sum(p.numel() for p in params)
    if vec.numel() != total:
        raise ValueError(f"vector_to_parameters: vector has {vec.numel()} elements, the "
                         f"parameters need {total}")
    offset = 0
    with autograd.no_grad():
        for p in params:
            n = p.numel()
            p.copy_(vec._data[offset:offset + n].reshape(p.shape))
            offset += n
