"""DataLoader worker processes: load batches in parallel, hand them back in order.

Each worker owns an index queue; the main process sends batch ``k`` (a list of indices) to
worker ``k % num_workers``, keeps ``prefetch_factor * num_workers`` batches in flight, and
re-orders what comes back on the shared result queue, so the batches arrive exactly in the
order ``num_workers=0`` gives. Results carry the epoch they belong to, so persistent workers
can drop what an abandoned epoch left behind. Batches travel between the processes by
multiprocessing's own pickling of arrays; no file is ever read with pickle.
"""
from __future__ import annotations

import multiprocessing
import queue
import random
import time
import traceback
from dataclasses import dataclass

_POLL_SECONDS = 1.0
_worker_info = None


@dataclass(frozen=True)
class WorkerInfo:
    """What ``get_worker_info()`` returns inside a worker (torch.utils.data.WorkerInfo)."""

    id: int
    num_workers: int
    seed: int
    dataset: object


def get_worker_info():
    """This worker's WorkerInfo inside a DataLoader worker process, None in the main process."""
    return _worker_info


def _worker_loop(loader_state, index_queue, result_queue, info_args):
    global _worker_info
    import shendu

    worker_id, num_workers, seed = info_args
    dataset, fetch, init_fn = loader_state
    # a forked child must not start GNU OpenMP (numba's threading layer, see shendu.kernels)
    # when the parent has: libgomp is not fork-safe. Workers run the NumPy reference instead.
    shendu.backend.use_compiled_kernels(False)
    _worker_info = WorkerInfo(worker_id, num_workers, seed, dataset)
    shendu.manual_seed(seed)
    random.seed(seed)
    if init_fn is not None:
        try:
            init_fn(worker_id)
        except Exception as err:  # noqa: BLE001 - reported to the main process
            result_queue.put((None, None, None, _describe(err, worker_id, "in worker_init_fn")))
            return
    while True:
        task = index_queue.get()
        if task is None:
            break
        epoch, task_id, indices = task
        try:
            batch = fetch(indices)
        except Exception as err:  # noqa: BLE001 - reported to the main process
            index = getattr(err, "index", None)
            where = f"on dataset[{index}]" if index is not None else \
                f"on the batch of indices {indices if len(indices) <= 8 else indices[:8]}"
            cause = getattr(err, "error", err)
            result_queue.put((epoch, task_id, None, _describe(cause, worker_id, where)))
        else:
            result_queue.put((epoch, task_id, batch, None))


def _describe(err, worker_id, where):
    tb = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    return (type(err), f"DataLoader worker {worker_id} failed {where}: {type(err).__name__}: "
                       f"{err}\n\nTraceback in the worker:\n{tb}")


def _raise(error):
    kind, message = error
    try:
        exc = kind(message)
    except Exception:  # noqa: BLE001 - an exception type that takes other arguments
        exc = RuntimeError(message)
    raise exc


def _context(spec):
    if spec is None:
        methods = multiprocessing.get_all_start_methods()
        return multiprocessing.get_context("fork" if "fork" in methods else None)
    if isinstance(spec, str):
        return multiprocessing.get_context(spec)
    return spec


class WorkerPool:
    """``loader.num_workers`` processes serving one DataLoader; ``run(tasks)`` yields batches."""

    def __init__(self, loader, base_seed):
        ctx = _context(loader.multiprocessing_context)
        self.num_workers = loader.num_workers
        self.in_flight = loader.prefetch_factor * loader.num_workers
        self.timeout = loader.timeout
        self.epoch = 0
        self.result_queue = ctx.Queue()
        self.index_queues, self.workers = [], []
        state = (loader.dataset, loader._fetcher(name_index=True), loader.worker_init_fn)
        for worker_id in range(self.num_workers):
            index_queue = ctx.Queue()
            process = ctx.Process(target=_worker_loop, daemon=True,
                                  args=(state, index_queue, self.result_queue,
                                        (worker_id, self.num_workers, base_seed + worker_id)))
            process.start()
            self.index_queues.append(index_queue)
            self.workers.append(process)

    def alive(self) -> bool:
        return bool(self.workers) and all(w.is_alive() for w in self.workers)

    def run(self, tasks, close_after):
        """Yield the batches for ``tasks`` (lists of indices) in order."""
        self.epoch += 1
        epoch, sent, done, ready = self.epoch, 0, 0, {}
        try:
            while done < len(tasks):
                while sent < len(tasks) and sent - done < self.in_flight:
                    self.index_queues[sent % self.num_workers].put((epoch, sent, tasks[sent]))
                    sent += 1
                while done not in ready:
                    task_epoch, task_id, batch, error = self._get()
                    if error is not None and task_epoch in (None, epoch):
                        _raise(error)
                    if task_epoch == epoch:
                        ready[task_id] = batch
                yield ready.pop(done)
                done += 1
        except GeneratorExit:  # the epoch was abandoned; persistent workers stay up
            raise
        except BaseException:
            self.shutdown()
            raise
        finally:
            if close_after:
                self.shutdown()

    def _get(self):
        waited = 0.0
        while True:
            try:
                return self.result_queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                waited += _POLL_SECONDS
                dead = [w for w in self.workers if not w.is_alive()]
                if dead:
                    codes = ", ".join(f"pid {w.pid} exit code {w.exitcode}" for w in dead)
                    self.shutdown()
                    raise RuntimeError(f"DataLoader worker(s) exited unexpectedly ({codes}); "
                                       "a crash in native code or running out of memory can "
                                       "cause this") from None
                if self.timeout and waited >= self.timeout:
                    self.shutdown()
                    raise RuntimeError(f"DataLoader timed out after {self.timeout} seconds "
                                       "waiting for a batch from its workers") from None

    def shutdown(self):
        """Stop the workers (politely, then by force) and release the queues. Idempotent."""
        workers, self.workers = self.workers, []
        for index_queue, worker in zip(self.index_queues, workers):
            if worker.is_alive():
                try:
                    index_queue.put(None)
                except (OSError, ValueError):
                    pass
        deadline = time.monotonic() + 5.0
        for worker in workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=1.0)
        for q in self.index_queues + [self.result_queue]:
            q.cancel_join_thread()
            q.close()
        self.index_queues = []
