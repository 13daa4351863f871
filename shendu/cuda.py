"""``shendu.cuda``: torch.cuda's common queries and seeding, on CuPy (the ``gpu`` extra).

Without a GPU these answer as torch does on a CPU-only build: ``is_available()`` is False,
``device_count()`` is 0, and the seeding functions do nothing (torch defers them until CUDA
initialises, which never happens).
"""
from __future__ import annotations

from shendu import backend


def is_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    return backend.cuda_available()


def device_count() -> int:
    """How many GPUs CuPy sees; 0 when CuPy is missing or the driver fails."""
    if not backend.cuda_available():
        return 0
    return int(backend.cuda_runtime().getDeviceCount())


def current_device() -> int:
    """The index of the current GPU (CuPy's current device)."""
    _require("current_device")
    return int(backend.cuda_runtime().getDevice())


def synchronize(device=None) -> None:
    """Wait until every queued kernel on the GPU has finished (for timing)."""
    _require("synchronize")
    backend.cuda_runtime().deviceSynchronize()


def manual_seed(seed: int) -> None:
    """Seed the GPU's default generator; the CPU generator is left alone, as in torch."""
    _check_seed(seed, "manual_seed")
    if backend.cuda_available():
        backend.default_generator("cuda").manual_seed(int(seed))


def manual_seed_all(seed: int) -> None:
    """Seed every GPU's generator; shendu uses one GPU, so this is ``manual_seed``."""
    _check_seed(seed, "manual_seed_all")
    manual_seed(seed)


def _check_seed(seed, who):
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"shendu.cuda.{who}: seed must be an int, got {type(seed).__name__}")


def _require(who):
    if not backend.cuda_available():
        raise RuntimeError(f"shendu.cuda.{who}: no GPU is available (CuPy missing or no device);"
                           " install the 'gpu' extra on a machine with an NVIDIA GPU")
