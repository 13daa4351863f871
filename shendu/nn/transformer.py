"""The Transformer (Concept: N5.1, N5.2; Vaswani et al. 2017, "Attention Is All You Need").

Encoder layer: x = norm1(x + SelfAttn(x)); x = norm2(x + FFN(x))            (post-norm)
           or: x = x + SelfAttn(norm1(x)); x = x + FFN(norm2(x))            (norm_first)
Decoder layer adds cross-attention to the encoder's output (``memory``) between the two.
FFN(x) = linear2(dropout(activation(linear1(x)))).

torch's classes, arguments, submodule names and mask conventions, so state_dicts load across
(``encoder.layers.0.self_attn.in_proj_weight``, ``decoder.norm.weight``, ...).
"""
from __future__ import annotations

import copy

from shendu import backend
from shendu.nn import functional as F
from shendu.nn import init
from shendu.nn.attention import MultiheadAttention
from shendu.nn.dropout import Dropout
from shendu.nn.linear import Linear
from shendu.nn.container import ModuleList
from shendu.nn.module import Module
from shendu.nn.normalization import LayerNorm
from shendu.tensor import Tensor


def _activation(activation, name):
    if isinstance(activation, str):
        if activation == "relu":
            return F.relu
        if activation == "gelu":
            return F.gelu
        raise ValueError(f"{name}: activation should be 'relu', 'gelu' or a callable, got "
                         f"{activation!r}")
    if not callable(activation):
        raise TypeError(f"{name}: activation should be 'relu', 'gelu' or a callable, got "
                        f"{type(activation).__name__}")
    return activation


def _check_seq(name, what, x, d_model, batch_first):
    """Refuse anything but (L, N, E) / (N, L, E) / (L, E) with E = d_model, by name."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected {what} to be a shendu.Tensor, got "
                        f"{type(x).__name__}")
    if x.ndim not in (2, 3) or x.shape[-1] != d_model:
        layout = "(N, L, E)" if batch_first else "(L, N, E)"
        raise ValueError(f"{name}: expected {what} of layout {layout} or (L, E) with "
                         f"E = d_model = {d_model}, got {x.shape}")


def generate_square_subsequent_mask(sz, device=None, dtype=None):
    """The causal mask: 0 on and below the diagonal, -inf above, so position i attends only
    to positions 0..i. Concept: N5.2.

    Shape: -> (sz, sz)
    """
    xp = backend.namespace(backend.normalize_device(device))
    dtype = backend.as_dtype(dtype) or backend.default_float
    mask = xp.triu(xp.full((sz, sz), -xp.inf, dtype=dtype), 1)
    return Tensor._wrap(mask)


class _Layer(Module):
    """The parts encoder and decoder layers share: the feed-forward block and the checks."""

    def _init_ffn(self, d_model, nhead, dim_feedforward, dropout, activation, batch_first,
                  norm_first, bias, kw):
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **kw)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **kw)
        self.norm_first = norm_first
        self.batch_first = batch_first
        self.activation = _activation(activation, self._name(d_model, nhead))

    def _name(self, d_model=None, nhead=None):
        if d_model is None:
            d_model, nhead = self.self_attn.embed_dim, self.self_attn.num_heads
        return f"{type(self).__name__}(d_model={d_model}, nhead={nhead})"

    def _ff_block(self, x, dropout):
        return dropout(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(x)


class TransformerEncoderLayer(_Layer):
    """Self-attention and a feed-forward network, each with a residual connection and layer
    norm. Concept: N5.1; with a causal ``src_mask`` (is_causal) it is a GPT block, N5.2.

    Args:
        d_model: E. nhead: attention heads (E divisible by nhead).
        dim_feedforward: hidden width of the FFN. Default: 2048.
        dropout: on the attention weights, the FFN hidden layer and both residual branches.
            Default: 0.1.
        activation: 'relu', 'gelu' or a callable. Default: relu.
        layer_norm_eps: Default: 1e-5. bias: biases in Linear and LayerNorm. Default: True.
        batch_first: (N, L, E) instead of (L, N, E). Default: False.
        norm_first: pre-norm (layer norm before each block) instead of post-norm.

    Shape:
        src (L, N, E), (N, L, E) with batch_first, or (L, E) -> output of the same shape;
        src_mask (L, L) or (N * nhead, L, L); src_key_padding_mask (N, L). Bool masks are
        True where attention is NOT allowed; float masks are added to the scores.

    Example:
        >>> layer = TransformerEncoderLayer(16, 4, 32, batch_first=True)
        >>> layer(shendu.randn(2, 5, 16)).shape
        (2, 5, 16)
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True,
                 device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, **kw)
        self._init_ffn(d_model, nhead, dim_feedforward, dropout, activation, batch_first,
                       norm_first, bias, kw)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        _check_seq(self._name(), "src", src, self.self_attn.embed_dim, self.batch_first)
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x), self.dropout2)
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x, self.dropout2))
        return x


