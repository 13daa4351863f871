"""Activation layers, each a thin wrapper over its functional form (Concept: N3.2.2).

    ReLU      max(0, x)                       d/dx = 1 if x > 0 else 0
    LeakyReLU max(0, x) + slope * min(0, x)   (torch's slope 0.01; the notes use 0.1)
    ELU       x if x > 0 else alpha (e^x - 1)
    GELU      x Phi(x) (tanh approximation with approximate='tanh')
    Sigmoid   1 / (1 + e^-x)                  d/dx = y (1 - y)
    Tanh      tanh(x)                         d/dx = 1 - y^2
    Softmax   e^x_i / sum_j e^x_j along dim (computed stably)
    LogSoftmax x_i - log sum_j e^x_j along dim
    SiLU      x sigmoid(x)                    Mish   x tanh(softplus(x))
    Softplus  log(1 + e^(beta x)) / beta      LogSigmoid -softplus(-x)
    Hardtanh  clamp(x, min_val, max_val)      ReLU6  clamp(x, 0, 6)
    SELU      scale * elu(x, alpha)           PReLU  x if x > 0 else a x (a learned)

Shape (all): input (*) -> output (*)
"""
from __future__ import annotations

import warnings

from shendu import creation
from shendu.autograd import no_grad
from shendu.nn import functional as F
from shendu.nn._checks import check_tensor
from shendu.nn.module import Module, Parameter


