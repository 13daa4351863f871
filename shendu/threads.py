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
import statistics
import time
import warnings

from shendu import backend

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
    _choices.clear()  # chosen against the old pool size


def get_num_threads() -> int:
    """The thread count set by ``set_num_threads``; before any call, the BLAS pool's size."""
    if _state["threads"] is not None:
        return _state["threads"]
    if "pool" not in _state:  # asking threadpoolctl takes milliseconds: once per process
        tpc = _threadpoolctl()
        counts = [] if tpc is None else [pool["num_threads"] for pool in tpc.threadpool_info()
                                         if pool.get("user_api") == "blas"]
        _state["pool"] = max(counts) if counts else (os.cpu_count() or 1)
    return _state["pool"]


def _blas_controller():
    """threadpoolctl's controller of the BLAS pools (cheap per-call set_num_threads), or
    None without threadpoolctl."""
    if "blas" not in _state:
        tpc = _threadpoolctl()
        _state["blas"] = None if tpc is None else \
            tpc.ThreadpoolController().select(user_api="blas")
    return _state["blas"]


def _set_blas_threads(controller, num):
    for lib in controller.lib_controllers:
        lib.set_num_threads(num)


class ThreadChoice:
    """Runs one repeated BLAS product on one thread or on all of them, whichever its first
    call measures to be faster, and keeps that count for the rest of the process.

    Why a choice: on two quiet cores two threads are faster, but while another process holds
    one core OpenBLAS's second thread waits for a time slice in every product
    (benchmarks/all.py --busy, the MNIST CNN: fc1 (64, 9216) @ (9216, 128) took 1.7 ms quiet
    and 33 ms busy on two threads, 3.6 ms on one; an LSTM step's (32, 256) @ (256, 1024)
    1.76x PyTorch's step on two threads against 1.45x on one).

    Why once: OpenBLAS's one- and two-thread results differ in the last bits for almost every
    shape (0.3.31: 10 of 12 shapes tried), so a choice that followed the load during a run
    made training irreproducible (tests/test_cli_robust.py's resume test). The first call
    times ``trials`` products on each count, alternating, keeps the count of the faster
    median (a minimum favours two threads that were lucky once on a busy machine: LSTM busy
    1.60x torch's step against 1.15-1.18x) and returns a product computed on that count;
    every later call runs on it, so one process computes a product the same way every time. The BLAS pool is set back to its
    size after each call, so no other code sees the choice.
    """

    def __init__(self, trials=5):
        self.trials = trials
        self.best = None  # the thread count chosen by the first call

    def run(self, fn):
        """fn() (a product, free of side effects but its ``out=``) on the chosen count."""
        controller = _blas_controller()
        full = get_num_threads()
        if controller is None or full <= 1:
            return fn()
        if self.best is None:
            times = {1: [], full: []}
            for _ in range(self.trials):
                for count, taken in times.items():
                    _set_blas_threads(controller, count)
                    start = time.perf_counter()
                    fn()
                    taken.append(time.perf_counter() - start)
            self.best = min(times, key=lambda k: statistics.median(times[k]))
        _set_blas_threads(controller, self.best)
        try:
            return fn()
        finally:
            _set_blas_threads(controller, full)


_choices = {}
# a run whose shapes change every call (e.g. sequence lengths) stops choosing at this many:
# forgetting choices would let a later trial choose differently and change the results
_MAX_CHOICES = 4096


def choice(key) -> ThreadChoice | None:
    """The ThreadChoice kept for ``key`` (an op and its shapes) across calls; None once
    ``_MAX_CHOICES`` keys are kept (the product then runs on the pool's size)."""
    found = _choices.get(key)
    if found is None and len(_choices) < _MAX_CHOICES:
        found = _choices[key] = ThreadChoice()
    return found


# products below this many multiply-adds run as they are: OpenBLAS keeps them on one thread
# anyway, and a choice's bookkeeping (about 5 us) would be a visible share of them
_CHOICE_MIN_MACS = 1 << 18


def matmul(a, b, out=None):
    """a @ b (xp.matmul's broadcasting) on the BLAS thread count ``choice`` measured to be
    faster for this product: every large host product of the library (linear layers,
    matmul, the convolution GEMMs, the recurrent steps) goes through here."""
    xp = backend.xp_of(a)
    if xp is not backend.namespace("cpu") or a.ndim < 2 or b.ndim < 2 or \
            a.size * b.shape[-1] < _CHOICE_MIN_MACS:
        return xp.matmul(a, b, out=out)
    chosen = choice((a.shape, b.shape, a.strides, b.strides, a.dtype, out is None))
    if chosen is None:
        return xp.matmul(a, b, out=out)
    return chosen.run(lambda: xp.matmul(a, b, out=out))
