"""Indexing ops: ``x[index]`` (ints, slices, None, Ellipsis, integer arrays, bool masks),
index_select, gather, masked_fill.

Each backward scatters the gradient back to the positions it was read from; repeated indices
accumulate (scatter-add), so ``x[[0, 0]]`` sends twice the gradient to row 0.
"""
from __future__ import annotations

from shendu import backend
from shendu.autograd import Function
from shendu.ops.shape import _dim
from shendu.tensor import Tensor


def _normalize_index(index, x):
    """Replace Tensors and lists inside an index by xp arrays, validating bool masks."""
    items = index if isinstance(index, tuple) else (index,)
    xp, out, advanced = x._xp, [], False
    for item in items:
        if isinstance(item, Tensor):
            item = item._data
        elif isinstance(item, list):
            item = xp.asarray(item)
        if backend.is_array(item):
            if item.dtype.kind not in "biu":
                raise IndexError(f"getitem: tensors used as indices must be long or bool, got "
                                 f"{item.dtype}")
            advanced = True
        out.append(item)
    return tuple(out), advanced


class GetItem(Function):
    uses_inputs = False

    def forward(self, a, index=(), advanced=False):
        self.in_shape, self.index, self.advanced = a.shape, index, advanced
        try:
            return a[index]
        except IndexError as err:
            raise IndexError(f"getitem: index {_describe(index)} is invalid for a tensor of "
                             f"shape {a.shape}: {err}") from None

    def backward(self, grad):
        return IndexAdd.apply(grad, shape=self.in_shape, index=self.index,
                              advanced=self.advanced)


class IndexAdd(Function):
    """zeros(shape) with ``grad`` added at ``index`` (repeated indices accumulate)."""

    uses_inputs = False

    def forward(self, grad, shape=(), index=(), advanced=False):
        self.index, self.advanced = index, advanced
        out = backend.xp_of(grad).zeros(shape, dtype=grad.dtype)
        if advanced:
            backend.scatter_add(out, index, grad)
        else:
            out[index] = grad
        return out

    def backward(self, grad):
        return GetItem.apply(grad, index=self.index, advanced=self.advanced)


def _describe(index):
    parts = []
    for item in index:
        parts.append(f"array(shape={item.shape}, dtype={item.dtype})"
                     if backend.is_array(item) else repr(item))
    return "[" + ", ".join(parts) + "]"


class Gather(Function):
    uses_inputs = False

    def forward(self, a, index=None, dim=0):
        self.in_shape, self.dim, self.saved_index = a.shape, dim, index
        return backend.xp_of(a).take_along_axis(a, index, axis=dim)

    def backward(self, grad):
        return ScatterAdd.apply(grad, shape=self.in_shape, index=self.saved_index, dim=self.dim)


class ScatterAdd(Function):
    """zeros(shape) with ``src`` added along ``dim`` at ``index`` (gather's adjoint)."""

    uses_inputs = False

    def forward(self, src, shape=(), index=None, dim=0):
        xp = backend.xp_of(src)
        self.saved_index, self.dim = index, dim
        grids = list(xp.indices(index.shape, sparse=True))
        grids[dim] = index
        out = xp.zeros(shape, dtype=src.dtype)
        backend.scatter_add(out, tuple(grids), src)
        return out

    def backward(self, grad):
        return Gather.apply(grad, index=self.saved_index, dim=self.dim)


# --- public functions ----------------------------------------------------------------------

def getitem(x, index):
    index, advanced = _normalize_index(index, x)
    return GetItem.apply(x, index=index, advanced=advanced)


def index_select(x, dim, index):
    d = _dim(dim, x.ndim, "index_select")
    if not isinstance(index, Tensor) or index.ndim > 1 or index.dtype.kind not in "iu":
        got = (f"{index.dtype} of shape {index.shape}" if isinstance(index, Tensor)
               else type(index).__name__)
        raise IndexError(f"index_select: index must be a 1-D integer tensor, got {got}")
    return GetItem.apply(x, index=(slice(None),) * d + (index._data,), advanced=True)


def gather(x, dim, index):
    d = _dim(dim, x.ndim, "gather")
    if not isinstance(index, Tensor) or index.dtype.kind not in "iu":
        got = index.dtype if isinstance(index, Tensor) else type(index).__name__
        raise TypeError(f"gather: index must be an integer tensor, got {got}")
    if index.ndim != x.ndim or any(index.shape[i] > x.shape[i] for i in range(x.ndim) if i != d):
        raise RuntimeError(f"gather: index of shape {index.shape} does not fit input of shape "
                           f"{x.shape} (same dims, and no larger outside dim {dim})")
    if index.numel():
        low, high = int(index.data.min()), int(index.data.max())
        if low < 0 or high >= x.shape[d]:  # torch refuses negative indices too
            raise IndexError(f"gather: index {low if low < 0 else high} is out of range for "
                             f"dim {dim} of size {x.shape[d]} (input shape {x.shape}); valid "
                             f"indices are 0..{x.shape[d] - 1}")
    source = x
    if any(index.shape[i] != x.shape[i] for i in range(x.ndim) if i != d):
        source = x[tuple(slice(0, index.shape[i]) if i != d else slice(None)
                         for i in range(x.ndim))]
    return Gather.apply(source, index=index._data, dim=d)


def masked_fill(x, mask, value):
    """``x`` with ``value`` where ``mask`` is true; the mask broadcasts to ``x``'s shape.

    A 0-d tensor ``value`` stays in the graph (torch's rule) and takes ``x``'s dtype.
    """
    from shendu.ops.elementwise import broadcast_shape, where
    if not isinstance(mask, Tensor) or mask.dtype != backend.bool_:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(f"masked_fill: mask must be a bool tensor, got {got}")
    if mask.shape != x.shape:
        try:
            target = broadcast_shape("masked_fill", mask.shape, x.shape)
        except RuntimeError:
            target = None
        if target != x.shape:  # the output never grows beyond the input
            raise RuntimeError(f"masked_fill: mask of shape {mask.shape} cannot be broadcast "
                               f"to the input's shape {x.shape}")
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise RuntimeError(f"masked_fill: value must be a 0-d tensor or a number, got "
                               f"shape {value.shape}")
        value = value.to(x.dtype)
    return where(mask, value, x)