class ReLU(Module):
    """max(0, x) elementwise.  Concept: N3.2.2."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        check_tensor("ReLU()", input)
        return F.relu(input, inplace=self.inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """max(0, x) + negative_slope * min(0, x).  Concept: N3.2.2.

    Args:
        negative_slope: slope for x < 0. Default: 0.01 (torch's; the notes use 0.1).
        inplace: overwrite the input. Default: False.
    """

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input):
        check_tensor(f"LeakyReLU(negative_slope={self.negative_slope})", input)
        return F.leaky_relu(input, self.negative_slope, inplace=self.inplace)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace
                                                           else "")


class ELU(Module):
    """x if x > 0 else alpha (e^x - 1).  Concept: N3.2.2 (Clevert et al. 2015).

    Args:
        alpha: the saturation value for x -> -inf is -alpha. Default: 1.0.
        inplace: overwrite the input. Default: False.
    """

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha = alpha
        self.inplace = inplace

    def forward(self, input):
        check_tensor(f"ELU(alpha={self.alpha})", input)
        return F.elu(input, self.alpha, inplace=self.inplace)

    def extra_repr(self):
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class GELU(Module):
    """x Phi(x), Phi the standard normal CDF (Hendrycks & Gimpel 2016).

    Args:
        approximate: 'none' (exact, via erf) or 'tanh'
            (0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))). Default: 'none'.
    """

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got "
                             f"{approximate!r}")
        self.approximate = approximate

    def forward(self, input):
        check_tensor(f"GELU(approximate={self.approximate!r})", input)
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Sigmoid(Module):
    """1 / (1 + e^-x).  Concept: N3.2.2."""

    def forward(self, input):
        check_tensor("Sigmoid()", input)
        return F.sigmoid(input)


class Tanh(Module):
    """tanh(x), zero-centred, saturating.  Concept: N3.2.2."""

    def forward(self, input):
        check_tensor("Tanh()", input)
        return F.tanh(input)


def _legacy_softmax_dim(layer, ndim):
    """torch's implicit dim for dim=None (deprecated there too): 0 for 0-, 1- and 3-D input,
    else 1."""
    warnings.warn(f"{layer}: implicit dimension choice has been deprecated; pass dim=",
                  UserWarning, stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


class Softmax(Module):
    """e^x_i / sum_j e^x_j along ``dim`` (max-shifted, so it never overflows).
    Concept: N3.2.2.

    Args:
        dim: the dim that sums to 1. None picks torch's legacy implicit dim, with a warning.
    """

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        check_tensor(f"Softmax(dim={self.dim})", input)
        dim = self.dim if self.dim is not None else _legacy_softmax_dim("Softmax", input.ndim)
        return F.softmax(input, dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """log(softmax(x)) = x_i - logsumexp(x) along ``dim``, computed stably.

    Args:
        dim: the reduced dim. None picks torch's legacy implicit dim, with a warning.
    """

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        check_tensor(f"LogSoftmax(dim={self.dim})", input)
        dim = self.dim if self.dim is not None else _legacy_softmax_dim("LogSoftmax",
                                                                         input.ndim)
        return F.log_softmax(input, dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class _Pointwise(Module):
    """A parameter-free activation whose constructor arguments are passed to ``F.<fn>``."""

    _fn = None
    _args = ()

    def __init__(self, **kwargs):
        super().__init__()
        for name, value in kwargs.items():
            setattr(self, name, value)

    def _describe(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    def forward(self, input):
        check_tensor(self._describe(), input)
        kwargs = {name: getattr(self, name) for name in self._args}
        return getattr(F, self._fn)(input, **kwargs)

    def extra_repr(self):
        return ", ".join(f"{name}={getattr(self, name)}" for name in self._args
                         if name != "inplace" or self.inplace)


class SiLU(_Pointwise):
    """x sigmoid(x) (swish, Ramachandran et al. 2017).  Shape: (*) -> (*)."""

    _fn, _args = "silu", ("inplace",)

    def __init__(self, inplace=False):
        super().__init__(inplace=inplace)


class Mish(_Pointwise):
    """x tanh(softplus(x)) (Misra 2019).  Shape: (*) -> (*)."""

    _fn, _args = "mish", ("inplace",)

    def __init__(self, inplace=False):
        super().__init__(inplace=inplace)


class Softplus(_Pointwise):
    """log(1 + e^(beta x)) / beta, a smooth ReLU; x itself where beta x > threshold.

    Shape: (*) -> (*)."""

    _fn, _args = "softplus", ("beta", "threshold")

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__(beta=beta, threshold=threshold)


class Hardtanh(_Pointwise):
    """clamp(x, min_val, max_val).  Shape: (*) -> (*)."""

    _fn, _args = "hardtanh", ("min_val", "max_val", "inplace")

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        if min_val > max_val:
            raise ValueError(f"Hardtanh: min_val ({min_val}) must not exceed max_val "
                             f"({max_val})")
        super().__init__(min_val=min_val, max_val=max_val, inplace=inplace)


class ReLU6(_Pointwise):
    """min(max(0, x), 6).  Shape: (*) -> (*)."""

    _fn, _args = "relu6", ("inplace",)

    def __init__(self, inplace=False):
        super().__init__(inplace=inplace)


class SELU(_Pointwise):
    """1.0507 * elu(x, 1.6733): activations keep zero mean and unit variance
    (Klambauer et al. 2017).  Shape: (*) -> (*)."""

    _fn, _args = "selu", ("inplace",)

    def __init__(self, inplace=False):
        super().__init__(inplace=inplace)


class LogSigmoid(_Pointwise):
    """log sigmoid(x) = -softplus(-x).  Shape: (*) -> (*)."""

    _fn = "logsigmoid"


class PReLU(Module):
    """x if x > 0 else a x, with a learned slope a (one, or one per channel of dim 1).

    Args:
        num_parameters: 1 or the channel count C. Default: 1.
        init: the initial slope. Default: 0.25.

    Shape: (N, C, *) or (*) -> same.

    Attributes:
        weight: (num_parameters,), filled with ``init``.
    """

    def __init__(self, num_parameters=1, init=0.25, device=None, dtype=None):
        super().__init__()
        if not isinstance(num_parameters, int) or num_parameters < 1:
            raise ValueError(f"PReLU: num_parameters must be a positive int, got "
                             f"{num_parameters!r}")
        self.num_parameters = num_parameters
        self.init = init
        self.weight = Parameter(creation.empty(num_parameters, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self):
        with no_grad():
            self.weight.fill_(self.init)

    def forward(self, input):
        check_tensor(f"PReLU(num_parameters={self.num_parameters})", input)
        return F.prelu(input, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"
