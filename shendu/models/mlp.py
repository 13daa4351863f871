"""Multi-layer perceptron: the fully-connected feed-forward network (Concept: N2.2)."""
from __future__ import annotations

from dataclasses import dataclass

from shendu import nn
from shendu.models._common import make_activation


@dataclass
class MLPConfig:
    """Configuration of ``MLP``; ``sizes`` runs from the input width to the class count."""

    sizes: tuple = (784, 256, 128, 10)  # Fashion-MNIST: 28*28 pixels in, 10 classes out
    activation: str = "relu"
    dropout: float = 0.0  # after every hidden activation (N3.2.5)


class MLP(nn.Module):
    """Flatten, then Linear -> activation (-> Dropout) per hidden layer, then a Linear head.

    h_0 = flatten(x);  h_i = dropout(act(W_i h_{i-1} + b_i));  y = W_L h_{L-1} + b_L

    Args:
        sizes: layer widths [in_features, hidden..., out_features]; at least two.
        activation: 'relu', 'tanh', 'sigmoid', 'gelu', 'elu' or 'leaky_relu'. Default: 'relu'.
        dropout: dropout probability after each hidden activation. Default: 0.0 (none).

    Shape:
        input (N, *) with prod(*) == sizes[0] -> output (N, sizes[-1]) logits.

    Concept: N2.2 (FCNN), N3.2.5 (dropout).

    Example:
        >>> import shendu
        >>> MLP((784, 256, 10))(shendu.zeros(2, 1, 28, 28)).shape
        (2, 10)
    """

    def __init__(self, sizes=MLPConfig.sizes, activation="relu", dropout=0.0):
        super().__init__()
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"MLP: sizes must hold at least two positive widths (in, ..., out), "
                             f"got {sizes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MLP: dropout must be in [0, 1), got {dropout}")
        self.sizes = sizes
        layers = [nn.Flatten()]
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(fan_in, fan_out))
            if i < len(sizes) - 2:
                layers.append(make_activation(activation, "MLP"))
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        features = 1
        for d in x.shape[1:]:
            features *= d
        if x.ndim < 2 or features != self.sizes[0]:
            raise ValueError(f"MLP(sizes={self.sizes}): expected input (N, *) with "
                             f"{self.sizes[0]} features per sample, got {x.shape}")
        return self.layers(x)
