"""Semantic segmentation models (Concept: N6.1)."""
from shendu.vision.segmentation.fcn import FCN, bilinear_kernel

__all__ = ["FCN", "bilinear_kernel"]
