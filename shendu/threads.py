"""``set_num_threads`` / ``get_num_threads``: the CPU threads shendu's math runs on.

shendu's heavy CPU work is NumPy's BLAS (matmul, convolution GEMMs) and, with the ``fast``
extra, numba's compiled kernels. ``set_num_threads(n)`` limits both: the BLAS pools through
threadpoolctl (the ``threads`` extra) and numba's thread pool when numba is installed. Without
threadpoolctl only numba is limited and a warning says so; the limit is process-wide, as
torch's is.

Idle BLAS threads sleep instead of spinning: ``shendu.backend`` sets
``OPENBLAS_THREAD_TIMEOUT=4`` before it imports NumPy (a value of the user's wins; NumPy
imported before shendu keeps OpenBLAS's default spin), which keeps a step from collapsing when
another process holds one of the cores.
"""
from __future__ import annotations

import importlib.util
import os
import warnings

_state = {"threads": None, "limiter": None}


def _threadpoolctl():
    try:
        import threadpoolctl
    except ImportError:
        return None
    return threadpoolctl


def set_num_threads(num: int) -> None:
    """Run BLAS (and numba) on at most ``num`` threads (torch.set_num_threads)."""
    if isinstance(num, bool) or not isinstance(num, int):
        raise RuntimeError(f"set_num_threads expects an int, but got {type(num).__name__}")
    if num < 1:
        raise RuntimeError(f"set_num_threads expects a positive integer, got {num}")
    tpc = _threadpoolctl()
    if tpc is not None:
        _state["limiter"] = tpc.threadpool_limits(limits=num, user_api="blas")
    else:
        warnings.warn("set_num_threads: threadpoolctl is not installed, so NumPy's BLAS threads "
                      "are not limited; pip install 'shendu[threads]'", stacklevel=2)
    if importlib.util.find_spec("numba") is not None:
        # through kernels.load_numba: numba.set_num_threads starts numba's threading layer,
        # which must be the one the kernels choose (it would otherwise default to OpenMP)
        from shendu import kernels
        numba = kernels.load_numba()
        numba.set_num_threads(min(num, numba.config.NUMBA_NUM_THREADS))
    _state["threads"] = num


def get_num_threads() -> int:
    """The thread count set by ``set_num_threads``; before any call, the BLAS pool's size."""
    if _state["threads"] is not None:
        return _state["threads"]
    tpc = _threadpoolctl()
    if tpc is not None:
        counts = [pool["num_threads"] for pool in tpc.threadpool_info()
                  if pool.get("user_api") == "blas"]
        if counts:
            return max(counts)
    return os.cpu_count() or 1
