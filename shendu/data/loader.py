"""DataLoader: mini-batches from a Dataset, shuffled with an explicit Generator.

Concept: N3.2.3 (SGD steps on shuffled mini-batches; the batch size is a hyper-parameter, N2.1).
"""
from __future__ import annotations

import numbers
import warnings

from shendu import backend
from shendu.data.dataset import IterableDataset
from shendu.data.sampler import BatchSampler, RandomSampler, SequentialSampler
from shendu.tensor import Tensor

_np = backend.namespace("cpu")


def _stack_tensors(samples):
    if any(s.requires_grad for s in samples):
        from shendu.ops.shape import stack  # keep the graph when a sample is differentiable

        return stack(samples)
    first = samples[0]
    for i, s in enumerate(samples):
        if s.shape != first.shape:
            raise RuntimeError(f"default_collate: samples must have equal shapes to be stacked, "
                               f"got {first.shape} at entry 0 and {s.shape} at entry {i}")
    xp = first._xp
    return Tensor._wrap(xp.stack([backend.to_device(s._data, first.device) for s in samples]))


def default_collate(samples):
    """Stack a list of samples into a batch (torch's default_collate rules).

    Tensors and arrays are stacked along a new first dim; Python ints become an int64 tensor,
    bools a bool tensor and floats a float32 tensor (torch gives float64; shendu keeps its
    float32 default); strings stay a list; tuples, lists and dicts are collated field by field.

    Shape:
        B samples of shape (*) -> (B, *).
    """
    if not samples:
        raise ValueError("default_collate: expected a non-empty list of samples")
    first = samples[0]
    if isinstance(first, Tensor):
        return _stack_tensors(samples)
    if backend.is_array(first):
        return Tensor._wrap(backend.xp_of(first).stack(samples))
    if isinstance(first, (bool, _np.bool_)):
        return Tensor._wrap(_np.asarray(samples, dtype=backend.bool_))
    if isinstance(first, numbers.Integral):
        return Tensor._wrap(_np.asarray(samples, dtype=backend.int64))
    if isinstance(first, numbers.Real):
        return Tensor._wrap(_np.asarray(samples, dtype=backend.default_float))
    if isinstance(first, str):
        return list(samples)
    if isinstance(first, dict):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, (tuple, list)):
        if any(len(s) != len(first) for s in samples):
            raise RuntimeError("default_collate: each sample in a batch must have the same "
                               "number of fields")
        fields = [default_collate(list(group)) for group in zip(*samples)]
        return tuple(fields) if isinstance(first, tuple) else fields
    raise TypeError(f"default_collate: samples of type {type(first).__name__} cannot be "
                    "batched; expected Tensors, arrays, numbers, strings, tuples, lists or "
                    "dicts, or pass collate_fn")


def default_convert(data):
    """Arrays become Tensors, containers are converted field by field, the rest is kept
    (torch's default_convert: what a DataLoader with ``batch_size=None`` yields)."""
    if backend.is_array(data) and data.dtype.kind in "biuf":
        return Tensor._wrap(data)
    if isinstance(data, dict):
        return {key: default_convert(value) for key, value in data.items()}
    if isinstance(data, tuple):
        return tuple(default_convert(d) for d in data)
    if isinstance(data, list):
        return [default_convert(d) for d in data]
    return data


def _check_flag(value, who):
    if not isinstance(value, bool):
        raise TypeError(f"DataLoader: {who} must be a bool, got {value!r}")
    return value


