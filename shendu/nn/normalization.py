"""Normalization layers: BatchNorm1d/2d, LayerNorm, GroupNorm, InstanceNorm1d/2d
(Concept: N3.2.6).

Batch norm (Ioffe & Szegedy 2015) normalizes each channel over the batch (and spatial dims):
    y = (x - mean) / sqrt(var + eps) * weight + bias
with the batch's biased variance while training; the running estimates, updated as
    running = (1 - momentum) * running + momentum * batch_stat   (unbiased var)
are used in eval mode. momentum=None makes the update a cumulative average (factor
1 / num_batches_tracked). Layer norm (Ba et al. 2016) normalizes each sample over its last dims.
"""
from __future__ import annotations

from shendu import backend, creation
from shendu.nn import functional as F
from shendu.nn import init
from shendu.nn._checks import check_input, check_tensor
from shendu.nn.module import Module, Parameter



def _affine_parameters(module, shape, enabled, bias, device, dtype):
    """Register ``weight`` and ``bias`` of ``shape`` (bias only with ``bias``), or both as None;
    ``_reset_affine`` fills them with the identity (ones and zeros)."""
    if enabled:
        module.weight = Parameter(creation.empty(shape, device=device, dtype=dtype))
        if bias:
            module.bias = Parameter(creation.empty(shape, device=device, dtype=dtype))
        else:
            module.register_parameter("bias", None)
    else:
        module.register_parameter("weight", None)
        module.register_parameter("bias", None)


def _reset_affine(module):
    if module.weight is not None:
        init.ones_(module.weight)
    if module.bias is not None:
        init.zeros_(module.bias)


