"""Shape and indexing ops: reshape, permute, expand, cat, flip, pad, indexing, gather.

These move or copy data without arithmetic; each backward routes the gradient back to where
the data came from (a reshape back, a slice back, a scatter-add back).
"""
from __future__ import annotations

import builtins

from shendu import backend
from shendu.autograd import Function
from shendu.ops.reduce import normalize_dims
from shendu.tensor import Tensor


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def _dim(d, ndim, op, extra=0):
    """One axis index in [-(ndim+extra), ndim+extra) normalized to non-negative."""
    n = ndim + extra
    limit = n if n else 1  # a 0-d tensor accepts dim 0 and -1, as in torch
    if type(d) is not int:
        if isinstance(d, bool) or not isinstance(d, int):
            raise TypeError(f"{op}: dim must be an int, got {d!r} of type {type(d).__name__}")
        d = int(d)
    if not -limit <= d < limit:
        raise IndexError(f"{op}: dim {d} is out of range for a tensor with {ndim} dims "
                         f"(expected an int in [{-limit}, {limit - 1}])")
    return d % n if n else 0


class Reshape(Function):
    uses_inputs = False

    def forward(self, a, shape=()):
        self.in_shape = a.shape
        return a.reshape(shape)

    def backward(self, grad):
        return grad.reshape(self.in_shape)


class Permute(Function):
    uses_inputs = False

    def forward(self, a, dims=()):
        self.inverse = tuple(sorted(range(len(dims)), key=lambda i: dims[i]))
        return backend.xp_of(a).transpose(a, dims)

    def backward(self, grad):
        return grad.permute(*self.inverse)


class Expand(Function):
    uses_inputs = False

    def forward(self, a, shape=()):
        self.in_shape = a.shape
        return backend.xp_of(a).broadcast_to(a, shape)

    def backward(self, grad):
        from shendu.autograd import unbroadcast
        return unbroadcast(grad, self.in_shape)


class Cat(Function):
    uses_inputs = False

    def forward(self, *arrays, dim=0):
        self.dim, self.sizes = dim, [a.shape[dim] for a in arrays]
        return backend.xp_of(arrays[0]).concatenate(arrays, axis=dim)

    def backward(self, grad):
        out, start = [], 0
        for size, need in zip(self.sizes, self.needs_input_grad):
            if need:
                index = (slice(None),) * self.dim + (slice(start, start + size),)
                out.append(grad[index])
            else:
                out.append(None)
            start += size
        return tuple(out)


class Flip(Function):
    uses_inputs = False

    def forward(self, a, dims=()):
        self.dims = dims
        return backend.xp_of(a).flip(a, axis=dims)

    def backward(self, grad):
        return grad.flip(self.dims)


class Pad(Function):
    """Constant padding; ``widths`` is ((before, after), ...) per axis, all >= 0."""

    uses_inputs = False

    def forward(self, a, widths=(), value=0.0):
        self.index = tuple(slice(lo, lo + n) for (lo, _), n in zip(widths, a.shape))
        return backend.xp_of(a).pad(a, widths, mode="constant", constant_values=value)

    def backward(self, grad):
        return grad[self.index]


# --- public functions --------------------------------------------------------------------

def reshape(x, *shape):
    shape = _shape_arg(shape)
    try:
        target = backend.xp_of(x._data).empty((x.numel(),), dtype=bool).reshape(shape).shape
    except ValueError:
        raise RuntimeError(f"reshape: shape {list(shape)} is invalid for input of shape "
                           f"{tuple(x.shape)} ({x.numel()} elements)") from None
    if target == x.shape:
        return x
    return Reshape.apply(x, shape=target)


view = reshape


def permute(x, *dims):
    dims = _shape_arg(dims)
    if len(dims) != x.ndim:
        raise RuntimeError(f"permute: got {len(dims)} dims {dims} for a tensor with {x.ndim} "
                           "dims")
    dims = tuple(_dim(d, x.ndim, "permute") for d in dims)
    if len(set(dims)) != len(dims):
        raise RuntimeError(f"permute: repeated dim in {dims}")
    if dims == tuple(range(x.ndim)):
        return x
    return Permute.apply(x, dims=dims)


def transpose(x, dim0, dim1):
    """Swap two dims (a view in NumPy). Shape: (..., a, ..., b, ...) -> (..., b, ..., a, ...)."""
    ndim = x.ndim
    if ndim == 0:
        return x
    d0, d1 = _dim(dim0, ndim, "transpose"), _dim(dim1, ndim, "transpose")
    if d0 == d1:
        return x
    order = list(range(ndim))
    order[d0], order[d1] = d1, d0
    return Permute.apply(x, dims=tuple(order))  # a valid permutation by construction


def t(x):
    """Transpose a tensor of at most 2 dims (torch.t); 0-d and 1-d tensors come back as is."""
    if x.ndim > 2:
        raise RuntimeError(f"t: expects a tensor with <= 2 dims, got shape {x.shape}; use "
                           "transpose(dim0, dim1) or permute")
    return transpose(x, 0, 1) if x.ndim == 2 else x


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return x.reshape(1)
    start, end = _dim(start_dim, x.ndim, "flatten"), _dim(end_dim, x.ndim, "flatten")
    if start > end:
        raise RuntimeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1:])


def squeeze(x, dim=None):
    if dim is None:
        dims = [i for i, n in enumerate(x.shape) if n == 1]
    else:
        dims = [d for d in normalize_dims(dim, x.ndim, "squeeze") if x.ndim and x.shape[d] == 1]
    return x.reshape(tuple(n for i, n in enumerate(x.shape) if i not in dims))


