"""Reductions: sum, mean, var, std, max/min (with or without dim), arg-reductions, logsumexp,
prod, and the running sum cumsum.

Shapes: ``x (*S)`` reduced over ``dim`` (an int, a tuple of ints, or None for all axes);
``keepdim=True`` keeps each reduced axis with size 1. Negative dims count from the end.
"""
from __future__ import annotations

from collections import namedtuple

from shendu import backend
from shendu.autograd import Function, is_grad_enabled
from shendu.tensor import Tensor

MaxResult = namedtuple("max", ["values", "indices"])
MinResult = namedtuple("min", ["values", "indices"])


def normalize_dims(dim, ndim, op):
    """``dim`` as a sorted tuple of non-negative axes (all axes when None)."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, (tuple, list)):
        dims = tuple(dim)
    else:
        dims = (dim,)
    out = []
    limit = ndim if ndim else 1  # a 0-d tensor accepts dim 0 and -1, as in torch
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, int):
            raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {d!r} of type "
                            f"{type(d).__name__}")
        if not -limit <= d < limit:
            raise IndexError(f"{op}: dim {d} is out of range for a tensor with {ndim} dims "
                             f"(expected an int in [{-limit}, {limit - 1}])")
        out.append(d % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dim {dims} names an axis twice")
    return tuple(sorted(out)) if ndim else ()


def kept_shape(shape, dims):
    return tuple(1 if i in dims else n for i, n in enumerate(shape))


class Sum(Function):
    uses_inputs = False

    def forward(self, a, dims=(), keepdim=False):
        self.in_shape, self.dims = a.shape, dims
        return a.sum(axis=dims, keepdims=keepdim)

    def backward(self, grad):
        return grad.reshape(kept_shape(self.in_shape, self.dims)).expand(*self.in_shape)


class Amax(Function):
    """Max over ``dims``; tied maxima share the gradient evenly (torch's amax rule)."""

    uses_inputs = False

    def forward(self, a, dims=(), keepdim=False, largest=True):
        xp = backend.xp_of(a)
        kept = a.max(axis=dims, keepdims=True) if largest else a.min(axis=dims, keepdims=True)
        mask = (a == kept).astype(a.dtype)
        self.saved_weights = mask / mask.sum(axis=dims, keepdims=True)
        self.dims = dims
        return kept if keepdim else xp.squeeze(kept, axis=dims)

    def backward(self, grad):
        shape = kept_shape(self.saved_weights.shape, self.dims)
        return grad.reshape(shape) * Tensor._wrap(self.saved_weights)


class MaxDim(Function):
    """Values at precomputed arg-max/arg-min ``indices`` along one dim."""

    uses_inputs = False

    def forward(self, a, indices=None, dim=0, keepdim=False):
        xp = backend.xp_of(a)
        idx = xp.expand_dims(indices, dim)
        values = xp.take_along_axis(a, idx, axis=dim)
        self.dim, self.in_shape, self.keepdim = dim, a.shape, keepdim
        mask = xp.zeros(a.shape, dtype=a.dtype)
        xp.put_along_axis(mask, idx, 1, axis=dim)
        self.saved_mask = mask
        return values if keepdim else xp.squeeze(values, axis=dim)

    def backward(self, grad):
        if not self.keepdim:
            grad = grad.unsqueeze(self.dim)
        return grad * Tensor._wrap(self.saved_mask)


def sum(x, dim=None, keepdim=False):  # noqa: A001 - torch's name
    dims = normalize_dims(dim, x.ndim, "sum")
    if x.dtype.kind in "biu" and x.dtype != backend.int64:
        x = x.to(backend.int64)
    return Sum.apply(x, dims=dims, keepdim=keepdim)


def _count(x, dims):
    n = 1
    for d in dims:
        n *= x.shape[d]
    return n


def mean(x, dim=None, keepdim=False):
    if not backend.is_floating(x.dtype):
        raise TypeError(f"mean: expected a floating point tensor, got {x.dtype}; call .float() "
                        "first")
    dims = normalize_dims(dim, x.ndim, "mean")
    count = _count(x, dims)
    return sum(x, dims, keepdim) / (float(count) if count else float("nan"))


def _correction(correction, unbiased):
    if unbiased is not None:
        return 1 if unbiased else 0
    return correction


def var(x, dim=None, unbiased=None, keepdim=False, *, correction=1):
    """Variance with Bessel's ``correction`` (torch's default 1: the unbiased estimate).

    var = sum((x - mean)^2) / (N - correction). The positional order is torch's
    ``var(x, dim, unbiased, keepdim)``, so ``x.var(0, False)`` is the biased estimate there too.
    """
    dims = normalize_dims(dim, x.ndim, "var")
    centered = x - mean(x, dims, keepdim=True)
    dof = _count(x, dims) - _correction(correction, unbiased)
    return sum(centered * centered, dims, keepdim) / float(dof if dof > 0 else float("nan"))


def std(x, dim=None, unbiased=None, keepdim=False, *, correction=1):
    """sqrt(var(x)); arguments as ``var``. A constant input has gradient 0 (torch's rule)."""
    return StdSqrt.apply(var(x, dim, unbiased, keepdim, correction=correction))


class StdSqrt(Function):
    """sqrt of a variance, with derivative 0 where the variance is 0: d sqrt(v)/dv = 1/(2
    sqrt(v)) is infinite there, but v's own gradient is 0 there (every x equals the mean), so
    torch defines the product as 0 instead of inf * 0 = nan."""

    uses_inputs = False
    uses_output = True

    def forward(self, v):
        return backend.xp_of(v).sqrt(v)

    def backward(self, grad):
        from shendu.ops.elementwise import where
        out = self.output
        flat = out == 0
        return where(flat, 0.0, grad / where(flat, 1.0, 2.0 * out))


def amax(x, dim=None, keepdim=False):
    _check_nonempty(x, "amax")
    return Amax.apply(x, dims=normalize_dims(dim, x.ndim, "amax"), keepdim=keepdim)


def amin(x, dim=None, keepdim=False):
    _check_nonempty(x, "amin")
    return Amax.apply(x, dims=normalize_dims(dim, x.ndim, "amin"), keepdim=keepdim,
                      largest=False)


def _check_nonempty(x, op):
    if x.numel() == 0:
        raise RuntimeError(f"{op}: cannot reduce an empty tensor of shape {x.shape}")


def _max_min(x, dim, keepdim, largest):
    op = "max" if largest else "min"
    if isinstance(dim, Tensor):  # torch.max(a, b) is the elementwise maximum
        from shendu.ops.elementwise import maximum, minimum
        return maximum(x, dim) if largest else minimum(x, dim)
    _check_nonempty(x, op)
    if dim is None:
        return Amax.apply(x, dims=tuple(range(x.ndim)), keepdim=False, largest=largest)
    (axis,) = normalize_dims(dim, x.ndim, op) or (0,)
    xp = x._xp
    data = x._data if x.ndim else x._data.reshape(1)
    indices = (xp.argmax if largest else xp.argmin)(data, axis=axis)
    values = MaxDim.apply(x if x.ndim else x.reshape(1), indices=indices, dim=axis,
                          keepdim=keepdim)
    if not x.ndim:
        values = values.reshape(())
    idx = Tensor._wrap(xp.expand_dims(indices, axis) if keepdim else indices)
    return (MaxResult if largest else MinResult)(values, idx.to(backend.int64))


def max(x, dim=None, keepdim=False):  # noqa: A001 - torch's name
    """``max(x)`` (a 0-d tensor), ``max(x, dim)`` -> (values, indices), or ``max(x, y)``."""
    return _max_min(x, dim, keepdim, largest=True)


def min(x, dim=None, keepdim=False):  # noqa: A001 - torch's name
    return _max_min(x, dim, keepdim, largest=False)


def _arg(x, dim, keepdim, largest):
    xp = x._xp
    fn = xp.argmax if largest else xp.argmin
    if dim is None:
        out = fn(x._data.reshape(-1))
        return Tensor._wrap(xp.asarray(out, dtype=backend.int64).reshape(
            (1,) * x.ndim if keepdim else ()))
    (axis,) = normalize_dims(dim, x.ndim, "argmax" if largest else "argmin") or (None,)
    if axis is None:  # a 0-d tensor: dim 0 / -1 is the tensor itself, index 0
        return Tensor._wrap(xp.zeros((), dtype=backend.int64))
    out = fn(x._data, axis=axis)
    if keepdim:
        out = xp.expand_dims(out, axis)
    return Tensor._wrap(out.astype(backend.int64))


def argmax(x, dim=None, keepdim=False):
    return _arg(x, dim, keepdim, largest=True)


def argmin(x, dim=None, keepdim=False):
    return _arg(x, dim, keepdim, largest=False)


def logsumexp(x, dim, keepdim=False):
    """log(sum(exp(x))) computed stably by factoring out the (detached) max."""
    dims = normalize_dims(dim, x.ndim, "logsumexp")
    shift = Tensor._wrap(x._data.max(axis=dims, keepdims=True))
    shift = Tensor._wrap(x._xp.where(x._xp.isfinite(shift._data), shift._data, 0))
    from shendu.ops.elementwise import where
    total = (x - shift).exp().sum(dims, keepdim=True)
    # a slice of all -inf sums to 0: its value is -inf (as torch) without NumPy's log(0)
    # warning, and its gradient 0 (no element contributes; torch gives nan there)
    empty = total == 0
    out = where(empty, float("-inf"), where(empty, 1.0, total).log()) + shift
    return out if keepdim else out.reshape(tuple(n for i, n in enumerate(out.shape)
                                                 if i not in dims))


def all(x, dim=None, keepdim=False):  # noqa: A001 - torch's name
    dims = normalize_dims(dim, x.ndim, "all")
    return Tensor._wrap(x._xp.asarray(x._data.astype(bool).all(axis=dims, keepdims=keepdim)))


def any(x, dim=None, keepdim=False):  # noqa: A001 - torch's name
    dims = normalize_dims(dim, x.ndim, "any")
    return Tensor._wrap(x._xp.asarray(x._data.astype(bool).any(axis=dims, keepdims=keepdim)))


class Cumsum(Function):
    """Running sum along ``dim``; its adjoint is the running sum from the other end."""

    uses_inputs = False

    def forward(self, a, dim=0):
        self.dim = dim
        return backend.xp_of(a).cumsum(a, axis=dim)

    def backward(self, grad):
        return grad.flip((self.dim,)).cumsum(self.dim).flip((self.dim,))


class Prod(Function):
    """Product over one dim. d prod / d x_i = the product of the others: prod / x_i when no
    factor is 0 (Tensor ops, twice differentiable); with zeros, left and right exclusive
    running products on arrays (a first derivative only)."""

    uses_output = True

    def forward(self, a, dim=0, keepdim=False):
        self.dim, self.keepdim = dim, keepdim
        return a.prod(axis=dim, keepdims=keepdim)

    def backward(self, grad):
        x = self.inputs[0]
        d = self.dim
        out = self.output
        if not self.keepdim:
            grad, out = grad.unsqueeze(d), out.unsqueeze(d)
        xp = x._xp
        if not bool((x._data == 0).any()):
            return grad * out / x
        if is_grad_enabled():
            raise RuntimeError("ProdBackward: a second derivative of prod over an input with "
                               "zeros is not supported")
        data = xp.moveaxis(x._data, d, -1)
        ones = xp.ones(data.shape[:-1] + (1,), dtype=data.dtype)
        left = xp.cumprod(xp.concatenate([ones, data[..., :-1]], axis=-1), axis=-1)
        right = xp.flip(xp.cumprod(xp.flip(xp.concatenate([data[..., 1:], ones], axis=-1),
                                           axis=-1), axis=-1), axis=-1)
        others = Tensor._wrap(xp.moveaxis(left * right, -1, d))
        return grad * others


def cumsum(x, dim, *, dtype=None):
    """Running sum along ``dim`` (integers and bools accumulate in int64, as torch)."""
    from shendu.ops.shape import _dim
    if dtype is not None:
        x = x.to(dtype)
    elif x.dtype.kind in "biu":
        x = x.to(backend.int64)
    if x.ndim == 0:
        return x.clone()
    return Cumsum.apply(x, dim=_dim(dim, x.ndim, "cumsum"))


def prod(x, dim=None, keepdim=False, *, dtype=None):
    """Product of all elements, or over one ``dim``."""
    from shendu.ops.shape import _dim
    if dtype is not None:
        x = x.to(dtype)
    elif x.dtype.kind in "biu":
        x = x.to(backend.int64)
    if dim is None:
        return Prod.apply(x.reshape(-1), dim=0, keepdim=False)
    if isinstance(dim, (tuple, list)):
        raise TypeError(f"prod: dim must be one int (torch's), got {dim!r}")
    if x.ndim == 0:
        return x.clone()
    return Prod.apply(x, dim=_dim(dim, x.ndim, "prod"), keepdim=keepdim)
