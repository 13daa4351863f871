"""Max pooling kernels (numba, parallel over the N*C planes), beside the NumPy reference in
pool.py, for windows that do not overlap (stride >= kernel, no dilation: the 2x2 stride-2 pool
of LeNet, VGG and pytorch/examples' MNIST CNN).

Why: the reference loops over the kh*kw kernel offsets with whole-array NumPy steps on one
thread; its backward first finds every window's arg-max offset (kh*kw compare-and-update
passes) and then routes the gradient (kh*kw more). Here the forward is one pass, and the
backward finds each window's arg-max and writes its gradient in the same pass.

The semantics are the reference's (tests/test_kernels.py): a window's maximum is NaN when it
holds a NaN; the gradient goes to its first maximum in row-major order, or to its last NaN;
every other input gets zero (+0.0, where the reference's g * 0 gives -0.0 for a negative g). Windows that overlap would add several
gradients into one input in another order than the reference, so they stay with NumPy.
"""
from __future__ import annotations

from shendu import backend, kernels

np = backend.namespace("cpu")  # numba compiles NumPy calls; these kernels only see host arrays
_kernels = {}


def usable(x, pool) -> bool:
    """True when the kernels take x (N, C, H, W) with this pool (see pool.py's layout)."""
    (kh, kw), (sh, sw), _, (dh, dw), _ = pool
    return (dh == 1 and dw == 1 and sh >= kh and sw >= kw and x.ndim == 4
            and kernels.available(x) and _build() is not None)


def _build():
    return kernels.compile_once(_kernels, "built", _define)


def _define(numba):
    jit = numba.njit(parallel=True, cache=True, nogil=True, error_model="numpy")
    prange = numba.prange

    @jit
    def max_pool_forward(x, kh, kw, sh, sw, ph, pw, best):
        """x (N, C, H, W), any strides -> best (N, C, Ho, Wo): each window's maximum (NaN
        if it holds one)."""
        batch, channels, height, width = x.shape
        out_h, out_w = best.shape[2], best.shape[3]
        for plane in prange(batch * channels):
            n = plane // channels
            c = plane % channels
            for oh in range(out_h):
                for ow in range(out_w):
                    top = -np.inf
                    nan = False
                    for i in range(kh):
                        r = oh * sh + i - ph
                        if r < 0 or r >= height:
                            continue
                        for j in range(kw):
                            q = ow * sw + j - pw
                            if q < 0 or q >= width:
                                continue
                            v = x[n, c, r, q]
                            if v != v:
                                nan = True
                            elif v > top:
                                top = v
                    best[n, c, oh, ow] = np.nan if nan else top

    @jit
    def max_pool_backward(x, grad, kh, kw, sh, sw, ph, pw, out):
        """x (N, C, H, W), grad (N, C, Ho, Wo), any strides -> out (N, C, H, W), zero-filled
        by the caller: each window's gradient at its first maximum, or its last NaN."""
        batch, channels, height, width = x.shape
        out_h, out_w = grad.shape[2], grad.shape[3]
        for plane in prange(batch * channels):
            n = plane // channels
            c = plane % channels
            for oh in range(out_h):
                for ow in range(out_w):
                    top = -np.inf
                    at_r = at_q = -1
                    nan = False
                    for i in range(kh):
                        r = oh * sh + i - ph
                        if r < 0 or r >= height:
                            continue
                        for j in range(kw):
                            q = ow * sw + j - pw
                            if q < 0 or q >= width:
                                continue
                            v = x[n, c, r, q]
                            if v != v:
                                nan = True
                                at_r, at_q = r, q
                            elif not nan and (at_r < 0 or v > top):
                                top = v
                                at_r, at_q = r, q
                    if at_r >= 0:
                        out[n, c, at_r, at_q] = grad[n, c, oh, ow]

    return {"max_pool_forward": max_pool_forward, "max_pool_backward": max_pool_backward}


def _geometry(pool):
    (kh, kw), (sh, sw), (ph, pw), _, _ = pool
    return kh, kw, sh, sw, ph, pw


def max_pool(x, pool):
    """x (N, C, H, W) -> (N, C, Ho, Wo) window maxima."""
    best = np.empty(x.shape[:2] + tuple(pool[4]), dtype=x.dtype)
    _build()["max_pool_forward"](x, *_geometry(pool), best)
    return best


def max_pool_backward(x, grad, pool):
    """x (N, C, H, W), grad (N, C, Ho, Wo) -> the gradient w.r.t. x (N, C, H, W)."""
    out = np.zeros(x.shape, dtype=grad.dtype)
    _build()["max_pool_backward"](x, grad, *_geometry(pool), out)
    return out
