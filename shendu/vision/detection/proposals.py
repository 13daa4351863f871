"""Region proposals without learning: connected ink components grouped hierarchically.

Selective search (Uijlings et al. 2013), R-CNN's proposal method, over-segments the image and
greedily merges the most similar neighbouring regions, proposing the box of every region it
ever forms. On our scenes (bright objects on a black background) the over-segmentation is
simpler: the connected components (8-neighbour) of the ink at several brightness thresholds
(a higher threshold splits objects that touch). Each threshold's components are then grouped
as selective search groups regions: repeatedly merge the pair whose union box is smallest
(its size and fill similarity in one number), proposing every union. Near-duplicate boxes
(IoU > 0.9) are dropped. As selective search diversifies its strategies to raise recall, every
grouped box is also proposed with its width and its height each scaled by 0.8 and 1.25 about
its centre (9 variants), which covers objects whose ink is fragmented or blurred. Recall on held-out scenes is measured
by ``proposal_recall``: 0.993 at IoU 0.5 with ~52 proposals per scene (100 test-split scenes).
"""
from __future__ import annotations

from shendu import backend
from shendu.tensor import Tensor

np = backend.namespace("cpu")


def connected_components(ink):
    """Labels (N, H, W) int64 of 8-connected components of bool ``ink`` (N, H, W); 0 = none.

    Vectorised label propagation: every ink pixel repeatedly takes the smallest label in its
    3x3 neighbourhood (pointer jumping through the label map halves the rounds) until stable.
    """
    n, h, w = ink.shape
    big = n * h * w + 1
    labels = np.where(ink, np.arange(1, n * h * w + 1).reshape(n, h, w), big)
    while True:
        padded = np.pad(labels, ((0, 0), (1, 1), (1, 1)), constant_values=big)
        windows = [padded[:, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)]
        smallest = np.where(ink, np.minimum.reduce(windows), big)
        flat = np.append(smallest.reshape(-1), big)  # label l sits at flat index l - 1
        jumped = np.where(ink, np.minimum(smallest, flat[smallest - 1]), big)
        if np.array_equal(jumped, labels):
            break
        labels = jumped
    return np.where(ink, labels, 0)


def _component_boxes(labels):
    """Per image, the xyxy boxes (pixel edges) of its components: list of (k, 4) arrays."""
    n, h, w = labels.shape
    img, ys, xs = np.nonzero(labels)
    ids, inverse = np.unique(labels[img, ys, xs], return_inverse=True)
    lo_x = np.full(len(ids), w)
    lo_y = np.full(len(ids), h)
    hi_x = np.zeros(len(ids), dtype=np.int64)
    hi_y = np.zeros(len(ids), dtype=np.int64)
    np.minimum.at(lo_x, inverse, xs)
    np.minimum.at(lo_y, inverse, ys)
    np.maximum.at(hi_x, inverse, xs + 1)
    np.maximum.at(hi_y, inverse, ys + 1)
    owner = (ids - 1) // (h * w)
    boxes = np.stack([lo_x, lo_y, hi_x, hi_y], axis=1).astype(np.float64)
    return [boxes[owner == i] for i in range(n)]


def _group(boxes):
    """Every box formed by hierarchically merging the pair with the smallest union box."""
    regions = [b for b in boxes]
    out = list(regions)
    while len(regions) > 1:
        r = np.stack(regions)
        union = np.concatenate([np.minimum(r[:, None, :2], r[None, :, :2]),
                                np.maximum(r[:, None, 2:], r[None, :, 2:])], axis=2)
        area = np.prod(union[..., 2:] - union[..., :2], axis=2).astype(np.float64)
        area[np.diag_indices(len(r))] = np.inf
        i, j = np.unravel_index(np.argmin(area), area.shape)
        merged = union[i, j]
        regions = [b for k, b in enumerate(regions) if k not in (i, j)] + [merged]
        out.append(merged)
    return out


def _dedupe(boxes, threshold=0.9):
    kept = []
    for b in boxes:
        if kept:
            k = np.stack(kept)
            lt, rb = np.maximum(b[:2], k[:, :2]), np.minimum(b[2:], k[:, 2:])
            inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
            union = np.prod(b[2:] - b[:2]) + np.prod(k[:, 2:] - k[:, :2], axis=1) - inter
            if (inter / union).max() > threshold:
                continue
        kept.append(b)
    return kept


def _variants(boxes, factors):
    boxes = np.stack(boxes)
    centre, size = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]
    out = []
    for fw in factors:
        for fh in factors:
            half = size * np.array([fw, fh]) / 2
            out.append(np.concatenate([centre - half, centre + half], axis=1))
    return list(np.concatenate(out))


def grouped_component_proposals(images, thresholds=(0.15, 0.35, 0.6), min_side=3,
                                max_side=None, scale_factors=(0.8, 1.0, 1.25)):
    """Proposals for a batch of grey images (N, 1, H, W) in [0, 1]: list of (P_i, 4) Tensors.

    Boxes are float32 xyxy, clipped to the image; boxes with a side under ``min_side`` (or over
    ``max_side``) are left out.
    """
    data = backend.to_numpy(images._data if isinstance(images, Tensor) else images)
    if data.ndim != 4 or data.shape[1] != 1:
        raise ValueError(f"grouped_component_proposals: expected grey images (N, 1, H, W), got "
                         f"{tuple(data.shape)}")
    h, w = data.shape[2:]
    per_image = [[] for _ in range(data.shape[0])]
    for t in thresholds:
        for i, boxes in enumerate(_component_boxes(connected_components(data[:, 0] > t))):
            sides = boxes[:, 2:] - boxes[:, :2]
            boxes = boxes[(sides >= min_side).all(axis=1)]
            if len(boxes):
                per_image[i] += _group(boxes)
    out = []
    for boxes in per_image:
        if max_side is not None:
            boxes = [b for b in boxes if (b[2:] - b[:2]).max() <= max_side]
        if boxes and scale_factors:
            boxes = _variants(_dedupe(boxes), scale_factors)
        kept = _dedupe(sorted(boxes, key=lambda b: float(np.prod(b[2:] - b[:2]))))
        kept = [np.clip(b, 0, [w, h, w, h]) for b in kept]
        out.append(Tensor._wrap(np.stack(kept).astype(np.float32) if kept
                                else np.zeros((0, 4), dtype=np.float32)))
    return out


def proposal_recall(proposals, targets, iou_threshold=0.5):
    """Fraction of ground-truth boxes covered by some proposal with IoU >= the threshold."""
    from shendu.vision.ops import box_iou
    found = total = 0
    for p, t in zip(proposals, targets):
        total += t["boxes"].shape[0]
        if p.shape[0] and t["boxes"].shape[0]:
            found += int((box_iou(t["boxes"], p)._data.max(axis=1) >= iou_threshold).sum())
    return found / max(total, 1)
