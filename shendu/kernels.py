"""Optional compiled CPU kernels (numba, the ``fast`` extra) for the memory-bound steps of a
CNN training step.

Profiling a ResNet-20 step (benchmarks/cnn.py --profile) showed half of its time outside the
matrix products, in passes over activations that NumPy makes one at a time on one core.
Batch norm is the largest of them (7 passes forward, 11 backward); the kernels here do it in
3 and 2, in parallel over channels: 2x faster per layer, about 6% of a ResNet-20 step. (A
kernel for the convolution's shifted copies gained only 10%, as NumPy's copy is already near
this machine's memory bandwidth, so it was not kept; the direct 3x3 convolution kernels in
shendu/ops/conv_kernels.py avoid those copies instead.)

The NumPy code in ``shendu.ops`` stays the reference: every kernel has a NumPy twin there and
tests/test_kernels.py compares the two. A kernel is used only for NumPy arrays of float32 or
float64, when numba is installed and ``backend.use_compiled_kernels(True)`` (the default).
Statistics are accumulated in float64 whatever the input dtype.
"""
from __future__ import annotations

import math
import os

from shendu import backend

np = backend.namespace("cpu")  # numba compiles NumPy calls; these kernels only see host arrays
_kernels = {}


def available(*arrays) -> bool:
    """True when the compiled kernels can take these arrays (host float32/float64)."""
    if not backend.compiled_kernels_enabled() or _build() is None:
        return False
    return all(backend.xp_of(a) is np and a.dtype in (np.float32, np.float64) for a in arrays)


def load_numba():
    """The numba module set up for shendu's kernels, or None when it is not installed."""
    try:
        import numba
    except ImportError:
        return None
    # The threading layer. The work-queue layer's workers sleep after every kernel, and waking
    # one costs this 2-core VM 0.1-0.4 ms, so a kernel under a few ms hardly gained from the
    # second thread. GNU OpenMP's workers spin before they sleep: with its default spin
    # (300k iterations) they starved OpenBLAS's workers (a ResNet-20 step ran 1.5x slower);
    # bounded to 10k iterations (tens of microseconds) the next kernel finds them awake and
    # OpenBLAS loses nothing. ResNet-20's step (b64, 2 threads, two alternating rounds):
    # work-queue 551/479 ms, OpenMP 470/525, OpenMP with 10k spins 423/427. Work-queue remains
    # the fallback where libgomp is missing; a user's NUMBA_THREADING_LAYER(_PRIORITY) or
    # GOMP_SPINCOUNT wins. libgomp reads GOMP_SPINCOUNT when numba first loads it, later than
    # this; torch's own copy of libgomp has read its environment at torch's import.
    if numba.config.THREADING_LAYER == "default" and \
            "NUMBA_THREADING_LAYER_PRIORITY" not in os.environ:
        numba.config.THREADING_LAYER_PRIORITY = ["omp", "workqueue", "tbb"]
        os.environ.setdefault("GOMP_SPINCOUNT", "10000")
    return numba


def compile_once(cache, key, define):
    """``define(numba)``'s kernels, compiled the first time and kept in ``cache[key]``; None
    when numba is not installed. Every kernel module builds its kernels through this."""
    if key not in cache:
        numba = load_numba()
        cache[key] = None if numba is None else define(numba)
    return cache[key]


class KernelSet:
    """The kernels of one op's module (``define(numba)`` -> dict of kernels), compiled on
    first use through compile_once: ``get()`` the dict or None, ``available(*arrays)`` as
    kernels.available and compiled. conv_kernels and pool_kernels each hold one."""

    def __init__(self, define):
        self._define, self._cache = define, {}

    def get(self):
        return compile_once(self._cache, "built", self._define)

    def available(self, *arrays) -> bool:
        return available(*arrays) and self.get() is not None


def _build():
    return compile_once(_kernels, "built", _define)


