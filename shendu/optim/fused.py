"""Fused optimizer updates (numba, the ``fast`` extra): one pass per parameter for Adam/AdamW,
SGD with momentum and Adadelta (the optimizer of pytorch/examples' MNIST CNN), instead of the NumPy path's 8-12 passes and temporaries.

The NumPy ``_update`` of each optimizer stays the reference; tests/test_kernels.py checks that
these kernels give the same bits. To give the same bits every element runs the reference's
operations in the reference's order and in the parameter's dtype: the hyper-parameter scalars
are cast to that dtype here, as NumPy casts a Python float against a float32 array (they
travel as one small array: numba types a NumPy scalar argument slowly, ~5 us each), and the
kernels contain no float literals (a literal would promote float32 work to float64). No
fastmath: reassociation or fused multiply-adds would change the rounding.

A kernel is used only when ``kernels.available`` accepts the arrays (host float32/float64,
compiled kernels switched on) and param, grad and the state buffers share one dtype and are
C-contiguous; otherwise the caller runs its NumPy path.
"""
from __future__ import annotations

import types

from shendu import kernels

np = kernels.np
_kernels = {}

# from this many elements on, the parallel build. Measured on the shared 2-core machine
# (load 1-3, 2 threads, float32 Adam): a launch costs 60-140 us; at 1M elements the
# vectorised serial loop ran 0.44 ns per element and the parallel one 0.83; at 4M (out of
# cache) parallel 0.75 against serial 0.87. Every parameter of the MLP and tiny GPT is serial
_PARALLEL_MIN = 1 << 22

#: switch for benchmarks (benchmarks/optim_step.py times the NumPy path against the kernels)
enabled = True


def usable(*arrays) -> bool:
    """True when the fused kernels can update these arrays in place (same dtype, contiguous)."""
    if not enabled or not kernels.available(*arrays) or _build() is None:
        return False
    dtype = arrays[0].dtype
    return all(a.dtype == dtype and a.flags.c_contiguous for a in arrays)


def _build():
    return kernels.compile_once(_kernels, "built", _define)


def _define(numba):
    prange = numba.prange

    def adam(p, g, m, v, vmax, s, maximize, coupled, lerp_small, amsgrad, do_step):
        """p, g, m, v (n,) and vmax ((n,) or (1,) unused) updated in place, one element at a
        time, as Adam._update does with whole arrays; s (8,) the scalars in p's dtype."""
        decay, scale, w, w_rest, c2, beta2, d1, d2 = s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
        for i in prange(p.shape[0]):
            gi = g[i]
            if maximize:
                gi = -gi
            pi = p[i]
            if coupled:
                gi = pi * decay + gi
            else:
                pi = pi * scale  # scale is exactly 1 without decoupled decay
            mi = m[i]
            if lerp_small:  # lerp_: m + (g - m) * w, or g - (g - m) * (1 - w)
                mi = mi + (gi - mi) * w
            else:
                mi = gi - (gi - mi) * w_rest
            m[i] = mi
            vi = v[i] * beta2 + (gi * c2) * gi
            v[i] = vi
            if amsgrad:
                top = vmax[i]
                if vi > top or vi != vi:  # np.maximum: NaN wins from either side
                    top = vi
                vmax[i] = top
                vi = top
            if do_step:
                pi = pi + mi / ((np.sqrt(vi) / d1) + d2)
            p[i] = pi

    def sgd(p, g, buf, s, maximize, coupled, has_momentum, first, dampen, nesterov):
        """p, g (n,) and buf ((n,) or (1,) unused) updated in place as SGD._update does;
        s (4,) the scalars in p's dtype."""
        decay, momentum, alpha, lr = s[0], s[1], s[2], s[3]
        for i in prange(p.shape[0]):
            gi = g[i]
            if maximize:
                gi = -gi
            pi = p[i]
            if coupled:
                gi = pi * decay + gi
            if has_momentum:
                if first:
                    bi = gi
                elif dampen:
                    bi = buf[i] * momentum + gi * alpha
                else:
                    bi = buf[i] * momentum + gi
                buf[i] = bi
                gi = gi + bi * momentum if nesterov else bi
            p[i] = pi - gi * lr

    def adadelta(p, g, v, u, s, maximize, coupled):
        """p, g, v (square_avg), u (acc_delta) (n,) updated in place as Adadelta._update
        does; s (5,) the scalars in p's dtype."""
        decay, rho, rest, eps, lr = s[0], s[1], s[2], s[3], s[4]
        for i in prange(p.shape[0]):
            gi = g[i]
            if maximize:
                gi = -gi
            pi = p[i]
            if coupled:
                gi = gi + pi * decay
            vi = v[i] * rho + (rest * gi) * gi
            v[i] = vi
            di = np.sqrt(u[i] + eps) / np.sqrt(vi + eps) * gi
            u[i] = u[i] * rho + (rest * di) * di
            p[i] = pi - lr * di

    # the numpy error model: a zero denominator gives inf / NaN as in NumPy instead of
    # raising, and without the per-division check the serial loop vectorises (5x faster)
    serial = numba.njit(cache=True, nogil=True, error_model="numpy")
    parallel = numba.njit(parallel=True, cache=True, nogil=True, error_model="numpy")
    return {"adam": (serial(_renamed(adam, "serial")), parallel(adam)),
            "sgd": (serial(_renamed(sgd, "serial")), parallel(sgd)),
            "adadelta": (serial(_renamed(adadelta, "serial")), parallel(adadelta))}


