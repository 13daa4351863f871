"""Layer-by-layer model summary (output shapes and parameter counts) via forward hooks.

Concept: N2.3 -- the table checks the convolution arithmetic N1 = (N0 + 2P - F)/S + 1 and the
parameter count F*F*A0*B + B of every layer against a real forward pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from shendu import autograd
from shendu.creation import zeros
from shendu.tensor import Tensor


@dataclass
class LayerInfo:
    """One row: dotted module name, class name, output shape and own parameter count."""

    name: str
    type: str
    output_shape: tuple
    params: int


@dataclass
class ModelSummary:
    """The rows in call order plus totals; ``str()`` renders the table."""

    layers: list = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    input_shape: tuple = ()

    def __str__(self):
        header = ("Layer", "Type", "Output shape", "Params")
        rows = [(r.name, r.type, str(tuple(r.output_shape)), f"{r.params:,}") for r in self.layers]
        widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
        fmt = "  ".join(f"{{:<{w}}}" if i < 3 else f"{{:>{w}}}" for i, w in enumerate(widths))
        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        lines = [f"input {tuple(self.input_shape)}", rule, fmt.format(*header), rule]
        lines += [fmt.format(*row) for row in rows]
        lines += [rule, f"Total params: {self.total_params:,}",
                  f"Trainable params: {self.trainable_params:,}",
                  f"Non-trainable params: {self.total_params - self.trainable_params:,}"]
        return "\n".join(lines)


def _own_params(module):
    return sum(p.numel() for p in module.parameters(recurse=False))


def summary(model, input_shape, dtype=None) -> ModelSummary:
    """Run a zero input of ``input_shape`` (batch dimension included) through ``model``.

    Every leaf module (and every module holding parameters of its own) gets a row with its
    output shape and its own parameter count, in the order the forward pass calls them. The
    model runs in eval mode under no_grad; its mode is restored afterwards.

    Shape:
        input_shape (N, ...), e.g. (1, 1, 28, 28) for LeNet5 on one grey 28x28 image.

    Example:
        >>> from shendu.models import LeNet5
        >>> rows = summary(LeNet5(), (1, 1, 28, 28)).layers
        >>> rows[0].output_shape, rows[0].params
        ((1, 6, 28, 28), 156)
    """
    input_shape = tuple(int(d) for d in input_shape)
    params = list(model.parameters())
    device = params[0].device if params else "cpu"
    dtype = dtype or (params[0].dtype if params else None)
    result = ModelSummary(input_shape=input_shape,
                          total_params=sum(p.numel() for p in params),
                          trainable_params=sum(p.numel() for p in params if p.requires_grad))
    handles = []
    for name, module in model.named_modules():
        if module is model and next(iter(module.children()), None) is not None:
            continue
        if next(iter(module.children()), None) is None or _own_params(module):
            handles.append(module.register_forward_hook(_recorder(result, name or
                                                                  type(module).__name__)))
    was_training = model.training
    model.eval()
    try:
        with autograd.no_grad():
            model(zeros(*input_shape, dtype=dtype, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return result


def _recorder(result, name):
    def hook(module, inputs, output):
        shape = output.shape if isinstance(output, Tensor) else \
            tuple(o.shape for o in output if isinstance(o, Tensor))
        result.layers.append(LayerInfo(name, type(module).__name__, tuple(shape),
                                       _own_params(module)))
    return hook


def print_summary(model, input_shape, dtype=None, file=None) -> ModelSummary:
    """Print ``summary(model, input_shape)`` as a table and return it."""
    result = summary(model, input_shape, dtype)
    print(result, file=file)
    return result
