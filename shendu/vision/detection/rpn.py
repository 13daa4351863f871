"""A Faster R-CNN style region proposal network (Ren et al. 2015): proposals are learned.

At every cell of the stride-4 feature map, ``A`` anchor boxes (sizes x aspect ratios) are
scored for "object or not" and regressed towards the object (BoxCoder weights (1, 1, 1, 1));
the best-scoring decoded boxes, after NMS, become the proposals of the Fast R-CNN head that
shares the backbone. Training labels follow torchvision's RPN: anchors with IoU >= fg_iou are
positive, < bg_iou negative, and each ground truth's best anchors are positive too.
"""
from __future__ import annotations


from shendu import backend, nn
from shendu.nn import functional as F
from shendu.tensor import Tensor
from shendu.vision.detection._heads import match, sample
from shendu.vision.detection.fast_rcnn import FastRCNN
from shendu.vision.ops import BoxCoder, box_iou, clip_boxes_to_image, nms

np = backend.namespace("cpu")


def make_anchors(sizes, aspect_ratios, feature_size, stride):
    """(H * W * A, 4) anchors, location-major: A = len(sizes) * len(aspect_ratios) per cell,
    centred on the cell centres; aspect ratio is height / width (torchvision's)."""
    ratios = np.asarray(aspect_ratios, dtype=np.float64)
    h_ratio = np.sqrt(ratios)
    ws = (np.asarray(sizes, dtype=np.float64)[None, :] / h_ratio[:, None]).reshape(-1)
    hs = (np.asarray(sizes, dtype=np.float64)[None, :] * h_ratio[:, None]).reshape(-1)
    base = np.stack([-ws, -hs, ws, hs], axis=1) / 2
    fh, fw = feature_size
    cy, cx = np.meshgrid((np.arange(fh) + 0.5) * stride, (np.arange(fw) + 0.5) * stride,
                         indexing="ij")
    shifts = np.stack([cx, cy, cx, cy], axis=-1).reshape(-1, 1, 4)
    return (shifts + base[None]).reshape(-1, 4).astype(np.float32)


