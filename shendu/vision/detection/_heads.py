"""Pieces the R-CNN family shares: a small backbone, proposal-to-ground-truth matching, RoI
sampling, the multi-task loss and the post-processing into detections (Concept: N6.1).

The conventions are torchvision.models.detection's (roi_heads.py, _utils.py): labels 1..C
with 0 for background, class-specific box deltas coded with weights (10, 10, 5, 5), a loss of
cross-entropy plus smooth L1 (beta 1/9) summed over foreground RoIs and divided by the number
of sampled RoIs.
"""
from __future__ import annotations

from shendu import backend, nn, ops
from shendu.nn import functional as F
from shendu.tensor import Tensor
from shendu.vision.ops import BoxCoder, batched_nms, box_iou, clip_boxes_to_image

np = backend.namespace("cpu")  # matching and sampling are index bookkeeping on the host


def conv_block(c_in, c_out):
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class SmallBackbone(nn.Sequential):
    """Three 3x3 conv-BN-ReLU stages with two 2x2 max-pools: (N, C_in, H, W) ->
    (N, width[2], H/4, W/4); ``out_channels`` and ``stride`` (4) tell the heads what they get."""

    def __init__(self, in_channels=1, widths=(16, 32, 48)):
        a, b, c = widths
        super().__init__(*conv_block(in_channels, a), nn.MaxPool2d(2), *conv_block(a, b),
                         nn.MaxPool2d(2), *conv_block(b, c))
        self.out_channels, self.stride = c, 4


class BoxHead(nn.Module):
    """Two fully connected layers on flattened RoI features, then class scores (C + 1) and
    class-specific box deltas (4 (C + 1)), as Fast R-CNN's heads."""

    def __init__(self, in_features, num_classes, hidden=128):
        super().__init__()
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(),
                                nn.Linear(hidden, hidden), nn.ReLU())
        self.cls_score = nn.Linear(hidden, num_classes + 1)
        self.bbox_pred = nn.Linear(hidden, 4 * (num_classes + 1))

    def forward(self, x):
        h = self.fc(x)
        return self.cls_score(h), self.bbox_pred(h)


def _host(t):
    return backend.to_numpy(t._data)


def match(proposals, gt_boxes, fg_iou, bg_iou):
    """For (P, 4) proposals and (G, 4) ground truth: matched gt index (P,) and a label code
    (P,): 1 foreground (IoU >= fg_iou), 0 background (IoU < bg_iou), -1 ignored (between)."""
    p = proposals.shape[0]
    if gt_boxes.shape[0] == 0:
        return np.zeros(p, dtype=np.int64), np.zeros(p, dtype=np.int64)
    iou = _host(box_iou(gt_boxes.detach(), proposals.detach()))  # (G, P)
    best, which = iou.max(axis=0), iou.argmax(axis=0)
    code = np.where(best >= fg_iou, 1, np.where(best < bg_iou, 0, -1))
    return which, code


def sample(code, rng, batch_size, positive_fraction):
    """Indices of at most ``batch_size`` entries, up to ``positive_fraction`` of them
    foreground (code 1), the rest background (code 0), drawn without replacement."""
    pos, neg = np.flatnonzero(code == 1), np.flatnonzero(code == 0)
    n_pos = min(len(pos), int(batch_size * positive_fraction))
    n_neg = min(len(neg), batch_size - n_pos)
    return np.concatenate([rng.permutation(pos)[:n_pos], rng.permutation(neg)[:n_neg]])


def jitter_boxes(boxes, rng, copies, scale=0.15):
    """``copies`` random perturbations of each gt box (shift and resize by ~``scale``), which
    give the regressor varied training examples (as torchvision adds the gt to proposals)."""
    b = _host(boxes)
    if len(b) == 0 or copies == 0:
        return b.reshape(0, 4)
    size = np.repeat(b[:, 2:] - b[:, :2], copies, axis=0)
    centre = np.repeat((b[:, :2] + b[:, 2:]) / 2, copies, axis=0)
    centre = centre + rng.normal(0, scale, size.shape) * size
    size = size * np.exp(rng.normal(0, scale, size.shape))
    return np.concatenate([b, np.concatenate([centre - size / 2, centre + size / 2], axis=1)])


