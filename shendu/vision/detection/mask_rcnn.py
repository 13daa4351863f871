"""Mask R-CNN style instance segmentation (He et al. 2017): a small fully convolutional head
on RoI-Aligned features predicts an M x M mask per class for every detection (N6.1).

Training: for each foreground RoI, the target is its ground-truth instance mask resampled into
the RoI by roi_align (torchvision's project_masks_on_boxes), and the loss is the binary
cross-entropy of the true class's mask logits. Inference: each detection's mask probabilities
are pasted back into the image inside its box by bilinear interpolation and thresholded at 0.5.
"""
from __future__ import annotations

from shendu import backend, nn, ops
from shendu.nn import functional as F
from shendu.tensor import Tensor
from shendu.vision.detection._heads import conv_block
from shendu.vision.detection.rpn import FasterRCNN
from shendu.vision.ops import roi_align

np = backend.namespace("cpu")


class MaskHead(nn.Module):
    """Two 3x3 conv-BN-ReLU layers, a 2x ConvTranspose2d up-sampling and 1x1 class logits:
    (R, C, S, S) RoI features -> (R, num_classes + 1, 2S, 2S) mask logits."""

    def __init__(self, in_channels, num_classes, width=64):
        super().__init__()
        self.body = nn.Sequential(*conv_block(in_channels, width), *conv_block(width, width),
                                  nn.ConvTranspose2d(width, width, 2, stride=2), nn.ReLU(),
                                  nn.Conv2d(width, num_classes + 1, 1))

    def forward(self, x):
        return self.body(x)


def _paste_weights(lo, hi, m, size):
    """(K, size, m) weights that resample a length-m mask row spanning [lo, hi) onto pixels."""
    centres = np.arange(size)[None, :] + 0.5
    extent = np.maximum(hi - lo, 1e-6)[:, None]
    pos = (centres - lo[:, None]) / extent * m - 0.5  # in mask cells, centres at i + 0.5
    inside = (centres >= lo[:, None]) & (centres < hi[:, None])
    pos = np.clip(pos, 0, m - 1)
    low = np.floor(pos).astype(np.int64)
    high = np.minimum(low + 1, m - 1)
    frac = pos - low
    cells = np.arange(m)
    w = ((1 - frac)[..., None] * (low[..., None] == cells)
         + frac[..., None] * (high[..., None] == cells))
    return w * inside[..., None]


def paste_masks(mask_probs, boxes, image_size):
    """(K, M, M) mask probabilities inside (K, 4) boxes -> (K, H, W) probabilities in the image."""
    probs = backend.to_numpy(mask_probs._data if isinstance(mask_probs, Tensor) else mask_probs)
    b = backend.to_numpy(boxes._data if isinstance(boxes, Tensor) else boxes).astype(np.float64)
    height, width = image_size
    m = probs.shape[-1]
    wy = _paste_weights(b[:, 1], b[:, 3], m, height)  # (K, H, M)
    wx = _paste_weights(b[:, 0], b[:, 2], m, width)  # (K, W, M)
    return Tensor._wrap((wy @ probs @ wx.transpose(0, 2, 1)).astype(np.float32))


class MaskRCNN(FasterRCNN):
    """Faster R-CNN with RoI Align pooling and a mask head; eval outputs add ``masks``
    (D, H, W) bool.

    Args: as FasterRCNN, plus ``mask_roi_size`` (RoI Align side for the mask head; masks are
    twice that) and ``mask_threshold``.
    """

    def __init__(self, num_classes=10, mask_roi_size=7, mask_threshold=0.5, **kwargs):
        kwargs.setdefault("pooler", "align")
        super().__init__(num_classes, **kwargs)
        self.mask_roi_size, self.mask_threshold = mask_roi_size, mask_threshold
        self.mask_head = MaskHead(self.backbone.out_channels, num_classes)

    def _mask_logits(self, features, rois):
        pooled = roi_align(features, rois, self.mask_roi_size, 1.0 / self.backbone.stride, 2,
                           aligned=True)
        return self.mask_head(pooled)

    def extra_losses(self, features, rois, labels, matched, targets):
        label_data = backend.to_numpy(labels._data)
        pos_rois, gt_rows, gt_masks, offset, start = [], [], [], 0, 0
        for r, which, target in zip(rois, matched, targets):
            n = r.shape[0]
            pos = np.flatnonzero(label_data[start:start + n] > 0)
            start += n
            if len(pos) == 0:
                continue
            pos_rois.append(r[Tensor._wrap(pos)])
            gt_rows.append(which[pos] + offset)
            gt_masks.append(backend.to_numpy(target["masks"]._data))
            offset += target["masks"].shape[0]
        if not pos_rois:
            return {"loss_mask": (features * 0).sum()}
        pos_labels = label_data[label_data > 0]
        boxes = ops.cat(pos_rois, dim=0)
        logits = self._mask_logits(features, [b for b in pos_rois])
        size = logits.shape[-1]
        masks = Tensor._wrap(np.concatenate(gt_masks)[:, None].astype(logits.dtype))
        rows = np.concatenate(gt_rows).astype(logits.dtype)[:, None]
        targets_m = roi_align(masks, Tensor._wrap(np.concatenate([rows, backend.to_numpy(
            boxes._data)], axis=1)), size, 1.0)[:, 0]
        picked = logits[Tensor._wrap(np.arange(len(pos_labels))), Tensor._wrap(pos_labels)]
        return {"loss_mask": F.binary_cross_entropy_with_logits(picked, targets_m.detach())}

    def add_outputs(self, features, detections, image_size):
        for i, det in enumerate(detections):
            if det["boxes"].shape[0] == 0:
                det["masks"] = Tensor._wrap(np.zeros((0,) + image_size, dtype=bool))
                continue
            rois = Tensor._wrap(np.concatenate([np.full((det["boxes"].shape[0], 1), i,
                                                        dtype=np.float32),
                                                backend.to_numpy(det["boxes"]._data)], axis=1))
            logits = self._mask_logits(features, rois).detach()
            labels = backend.to_numpy(det["labels"]._data)
            probs = F.sigmoid(logits[Tensor._wrap(np.arange(len(labels))),
                                     Tensor._wrap(labels)])
            pasted = paste_masks(probs, det["boxes"], image_size)
            det["masks"] = Tensor._wrap(backend.to_numpy(pasted._data) > self.mask_threshold)
