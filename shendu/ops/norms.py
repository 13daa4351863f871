"""Vector p-norms and the ops built on them: ``norm``, ``normalize``, ``cosine_similarity``.

    ||x||_p = (sum |x_i|^p)^(1/p);  p = inf: max |x_i|;  p = -inf: min |x_i|;  p = 0: the
    count of non-zeros.  d||x||_p / dx = sign(x) |x|^(p-1) / ||x||_p^(p-1) (x / ||x|| for
    p = 2), taken as 0 where the norm is 0, as torch does; the inf-norms share the gradient
    equally among the entries that reach the extreme.
"""
from __future__ import annotations

import math

from shendu import backend
from shendu.autograd import Function
from shendu.ops.reduce import kept_shape, normalize_dims
from shendu.tensor import Tensor


class VectorNorm(Function):
    uses_output = True

    def forward(self, x, p=2.0, dims=(), keepdim=False):
        self.p, self.dims, self.keepdim = p, dims, keepdim
        xp = backend.xp_of(x)
        a = xp.abs(x)
        if p == math.inf:
            out = a.max(axis=dims, keepdims=True)
        elif p == -math.inf:
            out = a.min(axis=dims, keepdims=True)
        elif p == 0:
            out = (a != 0).sum(axis=dims, keepdims=True).astype(x.dtype)
        elif p == 1:
            out = a.sum(axis=dims, keepdims=True)
        elif p == 2:
            out = xp.sqrt((x * x).sum(axis=dims, keepdims=True))
        else:
            out = (a ** p).sum(axis=dims, keepdims=True) ** (1.0 / p)
        return out if keepdim else out.reshape(
            tuple(n for i, n in enumerate(x.shape) if i not in dims))

    def backward(self, grad):
        from shendu.ops.elementwise import where
        x = self.inputs[0]
        p = self.p
        kept = kept_shape(x.shape, self.dims)
        norm, grad = self.output.reshape(kept), grad.reshape(kept)
        if p == 0:
            return x * 0.0
        if p in (math.inf, -math.inf):
            hit = (x.detach().abs() == norm.detach()).to(x.dtype)
            share = hit / hit.sum(self.dims, keepdim=True)
            return grad * x.sign() * share
        if p == 1:
            return grad * x.sign()
        zero = norm.detach() == 0
        safe = where(zero, 1.0, norm)
        if p == 2:
            scale = x / safe
        else:
            scale = x.sign() * x.abs() ** (p - 1) / safe ** (p - 1)
        return where(zero, 0.0, grad) * scale


def _order(p, op):
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise ValueError(f"{op}: p must be a number, 'fro', inf or -inf, got {p!r}")
    return float(p)


def vector_norm(x, p=2.0, dim=None, keepdim=False):
    """The p-norm of ``x`` over ``dim`` (all dims when None), as a reduction."""
    op = "norm"
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    if not backend.is_floating(x.dtype):
        raise TypeError(f"{op}: expected a floating point tensor, got {x.dtype}")
    dims = normalize_dims(dim, x.ndim, op)
    if x.ndim == 0:
        return x.abs()
    return VectorNorm.apply(x, p=_order(p, op), dims=dims, keepdim=keepdim)


def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    """torch.norm: the vector p-norm over ``dim`` (all elements when None); 'fro' is the
    2-norm of the (flattened) matrix. ``dtype`` casts first.

    Shape: input (*) -> the reduced shape (keepdim keeps unit dims).
    """
    if dtype is not None:
        input = input.to(dtype)
    if p == "fro":
        p = 2.0
    elif p == "nuc" or isinstance(p, str):
        raise ValueError(f"norm: p={p!r} is not supported; expected a number, 'fro', inf or "
                         "-inf (the nuclear norm needs an SVD, which shendu does not have)")
    return vector_norm(input, p, dim, keepdim)


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """x / max(||x||_p, eps) along ``dim``: unit-norm vectors (zero vectors stay zero).

    Shape: input (*) -> (*).
    """
    if out is not None:
        raise ValueError("normalize: out= is not supported; use the returned tensor")
    n = vector_norm(input, p, dim, keepdim=True)
    return input / n.clamp(min=eps)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """sum(x1 x2) / (max(||x1||, eps) max(||x2||, eps)) along ``dim``; x1 and x2 broadcast.

    Shape: x1, x2 (*) broadcastable -> the broadcast shape without ``dim``.
    """
    op = "cosine_similarity"
    for t, name in ((x1, "x1"), (x2, "x2")):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
    try:
        shape = backend.xp_of(x1._data).broadcast_shapes(x1.shape, x2.shape)
    except ValueError:
        raise ValueError(f"{op}: x1 {x1.shape} and x2 {x2.shape} do not broadcast") from None
    if x1.shape != shape:
        x1 = x1.expand(*shape)
    if x2.shape != shape:
        x2 = x2.expand(*shape)
    n1 = vector_norm(x1, 2.0, dim, keepdim=True).clamp(min=eps)
    n2 = vector_norm(x2, 2.0, dim, keepdim=True).clamp(min=eps)
    return ((x1 / n1) * (x2 / n2)).sum(dim)
