"""Activation functions and their derivatives (Concept: N3.2.2, Table 4).

Each backward is written in Tensor ops, reading the saved output where the derivative is a
function of it (sigmoid: y(1-y); tanh: 1-y^2; softmax: y(g - sum(g y))), so second derivatives
are exact. softmax and log_softmax subtract the row max first: stable for logits of 1e4.
"""
from __future__ import annotations

import math

from shendu import backend, kernels
from shendu.autograd import Function, is_grad_enabled
from shendu.tensor import Tensor


def _constant(array):
    return Tensor._wrap(array)


class ReLU(Function):
    """max(0, x); the derivative at 0 is taken as 0 (torch's convention)."""

    uses_inputs = False

    def forward(self, x):
        self.saved_positive = x > 0
        return backend.xp_of(x).maximum(x, 0) if x.dtype.kind == "f" else x * self.saved_positive

    def backward(self, grad):
        if not is_grad_enabled():  # one pass, no float copy of the mask
            return Tensor._wrap(grad._data * self.saved_positive)
        return grad * _constant(self.saved_positive.astype(grad.dtype))


class LeakyReLU(Function):
    """x if x > 0 else slope * x (torch's default slope 0.01; the notes use 0.1)."""

    uses_inputs = False

    def forward(self, x, negative_slope=0.01):
        self.slope = negative_slope
        self.saved_positive = x > 0
        return backend.xp_of(x).where(self.saved_positive, x, x * negative_slope)

    def backward(self, grad):
        xp = backend.xp_of(grad._data)
        scale = xp.where(self.saved_positive, 1.0, self.slope).astype(grad.dtype)
        return grad * _constant(scale)


class ELU(Function):
    """x if x > 0 else alpha (e^x - 1); derivative 1 or alpha e^x = y + alpha."""

    def forward(self, x, alpha=1.0):
        self.alpha = alpha
        xp = backend.xp_of(x)
        return xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, 0)))

    def backward(self, grad):
        x = self.inputs[0]
        positive = x.detach() > 0
        from shendu.ops.elementwise import where
        return where(positive, grad, grad * self.alpha * x.exp())


class Sigmoid(Function):
    """1 / (1 + e^-x), evaluated without overflow for large |x|; y' = y (1 - y)."""

    uses_inputs = False
    uses_output = True

    def forward(self, x):
        xp = backend.xp_of(x)
        z = xp.exp(-xp.abs(x))  # in (0, 1]: never overflows
        return xp.where(x >= 0, 1 / (1 + z), z / (1 + z)).astype(x.dtype, copy=False)

    def backward(self, grad):
        y = self.output
        return grad * (y * (1.0 - y))


class Tanh(Function):
    uses_inputs = False
    uses_output = True

    def forward(self, x):
        return backend.xp_of(x).tanh(x)

    def backward(self, grad):
        y = self.output
        return grad * (1.0 - y * y)


class Erf(Function):
    def forward(self, x):
        return backend.erf(x)

    def backward(self, grad):
        x = self.inputs[0]
        return grad * (2.0 / math.sqrt(math.pi)) * (-(x * x)).exp()


# below this many elements the NumPy passes beat the kernels' parallel launch
_GELU_KERNEL_MIN = 1 << 15


class GELU(Function):
    """x Phi(x) with the exact normal CDF (or the tanh approximation when asked).

    Fused for speed: one kernel instead of five temporaries (float32's erf there is a
    rational approximation within 1.8e-7, as torch's float32 GELU is approximate too; float64
    keeps math.erf, bit for bit the NumPy passes). The exact form saves Phi(x), so
    a backward without create_graph is Phi(x) + x phi(x) on arrays with no second erf (erf
    was the largest cost of a GELU Transformer stack, profiled); with create_graph the
    backward is composed of Tensor ops, so it stays twice differentiable.
    """

    def forward(self, x, approximate="none"):
        self.approximate = approximate
        xp = backend.xp_of(x)
        if approximate == "tanh":
            inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)
            return 0.5 * x * (1 + xp.tanh(inner))
        if x.size >= _GELU_KERNEL_MIN and kernels.gelu_available(x):
            out, self.saved_cdf = kernels.gelu_forward(x)  # the same roundings, one pass
            return out
        cdf = backend.erf(x * (1 / math.sqrt(2)))
        cdf += 1
        cdf *= 0.5  # 0.5 (1 + erf) is exact in binary, so x * cdf rounds as 0.5 x (1 + erf)
        self.saved_cdf = cdf
        return x * cdf

    def backward(self, grad):
        if self.approximate == "none" and not is_grad_enabled():
            x = self.inputs[0]._data
            if x.size >= _GELU_KERNEL_MIN and kernels.gelu_available(x, self.saved_cdf,
                                                                     grad._data):
                return Tensor._wrap(kernels.gelu_backward(x, self.saved_cdf, grad._data))
            out = backend.xp_of(x).exp(x * x * -0.5)
            out *= x * (1 / math.sqrt(2 * math.pi))  # x phi(x)
            out += self.saved_cdf
            out *= grad._data
            return Tensor._wrap(out)
        x = self.inputs[0]
        if self.approximate == "tanh":
            k = math.sqrt(2 / math.pi)
            t = tanh(k * (x + 0.044715 * x * x * x))
            dinner = k * (1 + 3 * 0.044715 * x * x)
            return grad * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * dinner)
        cdf = 0.5 * (1.0 + erf(x * (1 / math.sqrt(2))))
        pdf = (-0.5 * x * x).exp() * (1 / math.sqrt(2 * math.pi))
        return grad * (cdf + x * pdf)


