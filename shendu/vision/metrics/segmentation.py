"""Semantic-segmentation scores: the confusion matrix and intersection over union per class.

``mean_iou`` is the "mean IU" of Long et al. (FCN, 2015): IoU_c = TP / (TP + FP + FN) counted
over every pixel of the data set (not averaged per image), then averaged over the classes that
occur in the prediction or the ground truth.
"""
from __future__ import annotations

from shendu import backend
from shendu.tensor import Tensor


def _labels(op, x, name):
    if not isinstance(x, Tensor) or x.dtype.kind not in "iu":
        got = x.dtype if isinstance(x, Tensor) else type(x).__name__
        raise TypeError(f"{op}: {name} must be an integer label Tensor, got {got}")
    return x._data


def confusion_matrix(preds: Tensor, target: Tensor, num_classes: int, ignore_index=None):
    """(num_classes, num_classes) int64 counts: row = true class, column = predicted class.

    ``preds`` and ``target`` are label maps of the same shape (e.g. (N, H, W)); pixels whose
    target equals ``ignore_index`` are not counted.
    """
    p, t = _labels("confusion_matrix", preds, "preds"), _labels("confusion_matrix", target,
                                                                "target")
    if p.shape != t.shape:
        raise ValueError(f"confusion_matrix: preds {tuple(p.shape)} and target "
                         f"{tuple(t.shape)} must have the same shape")
    xp = backend.xp_of(t)
    keep = t != ignore_index if ignore_index is not None else xp.ones(t.shape, dtype=bool)
    p, t = p[keep].astype("int64"), t[keep].astype("int64")
    bad = (p < 0) | (p >= num_classes) | (t < 0) | (t >= num_classes)
    if bool(bad.any()):
        raise ValueError(f"confusion_matrix: labels must lie in [0, {num_classes}), got values "
                         f"in [{min(p.min(), t.min())}, {max(p.max(), t.max())}]")
    counts = xp.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return Tensor._wrap(counts.reshape(num_classes, num_classes))


def per_class_iou(preds: Tensor, target: Tensor, num_classes: int, ignore_index=None):
    """(num_classes,) float IoU per class; NaN for a class absent from both."""
    cm = confusion_matrix(preds, target, num_classes, ignore_index)._data.astype("float64")
    xp = backend.xp_of(cm)
    tp = xp.diagonal(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    with xp.errstate(invalid="ignore", divide="ignore"):
        iou = xp.where(union > 0, tp / union, xp.nan)
    return Tensor._wrap(iou)


def mean_iou(preds: Tensor, target: Tensor, num_classes: int, ignore_index=None,
             include_background: bool = True) -> Tensor:
    """Mean IoU over the classes present (class 0 is the background, left out on request)."""
    iou = per_class_iou(preds, target, num_classes, ignore_index)._data
    if not include_background:
        iou = iou[1:]
    xp = backend.xp_of(iou)
    present = ~xp.isnan(iou)
    return Tensor._wrap(xp.asarray(iou[present].mean() if present.any() else xp.nan))