class RegionProposalNetwork(nn.Module):
    """RPN head (3x3 conv, then 1x1 objectness and box-delta convs) with anchor matching,
    its loss, and proposal selection."""

    def __init__(self, in_channels, sizes=(12, 20, 30), aspect_ratios=(1.0, 2.0, 4.0),
                 fg_iou=0.6, bg_iou=0.3, batch_size_per_image=128, positive_fraction=0.5,
                 pre_nms_top_n=300, post_nms_top_n=60, nms_thresh=0.7):
        super().__init__()
        self.sizes, self.aspect_ratios = tuple(sizes), tuple(aspect_ratios)
        a = len(self.sizes) * len(self.aspect_ratios)
        self.conv = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.cls_logits = nn.Conv2d(in_channels, a, 1)
        self.bbox_pred = nn.Conv2d(in_channels, 4 * a, 1)
        self.coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
        self.fg_iou, self.bg_iou = fg_iou, bg_iou
        self.batch_size, self.positive_fraction = batch_size_per_image, positive_fraction
        self.pre_nms_top_n, self.post_nms_top_n, self.nms_thresh = (pre_nms_top_n,
                                                                    post_nms_top_n, nms_thresh)
        self._anchors = {}

    def anchors(self, feature_size, stride):
        key = (tuple(feature_size), stride)
        if key not in self._anchors:
            self._anchors[key] = Tensor._wrap(make_anchors(self.sizes, self.aspect_ratios,
                                                           feature_size, stride))
        return self._anchors[key]

    def forward(self, features, image_size, stride, targets=None, rng=None):
        n, _, fh, fw = features.shape
        a = len(self.sizes) * len(self.aspect_ratios)
        h = F.relu(self.conv(features))
        objectness = self.cls_logits(h).permute(0, 2, 3, 1).reshape(n, -1)  # (N, HWA)
        deltas = self.bbox_pred(h).reshape(n, a, 4, fh, fw).permute(0, 3, 4, 1, 2) \
            .reshape(n, -1, 4)
        anchors = self.anchors((fh, fw), stride)
        proposals = self.select(objectness.detach(), deltas.detach(), anchors, image_size)
        losses = {}
        if targets is not None:
            losses = self.loss(objectness, deltas, anchors, targets, rng)
        return proposals, losses

    def select(self, objectness, deltas, anchors, image_size):
        scores_all = backend.to_numpy(objectness._data)
        proposals = []
        for i in range(objectness.shape[0]):  # a handful of images; each step is vectorised
            top = np.argsort(-scores_all[i], kind="stable")[:self.pre_nms_top_n]
            idx = Tensor._wrap(top)
            boxes = self.coder.decode_single(deltas[i][idx], anchors[idx])
            boxes = clip_boxes_to_image(boxes, image_size)
            sides = backend.to_numpy((boxes[:, 2:] - boxes[:, :2])._data)
            ok = Tensor._wrap(np.flatnonzero((sides >= 1.0).all(axis=1)))
            boxes, scores = boxes[ok], Tensor._wrap(scores_all[i][top])[ok]
            keep = nms(boxes, scores, self.nms_thresh)[:self.post_nms_top_n]
            proposals.append(boxes[keep].detach())
        return proposals

    def loss(self, objectness, deltas, anchors, targets, rng):
        picked, labels, box_rows, box_targets = [], [], [], []
        n_anchor = anchors.shape[0]
        for i, target in enumerate(targets):
            gt = target["boxes"]
            which, code = match(anchors, gt, self.fg_iou, self.bg_iou)
            if gt.shape[0]:  # each ground truth's best anchors are positive (low-quality matches)
                iou = backend.to_numpy(box_iou(gt, anchors)._data)
                best = iou.max(axis=1, keepdims=True)
                g, p = np.nonzero((iou == best) & (best > 0))
                code[p], which[p] = 1, g
            keep = sample(code, rng, self.batch_size, self.positive_fraction)
            picked.append(keep + i * n_anchor)
            labels.append((code[keep] == 1).astype(np.float32))
            pos = keep[code[keep] == 1]
            if len(pos):
                box_rows.append(pos + i * n_anchor)
                box_targets.append(backend.to_numpy(self.coder.encode_single(
                    gt[Tensor._wrap(which[pos])], anchors[Tensor._wrap(pos)])._data))
        picked = np.concatenate(picked)
        flat_obj = objectness.reshape(-1)[Tensor._wrap(picked)]
        loss_obj = F.binary_cross_entropy_with_logits(
            flat_obj, Tensor._wrap(np.concatenate(labels).astype(flat_obj.dtype)))
        if box_rows:
            rows = Tensor._wrap(np.concatenate(box_rows))
            loss_box = F.smooth_l1_loss(deltas.reshape(-1, 4)[rows],
                                        Tensor._wrap(np.concatenate(box_targets)
                                                     .astype(deltas.dtype)),
                                        reduction="sum", beta=1.0 / 9) / len(picked)
        else:
            loss_box = (deltas * 0).sum()
        return {"loss_objectness": loss_obj, "loss_rpn_box_reg": loss_box}


class FasterRCNN(FastRCNN):
    """Fast R-CNN whose proposals come from a region proposal network on the same features,
    trained jointly (the proposals are detached, torchvision's approximate joint training).

    Args: as FastRCNN, plus ``rpn`` keyword arguments for RegionProposalNetwork.
    """

    def __init__(self, num_classes=10, rpn=None, **kwargs):
        super().__init__(num_classes, **kwargs)
        self.rpn = RegionProposalNetwork(self.backbone.out_channels, **(rpn or {}))

    def propose(self, images, features, targets):
        return self.rpn(features, tuple(images.shape[2:]), self.backbone.stride,
                        targets if self.training else None, self.rng)


