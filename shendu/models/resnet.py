"""ResNet (He et al., 2015, "Deep Residual Learning for Image Recognition"), Concept: N2.3.2.

A residual block learns F(x) and outputs relu(F(x) + shortcut(x)): the identity shortcut lets
the signal and its gradient skip the block, so 100+ layers still train.

- ``ResNet`` and ``resnet18/34/50/101/152`` follow torchvision's ``resnet.py`` exactly: module
  names, state_dict keys (and their order), shapes, init. torchvision's weights load with
  ``load_state_dict`` and give the same logits. ``small_input=True`` swaps the 7x7/stride-2
  stem and its max-pool for one 3x3/stride-1 conv (same keys) for 28x28 or 32x32 images.
- ``CifarResNet`` and ``resnet20/32/44/56/110`` are the paper's CIFAR-10 nets (section 4.2):
  a 3x3 stem, three stages of 16/32/64 channels with n = (depth - 2) / 6 basic blocks each,
  global average pooling, one linear layer. Shortcuts are option A (the paper's CIFAR choice,
  parameter-free: subsample by 2 and zero-pad the new channels) or option B (1x1 projection).

Parameter counts: resnet18 11,689,512; resnet50 25,557,032; resnet20 (option A) 269,722
for 3 input channels and 10 classes (the paper's "0.27M").
"""
from __future__ import annotations

from dataclasses import dataclass

from shendu import nn
from shendu.nn import functional as F
from shendu.ops.shape import flatten


