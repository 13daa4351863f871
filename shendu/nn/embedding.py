"""Embedding: a lookup table of learned vectors indexed by integer ids."""
from __future__ import annotations

from shendu import autograd, creation
from shendu.nn import functional as F
from shendu.nn import init
from shendu.nn._checks import check_tensor
from shendu.nn.module import Module, Parameter
from shendu.tensor import Tensor


class Embedding(Module):
    """out[..., :] = weight[input[...], :].

    Args:
        num_embeddings: size of the table (ids in [0, num_embeddings)).
        embedding_dim: length E of each vector.
        padding_idx: this row is initialised to zeros and gets no gradient (negative counts
            from the end). Default: None.
        max_norm, norm_type, scale_grad_by_freq, sparse: torch's arguments, kept for the
            signature; renormalization, frequency scaling and sparse gradients are not
            supported, so max_norm must be None and the flags False.

    Shape:
        input (*) of int64 ids -> output (*, E)

    Attributes:
        weight: (num_embeddings, embedding_dim), init N(0, 1), the padding_idx row zero.
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None,
                 norm_type=2.0, scale_grad_by_freq=False, sparse=False, _weight=None,
                 _freeze=False, *, device=None, dtype=None):
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx must be within num_embeddings "
                                 f"[{-num_embeddings}, {num_embeddings}), got {padding_idx}")
            padding_idx %= num_embeddings
        if max_norm is not None or scale_grad_by_freq or sparse:
            raise ValueError(f"Embedding: max_norm, scale_grad_by_freq and sparse are not "
                             f"supported (got max_norm={max_norm}, scale_grad_by_freq="
                             f"{scale_grad_by_freq}, sparse={sparse})")
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        self.sparse = sparse
        if _weight is None:
            self.weight = Parameter(creation.empty(num_embeddings, embedding_dim,
                                                   device=device, dtype=dtype),
                                    requires_grad=not _freeze)
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: _weight has shape {tuple(_weight.shape)}, "
                                 f"expected ({num_embeddings}, {embedding_dim})")
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with autograd.no_grad():
                self.weight[self.padding_idx] = 0.0

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None,
                        norm_type=2.0, scale_grad_by_freq=False, sparse=False):
        """An Embedding whose weight is ``embeddings`` (2-D); frozen unless freeze=False."""
        if not isinstance(embeddings, Tensor) or embeddings.ndim != 2:
            raise ValueError("Embedding.from_pretrained: embeddings must be a 2-D Tensor, got "
                             f"{getattr(embeddings, 'shape', type(embeddings).__name__)}")
        rows, cols = embeddings.shape
        return cls(rows, cols, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=embeddings, _freeze=freeze)

    def forward(self, input):
        name = f"Embedding({self.num_embeddings}, {self.embedding_dim})"
        check_tensor(name, input)
        if input.dtype.kind not in "iu":
            raise TypeError(f"{name}: expected input of integer ids (int64), got dtype "
                            f"{input.dtype}")
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm,
                           self.norm_type, self.scale_grad_by_freq, self.sparse)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq is not False:
            s += f", scale_grad_by_freq={self.scale_grad_by_freq}"
        if self.sparse is not False:
            s += ", sparse=True"
        return s
