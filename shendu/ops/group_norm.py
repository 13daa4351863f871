"""Per-sample normalizations: group norm and instance norm, on batch norm's fused
``Normalize`` Function (so their gradients and second derivatives are its own).

    group_norm:    (N, C, *) viewed as (N, G, C/G, rest); each (sample, group) normalized
                   over (C/G, rest), then a per-channel affine map.
    instance_norm: group_norm with one channel per group, plus optional running statistics.
"""
from __future__ import annotations

from shendu.autograd import no_grad
from shendu.ops.nn import _check_tensor
from shendu.ops.normalization import Normalize, _affine_param, _moments, batch_norm


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalize each sample over each group of C / num_groups channels and the spatial
    dims (Wu & He, 2018), then a per-channel affine map. Independent of the batch size.

    Shape: input (N, C, *); weight and bias (C,) -> output as input.
    """
    op = "group_norm"
    _check_tensor(input, op)
    if input.ndim < 2:
        raise ValueError(f"{op}: expected input (N, C, *), got {input.shape}")
    n, channels = input.shape[:2]
    if isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups < 1 \
            or channels % num_groups:
        raise ValueError(f"{op}: num_groups must be a positive int dividing the {channels} "
                         f"channels of input {input.shape}, got {num_groups!r}")
    weight = _affine_param(weight, (channels,), op, "weight")
    bias = _affine_param(bias, (channels,), op, "bias")
    per_group = channels // num_groups
    grouped = (n, num_groups, per_group, input.numel() // max(n * channels, 1))
    x = input.reshape(grouped)
    if weight is not None:
        weight = weight.reshape(1, num_groups, per_group, 1)
    if bias is not None:
        bias = bias.reshape(1, num_groups, per_group, 1)
    centered, var = _moments(x._data, (2, 3))
    out = Normalize.apply(x, weight, bias, centered=centered, var=var, dims=(2, 3), eps=eps)
    return out.reshape(input.shape)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-5):
    """Normalize each (sample, channel) plane over its spatial dims (Ulyanov et al., 2016):
    group_norm with one channel per group. With running statistics, each is updated with
    the batch average of the per-plane mean and unbiased variance (torch's rule); with
    use_input_stats=False the running statistics normalize instead.

    Shape: input (N, C, *); running stats, weight, bias (C,) -> output as input.
    """
    op = "instance_norm"
    _check_tensor(input, op)
    if input.ndim < 3:
        raise ValueError(f"{op}: expected input (N, C, *spatial) with spatial dims, got "
                         f"{input.shape}")
    if not use_input_stats:
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    channels = input.shape[1]
    count = input.numel() // max(input.shape[0] * channels, 1)
    if count <= 1:
        raise ValueError(f"{op}: expected more than 1 spatial element per channel, got input "
                         f"{input.shape}")
    out = group_norm(input, channels, weight, bias, eps)
    for t, what in ((running_mean, "running_mean"), (running_var, "running_var")):
        _affine_param(t, (channels,), op, what)
    if running_mean is not None or running_var is not None:
        planes = input._data.reshape(input.shape[0], channels, -1)
        with no_grad():
            if running_mean is not None:
                running_mean.mul_(1.0 - momentum).add_(planes.mean(axis=(0, 2)),
                                                       alpha=momentum)
            if running_var is not None:
                unbiased = planes.var(axis=2, ddof=1).mean(axis=0)
                running_var.mul_(1.0 - momentum).add_(unbiased, alpha=momentum)
    return out
