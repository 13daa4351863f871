"""torch.nn.functional's namespace: thin wrappers over ``shendu.ops`` with torch's signatures.

No derivative code lives here. Arguments torch keeps only for compatibility are accepted:
``size_average``/``reduce`` (the legacy spelling of ``reduction``) are translated as torch
does, and ``inplace=True`` writes the result into ``input`` when autograd is not recording
through it (``no_grad``, or an input that does not require grad); when it is, the result is
returned out of place, because overwriting a tensor the graph still needs would corrupt the
gradient. Always use the returned tensor.

    >>> import shendu, shendu.nn.functional as F
    >>> F.cross_entropy(shendu.zeros(4, 3), shendu.tensor([0, 1, 2, 0])).shape
    ()
"""
from __future__ import annotations

import warnings

from shendu.autograd import is_grad_enabled
from shendu.ops import activation as _act
from shendu.ops import loss as _loss
from shendu.ops import nn as _nn
from shendu.ops.attention import scaled_dot_product_attention  # noqa: F401
from shendu.ops.conv import adaptive_avg_pool2d, avg_pool2d, conv2d, conv_transpose2d, max_pool2d  # noqa: F401
from shendu.ops.conv1d import (  # noqa: F401
    adaptive_avg_pool1d,
    adaptive_max_pool1d,
    avg_pool1d,
    conv1d,
    max_pool1d,
)
from shendu.ops.fold import fold, unfold  # noqa: F401
from shendu.ops.group_norm import group_norm, instance_norm  # noqa: F401
from shendu.ops.loss import l1_penalty, l2_penalty  # noqa: F401
from shendu.ops.nn import linear, one_hot  # noqa: F401
from shendu.ops.normalization import batch_norm, layer_norm  # noqa: F401
from shendu.ops.norms import cosine_similarity, normalize  # noqa: F401
from shendu.ops.pool import adaptive_max_pool2d  # noqa: F401
from shendu.ops.resample import interpolate, pixel_shuffle, pixel_unshuffle  # noqa: F401
from shendu.ops.shape import pad as _pad


def _inplace(input, out, inplace):
    """Honour ``inplace=True`` where autograd allows it (see the module docstring)."""
    if not inplace or (input.requires_grad and is_grad_enabled()):
        return out
    input.copy_(out.detach())
    return input


def relu(input, inplace=False):
    """max(0, x). Concept: N3.2.2."""
    return _inplace(input, _act.relu(input), inplace)


def relu6(input, inplace=False):
    """min(max(0, x), 6). Concept: N3.2.2."""
    out = _act.hardtanh(input, 0.0, 6.0) if input.is_floating_point() else input.clamp(0, 6)
    return _inplace(input, out, inplace)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """x if x > 0 else negative_slope * x (torch's 0.01; the notes use 0.1). Concept: N3.2.2."""
    return _inplace(input, _act.leaky_relu(input, negative_slope), inplace)


def elu(input, alpha=1.0, inplace=False):
    """x if x > 0 else alpha (e^x - 1). Concept: N3.2.2."""
    return _inplace(input, _act.elu(input, alpha), inplace)


def silu(input, inplace=False):
    """x sigmoid(x) (swish)."""
    return _inplace(input, _act.silu(input), inplace)