class DataLoader:
    """Iterate over ``dataset`` in batches (torch.utils.data.DataLoader's arguments and rules).

    Args:
        dataset: a Dataset (``__getitem__`` and ``__len__``).
        batch_size: samples per batch; None yields single samples unbatched. Default: 1.
        shuffle: a new random order every epoch (a RandomSampler). Default: False.
        sampler: the order of indices (exclusive with shuffle).
        batch_sampler: yields lists of indices (exclusive with batch_size, shuffle, sampler,
            drop_last).
        num_workers: worker processes loading batches in parallel; 0 loads in this process.
        collate_fn: turns a list of samples into a batch. Default: ``default_collate``.
        pin_memory: accepted for torch scripts; it has no effect (see below).
        drop_last: drop the last batch when it is smaller than ``batch_size``. Default: False.
        timeout: seconds to wait for a worker's batch before failing; 0 waits for ever.
        worker_init_fn: called as ``worker_init_fn(worker_id)`` in each worker after seeding.
        multiprocessing_context: a start method ("fork", "spawn", "forkserver") or context;
            default "fork" where the system has it, so lambdas in transforms work.
        generator: the shendu.Generator for shuffling and for the workers' base seed (default:
            the CPU default generator, which ``shendu.manual_seed`` seeds).
        prefetch_factor: batches loaded ahead per worker. Default: 2 (with workers only).
        persistent_workers: keep the workers alive between epochs. Default: False.

    With workers, batch ``k`` is loaded by worker ``k % num_workers`` and batches come back in
    the order of ``num_workers=0`` with the same seed. Worker ``i`` seeds shendu's default
    generators and Python's ``random`` with ``base_seed + i`` (``get_worker_info().seed``), so
    random transforms differ between workers and are reproducible for a fixed seed. A failing
    sample raises in the main process with the worker, the index and the worker's traceback.

    When ``collate_fn`` is None and the dataset defines ``get_batch(indices)`` (TensorDataset,
    the MNIST datasets, Subsets of them), each batch is one fancy-indexing gather with no Python
    loop over samples. Batches are NumPy-backed CPU tensors; ``pin_memory`` does nothing
    because ``.to("cuda")`` copies them to the GPU directly (a warning says so).

    Shape:
        yields what the collate gives; for a TensorDataset of (N, *) tensors: tuples of (B, *)
        with B = batch_size (the last batch may be smaller unless drop_last).
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
                 worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                 prefetch_factor=None, persistent_workers=False, pin_memory_device=""):
        if batch_size is not None and (isinstance(batch_size, bool) or
                                       not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"DataLoader: batch_size must be a positive int or None, got "
                             f"{batch_size!r}")
        for name, fn in (("collate_fn", collate_fn), ("worker_init_fn", worker_init_fn)):
            if fn is not None and not callable(fn):
                raise TypeError(f"DataLoader: {name} must be callable, got {type(fn).__name__}")
        if generator is not None and not isinstance(generator, backend.Generator):
            raise TypeError(f"DataLoader: generator must be a shendu.Generator, got "
                            f"{type(generator).__name__}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers option should be a non-negative int, got "
                             f"{num_workers!r}; use num_workers=0 to disable multiprocessing")
        if not isinstance(timeout, (int, float)) or timeout < 0:
            raise ValueError(f"DataLoader: timeout option should be non-negative, got {timeout!r}")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("DataLoader: prefetch_factor option could only be specified in "
                             "multiprocessing; let num_workers > 0 to enable multiprocessing, "
                             "otherwise set prefetch_factor to None")
        if prefetch_factor is not None and (not isinstance(prefetch_factor, int) or
                                            prefetch_factor < 1):
            raise ValueError(f"DataLoader: prefetch_factor must be a positive int, got "
                             f"{prefetch_factor!r}")
        if _check_flag(persistent_workers, "persistent_workers") and num_workers == 0:
            raise ValueError("DataLoader: persistent_workers option needs num_workers > 0")
        shuffle = bool(shuffle) if shuffle is not None else False
        drop_last = _check_flag(drop_last, "drop_last")
        self._iterable = isinstance(dataset, IterableDataset)
        if self._iterable:
            if shuffle or sampler is not None or batch_sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified shuffle, "
                                 "sampler and batch_sampler (the stream sets the order)")
            if num_workers > 0:
                raise ValueError("DataLoader with IterableDataset: num_workers > 0 is not "
                                 "supported (each worker would need its own shard); use "
                                 "num_workers=0")
            sampler = _StreamSampler(dataset)
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler option is mutually exclusive with "
                                 "batch_size, shuffle, sampler, and drop_last")
            batch_size = None
        if sampler is None:
            sampler = RandomSampler(dataset, generator=generator) if shuffle \
                else SequentialSampler(dataset)
        if batch_sampler is None and batch_size is not None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        if _check_flag(pin_memory, "pin_memory"):
            warnings.warn("DataLoader: pin_memory=True has no effect in shendu: batches are "
                          "NumPy arrays, which .to(device) copies to the GPU directly",
                          stacklevel=2)
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.collate_fn = collate_fn
        self.pin_memory = pin_memory
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.generator = generator
        self.prefetch_factor = 2 if num_workers > 0 and prefetch_factor is None \
            else prefetch_factor
        self.persistent_workers = persistent_workers
        self._pool = None

    def __len__(self):
        if self.batch_sampler is None:
            return len(self.sampler)
        return len(self.batch_sampler)

    def _index_batches(self):
        """This epoch's list of index lists (one int per entry when unbatched)."""
        if self.batch_sampler is None:
            return list(self.sampler)
        return list(self.batch_sampler)

    def _fetcher(self, name_index=False):
        return Fetcher(self.dataset, self.collate_fn, self.batch_sampler is not None, name_index)

    def __iter__(self):
        if self._iterable:
            return self._iterate_stream()
        tasks = self._index_batches()
        # torch draws the workers' base seed on every iteration, workers or not, so a seeded
        # script consumes the same random numbers whatever num_workers is
        generator = self.generator or backend.default_generator("cpu")
        base_seed = int(backend.to_numpy(generator.integers(0, 2 ** 62, ())))
        if self.num_workers == 0:
            fetch = self._fetcher()
            return (fetch(indices) for indices in tasks)
        from shendu.data.workers import WorkerPool

        if self._pool is None or not self._pool.alive():
            self._pool = WorkerPool(self, base_seed)
        pool = self._pool
        if not self.persistent_workers:
            self._pool = None
        return pool.run(tasks, close_after=not self.persistent_workers)

    def _iterate_stream(self):
        collate = self.collate_fn or (default_collate if self.batch_size else default_convert)
        if self.batch_size is None:
            yield from (collate(sample) for sample in self.dataset)
            return
        batch = []
        for sample in self.dataset:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield collate(batch)
                batch = []
        if batch and not self.drop_last:
            yield collate(batch)

    def __del__(self):
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown()

    def __repr__(self):
        return (f"DataLoader(dataset={type(self.dataset).__name__}(len={len(self.dataset)}), "
                f"batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, num_workers={self.num_workers})")