def _define(numba):
    # reassoc lets LLVM vectorise the per-channel sums (a float64 running sum is otherwise
    # one dependent add per element: batch norm took 1.8 ms per ResNet-20 layer); no
    # nnan/ninf, so NaNs and infinities still propagate as in the NumPy reference
    jit = numba.njit(parallel=True, cache=True, nogil=True, error_model="numpy",
                     fastmath={"reassoc", "contract"})
    prange = numba.prange

    @jit
    def batch_norm_forward(x, channel_axis, weight, bias, eps, out):
        """x, out (N, C, L) C-contiguous, or (C, N, L) with channel_axis 0; weight, bias (C,)
        -> per-channel mean and biased variance (C,) (float64);
        out = (x - mean) / sqrt(var + eps) * weight + bias."""
        channels = x.shape[channel_axis]
        batch = x.shape[1 - channel_axis]
        length = x.shape[2]
        count = batch * length
        mean = np.empty(channels)
        var = np.empty(channels)
        for c in prange(channels):
            total = 0.0
            for n in range(batch):
                row = x[c, n] if channel_axis == 0 else x[n, c]  # contiguous: vectorised
                for i in range(length):
                    total += row[i]
            m = total / count
            squares = 0.0
            for n in range(batch):
                row = x[c, n] if channel_axis == 0 else x[n, c]
                for i in range(length):
                    d = row[i] - m
                    squares += d * d
            v = squares / count
            # scale and shift in x's dtype, so a float32 row is written without float64 steps
            coefficients = np.empty(2, dtype=out.dtype)
            coefficients[0] = weight[c] / np.sqrt(v + eps)
            coefficients[1] = bias[c] - m * (weight[c] / np.sqrt(v + eps))
            scale, shift = coefficients[0], coefficients[1]
            for n in range(batch):
                row = x[c, n] if channel_axis == 0 else x[n, c]
                target = out[c, n] if channel_axis == 0 else out[n, c]
                for i in range(length):
                    target[i] = row[i] * scale + shift
            mean[c] = m
            var[c] = v
        return mean, var

    @jit
    def batch_norm_backward(g, x, channel_axis, g_axis, mean, rstd, weight, grad_x, need_x):
        """x, grad_x (N, C, L) C-contiguous, or (C, N, L) with channel_axis 0; g likewise
        with its own g_axis (rows are read in place whichever the two layouts); mean, rstd,
        weight (C,) -> (sum g xhat, sum g) per channel; with need_x,
        grad_x = weight rstd (g - mean(g) - xhat mean(g xhat))."""
        channels = x.shape[channel_axis]
        batch = x.shape[1 - channel_axis]
        length = x.shape[2]
        count = batch * length
        sum_gx = np.empty(channels)
        sum_g = np.empty(channels)
        for c in prange(channels):
            m, r = mean[c], rstd[c]
            sg = 0.0
            sgx = 0.0
            for n in range(batch):
                grow = g[c, n] if g_axis == 0 else g[n, c]
                xrow = x[c, n] if channel_axis == 0 else x[n, c]
                for i in range(length):
                    gv = grow[i]
                    sg += gv
                    sgx += gv * (xrow[i] - m)
            sgx *= r
            sum_g[c] = sg
            sum_gx[c] = sgx
            if need_x:
                # grad_x = a g + b x + d, the coefficients in x's dtype
                a = weight[c] * r
                mg = sg / count
                mgx = sgx / count
                coefficients = np.empty(3, dtype=grad_x.dtype)
                coefficients[0] = a
                coefficients[1] = -a * r * mgx
                coefficients[2] = a * (m * r * mgx - mg)
                ca, cb, cd = coefficients[0], coefficients[1], coefficients[2]
                for n in range(batch):
                    grow = g[c, n] if g_axis == 0 else g[n, c]
                    xrow = x[c, n] if channel_axis == 0 else x[n, c]
                    target = grad_x[c, n] if channel_axis == 0 else grad_x[n, c]
                    for i in range(length):
                        target[i] = ca * grow[i] + cb * xrow[i] + cd
        return sum_gx, sum_g

    @jit
    def layer_norm_forward(x, weight, bias, eps, out, mean, rstd):
        """x, out (R, D) C-contiguous, weight, bias (D,) -> out = xhat weight + bias with
        xhat = (x - mean) rstd over each row; mean, rstd (R,) float64."""
        rows, width = x.shape
        for r in prange(rows):
            row = x[r]
            total = 0.0
            for j in range(width):
                total += row[j]
            m = total / width
            squares = 0.0
            for j in range(width):
                d = row[j] - m
                squares += d * d
            rs = 1.0 / np.sqrt(squares / width + eps)
            mean[r], rstd[r] = m, rs
            coefficients = np.empty(2, dtype=out.dtype)  # xhat = x a + c in x's dtype
            coefficients[0], coefficients[1] = rs, -m * rs
            a, c = coefficients[0], coefficients[1]
            target = out[r]
            for j in range(width):
                target[j] = (row[j] * a + c) * weight[j] + bias[j]

    @jit
    def layer_norm_backward(g, x, mean, rstd, weight, grad_x, need_x, partial_w, partial_b):
        """g, x, grad_x (R, D) C-contiguous; mean, rstd (R,), weight (D,) -> partial sums
        over the rows of each of the T tasks of g xhat and g (T, D), float64; with need_x
        grad_x = rstd (g w - mean(g w) - xhat mean(g w xhat)) per row."""
        rows, width = x.shape
        tasks = partial_w.shape[0]
        per_task = (rows + tasks - 1) // tasks
        for t in prange(tasks):
            sum_w, sum_b = partial_w[t], partial_b[t]
            sum_w[:] = 0.0
            sum_b[:] = 0.0
            coefficients = np.empty(4, dtype=grad_x.dtype)
            for r in range(t * per_task, min(rows, (t + 1) * per_task)):
                grow, xrow = g[r], x[r]
                coefficients[0], coefficients[1] = rstd[r], -mean[r] * rstd[r]
                a, c = coefficients[0], coefficients[1]
                s1 = 0.0
                s2 = 0.0
                for j in range(width):
                    xh = xrow[j] * a + c
                    gv = grow[j]
                    gw = gv * weight[j]
                    s1 += gw
                    s2 += gw * xh
                    sum_w[j] += gv * xh
                    sum_b[j] += gv
                if need_x:
                    coefficients[2], coefficients[3] = s1 / width, s2 / width
                    k1, k2 = coefficients[2], coefficients[3]
                    target = grad_x[r]
                    for j in range(width):
                        xh = xrow[j] * a + c
                        target[j] = a * (grow[j] * weight[j] - k1 - xh * k2)

    return {"batch_norm_forward": batch_norm_forward,
            "batch_norm_backward": batch_norm_backward,
            "layer_norm_forward": layer_norm_forward,
            "layer_norm_backward": layer_norm_backward}


