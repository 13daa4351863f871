"""Elementwise arithmetic with torch's broadcasting and type-promotion rules.

Shapes: inputs broadcast together (NumPy rules); gradients are summed back to each input's
shape by ``unbroadcast``. Python scalars never enter the graph and keep the tensor's dtype.
"""
from __future__ import annotations

import builtins

from shendu import backend
from shendu.autograd import Function, unbroadcast
from shendu.tensor import Tensor


def as_operands(a, b, op):
    """Turn (Tensor | scalar, Tensor | scalar) into two Tensors of one promoted dtype."""
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    if ta and tb:
        # NumPy and CuPy arrays differ in type: compare types first, devices only on mismatch
        if type(a._data) is not type(b._data) and a.device != b.device:
            raise RuntimeError(f"{op}: tensors on different devices ({a.device} and {b.device})")
        if a.dtype != b.dtype:
            dtype = promote(a.dtype, b.dtype)
            a, b = a.to(dtype), b.to(dtype)
        return a, b
    if ta:
        b = scalar_like(b, a, op)
    elif tb:
        a = scalar_like(a, b, op)
    else:
        raise TypeError(f"{op}: expected at least one Tensor, got {type(a).__name__} and "
                        f"{type(b).__name__}")
    if a.dtype != b.dtype:  # an int tensor meets a float scalar, or an array operand
        dtype = promote(a.dtype, b.dtype)
        a, b = a.to(dtype), b.to(dtype)
    return a, b


def promote(da, db):
    """torch's category rule: a float beats an int beats a bool, whatever the widths."""
    fa, fb = backend.is_floating(da), backend.is_floating(db)
    if fa != fb:
        return da if fa else db
    return backend.result_dtype(da, db)


def scalar_like(value, like, op):
    """A 0-d constant Tensor for a Python number, in ``like``'s dtype (torch's rule).

    NumPy scalars and 0-d arrays count as Python numbers (``x / np.prod(shape)``); a NumPy
    array with dims becomes a constant tensor of its own dtype.
    """
    if not isinstance(value, (int, float)) and getattr(value, "ndim", None) == 0 \
            and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool):
        dtype = like.dtype
    elif isinstance(value, int):
        dtype = like.dtype if like.dtype.kind != "b" else backend.int64
    elif isinstance(value, float):
        dtype = like.dtype if backend.is_floating(like.dtype) else backend.default_float
    elif backend.is_array(value):
        return Tensor._wrap(backend.to_device(value, like.device))
    else:
        raise TypeError(f"{op}: unsupported operand of type {type(value).__name__}; expected "
                        "a Tensor or a Python number")
    return Tensor._wrap(like._xp.asarray(value, dtype=dtype))


def broadcast_shape(op, *shapes):
    """The broadcast of ``shapes`` (NumPy rules), or a RuntimeError naming ``op`` and them."""
    ndim = builtins.max(len(s) for s in shapes)
    out = []
    for i in range(-ndim, 0):
        sizes = {s[i] for s in shapes if len(s) >= -i and s[i] != 1}
        if len(sizes) > 1:
            listed = ", ".join(str(tuple(s)) for s in shapes[:-1]) + f" and {tuple(shapes[-1])}"
            raise RuntimeError(f"{op}: shapes {listed} cannot be broadcast together (sizes "
                               "must match or be 1, aligned from the last dim)")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def apply_broadcasting(fn_cls, op, *inputs):
    """``fn_cls.apply(*inputs)``, turning NumPy's broadcasting ValueError into a named error.

    The check runs only after a failure, so the fast path pays nothing for it.
    """
    try:
        return fn_cls.apply(*inputs)
    except ValueError:
        broadcast_shape(op, *[t.shape for t in inputs if t is not None])
        raise


def _float_operand(x, op):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    return x if backend.is_floating(x.dtype) else x.to(backend.default_float)


class Add(Function):
    uses_inputs = False

    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a + b

    def backward(self, grad):
        sa, sb = self.shapes
        return (unbroadcast(grad, sa) if self.needs_input_grad[0] else None,
                unbroadcast(grad, sb) if self.needs_input_grad[1] else None)


class Sub(Function):
    uses_inputs = False

    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a - b

    def backward(self, grad):
        sa, sb = self.shapes
        return (unbroadcast(grad, sa) if self.needs_input_grad[0] else None,
                unbroadcast(-grad, sb) if self.needs_input_grad[1] else None)


