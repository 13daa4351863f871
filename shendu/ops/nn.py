"""Neural-network primitives: linear, embedding, dropout, one_hot, layer_norm, batch_norm.

Signatures and semantics follow torch.nn.functional. Embedding's backward is a fused
scatter-add of rows; layer_norm and batch_norm share one fused normalization whose backward
is written in Tensor ops, so all of them are twice differentiable.
"""
from __future__ import annotations

import math

from shendu import backend, kernels, threads
from shendu.autograd import Function, is_grad_enabled, no_grad, unbroadcast
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


class Normalize(Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, with mean/var taken over ``dims``.

    Fused for speed: the caller passes the centered input and the biased variance (it needs
    them for running statistics), and the gradient accounts for both depending on x:
    dx = rstd (g' - mean(g') - xhat mean(g' xhat)), g' = g * weight. Measured by CPU time on
    (4096, 512) layer_norm and (32, 64, 32, 32) batch_norm, forward + backward, float32: about
    0.6x the composite's time. Without create_graph the backward runs on arrays in place;
    with it, the same formula is built from Tensor ops on x, so second derivatives are exact.
    """

    def forward(self, x, weight, bias, centered=None, var=None, dims=(), eps=1e-5, fused=None,
                rows=False):
        xp = backend.xp_of(x)
        self.dims, self.eps, self.rows = dims, eps, rows
        if fused is not None:
            # batch_norm (or, with ``rows``, layer_norm) ran the compiled kernel: fused =
            # (out, mean, rstd); xhat is not kept, the compiled backward recomputes it from x
            # in the same sweep
            out, self.saved_mean, self.saved_rstd = fused
            self.saved_xhat = None
            return out
        rstd = 1.0 / xp.sqrt(var + eps)
        centered *= rstd  # the caller hands over a fresh array: it becomes xhat
        self.saved_xhat, self.saved_rstd = centered, rstd
        out = centered * weight if weight is not None else centered.copy()
        if bias is not None:
            out += bias
        return out

    def backward(self, grad):
        if not is_grad_enabled():
            return self._backward_arrays(grad._data)
        x, weight, bias = self.inputs
        dims = self.dims
        centered = x - x.mean(dims, keepdim=True)
        rstd = ((centered * centered).mean(dims, keepdim=True) + self.eps).rsqrt()
        xhat = centered * rstd
        need = self.needs_input_grad
        grad_w = unbroadcast(grad * xhat, weight.shape) if need[1] else None
        grad_b = unbroadcast(grad, bias.shape) if need[2] else None
        grad_x = None
        if need[0]:
            g = grad * weight if weight is not None else grad
            grad_x = rstd * (g - g.mean(dims, keepdim=True)
                             - xhat * (g * xhat).mean(dims, keepdim=True))
        return grad_x, grad_w, grad_b

    def _backward_arrays(self, g):
        """The formula above on arrays, reusing two temporaries instead of ten."""
        x, weight, bias = self.inputs
        xp, xhat, dims = backend.xp_of(g), self.saved_xhat, self.dims
        need = self.needs_input_grad
        if xhat is None:
            return self._backward_compiled(g, x._data, weight, bias)
        g_xhat = g * xhat
        grad_w = Tensor._wrap(_sum_to(g_xhat, weight.shape)) if need[1] else None
        grad_b = Tensor._wrap(_sum_to(g, bias.shape)) if need[2] else None
        grad_x = None
        if need[0]:
            gw = g * weight._data if weight is not None else g.copy()
            if weight is not None:
                g_xhat *= weight._data
            mean_g, mean_gx = gw.mean(axis=dims, keepdims=True), g_xhat.mean(axis=dims,
                                                                               keepdims=True)
            gw -= mean_g
            gw -= xp.multiply(xhat, mean_gx, out=g_xhat)
            gw *= self.saved_rstd
            grad_x = Tensor._wrap(gw)
        return grad_x, grad_w, grad_b


    def _backward_compiled(self, g, x, weight, bias):
        """The same gradients from kernels.batch_norm_backward (channel dim 1) or, for a
        layer norm (``rows``), kernels.layer_norm_backward."""
        need = self.needs_input_grad
        if self.rows:
            width = math.prod(x.shape[d] for d in self.dims)
            xp = backend.xp_of(x)
            w = weight._data.reshape(width) if weight is not None else xp.ones(width, x.dtype)
            grad_x, sum_gx, sum_g = kernels.layer_norm_backward(
                xp.ascontiguousarray(g).reshape(-1, width), x.reshape(-1, width),
                self.saved_mean, self.saved_rstd, w, need[0])
            wrap = Tensor._wrap
            return (wrap(grad_x.reshape(x.shape)) if grad_x is not None else None,
                    wrap(sum_gx.astype(x.dtype).reshape(weight.shape)) if need[1] else None,
                    wrap(sum_g.astype(x.dtype).reshape(bias.shape)) if need[2] else None)
        channels = x.shape[1]
        w = weight._data.reshape(channels) if weight is not None else \
            kernels.np.ones(channels, dtype=x.dtype)
        grad_x, sum_gx, sum_g = kernels.batch_norm_backward(
            g, x, self.saved_mean, self.saved_rstd, w, need[0])
        wrap = Tensor._wrap
        grad_w = wrap(sum_gx.astype(x.dtype).reshape(weight.shape)) if need[1] else None
        grad_b = wrap(sum_g.astype(x.dtype).reshape(bias.shape)) if need[2] else None
        return (wrap(grad_x) if grad_x is not None else None), grad_w, grad_b


def _sum_to(a, shape):
    """Sum an array over the axes broadcasting stretched, back to ``shape``."""
    extra = a.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(i + extra for i, n in enumerate(shape)
                                       if n == 1 and a.shape[i + extra] != 1)
    return a.sum(axis=axes, keepdims=True).reshape(shape) if axes else a


def _moments(data, dims):
    """(x - mean, biased variance) over ``dims``; pairwise sums keep float32 accurate."""
    centered = data - data.mean(axis=dims, keepdims=True)
    return centered, (centered * centered).mean(axis=dims, keepdims=True)


def _affine_param(t, shape, op, what):
    if t is None:
        return None
    _check_tensor(t, op, what)
    if t.shape != shape:
        raise ValueError(f"{op}: {what} must have shape {shape}, got {t.shape}")
    return t


# layer norms of fewer elements keep the NumPy passes: a parallel launch costs 10-50 us
_LAYER_NORM_KERNEL_MIN = 1 << 14


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalize over the trailing ``normalized_shape`` dims of each sample (Ba et al., 2016).

    y = (x - E[x]) / sqrt(Var[x] + eps) * weight + bias, with the biased variance.

    Shape: input (*, *normalized_shape); weight and bias normalized_shape -> output as input.
    """
    op = "layer_norm"
    _check_tensor(input, op)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or input.ndim < k or input.shape[input.ndim - k:] != shape:
        raise ValueError(f"{op}: expected input (*, {', '.join(map(str, shape))}) for "
                         f"normalized_shape {shape}, got {input.shape}")
    weight = _affine_param(weight, shape, op, "weight")
    bias = _affine_param(bias, shape, op, "bias")
    dims = tuple(range(input.ndim - k, input.ndim))
    data = input._data
    if data.size >= _LAYER_NORM_KERNEL_MIN and data.flags.c_contiguous and \
            kernels.available(data):
        xp, width = backend.xp_of(data), math.prod(shape)
        w = weight._data.reshape(width) if weight is not None else xp.ones(width, data.dtype)
        b = bias._data.reshape(width) if bias is not None else xp.zeros(width, data.dtype)
        out, mean, rstd = kernels.layer_norm_forward(data.reshape(-1, width), w, b, eps)
        return Normalize.apply(input, weight, bias, dims=dims, eps=eps,
                               fused=(out.reshape(data.shape), mean, rstd), rows=True)
    centered, var = _moments(data, dims)
    return Normalize.apply(input, weight, bias, centered=centered, var=var, dims=dims, eps=eps)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Normalize each channel over the batch and spatial dims (Ioffe & Szegedy, 2015).

    Training: batch statistics (biased variance) normalize, and the running statistics are
    updated in place: r = (1 - momentum) r + momentum s, with the unbiased variance for
    running_var. Evaluation: the running statistics normalize. Concept: N3.2.6.

    Shape: input (N, C), (N, C, L) or (N, C, H, W); running stats, weight, bias (C,).
    """
    op = "batch_norm"
    _check_tensor(input, op)
    if input.ndim < 2:
        raise ValueError(f"{op}: expected input (N, C, *), got {input.shape}")
    channels = input.shape[1]
    shape = (channels,)
    for t, what in ((running_mean, "running_mean"), (running_var, "running_var")):
        _affine_param(t, shape, op, what)
    weight = _affine_param(weight, shape, op, "weight")
    bias = _affine_param(bias, shape, op, "bias")
    bshape = (1, channels) + (1,) * (input.ndim - 2)
    weight = None if weight is None else weight.reshape(bshape)
    bias = None if bias is None else bias.reshape(bshape)
    dims = (0,) + tuple(range(2, input.ndim))
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError(f"{op}: running_mean and running_var are required when "
                             "training=False")
        mean = running_mean.detach().reshape(bshape).to(input.dtype)
        rstd = (running_var.detach().reshape(bshape).to(input.dtype) + eps).rsqrt()
        out = (input - mean) * rstd
        out = out * weight if weight is not None else out
        return out + bias if bias is not None else out
    count = input.numel() // channels
    if count <= 1:
        raise ValueError(f"{op}: expected more than 1 value per channel when training, got "
                         f"input {input.shape}")
    data = input._data
    fused = None
    if kernels.available(data):
        xp = backend.xp_of(data)
        w = weight._data.reshape(channels) if weight is not None else xp.ones(channels, data.dtype)
        b = bias._data.reshape(channels) if bias is not None else xp.zeros(channels, data.dtype)
        out, mean64, var64 = kernels.batch_norm_forward(data, w, b, eps)
        mean, var = mean64.astype(data.dtype), var64.astype(data.dtype)
        fused = (out, mean64, 1.0 / xp.sqrt(var64 + eps))
        centered = None
    else:
        mean = data.mean(axis=dims, keepdims=True)
        centered = data - mean
        var = (centered * centered).mean(axis=dims, keepdims=True)
    with no_grad():
        if running_mean is not None:
            running_mean.mul_(1.0 - momentum).add_(mean.reshape(shape), alpha=momentum)
        if running_var is not None:
            unbiased = var.reshape(shape) * (count / (count - 1))
            running_var.mul_(1.0 - momentum).add_(unbiased, alpha=momentum)
    return Normalize.apply(input, weight, bias, centered=centered, var=var, dims=dims, eps=eps,
                           fused=fused)
