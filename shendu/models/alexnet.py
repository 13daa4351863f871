"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012), torchvision's single-tower variant.

Concept: N2.3.2 (AlexNet: the first CNN with ReLU trained on GPUs). Module names, state_dict
keys, shapes and init are torchvision's, so its weights load with ``load_state_dict``:
    features.0 conv 11x11/4 (64), features.3 conv 5x5 (192), features.6/8/10 conv 3x3
    (384, 256, 256), max-pools 3x3/2 after the 1st, 2nd and 5th conv; avgpool to 6x6;
    classifier.1/4/6 linear 9216 -> 4096 -> 4096 -> num_classes with dropout before the
    first two.  61,100,840 parameters for 1000 classes.
"""
from __future__ import annotations

from dataclasses import dataclass

from shendu import nn
from shendu.ops.shape import flatten


class AlexNet(nn.Module):
    """AlexNet: five convs (ReLU, three max-pools), adaptive pool to 6x6, three linears.

    Args:
        num_classes: logits. Default: 1000.
        dropout: dropout probability in the classifier. Default: 0.5.
        in_channels: input channels (ours; torchvision fixes 3). Default: 3.

    Shape:
        input (N, in_channels, H, W) -> output (N, num_classes); H, W >= 63 (224 for
        ImageNet: 224 -> 55 -> 27 -> 13 -> 6 after the pools).

    Concept: N2.3.2 (AlexNet).

    Example:
        >>> import shendu
        >>> AlexNet(num_classes=10).features[0]
        Conv2d(3, 64, kernel_size=(11, 11), stride=(4, 4), padding=(2, 2))
    """

    def __init__(self, num_classes=1000, dropout=0.5, *, in_channels=3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(flatten(x, 1))  # (N, 256 * 6 * 6)


def alexnet(**kwargs):
    """AlexNet with torchvision's defaults; keyword arguments go to ``AlexNet``."""
    return AlexNet(**kwargs)


@dataclass
class AlexNetConfig:
    """Configuration of ``alexnet`` in the registry."""

    num_classes: int = 1000
    dropout: float = 0.5
    in_channels: int = 3