class Mul(Function):
    def forward(self, a, b):
        return a * b

    def backward(self, grad):
        a, b = self.inputs
        return (unbroadcast(grad * b, a.shape) if self.needs_input_grad[0] else None,
                unbroadcast(grad * a, b.shape) if self.needs_input_grad[1] else None)


class Div(Function):
    def forward(self, a, b):
        return a / b

    def backward(self, grad):
        a, b = self.inputs
        grad_a = unbroadcast(grad / b, a.shape) if self.needs_input_grad[0] else None
        grad_b = unbroadcast(-grad * a / (b * b), b.shape) if self.needs_input_grad[1] else None
        return grad_a, grad_b


class Neg(Function):
    uses_inputs = False

    def forward(self, a):
        return -a

    def backward(self, grad):
        return -grad


class Pow(Function):
    """a ** b for two tensors; d/da = b a^(b-1), d/db = a^b log(a)."""

    uses_output = True

    def forward(self, a, b):
        return a ** b

    def backward(self, grad):
        a, b = self.inputs
        grad_a = grad_b = None
        if self.needs_input_grad[0]:
            grad_a = unbroadcast(grad * b * a ** (b - 1), a.shape)
        if self.needs_input_grad[1]:
            # log(a) is -inf/nan at a <= 0; torch masks the a == 0 case to zero
            safe_log = where(a == 0, 0.0, a).log()
            grad_b = unbroadcast(grad * self.output * safe_log, b.shape)
        return grad_a, grad_b


class PowScalar(Function):
    """a ** p for a constant exponent p (kept out of the graph)."""

    def forward(self, a, exponent):
        self.exponent = exponent
        return a ** exponent

    def backward(self, grad):
        (a,) = self.inputs
        p = self.exponent
        if p == 0:
            return grad * 0.0
        return grad * (p * a ** (p - 1) if p != 2 else 2.0 * a)


class Exp(Function):
    uses_inputs = False
    uses_output = True

    def forward(self, a):
        return self_xp(a).exp(a)

    def backward(self, grad):
        return grad * self.output


class Log(Function):
    def forward(self, a):
        return self_xp(a).log(a)

    def backward(self, grad):
        return grad / self.inputs[0]


class Sqrt(Function):
    uses_inputs = False
    uses_output = True

    def forward(self, a):
        return self_xp(a).sqrt(a)

    def backward(self, grad):
        return grad / (2.0 * self.output)


class Abs(Function):
    def forward(self, a):
        return self_xp(a).abs(a)

    def backward(self, grad):
        return grad * self.inputs[0].sign()


class Clamp(Function):
    """clamp(x, min, max); the gradient passes where min <= x <= max (torch's convention)."""

    def forward(self, a, low=None, high=None):
        self.low, self.high = low, high
        return self_xp(a).clip(a, low, high)

    def backward(self, grad):
        x = self.inputs[0].detach()
        keep = None
        if self.low is not None:
            keep = x >= self.low
        if self.high is not None:
            keep = (x <= self.high) if keep is None else keep & (x <= self.high)
        return grad if keep is None else grad * keep.to(grad.dtype)


class Maximum(Function):
    """Elementwise max; at ties each input gets half the gradient (torch's convention)."""

    def forward(self, a, b):
        return self_xp(a).maximum(a, b)

    def backward(self, grad):
        return _select_backward(self, grad, self.inputs[0].detach() > self.inputs[1].detach())


class Minimum(Function):
    def forward(self, a, b):
        return self_xp(a).minimum(a, b)

    def backward(self, grad):
        return _select_backward(self, grad, self.inputs[0].detach() < self.inputs[1].detach())


def _select_backward(fn, grad, a_wins):
    a, b = fn.inputs
    tie = (a.detach() == b.detach()).to(grad.dtype) * 0.5
    weight_a = a_wins.to(grad.dtype) + tie
    grad_a = unbroadcast(grad * weight_a, a.shape) if fn.needs_input_grad[0] else None
    grad_b = unbroadcast(grad * (1.0 - weight_a), b.shape) if fn.needs_input_grad[1] else None
    return grad_a, grad_b


class Where(Function):
    """where(condition, a, b); condition is a constant bool tensor."""

    def forward(self, condition, a, b):
        return self_xp(a).where(condition, a, b)

    def backward(self, grad):
        condition, a, b = self.inputs
        grad_a = unbroadcast(where(condition, grad, 0.0), a.shape) \
            if self.needs_input_grad[1] else None
        grad_b = unbroadcast(where(condition, 0.0, grad), b.shape) \
            if self.needs_input_grad[2] else None
        return None, grad_a, grad_b


