"""R-CNN (Girshick et al. 2014): every region proposal is cropped, warped to a fixed size and
classified by a CNN of its own, with a box regressor on the same features (Concept: N6.1).

Proposals come from ``grouped_component_proposals`` (a simpler stand-in for selective search,
see proposals.py). Each proposal, enlarged by ``context`` of its size on every side (R-CNN
warps with 16 pixels of context), is resampled bilinearly to ``warp_size`` x ``warp_size``
with roi_align on the image. Deviation from the paper, as its own fine-tuned softmax variant:
the classifier is the network's softmax layer instead of per-class SVMs, and the regressor is
trained jointly with it (the same multi-task loss as Fast R-CNN), so that the two detectors
differ only in where the CNN runs: once per region (here) or once per image (Fast R-CNN).
"""
from __future__ import annotations

from shendu import backend, nn
from shendu.tensor import Tensor
from shendu.vision.detection._heads import (BoxHead, RoITargets, SmallBackbone, fastrcnn_loss,
                                            postprocess)
from shendu.vision.detection.fast_rcnn import check_images
from shendu.vision.detection.proposals import grouped_component_proposals
from shendu.vision.ops import roi_align

np = backend.namespace("cpu")


class RCNN(nn.Module):
    """R-CNN with the same backbone and head sizes as FastRCNN.

    Args:
        warp_size: side of the warped region fed to the CNN. context: margin added around each
            proposal before warping, as a fraction of its width/height.
        others: as FastRCNN.
    """

    def __init__(self, num_classes=10, in_channels=1, widths=(16, 32, 48), warp_size=32,
                 context=0.1, hidden=128, score_thresh=0.05, nms_thresh=0.5,
                 detections_per_img=100, seed=0):
        super().__init__()
        self.num_classes, self.warp_size, self.context = num_classes, warp_size, context
        self.backbone = SmallBackbone(in_channels, widths)
        self.reduce = nn.MaxPool2d(2)
        side = warp_size // (2 * self.backbone.stride)
        self.box_head = BoxHead(self.backbone.out_channels * side * side, num_classes, hidden)
        self.roi_targets = RoITargets()
        self.post = (score_thresh, nms_thresh, detections_per_img)
        self.rng = np.random.default_rng(seed)

    def warp(self, images, boxes):
        """(R, C, warp, warp) crops of the proposals (with context) from their images."""
        grown = []
        for b in boxes:
            data = backend.to_numpy(b._data)
            margin = (data[:, 2:] - data[:, :2]) * self.context
            grown.append(Tensor._wrap(np.concatenate([data[:, :2] - margin,
                                                      data[:, 2:] + margin], axis=1)))
        return roi_align(images, grown, self.warp_size, 1.0, 2, aligned=True)

    def classify(self, regions):
        return self.box_head(self.reduce(self.backbone(regions)))

    def forward(self, images, targets=None, proposals=None):
        check_images(type(self).__name__, images, targets, self.training)
        if proposals is None:
            proposals = grouped_component_proposals(images)
        if self.training:
            rois, labels, deltas, _ = self.roi_targets(proposals, targets, self.rng)
            logits, regression = self.classify(self.warp(images, rois))
            cls, box = fastrcnn_loss(logits, regression, labels, deltas)
            return {"loss_classifier": cls, "loss_box_reg": box}
        logits, regression = self.classify(self.warp(images, proposals))
        detections, _ = postprocess(logits, regression, proposals, tuple(images.shape[2:]),
                                    self.roi_targets.coder, *self.post)
        return detections
