"""Detection models: R-CNN, Fast R-CNN, Faster R-CNN (RPN) and Mask R-CNN (Concept: N6.1)."""
from shendu.vision.detection.fast_rcnn import FastRCNN
from shendu.vision.detection.mask_rcnn import MaskHead, MaskRCNN, paste_masks
from shendu.vision.detection.proposals import (connected_components,
                                               grouped_component_proposals, proposal_recall)
from shendu.vision.detection.rcnn import RCNN
from shendu.vision.detection.rpn import FasterRCNN, RegionProposalNetwork, make_anchors

__all__ = ["FastRCNN", "FasterRCNN", "MaskHead", "MaskRCNN", "RCNN", "RegionProposalNetwork",
           "connected_components", "grouped_component_proposals", "make_anchors",
           "paste_masks", "proposal_recall"]
