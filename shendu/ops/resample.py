"""Resampling images and signals: interpolate (nearest, linear/bilinear, area) and
pixel_shuffle / pixel_unshuffle, with torch.nn.functional's semantics.

Each spatial axis is resampled on its own. Nearest picks source index floor(i * scale)
(index_select); linear modes form an (out, in) interpolation matrix per axis and multiply,
y = Mh x Mw^T, so the gradient is the transposed matrices (matmul's backward) and nothing
loops over pixels. Source coordinates follow torch:

    align_corners=False: src = max((i + 0.5) * scale - 0.5, 0), scale = in / out
                         (1 / scale_factor when one is given)
    align_corners=True:  src = i * (in - 1) / (out - 1)   (corner pixels stay aligned)
"""
from __future__ import annotations

import math

from shendu import backend
from shendu.ops.pool import adaptive_avg_pool2d
from shendu.tensor import Tensor

_LINEAR = {3: "linear", 4: "bilinear"}
_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "area")


def _output_sizes(op, spatial, size, scale_factor, recompute_scale_factor):
    """(output sizes, scales for the coordinate map) per spatial axis."""
    k = len(spatial)
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor, got size={size!r}, "
                         f"scale_factor={scale_factor!r}")
    if size is not None:
        sizes = tuple(size) if isinstance(size, (tuple, list)) else (size,) * k
        if len(sizes) != k or not all(isinstance(n, int) and n > 0 for n in sizes):
            raise ValueError(f"{op}: size must be a positive int or {k} positive ints for "
                             f"input with spatial shape {spatial}, got {size!r}")
        return sizes, tuple(n / o for n, o in zip(spatial, sizes))
    factors = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) \
        else (scale_factor,) * k
    if len(factors) != k or not all(isinstance(f, (int, float)) and f > 0 for f in factors):
        raise ValueError(f"{op}: scale_factor must be a positive number or {k} of them for "
                         f"input with spatial shape {spatial}, got {scale_factor!r}")
    sizes = tuple(int(math.floor(n * f)) for n, f in zip(spatial, factors))
    if min(sizes) < 1:
        raise ValueError(f"{op}: scale_factor {scale_factor!r} makes an empty output from "
                         f"spatial shape {spatial}")
    if recompute_scale_factor:
        return sizes, tuple(n / o for n, o in zip(spatial, sizes))
    return sizes, tuple(1.0 / f for f in factors)


def _nearest_index(xp, size, out, scale, exact):
    i = xp.arange(out, dtype=backend.float64)
    src = xp.floor((i + 0.5) * scale) if exact else xp.floor(i * scale)
    return xp.minimum(src.astype(backend.int64), size - 1)


