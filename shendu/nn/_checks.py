"""Input validation shared by the layers: every error names the layer that refused the input."""
from __future__ import annotations

from shendu.tensor import Tensor


def check_tensor(layer: str, x, name="input"):
    """Raise TypeError unless ``x`` is a Tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer}: expected {name} to be a shendu.Tensor, got "
                        f"{type(x).__name__}")


def check_input(layer: str, x, ok: bool, expected: str):
    """Raise ValueError ``"<layer>: expected input <expected>, got <shape>"`` unless ``ok``."""
    if not ok:
        raise ValueError(f"{layer}: expected input {expected}, got {tuple(x.shape)}")

