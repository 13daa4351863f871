"""Multi-head attention (Concept: N5.1; Vaswani et al. 2017, "Attention Is All You Need").

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,
    head_i = softmax((Q W_i^Q)(K W_i^K)^T / sqrt(d_k) + mask) (V W_i^V)

torch's parameters, names, init and mask conventions, so state_dicts load across.
"""
from __future__ import annotations

from shendu import backend, creation
from shendu.nn import functional as F
from shendu.nn import init
from shendu.nn.linear import Linear
from shendu.nn.module import Module, Parameter
from shendu.ops.attention import attention
from shendu.tensor import Tensor


class MultiheadAttention(Module):
    """Multi-head scaled dot-product attention with learned projections. Concept: N5.1.

    Args:
        embed_dim: E, the model width (query features and output features).
        num_heads: h; E must be divisible by h (each head has E / h features).
        dropout: dropout on the attention weights while training. Default: 0.0.
        bias: learn in_proj_bias and out_proj.bias. Default: True.
        add_bias_kv: append a learned key and value (bias_k, bias_v) to the sequence.
        add_zero_attn: append a zero key and value after the heads are split.
        kdim, vdim: key and value features; default E. If either differs from E the input
            projections are separate: q_proj_weight (E, E), k_proj_weight (E, kdim),
            v_proj_weight (E, vdim); otherwise one in_proj_weight (3E, E).
        batch_first: inputs and output are (N, L, E) instead of (L, N, E). Default: False.

    Masks (torch's layer convention): a bool mask is True where attention is NOT allowed; a
    float mask is added to the scores. ``key_padding_mask`` (N, S) marks padded keys;
    ``attn_mask`` is (L, S) or (N * num_heads, L, S). A query with every key masked gets
    zero weights (torch gives NaN on its need_weights path, 0 in its SDPA path).

    Shape:
        query (L, N, E) or (N, L, E) with batch_first, or (L, E) unbatched; key (S, N, kdim);
        value (S, N, vdim) -> output like query; weights (N, L, S), or (N, num_heads, L, S)
        when average_attn_weights=False, or None when need_weights=False.

    Attributes:
        in_proj_weight: (3E, E), xavier_uniform_; in_proj_bias (3E,) zeros;
        out_proj: Linear(E, E) with its default weight init and a zero bias.

    Example:
        >>> mha = MultiheadAttention(16, 4, batch_first=True)
        >>> x = shendu.randn(2, 5, 16)
        >>> out, w = mha(x, x, x)
        >>> out.shape, w.shape
        ((2, 5, 16), (2, 5, 5))
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
                 add_zero_attn=False, kdim=None, vdim=None, batch_first=False, device=None,
                 dtype=None):
        super().__init__()
        for what, n in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
                raise ValueError(f"MultiheadAttention: {what} must be a positive int, got {n!r}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible "
                             f"by num_heads ({num_heads})")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be in [0, 1], got {dropout}")
        self.embed_dim = embed_dim
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        kw = {"device": device, "dtype": dtype}
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(creation.empty(3 * embed_dim, embed_dim, **kw))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = Parameter(creation.empty(embed_dim, embed_dim, **kw))
            self.k_proj_weight = Parameter(creation.empty(embed_dim, self.kdim, **kw))
            self.v_proj_weight = Parameter(creation.empty(embed_dim, self.vdim, **kw))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(creation.empty(3 * embed_dim, **kw))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, **kw)
        if add_bias_kv:
            self.bias_k = Parameter(creation.empty(1, 1, embed_dim, **kw))
            self.bias_v = Parameter(creation.empty(1, 1, embed_dim, **kw))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self):
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def _name(self):
        return f"MultiheadAttention(embed_dim={self.embed_dim}, num_heads={self.num_heads})"

    def extra_repr(self):
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"dropout={self.dropout}, batch_first={self.batch_first}")

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        """Attend from ``query`` to ``key``/``value``; returns (output, weights or None).

        ``is_causal`` is torch's hint that ``attn_mask`` is the causal mask: it requires
        ``attn_mask`` (make one with ``Transformer.generate_square_subsequent_mask``).
        """
        name = self._name()
        batched = self._check_inputs(name, query, key, value)
        if is_causal and attn_mask is None:
            raise RuntimeError(f"{name}: is_causal=True needs attn_mask (is_causal is only a "
                               "hint that attn_mask is causal); use "
                               "Transformer.generate_square_subsequent_mask(L)")
        b = 0 if self.batch_first else 1  # the batch axis of the inputs
        if not batched:
            query, key, value = query.unsqueeze(b), key.unsqueeze(b), value.unsqueeze(b)
            if key_padding_mask is not None:
                _check_mask(name, "key_padding_mask", key_padding_mask, 1)
                key_padding_mask = key_padding_mask.unsqueeze(0)
        n, tgt_len, src_len = query.shape[b], query.shape[1 - b], key.shape[1 - b]
        keep, bias = _merge_masks(name, query, key_padding_mask, attn_mask,
                                  (n, self.num_heads, tgt_len, src_len))
        q, k, v = self._project(query, key, value)
        q, k, v = (self._heads(t) for t in (q, k, v))  # (N, H, L or S, D)
        keep, bias, k, v = self._extend_keys(keep, bias, k, v)
        dropout_p = self.dropout if self.training else 0.0
        out, weights = attention(q, k, v, keep, bias, dropout_p)  # (N, H, L, D), (N, H, L, S)
        # (N, H, L, D) -> (L, N, H, D) or (N, L, H, D) -> (..., E)
        out = out.permute(0, 2, 1, 3) if self.batch_first else out.permute(2, 0, 1, 3)
        out = self.out_proj(out.reshape(*out.shape[:2], self.embed_dim))
        if not batched:
            out = out.squeeze(b)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(1)  # (N, L, S)
        return out, (weights if batched else weights.squeeze(0))

    def _check_inputs(self, name, query, key, value):
        for what, t in (("query", query), ("key", key), ("value", value)):
            if not isinstance(t, Tensor):
                raise TypeError(f"{name}: expected {what} to be a shendu.Tensor, got "
                                f"{type(t).__name__}")
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"{name}: query, key and value must all be 3-D (batched) or all "
                             f"2-D (unbatched), got {query.shape}, {key.shape} and "
                             f"{value.shape}")
        layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
        for what, t, e in (("query", query, self.embed_dim), ("key", key, self.kdim),
                           ("value", value, self.vdim)):
            if t.shape[-1] != e:
                raise ValueError(f"{name}: expected {what} of layout {layout} with "
                                 f"{e} features, got {t.shape}")
        if key.shape[:-1] != value.shape[:-1]:
            raise ValueError(f"{name}: key {key.shape} and value {value.shape} must share "
                             "their sequence and batch dims")
        b = 0 if self.batch_first else 1
        if query.ndim == 3 and key.shape[b] != query.shape[b]:
            raise ValueError(f"{name}: query {query.shape} and key {key.shape} have different "
                             f"batch sizes (layout {layout})")
        return query.ndim == 3

    def _project(self, query, key, value):
        e = self.embed_dim
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            # three GEMMs on row slices of W: their backward touches (3E, E), not (N*L, 3E)
            weights = (w[:e], w[e:2 * e], w[2 * e:])
        else:
            weights = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        bias = self.in_proj_bias
        biases = (None,) * 3 if bias is None else (bias[:e], bias[e:2 * e], bias[2 * e:])
        return tuple(F.linear(x, w, b) for x, w, b in zip((query, key, value), weights, biases))

    def _heads(self, t):
        """(L, N, E) or (N, L, E) -> (N, H, L, D)."""
        t = t.reshape(*t.shape[:2], self.num_heads, self.head_dim)  # (., ., H, D)
        return t.permute(0, 2, 1, 3) if self.batch_first else t.permute(1, 2, 0, 3)

    def _extend_keys(self, keep, bias, k, v):
        """add_bias_kv and add_zero_attn: extra key/value positions every query may attend."""
        n = k.shape[0]
        extra = []
        if self.bias_k is not None:
            # (1, 1, E) -> (1, H, 1, D) -> (N, H, 1, D)
            bk, bv = (p.reshape(1, 1, self.num_heads, self.head_dim).permute(0, 2, 1, 3)
                      .expand(n, -1, -1, -1) for p in (self.bias_k, self.bias_v))
            extra.append((bk, bv))
        if self.add_zero_attn:
            zeros = Tensor._wrap(k._xp.zeros((n, self.num_heads, 1, self.head_dim), k.dtype))
            extra.append((zeros, zeros))
        for ek, ev in extra:
            k, v = _cat(k, ek), _cat(v, ev)  # (N, H, S + 1, D)
            keep = None if keep is None else _pad_last(keep, True)
            bias = None if bias is None else F.pad(bias, (0, 1))
        return keep, bias, k, v


def _cat(a, b):
    from shendu.ops.shape import cat
    return cat([a, b], dim=2)


def _pad_last(keep, value):
    """Append one column of ``value`` to a bool array's last dim."""
    xp = backend.xp_of(keep)
    return xp.concatenate([keep, xp.full(keep.shape[:-1] + (1,), value)], axis=-1)


