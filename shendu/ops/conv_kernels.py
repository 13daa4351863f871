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

The grid is cut into segments of whole rows (about 1024 positions); a task is (segment,
block of four output channels), with the block varying fastest, so a segment of every input
channel stays in L2 while all blocks read it. A block of four is what the 16 AVX2 registers
hold: one kernel row of four channels is 12 weights, 3 taps and 4 accumulators (a single
channel per task, as first written, reloaded its accumulator for every 9 multiply-adds and ran
at 19-21 GMAC/s on one core; four channels per task 26-38; eight spill and fall to 24).

  correlate3x3:   y (O, N, H, W) from tall x (C, F) and w (O, C, 3, 3), O padded to a multiple
                  of 4 with zero weights; the input gradient is the same kernel on the tall
                  output gradient with the flipped, transposed kernel (conv.py does that).
  weight_grad3x3: dw (O, C, 3, 3) and db (O,) from tall x and tall g (g's planes padded to a
                  multiple of 4 with zeros), float64 sums per segment.

Host float32/float64 arrays only; conv.py's ``_choose`` decides when these are used and falls
back to the NumPy reference otherwise.
"""
from __future__ import annotations

from shendu import backend, kernels

np = backend.namespace("cpu")  # numba compiles NumPy calls; these kernels only see host arrays
_compiled = kernels.KernelSet(lambda numba: _define(numba))  # _define comes below
available = _compiled.available  # True when the compiled kernels can take these arrays


def _define(numba):
    # reassoc lets LLVM vectorise the weight gradient's sums; contract fuses multiply-adds.
    # No nnan/ninf: NaNs and infinities must propagate as in the reference. The numpy error
    # model drops the division-by-zero checks (numba 0.68's LLVM also crashed without it).
    jit = numba.njit(parallel=True, cache=True, nogil=True, error_model="numpy",
                     fastmath={"reassoc", "contract"})
    prange = numba.prange

    @jit
    def correlate3x3(tall, w, bias, out, segment_rows):
        """tall (C, F) planes, w (O4, C, 3, 3), bias (O4,) -> out (O4, N, H, W) = bias + sum
        over c and the nine taps; O4 is a multiple of 4 (the caller pads w with zeros)."""
        channels = tall.shape[0]
        outs, batch, height, width = out.shape
        row = width + 1
        grid_rows = batch * (height + 1)
        segments = (grid_rows + segment_rows - 1) // segment_rows
        blocks = outs // 4
        for task in prange(segments * blocks):
            s = task // blocks
            o = (task % blocks) * 4
            r0 = s * segment_rows
            r1 = min(grid_rows, r0 + segment_rows)
            start = r0 * row
            length = (r1 - r0) * row
            acc0 = np.full(length, bias[o], dtype=out.dtype)
            acc1 = np.full(length, bias[o + 1], dtype=out.dtype)
            acc2 = np.full(length, bias[o + 2], dtype=out.dtype)
            acc3 = np.full(length, bias[o + 3], dtype=out.dtype)
            for c in range(channels):
                for i in range(3):
                    # one kernel row of four output channels per pass: 12 weights, 3 taps
                    # and 4 accumulators fit the 16 vector registers (all 9 taps spill)
                    x = tall[c, start + i * row:]
                    a0, a1, a2 = w[o, c, i, 0], w[o, c, i, 1], w[o, c, i, 2]
                    b0, b1, b2 = w[o + 1, c, i, 0], w[o + 1, c, i, 1], w[o + 1, c, i, 2]
                    c0, c1, c2 = w[o + 2, c, i, 0], w[o + 2, c, i, 1], w[o + 2, c, i, 2]
                    d0, d1, d2 = w[o + 3, c, i, 0], w[o + 3, c, i, 1], w[o + 3, c, i, 2]
                    for p in range(length):
                        t0, t1, t2 = x[p], x[p + 1], x[p + 2]
                        acc0[p] += a0 * t0 + a1 * t1 + a2 * t2
                        acc1[p] += b0 * t0 + b1 * t1 + b2 * t2
                        acc2[p] += c0 * t0 + c1 * t1 + c2 * t2
                        acc3[p] += d0 * t0 + d1 * t1 + d2 * t2
            for r in range(r0, r1):
                n = r // (height + 1)
                h = r % (height + 1)
                if h < height:
                    k = (r - r0) * row
                    out[o, n, h, :] = acc0[k:k + width]
                    out[o + 1, n, h, :] = acc1[k:k + width]
                    out[o + 2, n, h, :] = acc2[k:k + width]
                    out[o + 3, n, h, :] = acc3[k:k + width]

    @jit
    def weight_grad3x3(tall, grad_tall, height, width, segment_rows, partial, partial_bias):
        """tall x (C, F), tall g (O4, F) -> partial (S, O4, C, 9) and partial_bias (S, O4), the
        float64 sums over each of the S segments of the grid (the caller adds them); O4 is a
        multiple of 4 (the caller pads g with zero planes)."""
        channels = tall.shape[0]
        outs = grad_tall.shape[0]
        row = width + 1
        grid_rows = (grad_tall.shape[1] - 2) // row - 2
        segments = partial.shape[0]
        blocks = outs // 4
        for task in prange(segments * blocks):
            s = task // blocks
            o = (task % blocks) * 4
            r0 = s * segment_rows
            r1 = min(grid_rows, r0 + segment_rows)
            start = r0 * row
            length = (r1 - r0) * row
            # g at grid position q is tall g at q + row + 1 (zero on the unused positions)
            g0 = grad_tall[o, start + row + 1:]
            g1 = grad_tall[o + 1, start + row + 1:]
            g2 = grad_tall[o + 2, start + row + 1:]
            g3 = grad_tall[o + 3, start + row + 1:]
            total0 = total1 = total2 = total3 = 0.0  # float64, as partial_bias
            for p in range(length):
                total0 += g0[p]
                total1 += g1[p]
                total2 += g2[p]
                total3 += g3[p]
            partial_bias[s, o], partial_bias[s, o + 1] = total0, total1
            partial_bias[s, o + 2], partial_bias[s, o + 3] = total2, total3
            zero = g0[:0].sum()  # g's dtype (g0[0] * 0 would be float64)
            for c in range(channels):
                for i in range(3):
                    # one kernel row of four output channels: 12 sums in registers
                    x = tall[c, start + i * row:]
                    a0 = a1 = a2 = b0 = b1 = b2 = c0 = c1 = c2 = d0 = d1 = d2 = zero
                    for p in range(length):
                        t0, t1, t2 = x[p], x[p + 1], x[p + 2]
                        ga, gb, gc, gd = g0[p], g1[p], g2[p], g3[p]
                        a0 += ga * t0
                        a1 += ga * t1
                        a2 += ga * t2
                        b0 += gb * t0
                        b1 += gb * t1
                        b2 += gb * t2
                        c0 += gc * t0
                        c1 += gc * t1
                        c2 += gc * t2
                        d0 += gd * t0
                        d1 += gd * t1
                        d2 += gd * t2
                    k = 3 * i
                    partial[s, o, c, k], partial[s, o, c, k + 1], partial[s, o, c, k + 2] = a0, a1, a2
                    partial[s, o + 1, c, k], partial[s, o + 1, c, k + 1] = b0, b1
                    partial[s, o + 1, c, k + 2] = b2
                    partial[s, o + 2, c, k], partial[s, o + 2, c, k + 1] = c0, c1
                    partial[s, o + 2, c, k + 2] = c2
                    partial[s, o + 3, c, k], partial[s, o + 3, c, k + 1] = d0, d1
                    partial[s, o + 3, c, k + 2] = d2

    @jit
    def add_cols(cols, sh, sw, dh, dw, ph, pw, first_i, first_j, out):
        """cols (N, C, kh, kw, Ho, Wo), any strides -> out (N, C, H, W): col2im, every patch
        entry added onto the pixel it was read from, taps in the reference's order (the tap
        (first_i, first_j), which covers every pixel once, is copied first; -1: none)."""
        batch, channels, kh, kw, out_h, out_w = cols.shape
        height, width = out.shape[2], out.shape[3]
        for plane in prange(batch * channels):
            n = plane // channels
            c = plane % channels
            if first_i < 0:
                out[n, c] = 0
            for tap in range(-1, kh * kw):
                if tap < 0:
                    if first_i < 0:
                        continue
                    i, j = first_i, first_j
                else:
                    i, j = tap // kw, tap % kw
                    if i == first_i and j == first_j:
                        continue
                for y in range(out_h):
                    h = y * sh + i * dh - ph
                    if h < 0 or h >= height:
                        continue
                    for z in range(out_w):
                        w = z * sw + j * dw - pw
                        if 0 <= w < width:
                            if tap < 0:
                                out[n, c, h, w] = cols[n, c, i, j, y, z]
                            else:
                                out[n, c, h, w] += cols[n, c, i, j, y, z]

    return {"correlate3x3": correlate3x3, "weight_grad3x3": weight_grad3x3,
            "add_cols": add_cols}


def _segment_rows(width, floats):
    """Grid rows per task, about ``floats`` grid positions: four accumulators of 1024 floats
    and the input rows they read stay in L1 (benchmarks/conv_kernels.py measured 1024 best
    for the forward and 2048 for the weight gradient, whose partial sums cost per segment)."""
    return max(1, -(-floats // (width + 1)))


def _blocks_of_4(count):
    return -(-count // 4) * 4


def to_tall(x, channel_multiple=1):
    """x (N, C, H, W) (any strides) -> tall planes (C', (N(H+1) + 2)(W+1) + 2), see the module
    docstring; C' is C rounded up to ``channel_multiple``, the extra planes zero."""
    n, c, h, w = x.shape
    row = w + 1
    planes = -(-c // channel_multiple) * channel_multiple
    tall = np.empty((planes, (n * (h + 1) + 2) * row + 2), dtype=x.dtype)
    # NumPy's strided copies: a numba copy kernel over (plane, image) tasks measured 2-3x
    # slower on ResNet-20's layers (its launch alone costs 60-140 us)
    tall[c:] = 0
    tall[:c, :row + 1] = 0
    grid = tall[:c, row + 1:row + 1 + n * (h + 1) * row].reshape(c, n, h + 1, row)
    grid[:, :, :h, :w] = x.transpose(1, 0, 2, 3)
    grid[:, :, :h, w] = 0
    grid[:, :, h] = 0
    tall[:c, row + 1 + n * (h + 1) * row:] = 0
    return tall


def correlate3x3(tall, w, bias, batch, hw):
    """Tall planes of x (from to_tall), w (O, C, 3, 3), bias (O,) or None, the batch size and
    (H, W) -> y (N, O, H, W), a view of (O', N, H, W) memory (as conv.py's row layout)."""
    o, c = w.shape[:2]
    blocks = _blocks_of_4(o)
    weights = np.zeros((blocks, c, 3, 3), dtype=tall.dtype)
    weights[:o] = w
    padded_bias = np.zeros(blocks, dtype=tall.dtype)
    if bias is not None:
        padded_bias[:o] = bias
    out = np.empty((blocks, batch) + tuple(hw), dtype=tall.dtype)
    _compiled.get()["correlate3x3"](tall, weights, padded_bias, out,
                             _segment_rows(hw[1], 1024))
    return out[:o].transpose(1, 0, 2, 3)


def weight_grad3x3(tall, grad, hw, grad_tall=None):
    """Tall planes of x (C, F), the output gradient g (N, O, H, W), (H, W) ->
    (dw (O, C, 3, 3), db (O,)) in x's dtype; ``grad_tall``: g's tall planes if the caller
    has them (O a multiple of 4)."""
    o = grad.shape[1]
    if grad_tall is None:
        grad_tall = to_tall(grad, channel_multiple=4)
    c = tall.shape[0]
    height, width = hw
    rows = _segment_rows(width, 2048)
    grid_rows = (tall.shape[1] - 2) // (width + 1) - 2
    segments = -(-grid_rows // rows)
    partial = np.empty((segments, grad_tall.shape[0], c, 9))
    partial_bias = np.empty((segments, grad_tall.shape[0]))
    _compiled.get()["weight_grad3x3"](tall, grad_tall, height, width, rows, partial, partial_bias)
    return (partial[:, :o].sum(0).reshape(o, c, 3, 3).astype(tall.dtype),
            partial_bias[:, :o].sum(0).astype(tall.dtype))


def add_cols(cols, geom, first, out):
    """col2im of cols (N, C, kh, kw, Ho, Wo) into out (N, C, H, W) (conv._col2im); ``first``
    the (i, j) tap that covers every pixel once, or None."""
    first_i, first_j = first if first is not None else (-1, -1)
    _compiled.get()["add_cols"](cols, geom.stride[0], geom.stride[1], geom.dilation[0],
                         geom.dilation[1], geom.pad[0], geom.pad[1], first_i, first_j, out)
