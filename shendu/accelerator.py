"""``shendu.accelerator``: torch.accelerator's queries. shendu's one accelerator is CUDA via CuPy."""
from __future__ import annotations

from shendu import backend, devices


def is_available() -> bool:
    """True when a GPU is usable (CuPy imports and sees a device)."""
    return backend.cuda_available()


def current_accelerator(check_available: bool = False):
    """``device('cuda')`` when a GPU is usable, else None (torch's answer on a CPU machine)."""
    return devices.of("cuda") if backend.cuda_available() else None


def device_count() -> int:
    """The number of GPUs CuPy sees (0 without the ``gpu`` extra)."""
    from shendu import cuda
    return cuda.device_count()