class _StreamSampler:
    """Stands in for a sampler over an IterableDataset: only its length (when defined)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)  # a TypeError when the stream has no length, as torch

    def __iter__(self):
        raise TypeError("an IterableDataset has no indices to sample")


class Fetcher:
    """Turn one list of indices into a batch: ``get_batch`` when the dataset has it (and no
    collate_fn is given), else ``collate_fn([dataset[i] for i in indices])``.

    In a worker (``name_index``) a failing sample raises ``SampleError`` naming the index;
    in the main process the dataset's own exception propagates unchanged, as in torch."""

    def __init__(self, dataset, collate_fn, batched, name_index=False):
        self.dataset, self.batched, self.name_index = dataset, batched, name_index
        self.fast = batched and collate_fn is None and hasattr(dataset, "get_batch")
        self.collate = collate_fn or (default_collate if batched else default_convert)

    def __call__(self, indices):
        if not self.batched:
            return self.collate(self._sample(indices))
        if self.fast:
            return self.dataset.get_batch(_np.asarray(indices, dtype=backend.int64))
        return self.collate([self._sample(i) for i in indices])

    def _sample(self, index):
        if not self.name_index:
            return self.dataset[index]
        try:
            return self.dataset[index]
        except Exception as err:
            raise SampleError(index, err) from err


class SampleError(Exception):
    """``dataset[index]`` raised ``error``."""

    def __init__(self, index, error):
        super().__init__(f"dataset[{index}] raised {type(error).__name__}: {error}")
        self.index, self.error = index, error
