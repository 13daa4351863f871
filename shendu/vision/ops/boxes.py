"""Box arithmetic and non-maximum suppression, with torchvision.ops' names and semantics.

Boxes are ``Tensor[N, 4]`` in (x1, y1, x2, y2) unless a format says otherwise; areas are
``(x2 - x1) * (y2 - y1)`` (no "+1" pixel convention, as torchvision). ``box_area``,
``box_iou`` and ``box_convert`` are made of Tensor ops, so they are differentiable; ``nms``
returns indices and is not.
"""
from __future__ import annotations

from shendu import ops
from shendu.tensor import Tensor

_FORMATS = ("xyxy", "xywh", "cxcywh")


def _check_boxes(op, boxes, name="boxes"):
    if not isinstance(boxes, Tensor):
        raise TypeError(f"{op}: expected {name} to be a shendu.Tensor, got "
                        f"{type(boxes).__name__}")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{op}: expected {name} of shape (N, 4), got {tuple(boxes.shape)}")


def box_area(boxes: Tensor) -> Tensor:
    """Areas of (N, 4) xyxy boxes -> (N,)."""
    _check_boxes("box_area", boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _inter_union(boxes1, boxes2):
    area1, area2 = box_area(boxes1), box_area(boxes2)
    lt = ops.maximum(boxes1[:, None, :2], boxes2[None, :, :2])  # (N, M, 2)
    rb = ops.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    return inter, area1[:, None] + area2[None, :] - inter


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Intersection over union of every pair: (N, 4), (M, 4) -> (N, M)."""
    _check_boxes("box_iou", boxes1, "boxes1")
    _check_boxes("box_iou", boxes2, "boxes2")
    inter, union = _inter_union(boxes1, boxes2)
    return inter / union


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert (N, 4) boxes between 'xyxy', 'xywh' (corner + size) and 'cxcywh' (centre + size)."""
    _check_boxes("box_convert", boxes)
    for name, fmt in (("in_fmt", in_fmt), ("out_fmt", out_fmt)):
        if fmt not in _FORMATS:
            raise ValueError(f"box_convert: {name} must be one of {_FORMATS}, got {fmt!r}")
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    if in_fmt == "xywh":
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    if out_fmt == "xywh":
        a, b, c, d = a, b, c - a, d - b
    elif out_fmt == "cxcywh":
        a, b, c, d = (a + c) / 2, (b + d) / 2, c - a, d - b
    return ops.stack([a, b, c, d], dim=1)


def clip_boxes_to_image(boxes: Tensor, size) -> Tensor:
    """Clamp xyxy boxes into an image of ``size`` = (height, width)."""
    _check_boxes("clip_boxes_to_image", boxes)
    height, width = size
    x = boxes[:, 0::2].clamp(min=0, max=width)
    y = boxes[:, 1::2].clamp(min=0, max=height)
    return ops.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices of the boxes whose width and height are both >= ``min_size``."""
    _check_boxes("remove_small_boxes", boxes)
    data = boxes._data
    keep = ((data[:, 2] - data[:, 0]) >= min_size) & ((data[:, 3] - data[:, 1]) >= min_size)
    return Tensor._wrap(boxes._xp.nonzero(keep)[0].astype("int64"))


def _check_scores(op, boxes, scores, iou_threshold):
    _check_boxes(op, boxes)
    if not isinstance(scores, Tensor) or scores.shape != (boxes.shape[0],):
        got = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
        raise ValueError(f"{op}: expected scores of shape ({boxes.shape[0]},) for "
                         f"{boxes.shape[0]} boxes, got {got}")
    if not 0 <= float(iou_threshold) <= 1:
        raise ValueError(f"{op}: iou_threshold must be in [0, 1], got {iou_threshold}")


def _nms_arrays(xp, boxes, scores, iou_threshold):
    """Greedy NMS on arrays: indices kept, by decreasing score.

    One IoU matrix is computed up front; the loop then runs once per *kept* box (each step
    drops every remaining box that overlaps the kept one by more than the threshold), which
    is the sequential part no formulation of greedy NMS avoids.
    """
    order = xp.argsort(-scores, kind="stable")
    boxes = boxes[order].astype("float64")
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    lt = xp.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = xp.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    wh = xp.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    with xp.errstate(divide="ignore", invalid="ignore"):
        overlaps = inter / (area[:, None] + area[None, :] - inter) > iou_threshold
    alive = xp.ones(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if alive[i]:
            keep.append(i)
            alive &= ~overlaps[i]
    return order[xp.asarray(keep, dtype="int64")]


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices (int64) of the boxes kept by greedy non-maximum suppression, highest score first.

    A box is discarded when its IoU with an already kept, higher-scoring box is *greater*
    than ``iou_threshold`` (torchvision's rule).
    """
    _check_scores("nms", boxes, scores, iou_threshold)
    if boxes.shape[0] == 0:
        return Tensor._wrap(boxes._xp.zeros(0, dtype="int64"))
    return Tensor._wrap(_nms_arrays(boxes._xp, boxes._data, scores._data, float(iou_threshold)))


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS done independently per category ``idxs`` (N,): boxes of different categories never
    suppress each other. Returns kept indices sorted by decreasing score.

    As torchvision, the categories are separated by shifting each one's boxes by
    ``idx * (max coordinate + 1)``, so one NMS call serves them all.
    """
    _check_scores("batched_nms", boxes, scores, iou_threshold)
    if not isinstance(idxs, Tensor) or idxs.shape != (boxes.shape[0],):
        got = tuple(idxs.shape) if isinstance(idxs, Tensor) else type(idxs).__name__
        raise ValueError(f"batched_nms: expected idxs of shape ({boxes.shape[0]},), got {got}")
    if boxes.shape[0] == 0:
        return Tensor._wrap(boxes._xp.zeros(0, dtype="int64"))
    data = boxes._data.astype("float64")
    offsets = idxs._data.astype("float64") * (data.max() + 1)
    return Tensor._wrap(_nms_arrays(boxes._xp, data + offsets[:, None], scores._data,
                                    float(iou_threshold)))