class RoITargets:
    """Training targets of a box head: sampled RoIs, their labels and regression targets."""

    def __init__(self, fg_iou=0.5, bg_iou=0.5, batch_size_per_image=32, positive_fraction=0.25,
                 jitter_copies=4, weights=(10.0, 10.0, 5.0, 5.0)):
        self.fg_iou, self.bg_iou = fg_iou, bg_iou
        self.batch_size, self.positive_fraction = batch_size_per_image, positive_fraction
        self.jitter_copies = jitter_copies
        self.coder = BoxCoder(weights)

    def __call__(self, proposals, targets, rng):
        """Lists per image -> (rois list of (R_i, 4), labels (R,), deltas (R, 4), matched gt
        index per image)."""
        rois, labels, deltas, matched = [], [], [], []
        for props, target in zip(proposals, targets):
            gt = target["boxes"]
            extra = jitter_boxes(gt, rng, self.jitter_copies)
            cand = np.concatenate([_host(props).reshape(-1, 4), extra]).astype(np.float32)
            cand_t = Tensor._wrap(cand)
            which, code = match(cand_t, gt, self.fg_iou, self.bg_iou)
            keep = sample(code, rng, self.batch_size, self.positive_fraction)
            chosen = Tensor._wrap(cand[keep])
            label = np.where(code[keep] == 1, _host(target["labels"])[which[keep]]
                             if gt.shape[0] else 0, 0).astype(np.int64)
            if gt.shape[0]:
                delta = self.coder.encode_single(gt[Tensor._wrap(which[keep])], chosen)
                delta = _host(delta).astype(np.float32)
            else:
                delta = np.zeros((len(keep), 4), dtype=np.float32)
            rois.append(chosen)
            labels.append(label)
            deltas.append(delta)
            matched.append(which[keep])
        return (rois, Tensor._wrap(np.concatenate(labels)),
                Tensor._wrap(np.concatenate(deltas)), matched)


def fastrcnn_loss(class_logits, box_regression, labels, regression_targets, beta=1.0 / 9):
    """Cross-entropy over every RoI plus smooth L1 on the true class's deltas of foreground
    RoIs, summed and divided by the number of RoIs (torchvision's fastrcnn_loss)."""
    classification = F.cross_entropy(class_logits, labels)
    pos = np.flatnonzero(_host(labels) > 0)
    if len(pos) == 0:
        return classification, (box_regression * 0).sum()
    n = box_regression.shape[0]
    per_class = box_regression.reshape(n, -1, 4)
    picked = per_class[Tensor._wrap(pos), Tensor._wrap(_host(labels)[pos])]
    box_loss = F.smooth_l1_loss(picked, regression_targets[Tensor._wrap(pos)], reduction="sum",
                                beta=beta) / labels.shape[0]
    return classification, box_loss


def postprocess(class_logits, box_regression, proposals, image_size, coder, score_thresh=0.05,
                nms_thresh=0.5, detections_per_img=100):
    """Per image: softmax scores, class-specific boxes, score threshold, per-class NMS, top-k.

    Returns (list of dicts with boxes (D, 4), scores (D,), labels (D,), and the list of the
    RoI index each detection came from).
    """
    counts = [p.shape[0] for p in proposals]
    scores_all = _host(F.softmax(class_logits.detach(), dim=-1))
    boxes_all = _host(coder.decode(box_regression.detach(), proposals))  # (R, C + 1, 4)
    results, sources, start = [], [], 0
    for n in counts:
        scores, boxes = scores_all[start:start + n, 1:], boxes_all[start:start + n, 1:]
        k = scores.shape[1]
        boxes = _host(clip_boxes_to_image(Tensor._wrap(boxes.reshape(-1, 4)), image_size))
        scores, labels = scores.reshape(-1), np.tile(np.arange(1, k + 1), n)
        roi = np.repeat(np.arange(start, start + n), k)
        sides = boxes[:, 2:] - boxes[:, :2]
        ok = np.flatnonzero((scores > score_thresh) & (sides >= 1e-2).all(axis=1))
        boxes, scores, labels, roi = boxes[ok], scores[ok], labels[ok], roi[ok]
        keep = _host(batched_nms(Tensor._wrap(boxes), Tensor._wrap(scores),
                                 Tensor._wrap(labels), nms_thresh))[:detections_per_img]
        results.append({"boxes": Tensor._wrap(boxes[keep].astype(np.float32)),
                        "scores": Tensor._wrap(scores[keep].astype(np.float32)),
                        "labels": Tensor._wrap(labels[keep].astype(np.int64))})
        sources.append(roi[keep])
        start += n
    return results, sources


def cat_boxes(boxes):
    return ops.cat(list(boxes), dim=0)
