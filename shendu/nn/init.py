"""Weight initialization (Concept: N3.2.4, Table 5), with torch's fan and gain rules.

Every function fills its tensor in place (no graph), draws from an explicit ``generator``
(the device's default generator when None) and returns the tensor.

- Gaussian: N(mean, std^2), zero mean.
- Xavier/Glorot (tanh, sigmoid): Var(w) = gain^2 * 2 / (fan_in + fan_out), keeping activation
  and gradient variance equal forward and backward.
- Kaiming/He (ReLU family): Var(w) = gain^2 / fan (fan_in by default), gain = sqrt(2) for ReLU.
"""
from __future__ import annotations

import math

from shendu import autograd, backend


def calculate_gain(nonlinearity, param=None):
    """The gain torch recommends for each nonlinearity (e.g. relu -> sqrt(2), tanh -> 5/3)."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor):
    """fan_in = in_features * receptive field; fan_out = out_features * receptive field
    (weights laid out (out, in, *kernel) as torch's)."""
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out cannot be computed for a tensor with fewer than "
                         f"2 dims (shape {tensor.shape})")
    receptive = 1
    for n in tensor.shape[2:]:
        receptive *= n
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode {mode!r} is not supported; expected 'fan_in' or 'fan_out'")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _write(tensor, array):
    with autograd.no_grad():
        tensor.copy_(array.astype(tensor.dtype, copy=False))
    return tensor


def _gen(tensor, generator):
    return backend.generator_for(generator, tensor.device, "nn.init")


def _float_dtype(tensor):
    return tensor.dtype if tensor.dtype in (backend.float32, backend.float64) \
        else backend.float64


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with U(a, b)."""
    u = _gen(tensor, generator).random(tensor.shape, _float_dtype(tensor))
    return _write(tensor, a + (b - a) * u)


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with N(mean, std^2)."""
    z = _gen(tensor, generator).normal(tensor.shape, _float_dtype(tensor))
    return _write(tensor, mean + std * z)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """N(mean, std^2) resampled until inside [a, b] (rejection, vectorized)."""
    gen = _gen(tensor, generator)
    xp = tensor._xp
    out = mean + std * gen.normal(tensor.shape, _float_dtype(tensor))
    bad = (out < a) | (out > b)
    while bool(bad.any()):
        redraw = mean + std * gen.normal(tensor.shape, _float_dtype(tensor))
        out = xp.where(bad, redraw, out)
        bad = (out < a) | (out > b)
    return _write(tensor, out)


def constant_(tensor, val):
    with autograd.no_grad():
        return tensor.fill_(val)


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def eye_(tensor):
    if tensor.ndim != 2:
        raise ValueError(f"eye_: only 2-D tensors are supported, got shape {tensor.shape}")
    return _write(tensor, tensor._xp.eye(*tensor.shape))


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """U(-b, b) with b = gain * sqrt(3 / fan); torch's Linear/Conv default uses a = sqrt(5)."""
    gain = calculate_gain(nonlinearity, a)
    bound = math.sqrt(3.0) * gain / math.sqrt(_fan(tensor, mode))
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """N(0, std^2) with std = gain / sqrt(fan)."""
    gain = calculate_gain(nonlinearity, a)
    return normal_(tensor, 0.0, gain / math.sqrt(_fan(tensor, mode)), generator)


def orthogonal_(tensor, gain=1.0, generator=None):
    """A (semi-)orthogonal matrix from the QR decomposition of a Gaussian one (Saxe et al.
    2013), reshaped to the tensor (rows = shape[0])."""
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: only tensors with 2 or more dims are supported, got "
                         f"shape {tensor.shape}")
    xp = tensor._xp
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    flat = _gen(tensor, generator).normal((rows, cols), backend.float64)
    if rows < cols:
        flat = flat.T
    q, r = xp.linalg.qr(flat)
    q = q * xp.sign(xp.diag(r))  # makes the decomposition unique (uniform over O(n))
    if rows < cols:
        q = q.T
    return _write(tensor, gain * q.reshape(tensor.shape))
