"""COCO mean average precision (the metric of COCOeval, Lin et al. 2014), written out.

For each class and each IoU threshold t in 0.50:0.05:0.95, detections of all images are
ranked by score; a detection is a true positive when it overlaps a not yet matched ground
truth of its class in its image by IoU >= t (greedy, highest score first, each detection
taking its best-overlapping free ground truth). Precision is made monotone (the running
maximum from the right) and read at 101 recall points 0, 0.01, ..., 1; AP is their mean and
mAP the mean over classes that have ground truth. ``map_50`` / ``map_75`` are AP at t = 0.5 /
0.75 alone; ``mar_100`` the recall at the last detection, averaged the same way. As COCOeval
with maxDets=100, each image keeps its 100 best-scoring detections per class, and the area
range is "all". The input convention is torchmetrics' MeanAveragePrecision.
"""
from __future__ import annotations

from shendu import backend
from shendu.tensor import Tensor

np = backend.namespace("cpu")  # the metric is bookkeeping on the host, as pycocotools'

IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1)
RECALL_POINTS = np.linspace(0.0, 1.0, int(np.round((1.0 - 0.0) / 0.01)) + 1)


def _host(value):
    return backend.to_numpy(value._data) if isinstance(value, Tensor) else np.asarray(value)


def _box_ious(dt, gt):
    lt = np.maximum(dt[:, None, :2], gt[None, :, :2])
    rb = np.minimum(dt[:, None, 2:], gt[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_d = np.prod(dt[:, 2:] - dt[:, :2], axis=1)
    area_g = np.prod(gt[:, 2:] - gt[:, :2], axis=1)
    union = area_d[:, None] + area_g[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _mask_ious(dt, gt):
    d = dt.reshape(dt.shape[0], -1).astype(np.float64)
    g = gt.reshape(gt.shape[0], -1).astype(np.float64)
    inter = d @ g.T
    union = d.sum(1)[:, None] + g.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _match(ious):
    """(T, D) bool: detection d (score order) is a true positive at threshold t."""
    n_det, n_gt = ious.shape
    thresholds = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)
    matched_gt = np.zeros((len(thresholds), n_gt), dtype=bool)
    tp = np.zeros((len(thresholds), n_det), dtype=bool)
    for d in range(n_det):  # greedy in score order; all thresholds at once
        candidates = (ious[d][None, :] >= thresholds[:, None]) & ~matched_gt
        if not candidates.any():
            continue
        # COCOeval keeps the last ground truth of the highest IoU, scanning in order
        scored = np.where(candidates, ious[d][None, :], -1.0)
        best = n_gt - 1 - np.argmax(scored[:, ::-1], axis=1)
        hit = candidates[np.arange(len(thresholds)), best]
        tp[hit, d] = True
        matched_gt[np.flatnonzero(hit), best[hit]] = True
    return tp


def _check(preds, targets, iou_type):
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"mean_average_precision: iou_type must be 'bbox' or 'segm', got "
                         f"{iou_type!r}")
    if not isinstance(preds, (list, tuple)) or not isinstance(targets, (list, tuple)):
        raise TypeError("mean_average_precision: preds and targets must be lists of dicts, one "
                        "per image")
    if len(preds) != len(targets):
        raise ValueError(f"mean_average_precision: {len(preds)} predictions for "
                         f"{len(targets)} targets; expected one of each per image")
    key = "boxes" if iou_type == "bbox" else "masks"
    for i, (p, t) in enumerate(zip(preds, targets)):
        for name, d, needed in (("preds", p, (key, "scores", "labels")),
                                ("targets", t, (key, "labels"))):
            missing = [k for k in needed if k not in d]
            if missing:
                raise ValueError(f"mean_average_precision: {name}[{i}] lacks {missing} "
                                 f"(iou_type={iou_type!r} needs {list(needed)})")
            n = len(_host(d["labels"]))
            if len(_host(d[key])) != n or (name == "preds" and len(_host(d["scores"])) != n):
                raise ValueError(f"mean_average_precision: {name}[{i}] has "
                                 f"{len(_host(d[key]))} {key} for {n} labels")


def mean_average_precision(preds, targets, iou_type: str = "bbox", max_detections: int = 100):
    """COCO mAP of detections (torchmetrics' MeanAveragePrecision input convention).

    Args:
        preds: one dict per image: ``boxes`` (N, 4) xyxy (or ``masks`` (N, H, W) bool for
            iou_type="segm"), ``scores`` (N,), ``labels`` (N,) int.
        targets: one dict per image: ``boxes`` (M, 4) or ``masks`` (M, H, W), ``labels`` (M,).
        iou_type: "bbox" (box IoU) or "segm" (mask IoU).

    Returns:
        dict of float Tensors: ``map`` (mean over IoU 0.50:0.95), ``map_50``, ``map_75``,
        ``mar_100``; each is -1 when no class has ground truth (COCOeval's convention).
    """
    _check(preds, targets, iou_type)
    key = "boxes" if iou_type == "bbox" else "masks"
    overlap = _box_ious if iou_type == "bbox" else _mask_ious
    data = [({k: _host(p[k]) for k in (key, "scores", "labels")},
             {k: _host(t[k]) for k in (key, "labels")}) for p, t in zip(preds, targets)]
    classes = sorted({int(c) for _, t in data for c in t["labels"]})
    precision = np.full((len(IOU_THRESHOLDS), len(classes), len(RECALL_POINTS)), -1.0)
    recall = np.full((len(IOU_THRESHOLDS), len(classes)), -1.0)
    for k, c in enumerate(classes):
        scores, hits, n_gt = [], [], 0
        for p, t in data:
            gt = t[key][t["labels"] == c]
            mine = np.flatnonzero(p["labels"] == c)
            order = mine[np.argsort(-p["scores"][mine], kind="mergesort")][:max_detections]
            n_gt += len(gt)
            if len(order) == 0:
                continue
            ious = overlap(p[key][order], gt) if len(gt) else np.zeros((len(order), 0))
            scores.append(p["scores"][order])
            hits.append(_match(ious))
        if n_gt == 0:
            continue
        if not scores:
            precision[:, k], recall[:, k] = 0.0, 0.0
            continue
        ranked = np.argsort(-np.concatenate(scores), kind="mergesort")
        tp = np.concatenate(hits, axis=1)[:, ranked]
        tp_sum = np.cumsum(tp, axis=1, dtype=np.float64)
        fp_sum = np.cumsum(~tp, axis=1, dtype=np.float64)
        rc = tp_sum / n_gt
        pr = tp_sum / (tp_sum + fp_sum + np.spacing(1))
        pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # monotone from the right
        recall[:, k] = rc[:, -1]
        for t_index in range(len(IOU_THRESHOLDS)):
            at = np.searchsorted(rc[t_index], RECALL_POINTS, side="left")
            reached = at < rc.shape[1]
            precision[t_index, k] = np.where(reached, pr[t_index][np.minimum(at, rc.shape[1] - 1)],
                                             0.0)

    def mean(values):
        kept = values[values > -1]
        return Tensor._wrap(np.asarray(kept.mean() if kept.size else -1.0, dtype=np.float32))

    return {"map": mean(precision), "map_50": mean(precision[0]), "map_75": mean(precision[5]),
            "mar_100": mean(recall)}
