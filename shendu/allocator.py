"""The C heap's policy for large arrays: keep freed memory for the next step's arrays.

glibc's malloc serves every block over its mmap threshold (128 KB at start, raised as such
blocks are freed, up to 32 MB) with a fresh mmap and returns it with munmap when freed, and
it trims the top of the heap back to the OS past a threshold too. A training step allocates
and frees the same activation-sized arrays (megabytes each) every step, so each one was new
memory whose every 4 KB page faulted on first touch. On this project's 2-core VM a page fault
costs about a microsecond: a ResNet-20 step (batch 64, 32x32) took 442-525 ms with glibc's
defaults and 332-355 ms with the settings below (three alternating runs each), and PyTorch's
steps in the same process speed up alike (benchmarks/all.py).

``tune()`` runs when shendu is imported (this module's last line), on glibc only (musl and macOS keep theirs),
and never when the user has set any of glibc's MALLOC_*_ variables. Blocks up to 32 MB (the
most glibc allows) come from the heap, and up to 1 GB of free memory may stay at its top:
what a step frees, the next step reuses. A process's resident size then stays at its peak
rather than shrinking between steps, as with torch's caching allocators.
"""
from __future__ import annotations

import ctypes
import os
import platform

MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's HEAP_MAX_SIZE / 2 on 64-bit: the largest it takes
TRIM_THRESHOLD = 1024 * 1024 * 1024
# mallopt's parameter numbers (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_USER_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_MAX_",
                   "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX")
_state = {"tuned": False}


def tune() -> bool:
    """Apply the heap policy above; True when it is in effect (now or from an earlier call)."""
    if _state["tuned"]:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if any(name in os.environ for name in _USER_VARIABLES):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; a refused value leaves glibc's default in place
    _state["tuned"] = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                           and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _state["tuned"]


def tuned() -> bool:
    """Whether ``tune()`` has set the heap policy in this process."""
    return _state["tuned"]


tune()  # on import: shendu/__init__.py imports this module before any other