def unsqueeze(x, dim):
    d = _dim(dim, x.ndim, "unsqueeze", extra=1)
    return x.reshape(x.shape[:d] + (1,) + x.shape[d:])


def expand(x, *sizes):
    sizes = _shape_arg(sizes)
    if len(sizes) < x.ndim:
        raise RuntimeError(f"expand: the number of sizes {len(sizes)} must be at least the "
                           f"tensor's dims {x.ndim} (shape {x.shape})")
    lead = len(sizes) - x.ndim
    target = []
    for i, n in enumerate(sizes):
        own = x.shape[i - lead] if i >= lead else None
        if n == -1:
            if own is None:
                raise RuntimeError("expand: -1 is not allowed for a new leading dim")
            n = own
        if own is not None and own != 1 and own != n:
            raise RuntimeError(f"expand: size {own} at dim {i - lead} of shape {x.shape} cannot "
                               f"be expanded to {n} (target {tuple(sizes)}); only size-1 dims "
                               "can be expanded")
        target.append(n)
    target = tuple(target)
    if target == x.shape:
        return x
    return Expand.apply(x, shape=target)


def repeat(x, *sizes):
    """Tile ``x``: a (a, b) tensor repeated (2, 3) is (2a, 3b)."""
    sizes = _shape_arg(sizes)
    if len(sizes) < x.ndim:
        raise RuntimeError(f"repeat: {len(sizes)} sizes for a tensor with {x.ndim} dims")
    shape = (1,) * (len(sizes) - x.ndim) + x.shape
    interleaved, expanded = [], []
    for r, n in zip(sizes, shape):
        interleaved += [1, n]
        expanded += [r, n]
    out = x.reshape(interleaved).expand(*expanded)
    return out.reshape(tuple(r * n for r, n in zip(sizes, shape)))


def cat(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    first = tensors[0]
    d = _dim(dim, first.ndim, "cat")
    for i, t in enumerate(tensors):
        if t.ndim != first.ndim or any(a != b for j, (a, b) in enumerate(zip(t.shape, first.shape))
                                       if j != d):
            raise RuntimeError(f"cat: tensor {i} has shape {t.shape}, which does not match "
                               f"tensor 0's shape {first.shape} outside dim {dim}")
    dtype = first.dtype
    for t in tensors[1:]:
        if t.dtype != dtype:
            from shendu.ops.elementwise import promote
            dtype = promote(dtype, t.dtype)
    tensors = [t.to(dtype) for t in tensors]
    return Cat.apply(*tensors, dim=d)


concatenate = cat


def stack(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise RuntimeError(f"stack: expects each tensor to be equal size, but got "
                               f"{tensors[0].shape} at entry 0 and {t.shape} at entry {i}")
    d = _dim(dim, tensors[0].ndim, "stack", extra=1)
    return cat([t.unsqueeze(d) for t in tensors], d)


def split(x, split_size_or_sections, dim=0):
    d = _dim(dim, x.ndim, "split")
    n = x.shape[d]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: split_size must be positive, got {split_size_or_sections}")
        sizes = [split_size_or_sections] * (n // split_size_or_sections)
        if n % split_size_or_sections or n == 0:  # torch gives one empty piece for n == 0
            sizes.append(n % split_size_or_sections)
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise RuntimeError(f"split: sections {sizes} sum to {builtins.sum(sizes)}, but dim "
                               f"{dim} has size {n}")
    out, start = [], 0
    for size in sizes:
        out.append(x[(slice(None),) * d + (slice(start, start + size),)])
        start += size
    return tuple(out)


def chunk(x, chunks, dim=0):
    d = _dim(dim, x.ndim, "chunk")
    if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks <= 0:
        raise ValueError(f"chunk: chunks must be a positive int, got {chunks!r}")
    if x.shape[d] == 0:  # torch returns `chunks` empty pieces
        return split(x, [0] * chunks, d)
    size = -(-x.shape[d] // chunks)
    return split(x, size, d)


def flip(x, dims):
    dims = normalize_dims(dims, x.ndim, "flip")
    return Flip.apply(x, dims=dims)


def _triangle(x, diagonal, lower):
    from shendu.ops.elementwise import where
    if x.ndim < 2:
        raise RuntimeError(f"{'tril' if lower else 'triu'}: input must have at least 2 dims, "
                           f"got shape {x.shape}")
    xp = x._xp
    rows, cols = x.shape[-2:]
    ones = xp.ones((rows, cols), dtype=bool)
    mask = xp.tril(ones, diagonal) if lower else xp.triu(ones, diagonal)
    return where(Tensor._wrap(mask), x, 0)


def tril(x, diagonal=0):
    return _triangle(x, diagonal, lower=True)


def triu(x, diagonal=0):
    return _triangle(x, diagonal, lower=False)


def pad(x, pad, mode="constant", value=0.0):
    """torch.nn.functional.pad: ``pad`` lists (left, right) pairs starting from the last dim."""
    if mode != "constant":
        raise ValueError(f"pad: mode {mode!r} is not supported; expected 'constant'")
    pad = tuple(pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: expected an even number of pads, at most 2 per dim, got {pad} "
                         f"for a tensor of shape {x.shape}")
    if any(p < 0 for p in pad):
        raise ValueError(f"pad: negative padding {pad} is not supported")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    return Pad.apply(x, widths=tuple(widths), value=value)
