"""RoI pooling ops with torchvision's signatures and CPU-kernel semantics (Concept: N6.1).

``roi_align`` (Mask R-CNN, He et al. 2017) averages bilinear samples taken on a regular grid
inside each bin; ``roi_pool`` (Fast R-CNN, Girshick 2015) takes the maximum over the integer
cells of each bin. Both accept ``boxes`` as ``Tensor[K, 5]`` (batch index, x1, y1, x2, y2) or
a list of ``Tensor[L, 4]``, one per image, and return ``(K, C, out_h, out_w)``.

How it is vectorised: bilinear sampling is separable, so RoI Align for one RoI is a product
``Wy @ feature @ Wx^T`` of two small interpolation matrices (``Wy`` is (out_h, H): row ``ph``
holds the summed bilinear weights of bin ``ph``'s sample rows; ``Wx`` likewise for columns),
built for all RoIs at once. The op is written with differentiable Tensor ops (an index_select
of each RoI's feature map and two batched matmuls), so its gradient with respect to the
feature map (and any higher derivative) comes from autograd. RoI Pool gathers every bin's
window cells with one advanced index and keeps the argmax, so its gradient is a scatter-add
to the winning cells, as in torchvision's kernel.
"""
from __future__ import annotations


from shendu import backend, kernels
from shendu.nn.module import Module
from shendu.tensor import Tensor


def _pair(value, op):
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ValueError(f"{op}: output_size must be a positive int or a pair of them, "
                         f"got {value!r}")
    return tuple(value)


def _rois_array(op, x, boxes):
    """Normalize ``boxes`` to a (K, 5) float array (batch index, x1, y1, x2, y2)."""
    xp = x._xp
    if isinstance(boxes, (list, tuple)):
        parts = []
        for i, b in enumerate(boxes):
            if not isinstance(b, Tensor) or b.ndim != 2 or b.shape[1] != 4:
                got = tuple(b.shape) if isinstance(b, Tensor) else type(b).__name__
                raise ValueError(f"{op}: boxes[{i}] must be a Tensor of shape (L, 4), got {got}")
            data = b._data.astype(x.dtype)
            parts.append(xp.concatenate([xp.full((data.shape[0], 1), i, dtype=x.dtype), data],
                                        axis=1))
        rois = xp.concatenate(parts, axis=0) if parts else xp.zeros((0, 5), dtype=x.dtype)
    elif isinstance(boxes, Tensor):
        if boxes.ndim != 2 or boxes.shape[1] != 5:
            raise ValueError(f"{op}: boxes must be a Tensor of shape (K, 5) (batch index, x1, "
                             f"y1, x2, y2) or a list of (L, 4) tensors, got shape "
                             f"{tuple(boxes.shape)}")
        rois = boxes._data.astype(x.dtype)
    else:
        raise TypeError(f"{op}: boxes must be a Tensor[K, 5] or a list of Tensor[L, 4], got "
                        f"{type(boxes).__name__}")
    batch = rois[:, 0].astype("int64")
    if rois.shape[0] and (batch.min() < 0 or batch.max() >= x.shape[0]
                          or not bool(xp.all(rois[:, 0] == batch))):
        raise ValueError(f"{op}: box batch indices must be integers in [0, {x.shape[0]}), got "
                         f"values in [{rois[:, 0].min()}, {rois[:, 0].max()}]")
    return rois, batch


def _check_input(op, x):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected input to be a shendu.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or not backend.is_floating(x.dtype):
        raise ValueError(f"{op}: expected a float input of shape (N, C, H, W), got "
                         f"{tuple(x.shape)} {x.dtype}")


def _axis_weights(xp, start, bin_size, grid, pooled, size, dtype):
    """Interpolation matrices (K, pooled, size) for one axis of RoI Align.

    Row ``p`` of RoI ``k`` sums, over that bin's ``grid[k]`` sample positions, the two linear
    interpolation weights each sample puts on its neighbouring cells, divided by ``grid[k]``
    (so the separable product divides by the sample count grid_h * grid_w, as the kernel).
    Samples outside [-1, size] contribute nothing; those in [-1, 0] clamp to cell 0.
    """
    samples = max(int(grid.max()) if grid.size else 1, 1)
    p = xp.arange(pooled, dtype=dtype)[None, :, None]
    i = xp.arange(samples, dtype=dtype)[None, None, :]
    g = grid.astype(dtype)[:, None, None]
    pos = (start[:, None, None] + p * bin_size[:, None, None]
           + (i + 0.5) * bin_size[:, None, None] / xp.maximum(g, 1))  # (K, pooled, samples)
    valid = (i < g) & (pos >= -1.0) & (pos <= size)
    pos = xp.maximum(pos, 0)
    low = xp.floor(pos).astype("int64")
    at_edge = low >= size - 1
    low = xp.where(at_edge, size - 1, low)
    high = xp.where(at_edge, size - 1, low + 1)
    frac = xp.where(at_edge, 0, pos - low)
    cells = xp.arange(size)
    weights = (((1 - frac) * valid)[..., None] * (low[..., None] == cells)
               + (frac * valid)[..., None] * (high[..., None] == cells))
    return (weights.sum(axis=2) / xp.maximum(g, 1)).astype(dtype)


