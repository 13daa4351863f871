"""Direct 3x3 'same' convolution kernels (numba), beside the NumPy reference in conv.py.

Why direct: ResNet-20's layers have 16-64 channels, so im2row's GEMMs are skinny (K = 48-192)
and OpenBLAS reaches about half of this machine's FMA rate on them, after copying each input
three times (the kw shifts). These kernels read one zero-padded copy of the input in place.

Layout ("tall planes"). For stride 1 and padding 1 every channel's N images are stacked into
one flat plane: rows of W + 1 floats (the image row, then a zero), one zero row above the
first image and below each image, so one zero column and one zero row each serve as the
right/bottom padding of one image and the left/top padding of the next:

    tall (C, F), F = (G + 2) * (W + 1) + 2, G = N * (H + 1) grid rows;
    x[n, c, h, w] sits at tall[c, 1 + (n*(H + 1) + 1 + h)*(W + 1) + w].

Output pixel (n, h, w) is grid position q = (n*(H + 1) + h)*(W + 1) + w, and its nine taps
are tall[c, q + i*(W + 1) + j] for i, j in 0..2: a 3x3 correlation is one long contiguous
loop over q (LLVM vectorises it whatever W is, and the nine taps sum in registers before one
store). The grid's extra column and row per image are computed and dropped: (H+1)(W+1)/(HW)
- 1 extra work, 6% at 32x32, 27% at 8x8, instead of im2row's three copies of the input.

The grid is cut into segments of whole rows; a task is (segment, output channel), with the
output channel varying fastest, so a segment of every input channel stays in L2 while all
output channels read it.

  correlate3x3:   y (O, N, H, W) from tall x (C, F) and w (O, C, 3, 3); the input gradient
                  is the same kernel on the tall output gradient with the flipped, transposed
                  kernel (conv.py does that).
  weight_grad3x3: dw (O, C, 3, 3) and db (O,) from tall x and tall g, float64 sums.

Host float32/float64 arrays only; conv.py's ``_choose`` decides when these are used and falls
back to the NumPy reference otherwise.
"""
from __future__ import annotations

from shendu import backend, kernels

np = backend.namespace("cpu")  # numba compiles NumPy calls; these kernels only see host arrays
_kernels = {}


def available(*arrays) -> bool:
    """True when the compiled conv kernels can take these arrays (see kernels.available)."""
    return kernels.available(*arrays) and _build() is not None


def _build():
    return kernels.compile_once(_kernels, "built", _define)


def _define(numba):
    # reassoc lets LLVM vectorise the weight gradient's sums; contract fuses multiply-adds.
    # No nnan/ninf: NaNs and infinities must propagate as in the reference. The numpy error
    # model drops the division-by-zero checks (numba 0.68's LLVM also crashed without it).
    jit = numba.njit(parallel=True, cache=True, nogil=True, error_model="numpy",
                     fastmath={"reassoc", "contract"})
    prange = numba.prange

    @jit
    def correlate3x3(tall, w, bias, out, segment_rows):
        """tall (C, F) planes, w (O, C, 3, 3), bias (O,) -> out (O, N, H, W) = bias + sum over
        c and the nine taps."""
        channels = tall.shape[0]
        outs, batch, height, width = out.shape
        row = width + 1
        grid_rows = batch * (height + 1)
        segments = (grid_rows + segment_rows - 1) // segment_rows
        for task in prange(segments * outs):
            s = task // outs
            o = task % outs
            r0 = s * segment_rows
            r1 = min(grid_rows, r0 + segment_rows)
            start = r0 * row
            length = (r1 - r0) * row
            acc = np.full(length, bias[o], dtype=out.dtype)
            for c in range(channels):
                w00, w01, w02 = w[o, c, 0, 0], w[o, c, 0, 1], w[o, c, 0, 2]
                w10, w11, w12 = w[o, c, 1, 0], w[o, c, 1, 1], w[o, c, 1, 2]
                w20, w21, w22 = w[o, c, 2, 0], w[o, c, 2, 1], w[o, c, 2, 2]
                # one view per kernel row, so every index is p + constant: numba's
                # negative-index fix-up then folds away and LLVM vectorises the loop
                top = tall[c, start:]
                mid = tall[c, start + row:]
                low = tall[c, start + 2 * row:]
                for p in range(length):
                    acc[p] += (w00 * top[p] + w01 * top[p + 1] + w02 * top[p + 2]
                               + w10 * mid[p] + w11 * mid[p + 1] + w12 * mid[p + 2]
                               + w20 * low[p] + w21 * low[p + 1] + w22 * low[p + 2])
            for r in range(r0, r1):
                n = r // (height + 1)
                h = r % (height + 1)
                if h < height:
                    k = (r - r0) * row
                    out[o, n, h, :] = acc[k:k + width]

    @jit
    def weight_grad3x3(tall, grad_tall, height, width, segment_rows, partial, partial_bias):
        """tall x (C, F), tall g (O, F) -> partial (S, O, C, 9) and partial_bias (S, O), the
        float64 sums over each of the S segments of the grid (the caller adds them)."""
        channels = tall.shape[0]
        outs = grad_tall.shape[0]
        row = width + 1
        grid_rows = (grad_tall.shape[1] - 2) // row - 2
        segments = partial.shape[0]
        for task in prange(segments * outs):
            s = task // outs
            o = task % outs
            r0 = s * segment_rows
            r1 = min(grid_rows, r0 + segment_rows)
            start = r0 * row
            length = (r1 - r0) * row
            # g at grid position q is tall g at q + row + 1 (zero on the unused positions)
            grad = grad_tall[o, start + row + 1:]
            total = 0.0  # float64, as partial_bias
            for p in range(length):
                total += grad[p]
            partial_bias[s, o] = total
            for c in range(channels):
                top = tall[c, start:]
                mid = tall[c, start + row:]
                low = tall[c, start + 2 * row:]
                s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = grad[:0].sum()  # g's dtype (grad[0] * 0 would be float64)
                for p in range(length):
                    gv = grad[p]
                    s00 += gv * top[p]
                    s01 += gv * top[p + 1]
                    s02 += gv * top[p + 2]
                    s10 += gv * mid[p]
                    s11 += gv * mid[p + 1]
                    s12 += gv * mid[p + 2]
                    s20 += gv * low[p]
                    s21 += gv * low[p + 1]
                    s22 += gv * low[p + 2]
                sums = partial[s, o, c]
                sums[0], sums[1], sums[2] = s00, s01, s02
                sums[3], sums[4], sums[5] = s10, s11, s12
                sums[6], sums[7], sums[8] = s20, s21, s22

    return {"correlate3x3": correlate3x3, "weight_grad3x3": weight_grad3x3}