def _check_mask(name, what, mask, ndim_ok, shape=None):
    if not isinstance(mask, Tensor):
        raise TypeError(f"{name}: {what} must be a Tensor, got {type(mask).__name__}")
    if mask.dtype != backend.bool_ and not backend.is_floating(mask.dtype):
        raise TypeError(f"{name}: only bool and floating types of {what} are supported, got "
                        f"{mask.dtype}")
    bad = mask.shape not in shape if shape is not None else mask.ndim != ndim_ok
    if bad:
        expected = " or ".join(map(str, shape)) if shape is not None else f"{ndim_ok}-D"
        raise ValueError(f"{name}: expected {what} of shape {expected}, got {mask.shape}")


def _split(mask, dtype):
    """A torch layer mask -> (keep array, None) for bool (True = masked out), or
    (None, float Tensor) for an additive mask."""
    if mask.dtype == backend.bool_:
        return ~mask._data, None
    return None, mask.to(dtype)


def _merge_masks(name, query, key_padding_mask, attn_mask, scores_shape):
    """Combine key_padding_mask (N, S) and attn_mask (L, S) / (N*H, L, S) into one keep
    array and one additive bias, both broadcasting to the scores (N, H, L, S)."""
    n, h, tgt_len, src_len = scores_shape
    keep = bias = None
    if key_padding_mask is not None:
        _check_mask(name, "key_padding_mask", key_padding_mask, 2, [(n, src_len)])
        keep, bias = _split(key_padding_mask.reshape(n, 1, 1, src_len), query.dtype)
    if attn_mask is not None:
        _check_mask(name, "attn_mask", attn_mask, 2,
                    [(tgt_len, src_len), (n * h, tgt_len, src_len)])
        if attn_mask.ndim == 3:
            attn_mask = attn_mask.reshape(n, h, tgt_len, src_len)
        k2, b2 = _split(attn_mask, query.dtype)
        if k2 is not None:
            keep = k2 if keep is None else keep & k2
        if b2 is not None:
            bias = b2 if bias is None else bias + b2
    return keep, bias
