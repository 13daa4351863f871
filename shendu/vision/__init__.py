"""shendu.vision: the counterpart of torchvision (``import shendu.vision as torchvision``).

Sub-modules are imported on demand: ``shendu.vision.utils`` (make_grid, save_image) and the
others as they are added.
"""
import importlib

_SUBMODULES = ("datasets", "detection", "metrics", "ops", "segmentation", "transforms", "utils")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"shendu.vision.{name}")
    raise AttributeError(f"module 'shendu.vision' has no attribute {name!r}")
