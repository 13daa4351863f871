"""Max, average and adaptive (average and max) pooling over NCHW images (torch.nn.functional semantics).

Concept: N2.3 (pooling: no parameters, max and average).

Every pool loops over the kh*kw kernel offsets on strided slices of the input, never over the
batch or pixels. Max pooling keeps the kernel offset of each window's first maximum, so its
backward is kh*kw masked copies instead of a scatter-add; when the windows tile the input
(stride == kernel) average pooling is a reshape and a sum.
"""
from __future__ import annotations

from shendu import backend
from shendu.autograd import Function, is_grad_enabled
from shendu.ops import pool_kernels
from shendu.tensor import Tensor


def _taps(size, out, k, s, d, p):
    """Per kernel offset j: (output slice, input slice) of the outputs o whose input index
    o*s + j*d - p lies in [0, size), or None when every such index falls in the padding."""
    taps = []
    for j in range(k):
        off = j * d - p
        lo, hi = max(0, -(off // s)), min(out, (size - 1 - off) // s + 1)
        if hi <= lo:
            taps.append(None)
            continue
        start = lo * s + off
        taps.append((slice(lo, hi), slice(start, start + (hi - lo - 1) * s + 1, s)))
    return taps


def _pair(value, name, op, low=1):
    """An int or a pair of ints, each >= low, as a tuple (h, w)."""
    pair = (value, value) if isinstance(value, int) else value
    if (not isinstance(pair, (tuple, list)) or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair)):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < low:
        raise ValueError(f"{op}: {name} must be >= {low}, got {value!r}")
    return tuple(pair)


def _batched(x, op):
    """(x as (N, C, H, W), whether it was a single (C, H, W) image)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(x).__name__}")
    if x.ndim == 3:
        return x.unsqueeze(0), True
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape "
                         f"{tuple(x.shape)}")
    return x, False


# --- pooling: loops over the kh*kw kernel offsets on strided slices -------------------------
# pool = ((kh, kw), (sh, sw), (ph, pw), (dh, dw), (Ho, Wo))

def _pool_taps(shape, pool):
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (ho, wo) = pool
    rows = _taps(shape[2], ho, kh, sh, dh, ph)
    cols = _taps(shape[3], wo, kw, sw, dw, pw)
    return [(i * kw + j, r, q) for i, r in enumerate(rows) for j, q in enumerate(cols)
            if r is not None and q is not None]


def _disjoint(pool):
    (kh, kw), (sh, sw), _, (dh, dw), _ = pool
    return dh == 1 and dw == 1 and sh >= kh and sw >= kw


def _window_max(x, pool):
    """Max over each window; NaN propagates (xp.maximum), as in torch."""
    xp = backend.xp_of(x)
    best = None
    for _, r, q in _pool_taps(x.shape, pool):
        window = x[:, :, r[1], q[1]]
        if best is None and window.shape[2:] == pool[4]:
            best = window.copy()
            continue
        if best is None:
            best = xp.full(x.shape[:2] + pool[4], -xp.inf, dtype=x.dtype)
        kept = best[:, :, r[0], q[0]]
        xp.maximum(kept, window, out=kept)
    return best


def _index_dtype(xp, pool):
    return xp.int8 if pool[0][0] * pool[0][1] <= 127 else xp.int32


def _argmax_offsets(x, best, pool):
    """Kernel offset (i*kW + j) of each window's first maximum; for a window holding NaN, its
    last NaN (torch's rule: a NaN always replaces the running maximum)."""
    xp = backend.xp_of(x)
    idx = xp.empty(best.shape, dtype=_index_dtype(xp, pool))
    taps = _pool_taps(x.shape, pool)
    # the earliest maximum is written last, so it wins ties; idx += hit * (o - idx) keeps the
    # loop branch-free (a masked copy is several times slower on random masks)
    for o, r, q in reversed(taps):
        kept = idx[:, :, r[0], q[0]]
        hit = x[:, :, r[1], q[1]] == best[:, :, r[0], q[0]]
        kept += hit * (o - kept).astype(idx.dtype, copy=False)
    if xp.isnan(best).any():
        for o, r, q in taps:
            xp.copyto(idx[:, :, r[0], q[0]], o, where=xp.isnan(x[:, :, r[1], q[1]]))
    return idx


def _route(g, hit, finite, out=None):
    """g where hit else 0: a product when g is finite (0 * inf would be NaN)."""
    xp = backend.xp_of(g)
    if out is None:
        out = xp.empty(g.shape, dtype=g.dtype)
    if finite:
        return xp.multiply(g, hit, out=out)
    out[...] = xp.where(hit, g, 0)
    return out


def _max_pool(x, pool):
    """(maxima, arg-max offsets) of x's windows: one compiled sweep, or the NumPy passes."""
    if pool_kernels.takes_2x2(pool, x.shape) and pool_kernels.available(x):
        return pool_kernels.max_pool_2x2(x, pool, _index_dtype(backend.xp_of(x), pool))
    best = _window_max(x, pool)
    return best, _argmax_offsets(x, best, pool)


class MaxPool2d(Function):
    """Max over each window. The NumPy reference finds the arg-max offsets in backward, from
    x and the saved maxima, so a forward pass without grad pays only for the maxima; the
    compiled kernel finds both in one sweep (pool_kernels)."""

    def forward(self, x, pool=None):
        self.pool, self.saved_idx = pool, None
        if self.needs_input_grad[0] and pool_kernels.takes_2x2(pool, x.shape) and \
                pool_kernels.available(x):
            best, self.saved_idx = _max_pool(x, pool)
        else:
            best = _window_max(x, pool)
        self.saved_best = best
        return best

    def backward(self, grad):
        x = self.inputs[0]._data
        idx = self.saved_idx if self.saved_idx is not None else \
            _argmax_offsets(x, self.saved_best, self.pool)
        return _MaxPoolScatter.apply(grad, idx=idx, pool=self.pool, in_shape=x.shape)


def _tiles(shape, pool):
    """True when windows are stride == kernel blocks without padding or dilation."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (ho, wo) = pool
    return ((sh, sw, ph, pw, dh, dw) == (kh, kw, 0, 0, 1, 1)
            and ho * kh <= shape[2] and wo * kw <= shape[3])


class _MaxPoolScatter(Function):
    """Route each output gradient to its window's arg-max input (max_pool2d's backward)."""

    uses_inputs = False

    def forward(self, g, idx=None, pool=None, in_shape=None):
        xp = backend.xp_of(g)
        self.saved_idx, self.pool = idx, pool
        disjoint = _disjoint(pool)
        if disjoint and pool_kernels.available(g):  # one sweep, each pixel written once
            return pool_kernels.max_pool_scatter(g, idx, pool, in_shape)
        whole = _tiles(in_shape, pool) and in_shape[2:] == (pool[4][0] * pool[0][0],
                                                           pool[4][1] * pool[0][1])
        out = (xp.empty if whole else xp.zeros)(in_shape, dtype=g.dtype)
        finite = bool(xp.isfinite(g).all())
        for o, r, q in _pool_taps(in_shape, pool):
            hit = idx[:, :, r[0], q[0]] == o
            if disjoint:
                _route(g[:, :, r[0], q[0]], hit, finite, out=out[:, :, r[1], q[1]])
            else:
                out[:, :, r[1], q[1]] += _route(g[:, :, r[0], q[0]], hit, finite)
        return out

    def backward(self, grad):
        return _MaxPoolGather.apply(grad, idx=self.saved_idx, pool=self.pool)


class _MaxPoolGather(Function):
    """Pick each window's arg-max entry of x (the adjoint of _MaxPoolScatter)."""

    uses_inputs = False

    def forward(self, x, idx=None, pool=None):
        xp = backend.xp_of(x)
        self.saved_idx, self.pool, self.in_shape = idx, pool, x.shape
        out = xp.zeros(idx.shape, dtype=x.dtype)
        for o, r, q in _pool_taps(x.shape, pool):
            xp.copyto(out[:, :, r[0], q[0]], x[:, :, r[1], q[1]],
                      where=idx[:, :, r[0], q[0]] == o)
        return out

    def backward(self, grad):
        return _MaxPoolScatter.apply(grad, idx=self.saved_idx, pool=self.pool,
                                     in_shape=self.in_shape)


class AvgPool2d(Function):
    """y = (sum over each window) / divisor, divisor an (Ho, Wo) array."""

    uses_inputs = False

    def forward(self, x, pool=None, divisor=None):
        xp = backend.xp_of(x)
        (kh, kw), _, _, _, (ho, wo) = pool
        n, c = x.shape[:2]
        self.pool, self.divisor, self.in_shape = pool, divisor, x.shape
        if _tiles(x.shape, pool):
            blocks = x[:, :, :ho * kh, :wo * kw].reshape(n, c, ho, kh, wo, kw)
            return blocks.sum(axis=(3, 5)) / divisor
        out = xp.zeros((n, c, ho, wo), dtype=x.dtype)
        for _, r, q in _pool_taps(x.shape, pool):
            out[:, :, r[0], q[0]] += x[:, :, r[1], q[1]]
        out /= divisor
        return out

    def backward(self, grad):
        return _AvgPoolScatter.apply(grad, pool=self.pool, divisor=self.divisor,
                                     in_shape=self.in_shape)


class _AvgPoolScatter(Function):
    """Spread g / divisor evenly over each window (the adjoint of AvgPool2d)."""

    uses_inputs = False

    def forward(self, g, pool=None, divisor=None, in_shape=None):
        xp = backend.xp_of(g)
        (kh, kw), _, _, _, (ho, wo) = pool
        n, c = g.shape[:2]
        self.pool, self.divisor = pool, divisor
        share = g / divisor
        if _tiles(in_shape, pool):
            spread = xp.broadcast_to(share[:, :, :, None, :, None], (n, c, ho, kh, wo, kw))
            spread = spread.reshape(n, c, ho * kh, wo * kw)
            if spread.shape == in_shape:
                return spread
            out = xp.zeros(in_shape, dtype=g.dtype)
            out[:, :, :ho * kh, :wo * kw] = spread
            return out
        out = xp.zeros(in_shape, dtype=g.dtype)
        for _, r, q in _pool_taps(in_shape, pool):
            out[:, :, r[1], q[1]] += share[:, :, r[0], q[0]]
        return out

    def backward(self, grad):
        return AvgPool2d.apply(grad, pool=self.pool, divisor=self.divisor)


# --- public functions --------------------------------------------------------------------

def _pool_out(size, k, s, p, d, ceil_mode):
    """torch's pooling_output_shape: the last window must start inside the input or the
    left padding."""
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _pool_geometry(op, x, kernel_size, stride, padding, dilation, ceil_mode):
    kernel = _pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None or stride == () or stride == [] \
        else _pair(stride, "stride", op)
    padding, dilation = _pair(padding, "padding", op, low=0), _pair(dilation, "dilation", op)
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(f"{op}: padding {padding} should be at most half of kernel_size "
                         f"{kernel}")
    if not backend.is_floating(x.dtype):
        raise TypeError(f"{op}: expected a floating-point input, got {x.dtype}")
    out = tuple(_pool_out(n, k, s, p, d, ceil_mode) for n, k, s, p, d in
                zip(x.shape[2:], kernel, stride, padding, dilation))
    if min(out) < 1:
        raise RuntimeError(f"{op}: input {tuple(x.shape)} is too small for kernel_size {kernel}"
                           f" with padding {padding} and dilation {dilation}: output size "
                           f"{out}")
    return kernel, stride, padding, dilation, out


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over each kh x kw window (padding counts as -inf); gradient goes to the first
    maximum of each window, as in torch.

    Concept: N2.3 (max pooling).

    Args:
        kernel_size, stride (default kernel_size), padding (<= kernel_size // 2), dilation:
        int or (h, w). ceil_mode: round the output size up. return_indices: also return the
        arg-max as flat indices into each H*W plane (int64).

    Shape:
        input (N, C, H, W) or (C, H, W) -> output (N, C, Ho, Wo) or (C, Ho, Wo).

    >>> import shendu
    >>> from shendu.ops.pool import max_pool2d
    >>> max_pool2d(shendu.randn(2, 3, 8, 8), 2).shape
    (2, 3, 4, 4)
    """
    x, single = _batched(input, "max_pool2d")
    pool = _pool_geometry("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
    if return_indices and not (is_grad_enabled() and x.requires_grad):
        best, offset = _max_pool(x._data, pool)
        y = Tensor._wrap(best)
    else:
        y = MaxPool2d.apply(x, pool=pool)
        saved = getattr(y.grad_fn, "saved_idx", None)  # the kernel's forward found them
        offset = None if not return_indices else \
            saved if saved is not None else _argmax_offsets(x._data, y._data, pool)
    if not return_indices:
        return y.squeeze(0) if single else y
    xp = x._xp
    (_kh, kw), (sh, sw), (ph, pw), (dh, dw), (ho, wo) = pool
    offset = offset.astype(xp.int64)
    rows = (xp.arange(ho) * sh - ph)[:, None] + (offset // kw) * dh     # (N, C, Ho, Wo)
    cols = xp.arange(wo) * sw - pw + (offset % kw) * dw
    indices = Tensor._wrap(rows * x.shape[3] + cols)
    if single:
        return y.squeeze(0), indices.squeeze(0)
    return y, indices


def _avg_divisor(xp, size, out, k, s, p, count_include_pad):
    """Per-axis window sizes as torch's avg_pool2d counts them."""
    start = xp.arange(out) * s - p
    end = xp.minimum(start + k, size + p)
    if count_include_pad:
        return end - start
    return xp.minimum(end, size) - xp.maximum(start, 0)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Mean over each kh x kw window: y = window sum / divisor, the divisor counting the
    zero padding when count_include_pad (never the ceil_mode overhang), or divisor_override.

    Concept: N2.3 (average pooling).

    Shape:
        input (N, C, H, W) or (C, H, W) -> output (N, C, Ho, Wo) or (C, Ho, Wo).

    >>> import shendu
    >>> from shendu.ops.pool import avg_pool2d
    >>> avg_pool2d(shendu.randn(2, 3, 8, 8), 2).shape
    (2, 3, 4, 4)
    """
    x, single = _batched(input, "avg_pool2d")
    pool = _pool_geometry("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    xp = x._xp
    if divisor_override is not None:
        if not isinstance(divisor_override, int) or divisor_override <= 0:
            raise ValueError(f"avg_pool2d: divisor_override must be a positive int, got "
                             f"{divisor_override!r}")
        divisor = xp.full(pool[4], divisor_override, dtype=x.dtype)
    else:
        dh, dw = (_avg_divisor(xp, n, out, k, s, p, count_include_pad) for n, out, k, s, p in
                  zip(x.shape[2:], pool[4], pool[0], pool[1], pool[2]))
        divisor = (dh[:, None] * dw[None, :]).astype(x.dtype)                 # (Ho, Wo)
    y = AvgPool2d.apply(x, pool=pool, divisor=divisor)
    return y.squeeze(0) if single else y


def _adaptive_matrix(xp, size, out, dtype):
    """(out, size) averaging matrix over torch's adaptive windows
    [floor(i*size/out), ceil((i+1)*size/out))."""
    i = xp.arange(out)
    start, end = (i * size) // out, -((-(i + 1) * size) // out)
    pos = xp.arange(size)
    inside = (pos >= start[:, None]) & (pos < end[:, None])
    return (inside / (end - start)[:, None]).astype(dtype)


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed output size: output cell i averages the input range
    [floor(i*H/Ho), ceil((i+1)*H/Ho)) along each axis (None keeps the input size).

    Concept: N2.3 (average pooling; global average pooling when output_size is 1).

    Shape:
        input (N, C, H, W) or (C, H, W) -> output (N, C, Ho, Wo) or (C, Ho, Wo).

    >>> import shendu
    >>> from shendu.ops.pool import adaptive_avg_pool2d
    >>> adaptive_avg_pool2d(shendu.randn(2, 3, 7, 7), 1).shape
    (2, 3, 1, 1)
    """
    x, single = _batched(input, "adaptive_avg_pool2d")
    if not backend.is_floating(x.dtype):
        raise TypeError(f"adaptive_avg_pool2d: expected a floating-point input, got {x.dtype}")
    h, w = x.shape[2:]
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        output_size = tuple(n if o is None else o for o, n in zip(output_size, (h, w)))
    ho, wo = _pair(output_size, "output_size", "adaptive_avg_pool2d")
    if (ho, wo) == (1, 1):
        y = x.mean(dim=(2, 3), keepdim=True)
    elif h % ho == 0 and w % wo == 0:
        y = avg_pool2d(x, (h // ho, w // wo))
    else:
        xp = x._xp
        rows = Tensor._wrap(_adaptive_matrix(xp, h, ho, x.dtype))       # (Ho, H)
        cols = Tensor._wrap(_adaptive_matrix(xp, w, wo, x.dtype).T)     # (W, Wo)
        y = rows @ x @ cols
    return y.squeeze(0) if single else y


def _adaptive_windows(xp, size, out):
    """(out, k) input indices of torch's adaptive windows [floor(i*size/out),
    ceil((i+1)*size/out)), k the widest window; narrower windows repeat their last index
    (a repeat cannot change a maximum)."""
    i = xp.arange(out)
    start, end = (i * size) // out, -((-(i + 1) * size) // out)
    width = int((end - start).max())
    return xp.minimum(start[:, None] + xp.arange(width), end[:, None] - 1)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max pooling to a fixed output size over the windows of adaptive_avg_pool2d; the
    gradient goes to each window's first maximum.

    The windows are gathered (two index_selects) into (N, C, Ho, Wo, kh*kw) and reduced
    with max(dim=-1), so the backward is that of the gather and the max.

    Shape:
        input (N, C, H, W) or (C, H, W) -> output (N, C, Ho, Wo) or (C, Ho, Wo); indices
        (int64, with return_indices) are flat positions in each H*W plane.
    """
    op = "adaptive_max_pool2d"
    x, single = _batched(input, op)
    if not backend.is_floating(x.dtype):
        raise TypeError(f"{op}: expected a floating-point input, got {x.dtype}")
    n, c, h, w = x.shape
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        output_size = tuple(s if o is None else o for o, s in zip(output_size, (h, w)))
    ho, wo = _pair(output_size, "output_size", op)
    if h == 0 or w == 0:
        raise RuntimeError(f"{op}: input {tuple(input.shape)} has an empty spatial dim")
    xp = x._xp
    rows, cols = _adaptive_windows(xp, h, ho), _adaptive_windows(xp, w, wo)   # (Ho, kh), (Wo, kw)
    kh, kw = rows.shape[1], cols.shape[1]
    windows = x.index_select(2, Tensor._wrap(rows.reshape(-1)))
    windows = windows.index_select(3, Tensor._wrap(cols.reshape(-1)))        # (N, C, Ho*kh, Wo*kw)
    windows = windows.reshape(n, c, ho, kh, wo, kw).permute(0, 1, 2, 4, 3, 5)
    y, offset = windows.reshape(n, c, ho, wo, kh * kw).max(dim=-1)
    if single:
        y = y.squeeze(0)
    if not return_indices:
        return y
    off = offset._data                                                       # (N, C, Ho, Wo)
    r = rows[xp.arange(ho)[:, None], off // kw]
    q = cols[xp.arange(wo), off % kw]
    flat = (r * w + q).astype(backend.int64)
    indices = Tensor._wrap(flat)
    return (y, indices.squeeze(0) if single else indices)
