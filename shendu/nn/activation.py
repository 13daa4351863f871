"""Activation layers, each a thin wrapper over its functional form (Concept: N3.2.2).

    ReLU      max(0, x)                       d/dx = 1 if x > 0 else 0
    LeakyReLU max(0, x) + slope * min(0, x)   (torch's slope 0.01; the notes use 0.1)
    ELU       x if x > 0 else alpha (e^x - 1)
    GELU      x Phi(x) (tanh approximation with approximate='tanh')
    Sigmoid   1 / (1 + e^-x)                  d/dx = y (1 - y)
    Tanh      tanh(x)                         d/dx = 1 - y^2
    Softmax   e^x_i / sum_j e^x_j along dim (computed stably)
    LogSoftmax x_i - log sum_j e^x_j along dim

Shape (all): input (*) -> output (*)
"""
from __future__ import annotations

import warnings

from shendu.nn import functional as F
from shendu.nn._checks import check_tensor
from shendu.nn.module import Module


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
