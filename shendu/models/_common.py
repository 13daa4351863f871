"""Helpers shared by the model zoo: activation and pooling layers chosen by name."""
from __future__ import annotations

from shendu import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU,
               "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}
POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


def make_activation(name: str, owner: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"{owner}: unknown activation {name!r}; expected one of "
                         f"{sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def make_pool(name: str, kernel_size: int, owner: str) -> nn.Module:
    if name not in POOLS:
        raise ValueError(f"{owner}: unknown pool {name!r}; expected one of {sorted(POOLS)}")
    return POOLS[name](kernel_size)
