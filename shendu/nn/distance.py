"""Similarity layers: CosineSimilarity over ``F.cosine_similarity``.

Shape: x1, x2 (*) broadcastable -> the broadcast shape without ``dim``.
"""
from __future__ import annotations

from shendu.nn import functional as F
from shendu.nn._checks import check_tensor
from shendu.nn.module import Module


class CosineSimilarity(Module):
    """x1 . x2 / (max(||x1||, eps) max(||x2||, eps)) along ``dim``.

    Args: dim (default 1), eps (default 1e-8).
    """

    def __init__(self, dim=1, eps=1e-8):
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1, x2):
        check_tensor(f"CosineSimilarity(dim={self.dim})", x1, "x1")
        check_tensor(f"CosineSimilarity(dim={self.dim})", x2, "x2")
        return F.cosine_similarity(x1, x2, self.dim, self.eps)
