"""Pictures of detections and masks: torchvision.utils' draw_bounding_boxes and
draw_segmentation_masks, and a grid of annotated scenes written as a PNG.

Needs Pillow (comes with the ``plot`` extra: ``pip install shendu[plot]``).
"""
from __future__ import annotations

from shendu import backend
from shendu.tensor import Tensor

np = backend.namespace("cpu")

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
           (0, 128, 128)]


def _pil():
    try:
        from PIL import Image, ImageDraw
    except ImportError as err:
        raise ImportError("shendu.vision.drawing needs Pillow: pip install shendu[plot]") from err
    return Image, ImageDraw


def _rgb(op, image):
    if not isinstance(image, Tensor) or image.ndim != 3 or image.shape[0] not in (1, 3) \
            or image.dtype != backend.uint8:
        got = (f"{tuple(image.shape)} {image.dtype}" if isinstance(image, Tensor)
               else type(image).__name__)
        raise ValueError(f"{op}: expected a uint8 image Tensor of shape (1 or 3, H, W), got {got}")
    data = backend.to_numpy(image._data)
    return np.repeat(data, 3, axis=0) if data.shape[0] == 1 else data


def _color(colors, i):
    if colors is None:
        return PALETTE[i % len(PALETTE)]
    return colors[i] if isinstance(colors, (list, tuple)) and not isinstance(colors[0], int) \
        else colors


def draw_bounding_boxes(image: Tensor, boxes: Tensor, labels=None, colors=None,
                        width: int = 1) -> Tensor:
    """Draw xyxy ``boxes`` (N, 4) and their ``labels`` (N strings) on a uint8 (C, H, W) image.

    ``colors``: one RGB tuple for all, or one per box (default: a fixed palette).
    Returns a new uint8 (3, H, W) Tensor.
    """
    Image, ImageDraw = _pil()
    rgb = _rgb("draw_bounding_boxes", image)
    canvas = Image.fromarray(np.ascontiguousarray(rgb.transpose(1, 2, 0)))
    draw = ImageDraw.Draw(canvas)
    box_data = backend.to_numpy(boxes._data) if isinstance(boxes, Tensor) else np.asarray(boxes)
    if labels is not None and len(labels) != len(box_data):
        raise ValueError(f"draw_bounding_boxes: {len(labels)} labels for {len(box_data)} boxes")
    for i, (x1, y1, x2, y2) in enumerate(box_data.tolist()):
        color = _color(colors, i)
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], outline=color, width=width)
        if labels is not None:
            text_y = y1 - 11 if y1 >= 11 else y2
            draw.text((x1 + 1, text_y), str(labels[i]), fill=color)
    return Tensor._wrap(np.asarray(canvas).transpose(2, 0, 1).copy())


def draw_segmentation_masks(image: Tensor, masks: Tensor, alpha: float = 0.5,
                            colors=None) -> Tensor:
    """Blend bool ``masks`` (N, H, W) over a uint8 (C, H, W) image with opacity ``alpha``."""
    rgb = _rgb("draw_segmentation_masks", image).astype(np.float64)
    mask_data = backend.to_numpy(masks._data).astype(bool)
    if mask_data.ndim != 3 or mask_data.shape[1:] != rgb.shape[1:]:
        raise ValueError(f"draw_segmentation_masks: masks must be (N, {rgb.shape[1]}, "
                         f"{rgb.shape[2]}), got {mask_data.shape}")
    for i, mask in enumerate(mask_data):
        color = np.asarray(_color(colors, i), dtype=np.float64)[:, None]
        rgb[:, mask] = (1 - alpha) * rgb[:, mask] + alpha * color
    return Tensor._wrap(rgb.round().astype(np.uint8))


def annotate(image: Tensor, boxes=None, labels=None, masks=None, scale: int = 4) -> Tensor:
    """One float (1, H, W) scene in [0, 1] enlarged ``scale`` times, with masks and boxes drawn."""
    grey = backend.to_numpy(image._data)
    big = np.kron((np.clip(grey, 0, 1) * 255).round().astype(np.uint8),
                  np.ones((1, scale, scale), dtype=np.uint8))
    out = Tensor._wrap(np.repeat(big, 3, axis=0))
    if masks is not None and len(masks):
        m = backend.to_numpy(masks._data).astype(bool)
        out = draw_segmentation_masks(out, Tensor._wrap(np.kron(m, np.ones((1, scale, scale),
                                                                         dtype=bool))), 0.45)
    if boxes is not None and len(boxes):
        b = backend.to_numpy(boxes._data) * scale
        out = draw_bounding_boxes(out, b, labels, width=2)
    return out


def save_annotated_grid(path, tiles, ncol: int = 4, padding: int = 4) -> None:
    """Tile uint8 (3, H, W) images (same size) into rows of ``ncol`` and write a PNG."""
    Image, _ = _pil()
    arrays = [backend.to_numpy(t._data) for t in tiles]
    h, w = arrays[0].shape[1:]
    rows = -(-len(arrays) // ncol)
    grid = np.full((3, rows * (h + padding) + padding, ncol * (w + padding) + padding), 255,
                   dtype=np.uint8)
    for i, a in enumerate(arrays):
        r, c = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        grid[:, top:top + h, left:left + w] = a
    Image.fromarray(grid.transpose(1, 2, 0)).save(path)
