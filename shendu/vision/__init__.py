"""shendu.vision: the counterpart of torchvision (``import shendu.vision as torchvision``), laid
out as torchvision is (Concept: N6.1).

Sub-packages are imported on demand: ``shendu.vision.utils`` (make_grid, save_image),
``shendu.vision.ops`` (boxes, NMS, RoI pooling), ``shendu.vision.metrics`` (COCO mAP, mIoU),
``shendu.vision.datasets`` (the MNIST scenes), ``shendu.vision.detection`` and
``shendu.vision.segmentation`` (models).
"""
import importlib

_SUBMODULES = ("datasets", "detection", "metrics", "ops", "segmentation", "transforms", "utils")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"shendu.vision.{name}")
    raise AttributeError(f"module 'shendu.vision' has no attribute {name!r}")
