"""Convolution over NCHW images, with torch.nn.functional's signatures.

Concept: N2.3 (convolution, padding, stride) and N6.1 (transposed convolution).

conv2d, conv_transpose2d and the weight gradient are three bilinear maps, each the adjoint of
another: the gradient of conv2d w.r.t. its input is conv_transpose2d, the gradient of
conv_transpose2d w.r.t. its input is conv2d, and the weight gradient's own gradients are the
other two. Every backward is built from these Functions, so gradients of gradients exist.

The NumPy reference is im2col on strided slices plus matrix products. Loops run only over
the kh*kw kernel offsets, never over the batch or pixels. Two patch layouts, whichever moves
fewer floats (both measured in benchmarks/ops.py):
  full: cols (C, kh, kw, N, Ho, Wo), channel-major, so the batch joins the columns of one
        GEMM per group with K = C*kh*kw (a GEMM per image, as first written, was 1.1-2.4x
        slower on the layers of benchmarks/all.py: ResNet-20's 7x7 and VGG's 2x2-4x4 layers
        made 64-128 small products that OpenBLAS ran on one core).
  rows: (stride 1 along H) only the kw shifts are copied, channel-major, onto a grid of
        rows shared by the batch, x3 (C, kw, R, Wo): image n's rows start at grid row
        n*period, and one gap of zero rows is the bottom padding of one image and the top
        padding of the next (_row_grid). Kernel row i then reads the grid i*dh rows further
        down, so one GEMM of all kh kernel rows (M = kh*O, K = C*kw) reads x3 in place, and
        the kh row blocks of its product, each read i*dh rows further down every image, sum
        to (O, N, Ho, Wo) memory, returned as an (N, O, Ho, Wo) view (every op accepts it;
        the next conv reads it without a copy).
Beside it, compiled direct kernels (shendu/ops/conv_kernels.py, numba) for 3x3 'same'
convolutions at stride 1: the third layout, "direct", reads one zero-padded copy of the input
(its "tall planes") instead of GEMMs on patches. ``_choose`` alone picks the layout of every
convolution, forward and both gradients, from the shape and the measurements it cites. With
numba col2im's sums also run as a parallel kernel (2-7x NumPy's strided adds on the layers of
benchmarks/all.py), the same sums in the same order, so the NumPy loop stays its bitwise
reference. The patch copies stay NumPy's: numba copy kernels measured 1.5-4x slower.
"""
from __future__ import annotations

from collections import namedtuple

from shendu import backend, threads
from shendu.autograd import Function
from shendu.ops import conv_kernels
from shendu.ops.pool import _batched, _pair, _taps, adaptive_avg_pool2d, avg_pool2d, max_pool2d  # noqa: F401
from shendu.tensor import Tensor

# stride and dilation are (h, w) pairs; pad is the (top, left) padding; the bottom/right side
# follows from the explicit output size, which also covers 'same' and output_padding
Geom = namedtuple("Geom", ["stride", "pad", "dilation", "groups"])


def _covers(taps, out):
    return all(t is not None and t[0].start == 0 and t[0].stop == out for t in taps)


# "direct" is used for a 3x3 stride-1 padding-1 convolution while in_channels * out_channels
# is at most this. benchmarks/conv_kernels.py (forward + both gradients, batch 64, 2 threads,
# kernel time / NumPy time, two runs of 2026-12-02, after the channel-major im2col and
# threads.matmul): 0.62-0.73 for 3->16 and 0.94-0.95 for 16->16 at 32x32, but 1.15-1.23 for
# 3->32 at 32x32, 1.35-1.40 for 32->32 at 16x16, 1.5-1.9 for 64->64 at 8x8 and 1.5-3.8 for
# VGG's 64-256 channels. In the network (ResNet-20 step, in-process A/B, two rounds): limit
# 32*32 398/386 ms, 16*16 363/339 ms, 0 (no direct layer) 413 ms. VGG's 3->32 layer, the one
# the limit leaves in, measured within noise either way (258/259 ms). The kernels run at
# about the same GMAC/s whatever the channels, while OpenBLAS's GEMMs speed up with K = 3C.
_DIRECT_MAX_CHANNELS = 16 * 16
_SAME_3X3 = Geom((1, 1), (1, 1), (1, 1), 1)