class Cast(Function):
    """Change dtype and/or device; the gradient is cast back."""

    uses_inputs = False

    def forward(self, a, dtype=None, device=None):
        self.src_dtype, self.src_device = a.dtype, backend.device_of(a)
        if device is not None:
            a = backend.to_device(a, device)
        return a.astype(dtype) if dtype is not None and dtype != a.dtype else a

    def backward(self, grad):
        return grad.to(self.src_dtype, self.src_device)


class Clone(Function):
    uses_inputs = False

    def forward(self, a):
        return a.copy()

    def backward(self, grad):
        return grad


def self_xp(a):
    return backend.xp_of(a)


# --- public functions (shendu.add, Tensor.__add__, ...) --------------------------------------

def add(a, b, alpha=1):
    a, b = as_operands(a, b, "add")
    return apply_broadcasting(Add, "add", a, b if alpha == 1 else b * alpha)


def sub(a, b, alpha=1):
    a, b = as_operands(a, b, "sub")
    return apply_broadcasting(Sub, "sub", a, b if alpha == 1 else b * alpha)


def mul(a, b):
    return apply_broadcasting(Mul, "mul", *as_operands(a, b, "mul"))


def div(a, b):
    a, b = as_operands(a, b, "div")
    if not backend.is_floating(a.dtype):  # true division, as torch
        a, b = a.to(backend.default_float), b.to(backend.default_float)
    return apply_broadcasting(Div, "div", a, b)


def neg(a):
    return Neg.apply(a)


def pow(a, b):  # noqa: A001 - torch's name
    if isinstance(a, Tensor) and isinstance(b, (int, float)) and not isinstance(b, bool):
        if isinstance(b, float) and not backend.is_floating(a.dtype):
            a = a.to(backend.default_float)
        return PowScalar.apply(a, exponent=b)
    a, b = as_operands(a, b, "pow")
    return apply_broadcasting(Pow, "pow", a, b)


def exp(a):
    return Exp.apply(_float_operand(a, "exp"))


def log(a):
    return Log.apply(_float_operand(a, "log"))


def sqrt(a):
    return Sqrt.apply(_float_operand(a, "sqrt"))


def rsqrt(a):
    return 1.0 / sqrt(a)


def square(a):
    return mul(a, a)


def abs(a):  # noqa: A001 - torch's name
    return Abs.apply(a)


def sign(a):
    """Sign of each element; its gradient is zero, so it never enters the graph."""
    return Tensor._wrap(a._xp.sign(a._data))


def clamp(a, min=None, max=None):  # noqa: A002 - torch's names
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    # tensor bounds take the input's dtype, as torch's 0-d tensors do: never upcast
    low = min._data.astype(a.dtype, copy=False) if isinstance(min, Tensor) else min
    high = max._data.astype(a.dtype, copy=False) if isinstance(max, Tensor) else max
    return Clamp.apply(a, low=low, high=high)


clip = clamp


def maximum(a, b):
    return apply_broadcasting(Maximum, "maximum", *as_operands(a, b, "maximum"))


def minimum(a, b):
    return apply_broadcasting(Minimum, "minimum", *as_operands(a, b, "minimum"))


def where(condition, a, b):
    """Pick from ``a`` where ``condition`` is true, else from ``b``; all three broadcast."""
    if not isinstance(condition, Tensor):
        raise TypeError(f"where: condition must be a bool Tensor, got {type(condition).__name__}")
    if condition.dtype != backend.bool_:
        raise TypeError(f"where: condition must have dtype bool, got {condition.dtype}")
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = scalar_like(a, Tensor._wrap(condition._xp.zeros((), backend.default_float)), "where")
    a, b = as_operands(a, b, "where")
    return apply_broadcasting(Where, "where", condition, a, b)


def to(a, dtype=None, device=None):
    if (dtype is None or dtype == a.dtype) and (device is None or device == a.device):
        return a
    if dtype is not None and not backend.is_floating(dtype) and a.requires_grad:
        return Tensor._wrap(Cast().forward(a._data, dtype, device))
    return Cast.apply(a, dtype=dtype, device=device)


def clone(a):
    return Clone.apply(a)