def _contiguous_rows(a):
    """(N, C, *) -> (a C-contiguous 3-D array, channel axis): (N, C, L) with axis 1, or the
    channel-major memory of the convolution's row layout as (C, N, L) with axis 0; a copy
    only for any other layout."""
    n, c = a.shape[:2]
    if a.flags.c_contiguous:
        return a.reshape(n, c, -1), 1
    if a.ndim > 1 and a.swapaxes(0, 1).flags.c_contiguous:
        return a.swapaxes(0, 1).reshape(c, n, -1), 0
    return np.ascontiguousarray(a).reshape(n, c, -1), 1


def _like(rows, axis, shape):
    """An uninitialised array in the memory order of ``rows`` (see _contiguous_rows), seen as
    (N, C, *) ``shape``, and its own rows."""
    out = np.empty(rows.shape, dtype=rows.dtype)
    if axis == 0:
        return out.reshape((shape[1], shape[0]) + tuple(shape[2:])).swapaxes(0, 1), out
    return out.reshape(shape), out


def batch_norm_forward(x, weight, bias, eps):
    """Training batch norm of x (N, C, *) with weight, bias (C,) arrays:
    -> (out like x, mean (C,) float64, biased var (C,) float64)."""
    rows, axis = _contiguous_rows(x)
    out, out_rows = _like(rows, axis, x.shape)
    mean, var = _build()["batch_norm_forward"](rows, axis, weight, bias, float(eps), out_rows)
    return out, mean, var


def batch_norm_backward(g, x, mean, rstd, weight, need_x):
    """Gradients of batch_norm_forward: g, x (N, C, *); mean, rstd, weight (C,) ->
    (grad_x like x or None, sum g xhat (C,), sum g (C,)), the sums in float64."""
    x_rows, axis = _contiguous_rows(x)
    g_rows, g_axis = _contiguous_rows(g)  # in its own order: a transposing copy of g cost
    if need_x:                            # ResNet-20 10 of its 19 batch norms, ~5 ms a step
        grad_x, target = _like(x_rows, axis, x.shape)
    else:
        grad_x, target = None, np.empty((1, 1, 1), dtype=x.dtype)
    sum_gx, sum_g = _build()["batch_norm_backward"](g_rows, x_rows, axis, g_axis, mean, rstd,
                                                    weight, target, need_x)
    return grad_x, sum_gx, sum_g


def layer_norm_forward(x, weight, bias, eps):
    """Layer norm of the rows of x (R, D) C-contiguous with weight, bias (D,) arrays ->
    (out (R, D), mean (R,) float64, rstd (R,) float64)."""
    out = np.empty_like(x)
    mean, rstd = np.empty(x.shape[0]), np.empty(x.shape[0])
    _build()["layer_norm_forward"](x, weight, bias, float(eps), out, mean, rstd)
    return out, mean, rstd


