"""Matrix products (torch.matmul semantics: 1-D vectors, batched and broadcast stacks),
outer products and einsum."""
from __future__ import annotations

from shendu import backend, threads
from shendu.autograd import Function, unbroadcast
from shendu.tensor import Tensor


class MatMul(Function):
    """(*, n, k) @ (*, k, m) -> (*, n, m); batch dims broadcast."""

    def forward(self, a, b):
        return threads.matmul(a, b)

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


def outer(a, b):
    """a_i b_j: (n,) and (m,) -> (n, m)."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor) or a.ndim != 1 or b.ndim != 1:
        raise RuntimeError(f"outer: expected two 1-D tensors, got "
                           f"{getattr(a, 'shape', type(a).__name__)} and "
                           f"{getattr(b, 'shape', type(b).__name__)}")
    return a.reshape(-1, 1) * b.reshape(1, -1)


class Einsum(Function):
    """Sum of products over the subscripts an explicit equation leaves out (no ellipsis,
    no repeated subscript within one operand: ``_parse_einsum`` guarantees it).

    The gradient of operand k is the einsum of the upstream gradient with the other
    operands onto k's subscripts (itself an einsum, so it is differentiable again);
    subscripts only k carries were summed out, so the gradient is constant along them.
    """

    def forward(self, *arrays, subscripts=(), output=""):
        self.subscripts, self.out_sub = subscripts, output
        return backend.xp_of(arrays[0]).einsum(",".join(subscripts) + "->" + output, *arrays)

    def backward(self, grad):
        grads = []
        for k, (t, sub) in enumerate(zip(self.inputs, self.subscripts)):
            if not self.needs_input_grad[k]:
                grads.append(None)
                continue
            others = [(s, x) for j, (s, x) in enumerate(zip(self.subscripts, self.inputs))
                      if j != k]
            seen = set(self.out_sub).union(*[set(s) for s, _ in others])
            kept = "".join(c for c in sub if c in seen)
            g = Einsum.apply(grad, *[x for _, x in others],
                             subscripts=(self.out_sub,) + tuple(s for s, _ in others),
                             output=kept)
            if kept != sub:  # broadcast along the subscripts summed out of operand k alone
                g = g.reshape(tuple(n if c in seen else 1 for c, n in zip(sub, t.shape)))
                g = g.expand(*t.shape)
            grads.append(g)
        return tuple(grads)


def _parse_einsum(equation, operands):
    op = "einsum"
    if not isinstance(equation, str):
        raise TypeError(f"{op}: the equation must be a string, got {type(equation).__name__}")
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    subs = lhs.split(",")
    if len(subs) != len(operands):
        raise ValueError(f"{op}: equation {equation!r} names {len(subs)} operands, got "
                         f"{len(operands)}")
    if "." in eq:
        # ellipsis: spell the broadcast dims with letters the equation does not use
        free = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in eq]
        widths = [t.ndim - (len(s) - 3) if "..." in s else 0 for s, t in zip(subs, operands)]
        width = max(widths)
        dims = "".join(free[:width])
        subs = [s.replace("...", dims[width - w:]) for s, w in zip(subs, widths)]
        rhs = rhs.replace("...", dims) if arrow else rhs
        if not arrow:
            counts = "".join(subs)
            rhs = dims + "".join(sorted(c for c in set(counts) if counts.count(c) == 1
                                        and c not in dims))
            arrow = "->"
    if not arrow:
        counts = "".join(subs)
        rhs = "".join(sorted(c for c in set(counts) if counts.count(c) == 1))
    sizes = {}
    for s, t in zip(subs, operands):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: operands must be Tensors, got {type(t).__name__}")
        if not s.isalpha() or len(s) != t.ndim:
            raise ValueError(f"{op}: subscripts {s!r} do not match an operand of shape "
                             f"{tuple(t.shape)} in {equation!r}")
        if len(set(s)) != len(s):
            raise ValueError(f"{op}: repeated subscript in {s!r} (a diagonal) is not "
                             f"supported in {equation!r}; take the diagonal first")
        for c, n in zip(s, t.shape):
            if sizes.setdefault(c, n) != n:
                raise ValueError(f"{op}: subscript {c!r} has size {sizes[c]} and {n} in "
                                 f"{equation!r} (operand shapes "
                                 f"{[tuple(o.shape) for o in operands]}); einsum does not "
                                 "broadcast named subscripts")
    if len(set(rhs)) != len(rhs) or not set(rhs) <= set(sizes):
        raise ValueError(f"{op}: output subscripts {rhs!r} must be distinct and appear in an "
                         f"input, in {equation!r}")
    return tuple(subs), rhs


def einsum(equation, *operands):
    """Einstein summation as torch.einsum: ``einsum('bij,bjk->bik', a, b)``; operands may
    also be passed as one list. Ellipsis ('...') stands for the same broadcast dims in every
    operand that has it.
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    subs, rhs = _parse_einsum(equation, operands)
    dtype = backend.result_dtype(*[t.dtype for t in operands])
    operands = [t if t.dtype == dtype else t.to(dtype) for t in operands]
    return Einsum.apply(*operands, subscripts=subs, output=rhs)
