"""unfold (im2col) and fold (col2im) as torch.nn.functional has them: the patch
extraction that convolution runs on, exposed as ops.

    unfold: (N, C, H, W) -> (N, C*kh*kw, L), column l holding the window at output position
            l = y*Wo + x, rows ordered (c, i, j) as torch's.
    fold:   (N, C*kh*kw, L) -> (N, C, H, W), summing overlapping windows back onto pixels.

They are each other's adjoint, so each backward is the other Function (and second
derivatives follow). The kernels are conv.py's _im2col and _col2im.
"""
from __future__ import annotations

from shendu import backend
from shendu.autograd import Function
from shendu.ops.conv import Geom, _col2im, _conv_out, _im2col
from shendu.ops.pool import _pair
from shendu.tensor import Tensor


class Unfold(Function):
    uses_inputs = False

    def forward(self, x, kernel=(1, 1), geom=None, out_hw=(1, 1)):
        self.kernel, self.geom, self.in_hw = kernel, geom, x.shape[2:]
        n, c = x.shape[:2]
        cols = _im2col(x, kernel[0], kernel[1], geom, out_hw)          # (1, C*kh*kw, N, L)
        return cols[0].transpose(1, 0, 2)                               # (N, C*kh*kw, L)

    def backward(self, grad):
        return Fold.apply(grad, kernel=self.kernel, geom=self.geom, in_hw=self.in_hw)


class Fold(Function):
    uses_inputs = False

    def forward(self, cols, kernel=(1, 1), geom=None, in_hw=(1, 1)):
        n, ckk, _ = cols.shape
        kh, kw = kernel
        self.kernel, self.geom = kernel, geom
        self.out_hw = _window_counts("fold", in_hw, kernel, geom)
        patches = cols.reshape((n, ckk // (kh * kw), kh, kw) + self.out_hw)
        return _col2im(patches, geom, in_hw)

    def backward(self, grad):
        return Unfold.apply(grad, kernel=self.kernel, geom=self.geom, out_hw=self.out_hw)


def _geometry(op, kernel_size, dilation, padding, stride):
    kernel = _pair(kernel_size, "kernel_size", op)
    geom = Geom(_pair(stride, "stride", op), _pair(padding, "padding", op, low=0),
                _pair(dilation, "dilation", op), 1)
    return kernel, geom


def _check_input(op, input, ndims, expected):
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(input).__name__}")
    if input.ndim not in ndims:
        raise ValueError(f"{op}: expected {expected} input, got shape {tuple(input.shape)}")
    if not backend.is_floating(input.dtype):
        raise TypeError(f"{op}: expected a floating-point input, got {input.dtype}")


def _window_counts(op, in_hw, kernel, geom):
    return tuple(_conv_out(op, size, k, s, p, d) for size, k, s, p, d in
                 zip(in_hw, kernel, geom.stride, geom.pad, geom.dilation))


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding kh x kw windows of ``input`` as columns (im2col).

    Shape: input (N, C, H, W) or (C, H, W) -> (N, C*kh*kw, L) or (C*kh*kw, L),
    L = Ho * Wo with Ho = (H + 2p - d(kh-1) - 1) // s + 1 (likewise Wo).
    """
    op = "unfold"
    _check_input(op, input, (3, 4), "a 3-D (C, H, W) or 4-D (N, C, H, W)")
    x = input if input.ndim == 4 else input.unsqueeze(0)
    kernel, geom = _geometry(op, kernel_size, dilation, padding, stride)
    out_hw = _window_counts(op, x.shape[2:], kernel, geom)
    y = Unfold.apply(x, kernel=kernel, geom=geom, out_hw=out_hw)
    return y if input.ndim == 4 else y.squeeze(0)


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Sum columns of windows back into an image of ``output_size`` (col2im), unfold's
    adjoint: fold(unfold(x)) multiplies each pixel by the number of windows covering it.

    Shape: input (N, C*kh*kw, L) or (C*kh*kw, L) -> (N, C, H, W) or (C, H, W).
    """
    op = "fold"
    _check_input(op, input, (2, 3), "a 2-D (C*kh*kw, L) or 3-D (N, C*kh*kw, L)")
    cols = input if input.ndim == 3 else input.unsqueeze(0)
    kernel, geom = _geometry(op, kernel_size, dilation, padding, stride)
    in_hw = _pair(output_size, "output_size", op)
    out_hw = _window_counts(op, in_hw, kernel, geom)
    if cols.shape[1] % (kernel[0] * kernel[1]):
        raise ValueError(f"{op}: expected the size of dim 1 of input {tuple(input.shape)} to "
                         f"be divisible by kernel_size {kernel} product "
                         f"{kernel[0] * kernel[1]}")
    if cols.shape[2] != out_hw[0] * out_hw[1]:
        raise ValueError(f"{op}: input {tuple(input.shape)} has {cols.shape[2]} blocks, but "
                         f"output_size {in_hw} with kernel_size {kernel}, dilation "
                         f"{geom.dilation}, padding {geom.pad}, stride {geom.stride} gives "
                         f"{out_hw[0]} x {out_hw[1]} = {out_hw[0] * out_hw[1]}")
    y = Fold.apply(cols, kernel=kernel, geom=geom, in_hw=in_hw)
    return y if input.ndim == 3 else y.squeeze(0)
