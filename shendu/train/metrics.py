"""Classification metrics computed without autograd: accuracy, top-k accuracy, the confusion
matrix, and a sample-weighted running mean for per-epoch averages.

Each metric takes the model output (logits or probabilities, class scores on dim 1) and the
integer targets, and returns a Python float (or, for ``confusion_matrix``, an int64 Tensor).
"""
from __future__ import annotations

import math

from shendu.tensor import Tensor


def _as_tensor(x, name, fn):
    if isinstance(x, Tensor):
        return x.detach()
    raise TypeError(f"{fn}: {name} must be a shendu Tensor, got {type(x).__name__}")


def _predicted_labels(output, target, fn):
    """Class indices from scores (N, C, *) -> (N, *), or pass labels through unchanged."""
    output = _as_tensor(output, "output", fn)
    target = _as_tensor(target, "target", fn)
    if output.ndim == target.ndim + 1:
        pred = output._xp.argmax(output._data, axis=1)
    elif output.ndim == target.ndim:
        pred = output._data
    else:
        raise ValueError(f"{fn}: expected output (N, C, *) with target (N, *), or predicted "
                         f"labels shaped like target; got output {output.shape} and target "
                         f"{target.shape}")
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"{fn}: predictions of shape {tuple(pred.shape)} (from output "
                         f"{output.shape}) do not match target {target.shape}")
    return pred, target._data


def accuracy(output, target) -> float:
    """Fraction of samples whose arg-max class equals the target.

    accuracy = mean(argmax(output, dim=1) == target)

    Shape:
        output (N, C, *) scores, or (N, *) predicted labels; target (N, *) int class indices.
    """
    pred, target = _predicted_labels(output, target, "accuracy")
    if target.size == 0:
        raise ValueError("accuracy: got an empty batch (target has 0 elements)")
    return float((pred == target).mean())


def top_k_accuracy(output, target, k: int = 5) -> float:
    """Fraction of samples whose target is among the ``k`` highest-scoring classes.

    Ties at the k-th score count as hits only if the tie is inside the k picked by a stable
    sort on the negated scores (the lower class index wins, as torch.topk on CPU).

    Shape:
        output (N, C) scores; target (N,) int class indices.
    """
    output = _as_tensor(output, "output", "top_k_accuracy")
    target = _as_tensor(target, "target", "top_k_accuracy")
    if output.ndim != 2 or target.ndim != 1 or output.shape[0] != target.shape[0]:
        raise ValueError(f"top_k_accuracy: expected output (N, C) and target (N,), got output "
                         f"{output.shape} and target {target.shape}")
    if not isinstance(k, int) or not 1 <= k <= output.shape[1]:
        raise ValueError(f"top_k_accuracy: k must be an int in [1, C={output.shape[1]}], "
                         f"got {k!r}")
    xp = output._xp
    top = xp.argsort(-output._data, axis=1, kind="stable")[:, :k]  # (N, k)
    return float((top == target._data[:, None]).any(axis=1).mean())


def confusion_matrix(output, target, num_classes: int | None = None) -> Tensor:
    """Counts of (true class, predicted class) pairs; rows are true, columns predicted.

    M[i, j] = #{n : target[n] == i and prediction[n] == j}

    Shape:
        output (N, C, *) scores or (N, *) labels; target (N, *); result (K, K) int64, where
        K = num_classes, else C for scores, else 1 + the largest label seen.
    """
    from_scores = isinstance(output, Tensor) and isinstance(target, Tensor) \
        and output.ndim == target.ndim + 1
    pred, target = _predicted_labels(output, target, "confusion_matrix")
    xp = output._xp
    pred, target = pred.reshape(-1).astype("int64"), target.reshape(-1).astype("int64")
    if num_classes is None:
        if from_scores:
            num_classes = output.shape[1]
        else:
            num_classes = int(max(pred.max(initial=-1), target.max(initial=-1))) + 1
    low = min(int(pred.min(initial=0)), int(target.min(initial=0)))
    high = max(int(pred.max(initial=0)), int(target.max(initial=0)))
    if low < 0 or high >= num_classes:
        raise ValueError(f"confusion_matrix: labels must lie in [0, {num_classes}), got values "
                         f"in [{low}, {high}]")
    counts = xp.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return Tensor._wrap(counts.reshape(num_classes, num_classes).astype("int64"))


class RunningMean:
    """Sample-weighted running average: value = sum(v_i * n_i) / sum(n_i).

    Used for per-epoch loss and metrics, so a smaller last batch counts for what it holds.
    """

    def __init__(self):
        self.reset()

    def reset(self):
        self.total = 0.0
        self.count = 0

    def update(self, value, n: int = 1):
        if n < 0:
            raise ValueError(f"RunningMean.update: n must be >= 0, got {n}")
        self.total += float(value) * n
        self.count += n
        return self

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else math.nan

    def __repr__(self):
        return f"RunningMean(value={self.value:.6g}, count={self.count})"


METRICS = {"accuracy": accuracy, "acc": accuracy, "top_k_accuracy": top_k_accuracy,
           "top5": lambda output, target: top_k_accuracy(output, target, 5)}


def get_metric(metric):
    """(name, fn) for a metric given by name (``'accuracy'``, ``'top5'``) or as a callable
    ``fn(output, target) -> float`` (named by its ``__name__``)."""
    if callable(metric):
        return getattr(metric, "__name__", type(metric).__name__), metric
    if metric in METRICS:
        return ("accuracy" if metric == "acc" else metric), METRICS[metric]
    raise ValueError(f"unknown metric {metric!r}: expected a callable or one of "
                     f"{sorted(METRICS)}")
