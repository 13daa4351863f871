"""VGG (Simonyan & Zisserman, 2014, "Very Deep Convolutional Networks"), Concept: N2.3.2.

Only 3x3 convs (padding 1) and 2x2 max-pools: three stacked 3x3 convs see a 7x7 field with
3 * 9 C^2 weights instead of 49 C^2. ``VGG``, ``make_layers`` and ``vgg11/13/16/19`` (and
``_bn``) follow torchvision's ``vgg.py``: keys ``features.N.weight`` (N counts every layer,
ReLU and max-pool included), ``classifier.0/3/6``; avgpool to 7x7; torchvision's init.
VGG-16 has 138,357,544 parameters (102,764,544 of them in ``classifier.0``).

Small-input variant (ours): ``small_input=True`` drops the last max-pool (28 -> 14 -> 7 -> 3
-> 1, or 32 -> 16 -> 8 -> 4 -> 2), pools globally to 1x1 and uses a C -> C -> C ->
num_classes classifier (C = last conv width, the keys stay ``classifier.0/3/6``); ``width``
scales every conv's channel count. Registered as ``vgg11_small`` and ``vgg16_small`` (BN,
width 0.5).
"""
from __future__ import annotations

from dataclasses import dataclass

from shendu import nn
from shendu.ops.shape import flatten

cfgs = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512,
          "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512,
          512, 512, 512, "M"],
}


def make_layers(cfg, batch_norm=False, *, in_channels=3, width=1.0, small_input=False):
    """The ``features`` Sequential: conv3x3 (-> BN) -> ReLU per int in ``cfg``, max-pool 2x2
    per 'M'. ``width`` scales the channel counts (ours; 1.0 is torchvision's), and
    ``small_input`` drops the last 'M'.

    Shape:
        input (N, in_channels, H, W) -> output (N, width * cfg[-2], H / 2^m, W / 2^m) with m
        the number of max-pools kept.
    """
    if width <= 0:
        raise ValueError(f"make_layers: width must be positive, got {width}")
    if small_input and cfg[-1] == "M":
        cfg = cfg[:-1]
    layers = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        v = max(1, round(v * width))
        layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG: ``features`` (3x3 convs and max-pools), adaptive avgpool, 3-layer classifier.

    torchvision: avgpool to 7x7, classifier Linear(512*7*7, 4096) -> ReLU -> Dropout ->
    Linear(4096, 4096) -> ReLU -> Dropout -> Linear(4096, num_classes).

    Args:
        features: the conv stack, e.g. ``make_layers(cfgs['D'])``.
        num_classes: logits. Default: 1000.
        init_weights: torchvision's init: kaiming_normal_(fan_out, relu) convs with zero bias,
            BN weight 1 and bias 0, linear weights N(0, 0.01) with zero bias. Default: True.
        dropout: dropout probability in the classifier. Default: 0.5.
        small_input: pool to 1x1 and use C hidden units, C = the last conv's width (ours).
            Default: False.

    Shape:
        input (N, C_in, H, W) -> output (N, num_classes); H, W >= 32 (224 for ImageNet), or
        >= 16 with small_input.

    Concept: N2.3.2 (VGG).

    Example:
        >>> import shendu
        >>> vgg11_bn(num_classes=10, in_channels=1, small_input=True, width=0.25)(
        ...     shendu.zeros(2, 1, 28, 28)).shape
        (2, 10)
    """

    def __init__(self, features, num_classes=1000, init_weights=True, dropout=0.5, *,
                 small_input=False):
        super().__init__()
        self.features = features
        if small_input:
            convs = [m for m in features.modules() if isinstance(m, nn.Conv2d)]
            if not convs:
                raise ValueError("VGG: small_input needs a Conv2d in features")
            hidden = flat = convs[-1].out_channels
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        else:
            hidden, flat = 4096, 512 * 7 * 7
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(flat, hidden),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, num_classes),
        )
        if init_weights:
            self._initialize_weights()

    def _initialize_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(flatten(x, 1))  # (N, C * 7 * 7) or (N, C)


def _vgg(cfg, batch_norm, in_channels=3, width=1.0, small_input=False, **kwargs):
    features = make_layers(cfgs[cfg], batch_norm, in_channels=in_channels, width=width,
                           small_input=small_input)
    return VGG(features, small_input=small_input, **kwargs)


def vgg11(**kwargs):
    """VGG-11 (config A); 132,863,336 parameters."""
    return _vgg("A", False, **kwargs)


def vgg11_bn(**kwargs):
    """VGG-11 with batch norm; 132,868,840 parameters."""
    return _vgg("A", True, **kwargs)


def vgg13(**kwargs):
    """VGG-13 (config B); 133,047,848 parameters."""
    return _vgg("B", False, **kwargs)


def vgg13_bn(**kwargs):
    """VGG-13 with batch norm; 133,053,736 parameters."""
    return _vgg("B", True, **kwargs)


def vgg16(**kwargs):
    """VGG-16 (config D); 138,357,544 parameters."""
    return _vgg("D", False, **kwargs)


def vgg16_bn(**kwargs):
    """VGG-16 with batch norm; 138,365,992 parameters."""
    return _vgg("D", True, **kwargs)


def vgg19(**kwargs):
    """VGG-19 (config E); 143,667,240 parameters."""
    return _vgg("E", False, **kwargs)


def vgg19_bn(**kwargs):
    """VGG-19 with batch norm; 143,678,248 parameters."""
    return _vgg("E", True, **kwargs)


@dataclass
class VGGConfig:
    """Configuration of ``vgg11`` ... ``vgg19_bn`` in the registry."""

    num_classes: int = 1000
    in_channels: int = 3
    dropout: float = 0.5
    init_weights: bool = True


@dataclass
class SmallVGGConfig(VGGConfig):
    """``vgg11_small``/``vgg16_small``: BN variants for 28x28/32x32 images, half width."""

    num_classes: int = 10
    width: float = 0.5
    small_input: bool = True
