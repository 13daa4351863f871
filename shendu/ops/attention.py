"""Scaled dot-product attention (Concept: N5.1; Vaswani et al. 2017, "Attention Is All You
Need") and its masks (Concept: N5.2).

    Attention(Q, K, V) = softmax(Q K^T * scale + mask) V,   scale = 1 / sqrt(E) by default

Composed of the library's differentiable ops (matmul, dropout) around one fused primitive,
``MaskedSoftmax``, so second derivatives are exact. Mask conventions follow torch:
``scaled_dot_product_attention`` takes bool masks with True = attend; the layers
(``nn.MultiheadAttention``) take bool masks with True = do NOT attend. Both reach
``attention`` as ``keep`` (a constant bool array, True = attend) and ``bias`` (a float Tensor
added to the scores, differentiable).
"""
from __future__ import annotations

import math

from shendu import backend
from shendu.autograd import Function
from shendu.tensor import Tensor


class MaskedSoftmax(Function):
    """softmax over the last dim with the positions where ``keep`` is False left out:
    y_j = keep_j e^{x_j - m} / sum_k keep_k e^{x_k - m}, m the row max over kept positions.

    Fused for stability and speed. A row with nothing to attend to (every position masked,
    or every score -inf) gives zeros, not NaN: torch's SDPA does the same (its safe softmax),
    and it keeps the gradient finite. Applying the mask inside the kernel saves the separate
    masked_fill pass. Backward, in Tensor ops on the saved output: y (g - sum(g y)); masked
    positions have y = 0 and so get no gradient.

    Shape: x (*, S), keep a bool array broadcastable to x (or None) -> y (*, S).
    """

    uses_inputs = False
    uses_output = True

    def forward(self, x, keep=None):
        xp = backend.xp_of(x)
        x = xp.where(keep, x, -math.inf) if keep is not None else x.copy()
        m = x.max(axis=-1, keepdims=True)
        # an all -inf row has max -inf; shifting it by 0 makes exp give 0 instead of NaN
        m[~xp.isfinite(m)] = 0
        x -= m
        xp.exp(x, out=x)
        s = x.sum(axis=-1, keepdims=True)
        s[s == 0] = 1
        x /= s
        return x

    def backward(self, grad):
        y = self.output
        return y * (grad - (grad * y).sum(-1, keepdim=True))


def masked_softmax(x, keep=None):
    """Softmax over the last dim of ``x`` restricted to positions where ``keep`` (a bool
    Tensor or array, True = attend) holds; fully masked rows give 0. Shape: x (*, S)."""
    if isinstance(keep, Tensor):
        keep = keep._data
    return MaskedSoftmax.apply(x, keep=keep)


def attention(query, key, value, keep=None, bias=None, dropout_p=0.0, scale=None,
              generator=None):
    """softmax(Q K^T * scale + bias, masked by keep) V; returns (output, weights).

    No validation: callers (``scaled_dot_product_attention``, ``nn.MultiheadAttention``)
    check shapes and masks. ``keep`` is a bool xp array (True = attend), ``bias`` a float
    Tensor; both broadcast to the scores (*, L, S). ``weights`` are the attention
    probabilities after dropout, as torch returns them.

    Shape: query (*, L, E), key (*, S, E), value (*, S, Ev) -> output (*, L, Ev),
    weights (*, L, S).
    """
    from shendu.ops.nn import dropout
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1])
    # scaling Q costs L*E multiplies against L*S for the scores
    scores = (query * scale) @ key.mT  # (*, L, S)
    if bias is not None:
        scores = scores + bias
    weights = MaskedSoftmax.apply(scores, keep=keep)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, True, generator)
    return weights @ value, weights


def causal_keep(xp, rows, cols):
    """The causal pattern as a bool array (rows, cols): True where col <= row, i.e. position
    i attends to positions 0..i (top-left aligned, as torch's is_causal). Concept: N5.2."""
    return xp.tril(xp.ones((rows, cols), dtype=bool))


def _check_qkv(query, key, value, op):
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
        if not backend.is_floating(t.dtype):
            raise TypeError(f"{op}: {name} must be a floating point tensor, got {t.dtype}")
        if t.ndim < 2:
            raise ValueError(f"{op}: {name} must have at least 2 dims (..., seq, features), "
                             f"got shape {t.shape}")
    if key.shape[-1] != query.shape[-1]:
        raise ValueError(f"{op}: query (..., L, E) and key (..., S, E) need the same E, got "
                         f"query {query.shape} and key {key.shape}")
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"{op}: key (..., S, E) and value (..., S, Ev) need the same S, got "
                         f"key {key.shape} and value {value.shape}")
    if not query.dtype == key.dtype == value.dtype:
        raise TypeError(f"{op}: query, key and value must have the same dtype, got "
                        f"{query.dtype}, {key.dtype} and {value.dtype}")


