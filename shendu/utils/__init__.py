"""``shendu.utils``: torch.utils' paths; ``shendu.utils.data`` is torch.utils.data."""
import importlib


def __getattr__(name):
    if name == "data":
        return importlib.import_module("shendu.utils.data")
    raise AttributeError(f"module 'shendu.utils' has no attribute {name!r}")
