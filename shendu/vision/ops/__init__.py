"""torchvision.ops for shendu: box arithmetic, NMS, RoI Align / RoI Pool, box coding."""
from shendu.vision.ops.box_coder import BoxCoder
from shendu.vision.ops.boxes import (batched_nms, box_area, box_convert, box_iou,
                                     clip_boxes_to_image, nms, remove_small_boxes)
from shendu.vision.ops.roi import RoIAlign, RoIPool, roi_align, roi_pool

__all__ = ["BoxCoder", "RoIAlign", "RoIPool", "batched_nms", "box_area", "box_convert",
           "box_iou", "clip_boxes_to_image", "nms", "remove_small_boxes", "roi_align",
           "roi_pool"]