class Softplus(Function):
    """log(1 + e^x), evaluated as log1p(e^-|x|) + max(x, 0): no overflow, no lost digits.

    Derivative: sigmoid(x), a Tensor op, so it is twice differentiable.
    """

    def forward(self, x):
        xp = backend.xp_of(x)
        return xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(x, 0)

    def backward(self, grad):
        return grad * sigmoid(self.inputs[0])


class Softmax(Function):
    uses_inputs = False
    uses_output = True

    def forward(self, x, dim=-1):
        self.dim = dim
        xp = backend.xp_of(x)
        e = xp.exp(x - x.max(axis=dim, keepdims=True))
        e /= e.sum(axis=dim, keepdims=True)
        return e

    def backward(self, grad):
        y = self.output
        return y * (grad - (grad * y).sum(self.dim, keepdim=True))


class LogSoftmax(Function):
    uses_inputs = False
    uses_output = True

    def forward(self, x, dim=-1):
        self.dim = dim
        xp = backend.xp_of(x)
        shifted = x - x.max(axis=dim, keepdims=True)
        shifted -= xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))
        return shifted

    def backward(self, grad):
        y = self.output
        return grad - y.exp() * grad.sum(self.dim, keepdim=True)


def _float(x, op):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    if not backend.is_floating(x.dtype):
        raise TypeError(f"{op}: expected a floating point tensor, got {x.dtype}")
    return x


def _softmax_dim(x, dim, op):
    from shendu.ops.shape import _dim
    if dim is None:
        raise TypeError(f"{op}: dim must be given explicitly (torch's implicit dim is "
                        "deprecated)")
    return _dim(dim, x.ndim, op) if x.ndim else 0


def relu(x):
    return ReLU.apply(x)


def leaky_relu(x, negative_slope=0.01):
    return LeakyReLU.apply(_float(x, "leaky_relu"), negative_slope=negative_slope)


def elu(x, alpha=1.0):
    return ELU.apply(_float(x, "elu"), alpha=alpha)


def sigmoid(x):
    return Sigmoid.apply(_float(x, "sigmoid"))


def tanh(x):
    return Tanh.apply(_float(x, "tanh"))


def erf(x):
    return Erf.apply(_float(x, "erf"))


def gelu(x, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(_float(x, "gelu"), approximate=approximate)


def softmax(x, dim=None):
    x = _float(x, "softmax")
    if x.ndim == 0:
        return Softmax.apply(x.reshape(1), dim=0).reshape(())
    return Softmax.apply(x, dim=_softmax_dim(x, dim, "softmax"))


def log_softmax(x, dim=None):
    x = _float(x, "log_softmax")
    if x.ndim == 0:
        return LogSoftmax.apply(x.reshape(1), dim=0).reshape(())
    return LogSoftmax.apply(x, dim=_softmax_dim(x, dim, "log_softmax"))


# --- smooth and clipped relatives of ReLU, composed of the Functions above -------------------
# (each backward is then the chain rule through twice-differentiable ops)

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def softplus(x, beta=1.0, threshold=20.0):
    """log(1 + e^(beta x)) / beta, and x itself where beta x > threshold (torch's switch to
    the identity, whose gradient is then exactly 1)."""
    x = _float(x, "softplus")
    if beta <= 0:
        raise ValueError(f"softplus: beta must be > 0, got {beta}")
    from shendu.ops.elementwise import where
    scaled = x if beta == 1 else x * beta
    smooth = Softplus.apply(scaled) if beta == 1 else Softplus.apply(scaled) * (1.0 / beta)
    return where(scaled.detach() > threshold, x, smooth)


def silu(x):
    """x sigmoid(x) (the swish of Ramachandran et al. 2017)."""
    return _float(x, "silu") * sigmoid(x)


def mish(x):
    """x tanh(softplus(x)) (Misra 2019)."""
    return _float(x, "mish") * tanh(Softplus.apply(x))


def hardtanh(x, min_val=-1.0, max_val=1.0):
    """clamp(x, min_val, max_val); gradient 1 strictly inside, 0 outside and on the
    bounds (torch's hardtanh; clamp passes the gradient on the bounds)."""
    x = _float(x, "hardtanh")
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) must not exceed max_val ({max_val})")
    from shendu.ops.elementwise import where
    values = x.detach()
    inside = (values > min_val) & (values < max_val)   # torch's strict mask, unlike clamp's
    return where(inside, x, values.clamp(min_val, max_val))


def selu(x):
    """scale * elu(x, alpha) with the self-normalising constants of Klambauer et al. 2017."""
    return ELU.apply(_float(x, "selu"), alpha=SELU_ALPHA) * SELU_SCALE


def logsigmoid(x):
    """log sigmoid(x) = -softplus(-x), stable for large |x|."""
    return -Softplus.apply(-_float(x, "logsigmoid"))


def prelu(x, weight):
    """x where x > 0, else a * x with a learned slope per channel (dim 1), or one shared one.

    Shape: x (N, C, *) or (C,) ..., weight (C,) or (1,).
    """
    x = _float(x, "prelu")
    if not isinstance(weight, Tensor) or weight.ndim != 1:
        raise ValueError(f"prelu: weight must be a 1-D tensor, got "
                         f"{getattr(weight, 'shape', type(weight).__name__)}")
    channels = x.shape[1] if x.ndim >= 2 else 1  # torch: a 1-D input has one channel
    if weight.shape[0] not in (1, channels):
        raise ValueError(f"prelu: weight has {weight.shape[0]} slopes but the input "
                         f"{tuple(x.shape)} has {channels} channels (dim 1); expected 1 or "
                         f"{channels}")
    if weight.shape[0] > 1 and x.ndim >= 2:
        weight = weight.reshape((channels,) + (1,) * (x.ndim - 2))
    from shendu.ops.elementwise import where
    return where(x.detach() > 0, x, weight * x)