def _repeat_heads(t, groups):
    """Repeat each head ``groups`` times along dim -3 (torch's repeat_interleave)."""
    lead, heads, rest = t.shape[:-3], t.shape[-3], t.shape[-2:]
    t = t.unsqueeze(-3).expand(*lead, heads, groups, *rest)  # (*, Hk, g, S, E)
    return t.reshape(*lead, heads * groups, *rest)  # (*, Hk * g, S, E)


def _gqa(query, key, value, op):
    if query.ndim < 3 or key.ndim < 3 or value.ndim < 3:
        raise ValueError(f"{op}: enable_gqa needs a head dim (..., H, L, E); got query "
                         f"{query.shape}, key {key.shape}, value {value.shape}")
    hq, hk, hv = query.shape[-3], key.shape[-3], value.shape[-3]
    if hk != hv or hq % hk:
        raise ValueError(f"{op}: enable_gqa needs key and value to have the same number of "
                         f"heads, dividing query's {hq}; got {hk} and {hv}")
    return _repeat_heads(key, hq // hk), _repeat_heads(value, hq // hv)


def _batch_shape(op, query, key, value):
    from shendu.ops.elementwise import broadcast_shape
    try:
        return broadcast_shape(op, query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except RuntimeError:
        raise ValueError(f"{op}: the batch dims of query {query.shape}, key {key.shape} and "
                         f"value {value.shape} do not broadcast") from None


def _check_mask(attn_mask, scores_shape, query, op):
    """Split a torch-style SDPA mask into (keep, bias), refusing a shape that would not
    broadcast to the scores or would grow them."""
    from shendu.ops.elementwise import broadcast_shape
    if not isinstance(attn_mask, Tensor):
        raise TypeError(f"{op}: attn_mask must be a Tensor, got {type(attn_mask).__name__}")
    is_bool = attn_mask.dtype == backend.bool_
    if not is_bool and attn_mask.dtype != query.dtype:
        raise TypeError(f"{op}: attn_mask must be bool (True = attend) or have query's dtype "
                        f"{query.dtype} (added to the scores), got {attn_mask.dtype}")
    try:
        fits = broadcast_shape(op, attn_mask.shape, scores_shape) == scores_shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(f"{op}: attn_mask of shape {attn_mask.shape} does not broadcast to "
                         f"the attention scores (..., L, S) = {scores_shape}")
    return (attn_mask._data, None) if is_bool else (None, attn_mask)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False, *,
                                 generator=None):
    """softmax(Q K^T * scale + M) V, torch.nn.functional.scaled_dot_product_attention.

    Args:
        attn_mask: bool (True = may attend) or a float tensor added to the scores; it
            broadcasts to (..., L, S). A query row with no position to attend gives 0.
        dropout_p: dropout on the attention weights (applied whenever > 0, as torch does).
        is_causal: attend only to positions j <= i (the top-left aligned lower triangle);
            excludes attn_mask. Concept: N5.2.
        scale: factor on Q K^T; default 1 / sqrt(E).
        enable_gqa: grouped-query attention: key/value heads (dim -3) are repeated to match
            the query's.
        generator: (keyword, a shendu extension) draws the dropout mask.

    Concept: N5.1 (Vaswani et al. 2017).

    Shape:
        query (..., L, E), key (..., S, E), value (..., S, Ev) -> output (..., L, Ev)

    Example:
        >>> q = shendu.randn(2, 4, 5, 8)
        >>> scaled_dot_product_attention(q, q, q, is_causal=True).shape
        (2, 4, 5, 8)
    """
    op = "scaled_dot_product_attention"
    _check_qkv(query, key, value, op)
    if enable_gqa:
        key, value = _gqa(query, key, value, op)
    batch = _batch_shape(op, query, key, value)
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"{op}: dropout_p must be in [0, 1), got {dropout_p}")
    if scale is not None and not isinstance(scale, (int, float)):
        raise TypeError(f"{op}: scale must be a number or None, got {type(scale).__name__}")
    keep = bias = None
    if is_causal:
        if attn_mask is not None:
            raise ValueError(f"{op}: pass either attn_mask or is_causal=True, not both")
        keep = causal_keep(query._xp, query.shape[-2], key.shape[-2])
    elif attn_mask is not None:
        keep, bias = _check_mask(attn_mask, batch + (query.shape[-2], key.shape[-2]), query,
                                 op)
    out, _ = attention(query, key, value, keep, bias, dropout_p, scale, generator)
    return out
