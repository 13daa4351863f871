"""The process group: collectives over MPI (mpi4py), torch.distributed's names and semantics.

Every collective here works on a Tensor (or an xp array) in place and passes its memory to MPI
through the buffer interface, so arrays are never pickled. Each one is issued as a non-blocking
MPI request and waited for with a deadline: a rank that dies or hangs makes the others print a
clear error and abort the job after ``timeout`` seconds instead of waiting forever.

CuPy arrays are staged through host memory, so any MPI build works (no CUDA-aware MPI needed).
"""
from __future__ import annotations

import os
import sys
import time

from shendu import backend
from shendu.tensor import Tensor

DEFAULT_TIMEOUT = 300.0  # seconds; torch's NCCL default is 600, its gloo default 1800

_state = {"comm": None, "mpi": None, "timeout": DEFAULT_TIMEOUT}


class ReduceOp:
    """Reduction operators for ``all_reduce`` (torch.distributed.ReduceOp's names)."""

    SUM, PRODUCT, MIN, MAX, AVG = "sum", "product", "min", "max", "avg"


class DistributedError(RuntimeError):
    """A collective was used wrongly (before init_process_group, bad arguments)."""


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError:
        raise DistributedError("shendu.distributed needs mpi4py and Open MPI: "
                               "pip install 'shendu[distributed]'") from None
    return MPI


def init_process_group(backend_name="mpi", timeout=None):
    """Join the MPI job this process was started in (``mpiexec -n N ...``); idempotent.

    Args:
        backend_name: only 'mpi' (torch's first argument, kept for familiarity).
        timeout: seconds a collective may wait for the other ranks before the job is aborted;
            a number or a ``datetime.timedelta``. Default: $SHENDU_DIST_TIMEOUT, else 300.
    """
    if backend_name != "mpi":
        raise DistributedError(f"init_process_group: backend {backend_name!r} is not "
                               "available; shendu.distributed runs on MPI only ('mpi')")
    if timeout is None:
        timeout = float(os.environ.get("SHENDU_DIST_TIMEOUT", DEFAULT_TIMEOUT))
    elif hasattr(timeout, "total_seconds"):
        timeout = timeout.total_seconds()
    if not timeout > 0:
        raise DistributedError(f"init_process_group: timeout must be > 0 seconds, got "
                               f"{timeout!r}")
    mpi = _mpi()
    _state.update(mpi=mpi, comm=mpi.COMM_WORLD, timeout=float(timeout))


def is_initialized() -> bool:
    return _state["comm"] is not None


def destroy_process_group():
    """Forget the process group (MPI itself is finalized by mpi4py at exit)."""
    _state["comm"] = None


def get_rank() -> int:
    """This process's rank, 0 .. world_size - 1; 0 when no process group was initialized."""
    return _state["comm"].Get_rank() if is_initialized() else 0


def get_world_size() -> int:
    """The number of processes in the job; 1 when no process group was initialized."""
    return _state["comm"].Get_size() if is_initialized() else 1


def _comm(op):
    if not is_initialized():
        raise DistributedError(f"{op}: call shendu.distributed.init_process_group() first "
                               "(and start the program under mpiexec)")
    return _state["comm"]


def wait(request, op):
    """Wait for an MPI request, driving MPI's progress; abort the job after the timeout."""
    deadline = time.monotonic() + _state["timeout"]
    delay = 0.0
    while not request.Test():
        if time.monotonic() > deadline:
            _abort(op)
        time.sleep(delay)
        delay = min(2 * delay or 1e-5, 1e-4)  # sleep, not spin: the other rank needs the core


def _abort(op):
    rank, size = get_rank(), get_world_size()
    print(f"shendu.distributed: rank {rank} of {size} waited {_state['timeout']:g} s in {op} "
          "for the other ranks; one of them has died or hung. Aborting all ranks "
          "(raise the limit with init_process_group(timeout=...) or $SHENDU_DIST_TIMEOUT)",
          file=sys.stderr, flush=True)
    _state["comm"].Abort(1)


class Work:
    """A pending collective (torch's ``Work``): ``wait()`` finishes it and writes the result
    back into the tensor it was issued on."""

    def __init__(self, request, op, finish=None):
        self._request, self._op, self._finish, self._done = request, op, finish, False

    def is_completed(self) -> bool:
        if not self._done and self._request.Test():
            self._complete()
        return self._done

    def wait(self):
        if not self._done:
            wait(self._request, self._op)
            self._complete()
        return True

    def _complete(self):
        self._done = True
        if self._finish is not None:
            self._finish()


def _host_buffer(tensor, op):
    """(host array MPI can read and write, write_back) for a Tensor or xp array."""
    array = tensor._data if isinstance(tensor, Tensor) else tensor
    if not backend.is_array(array):
        raise TypeError(f"{op}: expected a shendu Tensor or an array, got "
                        f"{type(tensor).__name__}")
    host = backend.to_numpy(array)
    if host is array and host.flags.c_contiguous:
        return host, None  # MPI reads and writes the tensor's own memory
    if not host.flags.c_contiguous:
        host = host.copy(order="C")

    def write_back():
        array[...] = backend.to_device(host, backend.device_of(array))
    return host, write_back