def roi_align(input: Tensor, boxes, output_size, spatial_scale: float = 1.0,
              sampling_ratio: int = -1, aligned: bool = False) -> Tensor:
    """RoI Align (torchvision.ops.roi_align): (N, C, H, W), K boxes -> (K, C, out_h, out_w).

    Args:
        boxes: Tensor[K, 5] (batch index, x1, y1, x2, y2) or a list of Tensor[L, 4] in input
            image coordinates; ``spatial_scale`` maps them onto the feature map.
        sampling_ratio: samples per bin along each axis; <= 0 means ceil(roi size / bins).
        aligned: shift the box by -0.5 pixel so sample points sit on pixel centres (Detectron2);
            when False (the original op) boxes are at least 1x1.
    """
    _check_input("roi_align", input)
    out_h, out_w = _pair(output_size, "roi_align")
    xp, dtype = input._xp, input.dtype
    rois, batch = _rois_array("roi_align", input, boxes)
    _, _, height, width = input.shape
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (rois[:, j] * spatial_scale - offset for j in range(1, 5))
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:
        roi_w, roi_h = xp.maximum(roi_w, 1.0), xp.maximum(roi_h, 1.0)
    bin_h, bin_w = roi_h / out_h, roi_w / out_w
    if sampling_ratio > 0:
        grid_h = xp.full(rois.shape[0], sampling_ratio, dtype="int64")
        grid_w = grid_h
    else:
        grid_h = xp.ceil(roi_h / out_h).astype("int64")
        grid_w = xp.ceil(roi_w / out_w).astype("int64")
    wy = _axis_weights(xp, y1, bin_h, grid_h, out_h, height, dtype)  # (K, out_h, H)
    wx = _axis_weights(xp, x1, bin_w, grid_w, out_w, width, dtype)  # (K, out_w, W)
    features = input[Tensor._wrap(batch)]  # (K, C, H, W): each RoI's image
    return (Tensor._wrap(wy[:, None]) @ features) @ Tensor._wrap(wx.transpose(0, 2, 1)[:, None])


def _round_half_away(xp, v):
    return xp.sign(v) * xp.floor(xp.abs(v) + 0.5)  # C's round(), which the kernel uses


def _bin_ranges(xp, start, length, pooled, size):
    """[start, end) cell ranges (K, pooled) of RoI Pool's bins along one axis, clipped."""
    bin_size = length.astype("float64") / pooled
    p = xp.arange(pooled, dtype="float64")
    lo = xp.floor(p[None] * bin_size[:, None]).astype("int64") + start[:, None]
    hi = xp.ceil((p[None] + 1) * bin_size[:, None]).astype("int64") + start[:, None]
    return xp.clip(lo, 0, size), xp.clip(hi, 0, size)


def _pool_argmax(xp, rows_of, batch, rows, cols, span, size):
    """Winning cells of RoI max pooling for RoIs whose bins span at most ``span`` cells.

    rows_of: (N, H*W, C) feature rows; batch: (K,) image of each RoI; rows, cols: per axis the
    (K, out) [lo, hi) cell ranges of the bins. Returns (best cell index (K, C, oh, ow) into
    H*W, non-empty bin mask (K, 1, oh, ow)).
    """
    (h_lo, h_hi), (w_lo, w_hi), (span_h, span_w), (height, width) = rows, cols, span, size
    k, out_h, out_w = h_lo.shape[0], h_lo.shape[1], w_lo.shape[1]
    r = h_lo[:, :, None] + xp.arange(span_h)  # (K, out_h, span_h)
    c = w_lo[:, :, None] + xp.arange(span_w)
    inside = ((r < h_hi[:, :, None])[:, :, None, :, None]
              & (c < w_hi[:, :, None])[:, None, :, None, :])  # (K, oh, ow, sh, sw)
    r = xp.minimum(r, height - 1)[:, :, None, :, None]
    c = xp.minimum(c, width - 1)[:, None, :, None, :]
    cell = (r * width + c).reshape(k, out_h, out_w, span_h * span_w)
    inside = inside.reshape(cell.shape)
    values = rows_of[batch[:, None, None, None], cell]  # (K, oh, ow, window, C)
    values = xp.where(inside[..., None], values, -xp.inf)
    best = xp.argmax(values, axis=3)  # first maximum: smallest row, then smallest column
    best_cell = xp.take_along_axis(cell[..., None], best[:, :, :, None, :], axis=3)[:, :, :, 0]
    return best_cell.transpose(0, 3, 1, 2), inside.any(axis=-1)[:, None]


