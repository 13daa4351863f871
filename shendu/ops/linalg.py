"""Matrix products (torch.matmul semantics: 1-D vectors, batched and broadcast stacks)."""
from __future__ import annotations

from shendu import backend
from shendu.autograd import Function, unbroadcast


class MatMul(Function):
    """(*, n, k) @ (*, k, m) -> (*, n, m); batch dims broadcast."""

    def forward(self, a, b):
        return backend.xp_of(a).matmul(a, b)

    def backward(self, grad):
        a, b = self.inputs
        grad_a = unbroadcast(grad @ b.mT, a.shape) if self.needs_input_grad[0] else None
        grad_b = unbroadcast(a.mT @ grad, b.shape) if self.needs_input_grad[1] else None
        return grad_a, grad_b


def matmul(a, b):
    """Matrix product with torch's rules for 1-D operands (prepend/append a unit dim)."""
    from shendu.ops.elementwise import as_operands, broadcast_shape
    a, b = as_operands(a, b, "matmul")
    sa, sb = a.shape, b.shape
    if len(sa) >= 2 and len(sb) >= 2 and sa[-1] == sb[-2] and sa[:-2] == sb[:-2]:
        return MatMul.apply(a, b)  # the common case: nothing to reshape or check
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"matmul: both arguments need at least 1 dim, got shapes {a.shape} "
                           f"and {b.shape}")
    shapes = (tuple(a.shape), tuple(b.shape))  # as the user gave them, for messages
    squeeze_first, squeeze_last = a.ndim == 1, b.ndim == 1
    if squeeze_first:
        a = a.unsqueeze(0)
    if squeeze_last:
        b = b.unsqueeze(-1)
    if a.shape[-1] != b.shape[-2]:
        raise RuntimeError(f"matmul: shapes {shapes[0]} and {shapes[1]} cannot be multiplied "
                           f"({a.shape[-1]} != {b.shape[-2]})")
    if a.shape[:-2] != b.shape[:-2]:
        try:
            broadcast_shape("matmul", a.shape[:-2], b.shape[:-2])
        except RuntimeError:
            raise RuntimeError(f"matmul: batch dims {a.shape[:-2]} and {b.shape[:-2]} of shapes "
                               f"{shapes[0]} and {shapes[1]} do not broadcast") from None
    out = MatMul.apply(a, b)
    if squeeze_first:
        out = out.squeeze(-2)
    if squeeze_last:
        out = out.squeeze(-1)
    return out


def mm(a, b):
    if a.ndim != 2 or b.ndim != 2:
        raise RuntimeError(f"mm: expected 2-D tensors, got {a.shape} and {b.shape}")
    return matmul(a, b)


def bmm(a, b):
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        raise RuntimeError(f"bmm: expected 3-D tensors with equal batch, got {a.shape} and "
                           f"{b.shape}")
    return matmul(a, b)
