"""FCN semantic segmentation (Long, Shelhamer and Darrell 2015) in its FCN-8s shape (N6.1).

A small conv/pool encoder produces class scores at 1/8 resolution; they are up-sampled 2x by
a ``ConvTranspose2d`` and summed with 1x1 class scores of the 1/4 pool output (a skip
connection), up-sampled again and summed with the 1/2 scores, and up-sampled to full size.
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
    """FCN-8s-style network: (N, in_channels, H, W) -> (N, num_classes, H, W) logits
    (H and W divisible by 8).

    Args:
        num_classes: classes including background (11 for the MNIST scenes).
        widths: channels of the three encoder stages.
        upsampling: "learned" (trainable ConvTranspose2d) or "bilinear" (frozen bilinear).
    """

    def __init__(self, num_classes=11, in_channels=1, widths=(16, 32, 64), upsampling="learned"):
        super().__init__()
        if upsampling not in ("learned", "bilinear"):
            raise ValueError(f"FCN: upsampling must be 'learned' or 'bilinear', got "
                             f"{upsampling!r}")
        a, b, c = widths
        self.upsampling, self.num_classes = upsampling, num_classes
        self.stage1 = nn.Sequential(*_block(in_channels, a), nn.MaxPool2d(2))  # 1/2
        self.stage2 = nn.Sequential(*_block(a, b), nn.MaxPool2d(2))  # 1/4
        self.stage3 = nn.Sequential(*_block(b, c), *_block(c, c), nn.MaxPool2d(2))  # 1/8
        self.score1, self.score2 = nn.Conv2d(a, num_classes, 1), nn.Conv2d(b, num_classes, 1)
        self.score3 = nn.Conv2d(c, num_classes, 1)
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
        f1 = self.stage1(x)
        f2 = self.stage2(f1)
        f3 = self.stage3(f2)
        s = self.up3(self.score3(f3)) + self.score2(f2)
        s = self.up2(s) + self.score1(f1)
        return self.up1(s)

    def extra_repr(self):
        return f"upsampling={self.upsampling!r}"


def predict_labels(logits: Tensor) -> Tensor:
    """(N, K, H, W) logits -> (N, H, W) int64 class map."""
    return logits.argmax(dim=1)
