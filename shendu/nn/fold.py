"""Unfold (im2col) and Fold (col2im) layers over ``F.unfold`` / ``F.fold``.

Shape: Unfold (N, C, H, W) -> (N, C kh kw, L); Fold (N, C kh kw, L) -> (N, C, H, W), with
L the number of window positions (see shendu.ops.fold).
"""
from __future__ import annotations

from shendu.nn import functional as F
from shendu.nn._checks import check_tensor
from shendu.nn.module import Module


class Unfold(Module):
    """Extract sliding kernel_size windows as columns (the patches a convolution multiplies).

    Args: kernel_size, dilation=1, padding=0, stride=1 (ints or pairs).
    """

    def __init__(self, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.kernel_size, self.dilation = kernel_size, dilation
        self.padding, self.stride = padding, stride

    def forward(self, input):
        check_tensor(f"Unfold(kernel_size={self.kernel_size})", input)
        return F.unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"padding={self.padding}, stride={self.stride}")


class Fold(Module):
    """Sum columns of windows back into an output_size image (Unfold's adjoint).

    Args: output_size (H, W), kernel_size, dilation=1, padding=0, stride=1.
    """

    def __init__(self, output_size, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.output_size, self.kernel_size = output_size, kernel_size
        self.dilation, self.padding, self.stride = dilation, padding, stride

    def forward(self, input):
        check_tensor(f"Fold(output_size={self.output_size}, kernel_size={self.kernel_size})",
                     input)
        return F.fold(input, self.output_size, self.kernel_size, self.dilation, self.padding,
                      self.stride)

    def extra_repr(self):
        return (f"output_size={self.output_size}, kernel_size={self.kernel_size}, "
                f"dilation={self.dilation}, padding={self.padding}, stride={self.stride}")
