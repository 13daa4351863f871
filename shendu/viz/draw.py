"""Drawing maps over images: bilinear upsampling to the image size and a heat overlay.

All outputs are (3, H, W) Tensors in [0, 1], ready for ``shendu.vision.utils.make_grid`` and
``save_image``; nothing here needs matplotlib.
"""
from __future__ import annotations

from shendu.tensor import Tensor


def upsample(maps, size) -> Tensor:
    """Bilinear resize of (N, C, h, w) maps to ``size`` = (H, W), half-pixel centres
    (torch's ``interpolate(mode='bilinear', align_corners=False)``), as two matrix products.
    """
    data = maps._data if isinstance(maps, Tensor) else maps
    height, width = size
    a_h = _interpolation_matrix(data.shape[-2], height, data)  # (H, h)
    a_w = _interpolation_matrix(data.shape[-1], width, data)   # (W, w)
    return Tensor._wrap(a_h @ data @ a_w.T)


def _interpolation_matrix(source, target, like):
    """(target, source) weights of 1-D linear interpolation with half-pixel centres."""
    from shendu import backend
    xp = backend.xp_of(like)
    pos = xp.clip((xp.arange(target, dtype=like.dtype) + 0.5) * source / target - 0.5, 0,
                  source - 1)
    low = xp.floor(pos).astype(xp.int64)
    high = xp.minimum(low + 1, source - 1)
    frac = (pos - low).astype(like.dtype)
    matrix = xp.zeros((target, source), dtype=like.dtype)
    rows = xp.arange(target)
    matrix[rows, low] += 1 - frac
    matrix[rows, high] += frac
    return matrix


def normalize_map(maps) -> Tensor:
    """Each (h, w) map of (N, 1, h, w) scaled to [0, 1] by its own maximum |value|."""
    data = maps._data if isinstance(maps, Tensor) else maps
    top = abs(data).reshape(data.shape[0], -1).max(1).reshape(-1, 1, 1, 1)
    return Tensor._wrap(abs(data) / (top + 1e-12))


def overlay(images, maps, alpha=0.6) -> Tensor:
    """Heat overlay of attribution ``maps`` on ``images``: the map (channels summed in
    absolute value, upsampled, scaled to [0, 1] per image) in a black-red-yellow-white
    ("hot") colour scale, blended as (1 - alpha) * grey image + alpha * heat colour.

    Shape:
        images (N, C, H, W) in [0, 1], maps (N, C', h, w) -> (N, 3, H, W) in [0, 1].
    """
    from shendu import backend
    img = images._data if isinstance(images, Tensor) else images
    m = maps._data if isinstance(maps, Tensor) else maps
    if img.ndim != 4 or m.ndim != 4 or img.shape[0] != m.shape[0]:
        raise ValueError(f"overlay: expected images (N, C, H, W) and maps (N, C', h, w) with "
                         f"the same N, got {tuple(img.shape)} and {tuple(m.shape)}")
    xp = backend.xp_of(img)
    heat = normalize_map(abs(m).sum(1, keepdims=True))._data
    heat = upsample(heat, img.shape[-2:])._data.clip(0, 1)  # (N, 1, H, W)
    grey = img.mean(1, keepdims=True) if img.shape[1] != 1 else img
    colour = xp.concatenate([(3 * heat).clip(0, 1), (3 * heat - 1).clip(0, 1),
                             (3 * heat - 2).clip(0, 1)], 1)  # (N, 3, H, W), "hot"
    return Tensor._wrap((1 - alpha) * grey + alpha * colour)
