"""GoogLeNet / Inception v1 (Szegedy et al., 2014, "Going Deeper with Convolutions").

Concept: N2.3.2 (GoogLeNet: ReLU, Inception modules, 1x1 convs) and N2.3 (1x1 conv as a
bottleneck: each Inception branch reduces channels with a 1x1 conv before its 3x3/5x5 conv).
Everything follows torchvision's ``googlenet.py`` (its weights load with ``load_state_dict``):
``BasicConv2d`` = conv (no bias) + BN(eps=0.001) + ReLU; ``branch3`` uses a 3x3 conv where
the paper has 5x5 (torchvision issue #906, kept for weight compatibility); max-pools use
ceil_mode; auxiliary heads ``aux1``/``aux2`` after inception4a/4d run in training only.
6,624,904 parameters without the auxiliary heads (13,004,888 with them).
"""
from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass

from shendu import nn
from shendu.nn import functional as F
from shendu.ops.shape import cat, flatten

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])


class BasicConv2d(nn.Module):
    """relu(bn(conv(x))) with a bias-free conv and BatchNorm2d(eps=0.001).

    Shape:
        input (N, in_channels, H, W) -> output (N, out_channels, H_out, W_out)
    """

    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """Four parallel branches concatenated along channels: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 |
    maxpool 3x3 -> 1x1.

    Shape:
        input (N, in_channels, H, W) -> output (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)
    """

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                     BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        # torchvision's kernel_size=3 where the paper has 5 (a known bug kept for its weights)
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                     BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1,
                                                  ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, kernel_size=1))

    def forward(self, x):
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return cat(branches, 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: avgpool to 4x4 -> 1x1 conv (128) -> fc1 (1024) -> ReLU ->
    dropout -> fc2.

    Shape:
        input (N, in_channels, H, W) -> output (N, num_classes)
    """

    def __init__(self, in_channels, num_classes, dropout=0.7):
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x):
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))  # (N, 128, 4, 4)
        x = F.relu(self.fc1(flatten(x, 1)))  # (N, 1024)
        return self.fc2(self.dropout(x))


# (in, 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool proj) per Inception module
_INCEPTION = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}


class GoogLeNet(nn.Module):
    """Inception v1: stem (conv 7x7/2, pool, 1x1, 3x3, pool), nine Inception modules with
    max-pools after 3b and 4e, global avgpool, dropout, fc.

    Args:
        num_classes: logits. Default: 1000.
        aux_logits: build the auxiliary heads; in training mode forward then returns
            ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)``. Default: True.
        transform_input: map inputs normalized with ImageNet's mean/std to the (x - 0.5) / 0.5
            scaling the ported weights expect. Default: False.
        init_weights: torchvision's init: trunc_normal_(std=0.01, a=-2, b=2) conv and linear
            weights, BN weight 1 and bias 0. Default: True.
        dropout, dropout_aux: dropout probabilities before fc and in the aux heads.
            Default: 0.2, 0.7.
        in_channels: input channels (ours; torchvision fixes 3). Default: 3.

    Shape:
        input (N, in_channels, H, W) -> output (N, num_classes); 224x224 for ImageNet
        (224 -> 112 -> 56 -> 28 -> 14 -> 7), works down to 28x28 thanks to ceil_mode.

    Concept: N2.3.2 (GoogLeNet).

    Example:
        >>> import shendu
        >>> GoogLeNet(num_classes=10, aux_logits=False).eval()(
        ...     shendu.zeros(1, 3, 64, 64)).shape
        (1, 10)
    """

    def __init__(self, num_classes=1000, aux_logits=True, transform_input=False,
                 init_weights=True, dropout=0.2, dropout_aux=0.7, *, in_channels=3):
        super().__init__()
        if transform_input and in_channels != 3:
            raise ValueError(f"GoogLeNet: transform_input needs in_channels=3, got "
                             f"{in_channels}")
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        self.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        for name in ("inception3a", "inception3b"):
            setattr(self, name, Inception(*_INCEPTION[name]))
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        for name in ("inception4a", "inception4b", "inception4c", "inception4d", "inception4e"):
            setattr(self, name, Inception(*_INCEPTION[name]))
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = Inception(*_INCEPTION["inception5a"])
        self.inception5b = Inception(*_INCEPTION["inception5b"])
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, dropout=dropout_aux)
            self.aux2 = InceptionAux(528, num_classes, dropout=dropout_aux)
        else:
            self.aux1 = None
            self.aux2 = None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)
        if init_weights:
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)

    def _transform_input(self, x):
        # undo ImageNet's (x - mean) / std and apply (x - 0.5) / 0.5, per channel
        channels = [x[:, c:c + 1] * (std / 0.5) + (mean - 0.5) / 0.5 for c, (mean, std) in
                    enumerate(((0.485, 0.229), (0.456, 0.224), (0.406, 0.225)))]
        return cat(channels, 1)  # (N, 3, H, W)

    def forward(self, x):
        if self.transform_input:
            x = self._transform_input(x)
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(flatten(self.avgpool(x), 1)))  # (N, 1024) -> (N, classes)
        if self.training and self.aux_logits:
            return GoogLeNetOutputs(x, aux2, aux1)
        return x


def googlenet(**kwargs):
    """GoogLeNet with torchvision's defaults; keyword arguments go to ``GoogLeNet``."""
    return GoogLeNet(**kwargs)


@dataclass
class GoogLeNetConfig:
    """Configuration of ``googlenet`` in the registry; aux_logits defaults to False here so
    that the model returns plain logits for ``shendu train``."""

    num_classes: int = 1000
    aux_logits: bool = False
    transform_input: bool = False
    init_weights: bool = True
    dropout: float = 0.2
    dropout_aux: float = 0.7
    in_channels: int = 3
