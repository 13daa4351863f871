"""Sampling the next token from logits, shared by the language models' ``generate``.

Sampling is not differentiable, so it works on the raw xp arrays of the logits; every random
draw goes through an explicit ``shendu.Generator`` (house rule 9).
"""
from __future__ import annotations

import math

from shendu import backend
from shendu.tensor import Tensor


def check_sampling(owner, max_new_tokens, temperature, top_k):
    """Validate ``generate``'s arguments, naming ``owner`` in the error."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) \
            or max_new_tokens < 0:
        raise ValueError(f"{owner}.generate: max_new_tokens must be an int >= 0, got "
                         f"{max_new_tokens!r}")
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"{owner}.generate: temperature must be a number > 0, got "
                         f"{temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)
                              or top_k < 1):
        raise ValueError(f"{owner}.generate: top_k must be None or an int >= 1, got {top_k!r}")


def check_prompt(owner, idx, vocab_size):
    """``idx`` must be a (B, T) integer Tensor with T >= 1 and ids in [0, vocab_size)."""
    if not isinstance(idx, Tensor):
        raise TypeError(f"{owner}: expected idx to be a Tensor of token ids, got "
                        f"{type(idx).__name__}")
    if idx.ndim != 2 or idx.shape[1] == 0 or idx.dtype.kind not in "iu":
        raise ValueError(f"{owner}: expected idx (B, T) of integer token ids with T >= 1, got "
                         f"shape {tuple(idx.shape)} and dtype {idx.dtype}")
    if idx._data.min() < 0 or idx._data.max() >= vocab_size:
        raise ValueError(f"{owner}: token ids must lie in [0, {vocab_size}), got values from "
                         f"{int(idx._data.min())} to {int(idx._data.max())}")


def sample_next(logits, temperature=1.0, top_k=None, generator=None):
    """Draw one token per row from softmax(logits / temperature), keeping the top_k logits.

    Inverse-CDF sampling: one uniform u per row from ``generator`` picks the first id whose
    cumulative probability exceeds u * total (the total absorbs rounding in the sum).

    Shape:
        logits (B, V) -> (B, 1) int64
    """
    x = logits._data
    xp = backend.xp_of(x)
    z = x / temperature
    vocab = z.shape[-1]
    if top_k is not None and top_k < vocab:
        kth = xp.partition(z, vocab - top_k, axis=-1)[:, vocab - top_k:vocab - top_k + 1]
        z = xp.where(z < kth, -math.inf, z)  # ties with the k-th value are all kept, as torch
    z = z - z.max(axis=-1, keepdims=True)
    cdf = xp.cumsum(xp.exp(z), axis=-1)  # (B, V)
    gen = backend.generator_for(generator, backend.device_of(x), "sample")
    u = gen.random((z.shape[0], 1), z.dtype) * cdf[:, -1:]  # (B, 1)
    ids = xp.minimum((cdf <= u).sum(axis=-1, keepdims=True), vocab - 1)
    return Tensor._wrap(ids.astype(backend.int64))
