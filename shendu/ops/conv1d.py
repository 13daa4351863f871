"""1-D convolution and pooling over (N, C, L) signals: the 2-D kernels on a unit height.

A signal (N, C, L) is the image (N, C, 1, L); a kernel of length k is the 1 x k kernel,
stride s is (1, s), padding p is (0, p). The 2-D Functions then give values and gradients
(and second derivatives) unchanged, so no 1-D code duplicates them.
"""
from __future__ import annotations

from shendu import backend
from shendu.ops.conv import conv2d
from shendu.ops.pool import (adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d,
                             max_pool2d)
from shendu.tensor import Tensor


def _single(value, name, op, low=1):
    """An int or a 1-tuple of ints, >= low."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{op}: {name} must be an int or a 1-tuple of ints, got {value!r}")
    if value < low:
        raise ValueError(f"{op}: {name} must be >= {low}, got {value!r}")
    return value


def _signal(x, op):
    """x (N, C, L) or (C, L) as an image with a unit height."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(x).__name__}")
    if x.ndim not in (2, 3):
        raise ValueError(f"{op}: expected a 2-D (C, L) or 3-D (N, C, L) input, got shape "
                         f"{tuple(x.shape)}")
    return x.unsqueeze(-2)


def _back(y):
    return tuple(t.squeeze(-2) for t in y) if isinstance(y, tuple) else y.squeeze(-2)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D cross-correlation y[n, o, t] = b[o] + sum_c,j w[o, c, j] x[n, c, s t + d j - p].

    Shape:
        input (N, C, L) or (C, L); weight (O, C/groups, k); bias (O,)
        -> output (N, O, L_out) or (O, L_out), L_out = (L + 2p - d(k-1) - 1) // s + 1.
    """
    op = "conv1d"
    x = _signal(input, op)
    if not isinstance(weight, Tensor) or weight.ndim != 3:
        raise ValueError(f"{op}: expected a 3-D weight (O, C/groups, k), got "
                         f"{getattr(weight, 'shape', type(weight).__name__)}")
    if isinstance(groups, int) and groups >= 1 and input.shape[-2] != weight.shape[1] * groups:
        raise ValueError(f"{op}: expected input (N, {weight.shape[1] * groups}, L) with "
                         f"{weight.shape[1] * groups} channels to match weight "
                         f"{tuple(weight.shape)} and groups={groups}, got {tuple(input.shape)}")
    if not isinstance(padding, str):
        padding = (0, _single(padding, "padding", op, low=0))
    y = conv2d(x, weight.unsqueeze(2), bias, (1, _single(stride, "stride", op)), padding,
               (1, _single(dilation, "dilation", op)), groups)
    return _back(y)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over each window of length kernel_size (indices: positions along L).

    Shape: input (N, C, L) or (C, L) -> (N, C, L_out) or (C, L_out).
    """
    op = "max_pool1d"
    x = _signal(input, op)
    k = _single(kernel_size, "kernel_size", op)
    s = k if stride is None or stride == () or stride == [] else _single(stride, "stride", op)
    y = max_pool2d(x, (1, k), (1, s), (0, _single(padding, "padding", op, low=0)),
                   (1, _single(dilation, "dilation", op)), ceil_mode, return_indices)
    return _back(y)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """Mean over each window of length kernel_size.

    Shape: input (N, C, L) or (C, L) -> (N, C, L_out) or (C, L_out).
    """
    op = "avg_pool1d"
    x = _signal(input, op)
    k = _single(kernel_size, "kernel_size", op)
    s = k if stride is None or stride == () or stride == [] else _single(stride, "stride", op)
    return _back(avg_pool2d(x, (1, k), (1, s), (0, _single(padding, "padding", op, low=0)),
                            ceil_mode, count_include_pad))


def adaptive_avg_pool1d(input, output_size):
    """Average pooling to output_size positions (torch's adaptive windows).

    Shape: input (N, C, L) or (C, L) -> (N, C, output_size) or (C, output_size).
    """
    op = "adaptive_avg_pool1d"
    x = _signal(input, op)
    if not backend.is_floating(x.dtype):
        raise TypeError(f"{op}: expected a floating-point input, got {x.dtype}")
    return _back(adaptive_avg_pool2d(x, (1, _single(output_size, "output_size", op))))


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """Max pooling to output_size positions (torch's adaptive windows).

    Shape: input (N, C, L) or (C, L) -> (N, C, output_size) or (C, output_size).
    """
    op = "adaptive_max_pool1d"
    x = _signal(input, op)
    return _back(adaptive_max_pool2d(x, (1, _single(output_size, "output_size", op)),
                                     return_indices))
