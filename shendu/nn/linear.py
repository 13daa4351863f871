"""Fully-connected layers: Identity, Linear, Flatten, Unflatten and Maxout (Concept: N2.2)."""
from __future__ import annotations

import math

from shendu import creation
from shendu.nn import functional as F
from shendu.nn import init
from shendu.nn._checks import check_input, check_tensor
from shendu.nn.module import Module, Parameter


def _reset_affine(weight, bias):
    """torch's default for Linear and Conv: kaiming_uniform_(a=sqrt(5)) on the weight, which is
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound on the bias."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        init.uniform_(bias, -bound, bound)


class Identity(Module):
    """Returns its input unchanged; takes (and ignores) any constructor arguments, as torch's.

    Shape:
        input (*) -> output (*), the same tensor
    """

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """Affine map y = x W^T + b.  Concept: N2.2.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: learn an additive bias. Default: True.

    Shape:
        input (*, in_features) -> output (*, out_features)

    Attributes:
        weight: (out_features, in_features), init U(-k, k) with k = 1/sqrt(in_features).
        bias: (out_features,), same init; None when bias=False.

    Example:
        >>> Linear(784, 10)(shendu.zeros(32, 784)).shape
        (32, 10)
    """

    def __init__(self, in_features, out_features, bias=True, *, device=None, dtype=None):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(creation.empty(out_features, in_features, device=device,
                                               dtype=dtype))
        if bias:
            self.bias = Parameter(creation.empty(out_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        _reset_affine(self.weight, self.bias)

    def forward(self, input):
        name = f"Linear(in_features={self.in_features}, out_features={self.out_features})"
        check_tensor(name, input)
        check_input(name, input, input.ndim >= 1 and input.shape[-1] == self.in_features,
                    f"(..., {self.in_features})")
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Flatten(Module):
    """Flattens dims start_dim..end_dim into one.

    Shape:
        input (N, *dims) -> output (N, prod(dims)) with the defaults start_dim=1, end_dim=-1
    """

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input):
        check_tensor(f"Flatten({self.extra_repr()})", input)
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Splits dim ``dim`` into ``unflattened_size`` (one entry may be -1).

    Shape:
        input (*, S, *) -> output (*, U1, ..., Uk, *) with prod(U) = S
    """

    def __init__(self, dim, unflattened_size):
        super().__init__()
        if not isinstance(dim, int):
            raise TypeError(f"Unflatten: dim must be an int, got {type(dim).__name__}")
        if not isinstance(unflattened_size, (tuple, list)) or not all(
                isinstance(n, int) for n in unflattened_size):
            raise TypeError(f"Unflatten: unflattened_size must be a tuple of ints, got "
                            f"{unflattened_size!r}")
        self.dim = dim
        self.unflattened_size = tuple(unflattened_size)

    def forward(self, input):
        name = f"Unflatten({self.extra_repr()})"
        check_tensor(name, input)
        ok = -input.ndim <= self.dim < input.ndim
        dim = self.dim % input.ndim if ok else 0
        known = math.prod(n for n in self.unflattened_size if n != -1)
        if ok:
            size = input.shape[dim]
            ok = size == known if -1 not in self.unflattened_size \
                else known > 0 and size % known == 0
        check_input(name, input, ok, f"with dim {self.dim} of a size that splits into "
                                     f"{self.unflattened_size}")
        return input.reshape(*input.shape[:dim], *self.unflattened_size,
                             *input.shape[dim + 1:])

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Maxout(Module):
    """Maxout unit: y_j = max_k (x W_{j,k}^T + b_{j,k}) over ``pool_size`` affine pieces.
    Concept: N3.2.2 (Goodfellow et al. 2013, "Maxout Networks").

    Piece k of output j is row ``j * pool_size + k`` of ``weight``, so the pieces of one output
    are adjacent, as in the usual PyTorch ports (a Linear to out*k units, viewed (out, k)).

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        pool_size: number of affine pieces k per output (k = 2 is max(w1^T x + b1, w2^T x + b2)).
        bias: learn the additive biases. Default: True.

    Shape:
        input (*, in_features) -> output (*, out_features)

    Attributes:
        weight: (out_features * pool_size, in_features), Linear's init (fan_in = in_features).
        bias: (out_features * pool_size,), same init; None when bias=False.
    """

    def __init__(self, in_features, out_features, pool_size, bias=True, *, device=None,
                 dtype=None):
        super().__init__()
        if not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(f"Maxout: pool_size must be a positive int, got {pool_size!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.pool_size = pool_size
        rows = out_features * pool_size
        self.weight = Parameter(creation.empty(rows, in_features, device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(creation.empty(rows, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        _reset_affine(self.weight, self.bias)

    def forward(self, input):
        name = (f"Maxout(in_features={self.in_features}, out_features={self.out_features}, "
                f"pool_size={self.pool_size})")
        check_tensor(name, input)
        check_input(name, input, input.ndim >= 1 and input.shape[-1] == self.in_features,
                    f"(..., {self.in_features})")
        pieces = F.linear(input, self.weight, self.bias)
        pieces = pieces.reshape(*input.shape[:-1], self.out_features, self.pool_size)
        return pieces.amax(dim=-1)  # (*, out_features)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"pool_size={self.pool_size}, bias={self.bias is not None}")
