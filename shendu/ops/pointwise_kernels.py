"""Parallel pointwise kernels (numba) for the elementwise steps of a CNN step, beside their
NumPy references in activation.py and elementwise.py.

Why: NumPy runs every ufunc on one thread, so on two cores a ReLU or a residual add used half
the machine (PyTorch splits them over its threads), and ReLU's forward made two passes (the
mask, then the maximum). These make one pass, split over numba's threads.

They take dense arrays of equal shape and strides (any memory order: the convolution's row
layout returns (N, C, H, W) views of (C, N, H, W) memory) and walk their memory in order, so
the outputs keep the inputs' layout. Below ``MIN_SIZE`` elements a thread launch costs more
than it saves, and NumPy runs. Every result is bitwise the reference's (tests/test_kernels.py).
"""
from __future__ import annotations

from shendu import backend, kernels

np = backend.namespace("cpu")  # numba compiles NumPy calls; these kernels only see host arrays
_kernels = {}

MIN_SIZE = 1 << 16


def _dense(a) -> bool:
    """True when a's elements fill its memory span with no gaps (any axis order)."""
    if a.size == 0:
        return False
    span = a.itemsize
    for stride, size in sorted(zip(map(abs, a.strides), a.shape)):
        if size > 1 and stride != span:
            return False
        span *= size
    return True


def _order(a):
    return tuple(stride // a.itemsize for stride in a.strides)


def usable(x, *others) -> bool:
    """True when the kernels take x and the arrays beside it (the others may be masks): x a
    host float32/float64 array of at least MIN_SIZE elements, dense, and the others of x's
    shape and memory order (x's dtype, unless boolean)."""
    return (x.size >= MIN_SIZE and kernels.available(x) and _dense(x)
            and all(a.shape == x.shape and _order(a) == _order(x)
                    and (a.dtype == x.dtype or a.dtype == bool) for a in others)
            and _build() is not None)


def _build():
    return kernels.compile_once(_kernels, "built", _define)


def _define(numba):
    jit = numba.njit(parallel=True, cache=True, nogil=True, error_model="numpy")
    prange = numba.prange

    @jit
    def relu_forward(x, out, positive):
        """flat x -> out = np.maximum(x, 0) and positive = x > 0: NaN is kept, a negative
        or -0.0 becomes +0.0, as np.maximum does."""
        zero = x[:0].sum()  # +0.0 in x's dtype
        for i in prange(x.shape[0]):
            v = x[i]
            positive[i] = v > 0
            out[i] = zero if v <= 0 else v
        return out

    @jit
    def relu_backward(grad, positive, out):
        """flat grad, positive -> out = grad * positive (a masked NaN stays NaN)."""
        for i in prange(grad.shape[0]):
            g = grad[i]
            out[i] = g if positive[i] else g * 0
        return out

    @jit
    def add(a, b, out):
        for i in prange(a.shape[0]):
            out[i] = a[i] + b[i]
        return out

    return {"relu_forward": relu_forward, "relu_backward": relu_backward, "add": add}


def _flat(a):
    return a.ravel(order="K")  # a view: the arrays are dense


def relu(x):
    """x -> (max(x, 0), x > 0), both in x's memory order."""
    out = np.empty_like(x)
    positive = np.empty_like(x, dtype=bool)
    _build()["relu_forward"](_flat(x), _flat(out), _flat(positive))
    return out, positive


def relu_backward(grad, positive):
    """grad, positive (the forward's mask, in grad's memory order) -> grad * positive."""
    out = np.empty_like(grad)
    _build()["relu_backward"](_flat(grad), _flat(positive), _flat(out))
    return out


def add(a, b):
    """a + b for arrays of one shape and layout."""
    out = np.empty_like(a)
    _build()["add"](_flat(a), _flat(b), _flat(out))
    return out
