"""Positional encodings: order information for attention, which is permutation-equivariant
without them (Concept: N5.1).

Both modules add a (L, E) table of position vectors to the input and apply dropout; the
sinusoidal table is fixed (Vaswani et al. 2017, sec. 3.5) and works for any length up to
``max_len``; the learned one is a trainable table as in GPT (Radford et al. 2018).
"""
from __future__ import annotations

import math

from shendu import backend, creation
from shendu.nn import init
from shendu.nn._checks import check_input, check_tensor
from shendu.nn.dropout import Dropout
from shendu.nn.module import Module, Parameter
from shendu.tensor import Tensor


def sinusoidal_table(max_len, d_model, dtype=None, device=None):
    """PE[pos, 2i] = sin(pos / 10000^(2i / d_model)), PE[pos, 2i + 1] = cos(same angle).

    An odd d_model keeps the first d_model // 2 cosines. Computed in float64 and cast, so the
    float32 table is the correctly rounded one. Concept: N5.1.

    Shape: -> (max_len, d_model)
    """
    xp = backend.namespace(backend.normalize_device(device))
    position = xp.arange(max_len, dtype=backend.float64)[:, None]  # (L, 1)
    # 10000^(-2i/d) as exp(-2i ln(10000) / d), the form of torch's tutorial
    div_term = xp.exp(xp.arange(0, d_model, 2, dtype=backend.float64)
                      * (-math.log(10000.0) / d_model))  # (ceil(d/2),)
    angle = position * div_term  # (L, ceil(d/2))
    pe = xp.zeros((max_len, d_model), dtype=backend.float64)
    pe[:, 0::2] = xp.sin(angle)
    pe[:, 1::2] = xp.cos(angle)[:, : d_model // 2]
    return Tensor._wrap(pe.astype(backend.as_dtype(dtype) or backend.default_float))


class _AddPositions(Module):
    """Shared forward: x + table[:L] on the sequence axis, then dropout."""

    def _add(self, input, table, name):
        check_tensor(name, input)
        layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
        seq = 1 if self.batch_first else 0
        ok = input.ndim in (2, 3) and input.shape[-1] == self.d_model
        check_input(name, input, ok, f"{layout} or (L, E) with E = {self.d_model}")
        length = input.shape[seq if input.ndim == 3 else 0]
        if length > self.max_len:
            raise ValueError(f"{name}: sequence length {length} exceeds max_len "
                             f"{self.max_len} (input {input.shape})")
        pos = table[:length]  # (L, E)
        if input.ndim == 3 and not self.batch_first:
            pos = pos.unsqueeze(1)  # (L, 1, E)
        return self.dropout(input + pos)


class PositionalEncoding(_AddPositions):
    """Adds the fixed sinusoidal encoding: y = dropout(x + PE[:L]). Concept: N5.1.

    PE[pos, 2i] = sin(pos / 10000^(2i / d_model)), PE[pos, 2i + 1] = cos(same); each
    dimension is a sinusoid of a different wavelength (2 pi to 10000 * 2 pi), so PE[pos + k]
    is a linear function of PE[pos] (Vaswani et al. 2017).

    Args:
        d_model: E.
        max_len: longest sequence accepted. Default: 5000.
        dropout: dropout on the sum. Default: 0.0.
        batch_first: input (N, L, E) instead of (L, N, E). Default: False (torch's layout).

    Shape:
        input (L, N, E), (N, L, E) with batch_first, or (L, E) -> output of the same shape

    Attributes:
        pe: (max_len, d_model) buffer, not saved in the state_dict (it is recomputed).

    Example:
        >>> PositionalEncoding(16)(shendu.zeros(10, 2, 16)).shape
        (10, 2, 16)
    """

    def __init__(self, d_model, max_len=5000, dropout=0.0, batch_first=False, *, device=None,
                 dtype=None):
        super().__init__()
        self.d_model, self.max_len, self.batch_first = d_model, max_len, batch_first
        self.dropout = Dropout(dropout)
        self.register_buffer("pe", sinusoidal_table(max_len, d_model, dtype, device),
                             persistent=False)

    def forward(self, input):
        return self._add(input, self.pe.to(input.dtype), f"PositionalEncoding({self.d_model})")

    def extra_repr(self):
        return f"{self.d_model}, max_len={self.max_len}, batch_first={self.batch_first}"


class LearnedPositionalEmbedding(_AddPositions):
    """Adds a learned position vector: y = dropout(x + W[:L]) (GPT's wpe). Concept: N5.1.

    The table is an Embedding over positions 0..max_len-1: its state_dict ({'weight'})
    loads into ``torch.nn.Embedding(max_len, d_model)``.

    Args:
        max_len: number of positions (the context length).
        d_model: E.
        dropout: dropout on the sum. Default: 0.0.
        batch_first: input (N, L, E) instead of (L, N, E). Default: False.

    Shape:
        input (L, N, E), (N, L, E) with batch_first, or (L, E) -> output of the same shape

    Attributes:
        weight: (max_len, d_model), init N(0, 1) as nn.Embedding.
    """

    def __init__(self, max_len, d_model, dropout=0.0, batch_first=False, *, device=None,
                 dtype=None):
        super().__init__()
        self.d_model, self.max_len, self.batch_first = d_model, max_len, batch_first
        self.weight = Parameter(creation.empty(max_len, d_model, device=device, dtype=dtype))
        self.dropout = Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self):
        init.normal_(self.weight)

    def forward(self, input):
        name = f"LearnedPositionalEmbedding({self.max_len}, {self.d_model})"
        return self._add(input, self.weight, name)

    def extra_repr(self):
        return f"{self.max_len}, {self.d_model}, batch_first={self.batch_first}"

