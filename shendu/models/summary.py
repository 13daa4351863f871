"""Layer-by-layer model summary: output shape, parameters, multiply-accumulates and receptive
field of every layer, via forward hooks.

Concept: N2.3 -- the table checks the convolution arithmetic N1 = (N0 + 2P - F)/S + 1 and the
parameter count F*F*A0*B + B of every layer against a real forward pass. Per sample:
    MACs of a conv   = C_out * H_out * W_out * (C_in / groups) * kH * kW
    MACs of a linear = in_features * out_features (times the positions of a (N, *, in) input)
Receptive field (r, in input pixels) and jump (j, the input distance between neighbouring
outputs) of each layer, from r = j = 1 at the input:
    r_out = r_in + (k - 1) * dilation * j_in,   j_out = j_in * stride
A branch or residual sum gets the largest field among its inputs; a flatten takes in the
whole map (k = H, W). Bias additions, normalization and activations count no MACs.

Example (N2.3.2, VGG: three stacked 3x3 convs see the 7x7 field of one 7x7 conv with
3 * 9 C^2 = 27 C^2 weights instead of 49 C^2):
    >>> from shendu import nn
    >>> C = 64
    >>> stack = nn.Sequential(*[nn.Conv2d(C, C, 3, padding=1, bias=False) for _ in range(3)])
    >>> one = nn.Conv2d(C, C, 7, padding=3, bias=False)
    >>> s3, s7 = summary(stack, (1, C, 32, 32)), summary(one, (1, C, 32, 32))
    >>> s3.layers[-1].receptive_field, s7.layers[-1].receptive_field
    ((7, 7), (7, 7))
    >>> s3.total_params, s7.total_params, s3.total_macs, s7.total_macs
    (110592, 200704, 113246208, 205520896)

Example (N2.3, 1x1 bottleneck: 256 -> 64 -> 64 -> 256 against two 3x3 convs of width 256):
    >>> from shendu.models.resnet import BasicBlock, Bottleneck
    >>> basic = summary(BasicBlock(256, 256), (1, 256, 14, 14))
    >>> bottle = summary(Bottleneck(256, 64), (1, 256, 14, 14))
    >>> basic.total_params, bottle.total_params, basic.total_macs, bottle.total_macs
    (1180672, 70400, 231211008, 13647872)
"""
from __future__ import annotations

from dataclasses import dataclass, field

from shendu import autograd, nn
from shendu.creation import zeros
from shendu.tensor import Tensor


@dataclass
class LayerInfo:
    """One row: dotted module name, class name, output shape, own parameter count,
    multiply-accumulates per sample, receptive field (rH, rW) and jump (jH, jW); the field
    and jump are None where unknown (e.g. transposed convs)."""

    name: str
    type: str
    output_shape: tuple
    params: int
    macs: int = 0
    receptive_field: tuple | None = None
    jump: tuple | None = None


@dataclass
class ModelSummary:
    """The rows in call order plus totals; ``str()`` renders the table."""

    layers: list = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    input_shape: tuple = ()
    total_macs: int = 0

    def __str__(self):
        header = ("Layer", "Type", "Output shape", "Params", "MACs", "RF")
        rows = [(r.name, r.type, str(tuple(r.output_shape)), f"{r.params:,}", f"{r.macs:,}",
                 _field_text(r.receptive_field)) for r in self.layers]
        widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
        fmt = "  ".join(f"{{:<{w}}}" if i < 3 else f"{{:>{w}}}" for i, w in enumerate(widths))
        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        lines = [f"input {tuple(self.input_shape)}", rule, fmt.format(*header), rule]
        lines += [fmt.format(*row) for row in rows]
        lines += [rule, f"Total params: {self.total_params:,}",
                  f"Trainable params: {self.trainable_params:,}",
                  f"Non-trainable params: {self.total_params - self.trainable_params:,}",
                  f"Total MACs per sample: {self.total_macs:,}",
                  ("MACs: multiply-accumulates of convs and linears per sample; RF: receptive "
                   "field in input pixels")]
        return "\n".join(lines)


def _field_text(rf):
    if rf is None:
        return "-"
    return str(rf[0]) if rf[0] == rf[1] else f"{rf[0]}x{rf[1]}"