class TransformerDecoderLayer(_Layer):
    """Masked self-attention, cross-attention to ``memory``, and a feed-forward network, each
    with a residual connection and layer norm. Concept: N5.1, N5.2.

    Args: as TransformerEncoderLayer.

    Shape:
        tgt (T, N, E) (or (N, T, E) with batch_first, or (T, E)); memory (S, N, E) ->
        output like tgt. tgt_mask (T, T); memory_mask (T, S); tgt_key_padding_mask (N, T);
        memory_key_padding_mask (N, S); or the (N * nhead, ., .) forms of the masks.
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True,
                 device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, **kw)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                 batch_first=batch_first, **kw)
        self._init_ffn(d_model, nhead, dim_feedforward, dropout, activation, batch_first,
                       norm_first, bias, kw)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        name, e = self._name(), self.self_attn.embed_dim
        _check_seq(name, "tgt", tgt, e, self.batch_first)
        _check_seq(name, "memory", memory, e, self.batch_first)
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask,
                                    memory_key_padding_mask, memory_is_causal)
            x = x + self._ff_block(self.norm3(x), self.dropout3)
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask,
                                               memory_is_causal))
            x = self.norm3(x + self._ff_block(x, self.dropout3))
        return x

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal):
        x = self.multihead_attn(x, mem, mem, attn_mask=attn_mask,
                                key_padding_mask=key_padding_mask, is_causal=is_causal,
                                need_weights=False)[0]
        return self.dropout2(x)


def _clones(layer, num_layers, name):
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"{name}: num_layers must be a positive int, got {num_layers!r}")
    if not isinstance(layer, Module):
        raise TypeError(f"{name}: expected a layer Module to copy, got {type(layer).__name__}")
    return ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])


class TransformerEncoder(Module):
    """A stack of ``num_layers`` independent deep copies of ``encoder_layer``, then ``norm``.
    Concept: N5.1.

    Args:
        encoder_layer: a TransformerEncoderLayer (copied; the original is not used).
        num_layers: N. norm: an optional final layer norm (pre-norm stacks need one).
        enable_nested_tensor, mask_check: torch's fast-path switches, accepted and ignored.

    Shape: as TransformerEncoderLayer; ``mask`` is the src_mask of every layer.
    """

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True,
                 mask_check=True):
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers, "TransformerEncoder")
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        output = src
        for layer in self.layers:
            output = layer(output, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                           is_causal=bool(is_causal))
        return output if self.norm is None else self.norm(output)


class TransformerDecoder(Module):
    """A stack of ``num_layers`` deep copies of ``decoder_layer``, then ``norm``.
    Concept: N5.1, N5.2.

    Shape: as TransformerDecoderLayer; the masks go to every layer.
    """

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers, "TransformerDecoder")
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        output = tgt
        for layer in self.layers:
            output = layer(output, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                           tgt_key_padding_mask=tgt_key_padding_mask,
                           memory_key_padding_mask=memory_key_padding_mask,
                           tgt_is_causal=bool(tgt_is_causal),
                           memory_is_causal=memory_is_causal)
        return output if self.norm is None else self.norm(output)


class Transformer(Module):
    """Encoder-decoder Transformer (Vaswani et al. 2017). Concept: N5.1, N5.2.

    Args:
        d_model: E. Default: 512. nhead: Default: 8.
        num_encoder_layers, num_decoder_layers: Default: 6 each.
        dim_feedforward: Default: 2048. dropout: Default: 0.1.
        activation: 'relu', 'gelu' or a callable. Default: relu.
        custom_encoder, custom_decoder: used instead of the built stacks when given.
        layer_norm_eps, batch_first, norm_first, bias: as TransformerEncoderLayer.

    Every parameter with more than one dim is re-initialized with xavier_uniform_ (torch).

    Shape:
        src (S, N, E), tgt (T, N, E) (batch first: (N, S, E), (N, T, E)) -> output (T, N, E);
        src_mask (S, S), tgt_mask (T, T), memory_mask (T, S); *_key_padding_mask (N, S|T).

    Example:
        >>> model = Transformer(16, 4, 1, 1, 32, batch_first=True)
        >>> model(shendu.randn(2, 7, 16), shendu.randn(2, 5, 16)).shape
        (2, 5, 16)
    """

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
                 dim_feedforward=2048, dropout=0.1, activation="relu", custom_encoder=None,
                 custom_decoder=None, layer_norm_eps=1e-5, batch_first=False, norm_first=False,
                 bias=True, device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        args = (d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                batch_first, norm_first, bias)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            self.encoder = TransformerEncoder(TransformerEncoderLayer(*args, **kw),
                                              num_encoder_layers,
                                              LayerNorm(d_model, layer_norm_eps, bias=bias, **kw))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            self.decoder = TransformerDecoder(TransformerDecoderLayer(*args, **kw),
                                              num_decoder_layers,
                                              LayerNorm(d_model, layer_norm_eps, bias=bias, **kw))
        self._reset_parameters()
        self.d_model = d_model
        self.nhead = nhead
        self.batch_first = batch_first

    def _reset_parameters(self):
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
                src_key_padding_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        name = f"Transformer(d_model={self.d_model}, nhead={self.nhead})"
        _check_seq(name, "src", src, self.d_model, self.batch_first)
        _check_seq(name, "tgt", tgt, self.d_model, self.batch_first)
        b = 0 if self.batch_first else 1
        if src.ndim != tgt.ndim or (src.ndim == 3 and src.shape[b] != tgt.shape[b]):
            raise ValueError(f"{name}: src {src.shape} and tgt {tgt.shape} must have the same "
                             f"batch size (batch_first={self.batch_first})")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz, device=None, dtype=None):
        """(sz, sz) float mask: -inf above the diagonal, 0 elsewhere. Concept: N5.2."""
        return generate_square_subsequent_mask(sz, device, dtype)

