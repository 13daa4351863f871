"""Box-regression targets in the R-CNN parameterisation (Girshick et al. 2014, appendix C).

A proposal P (centre px, py, size pw, ph) and a ground-truth box G are related by
``t = (wx (gx - px) / pw, wy (gy - py) / ph, ww log(gw / pw), wh log(gh / ph))``. The weights
follow torchvision.models.detection._utils.BoxCoder: (10, 10, 5, 5) for Fast/Faster R-CNN
heads, (1, 1, 1, 1) for an RPN. Decoding clamps the log-sizes at log(1000 / 16) so a wild
prediction cannot overflow ``exp``.
"""
from __future__ import annotations

import math

from shendu import ops
from shendu.tensor import Tensor
from shendu.vision.ops.boxes import _check_boxes


def _centres(boxes):
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights, widths, heights


class BoxCoder:
    """Encode boxes as regression targets relative to reference boxes, and decode them back.

    Args:
        weights: (wx, wy, ww, wh) scaling the four deltas.
        bbox_xform_clip: the largest log-size change ``decode`` applies.
    """

    def __init__(self, weights=(1.0, 1.0, 1.0, 1.0), bbox_xform_clip=math.log(1000.0 / 16)):
        if len(weights) != 4:
            raise ValueError(f"BoxCoder: weights must be 4 numbers (wx, wy, ww, wh), got "
                             f"{weights!r}")
        self.weights = tuple(float(w) for w in weights)
        self.bbox_xform_clip = bbox_xform_clip

    def encode_single(self, reference_boxes: Tensor, proposals: Tensor) -> Tensor:
        """Deltas (N, 4) that take each of ``proposals`` (N, 4) to ``reference_boxes`` (N, 4)."""
        _check_boxes("BoxCoder.encode_single", reference_boxes, "reference_boxes")
        _check_boxes("BoxCoder.encode_single", proposals, "proposals")
        if reference_boxes.shape != proposals.shape:
            raise ValueError(f"BoxCoder.encode_single: reference_boxes {reference_boxes.shape} "
                             f"and proposals {proposals.shape} must pair up one to one")
        wx, wy, ww, wh = self.weights
        px, py, pw, ph = _centres(proposals)
        gx, gy, gw, gh = _centres(reference_boxes)
        return ops.stack([wx * (gx - px) / pw, wy * (gy - py) / ph,
                          ww * (gw / pw).log(), wh * (gh / ph).log()], dim=1)

    def encode(self, reference_boxes: list, proposals: list) -> tuple:
        """Per-image encode_single over two lists of (N_i, 4) boxes; one tensor per image."""
        return tuple(self.encode_single(r, p) for r, p in zip(reference_boxes, proposals))

    def decode_single(self, rel_codes: Tensor, boxes: Tensor) -> Tensor:
        """Apply deltas (N, 4k) to reference ``boxes`` (N, 4) -> boxes (N, 4k) (k per class)."""
        _check_boxes("BoxCoder.decode_single", boxes)
        if rel_codes.ndim != 2 or rel_codes.shape[1] % 4 or rel_codes.shape[0] != boxes.shape[0]:
            raise ValueError(f"BoxCoder.decode_single: rel_codes must be ({boxes.shape[0]}, 4k) "
                             f"for {boxes.shape[0]} boxes, got {tuple(rel_codes.shape)}")
        boxes = boxes.to(rel_codes.dtype)
        wx, wy, ww, wh = self.weights
        cx, cy, w, h = _centres(boxes)
        dx, dy = rel_codes[:, 0::4] / wx, rel_codes[:, 1::4] / wy
        dw = (rel_codes[:, 2::4] / ww).clamp(max=self.bbox_xform_clip)
        dh = (rel_codes[:, 3::4] / wh).clamp(max=self.bbox_xform_clip)
        pred_cx, pred_cy = dx * w[:, None] + cx[:, None], dy * h[:, None] + cy[:, None]
        half_w, half_h = 0.5 * dw.exp() * w[:, None], 0.5 * dh.exp() * h[:, None]
        out = ops.stack([pred_cx - half_w, pred_cy - half_h, pred_cx + half_w, pred_cy + half_h],
                        dim=2)  # (N, k, 4)
        return out.reshape(boxes.shape[0], -1)

    def decode(self, rel_codes: Tensor, boxes: list) -> Tensor:
        """Decode (sum N_i, 4k) deltas against a list of per-image boxes -> (sum N_i, k, 4)."""
        reference = ops.cat(list(boxes), dim=0)
        return self.decode_single(rel_codes, reference).reshape(reference.shape[0], -1, 4)