def mish(input, inplace=False):
    """x tanh(softplus(x))."""
    return _inplace(input, _act.mish(input), inplace)


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + e^(beta x)) / beta; x where beta x > threshold."""
    return _act.softplus(input, beta, threshold)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """clamp(x, min_val, max_val)."""
    return _inplace(input, _act.hardtanh(input, min_val, max_val), inplace)


def selu(input, inplace=False):
    """scale * elu(x, alpha) with the self-normalising constants."""
    return _inplace(input, _act.selu(input), inplace)


def logsigmoid(input):
    """log sigmoid(x), stable."""
    return _act.logsigmoid(input)


def prelu(input, weight):
    """x if x > 0 else weight[c] * x, c the channel (dim 1)."""
    return _act.prelu(input, weight)


def gelu(input, approximate="none"):
    """x Phi(x) (exact, or the tanh approximation with approximate='tanh')."""
    return _act.gelu(input, approximate)


def sigmoid(input):
    """1 / (1 + e^-x). Concept: N3.2.2."""
    return _act.sigmoid(input)


def tanh(input):
    """Hyperbolic tangent. Concept: N3.2.2."""
    return _act.tanh(input)


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """e^x_i / sum_j e^x_j along ``dim`` (stable). ``dtype`` casts the input first."""
    return _act.softmax(input if dtype is None else input.to(dtype), dim)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """log softmax along ``dim`` (stable). ``dtype`` casts the input first."""
    return _act.log_softmax(input if dtype is None else input.to(dtype), dim)


def dropout(input, p=0.5, training=True, inplace=False, *, generator=None):
    """Inverted dropout; ``generator`` (keyword, a shendu extension) draws the mask.

    Concept: N3.2.5.
    """
    return _inplace(input, _nn.dropout(input, p, training, generator), inplace)


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, L) input with probability p; scale by 1/(1-p)."""
    return _inplace(input, _nn.channel_dropout(input, p, training, op="dropout1d"), inplace)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, H, W) input with probability p; scale by 1/(1-p).

    A 3-D input is read as (N, C, L), as torch does (with its warning)."""
    if input.ndim == 3:
        warnings.warn("dropout2d: received a 3-D input; treating it as (N, C, L) and dropping "
                      "whole channels of it (use dropout1d for that)", UserWarning,
                      stacklevel=2)
    return _inplace(input, _nn.channel_dropout(input, p, training, op="dropout2d"), inplace)


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """Deprecated torch spelling of interpolate."""
    return interpolate(input, size, scale_factor, mode, align_corners)


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """Rows of ``weight`` at the indices ``input``; ``padding_idx``'s row gets no gradient.

    max_norm, scale_grad_by_freq and sparse are not supported and raise when set.
    """
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: max_norm, scale_grad_by_freq and sparse are not "
                                  f"supported (got max_norm={max_norm}, scale_grad_by_freq="
                                  f"{scale_grad_by_freq}, sparse={sparse})")
    return _nn.embedding(input, weight, padding_idx)


def pad(input, pad, mode="constant", value=None):
    """Pad the last dims: ``pad`` = (left, right, top, bottom, ...) from the last dim back."""
    return _pad(input, pad, mode, 0.0 if value is None else value)


def _reduction(size_average, reduce, reduction):
    """torch's legacy_get_string: reduce=False -> 'none', size_average=False -> 'sum'."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0):
    """Cross-entropy of logits against class indices or probabilities. Concept: N3.2.1."""
    return _loss.cross_entropy(input, target, weight, ignore_index,
                               _reduction(size_average, reduce, reduction), label_smoothing)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log-likelihood of log-probabilities. Concept: N3.2.1."""
    return _loss.nll_loss(input, target, weight, ignore_index,
                          _reduction(size_average, reduce, reduction))


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """w (x - y)^2, reduced; target (and weight) must have input's shape."""
    return _loss.mse_loss(input, target, _reduction(size_average, reduce, reduction), weight)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """w |x - y|, reduced; target (and weight) must have input's shape."""
    return _loss.l1_loss(input, target, _reduction(size_average, reduce, reduction), weight)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """Binary cross-entropy of probabilities (logs clamped at -100). Concept: N3.2.1."""
    return _loss.binary_cross_entropy(input, target, weight,
                                      _reduction(size_average, reduce, reduction))


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None,
                                     reduce=None, reduction="mean", pos_weight=None):
    """Stable sigmoid + binary cross-entropy, with ``pos_weight``. Concept: N3.2.1."""
    return _loss.binary_cross_entropy_with_logits(
        input, target, weight, _reduction(size_average, reduce, reduction), pos_weight)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta; target must have input's shape."""
    return _loss.smooth_l1_loss(input, target, _reduction(size_average, reduce, reduction),
                                beta)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta)."""
    return _loss.huber_loss(input, target, reduction, delta, weight)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """KL(target || exp(input)) per element; reduction 'batchmean' is the true KL."""
    return _loss.kl_div(input, target, _reduction(size_average, reduce, reduction), log_target)