def _segment_rows(channels, width):
    """Grid rows per task: about 256 KB of input segments (all channels) stays in L2, and
    each inner loop still runs over at least 1024 floats."""
    target = min(8192, max(1024, 65536 // max(channels, 1)))
    return max(1, -(-target // (width + 1)))


def to_tall(x):
    """x (N, C, H, W) (any strides) -> tall planes (C, (N(H+1) + 2)(W+1) + 2), see the module
    docstring."""
    n, c, h, w = x.shape
    row = w + 1
    tall = np.empty((c, (n * (h + 1) + 2) * row + 2), dtype=x.dtype)
    tall[:, :row + 1] = 0
    grid = tall[:, row + 1:row + 1 + n * (h + 1) * row].reshape(c, n, h + 1, row)
    grid[:, :, :h, :w] = x.transpose(1, 0, 2, 3)
    grid[:, :, :h, w] = 0
    grid[:, :, h] = 0
    tall[:, row + 1 + n * (h + 1) * row:] = 0
    return tall


def correlate3x3(tall, w, bias, batch, hw):
    """Tall planes of x (from to_tall), w (O, C, 3, 3), bias (O,) or None, the batch size and
    (H, W) -> y (N, O, H, W), a view of (O, N, H, W) memory (as conv.py's row layout)."""
    o = w.shape[0]
    out = np.empty((o, batch) + tuple(hw), dtype=tall.dtype)
    bias = np.zeros(o, dtype=tall.dtype) if bias is None else bias
    _build()["correlate3x3"](tall, np.ascontiguousarray(w), np.ascontiguousarray(bias), out,
                             _segment_rows(tall.shape[0], hw[1]))
    return out.transpose(1, 0, 2, 3)


def weight_grad3x3(tall, grad_tall, hw):
    """Tall planes of x (C, F) and of the output gradient (O, F), (H, W) ->
    (dw (O, C, 3, 3), db (O,)) in x's dtype."""
    c, o = tall.shape[0], grad_tall.shape[0]
    height, width = hw
    rows = _segment_rows(c, width)
    grid_rows = (tall.shape[1] - 2) // (width + 1) - 2
    segments = -(-grid_rows // rows)
    partial = np.empty((segments, o, c, 9))
    partial_bias = np.empty((segments, o))
    _build()["weight_grad3x3"](tall, grad_tall, height, width, rows, partial, partial_bias)
    return (partial.sum(0).reshape(o, c, 3, 3).astype(tall.dtype),
            partial_bias.sum(0).astype(tall.dtype))
