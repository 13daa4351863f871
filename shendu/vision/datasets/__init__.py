"""Datasets for shendu.vision."""
from shendu.vision.datasets.scenes import MNISTScenes, collate_scenes

__all__ = ["MNISTScenes", "collate_scenes"]
