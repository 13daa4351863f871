"""Sorting and selection: sort, argsort, topk, unique, and multinomial sampling.

The values of sort and topk are a gather of the input at the sorted indices, so their
gradient is a scatter back to where each value came from; the indices (and unique's outputs)
carry no gradient, as in torch.
"""
from __future__ import annotations

from collections import namedtuple

from shendu import backend
from shendu.ops.shape import _dim
from shendu.tensor import Tensor

SortResult = namedtuple("sort", ["values", "indices"])
TopKResult = namedtuple("topk", ["values", "indices"])


def _check(x, op):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    return x


def _sort_indices(x, dim, descending, op):
    xp = x._xp
    data = x._data
    if descending:
        if data.dtype.kind == "b":
            data = ~data
        elif data.dtype.kind == "u":
            data = data.max() - data if data.size else data
        else:
            data = -data
    # a stable sort keeps equal values in input order, which torch's stable=True promises
    # and its default often gives too
    return xp.argsort(data, axis=dim, kind="stable")


def argsort(input, dim=-1, descending=False, stable=False):
    """Indices that sort ``input`` along ``dim`` (ascending unless descending)."""
    x = _check(input, "argsort")
    if x.ndim == 0:
        return Tensor._wrap(x._xp.zeros((), dtype=backend.int64))
    d = _dim(dim, x.ndim, "argsort")
    return Tensor._wrap(_sort_indices(x, d, descending, "argsort").astype(backend.int64))


def sort(input, dim=-1, descending=False, stable=False):
    """(values, indices) of ``input`` sorted along ``dim``; values are differentiable."""
    x = _check(input, "sort")
    if x.ndim == 0:
        return SortResult(x.clone(), Tensor._wrap(x._xp.zeros((), dtype=backend.int64)))
    d = _dim(dim, x.ndim, "sort")
    indices = Tensor._wrap(_sort_indices(x, d, descending, "sort").astype(backend.int64))
    return SortResult(x.gather(d, indices), indices)


def topk(input, k, dim=-1, largest=True, sorted=True):  # noqa: A002 - torch's name
    """(values, indices) of the k largest (or smallest) entries along ``dim``."""
    x = _check(input, "topk")
    d = _dim(dim, x.ndim, "topk") if x.ndim else 0
    size = x.shape[d] if x.ndim else 1
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= size:
        raise RuntimeError(f"topk: k ({k!r}) must be an int in [0, {size}], the size of dim "
                           f"{dim} of shape {x.shape}")
    if x.ndim == 0:
        return TopKResult(x.clone(), Tensor._wrap(x._xp.zeros((), dtype=backend.int64)))
    order = _sort_indices(x, d, largest, "topk")
    index = (slice(None),) * d + (slice(0, k),)
    indices = Tensor._wrap(order[index].astype(backend.int64))
    return TopKResult(x.gather(d, indices), indices)


def unique(input, sorted=True, return_inverse=False, return_counts=False,  # noqa: A002
           dim=None):
    """The distinct values of ``input`` (flattened, or distinct slices along ``dim``), sorted;
    with ``return_inverse`` also each element's index into them (input's shape), with
    ``return_counts`` how often each occurs. The values come sorted even with sorted=False
    (torch leaves that order unspecified, so sorted is one valid answer)."""
    x = _check(input, "unique")
    xp = x._xp
    data = x._data
    if dim is None:
        flat = data.reshape(-1)
        values, inverse, counts = xp.unique(flat, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(data.shape)
    else:
        d = _dim(dim, x.ndim, "unique")
        values, inverse, counts = xp.unique(data, return_inverse=True, return_counts=True,
                                            axis=d)
        inverse = inverse.reshape(-1)
    out = [Tensor._wrap(values)]
    if return_inverse:
        out.append(Tensor._wrap(inverse.astype(backend.int64)))
    if return_counts:
        out.append(Tensor._wrap(counts.astype(backend.int64)))
    return out[0] if len(out) == 1 else tuple(out)


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """Draw ``num_samples`` category indices per row, with probabilities proportional to the
    non-negative weights in ``input``; without replacement each category appears at most once
    (the Gumbel-top-k trick: the k largest of log w + Gumbel noise).

    Shape: input (C,) or (N, C) -> (num_samples,) or (N, num_samples), int64.
    """
    op = "multinomial"
    x = _check(input, op)
    if x.ndim not in (1, 2) or not backend.is_floating(x.dtype):
        raise RuntimeError(f"{op}: expected a 1-D or 2-D floating point tensor of weights, got "
                           f"shape {x.shape} and dtype {x.dtype}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise RuntimeError(f"{op}: num_samples must be a positive int, got {num_samples!r}")
    xp = x._xp
    w = x._data.reshape(-1, x.shape[-1]).astype(backend.float64)
    rows, classes = w.shape
    if not bool(xp.isfinite(w).all()) or bool((w < 0).any()):
        raise RuntimeError(f"{op}: weights must be finite and non-negative")
    nonzero = (w > 0).sum(axis=1)
    if bool((nonzero == 0).any()):
        raise RuntimeError(f"{op}: a row of weights sums to 0; every row needs a positive "
                           "weight")
    if not replacement and num_samples > int(nonzero.min()):
        raise RuntimeError(f"{op}: cannot draw {num_samples} samples without replacement from "
                           f"a row with only {int(nonzero.min())} non-zero weights")
    if generator is None:
        generator = backend.default_generator(x.device)
    if replacement:
        # inverse CDF, all rows in one searchsorted: row r's CDF is shifted into [r, r + 1]
        cdf = xp.cumsum(w, axis=1)
        cdf /= cdf[:, -1:]
        shift = xp.arange(rows, dtype=backend.float64)[:, None]
        u = generator.random((rows, num_samples), backend.float64)
        picked = xp.searchsorted((cdf + shift).reshape(-1), (u + shift).reshape(-1),
                                 side="right").reshape(rows, num_samples)
        picked = xp.minimum(picked - (shift.astype(backend.int64) * classes), classes - 1)
    else:
        # u in (0, 1) strictly and log of positive weights only: no log(0) warnings
        u = xp.clip(generator.random((rows, classes), backend.float64), 1e-300, 1 - 1e-16)
        keys = xp.log(xp.where(w > 0, w, 1.0)) - xp.log(-xp.log(u))  # log w + Gumbel(0, 1)
        keys = xp.where(w > 0, keys, -xp.inf)
        picked = xp.argsort(-keys, axis=1, kind="stable")[:, :num_samples]
    picked = picked.astype(backend.int64)
    return Tensor._wrap(picked.reshape(num_samples) if x.ndim == 1 else picked)
