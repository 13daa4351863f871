"""Evaluation metrics for detection and segmentation (Concept: N6.1)."""
from shendu.vision.metrics.detection import mean_average_precision
from shendu.vision.metrics.segmentation import confusion_matrix, mean_iou, per_class_iou

__all__ = ["confusion_matrix", "mean_average_precision", "mean_iou", "per_class_iou"]
