"""More element-wise functions: sine, cosine and rounding (torch.sin, cos, floor, ceil, round).

    sin' = cos, cos' = -sin (Tensor ops, so twice differentiable); floor, ceil and round are
    step functions whose gradient is zero everywhere it exists, which torch returns too.
"""
from __future__ import annotations

from shendu import backend
from shendu.autograd import Function
from shendu.tensor import Tensor


class Sin(Function):
    def forward(self, x):
        return backend.xp_of(x).sin(x)

    def backward(self, grad):
        return grad * cos(self.inputs[0])


class Cos(Function):
    def forward(self, x):
        return backend.xp_of(x).cos(x)

    def backward(self, grad):
        return -grad * sin(self.inputs[0])


class Step(Function):
    """floor, ceil or round: piecewise constant, so the gradient is zero."""

    uses_inputs = False

    def forward(self, x, kind="floor", decimals=0):
        xp = backend.xp_of(x)
        if kind == "round":
            return xp.round(x, decimals)
        return getattr(xp, kind)(x)

    def backward(self, grad):
        return grad * 0.0


def _tensor(x, op):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    return x


def _floating(x, op):
    _tensor(x, op)
    if not backend.is_floating(x.dtype):
        x = x.to(backend.default_float)  # torch.sin(int tensor) gives the default float
    return x


def sin(input):
    return Sin.apply(_floating(input, "sin"))


def cos(input):
    return Cos.apply(_floating(input, "cos"))


def _step(input, kind, decimals=0):
    _tensor(input, kind)
    if not backend.is_floating(input.dtype):
        if decimals:
            raise TypeError(f"{kind}: decimals needs a floating point tensor, got "
                            f"{input.dtype}")
        return input.clone()  # integers are already whole, as torch returns them
    return Step.apply(input, kind=kind, decimals=decimals)


def floor(input):
    return _step(input, "floor")


def ceil(input):
    return _step(input, "ceil")


def round(input, *, decimals=0):  # noqa: A001 - torch's name
    """Round half to even (as torch and NumPy), to ``decimals`` places."""
    return _step(input, "round", decimals)