class _BatchNorm(Module):
    """Shared state and forward of BatchNorm1d/2d; subclasses set the accepted ranks."""

    _ndims = ()
    _layout = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, *, bias=True, device=None, dtype=None):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        _affine_parameters(self, num_features, affine, bias, device, dtype)
        if track_running_stats:
            self.register_buffer("running_mean",
                                 creation.zeros(num_features, device=device, dtype=dtype))
            self.register_buffer("running_var",
                                 creation.ones(num_features, device=device, dtype=dtype))
            self.register_buffer("num_batches_tracked",
                                 creation.tensor(0, dtype=backend.int64, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        _reset_affine(self)

    def _check_input(self, input):
        name = f"{type(self).__name__}({self.num_features})"
        check_tensor(name, input)
        ok = input.ndim in self._ndims and input.shape[1] == self.num_features
        check_input(name, input, ok, self._layout.replace("C", str(self.num_features)))

    def forward(self, input):
        self._check_input(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average over all batches so far
                factor = 1.0 / int(self.num_batches_tracked.item())
        # Batch statistics while training, and in eval mode when there are no running ones.
        use_batch_stats = self.training or self.running_mean is None
        # Running buffers are passed only where F should update (train) or use (eval) them.
        track = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if track else None,
                            self.running_var if track else None, self.weight, self.bias,
                            use_batch_stats, factor, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization over a 2-D (N, C) or 3-D (N, C, L) input, per channel C.
    Concept: N3.2.6.

    Args:
        num_features: C.
        eps: added to the variance. Default: 1e-5.
        momentum: running-statistics factor; None = cumulative average. Default: 0.1.
        affine: learn weight (init 1) and bias (init 0). Default: True.
        track_running_stats: keep running_mean (init 0), running_var (init 1) and
            num_batches_tracked (int64); without them eval mode uses batch statistics.
        bias: (keyword) learn the bias when affine. Default: True.

    Shape:
        input (N, C) or (N, C, L) -> output of the same shape
    """

    _ndims = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalization of a (N, C, H, W) input per channel C, over N, H and W.
    Concept: N3.2.6. Arguments as BatchNorm1d.

    Shape:
        input (N, C, H, W) -> output (N, C, H, W)
    """

    _ndims = (4,)
    _layout = "(N, C, H, W)"


class LayerNorm(Module):
    """Normalize each sample over its last len(normalized_shape) dims:
    y = (x - mean) / sqrt(var + eps) * weight + bias (biased variance; Ba et al. 2016).

    Args:
        normalized_shape: int or tuple, the trailing dims to normalize over.
        eps: added to the variance. Default: 1e-5.
        elementwise_affine: learn weight (init 1) and bias (init 0) of normalized_shape.
        bias: learn the bias when elementwise_affine. Default: True.

    Shape:
        input (*, *normalized_shape) -> output of the same shape
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, *,
                 device=None, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        _affine_parameters(self, self.normalized_shape, elementwise_affine, bias, device, dtype)
        self.reset_parameters()

    def reset_parameters(self):
        _reset_affine(self)

    def forward(self, input):
        name = f"LayerNorm({self.normalized_shape})"
        check_tensor(name, input)
        k = len(self.normalized_shape)
        ok = input.ndim >= k and tuple(input.shape[input.ndim - k:]) == self.normalized_shape
        check_input(name, input, ok, "(..., " + ", ".join(map(str, self.normalized_shape)) + ")")
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


class _InstanceNorm(_BatchNorm):
    """Instance norm (Ulyanov et al. 2016): each (sample, channel) plane normalized over its
    own spatial dims. Same state as batch norm, but affine and track_running_stats default
    to False (torch's); with running statistics, eval mode normalizes with them."""

    _spatial = 0

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False,
                 track_running_stats=False, device=None, dtype=None, *, bias=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats,
                         bias=bias, device=device, dtype=dtype)

    def forward(self, input):
        name = f"{type(self).__name__}({self.num_features})"
        check_tensor(name, input)
        batched = input.ndim == self._spatial + 2
        ok = input.ndim in (self._spatial + 1, self._spatial + 2) \
            and input.shape[-self._spatial - 1] == self.num_features
        check_input(name, input, ok, self._layout.replace("C", str(self.num_features)))
        x = input if batched else input.unsqueeze(0)
        out = F.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                              self.training or not self.track_running_stats,
                              0.0 if self.momentum is None else self.momentum, self.eps)
        return out if batched else out.squeeze(0)


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization of (N, C, L) signals over L, per sample and channel.

    Args: num_features (C), eps, momentum, affine (default False), track_running_stats
    (default False), as BatchNorm1d.

    Shape: input (N, C, L) or (C, L) -> the same shape.
    """

    _spatial = 1
    _layout = "(N, C, L) or (C, L)"


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization of (N, C, H, W) images over H and W, per sample and channel
    (style transfer's normalization).

    Args: num_features (C), eps, momentum, affine (default False), track_running_stats
    (default False), as BatchNorm2d.

    Shape: input (N, C, H, W) or (C, H, W) -> the same shape.
    """

    _spatial = 2
    _layout = "(N, C, H, W) or (C, H, W)"


class GroupNorm(Module):
    """Group normalization (Wu & He 2018): each sample's channels split into num_groups
    groups, each normalized over its channels and spatial dims; then a per-channel affine
    map. Works the same for any batch size (also 1).

    Args:
        num_groups: groups G, dividing num_channels.
        num_channels: C.
        eps: added to the variance. Default: 1e-5.
        affine: learn weight (init 1) and bias (init 0) of shape (C,). Default: True.
        bias: (keyword) learn the bias when affine. Default: True.

    Shape: input (N, C, *) -> the same shape.
    """

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None,
                 dtype=None, *, bias=True):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        _affine_parameters(self, num_channels, affine, bias, device, dtype)
        self.reset_parameters()

    def reset_parameters(self):
        _reset_affine(self)

    def forward(self, input):
        name = f"GroupNorm({self.num_groups}, {self.num_channels})"
        check_tensor(name, input)
        check_input(name, input, input.ndim >= 2 and input.shape[1] == self.num_channels,
                    f"(N, {self.num_channels}, *)")
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
                f", bias={self.bias is not None}")