def layer_norm_backward(g, x, mean, rstd, weight, need_x):
    """Gradients of layer_norm_forward: g, x (R, D) C-contiguous; mean, rstd (R,); weight
    (D,) -> (grad_x (R, D) or None, sum over rows of g xhat (D,), of g (D,)), float64 sums."""
    tasks = max(1, min(64, x.shape[0] // 16))  # partial column sums per task, added here
    partial_w = np.empty((tasks, x.shape[1]))
    partial_b = np.empty((tasks, x.shape[1]))
    grad_x = np.empty_like(x) if need_x else np.empty((1, 1), dtype=x.dtype)
    _build()["layer_norm_backward"](g, x, mean, rstd, weight, grad_x, need_x, partial_w,
                                    partial_b)
    return (grad_x if need_x else None), partial_w.sum(axis=0), partial_b.sum(axis=0)


def _define_roi_pool(numba):
    prange = numba.prange

    @numba.njit(parallel=True, cache=True, nogil=True)
    def roi_pool_argmax(x, batch, h_lo, h_hi, w_lo, w_hi, best):
        """x (N, C, H, W); batch (K,); h_lo, h_hi (K, oh); w_lo, w_hi (K, ow) -> best
        (K, C, oh, ow): flat cell (into H*W) of each bin's first maximum in row-major order
        (the strict ``>`` scan of torchvision's kernel), -1 for an empty bin."""
        rois, channels, out_h, out_w = best.shape
        width = x.shape[3]
        for k in prange(rois):
            b = batch[k]
            for c in range(channels):
                for ph in range(out_h):
                    for pw in range(out_w):
                        arg = -1
                        top = -np.inf
                        for r in range(h_lo[k, ph], h_hi[k, ph]):
                            for q in range(w_lo[k, pw], w_hi[k, pw]):
                                v = x[b, c, r, q]
                                if arg == -1 or v > top:
                                    top = v
                                    arg = r * width + q
                        best[k, c, ph, pw] = arg
    return roi_pool_argmax


def roi_pool_argmax(x, batch, rows, cols):
    """RoI max pooling's winners: x (N, C, H, W) host array, batch (K,) int64, rows / cols the
    (K, out) [lo, hi) cell ranges of the bins per axis -> (K, C, oh, ow) int64 flat cell
    indices into H*W, -1 for an empty bin (NumPy twin: shendu.vision.ops.roi._pool_argmax)."""
    kernel = compile_once(_kernels, "roi_pool_argmax", _define_roi_pool)
    (h_lo, h_hi), (w_lo, w_hi) = rows, cols
    best = np.empty((batch.shape[0], x.shape[1], h_lo.shape[1], w_lo.shape[1]), dtype=np.int64)
    kernel(np.ascontiguousarray(x), batch, h_lo, h_hi, w_lo, w_hi, best)
    return best


# --- GELU (exact): one pass each way, on every core ------------------------------------------

_GELU_CHUNK = 16384  # elements per task: a task's three arrays stay in L2


def _define_gelu(numba):
    # no fastmath: each step rounds as ops/activation.py's NumPy reference does, with the
    # constants in x's dtype, so the forward is bitwise equal to it and so is the float64
    # backward; the float32 backward differs by a few ulps, as NumPy's float32 exp is its own
    # SIMD routine (tests/test_kernels.py). 1M-element GELU, 2 threads: forward 16.5 -> 8.3
    # ms, backward 7.6 -> 3.4 ms
    jit = numba.njit(parallel=True, cache=True, nogil=True, error_model="numpy")
    prange = numba.prange

    @jit
    def gelu_forward(x, out, cdf, inv_sqrt2, one, half):
        """x, out, cdf flat: cdf = 0.5 (1 + erf(x / sqrt 2)), out = x cdf."""
        n = x.size
        for task in prange((n + _GELU_CHUNK - 1) // _GELU_CHUNK):
            for i in range(task * _GELU_CHUNK, min(n, (task + 1) * _GELU_CHUNK)):
                c = (math.erf(x[i] * inv_sqrt2) + one) * half
                cdf[i] = c
                out[i] = x[i] * c

    @jit
    def gelu_backward(x, cdf, grad, out, minus_half, inv_sqrt_2pi):
        """x, cdf (from gelu_forward), grad, out flat: out = grad (cdf + x phi(x))."""
        n = x.size
        for task in prange((n + _GELU_CHUNK - 1) // _GELU_CHUNK):
            for i in range(task * _GELU_CHUNK, min(n, (task + 1) * _GELU_CHUNK)):
                v = x[i]
                out[i] = (math.exp(v * v * minus_half) * (v * inv_sqrt_2pi) + cdf[i]) * grad[i]

    # float32: erf as Eigen's rational approximation (numerator odd of degree 13, denominator
    # even of degree 8, |x| clamped to 4 where erf is 1 in float32), which LLVM vectorises
    # with fused multiply-adds, where math.erf is a scalar call per element: 1M elements
    # 8.6 -> 0.6 ms. Phi(x) is within 1.8e-7 of the exact value (math.erf rounded to
    # float32: 6e-8), GELU(x) within 9.7e-7 on [-8, 8] (2e-7 relative, at x = 5); torch's
    # float32 GELU, also approximate, is within 3.8e-7.
    fast = numba.njit(parallel=True, cache=True, nogil=True, error_model="numpy",
                      fastmath={"contract"})

    @fast
    def gelu_forward_f32(x, out, cdf, numerator, denominator):
        """float32 x, out, cdf flat: cdf = 0.5 (1 + erf(x / sqrt 2)), out = x cdf, erf by
        the rational approximation with the coefficients given (lowest power first)."""
        n = x.size
        scale, bound = np.float32(1 / math.sqrt(2)), np.float32(4.0)
        one, half = np.float32(1.0), np.float32(0.5)
        a0, a1, a2, a3, a4, a5, a6 = numerator
        b0, b1, b2, b3, b4 = denominator
        for task in prange((n + _GELU_CHUNK - 1) // _GELU_CHUNK):
            for i in range(task * _GELU_CHUNK, min(n, (task + 1) * _GELU_CHUNK)):
                v = x[i]
                z = min(max(v * scale, -bound), bound)  # NaN stays NaN
                z2 = z * z
                p = ((((((a6 * z2 + a5) * z2 + a4) * z2 + a3) * z2 + a2) * z2 + a1) * z2
                     + a0) * z
                q = (((b4 * z2 + b3) * z2 + b2) * z2 + b1) * z2 + b0
                c = (p / q + one) * half
                cdf[i] = c
                out[i] = v * c

    return {"gelu_forward": gelu_forward, "gelu_backward": gelu_backward,
            "gelu_forward_f32": gelu_forward_f32}


# Eigen's float32 erf (SpecialFunctionsImpl.h, generic_fast_erf_float), lowest power first
_ERF_F32_NUMERATOR = (-1.60960333262415e-02, -2.95459980854025e-03, -7.34990630326855e-04,
                      -5.69250639462346e-05, -2.10102402082508e-06, 2.77068142495902e-08,
                      -2.72614225801306e-10)
_ERF_F32_DENOMINATOR = (-1.42647390514189e-02, -7.37332916720468e-03, -1.68282697438203e-03,
                        -2.13374055278905e-04, -1.45660718464996e-05)


def gelu_available(*arrays) -> bool:
    """True when the GELU kernels take these arrays: host float32/float64, C-contiguous, one
    shape."""
    return (available(*arrays) and all(a.flags.c_contiguous for a in arrays)
            and len({a.shape for a in arrays}) == 1
            and _gelu_kernels() is not None)


def _gelu_kernels():
    return compile_once(_kernels, "gelu", _define_gelu)


def gelu_forward(x):
    """x (any shape, C-contiguous) -> (x Phi(x), Phi(x)), exact erf form (float32: erf to
    1.8e-7, see _define_gelu)."""
    out, cdf = np.empty_like(x), np.empty_like(x)
    t = x.dtype.type
    if x.dtype == np.float32:
        _gelu_kernels()["gelu_forward_f32"](
            x.reshape(-1), out.reshape(-1), cdf.reshape(-1),
            tuple(t(c) for c in _ERF_F32_NUMERATOR), tuple(t(c) for c in _ERF_F32_DENOMINATOR))
        return out, cdf
    _gelu_kernels()["gelu_forward"](
        x.reshape(-1), out.reshape(-1), cdf.reshape(-1), t(1 / math.sqrt(2)), t(1), t(0.5))
    return out, cdf


def gelu_backward(x, cdf, grad):
    """dL/dx = grad (Phi(x) + x phi(x)) for x, its saved Phi(x) and grad, all one shape."""
    out = np.empty_like(x)
    t = x.dtype.type
    _gelu_kernels()["gelu_backward"](
        x.reshape(-1), cdf.reshape(-1), grad.reshape(-1), out.reshape(-1), t(-0.5),
        t(1 / math.sqrt(2 * math.pi)))
    return out
