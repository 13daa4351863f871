"""Sanity checks for attribution maps (Adebayo et al. 2018): a map that explains a model must
change when the model's weights are replaced by random ones.

Concept: N6.2 (understanding a model through its important pixels, and checking the tools).
The claim it measures: saliency maps of a trained model differ from those of the same
architecture with random weights (low rank correlation).
"""
from __future__ import annotations

import copy

from shendu.autograd import no_grad
from shendu.tensor import Tensor


def randomized_copy(model, generator=None):
    """A deep copy of ``model`` with every parameter redrawn from N(0, s^2), s the standard
    deviation of that parameter's trained values (so activations keep their scale); buffers
    (e.g. BatchNorm statistics) are kept. Adebayo et al.'s full ("independent")
    randomisation."""
    from shendu import randn
    clone = copy.deepcopy(model)
    with no_grad():
        for p in clone.parameters():
            scale = float(p.std().item()) if p.numel() > 1 else 0.0
            p.copy_(randn(*p.shape, dtype=p.dtype, device=p.device, generator=generator) * scale)
    return clone


def rank_correlation(a, b) -> Tensor:
    """Spearman rank correlation of each sample's map in ``a`` with the same sample's in ``b``.

    Shape:
        a, b (N, ...) -> (N,) in [-1, 1].
    """
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"rank_correlation: maps must have one shape, got {a.shape} and "
                         f"{b.shape}")
    xp = a._xp
    n = a.shape[0]

    def ranks(t):
        flat = t.detach()._data.reshape(n, -1)
        return xp.argsort(xp.argsort(flat, axis=1), axis=1).astype(xp.float64)

    ra, rb = ranks(a), ranks(b)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    corr = (ra * rb).sum(1) / xp.sqrt((ra * ra).sum(1) * (rb * rb).sum(1))
    return Tensor._wrap(corr)


def saliency_randomization_check(model, x, target, method=None, generator=None) -> float:
    """Mean Spearman correlation between the attribution maps of ``model`` and of its
    ``randomized_copy`` on the same inputs and targets (near 0: the maps depend on what the
    model learnt; near 1: they do not, e.g. an edge detector in disguise).

    Args:
        method: ``fn(model, x, target) -> maps``. Default: ``saliency`` (abs gradient).

    Shape:
        x (N, C, H, W) -> a float.
    """
    from shendu.viz.attribution import saliency
    method = saliency if method is None else method
    trained = method(model, x, target)
    random = method(randomized_copy(model, generator), x, target)
    return float(rank_correlation(trained, random).mean().item())