def _choose(x, c_out, kh, kw, geom, out_hw):
    """The layout of the convolution of x (N, C, H, W) into c_out channels, the one place
    where it is decided: "direct" (compiled kernels, see conv_kernels), "rows" or "full"
    (the NumPy reference, see the module docstring)."""
    if (kh == kw == 3 and geom == _SAME_3X3 and tuple(out_hw) == tuple(x.shape[2:])
            and x.shape[1] * c_out <= _DIRECT_MAX_CHANNELS and conv_kernels.available(x)):
        return "direct"
    return "rows" if _use_rows(x.shape[1], c_out, kh, kw, geom, out_hw) else "full"


def _use_rows(c_in, c_out, kh, kw, geom, out_hw):
    """True when the row layout moves fewer floats than full im2col (per image and column)."""
    if geom.stride[0] != 1 or kh == 1:
        return False
    ho = out_hw[0]
    height = ho + (kh - 1) * geom.dilation[0]
    return c_in * kw * height + 2 * (kh - 1) * c_out * height < c_in * kh * kw * ho


def _im2col(x, kh, kw, geom, out_hw, ones=False):
    """Patches of x (N, C, H, W): (G, C/G*kh*kw (+1), N, Ho*Wo), zero where a window meets
    padding. With ``ones`` each group gets a last row of ones, so a bias column appended to
    the weights is added by the GEMM itself and the weight-gradient GEMM yields the bias
    gradient (each saves a full pass over the output)."""
    xp = backend.xp_of(x)
    n, c, h, w = x.shape
    g = geom.groups
    k = c // g * kh * kw
    rows = _taps(h, out_hw[0], kh, geom.stride[0], geom.dilation[0], geom.pad[0])
    cols = _taps(w, out_hw[1], kw, geom.stride[1], geom.dilation[1], geom.pad[1])
    full = _covers(rows, out_hw[0]) and _covers(cols, out_hw[1])
    out = (xp.empty if full else xp.zeros)((g, k + ones, n, out_hw[0] * out_hw[1]),
                                           dtype=x.dtype)
    if ones:
        out[:, k] = 1
    # splitting axes of the (G, K, N, P) slice is always a view: writes land in ``out``
    view = out[:, :k].reshape((g, c // g, kh, kw, n) + tuple(out_hw))
    xt = x.transpose(1, 0, 2, 3).reshape(g, c // g, n, h, w)
    for i, r in enumerate(rows):
        for j, q in enumerate(cols):
            if r is not None and q is not None:
                view[:, :, i, j, :, r[0], q[0]] = xt[:, :, :, r[1], q[1]]
    return out


def _row_grid(batch, h, ho, kh, geom):
    """(period, rows) of the row layout's grid for a batch of images of h rows: image n's
    rows read for its output row 0 start at grid row n*period, its row r at n*period +
    pad_h + r, and the grid has ``rows`` rows.

    Why a period: image n reads Hr = Ho + (kh-1)*dh rows, but with zero padding at both
    ends one gap of max(top, bottom) zero rows serves as the bottom padding of image n and
    the top padding of image n+1 (as conv_kernels' tall planes share theirs), so the GEMM
    runs on h + 1 rows per image instead of h + 2 for a 3x3 'same' layer: 10% fewer
    multiply-adds at 8x8, 5.5% at 16x16. Every kernel row's reads must fit after the last
    image, hence the extra rows at the end."""
    dh = geom.dilation[0]
    height = ho + (kh - 1) * dh
    top = geom.pad[0]
    bottom = height - top - h
    period = height
    if top >= 0 and bottom >= 0 and ho <= h + max(top, bottom):
        period = h + max(top, bottom)
    return period, max((batch - 1) * period + height, batch * period + (kh - 1) * dh)


def _im2row(x, kh, kw, geom, out_hw):
    """The kw shifted copies of x on the row grid (see _row_grid): (C, kw, R, Wo)."""
    xp = backend.xp_of(x)
    n, c, h, w = x.shape
    xt = x.transpose(1, 0, 2, 3)                                   # (C, N, H, W)
    period, rows = _row_grid(n, h, out_hw[0], kh, geom)
    top = geom.pad[0]
    r0, r1 = max(0, top), min(period, top + h)
    cols = _taps(w, out_hw[1], kw, geom.stride[1], geom.dilation[1], geom.pad[1])
    full = r0 == 0 and r1 == period and _covers(cols, out_hw[1])
    out = (xp.empty if full else xp.zeros)((c, kw, rows, out_hw[1]), dtype=x.dtype)
    if full:
        out[:, :, n * period:] = 0
    images = out[:, :, :n * period].reshape(c, kw, n, period, out_hw[1])
    for j, q in enumerate(cols):
        if q is not None and r1 > r0:
            images[:, j, :, r0:r1, q[0]] = xt[:, :, r0 - top:r1 - top, q[1]]
    return out


def _patches(x, kh, kw, c_out, geom, out_hw, ones=False):
    """("direct", tall planes), ("rows", x3) or ("full", cols) for x, as _choose picks."""
    kind = _choose(x, c_out, kh, kw, geom, out_hw)
    if kind == "direct":
        return kind, conv_kernels.to_tall(x)
    if kind == "rows":
        return kind, _im2row(x, kh, kw, geom, out_hw)
    return kind, _im2col(x, kh, kw, geom, out_hw, ones)


def _row_span(data, geom):
    """(x3 flattened per group (G, C/G*kw, R*Wo), the shift of one kernel row)."""
    c, kw, rows, wo = data.shape
    return (data.reshape(geom.groups, c // geom.groups * kw, rows * wo),
            geom.dilation[0] * wo)


def _image_rows(grid, batch, period, wo, shift, span):
    """(..., R*Wo) grid positions -> (..., N, span): each image's ``span`` positions from
    ``shift`` on (a view)."""
    return grid[..., shift:shift + batch * period * wo].reshape(
        grid.shape[:-1] + (batch, period * wo))[..., :span]


def _correlate(x, w, geom, out_hw, bias=None, patches=None):
    """Cross-correlation y[n, o] = b[o] + sum_c,i,j w[o, c, i, j] x[n, c, y*s + i*d - p, ...].

    Shape: x (N, C, H, W), w (O, C/groups, kh, kw), bias (O,) or None -> y (N, O, Ho, Wo)
    (in the rows layout a view of (O, N, Ho, Wo) memory); also returns the patches so the
    weight gradient can reuse them.
    """
    xp = backend.xp_of(x)
    n = x.shape[0]
    o, cg, kh, kw = w.shape
    g = geom.groups
    ho, wo = out_hw
    kind, data = patches or _patches(x, kh, kw, o, geom, out_hw, ones=bias is not None)
    if kind == "direct":
        return conv_kernels.correlate3x3(data, w, bias, n, out_hw), (kind, data)
    if kind == "full":
        wm = w.reshape(g, o // g, cg * kh * kw)                          # (G, O/G, K)
        if bias is not None:
            wm = xp.concatenate([wm, bias.reshape(g, o // g, 1)], axis=2)
        y = threads.matmul(wm, data.reshape(g, data.shape[1], -1))      # (G, O/G, N*P)
        return y.reshape(o, n, ho, wo).transpose(1, 0, 2, 3), (kind, data)
    flat, step = _row_span(data, geom)
    og = o // g
    # all kh kernel rows in one GEMM: the patches are packed by OpenBLAS once, not kh times,
    # and M = kh*O/G is less skinny (MNIST CNN step, in-process A/B: 76 vs 85 ms with a GEMM
    # per kernel row; ResNet-20 302 vs 315, VGG 221 vs 225)
    ws = w.reshape(g, og, cg, kh, kw).transpose(0, 3, 1, 2, 4).reshape(g, kh * og, cg * kw)
    every = threads.matmul(ws, flat).reshape(g, kh, og, -1)            # (G, kh, O/G, R*Wo)
    # kernel row i's products, read i*dh rows further down the grid, summed per image into
    # (G, O/G, N, Ho*Wo): contiguous, so the next op (batch norm) reads it without a copy
    period, span = _row_grid(n, x.shape[2], ho, kh, geom)[0], ho * wo
    y = _image_rows(every[:, 0], n, period, wo, 0, span).copy() if kh == 1 else \
        xp.add(_image_rows(every[:, 0], n, period, wo, 0, span),
               _image_rows(every[:, 1], n, period, wo, step, span))
    for i in range(2, kh):
        y += _image_rows(every[:, i], n, period, wo, i * step, span)
    if bias is not None:
        y += bias.reshape(g, og, 1, 1)
    y = y.reshape(o, n, ho, wo)                                          # (O, N, Ho, Wo)
    return y.transpose(1, 0, 2, 3), (kind, data)


def _flip_kernel(w, groups):
    """(O, C/G, kh, kw) -> (C, O/G, kh, kw) rotated 180 degrees: the transposed kernel."""
    o, cg, kh, kw = w.shape
    wt = w.reshape(groups, o // groups, cg, kh, kw).transpose(0, 2, 1, 3, 4)
    return wt[..., ::-1, ::-1].reshape(groups * cg, o // groups, kh, kw)


def _transposed(g, w, geom, in_hw, patches=None):
    """Adjoint of _correlate w.r.t. x: g (N, O, Ho, Wo), w (O, C/G, kh, kw) -> (N, C, H, W);
    ``patches``: g's direct-layout planes when the caller has them."""
    n, o, ho, wo = g.shape
    _, cg, kh, kw = w.shape
    groups = geom.groups
    c = cg * groups
    dh, dw = geom.dilation
    if geom.stride == (1, 1):
        flipped = Geom((1, 1), ((kh - 1) * dh - geom.pad[0], (kw - 1) * dw - geom.pad[1]),
                       geom.dilation, groups)
        height = in_hw[0] + (kh - 1) * dh
        kind = _choose(g, c, kh, kw, flipped, in_hw)
        moved = (o * kw * height + 2 * (kh - 1) * c * height
                 if kind == "rows" else o * kh * kw * in_hw[0])
        # col2im writes, reads and adds its patches
        if kind == "direct" or moved < 3 * c * kh * kw * ho:
            return _correlate(g, _flip_kernel(w, groups), flipped, in_hw,
                              patches=patches if kind == "direct" else None)[0]
    wt = w.reshape(groups, o // groups, cg * kh * kw).swapaxes(1, 2)    # (G, K, O/G)
    cols = threads.matmul(wt, _channel_major(g, groups))                # (G, K, N*P)
    return _col2im(cols.reshape(c, kh, kw, n, ho, wo).transpose(3, 0, 1, 2, 4, 5), geom, in_hw)


def _channel_major(g, groups):
    """g (N, O, Ho, Wo) as (G, O/G, N*Ho*Wo): a view when g is (O, N, Ho, Wo) memory, as the
    "rows" and "full" outputs are, else one copy."""
    o = g.shape[1]
    return g.transpose(1, 0, 2, 3).reshape(groups, o // groups, -1)


def _col2im(cols, geom, in_hw):
    """Adjoint of _im2col: add every patch column (N, C, kh, kw, Ho, Wo) back onto the
    (N, C, H, W) pixels it was read from (overlapping windows sum)."""
    xp = backend.xp_of(cols)
    n, c, kh, kw, ho, wo = cols.shape
    dh, dw = geom.dilation
    rows = _taps(in_hw[0], ho, kh, geom.stride[0], dh, geom.pad[0])
    taps = _taps(in_hw[1], wo, kw, geom.stride[1], dw, geom.pad[1])
    pairs = [(i, j, r, q) for i, r in enumerate(rows) for j, q in enumerate(taps)
             if r is not None and q is not None]
    # a tap that writes every input pixel once (the centre one at stride 1) initialises out
    whole = [p for p in pairs if _fills(p[2], in_hw[0]) and _fills(p[3], in_hw[1])]
    if conv_kernels.available(cols):  # the same sums in the same order, split over planes
        out = xp.empty((n, c) + tuple(in_hw), dtype=cols.dtype)
        conv_kernels.add_cols(cols, geom, whole[0][:2] if whole else None, out)
        return out
    out = (xp.empty if whole else xp.zeros)((n, c) + tuple(in_hw), dtype=cols.dtype)
    if whole:
        pairs.remove(whole[0])
        out[...] = cols[:, :, whole[0][0], whole[0][1], whole[0][2][0], whole[0][3][0]]
    for i, j, r, q in pairs:
        out[:, :, r[1], q[1]] += cols[:, :, i, j, r[0], q[0]]
    return out


def _fills(tap, size):
    """True when a tap's input slice is every index 0..size-1."""
    return tap[1].start == 0 and tap[1].step == 1 and tap[1].stop == size


def _weight_grad(x, g, kernel, geom, patches=None, with_bias=False, grad_patches=None):
    """dL/dw = sum over n and pixels of g times the patches of x: (O, C/G, kh, kw); with
    ``with_bias`` the (O, C/G*kh*kw + 1) matrix [dL/dw | dL/db]."""
    xp = backend.xp_of(x)
    n, o, ho, wo = g.shape
    kh, kw = kernel
    groups = geom.groups
    cg = x.shape[1] // groups
    k = cg * kh * kw
    kind, data = patches or _patches(x, kh, kw, o, geom, (ho, wo), ones=with_bias)
    if kind == "direct":
        gw, gb = conv_kernels.weight_grad3x3(data, g, (ho, wo),
                                             grad_patches[1] if grad_patches else None)
        return xp.concatenate([gw.reshape(o, k), gb[:, None]], axis=1) if with_bias else gw
    if kind == "full":
        # (K, N*P) @ (N*P, O) rather than its transpose: OpenBLAS threads the small-output,
        # long-reduction product far better this way round
        flat = data.reshape(groups, data.shape[1], -1)                  # (G, K (+1), N*P)
        gw = threads.matmul(flat, _channel_major(g, groups).swapaxes(1, 2))
        # gw: (G, K (+1), O/G)
        gw = gw.swapaxes(1, 2)                                          # (G, O/G, K (+1))
        if with_bias and gw.shape[2] == k + 1:
            return gw.reshape(o, k + 1)
        gw = gw[..., :k].reshape(o, cg, kh, kw)
    else:
        gw = _row_weight_grad(x, data, g, cg, kernel, geom)
    if with_bias:
        gb = g.sum(axis=(0, 2, 3))
        return xp.concatenate([gw.reshape(o, k), gb[:, None]], axis=1)
    return gw


def _row_weight_grad(x, data, g, cg, kernel, geom):
    """The weight gradient from row-layout patches, one GEMM for all kh kernel rows (ResNet-20
    step, in-process A/B, two rounds: 383/371 ms against 394/379 with a GEMM per row)."""
    xp = backend.xp_of(g)
    n, o, ho, wo = g.shape
    kh, kw = kernel
    groups = geom.groups
    flat, step = _row_span(data, geom)
    og, total = o // groups, flat.shape[2]
    period = _row_grid(n, x.shape[2], ho, kh, geom)[0]
    # g on the row grid (zero elsewhere), once per kernel row i and moved i*dh rows down:
    # kernel row i reads the patches i*step further on, so one GEMM over the whole grid
    # gives all kh rows of the gradient
    shifted = xp.zeros((groups, kh, og, total), dtype=g.dtype)
    _image_rows(shifted[:, 0], n, period, wo, 0, ho * wo)[...] = \
        g.transpose(1, 0, 2, 3).reshape(groups, og, n, ho * wo)
    for i in range(1, kh):
        shifted[:, i, :, i * step:] = shifted[:, 0, :, :total - i * step]
    r = threads.matmul(flat, shifted.reshape(groups, kh * og, total).swapaxes(1, 2))
    # r (G, C/G*kw, kh*O/G) -> (O, C/G, kh, kw)
    return r.reshape(groups, cg, kw, kh, og).transpose(0, 4, 1, 3, 2).reshape(o, cg, kh, kw)


# --- differentiable Functions: each backward is made of the others --------------------------

class Conv2d(Function):
    """y = correlate(x, w) + b (see _correlate); the patches are kept for the weight grad."""

    def forward(self, x, w, b=None, geom=None, out_hw=None):
        y, patches = _correlate(x, w, geom, out_hw, bias=b)
        self.geom = geom
        self.saved_patches = patches if self.needs_input_grad[1] else None
        return y

    def backward(self, grad):
        x, w, _ = self.inputs
        need = self.needs_input_grad
        grad_patches = None
        if need[0] and need[1] and self.saved_patches[0] == "direct" and grad.shape[1] % 4 == 0:
            # both gradients read the same zero-padded planes of grad (the weight gradient's
            # kernel pads its channels to a multiple of 4): made once, not twice
            grad_patches = ("direct", conv_kernels.to_tall(grad._data))
        gx = ConvTranspose2d.apply(grad, w, None, geom=self.geom, out_hw=x.shape[2:],
                                   patches=grad_patches) if need[0] else None
        gw = gb = None
        if need[1] and need[2]:
            # one GEMM gives [dL/dw | dL/db] when the patches carry a row of ones
            both = ConvWeightGrad.apply(x, grad, geom=self.geom, kernel=w.shape[2:],
                                        patches=self.saved_patches, with_bias=True,
                                        grad_patches=grad_patches)
            gw, gb = both[:, :-1].reshape(w.shape), both[:, -1]
        elif need[1]:
            gw = ConvWeightGrad.apply(x, grad, geom=self.geom, kernel=w.shape[2:],
                                      patches=self.saved_patches, grad_patches=grad_patches)
        elif need[2]:
            gb = grad.sum(dim=(0, 2, 3))
        return gx, gw, gb


class ConvTranspose2d(Function):
    """y = adjoint of correlate(., w) applied to x, plus b; out_hw is the output size."""

    def forward(self, x, w, b=None, geom=None, out_hw=None, patches=None):
        y = _transposed(x, w, geom, out_hw, patches)
        if b is not None:
            y += b.reshape(-1, 1, 1)
        self.geom = geom
        return y

    def backward(self, grad):
        x, w, _ = self.inputs
        need = self.needs_input_grad
        gx = Conv2d.apply(grad, w, None, geom=self.geom, out_hw=x.shape[2:]) if need[0] else None
        gw = ConvWeightGrad.apply(grad, x, geom=self.geom, kernel=w.shape[2:]) \
            if need[1] else None
        gb = grad.sum(dim=(0, 2, 3)) if need[2] else None
        return gx, gw, gb


class ConvWeightGrad(Function):
    """dw = sum over n, pixels of g * patches(x) (and db = sum of g, ``with_bias``); bilinear
    in (x, g), so its gradients are conv_transpose2d (w.r.t. x) and conv2d (w.r.t. g)."""

    def forward(self, x, g, geom=None, kernel=None, patches=None, with_bias=False,
                grad_patches=None):
        self.geom, self.kernel, self.with_bias = geom, kernel, with_bias
        return _weight_grad(x, g, kernel, geom, patches, with_bias, grad_patches)

    def backward(self, grad):
        x, g = self.inputs
        need = self.needs_input_grad
        grad_b = None
        if self.with_bias:
            grad, grad_b = grad[:, :-1], grad[:, -1]
            grad = grad.reshape((g.shape[1], x.shape[1] // self.geom.groups) + self.kernel)
        gx = ConvTranspose2d.apply(g, grad, None, geom=self.geom, out_hw=x.shape[2:]) \
            if need[0] else None
        gg = Conv2d.apply(x, grad, grad_b, geom=self.geom, out_hw=g.shape[2:]) \
            if need[1] else None
        return gx, gg



# --- public functions: validate, then one Function.apply -----------------------------------

def _check_params(op, x, weight, bias, groups, in_channels, out_channels):
    if not isinstance(weight, Tensor) or weight.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D weight tensor, got "
                         f"{getattr(weight, 'shape', type(weight).__name__)}")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    for t, what in ((weight, "weight"), (bias, "bias")):
        if t is not None and t.dtype != x.dtype:
            raise TypeError(f"{op}: input dtype {x.dtype} and {what} dtype {t.dtype} should be "
                            "the same")
    if not backend.is_floating(x.dtype):
        raise TypeError(f"{op}: expected a floating-point input, got {x.dtype}")
    if out_channels % groups or weight.shape[0] % groups:
        raise ValueError(f"{op}: channels {weight.shape[0]} of weight {tuple(weight.shape)} "
                         f"must be divisible by groups={groups}")
    if x.shape[1] != in_channels:
        raise ValueError(f"{op}: expected input (N, {in_channels}, H, W) with {in_channels} "
                         f"channels to match weight {tuple(weight.shape)}"
                         f"{f' and groups={groups}' if groups > 1 else ''}, got "
                         f"{tuple(x.shape)}")
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise ValueError(f"{op}: expected bias of shape ({out_channels},), got "
                         f"{tuple(bias.shape)}")


def _conv_out(op, size, kernel, stride, pad, dilation, total_pad=None):
    padded = size + (2 * pad if total_pad is None else total_pad)
    span = dilation * (kernel - 1) + 1
    if span > padded:
        raise RuntimeError(f"{op}: kernel of size {kernel} (dilated to {span}) is larger than "
                           f"the padded input of size {padded} (input {size}, padding {pad})")
    return (padded - span) // stride + 1


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation: y[n, o] = b[o] + sum_c,i,j w[o, c, i, j] x[n, c, s*y + d*i - p,
    s*x + d*j - p] over the input channels c of o's group.

    Concept: N2.3 (output size (H + 2p - d(k-1) - 1) // s + 1).

    Args:
        stride, dilation: int or (h, w). padding: int, (h, w), 'valid' or 'same' (stride 1;
        an odd total pads one more on the bottom/right, as torch). groups: channel groups.

    Shape:
        input (N, C, H, W) or (C, H, W); weight (O, C/groups, kH, kW); bias (O,)
        -> output (N, O, Ho, Wo) or (O, Ho, Wo).

    >>> import shendu
    >>> from shendu.ops.conv import conv2d
    >>> conv2d(shendu.randn(2, 3, 8, 8), shendu.randn(4, 3, 3, 3), padding=1).shape
    (2, 4, 8, 8)
    """
    op = "conv2d"
    x, single = _batched(input, op)
    out_ch, cg, kh, kw = weight.shape if isinstance(weight, Tensor) else (0,) * 4
    _check_params(op, x, weight, bias, groups, cg * groups, out_ch)
    stride, dilation = _pair(stride, "stride", op), _pair(dilation, "dilation", op)
    h, w = x.shape[2:]
    if padding in ("valid", "same"):
        if padding == "same" and stride != (1, 1):
            raise ValueError(f"{op}: padding='same' needs stride 1, got stride {stride}")
        total = (dilation[0] * (kh - 1), dilation[1] * (kw - 1)) if padding == "same" \
            else (0, 0)
        pad = (total[0] // 2, total[1] // 2)
    elif isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int, a pair, 'valid' or 'same', got "
                         f"{padding!r}")
    else:
        pad = _pair(padding, "padding", op, low=0)
        total = (2 * pad[0], 2 * pad[1])
    out_hw = (_conv_out(op, h, kh, stride[0], pad[0], dilation[0], total[0]),
              _conv_out(op, w, kw, stride[1], pad[1], dilation[1], total[1]))
    y = Conv2d.apply(x, weight, bias, geom=Geom(stride, pad, dilation, groups), out_hw=out_hw)
    return y.squeeze(0) if single else y


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """2-D transposed convolution, the adjoint (gradient) of conv2d w.r.t. its input: every
    input pixel adds w-weighted copies of the kernel into a strided output (learnable
    up-sampling).

    Concept: N6.1 (output size (H - 1)s - 2p + d(k-1) + output_padding + 1).

    Shape:
        input (N, C_in, H, W) or (C_in, H, W); weight (C_in, C_out/groups, kH, kW);
        bias (C_out,) -> output (N, C_out, Ho, Wo) or (C_out, Ho, Wo).

    >>> import shendu
    >>> from shendu.ops.conv import conv_transpose2d
    >>> conv_transpose2d(shendu.randn(2, 4, 5, 5), shendu.randn(4, 3, 3, 3), stride=2).shape
    (2, 3, 11, 11)
    """
    op = "conv_transpose2d"
    x, single = _batched(input, op)
    in_ch, og, kh, kw = weight.shape if isinstance(weight, Tensor) else (0,) * 4
    _check_params(op, x, weight, bias, groups, in_ch, og * groups)
    stride, dilation = _pair(stride, "stride", op), _pair(dilation, "dilation", op)
    pad = _pair(padding, "padding", op, low=0)
    extra = _pair(output_padding, "output_padding", op, low=0)
    for e, s, d in zip(extra, stride, dilation):
        if e >= s and e >= d:
            raise ValueError(f"{op}: output_padding {extra} must be smaller than either stride "
                             f"{stride} or dilation {dilation}")
    out_hw = tuple((n - 1) * s - 2 * p + d * (k - 1) + e + 1 for n, s, p, d, k, e in
                   zip(x.shape[2:], stride, pad, dilation, (kh, kw), extra))
    if min(out_hw) < 1:
        raise RuntimeError(f"{op}: the output size {out_hw} is not positive for input "
                           f"{tuple(x.shape)}, kernel {(kh, kw)}, stride {stride}, padding {pad}")
    y = ConvTranspose2d.apply(x, weight, bias, geom=Geom(stride, pad, dilation, groups),
                              out_hw=out_hw)
    return y.squeeze(0) if single else y

