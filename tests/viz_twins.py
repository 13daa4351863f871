"""A small CNN in shendu and its torch twin with the same weights (for the viz parity tests)."""
import numpy as np
import torch

import shendu
from shendu import nn


def small_cnn(seed=0, dtype=shendu.float64, in_channels=1, classes=10):
    """conv-relu-pool-conv-relu-flatten-linear on (N, in_channels, 12, 12) inputs."""
    shendu.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, classes))
    return model.to(dtype=dtype)


def torch_twin(model):
    """The same Sequential in torch, loaded with ``model``'s weights."""
    layers = []
    for m in model:
        kind = type(m).__name__
        if kind == "Conv2d":
            layers.append(torch.nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size,
                                          padding=m.padding))
        elif kind == "Linear":
            layers.append(torch.nn.Linear(m.in_features, m.out_features))
        elif kind == "MaxPool2d":
            layers.append(torch.nn.MaxPool2d(m.kernel_size))
        else:
            layers.append(getattr(torch.nn, kind)())
    twin = torch.nn.Sequential(*layers).double()
    twin.load_state_dict({k: torch.tensor(np.array(v.tolist())) for k, v in
                          model.state_dict().items()})
    return twin.eval()


def images(n=3, seed=1, channels=1, side=12):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, channels, side, side))
    return shendu.tensor(x), torch.tensor(x)
