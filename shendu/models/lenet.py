"""LeNet-5 (LeCun et al., 1998), the first classic CNN (Concept: N2.3.2).

Layout for a 28x28 input (shape after each stage, N1 = (N0 + 2P - F)/S + 1):
    conv 6@5x5, pad 2   -> (6, 28, 28)     params 5*5*1*6 + 6     =    156
    pool 2              -> (6, 14, 14)
    conv 16@5x5         -> (16, 10, 10)    params 5*5*6*16 + 16   =  2,416
    pool 2              -> (16, 5, 5)
    fc 400 -> 120                           params 400*120 + 120  = 48,120
    fc 120 -> 84                            params 120*84 + 84    = 10,164
    fc 84 -> 10                             params 84*10 + 10     =    850
                                                            total = 61,706
The 1998 net took 32x32 inputs without padding; padding 28x28 by 2 gives the same shapes.
"""
from __future__ import annotations

from dataclasses import dataclass

from shendu import nn
from shendu.models._common import make_activation, make_pool


@dataclass
class LeNet5Config:
    """Configuration of ``LeNet5``."""

    num_classes: int = 10
    in_channels: int = 1
    activation: str = "tanh"  # the original had no ReLU (N2.3.2); 'relu' is the modern swap
    pool: str = "max"  # the original subsampled by averaging ('avg'); max trains faster
    input_size: int = 28  # square input side; 28 (MNIST) or 32 (the original)


class LeNet5(nn.Module):
    """LeNet-5: two conv/pool stages extract features, three fully-connected layers classify.

    Args:
        num_classes: output logits. Default: 10.
        in_channels: input channels (1 for grey images). Default: 1.
        activation: 'tanh' (classic) or 'relu' (or any name in the zoo's table).
            Default: 'tanh'.
        pool: 'max' or 'avg'. Default: 'max'.
        input_size: side of the square input. Default: 28.

    Shape:
        input (N, in_channels, input_size, input_size) -> output (N, num_classes) logits.

    Concept: N2.3 (convolution arithmetic), N2.3.2 (LeNet).

    Example:
        >>> import shendu
        >>> LeNet5()(shendu.zeros(2, 1, 28, 28)).shape
        (2, 10)
    """

    def __init__(self, num_classes=10, in_channels=1, activation="tanh", pool="max",
                 input_size=28):
        super().__init__()
        side = (input_size // 2 - 4) // 2  # pad-2 conv keeps the size, pool halves, conv -4
        if side < 1:
            raise ValueError(f"LeNet5: input_size must be at least 12, got {input_size}")
        self.in_channels, self.input_size = in_channels, input_size
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2),
            make_activation(activation, "LeNet5"),
            make_pool(pool, 2, "LeNet5"),
            nn.Conv2d(6, 16, kernel_size=5),
            make_activation(activation, "LeNet5"),
            make_pool(pool, 2, "LeNet5"),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * side * side, 120),
            make_activation(activation, "LeNet5"),
            nn.Linear(120, 84),
            make_activation(activation, "LeNet5"),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        expected = (self.in_channels, self.input_size, self.input_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"LeNet5(in_channels={self.in_channels}, input_size="
                             f"{self.input_size}): expected input (N, {expected[0]}, "
                             f"{expected[1]}, {expected[2]}), got {x.shape}")
        return self.classifier(self.features(x))