def _grouped_pool_argmax(xp, x, batch, rows, cols):
    """The NumPy reference of kernels.roi_pool_argmax: x (N, C, H, W) -> (best cell (K, C, oh,
    ow), non-empty bin mask (K, 1, oh, ow)). Every RoI's windows are padded to the largest bin
    of its group: grouping RoIs by their largest bin (a handful of groups) keeps one big box
    from padding all the small ones."""
    (h_lo, h_hi), (w_lo, w_hi) = rows, cols
    n, channels, height, width = x.shape
    rows_of = x.transpose(0, 2, 3, 1).reshape(n, height * width, channels)
    best_cell = xp.zeros((batch.shape[0], channels, h_lo.shape[1], w_lo.shape[1]),
                         dtype="int64")
    nonempty = xp.zeros((batch.shape[0], 1, h_lo.shape[1], w_lo.shape[1]), dtype=bool)
    if batch.shape[0] == 0:
        return best_cell, nonempty
    span_h = xp.maximum((h_hi - h_lo).max(axis=1), 1)
    span_w = xp.maximum((w_hi - w_lo).max(axis=1), 1)
    spans = backend.to_numpy(span_h * (width + 1) + span_w)
    for key in sorted(set(spans.tolist())):
        group = xp.asarray((spans == key).nonzero()[0])
        best_cell[group], nonempty[group] = _pool_argmax(
            xp, rows_of, batch[group], (h_lo[group], h_hi[group]), (w_lo[group], w_hi[group]),
            (key // (width + 1), key % (width + 1)), (height, width))
    return best_cell, nonempty


def roi_pool(input: Tensor, boxes, output_size, spatial_scale: float = 1.0) -> Tensor:
    """RoI max pooling (torchvision.ops.roi_pool): (N, C, H, W), K boxes -> (K, C, out_h, out_w).

    Box corners are scaled and rounded to cells; each of the out_h x out_w bins takes the
    maximum over its cells (an empty bin gives 0). The gradient goes to each bin's first
    maximal cell in row-major order, as the kernel's strict ``>`` scan picks it.
    """
    _check_input("roi_pool", input)
    out_h, out_w = _pair(output_size, "roi_pool")
    xp = input._xp
    rois, batch = _rois_array("roi_pool", input, boxes)
    n, channels, height, width = input.shape
    x1, y1, x2, y2 = (_round_half_away(xp, rois[:, j] * spatial_scale).astype("int64")
                      for j in range(1, 5))
    h_lo, h_hi = _bin_ranges(xp, y1, xp.maximum(y2 - y1 + 1, 1), out_h, height)  # (K, out_h)
    w_lo, w_hi = _bin_ranges(xp, x1, xp.maximum(x2 - x1 + 1, 1), out_w, width)
    if kernels.available(input._data):
        best_cell = kernels.roi_pool_argmax(input._data, batch, (h_lo, h_hi), (w_lo, w_hi))
        nonempty = ((h_hi > h_lo)[:, :, None] & (w_hi > w_lo)[:, None, :])[:, None]
        best_cell = xp.maximum(best_cell, 0)  # an empty bin's cell is masked out below
    else:
        best_cell, nonempty = _grouped_pool_argmax(xp, input._data, batch, (h_lo, h_hi),
                                                   (w_lo, w_hi))
    index = ((batch[:, None, None, None] * channels
              + xp.arange(channels)[None, :, None, None]) * (height * width) + best_cell)
    picked = input.reshape(-1)[Tensor._wrap(index)]
    return picked * Tensor._wrap(nonempty.astype(input.dtype))


class RoIAlign(Module):
    """Module form of :func:`roi_align` (torchvision.ops.RoIAlign)."""

    def __init__(self, output_size, spatial_scale: float, sampling_ratio: int,
                 aligned: bool = False):
        super().__init__()
        self.output_size = _pair(output_size, "RoIAlign")
        self.spatial_scale, self.sampling_ratio, self.aligned = (spatial_scale, sampling_ratio,
                                                                 aligned)

    def forward(self, input, rois):
        return roi_align(input, rois, self.output_size, self.spatial_scale,
                         self.sampling_ratio, self.aligned)

    def extra_repr(self):
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}")


class RoIPool(Module):
    """Module form of :func:`roi_pool` (torchvision.ops.RoIPool)."""

    def __init__(self, output_size, spatial_scale: float):
        super().__init__()
        self.output_size = _pair(output_size, "RoIPool")
        self.spatial_scale = spatial_scale

    def forward(self, input, rois):
        return roi_pool(input, rois, self.output_size, self.spatial_scale)

    def extra_repr(self):
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"