def _linear_matrix(xp, size, out, scale, align_corners, dtype):
    """(out, size) matrix whose row i holds the two linear-interpolation weights."""
    i = xp.arange(out, dtype=backend.float64)
    if align_corners:
        src = i * ((size - 1) / (out - 1)) if out > 1 else xp.zeros(out)
    else:
        src = xp.maximum((i + 0.5) * scale - 0.5, 0.0)
    low = xp.minimum(xp.floor(src).astype(backend.int64), size - 1)
    high = xp.minimum(low + 1, size - 1)
    frac = src - low
    m = xp.zeros((out, size), dtype=backend.float64)
    rows = xp.arange(out)
    m[rows, low] += 1.0 - frac
    m[rows, high] += frac
    return Tensor._wrap(m.astype(dtype))


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize (N, C, L) signals or (N, C, H, W) images to ``size`` or by ``scale_factor``.

    Modes: 'nearest', 'nearest-exact', 'linear' (3-D input), 'bilinear' (4-D), 'area'
    (adaptive average pooling). align_corners only applies to the linear modes.

    Shape: input (N, C, *spatial) -> (N, C, *size).
    """
    op = "interpolate"
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(input).__name__}")
    if input.ndim not in (3, 4):
        raise ValueError(f"{op}: expected a 3-D (N, C, L) or 4-D (N, C, H, W) input, got shape "
                         f"{tuple(input.shape)} (volumes are not supported)")
    if mode not in _MODES:
        raise ValueError(f"{op}: mode {mode!r} is not supported; expected one of {_MODES}")
    if mode in ("linear", "bilinear") and mode != _LINEAR[input.ndim]:
        raise ValueError(f"{op}: mode {mode!r} needs a {3 if mode == 'linear' else 4}-D input, "
                         f"got shape {tuple(input.shape)}; use {_LINEAR[input.ndim]!r}")
    if align_corners is not None and mode not in ("linear", "bilinear"):
        raise ValueError(f"{op}: align_corners can only be set with the interpolating modes "
                         f"'linear' and 'bilinear', not {mode!r}")
    if antialias:
        raise ValueError(f"{op}: antialias=True is not supported")
    if not backend.is_floating(input.dtype):
        raise TypeError(f"{op}: expected a floating-point input, got {input.dtype}")
    spatial = tuple(input.shape[2:])
    sizes, scales = _output_sizes(op, spatial, size, scale_factor, recompute_scale_factor)
    xp = input._xp
    if mode == "area":
        x = input if input.ndim == 4 else input.unsqueeze(2)
        y = adaptive_avg_pool2d(x, sizes if input.ndim == 4 else (1,) + sizes)
        return y if input.ndim == 4 else y.squeeze(2)
    if mode.startswith("nearest"):
        y = input
        for axis, (n, o, s) in enumerate(zip(spatial, sizes, scales)):
            if n != o or s != 1.0:
                index = _nearest_index(xp, n, o, s, mode == "nearest-exact")
                y = y.index_select(2 + axis, Tensor._wrap(index))
        return y
    mats = [_linear_matrix(xp, n, o, s, bool(align_corners), input.dtype)
            for n, o, s in zip(spatial, sizes, scales)]
    if input.ndim == 3:
        return input @ mats[0].mT
    return mats[0] @ input @ mats[1].mT


def pixel_shuffle(input, upscale_factor):
    """(*, C r^2, H, W) -> (*, C, H r, W r): each group of r^2 channels becomes an r x r
    block of pixels (sub-pixel convolution, Shi et al. 2016)."""
    op = "pixel_shuffle"
    r = _factor(op, upscale_factor, "upscale_factor")
    if not isinstance(input, Tensor) or input.ndim < 3 or input.shape[-3] % (r * r):
        raise ValueError(f"{op}: expected input (*, C * {r}^2, H, W), got "
                         f"{getattr(input, 'shape', type(input).__name__)}")
    *lead, c, h, w = input.shape
    x = input.reshape(*lead, c // (r * r), r, r, h, w)
    k = len(lead)
    x = x.permute(*range(k), k, k + 3, k + 1, k + 4, k + 2)        # (*, C, H, r, W, r)
    return x.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input, downscale_factor):
    """(*, C, H r, W r) -> (*, C r^2, H, W), the inverse of pixel_shuffle."""
    op = "pixel_unshuffle"
    r = _factor(op, downscale_factor, "downscale_factor")
    if not isinstance(input, Tensor) or input.ndim < 3 or input.shape[-1] % r \
            or input.shape[-2] % r:
        raise ValueError(f"{op}: expected input (*, C, H, W) with H and W divisible by {r}, "
                         f"got {getattr(input, 'shape', type(input).__name__)}")
    *lead, c, h, w = input.shape
    x = input.reshape(*lead, c, h // r, r, w // r, r)
    k = len(lead)
    x = x.permute(*range(k), k, k + 2, k + 4, k + 1, k + 3)        # (*, C, r, r, H, W)
    return x.reshape(*lead, c * r * r, h // r, w // r)


def _factor(op, value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{op}: {name} must be a positive int, got {value!r}")
    return value
