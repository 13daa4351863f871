"""Neural-network primitives: linear, embedding, dropout, one_hot (layer_norm and batch_norm
are in shendu.ops.normalization).

Signatures and semantics follow torch.nn.functional. Embedding's backward is a fused
scatter-add of rows.
"""
from __future__ import annotations

from shendu import backend, threads
from shendu.autograd import Function
from shendu.tensor import Tensor


def _check_tensor(x, op, what="input", floating=True):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: {what} must be a Tensor, got {type(x).__name__}")
    if floating and not backend.is_floating(x.dtype):
        raise TypeError(f"{op}: {what} must be a floating point tensor, got {x.dtype}")


def linear(input, weight, bias=None):
    """Affine map y = x W^T + b (Concept: N2.2).

    Shape:
        input (*, in_features), weight (out_features, in_features), bias (out_features,)
        -> output (*, out_features).
    """
    op = "linear"
    _check_tensor(input, op)
    _check_tensor(weight, op, "weight")
    if weight.ndim != 2:
        raise ValueError(f"{op}: weight must be 2-D (out_features, in_features), got "
                         f"{weight.shape}")
    out_features, in_features = weight.shape
    if input.ndim == 0 or input.shape[-1] != in_features:
        raise ValueError(f"{op}: expected input (*, {in_features}) for weight {weight.shape}, "
                         f"got {input.shape}")
    if bias is not None:
        _check_tensor(bias, op, "bias")
        if bias.shape != (out_features,):
            raise ValueError(f"{op}: bias must have shape ({out_features},), got {bias.shape}")
    lead = input.shape[:-1]
    # one 2-D product instead of a batched one keeps weight's gradient a single GEMM
    flat = input.reshape(-1, in_features) if input.ndim > 2 else input  # (N*, in)
    if (input.ndim >= 2 and weight.dtype == input.dtype and weight.device == input.device
            and (bias is None or (bias.dtype == input.dtype and bias.device == input.device))):
        out = Linear.apply(flat, weight, bias)  # (N*, out)
    else:  # mixed dtypes or devices: the composed ops promote or raise as matmul and add do
        out = flat @ weight.mT
        if bias is not None:
            out = out + bias
    return out.reshape(lead + (out_features,)) if input.ndim > 2 else out


class Linear(Function):
    """x (N, in) @ weight (out, in)^T + bias (out,) -> (N, out) as one graph node.

    The composed form (transpose, matmul, add) recorded three nodes and handed the weight and
    bias gradients to the leaves as views (a transpose, a reshape of a sum), which
    autograd's accumulation then had to copy: 9% of an MLP step. Here the gradients are fresh
    arrays, g^T x as torch computes it, and g summed over the batch. The backward is made of
    Tensor ops, so it is twice differentiable.
    """

    def forward(self, x, weight, bias):
        out = threads.matmul(x, weight.T)
        if bias is not None:
            out += bias  # the same rounding as out + bias, without a second array
        return out

    def backward(self, grad):
        x, weight, bias = self.inputs
        needs = self.needs_input_grad
        grad_x = grad @ weight if needs[0] else None
        grad_w = grad.mT @ x if needs[1] else None
        grad_b = grad.sum(dim=0) if bias is not None and needs[2] else None
        return grad_x, grad_w, grad_b


class Embedding(Function):
    """Row lookup weight[indices]; the backward scatter-adds rows (zero for padding_idx)."""

    uses_inputs = False

    def forward(self, weight, indices=None, padding_idx=None):
        self.saved_indices, self.num_rows = indices, weight.shape[0]
        self.padding_idx = padding_idx
        return weight[indices]

    def backward(self, grad):
        return EmbeddingGrad.apply(grad, indices=self.saved_indices, num_rows=self.num_rows,
                                   padding_idx=self.padding_idx)


class EmbeddingGrad(Function):
    """zeros(num_rows, E) with each grad row added at its index: Embedding's adjoint.

    One bincount over (row * E + column) keys: measured faster than np.add.at (11 vs 14 ms
    for 4096 lookups of 256-wide rows from 10000, 1 vs 4 ms for 1000 rows) and it
    accumulates in float64.
    """

    uses_inputs = False

    def forward(self, grad, indices=None, num_rows=0, padding_idx=None):
        xp = backend.xp_of(grad)
        self.saved_indices, self.padding_idx = indices, padding_idx
        width = grad.shape[-1]
        keys = (indices.reshape(-1, 1) * width + xp.arange(width)).reshape(-1)
        out = xp.bincount(keys, weights=grad.reshape(-1), minlength=num_rows * width)
        out = out.reshape(num_rows, width).astype(grad.dtype, copy=False)
        if padding_idx is not None:
            out[padding_idx] = 0
        return out

    def backward(self, grad):
        rows = Embedding.apply(grad, indices=self.saved_indices)
        if self.padding_idx is None:
            return rows
        keep = backend.xp_of(self.saved_indices).expand_dims(
            self.saved_indices != self.padding_idx, -1)
        return rows * Tensor._wrap(keep.astype(grad.dtype))


