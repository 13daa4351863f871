"""Max pooling kernels (numba), beside the NumPy reference in pool.py.

Why: the reference takes a strided pass per kernel tap for the maxima, another per tap for
the arg-max offsets (in backward), and another per tap to route the gradient; pytorch/examples'
MNIST CNN pools (64, 64, 24, 24), and those passes took 15.6 ms of its 97 ms step (torch's
pooling: 8.6 ms, nearly all forward). Here one sweep per plane finds each window's maximum and
its offset (1.7 ms against the reference's 1.7 + 3.0), and one routes the gradient (2.1
against 3.4), in parallel over the (N, C) planes: the MNIST CNN's step 88/82 against 103/97
ms in one process, VGG's 287 against 295.

  max_pool_2x2:      x (N, C, H, W) -> best (N, C, Ho, Wo) and idx, the kernel offset i*kW + j
                     of each window's first maximum, or of its last NaN (pool._argmax_offsets'
                     rule, torch's), for 2x2 windows at stride 2 (LeNet's, VGG's, the MNIST
                     CNN's); other windows keep the reference.
  max_pool_scatter:  g (N, C, Ho, Wo), idx -> the input gradient, for disjoint windows (stride
                     >= kernel, no dilation: each input pixel takes at most one gradient, so
                     no sum's order can differ from the reference's).

Host float32/float64 arrays only; pool.py decides when these are used.
"""
from __future__ import annotations

from shendu import backend, kernels

np = backend.namespace("cpu")  # numba compiles NumPy calls; these kernels only see host arrays
_compiled = kernels.KernelSet(lambda numba: _define(numba))  # _define comes below
available = _compiled.available  # True when the compiled kernels can take these arrays


def _define(numba):
    # no fastmath: comparisons and copies only, NaN handled explicitly
    jit = numba.njit(parallel=True, cache=True, nogil=True, error_model="numpy")
    prange = numba.prange

    @jit
    def max_pool_2x2(x, best, idx):
        """2x2 windows at stride 2, no padding: the loop bounds are constants, so LLVM unrolls
        the taps and the maximum is maxss, not a branch (a kernel with the geometry as
        arguments took 10.7 ms on (64, 64, 24, 24), slower than the reference's 7.0)."""
        batch, channels = x.shape[0], x.shape[1]
        out_h, out_w = best.shape[2], best.shape[3]
        for plane in prange(batch * channels):
            n, c = plane // channels, plane % channels
            src, dst, arg_dst = x[n, c], best[n, c], idx[n, c]
            for y in range(out_h):
                for z in range(out_w):
                    m = src[2 * y, 2 * z]
                    arg = 0
                    nan = np.isnan(m)
                    for tap in range(1, 4):
                        v = src[2 * y + tap // 2, 2 * z + tap % 2]
                        isnan = np.isnan(v)
                        # a larger value, or a NaN: the last NaN wins, and no number
                        # replaces a NaN
                        if (v > m and not nan) or isnan:
                            arg = tap
                        m = max(m, v)
                        nan = nan or isnan
                    dst[y, z] = np.nan if nan else m
                    arg_dst[y, z] = arg

    @jit
    def max_pool_scatter(g, idx, kw, sh, sw, ph, pw, out):
        batch, channels = g.shape[0], g.shape[1]
        out_h, out_w = g.shape[2], g.shape[3]
        for plane in prange(batch * channels):
            n, c = plane // channels, plane % channels
            src, arg_src, dst = g[n, c], idx[n, c], out[n, c]
            dst[:, :] = 0
            for y in range(out_h):
                for z in range(out_w):
                    o = arg_src[y, z]
                    if o >= 0:
                        dst[y * sh + o // kw - ph, z * sw + o % kw - pw] = src[y, z]

    return {"max_pool_2x2": max_pool_2x2, "max_pool_scatter": max_pool_scatter}


def takes_2x2(pool, shape):
    """True for 2x2 windows at stride 2 without padding or dilation inside the input (floor
    mode): the geometry max_pool_2x2 is compiled for."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (ho, wo) = pool
    return ((kh, kw, sh, sw, ph, pw, dh, dw) == (2, 2, 2, 2, 0, 0, 1, 1)
            and 2 * ho <= shape[2] and 2 * wo <= shape[3])


def max_pool_2x2(x, pool, index_dtype):
    """x (N, C, H, W) -> (best (N, C, Ho, Wo), idx of ``index_dtype``) for a pool that
    ``takes_2x2``."""
    best = np.empty(x.shape[:2] + tuple(pool[4]), dtype=x.dtype)
    idx = np.empty(best.shape, dtype=index_dtype)
    _compiled.get()["max_pool_2x2"](x, best, idx)
    return best, idx


def max_pool_scatter(g, idx, pool, in_shape):
    """The gradient of disjoint max pooling: g (N, C, Ho, Wo) at each window's ``idx`` offset,
    zero elsewhere -> (N, C, H, W)."""
    (_, kw), (sh, sw), (ph, pw), _, _ = pool
    out = np.empty(in_shape, dtype=g.dtype)
    _compiled.get()["max_pool_scatter"](g, idx, kw, sh, sw, ph, pw, out)
    return out
