"""Convolution layers: 2-D over NCHW images, 1-D over NCL signals, torch's weight layouts
(Concept: N2.3).

Output size per spatial dim (the notes' N1 = (N0 + 2P - F)/S + 1, with dilation d):
    Conv2d:          H_out = floor((H_in + 2p - d (k - 1) - 1) / s) + 1
    ConvTranspose2d: H_out = (H_in - 1) s - 2p + d (k - 1) + output_padding + 1
"""
from __future__ import annotations

from shendu import creation
from shendu.nn import functional as F
from shendu.nn._checks import check_input, check_tensor
from shendu.nn.linear import _reset_affine
from shendu.nn.module import Module, Parameter


def _pair(value, name, layer, n=2):
    """An int or ``n`` ints as an n-tuple (n = 2 for Conv2d, 1 for Conv1d)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * n
    if isinstance(value, (tuple, list)) and len(value) == n and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    raise TypeError(f"{layer}: {name} must be an int or {'a pair' if n == 2 else n} of ints, "
                    f"got {value!r}")


class _ConvNd(Module):
    """Shared constructor, init, validation and repr of Conv2d and ConvTranspose2d."""

    _transposed = False
    _ndim = 2  # spatial dims

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation,
                 groups, bias, padding_mode, output_padding, device, dtype):
        super().__init__()
        layer = type(self).__name__
        if not isinstance(groups, int) or groups < 1:
            raise ValueError(f"{layer}: groups must be a positive integer, got {groups!r}")
        if in_channels % groups:
            raise ValueError(f"{layer}: in_channels ({in_channels}) must be divisible by "
                             f"groups ({groups})")
        if out_channels % groups:
            raise ValueError(f"{layer}: out_channels ({out_channels}) must be divisible by "
                             f"groups ({groups})")
        if padding_mode != "zeros":
            raise ValueError(f"{layer}: padding_mode {padding_mode!r} is not supported; "
                             "expected 'zeros'")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size", layer, self._ndim)
        self.stride = _pair(stride, "stride", layer, self._ndim)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{layer}: padding {padding!r} is not supported; expected "
                                 "'same', 'valid' or an int/pair")
            if padding == "same" and self.stride != (1,) * self._ndim:
                raise ValueError(f"{layer}: padding='same' is not supported for strided "
                                 f"convolutions (stride={self.stride})")
            self.padding = padding
        else:
            self.padding = _pair(padding, "padding", layer, self._ndim)
        self.dilation = _pair(dilation, "dilation", layer, self._ndim)
        self.transposed = self._transposed
        self.output_padding = _pair(output_padding, "output_padding", layer, self._ndim)
        self.groups = groups
        self.padding_mode = padding_mode
        if self._transposed:  # (in, out/groups, kH, kW)
            shape = (in_channels, out_channels // groups, *self.kernel_size)
        else:  # (out, in/groups, kH, kW)
            shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = Parameter(creation.empty(*shape, device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(creation.empty(out_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        _reset_affine(self.weight, self.bias)

    def _check(self, input):
        """Accept (N, C_in, H, W) or unbatched (C_in, H, W); return the batched view."""
        name = (f"{type(self).__name__}({self.in_channels}, {self.out_channels}, "
                f"kernel_size={self.kernel_size})")
        check_tensor(name, input)
        ok = input.ndim in (3, 4) and input.shape[-3] == self.in_channels
        check_input(name, input, ok, f"(N, {self.in_channels}, H, W)")
        return input if input.ndim == 4 else input.unsqueeze(0)

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
             f", stride={self.stride}")
        zeros, ones = (0,) * self._ndim, (1,) * self._ndim
        if self.padding != zeros:
            s += f", padding={self.padding}"
        if self.dilation != ones:
            s += f", dilation={self.dilation}"
        if self.output_padding != zeros:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    """2-D cross-correlation: out[n, o] = b[o] + sum_c W[o, c] * x[n, c] over each window.
    Concept: N2.3.

    Args:
        in_channels, out_channels: channel counts C_in, C_out.
        kernel_size, stride, dilation: int or (h, w). stride and dilation default to 1.
        padding: int, (h, w), 'valid' (= 0) or 'same' (stride 1 only). Default: 0.
        groups: split channels into this many independent groups. Default: 1.
        bias: learn an additive per-channel bias. Default: True.
        padding_mode: only 'zeros'.

    Shape:
        input (N, C_in, H, W) or (C_in, H, W) -> output (N, C_out, H_out, W_out) with
        H_out = floor((H + 2p - d (k - 1) - 1) / s) + 1

    Attributes:
        weight: (C_out, C_in / groups, kH, kW), init U(-k, k), k = 1/sqrt(C_in / groups kH kW).
        bias: (C_out,), same init; None when bias=False.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", *, device=None,
                 dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, 0, device, dtype)

    def forward(self, input):
        x = self._check(input)
        out = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                       self.groups)
        return out if input.ndim == 4 else out.squeeze(0)


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution (the gradient of Conv2d w.r.t. its input): upsamples.
    Concept: N2.3 (used by FCN-style segmentation, N6.1).

    Args: as Conv2d, plus output_padding (int or pair, < stride or dilation) that adds rows and
    columns on one side of the output; forward(input, output_size) may pick it instead.

    Shape:
        input (N, C_in, H, W) or (C_in, H, W) -> output (N, C_out, H_out, W_out) with
        H_out = (H - 1) s - 2p + d (k - 1) + output_padding + 1

    Attributes:
        weight: (C_in, C_out / groups, kH, kW), init U(-k, k), k = 1/sqrt(C_out / groups kH kW)
        (torch computes fan_in from dim 1 here too).
        bias: (C_out,), same init; None when bias=False.
    """

    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros", *,
                 device=None, dtype=None):
        if isinstance(padding, str):
            raise ValueError(f"ConvTranspose2d: padding must be an int or a pair, got "
                             f"{padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, output_padding, device, dtype)

    def _output_padding(self, x, output_size):
        """The output_padding that makes the output ``output_size`` (H, W), as torch's."""
        if output_size is None:
            return self.output_padding
        size = tuple(output_size)[-2:] if len(output_size) in (3, 4) else tuple(output_size)
        if len(size) != 2 or len(tuple(output_size)) not in (2, 3, 4):
            raise ValueError(f"ConvTranspose2d: output_size must have 2 to 4 elements, got "
                             f"{tuple(output_size)}")
        low = [(x.shape[2 + d] - 1) * self.stride[d] - 2 * self.padding[d]
               + self.dilation[d] * (self.kernel_size[d] - 1) + 1 for d in range(2)]
        high = [low[d] + self.stride[d] - 1 for d in range(2)]
        if any(not low[d] <= size[d] <= high[d] for d in range(2)):
            raise ValueError(f"ConvTranspose2d: requested an output size of {size}, but valid "
                             f"sizes range from {tuple(low)} to {tuple(high)} (for an input "
                             f"of {tuple(x.shape[2:])})")
        return tuple(size[d] - low[d] for d in range(2))

    def forward(self, input, output_size=None):
        x = self._check(input)
        output_padding = self._output_padding(x, output_size)
        out = F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                 output_padding, self.groups, self.dilation)
        return out if input.ndim == 4 else out.squeeze(0)