def _finisher(tensor, write_back, scale=None):
    def finish():
        if write_back is not None:
            write_back()
        if scale is not None:
            array = tensor._data if isinstance(tensor, Tensor) else tensor
            array *= scale
        if isinstance(tensor, Tensor):
            tensor._version += 1  # an in-place write, as torch's collectives count it
    return finish


def all_reduce(tensor, op=ReduceOp.SUM, async_op=False):
    """Reduce ``tensor`` over all ranks, in place: every rank ends with the same result.

    ``op`` is a ``ReduceOp`` (SUM by default; AVG divides the sum by the world size). With
    ``async_op=True`` returns a ``Work`` to ``wait()`` on; otherwise waits and returns None.
    """
    mpi, comm = _state["mpi"], _comm("all_reduce")
    ops = {ReduceOp.SUM: "SUM", ReduceOp.AVG: "SUM", ReduceOp.PRODUCT: "PROD",
           ReduceOp.MIN: "MIN", ReduceOp.MAX: "MAX"}
    if op not in ops:
        raise DistributedError(f"all_reduce: unknown op {op!r}; expected one of "
                               f"{sorted(ops)}")
    host, write_back = _host_buffer(tensor, "all_reduce")
    request = comm.Iallreduce(mpi.IN_PLACE, host, op=getattr(mpi, ops[op]))
    scale = 1.0 / comm.Get_size() if op == ReduceOp.AVG else None
    work = Work(request, "all_reduce", _finisher(tensor, write_back, scale))
    return _finish_or_return(work, async_op)


def broadcast(tensor, src=0, async_op=False):
    """Copy ``tensor`` of rank ``src`` into ``tensor`` on every rank, in place."""
    comm = _comm("broadcast")
    _check_rank(src, "broadcast")
    host, write_back = _host_buffer(tensor, "broadcast")
    work = Work(comm.Ibcast(host, root=src), "broadcast", _finisher(tensor, write_back))
    return _finish_or_return(work, async_op)


def _finish_or_return(work, async_op):
    if async_op:
        return work
    work.wait()
    return None


def all_gather(tensor_list, tensor):
    """Fill ``tensor_list[r]`` with rank r's ``tensor`` (all of one shape and dtype)."""
    comm = _comm("all_gather")
    size = comm.Get_size()
    if len(tensor_list) != size:
        raise DistributedError(f"all_gather: tensor_list has {len(tensor_list)} entries for a "
                               f"world of {size} ranks")
    for i, out in enumerate(tensor_list):
        if tuple(out.shape) != tuple(tensor.shape) or out.dtype != tensor.dtype:
            raise DistributedError(f"all_gather: tensor_list[{i}] is {tuple(out.shape)} "
                                   f"{out.dtype}, expected {tuple(tensor.shape)} {tensor.dtype}")
    host, _ = _host_buffer(tensor, "all_gather")
    host = backend.namespace("cpu").ascontiguousarray(host)
    gathered = backend.namespace("cpu").empty((size,) + host.shape, dtype=host.dtype)
    wait(comm.Iallgather(host, gathered), "all_gather")
    for out, part in zip(tensor_list, gathered):
        array = out._data if isinstance(out, Tensor) else out
        array[...] = backend.to_device(part, backend.device_of(array))


def barrier():
    """Wait until every rank has reached this call."""
    wait(_comm("barrier").Ibarrier(), "barrier")


def broadcast_coalesced(tensors, src=0):
    """Broadcast many tensors with one message per dtype (DDP's parameters and buffers)."""
    xp = backend.namespace("cpu")
    groups = {}
    for t in tensors:
        groups.setdefault(str(t.dtype), []).append(t)
    for group in groups.values():
        flat = xp.concatenate([backend.to_numpy(t._data).ravel() for t in group])
        broadcast(flat, src)
        offset = 0
        for t in group:
            n = t.numel()
            t._data[...] = backend.to_device(flat[offset:offset + n].reshape(t.shape),
                                             t.device)
            offset += n


def broadcast_string(text, src=0) -> str:
    """Rank ``src``'s string on every rank (as UTF-8 bytes: no pickling)."""
    xp = backend.namespace("cpu")
    data = xp.frombuffer(text.encode("utf-8"), dtype=backend.uint8).copy()
    length = xp.array([data.size], dtype=backend.int64)
    broadcast(length, src)
    buffer = data if get_rank() == src else xp.zeros(int(length[0]), dtype=backend.uint8)
    broadcast(buffer, src)
    return buffer.tobytes().decode("utf-8")


def average_scalars(values: dict) -> dict:
    """The mean over ranks of a dict of floats (same keys on every rank); unchanged when
    running in one process. The Trainer averages its epoch logs with it."""
    if get_world_size() == 1 or not values:
        return values
    keys = sorted(values)
    xp = backend.namespace("cpu")
    buffer = xp.array([float(values[k]) for k in keys], dtype=backend.float64)
    all_reduce(buffer, ReduceOp.AVG)
    return {**values, **{k: float(v) for k, v in zip(keys, buffer)}}


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any rank (so that all ranks stop
    together); ``flag`` itself in one process."""
    if get_world_size() == 1:
        return bool(flag)
    buffer = backend.namespace("cpu").array([1 if flag else 0], dtype=backend.int64)
    all_reduce(buffer, ReduceOp.MAX)
    return bool(buffer[0])


def _check_rank(rank, op):
    size = get_world_size()
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < size:
        raise DistributedError(f"{op}: src must be a rank in 0..{size - 1}, got {rank!r}")
