"""FCN semantic segmentation (Long, Shelhamer and Darrell 2015) with skips down to full
resolution (N6.1).

A small conv/pool encoder produces class scores at 1/8 resolution; they are up-sampled 2x by
a ``ConvTranspose2d`` and summed with 1x1 class scores of the 1/4 features (a skip
connection), up-sampled again and summed with the 1/2 scores, up-sampled again and summed
with the scores of the full-resolution features. FCN-8s stops its skips at 1/8 and up-samples
8x at the end; the strokes of our digits are 1-3 pixels wide, so an 8x (or even 2x) final
interpolation blurs them away, and the same refinement is carried one level further.
Every up-sampling is a stride-2, 4x4 ``ConvTranspose2d`` initialised to bilinear
interpolation, the paper's initialisation; ``upsampling="learned"`` trains those weights,
``upsampling="bilinear"`` freezes them (fixed bilinear up-sampling), so the two can be
compared on equal terms.
"""
from __future__ import annotations

from shendu import backend, nn
from shendu.tensor import Tensor

np = backend.namespace("cpu")


def bilinear_kernel(channels, kernel_size):
    """(channels, channels, k, k) ConvTranspose2d weight that up-samples each channel by
    bilinear interpolation (FCN's get_upsampling_weight), stride (k + 1) // 2."""
    factor = (kernel_size + 1) // 2
    centre = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = np.arange(kernel_size)
    filt = 1 - np.abs(og - centre) / factor
    weight = np.zeros((channels, channels, kernel_size, kernel_size), dtype=np.float32)
    weight[np.arange(channels), np.arange(channels)] = np.outer(filt, filt)
    return weight


def _block(c_in, c_out):
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class FCN(nn.Module):
    """FCN-style network: (N, in_channels, H, W) -> (N, num_classes, H, W) logits
    (H and W divisible by 8).

    Args:
        num_classes: classes including background (11 for the MNIST scenes).
        widths: channels of the four encoder stages, at strides 1, 2, 4 and 8.
        upsampling: "learned" (trainable ConvTranspose2d) or "bilinear" (frozen bilinear).
    """

    def __init__(self, num_classes=11, in_channels=1, widths=(16, 32, 64, 96), upsampling="learned"):
        super().__init__()
        if upsampling not in ("learned", "bilinear"):
            raise ValueError(f"FCN: upsampling must be 'learned' or 'bilinear', got "
                             f"{upsampling!r}")
        if len(widths) != 4:
            raise ValueError(f"FCN: widths must give the channels of 4 stages, got {widths!r}")
        a, b, c, d = widths
        self.upsampling, self.num_classes = upsampling, num_classes
        self.stage0 = nn.Sequential(*_block(in_channels, a))  # full resolution
        self.stage1 = nn.Sequential(nn.MaxPool2d(2), *_block(a, b))  # 1/2
        self.stage2 = nn.Sequential(nn.MaxPool2d(2), *_block(b, c))  # 1/4
        self.stage3 = nn.Sequential(nn.MaxPool2d(2), *_block(c, d), *_block(d, d))  # 1/8
        self.score0, self.score1 = nn.Conv2d(a, num_classes, 1), nn.Conv2d(b, num_classes, 1)
        self.score2, self.score3 = nn.Conv2d(c, num_classes, 1), nn.Conv2d(d, num_classes, 1)
        self.up3, self.up2, self.up1 = (nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2,
                                                           padding=1, bias=False)
                                        for _ in range(3))
        for up in (self.up3, self.up2, self.up1):
            up.weight.data = Tensor._wrap(bilinear_kernel(num_classes, 4))
            up.weight.requires_grad = upsampling == "learned"

    def forward(self, x):
        if x.ndim != 4 or x.shape[2] % 8 or x.shape[3] % 8:
            raise ValueError(f"FCN: expected input (N, C, H, W) with H and W divisible by 8, "
                             f"got {tuple(x.shape)}")
        f0 = self.stage0(x)
        f1 = self.stage1(f0)
        f2 = self.stage2(f1)
        f3 = self.stage3(f2)
        s = self.up3(self.score3(f3)) + self.score2(f2)
        s = self.up2(s) + self.score1(f1)
        return self.up1(s) + self.score0(f0)

    def extra_repr(self):
        return f"upsampling={self.upsampling!r}"


def predict_labels(logits: Tensor) -> Tensor:
    """(N, K, H, W) logits -> (N, H, W) int64 class map."""
    return logits.argmax(dim=1)