class Conv1d(_ConvNd):
    """1-D cross-correlation over (N, C, L) signals: out[n, o, t] = b[o] + sum_c,j
    W[o, c, j] x[n, c, s t + d j - p].  Concept: N2.3 (Conv2d with a unit height).

    Args: as Conv2d, with ints (or 1-tuples) for kernel_size, stride, padding, dilation;
    padding may be 'valid' or 'same' (stride 1).

    Shape:
        input (N, C_in, L) or (C_in, L) -> output (N, C_out, L_out) or (C_out, L_out) with
        L_out = floor((L + 2p - d (k - 1) - 1) / s) + 1

    Attributes:
        weight: (C_out, C_in / groups, k), init U(-b, b), b = 1/sqrt(C_in / groups k).
        bias: (C_out,), same init; None when bias=False.
    """

    _ndim = 1

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", *, device=None,
                 dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, 0, device, dtype)

    def forward(self, input):
        name = (f"Conv1d({self.in_channels}, {self.out_channels}, "
                f"kernel_size={self.kernel_size})")
        check_tensor(name, input)
        ok = input.ndim in (2, 3) and input.shape[-2] == self.in_channels
        check_input(name, input, ok, f"(N, {self.in_channels}, L) or ({self.in_channels}, L)")
        return F.conv1d(input, self.weight, self.bias, self.stride, self.padding,
                        self.dilation, self.groups)
