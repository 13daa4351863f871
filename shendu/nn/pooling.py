"""Pooling layers over NCHW images and NCL signals; no parameters (Concept: N2.3, pooling
reduces dimension).

Output size per spatial dim: H_out = floor((H + 2p - d (k - 1) - 1) / s) + 1 (ceil with
ceil_mode=True), with dilation d = 1 for average pooling.
"""
from __future__ import annotations

from shendu.nn import functional as F
from shendu.nn._checks import check_input, check_tensor
from shendu.nn.module import Module


def _check_planes(layer, input):
    """Accept (N, C, H, W) or (C, H, W)."""
    check_tensor(layer, input)
    check_input(layer, input, input.ndim in (3, 4), "(N, C, H, W) or (C, H, W)")


class MaxPool2d(Module):
    """Maximum over each kH x kW window.  Concept: N2.3.

    Args:
        kernel_size: int or (h, w).
        stride: int or (h, w). Default: kernel_size.
        padding: implicit -inf padding on both sides. Default: 0.
        dilation: spacing between window elements. Default: 1.
        return_indices: also return the flat (H*W) argmax index of each output.
        ceil_mode: use ceil instead of floor for the output size.

    Shape:
        input (N, C, H, W) or (C, H, W) -> output (N, C, H_out, W_out) or (C, H_out, W_out)
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, input):
        _check_planes(f"MaxPool2d(kernel_size={self.kernel_size})", input)
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
                f", dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """Mean over each kH x kW window.  Concept: N2.3.

    Args:
        kernel_size, stride (default kernel_size), padding (zeros): int or (h, w).
        ceil_mode: use ceil instead of floor for the output size.
        count_include_pad: count the zero padding in the divisor. Default: True.
        divisor_override: divide by this instead of the window size.

    Shape:
        input (N, C, H, W) or (C, H, W) -> output (N, C, H_out, W_out) or (C, H_out, W_out)
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input):
        _check_planes(f"AvgPool2d(kernel_size={self.kernel_size})", input)
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding,
                            self.ceil_mode, self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling whose windows are chosen to give a fixed output size: output cell i
    averages rows floor(i H / H_out) .. ceil((i + 1) H / H_out) - 1 (likewise columns).

    Args:
        output_size: int or (H_out, W_out); None in a pair keeps that input size.

    Shape:
        input (N, C, H, W) or (C, H, W) -> output (N, C, H_out, W_out) or (C, H_out, W_out)
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        _check_planes(f"AdaptiveAvgPool2d(output_size={self.output_size})", input)
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


def _check_signals(layer, input):
    """Accept (N, C, L) or (C, L)."""
    check_tensor(layer, input)
    check_input(layer, input, input.ndim in (2, 3), "(N, C, L) or (C, L)")


class MaxPool1d(MaxPool2d):
    """Maximum over each window of length kernel_size along L.  Concept: N2.3.

    Args: kernel_size, stride (default kernel_size), padding, dilation (ints),
    return_indices (positions along L), ceil_mode.

    Shape: input (N, C, L) or (C, L) -> output (N, C, L_out) or (C, L_out)
    """

    def forward(self, input):
        _check_signals(f"MaxPool1d(kernel_size={self.kernel_size})", input)
        return F.max_pool1d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class AvgPool1d(Module):
    """Mean over each window of length kernel_size along L.  Concept: N2.3.

    Args: kernel_size, stride (default kernel_size), padding (zeros), ceil_mode,
    count_include_pad (default True).

    Shape: input (N, C, L) or (C, L) -> output (N, C, L_out) or (C, L_out)
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, input):
        _check_signals(f"AvgPool1d(kernel_size={self.kernel_size})", input)
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool1d(AdaptiveAvgPool2d):
    """Average pooling to output_size positions along L (adaptive windows).

    Shape: input (N, C, L) or (C, L) -> output (N, C, output_size) or (C, output_size)
    """

    def forward(self, input):
        _check_signals(f"AdaptiveAvgPool1d(output_size={self.output_size})", input)
        return F.adaptive_avg_pool1d(input, self.output_size)


class AdaptiveMaxPool2d(Module):
    """Max pooling whose windows (those of AdaptiveAvgPool2d) give a fixed output size.

    Args:
        output_size: int or (H_out, W_out); None in a pair keeps that input size.
        return_indices: also return flat (H*W) arg-max indices.

    Shape:
        input (N, C, H, W) or (C, H, W) -> output (N, C, H_out, W_out) or (C, H_out, W_out)
    """

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size = output_size
        self.return_indices = return_indices

    def forward(self, input):
        _check_planes(f"AdaptiveMaxPool2d(output_size={self.output_size})", input)
        return F.adaptive_max_pool2d(input, self.output_size, self.return_indices)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(AdaptiveMaxPool2d):
    """Max pooling to output_size positions along L (adaptive windows).

    Shape: input (N, C, L) or (C, L) -> output (N, C, output_size) or (C, output_size)
    """

    def forward(self, input):
        _check_signals(f"AdaptiveMaxPool1d(output_size={self.output_size})", input)
        return F.adaptive_max_pool1d(input, self.output_size, self.return_indices)
