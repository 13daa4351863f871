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



_TENSOR_CAST = {"float64": ".double()", "float32": ".float()", "float16": ".half()"}
_MODULE_CAST = {"float64": ".double()", "float32": ".float()", "float16": ".to(shendu.float16)"}


def check_input_dtype(module, x):
    """torch's rule for every layer: a floating input must have the dtype of the layer's own
    parameters (no silent promotion to float64, no float16 turned into float32).

    Called by ``Module.__call__`` for the first positional argument, so it holds for every layer
    with parameters at once; integer inputs (token ids) and parameter-free modules are left
    alone.
    """
    if not isinstance(x, Tensor) or x.dtype.kind != "f":
        return
    param = next((p for p in module._parameters.values() if p is not None), None)
    if param is None or x.dtype == param.dtype:
        return
    to_param = _TENSOR_CAST.get(str(param.dtype), f".to({param.dtype})")
    to_input = _MODULE_CAST.get(str(x.dtype), f".to({x.dtype})")
    raise TypeError(f"{type(module).__name__}: input dtype {x.dtype} does not match the "
                    f"parameters' dtype {param.dtype}; convert the input with input{to_param} "
                    f"or the model with model{to_input}")
