"""Fast R-CNN (Girshick 2015): one convolutional feature map per image, RoI pooling of every
proposal from it, and a classifier and a box regressor trained jointly (Concept: N6.1).

``model(images, targets)`` in training mode returns the dict of losses; in eval mode
``model(images)`` returns one dict per image with ``boxes`` (D, 4) xyxy, ``scores`` (D,) and
``labels`` (D,) (torchvision's detection-model protocol). Proposals come from
``grouped_component_proposals`` unless passed as ``proposals=`` (a list of (P_i, 4) Tensors);
FasterRCNN below learns them instead.
"""
from __future__ import annotations

from shendu import backend, nn
from shendu.vision.detection._heads import (BoxHead, RoITargets, SmallBackbone, fastrcnn_loss,
                                            postprocess)
from shendu.vision.detection.proposals import grouped_component_proposals
from shendu.vision.ops import roi_align, roi_pool

np = backend.namespace("cpu")


def check_images(model, images, targets, training):
    if images.ndim != 4:
        raise ValueError(f"{model}: expected images of shape (N, C, H, W), got "
                         f"{tuple(images.shape)}")
    if training and (targets is None or len(targets) != images.shape[0]):
        got = "None" if targets is None else f"{len(targets)} targets"
        raise ValueError(f"{model}: training needs one target dict per image "
                         f"({images.shape[0]}), got {got}")


class FastRCNN(nn.Module):
    """Fast R-CNN on a small backbone.

    Args:
        num_classes: object classes (labels 1..num_classes; 0 is background).
        in_channels, widths: the backbone (three conv stages; the feature map has stride 4).
        pool_size: RoI output side. pooler: "pool" (RoI max pooling, Fast R-CNN) or "align"
            (RoI Align, Mask R-CNN). hidden: width of the two fully connected layers.
        score_thresh, nms_thresh, detections_per_img: post-processing, as torchvision.
        seed: the RoI sampler's generator.
    """

    def __init__(self, num_classes=10, in_channels=1, widths=(16, 32, 48), pool_size=5,
                 pooler="pool", hidden=128, score_thresh=0.05, nms_thresh=0.5,
                 detections_per_img=100, seed=0):
        super().__init__()
        if pooler not in ("pool", "align"):
            raise ValueError(f"{type(self).__name__}: pooler must be 'pool' or 'align', got "
                             f"{pooler!r}")
        self.num_classes, self.pool_size, self.pooler = num_classes, pool_size, pooler
        self.backbone = SmallBackbone(in_channels, widths)
        self.box_head = BoxHead(self.backbone.out_channels * pool_size ** 2, num_classes, hidden)
        self.roi_targets = RoITargets()
        self.post = (score_thresh, nms_thresh, detections_per_img)
        self.rng = np.random.default_rng(seed)

    def pool(self, features, rois):
        scale = 1.0 / self.backbone.stride
        if self.pooler == "pool":
            return roi_pool(features, rois, self.pool_size, scale)
        return roi_align(features, rois, self.pool_size, scale, 2, aligned=True)

    def propose(self, images, features, targets):
        """Proposals (list of (P_i, 4)) and proposal losses (none: they are not learned)."""
        return grouped_component_proposals(images), {}

    def forward(self, images, targets=None, proposals=None):
        check_images(type(self).__name__, images, targets, self.training)
        features = self.backbone(images)
        losses = {}
        if proposals is None:
            proposals, losses = self.propose(images, features, targets)
        if self.training:
            rois, labels, deltas, matched = self.roi_targets(proposals, targets, self.rng)
            logits, regression = self.box_head(self.pool(features, rois))
            losses["loss_classifier"], losses["loss_box_reg"] = fastrcnn_loss(
                logits, regression, labels, deltas)
            losses.update(self.extra_losses(features, rois, labels, matched, targets))
            return losses
        logits, regression = self.box_head(self.pool(features, proposals))
        detections, _ = postprocess(logits, regression, proposals, tuple(images.shape[2:]),
                                    self.roi_targets.coder, *self.post)
        self.add_outputs(features, detections, tuple(images.shape[2:]))
        return detections

    def extra_losses(self, features, rois, labels, matched, targets):
        return {}

    def add_outputs(self, features, detections, image_size):
        """Hook for heads that add per-detection outputs (masks)."""