def _own_params(module):
    return sum(p.numel() for p in module.parameters(recurse=False))


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _macs(module, output, input_shape):
    """Multiply-accumulates per sample of a conv or linear layer; 0 for anything else."""
    if not isinstance(output, Tensor) or output.ndim == 0:
        return 0
    per_sample = output.numel() // output.shape[0]
    if isinstance(module, nn.Linear):
        return per_sample * module.in_features
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        kh, kw = module.kernel_size
        if isinstance(module, nn.ConvTranspose2d):  # each input pixel scatters one kernel
            h, w = input_shape[-2:]
            return module.in_channels * h * w * (module.out_channels // module.groups) * kh * kw
        return per_sample * (module.in_channels // module.groups) * kh * kw
    return 0


def _next_field(module, field_in, input_shape):
    """(r, j) after a leaf module, from (r, j) before it; None where the rule is unknown."""
    if field_in is None or isinstance(module, nn.ConvTranspose2d):
        return None
    (r, j), k, s, d = field_in, None, (1, 1), (1, 1)
    if hasattr(module, "kernel_size"):  # conv and pooling layers
        k, s = _pair(module.kernel_size), _pair(module.stride)
        d = _pair(getattr(module, "dilation", 1))
    elif isinstance(module, nn.AdaptiveAvgPool2d) and len(input_shape) >= 3:
        size = tuple(input_shape[-2:])
        out = [n if o is None else o for n, o in zip(size, _pair(module.output_size))]
        s = tuple(max(1, n // o) for n, o in zip(size, out))
        k = tuple(n - (o - 1) * st for n, o, st in zip(size, out, s))
    elif isinstance(module, nn.Flatten) and len(input_shape) == 4:
        k = tuple(input_shape[-2:])  # each output sees the whole (H, W) map
    elif hasattr(module, "stride"):  # parameter-free subsampling, e.g. ZeroPadShortcut
        k, s = (1, 1), _pair(module.stride)
    if k is None:  # element-wise or per-position layers (activations, norms, Linear)
        return field_in
    r = tuple(ri + (ki - 1) * di * ji for ri, ki, di, ji in zip(r, k, d, j))
    return r, tuple(ji * si for ji, si in zip(j, s))


class _Tracer:
    """Forward hooks on every module: rows for the reported ones, and the receptive field
    carried from tensor to tensor (a tensor no module produced -- a residual sum, a concat
    -- gets the largest field produced so far inside the enclosing module)."""

    def __init__(self, result, rows):
        self.result, self.rows = result, rows
        self.fields = {}  # id(tensor) -> (r, j)
        self.keep = []  # keeps every traced tensor alive so that ids stay unique
        self.frames = [[]]  # per active module call: the fields produced inside it
        self.inputs = []  # per active module call: (field_in, input shape)

    def _largest(self):
        for frame in reversed(self.frames):
            known = [f for f in frame if f is not None]
            if known:
                return max(known, key=lambda f: f[0][0] * f[0][1])
        return (1, 1), (1, 1)

    def pre_hook(self, module, inputs):
        x = inputs[0] if inputs and isinstance(inputs[0], Tensor) else None
        field_in = self.fields[id(x)] if x is not None and id(x) in self.fields else \
            self._largest()
        shape = tuple(x.shape) if x is not None else ()
        self.inputs.append((field_in, shape))
        self.frames.append([])

    def hook(self, module, inputs, output):
        field_in, shape = self.inputs.pop()
        inner = self.frames.pop()
        if next(iter(module.children()), None) is None:
            field_out = _next_field(module, field_in, shape)
        else:
            known = [f for f in inner if f is not None]
            field_out = max(known, key=lambda f: f[0][0] * f[0][1]) if known else field_in
        self.frames[-1].append(field_out)
        if isinstance(output, Tensor):
            self.fields[id(output)] = field_out
            self.keep.append(output)
        if module in self.rows:
            self._row(module, output, field_out, shape)

    def _row(self, module, output, field_out, input_shape):
        shape = output.shape if isinstance(output, Tensor) else \
            tuple(o.shape for o in output if isinstance(o, Tensor))
        macs = _macs(module, output, input_shape)
        rf, jump = field_out if field_out is not None else (None, None)
        self.result.layers.append(LayerInfo(self.rows[module], type(module).__name__,
                                            tuple(shape), _own_params(module), macs, rf,
                                            jump))
        self.result.total_macs += macs


def summary(model, input_shape, dtype=None) -> ModelSummary:
    """Run a zero input of ``input_shape`` (batch dimension included) through ``model``.

    Every leaf module (and every module holding parameters of its own) gets a row with its
    output shape, its own parameter count, its MACs per sample and the receptive field of its
    outputs, in the order the forward pass calls them (a module called twice gets two rows).
    The model runs in eval mode under no_grad; its mode is restored afterwards.

    Shape:
        input_shape (N, ...), e.g. (1, 1, 28, 28) for LeNet5 on one grey 28x28 image.

    Example:
        >>> from shendu.models import LeNet5
        >>> rows = summary(LeNet5(), (1, 1, 28, 28)).layers
        >>> rows[0].output_shape, rows[0].params, rows[0].macs, rows[0].receptive_field
        ((1, 6, 28, 28), 156, 117600, (5, 5))
    """
    input_shape = tuple(int(d) for d in input_shape)
    params = list(model.parameters())
    device = params[0].device if params else "cpu"
    dtype = dtype or (params[0].dtype if params else None)
    result = ModelSummary(input_shape=input_shape,
                          total_params=sum(p.numel() for p in params),
                          trainable_params=sum(p.numel() for p in params if p.requires_grad))
    rows = {}
    for name, module in model.named_modules():
        if module is model and next(iter(module.children()), None) is not None:
            continue
        if next(iter(module.children()), None) is None or _own_params(module):
            rows[module] = name or type(module).__name__
    tracer = _Tracer(result, rows)
    handles = []
    for module in model.modules():
        handles.append(module.register_forward_pre_hook(tracer.pre_hook))
        handles.append(module.register_forward_hook(tracer.hook))
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


def print_summary(model, input_shape, dtype=None, file=None) -> ModelSummary:
    """Print ``summary(model, input_shape)`` as a table and return it."""
    result = summary(model, input_shape, dtype)
    print(result, file=file)
    return result