def embedding(input, weight, padding_idx=None):
    """Look up rows of ``weight``: out[..., :] = weight[input[...], :].

    The row at ``padding_idx`` gets no gradient, as in torch.

    Shape:
        input (*) int64, weight (num_embeddings, E) -> output (*, E).
    """
    op = "embedding"
    _check_tensor(input, op, floating=False)
    _check_tensor(weight, op, "weight")
    if input.dtype.kind not in "iu":
        raise TypeError(f"{op}: input must be an integer (int64) tensor of indices, got "
                        f"{input.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"{op}: weight must be 2-D (num_embeddings, embedding_dim), got "
                         f"{weight.shape}")
    rows = weight.shape[0]
    if padding_idx is not None:
        if not -rows <= padding_idx < rows:
            raise ValueError(f"{op}: padding_idx {padding_idx} must be within "
                             f"[{-rows}, {rows}) for num_embeddings={rows}")
        padding_idx %= rows
    data = input._data
    if data.size and (data.min() < 0 or data.max() >= rows):
        bad = data[(data < 0) | (data >= rows)].reshape(-1)[0]
        raise IndexError(f"{op}: index {int(bad)} is out of range for num_embeddings={rows} "
                         f"(expected 0 <= index < {rows}); input shape {input.shape}")
    return Embedding.apply(weight, indices=data, padding_idx=padding_idx)


class Dropout(Function):
    """x * mask, where mask holds 0 or 1 / (1 - p); backward reuses the same mask."""

    uses_inputs = False

    def forward(self, x, mask=None):
        self.saved_mask = mask
        return x * mask

    def backward(self, grad):
        return grad * Tensor._wrap(self.saved_mask)


def dropout(input, p=0.5, training=True, generator=None):
    """Inverted dropout: zero each element with probability p, scale survivors by 1/(1-p).

    The expectation is unchanged, so evaluation (training=False) is the identity and returns
    ``input`` itself. The mask comes from ``generator`` (the device's default generator when
    None). Concept: N3.2.5 (Srivastava et al., 2014).

    Shape: input (*) -> output (*).
    """
    op = "dropout"
    _check_tensor(input, op)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: probability p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    return Dropout.apply(input, mask=_dropout_mask(input, p, input.shape, generator, op))


def _dropout_mask(input, p, shape, generator, op):
    """0 with probability p, else 1 / (1 - p), of ``shape`` (which broadcasts to input's)."""
    xp = input._xp
    if p == 1.0:
        return xp.zeros(shape, dtype=input.dtype)
    generator = backend.generator_for(generator, input.device, op)
    keep = generator.random(shape, input.dtype) >= p
    mask = keep.astype(input.dtype)
    mask *= 1.0 / (1.0 - p)
    return mask


def channel_dropout(input, p=0.5, training=True, generator=None, op="dropout2d"):
    """Dropout of whole channels: each (sample, channel) plane is zeroed with probability p,
    survivors scaled by 1/(1-p) (Tompson et al. 2015: neighbouring pixels are correlated, so
    element-wise dropout barely regularises feature maps).

    Shape: input (N, C, *) -> the same; the mask is (N, C, 1, ...).
    """
    _check_tensor(input, op)
    if input.ndim < 2:
        raise ValueError(f"{op}: expected input (N, C, *) with at least 2 dims, got "
                         f"{input.shape}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: probability p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    shape = input.shape[:2] + (1,) * (input.ndim - 2)
    return Dropout.apply(input, mask=_dropout_mask(input, p, shape, generator, op))


def one_hot(tensor, num_classes=-1):
    """Encode class indices as one-hot rows: out[..., c] = 1 if tensor[...] == c else 0.

    Shape: tensor (*) int64 -> output (*, num_classes) int64; num_classes=-1 uses max + 1.
    """
    op = "one_hot"
    _check_tensor(tensor, op, "tensor", floating=False)
    if tensor.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected an integer (int64) tensor of class indices, got "
                        f"{tensor.dtype}")
    data, xp = tensor._data, tensor._xp
    if num_classes == -1:
        if data.size == 0:
            raise ValueError(f"{op}: cannot infer num_classes from an empty tensor; pass it")
        num_classes = int(data.max()) + 1
    if data.size and data.min() < 0:
        raise ValueError(f"{op}: class values must be non-negative, got {int(data.min())}")
    if data.size and data.max() >= num_classes:
        raise ValueError(f"{op}: class values must be smaller than num_classes={num_classes}, "
                         f"got {int(data.max())}")
    out = xp.expand_dims(data, -1) == xp.arange(num_classes)
    return Tensor._wrap(out.astype(backend.int64))
