"""Loss layers with torch's constructor arguments, each a wrapper over its functional form.

Every loss takes ``reduction`` in {'none', 'mean', 'sum'}; the deprecated ``size_average`` and
``reduce`` flags map onto it as in torch. Class weights (and BCEWithLogitsLoss's pos_weight)
are buffers, so they move with ``.to()`` and appear in ``state_dict()``.
"""
from __future__ import annotations

import warnings

from shendu.nn import functional as F
from shendu.nn._checks import check_tensor
from shendu.nn.module import Module
from shendu.tensor import Tensor


def _legacy_reduction(size_average, reduce):
    if size_average is None:
        size_average = True
    if reduce is None:
        reduce = True
    warnings.warn("size_average and reduce are deprecated; use reduction=", UserWarning,
                  stacklevel=3)
    if size_average and reduce:
        return "mean"
    return "sum" if reduce else "none"


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = _legacy_reduction(size_average, reduce)
        if reduction not in ("none", "mean", "sum"):
            raise ValueError(f"{type(self).__name__}: reduction must be 'none', 'mean' or "
                             f"'sum', got {reduction!r}")
        self.reduction = reduction

    def _check(self, input, target):
        check_tensor(f"{type(self).__name__}()", input)
        check_tensor(f"{type(self).__name__}()", target, "target")


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        if weight is not None and not isinstance(weight, Tensor):
            raise TypeError(f"{type(self).__name__}: weight must be a Tensor or None, got "
                            f"{type(weight).__name__}")
        self.register_buffer("weight", weight)


class CrossEntropyLoss(_WeightedLoss):
    """Cross-entropy of class logits against targets.  Concept: N3.2.1.

    loss_n = -w[y_n] log softmax(x_n)[y_n] for class-index targets (mean divides by the sum of
    the weights of the non-ignored targets), or -sum_c w_c p_c log softmax(x_n)_c for class
    probabilities p. label_smoothing eps mixes the target with the uniform distribution.

    Args:
        weight: (C,) rescaling weight per class. Default: None.
        ignore_index: class-index targets equal to it contribute nothing. Default: -100.
        reduction: 'none' | 'mean' | 'sum'. Default: 'mean'.
        label_smoothing: in [0, 1]. Default: 0.0.

    Shape:
        input (N, C) or (N, C, d1, ...), target (N) / (N, d1, ...) int64 or the input's shape
        -> scalar, or the target's batch shape with reduction='none'
    """

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", label_smoothing=0.0):
        super().__init__(weight, size_average, reduce, reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got "
                             f"{label_smoothing}")
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        self._check(input, target)
        return F.cross_entropy(input, target, weight=self.weight,
                               ignore_index=self.ignore_index, reduction=self.reduction,
                               label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities: loss_n = -w[y_n] x[n, y_n].

    Args: weight (C,), ignore_index (-100), reduction ('mean': divides by the summed weights).

    Shape:
        input (N, C) or (N, C, d1, ...), target (N) / (N, d1, ...) int64 -> scalar or target's
    """

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        self._check(input, target)
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class MSELoss(_Loss):
    """Mean squared error: (x - y)^2, reduced.

    Shape:
        input (*), target (*) of the same shape -> scalar, or (*) with reduction='none'
    """

    def forward(self, input, target):
        self._check(input, target)
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error: |x - y|, reduced.

    Shape:
        input (*), target (*) of the same shape -> scalar, or (*) with reduction='none'
    """

    def forward(self, input, target):
        self._check(input, target)
        return F.l1_loss(input, target, reduction=self.reduction)


class BCELoss(_WeightedLoss):
    """Binary cross-entropy of probabilities: -w (y log x + (1 - y) log(1 - x)), with the logs
    clamped at -100 as torch's.

    Args: weight (broadcast to the input), reduction.

    Shape:
        input (*) in [0, 1], target (*) of the same shape -> scalar or (*)
    """

    def forward(self, input, target):
        self._check(input, target)
        return F.binary_cross_entropy(input, target, weight=self.weight,
                                      reduction=self.reduction)


class BCEWithLogitsLoss(_WeightedLoss):
    """Sigmoid + binary cross-entropy fused for stability:
    -w (p y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))), p = pos_weight.

    Args:
        weight: broadcast to the input. Default: None.
        reduction: 'none' | 'mean' | 'sum'. Default: 'mean'.
        pos_weight: weight of positive examples, broadcast along the last dim. Default: None.

    Shape:
        input (*) logits, target (*) of the same shape -> scalar or (*)
    """

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean",
                 pos_weight=None):
        super().__init__(weight, size_average, reduce, reduction)
        if pos_weight is not None and not isinstance(pos_weight, Tensor):
            raise TypeError(f"BCEWithLogitsLoss: pos_weight must be a Tensor or None, got "
                            f"{type(pos_weight).__name__}")
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        self._check(input, target)
        return F.binary_cross_entropy_with_logits(input, target, weight=self.weight,
                                                  reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


class SmoothL1Loss(_Loss):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta, d = input - target.

    Shape: input and target (*), same shape -> scalar, or (*) with reduction='none'.
    """

    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input, target):
        self._check(input, target)
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta): SmoothL1Loss(beta=delta) x delta.

    Shape: input and target (*), same shape -> scalar, or (*) with reduction='none'.
    """

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input, target):
        self._check(input, target)
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class KLDivLoss(Module):
    """KL(target || exp(input)) summed per element: target (log target - input).

    Args:
        reduction: 'batchmean' (the KL divergence: sum / batch size), 'sum', 'mean' (sum /
            element count, torch's default) or 'none'.
        log_target: the target holds log-probabilities too. Default: False.

    Shape: input (log-probabilities) and target (*), same shape.
    """

    def __init__(self, size_average=None, reduce=None, reduction="mean", log_target=False):
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = _legacy_reduction(size_average, reduce)
        if reduction not in ("none", "mean", "sum", "batchmean"):
            raise ValueError(f"KLDivLoss: reduction must be 'none', 'mean', 'sum' or "
                             f"'batchmean', got {reduction!r}")
        self.reduction = reduction
        self.log_target = log_target

    def forward(self, input, target):
        check_tensor("KLDivLoss()", input)
        check_tensor("KLDivLoss()", target, "target")
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)
