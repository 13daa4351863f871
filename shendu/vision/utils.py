"""Image grids and image files, with torchvision.utils' names and semantics.

``make_grid`` tiles a batch ``(B, C, H, W)`` into one image ``(C, H', W')``; ``save_image`` writes
it as a PNG/JPEG through Pillow (the ``image`` extra).
"""
from __future__ import annotations

import math

from shendu import backend
from shendu.tensor import Tensor


def _as_batch(images):
    """A Tensor, array or list of same-sized images -> an xp array (B, C, H, W), float."""
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("make_grid: got an empty list of images")
        arrays = [img._data if isinstance(img, Tensor) else img for img in images]
        shapes = {tuple(a.shape) for a in arrays}
        if len(shapes) != 1:
            raise ValueError(f"make_grid: images must all have one shape, got {sorted(shapes)}")
        xp = backend.xp_of(arrays[0])
        batch = xp.stack(arrays)
    elif isinstance(images, Tensor):
        batch = images._data
    elif backend.is_array(images):
        batch = images
    else:
        raise TypeError(f"make_grid: expected a Tensor or a list of Tensors, got "
                        f"{type(images).__name__}")
    if batch.ndim == 2:                      # one H x W image
        batch = batch[None]
    if batch.ndim == 3:                      # one C x H x W image
        batch = batch[None]
    if batch.ndim != 4:
        raise ValueError(f"make_grid: expected images of shape (B, C, H, W), (C, H, W) or "
                         f"(H, W), got shape {tuple(batch.shape)}")
    if batch.shape[1] == 1:                  # grey -> RGB, as torchvision does
        batch = backend.xp_of(batch).concatenate([batch] * 3, axis=1)
    if not backend.is_floating(batch.dtype):
        batch = batch.astype(backend.default_float)
    return batch


def _normalize(batch, value_range, scale_each):
    """Clamp to ``value_range`` (default: the data's min and max) and map it onto [0, 1]."""
    xp = backend.xp_of(batch)
    if value_range is not None:
        if not (isinstance(value_range, (tuple, list)) and len(value_range) == 2):
            raise ValueError(f"make_grid: value_range must be a (min, max) pair, got "
                             f"{value_range!r}")
        low = xp.asarray(value_range[0], dtype=batch.dtype)
        high = xp.asarray(value_range[1], dtype=batch.dtype)
    elif scale_each:                         # each image by its own min and max
        low = batch.min(axis=(1, 2, 3), keepdims=True)
        high = batch.max(axis=(1, 2, 3), keepdims=True)
    else:
        low, high = batch.min(), batch.max()
    return (xp.clip(batch, low, high) - low) / xp.maximum(high - low, 1e-5)


def make_grid(tensor, nrow: int = 8, padding: int = 2, normalize: bool = False,
              value_range=None, scale_each: bool = False, pad_value: float = 0.0) -> Tensor:
    """Tile images ``(B, C, H, W)`` into one ``(C, rows*(H+p)+p, cols*(W+p)+p)`` image.

    ``cols = min(nrow, B)`` and ``rows = ceil(B / cols)``; one-channel images become three
    channels. With ``normalize`` the pixel range (``value_range`` or the data's min/max, per
    image with ``scale_each``) maps onto [0, 1]. A single image is returned unpadded.
    """
    if not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"make_grid: nrow must be a positive int, got {nrow!r}")
    if not isinstance(padding, int) or padding < 0:
        raise ValueError(f"make_grid: padding must be a non-negative int, got {padding!r}")
    batch = _as_batch(tensor)
    if normalize:
        batch = _normalize(batch, value_range, scale_each)
    if batch.shape[0] == 1:
        return Tensor._wrap(batch[0].copy())
    xp = backend.xp_of(batch)
    count, channels, height, width = batch.shape
    cols = min(nrow, count)
    rows = math.ceil(count / cols)
    cells = xp.full((rows * cols, channels, height + padding, width + padding), pad_value,
                    dtype=batch.dtype)
    cells[:count, :, padding:, padding:] = batch   # each cell: padding above and to the left
    grid = cells.reshape(rows, cols, channels, height + padding, width + padding)
    grid = grid.transpose(2, 0, 3, 1, 4).reshape(channels, rows * (height + padding),
                                                  cols * (width + padding))
    full = xp.full((channels, grid.shape[1] + padding, grid.shape[2] + padding), pad_value,
                   dtype=batch.dtype)
    full[:, :grid.shape[1], :grid.shape[2]] = grid  # and the closing padding below and right
    return Tensor._wrap(full)


def to_uint8_image(image) -> "object":
    """A ``(C, H, W)`` float image in [0, 1] -> a host ``(H, W, C)`` uint8 array (rounded)."""
    array = image._data if isinstance(image, Tensor) else image
    xp = backend.xp_of(array)
    pixels = xp.clip(array * 255 + 0.5, 0, 255).astype(backend.uint8)
    return backend.to_numpy(pixels.transpose(1, 2, 0))


def save_image(tensor, fp, format: str | None = None, **grid_options) -> None:
    """Write ``make_grid(tensor, **grid_options)`` to ``fp`` (a path or file object).

    Pixel values in [0, 1] map to 0..255 as torchvision does (``x * 255 + 0.5``, clamped).
    Needs Pillow: ``pip install 'shendu[image]'``.
    """
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("save_image needs Pillow: pip install 'shendu[image]'") from None
    grid = make_grid(tensor, **grid_options)
    pixels = to_uint8_image(grid)
    if pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    Image.fromarray(pixels).save(fp, format=format)