def conv3x3(in_planes, out_planes, stride=1, groups=1, dilation=1):
    """3x3 convolution with padding, no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation,
                     groups=groups, bias=False, dilation=dilation)


def conv1x1(in_planes, out_planes, stride=1):
    """1x1 convolution, no bias: changes the channel count (the bottleneck's reduce/expand)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs: out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).

    ``downsample`` (None: identity) maps x to the output's shape when stride or width change.

    Shape:
        input (N, inplanes, H, W) -> output (N, planes, H / stride, W / stride)
    """

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64,
                 dilation=1, norm_layer=None):
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        if groups != 1 or base_width != 64:
            raise ValueError(f"BasicBlock: only groups=1 and base_width=64 are supported, got "
                             f"groups={groups}, base_width={base_width}")
        if dilation > 1:
            raise ValueError(f"BasicBlock: dilation > 1 is not supported, got {dilation}")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4): out = relu(bn3(conv3(...)) + shortcut(x)).

    The stride sits on the 3x3 conv (torchvision's "ResNet V1.5"). width = planes *
    base_width / 64 * groups. Concept: N2.3 (1x1 conv as a bottleneck).

    Shape:
        input (N, inplanes, H, W) -> output (N, 4 planes, H / stride, W / stride)
    """

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64,
                 dilation=1, norm_layer=None):
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def _init_resnet(model, zero_init_residual):
    """torchvision's init: kaiming_normal_(fan_out, relu) convs, norm weight 1 and bias 0;
    zero_init_residual zeroes each block's last BN weight so every block starts as the
    identity (Goyal et al. 2017)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, Bottleneck):
                nn.init.constant_(m.bn3.weight, 0)
            elif isinstance(m, BasicBlock):
                nn.init.constant_(m.bn2.weight, 0)


class ResNet(nn.Module):
    """torchvision's ResNet: stem, four stages (64/128/256/512 planes), global pool, fc.

    stem: conv1 7x7/2 -> bn1 -> relu -> maxpool 3x3/2; layer1..layer4 (stride 1, 2, 2, 2);
    avgpool to 1x1; fc. The first block of a stage gets ``downsample`` = conv1x1 + BN (the
    paper's option B projection) when its stride or width changes; all other shortcuts are
    identities.

    Args:
        block: BasicBlock (ResNet-18/34) or Bottleneck (ResNet-50/101/152).
        layers: blocks per stage, e.g. [2, 2, 2, 2].
        num_classes: logits. Default: 1000.
        zero_init_residual: zero the last BN weight of each block. Default: False.
        groups, width_per_group: ResNeXt / Wide ResNet widths. Default: 1, 64.
        replace_stride_with_dilation: three bools for layer2..4. Default: None.
        norm_layer: normalization constructor. Default: BatchNorm2d.
        in_channels: input channels (ours; torchvision fixes 3). Default: 3.
        small_input: 3x3/stride-1 conv1 and no max-pool, for 28x28 or 32x32 images (ours).
            Default: False.

    Shape:
        input (N, in_channels, H, W) -> output (N, num_classes); H, W >= 1 (any size: the
        global pool absorbs it), 224 for ImageNet.

    Concept: N2.3.2 (ResNet).

    Example:
        >>> import shendu
        >>> resnet18(num_classes=10, in_channels=1, small_input=True)(
        ...     shendu.zeros(2, 1, 28, 28)).shape
        (2, 10)
    """

    def __init__(self, block, layers, num_classes=1000, zero_init_residual=False, groups=1,
                 width_per_group=64, replace_stride_with_dilation=None, norm_layer=None, *,
                 in_channels=3, small_input=False):
        super().__init__()
        self._norm_layer = norm_layer or nn.BatchNorm2d
        self.inplanes = 64
        self.dilation = 1
        replace_stride_with_dilation = replace_stride_with_dilation or [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise ValueError("ResNet: replace_stride_with_dilation should be None or a "
                             f"3-element tuple, got {replace_stride_with_dilation}")
        self.groups = groups
        self.base_width = width_per_group
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, self.inplanes, kernel_size=3, stride=1,
                                   padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, self.inplanes, kernel_size=7, stride=2,
                                   padding=3, bias=False)
        self.bn1 = self._norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], 2, replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(block, 256, layers[2], 2, replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(block, 512, layers[3], 2, replace_stride_with_dilation[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        _init_resnet(self, zero_init_residual)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        norm_layer = self._norm_layer
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       norm_layer(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width,
                        previous_dilation, norm_layer)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, groups=self.groups,
                                base_width=self.base_width, dilation=self.dilation,
                                norm_layer=norm_layer))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = flatten(self.avgpool(x), 1)  # (N, 512 * expansion)
        return self.fc(x)


def resnet18(**kwargs):
    """ResNet-18: BasicBlock, [2, 2, 2, 2]; 11,689,512 parameters."""
    return ResNet(BasicBlock, [2, 2, 2, 2], **kwargs)


def resnet34(**kwargs):
    """ResNet-34: BasicBlock, [3, 4, 6, 3]; 21,797,672 parameters."""
    return ResNet(BasicBlock, [3, 4, 6, 3], **kwargs)


def resnet50(**kwargs):
    """ResNet-50: Bottleneck, [3, 4, 6, 3]; 25,557,032 parameters."""
    return ResNet(Bottleneck, [3, 4, 6, 3], **kwargs)


def resnet101(**kwargs):
    """ResNet-101: Bottleneck, [3, 4, 23, 3]; 44,549,160 parameters."""
    return ResNet(Bottleneck, [3, 4, 23, 3], **kwargs)


def resnet152(**kwargs):
    """ResNet-152: Bottleneck, [3, 8, 36, 3]; 60,192,808 parameters."""
    return ResNet(Bottleneck, [3, 8, 36, 3], **kwargs)


# --- CIFAR ResNets (He et al. 2015, section 4.2) ------------------------------------------------

class ZeroPadShortcut(nn.Module):
    """Option-A shortcut: x[:, :, ::stride, ::stride], then zero channels appended evenly on
    both sides up to ``planes``; parameter-free.

    Shape:
        input (N, inplanes, H, W) -> output (N, planes, ceil(H / stride), ceil(W / stride))
    """

    def __init__(self, inplanes, planes, stride):
        super().__init__()
        if planes < inplanes:
            raise ValueError(f"ZeroPadShortcut: planes ({planes}) must be >= inplanes "
                             f"({inplanes})")
        self.inplanes, self.planes, self.stride = inplanes, planes, stride

    def forward(self, x):
        x = x[:, :, ::self.stride, ::self.stride]  # (N, inplanes, H / s, W / s)
        extra = self.planes - self.inplanes
        return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))  # (N, planes, ...)

    def extra_repr(self):
        return f"{self.inplanes}, {self.planes}, stride={self.stride}"


class CifarResNet(nn.Module):
    """The paper's CIFAR ResNet of depth 6n + 2: conv1 3x3 (16) -> bn1 -> relu ->
    layer1 (16) -> layer2 (32, /2) -> layer3 (64, /2) -> global avgpool -> fc.

    Args:
        depth: 6n + 2 (20, 32, 44, 56, 110). Default: 20.
        num_classes: logits. Default: 10.
        in_channels: input channels. Default: 3.
        shortcut: 'A' (zero-padding identity, no parameters, the paper's CIFAR choice) or 'B'
            (1x1 conv + BN projection where the shape changes). Default: 'A'.
        zero_init_residual: zero each block's bn2 weight. Default: False.

    Shape:
        input (N, in_channels, H, W) -> output (N, num_classes); 32x32 (CIFAR) or 28x28.

    Concept: N2.3.2 (ResNet, identity shortcut).

    Example:
        >>> import shendu
        >>> CifarResNet(20, in_channels=1)(shendu.zeros(2, 1, 28, 28)).shape
        (2, 10)
    """

    def __init__(self, depth=20, num_classes=10, in_channels=3, shortcut="A",
                 zero_init_residual=False):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CifarResNet: depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, "
                             f"110), got {depth}")
        if shortcut not in ("A", "B"):
            raise ValueError(f"CifarResNet: shortcut must be 'A' or 'B', got {shortcut!r}")
        n = (depth - 2) // 6
        self.depth, self.shortcut, self.inplanes = depth, shortcut, 16
        self.conv1 = conv3x3(in_channels, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(16, n, 1)
        self.layer2 = self._make_layer(32, n, 2)
        self.layer3 = self._make_layer(64, n, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)
        _init_resnet(self, zero_init_residual)

    def _make_layer(self, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            if self.shortcut == "A":
                downsample = ZeroPadShortcut(self.inplanes, planes, stride)
            else:
                downsample = nn.Sequential(conv1x1(self.inplanes, planes, stride),
                                           nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(flatten(self.avgpool(x), 1))  # (N, 64) -> (N, num_classes)


@dataclass
class ResNetConfig:
    """Configuration of the torchvision ResNets in the registry (``resnet18`` ...)."""

    num_classes: int = 1000
    in_channels: int = 3
    zero_init_residual: bool = False
    small_input: bool = False


@dataclass
class SmallResNetConfig(ResNetConfig):
    """``resnet18_small``: the ResNet-18 body with a 3x3 stem for 28x28/32x32 images."""

    num_classes: int = 10
    small_input: bool = True


@dataclass
class CifarResNetConfig:
    """Configuration of ``resnet20`` ... ``resnet110`` (depth is fixed by the name)."""

    num_classes: int = 10
    in_channels: int = 3
    shortcut: str = "A"
    zero_init_residual: bool = False


def _cifar(depth):
    def build(**kwargs):
        return CifarResNet(depth, **kwargs)
    build.__name__ = build.__qualname__ = f"resnet{depth}"
    build.__doc__ = f"CIFAR ResNet-{depth}: 3 stages of {(depth - 2) // 6} basic blocks."
    return build


resnet20, resnet32, resnet44, resnet56, resnet110 = (_cifar(d) for d in (20, 32, 44, 56, 110))