def _renamed(fn, suffix):
    """A copy of fn under another __qualname__: numba's on-disk cache is keyed by the name
    and the signature, not the compile flags, so a serial and a parallel build of one function
    would overwrite each other there (the serial one then ran the parallel code)."""
    copy = types.FunctionType(fn.__code__, fn.__globals__, f"{fn.__name__}_{suffix}",
                              fn.__defaults__, fn.__closure__)
    copy.__qualname__ = f"{fn.__qualname__}_{suffix}"
    return copy


def _pick(name, n):
    return _build()[name][n >= _PARALLEL_MIN]


def adam_(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, lr, beta1, beta2, eps,
          weight_decay, decoupled, maximize, step):
    """Adam/AdamW's step ``step`` (already counted) on same-shape arrays, all in place.

    ``max_exp_avg_sq`` is the amsgrad buffer or None. Scalars are Python floats, combined here
    in float64 as Adam._update combines them, then cast to param's dtype.
    """
    flat = param.reshape(-1)
    coupled = weight_decay != 0 and not decoupled
    scale = 1.0 - lr * weight_decay if (weight_decay != 0 and decoupled) else 1.0
    weight = 1.0 - beta1
    bias_correction2_sqrt = (1.0 - beta2 ** step) ** 0.5
    step_size = lr / (1.0 - beta1 ** step)
    neg_step = -step_size if step_size != 0.0 else -1.0  # unused when step_size is 0
    amsgrad = max_exp_avg_sq is not None
    # a stand-in of its own when unused: one overlapping p would fail LLVM's runtime alias
    # check and send the whole loop down its scalar (unvectorised) version, 3x slower
    vmax = max_exp_avg_sq.reshape(-1) if amsgrad else np.empty(1, dtype=param.dtype)
    # the reference divides sqrt(v) by bias_correction2_sqrt * neg_step, then adds
    # eps / neg_step and divides m by that: the kernel computes m / (sqrt(v) / d1 + d2)
    scalars = np.array([weight_decay, scale, weight, 1.0 - weight, 1.0 - beta2, beta2,
                        bias_correction2_sqrt * neg_step, eps / neg_step], dtype=param.dtype)
    _pick("adam", flat.shape[0])(
        flat, grad.reshape(-1), exp_avg.reshape(-1), exp_avg_sq.reshape(-1), vmax, scalars,
        bool(maximize), coupled, weight < 0.5, amsgrad, step_size != 0.0)


def sgd_(param, grad, buf, *, lr, momentum, dampening, weight_decay, nesterov, maximize, first):
    """SGD's step on same-shape arrays in place; ``buf`` is the momentum buffer (None without
    momentum), filled with the gradient when ``first``."""
    flat = param.reshape(-1)
    has_momentum = buf is not None
    alpha = 1.0 - dampening
    scalars = np.array([weight_decay, momentum, alpha, lr], dtype=param.dtype)
    _pick("sgd", flat.shape[0])(
        flat, grad.reshape(-1), buf.reshape(-1) if has_momentum else np.empty(1, dtype=param.dtype), scalars,
        bool(maximize), weight_decay != 0, has_momentum, bool(first), alpha != 1.0,
        bool(nesterov))


def adadelta_(param, grad, square_avg, acc_delta, *, lr, rho, eps, weight_decay, maximize):
    """Adadelta's step on same-shape arrays, all in place."""
    flat = param.reshape(-1)
    scalars = np.array([weight_decay, rho, 1.0 - rho, eps, lr], dtype=param.dtype)
    _pick("adadelta", flat.shape[0])(
        flat, grad.reshape(-1), square_avg.reshape(-1), acc_delta.reshape(-1), scalars,
        bool(maximize), weight_decay != 0)
