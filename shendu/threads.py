"""``set_num_threads`` / ``get_num_threads``: the CPU threads shendu's math runs on.

shendu's heavy CPU work is NumPy's BLAS (matmul, convolution GEMMs) and, with the ``fast``
extra, numba's compiled kernels. ``set_num_threads(n)`` limits both: the BLAS pools through
threadpoolctl (the ``threads`` extra) and numba's thread pool when numba is installed. Without
threadpoolctl only numba is limited and a warning says so; the limit is process-wide, as
torch's is.

Within that limit, shendu's large products (``matmul`` here, which every layer's products go
through) leave the cores that other processes keep busy to them: ``product_threads`` measures
that once per process.

Idle BLAS threads sleep instead of spinning: ``shendu.backend`` sets
``OPENBLAS_THREAD_TIMEOUT=4`` before it imports NumPy (a value of the user's wins; NumPy
imported before shendu keeps OpenBLAS's default spin), which keeps a step from collapsing when
another process holds one of the cores.
"""
from __future__ import annotations

import importlib.util
import os
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
    _state["products"] = None  # measure the load again for the new count


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


# products below this many multiply-adds run as they are: OpenBLAS keeps them on one thread
# anyway (its GEMM threshold is 65536 * 4), and switching the pool would cost more than them
_SMALL_PRODUCT_MACS = 1 << 18
_PROBE_SECONDS = 0.05  # five clock ticks per CPU at Linux's usual 100 Hz


def _cpu_ticks(cpus):
    """(busy, all) clock ticks of these CPUs since boot from /proc/stat, or None. Busy: user,
    nice, system, irq, softirq and steal (a hypervisor running other machines on the CPU)."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    busy = total = 0
    for line in lines:
        name, *fields = line.split()
        if name[:3] == "cpu" and name[3:].isdigit() and int(name[3:]) in cpus:
            ticks = [int(v) for v in fields[:8]]
            busy += sum(ticks[:3]) + sum(ticks[5:8])
            total += sum(ticks)
    return (busy, total) if total else None


def _usable_cpus():
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def busy_cores(seconds=_PROBE_SECONDS):
    """How many of this process's CPUs other processes kept busy over the next ``seconds``
    (while this one sleeps): /proc/stat's busy ticks less this process's own CPU time, in
    cores; None where /proc/stat is missing."""
    cpus = _usable_cpus()
    before, own = _cpu_ticks(cpus), time.process_time()
    if before is None:
        return None
    time.sleep(seconds)
    after, own = _cpu_ticks(cpus), time.process_time() - own
    if after is None or after[1] <= before[1]:
        return None
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    per_cpu = (after[1] - before[1]) / len(cpus)  # elapsed ticks
    return max(0.0, (after[0] - before[0] - own * hz) / per_cpu)


def product_threads() -> int:
    """The BLAS thread count of shendu's large products: ``get_num_threads()``, less the
    cores another process keeps busy, measured once per process (busy_cores) at the first
    large product and again after set_num_threads.

    Why: on two quiet cores two threads are faster, but while another process holds one
    core OpenBLAS's second thread waits for a time slice in every product
    (benchmarks/all.py --busy: the MNIST CNN's fc1 (64, 9216) @ (9216, 128) took 1.7 ms quiet
    and 33 ms busy on two threads, 3.6 ms on one). With one core busy, every product on one
    thread against every product on two (step / torch's step, 2026-12-03): char-LSTM
    1.09-1.13 against 1.27-2.29, MNIST CNN 1.00 against 1.11, GPT 1.10 against 1.16,
    ResNet-20 1.12 against 1.12. Timing both counts on a product's first calls could not
    see this: back to back, two threads often won the trial on the busy machine and lost in
    the step (LSTM 1.33-1.40).

    Why once: OpenBLAS's one- and two-thread results differ in the last bits for almost every
    shape (0.3.31: 10 of 12 shapes tried), so a count that followed the load during a run
    would make training irreproducible (tests/test_cli_robust.py's resume test); a process
    computes each product the same way throughout, as torch does on its fixed thread count.
    A machine whose load changes mid-run keeps the count chosen at the start.
    """
    full = get_num_threads()
    if _state.get("products") is None or _state["products"][0] != full:
        busy = busy_cores() if full > 1 and _blas_controller() is not None else None
        count = full if busy is None else \
            max(1, min(full, int(len(_usable_cpus()) - busy + 0.5)))
        _state["products"] = (full, count)
    return _state["products"][1]


def matmul(a, b, out=None):
    """a @ b (xp.matmul's broadcasting) on ``product_threads()`` BLAS threads: every large
    host product of the library (linear layers, matmul, the convolution GEMMs, the recurrent
    steps) goes through here. The pool is set back to its size after the product, so other
    code (a user's NumPy, torch beside shendu) never sees the change."""
    xp = backend.xp_of(a)
    if xp is not backend.namespace("cpu") or a.ndim < 2 or b.ndim < 2 or \
            a.size * b.shape[-1] < _SMALL_PRODUCT_MACS:
        return xp.matmul(a, b, out=out)
    count, full = product_threads(), get_num_threads()
    if count >= full:
        return xp.matmul(a, b, out=out)
    controller = _blas_controller()
    _set_blas_threads(controller, count)
    try:
        return xp.matmul(a, b, out=out)
    finally:
        _set_blas_threads(controller, full)
