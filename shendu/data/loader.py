"""DataLoader: mini-batches from a Dataset, shuffled with an explicit Generator.

Concept: N3.2.3 (SGD steps on shuffled mini-batches; the batch size is a hyper-parameter, N2.1).
"""
from __future__ import annotations

import numbers

from shendu import backend
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


class DataLoader:
    """Iterate over ``dataset`` in batches of ``batch_size`` (torch.utils.data.DataLoader).

    Args:
        dataset: a Dataset (``__getitem__`` and ``__len__``).
        batch_size: samples per batch. Default: 1.
        shuffle: draw a new permutation every time iteration starts. Default: False.
        drop_last: drop the last batch when it is smaller than ``batch_size``. Default: False.
        collate_fn: turns a list of samples into a batch. Default: ``default_collate``.
        generator: the shendu.Generator used for shuffling (default: the CPU default generator,
            which ``shendu.manual_seed`` seeds); the same seed gives the same order.
        sampler: an iterable of dataset indices with ``__len__`` (e.g.
            ``shendu.distributed.DistributedSampler``) that decides the order instead;
            excludes ``shuffle``, as in torch. Default: None.

    When ``collate_fn`` is None and the dataset defines ``get_batch(indices)`` (TensorDataset,
    the MNIST datasets, Subsets of them), each batch is one fancy-indexing gather with no Python
    loop over samples.

    Shape:
        yields what the collate gives; for a TensorDataset of (N, *) tensors: tuples of (B, *)
        with B = batch_size (the last batch may be smaller unless drop_last).
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, collate_fn=None,
                 generator=None, sampler=None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: collate_fn must be callable, got "
                            f"{type(collate_fn).__name__}")
        if generator is not None and not isinstance(generator, backend.Generator):
            raise TypeError(f"DataLoader: generator must be a shendu.Generator, got "
                            f"{type(generator).__name__}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler and shuffle=True are mutually exclusive; the "
                             "sampler decides the order")
        self.dataset = dataset
        self.sampler = sampler
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn
        self.generator = generator

    def __len__(self):
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self):
        if self.sampler is not None:
            return _np.fromiter(self.sampler, dtype=backend.int64)
        n = len(self.dataset)
        if not self.shuffle:
            return _np.arange(n, dtype=backend.int64)
        generator = self.generator or backend.default_generator("cpu")
        return backend.to_numpy(generator.permutation(n)).astype(backend.int64)

    def __iter__(self):
        order = self._order()
        fast = self.collate_fn is None and hasattr(self.dataset, "get_batch")
        collate = self.collate_fn or default_collate
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            if fast:
                yield self.dataset.get_batch(idx)
            else:
                yield collate([self.dataset[int(i)] for i in idx])

    def __repr__(self):
        return (f"DataLoader(dataset={type(self.dataset).__name__}(len={len(self.dataset)}), "
                f"batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last})")
