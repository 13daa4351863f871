"""Resampling layers: Upsample (and its fixed-mode spellings) and PixelShuffle /
PixelUnshuffle, thin wrappers over ``F.interpolate`` and ``F.pixel_shuffle``.

Shape: Upsample (N, C, *spatial) -> (N, C, *size); PixelShuffle (*, C r^2, H, W) ->
(*, C, H r, W r); PixelUnshuffle the inverse.
"""
from __future__ import annotations

from shendu.nn import functional as F
from shendu.nn._checks import check_tensor
from shendu.nn.module import Module


class Upsample(Module):
    """Resize to ``size`` or by ``scale_factor`` with ``mode`` ('nearest', 'nearest-exact',
    'linear', 'bilinear', 'area'); ``align_corners`` for the linear modes (see
    F.interpolate for the coordinate rules)."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        if (size is None) == (scale_factor is None):
            raise ValueError(f"{type(self).__name__}: give exactly one of size and "
                             f"scale_factor, got size={size!r}, scale_factor={scale_factor!r}")
        self.size = size
        self.scale_factor = float(scale_factor) if isinstance(scale_factor, int) \
            else scale_factor
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input):
        check_tensor(f"{type(self).__name__}({self.extra_repr()})", input)
        return F.interpolate(input, self.size, self.scale_factor, self.mode,
                             self.align_corners, self.recompute_scale_factor)

    def extra_repr(self):
        what = f"size={self.size}" if self.size is not None \
            else f"scale_factor={self.scale_factor}"
        return f"{what}, mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """Upsample with mode='nearest' on (N, C, H, W) images."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, "nearest")


class UpsamplingBilinear2d(Upsample):
    """Upsample with mode='bilinear' and align_corners=True (torch's fixed choice here)."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, "bilinear", align_corners=True)


class PixelShuffle(Module):
    """(*, C r^2, H, W) -> (*, C, H r, W r) (sub-pixel convolution, Shi et al. 2016)."""

    def __init__(self, upscale_factor):
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, input):
        check_tensor(f"PixelShuffle(upscale_factor={self.upscale_factor})", input)
        return F.pixel_shuffle(input, self.upscale_factor)

    def extra_repr(self):
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """(*, C, H r, W r) -> (*, C r^2, H, W), the inverse of PixelShuffle."""

    def __init__(self, downscale_factor):
        super().__init__()
        self.downscale_factor = downscale_factor

    def forward(self, input):
        check_tensor(f"PixelUnshuffle(downscale_factor={self.downscale_factor})", input)
        return F.pixel_unshuffle(input, self.downscale_factor)

    def extra_repr(self):
        return f"downscale_factor={self.downscale_factor}"
