"""Datasets: indexable collections of samples, and splits into train / validation / test.

Concept: N2.1 (data split into training, validation and test sets).

A dataset that can hand out a whole batch at once defines ``get_batch(indices)`` (an int64
index array in, the collated batch out). ``DataLoader`` then gathers each batch with one
fancy-indexing call instead of a Python loop over samples; ``TensorDataset``, ``Subset`` of such
a dataset, ``ConcatDataset`` of them and the MNIST datasets all do.
"""
from __future__ import annotations

import math

from shendu import backend
from shendu.tensor import Tensor

_np = backend.namespace("cpu")


class Dataset:
    """Base class: subclasses define ``__getitem__(i)`` and ``__len__()`` (torch.utils.data)."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A stream of samples: subclasses define ``__iter__`` (torch.utils.data.IterableDataset).

    A DataLoader batches the stream in order (no sampler, no shuffle). Loading it in worker
    processes is not supported: each worker would need its own shard of the stream.
    """

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")

    def __len__(self):
        raise TypeError(f"{type(self).__name__} is a stream without a length; define __len__ "
                        "to give it one")

    def __getitem__(self, index):
        raise TypeError(f"{type(self).__name__} is an IterableDataset: iterate over it instead "
                        "of indexing it")

    def __add__(self, other):
        return ChainDataset([self, other])


class ChainDataset(IterableDataset):
    """Several IterableDatasets one after another."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise TypeError(f"ChainDataset: expected IterableDatasets, got "
                                f"{type(d).__name__}")

    def __iter__(self):
        for d in self.datasets:
            yield from d

    def __len__(self):
        return sum(len(d) for d in self.datasets)


def check_index(index, length, who):
    """Resolve a possibly negative int index, raising IndexError by name when out of range."""
    if isinstance(index, Tensor):
        index = int(index)
    if not -length <= index < length:
        raise IndexError(f"{who}: index {index} is out of range for a dataset of {length} "
                         "samples")
    return index % length


def as_index_array(indices, length, who):
    """Validated int64 CPU index array (negative indices wrap, as in Python)."""
    if isinstance(indices, Tensor):
        indices = backend.to_numpy(indices._data)
    idx = _np.asarray(indices)
    if idx.size == 0:
        return idx.astype(backend.int64).reshape(0)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{who}: indices must be integers, got dtype {idx.dtype}")
    if idx.min() < -length or idx.max() >= length:
        raise IndexError(f"{who}: indices must lie in [{-length}, {length}), got values from "
                         f"{idx.min()} to {idx.max()}")
    return idx.astype(backend.int64) % length


class TensorDataset(Dataset):
    """Samples are rows of tensors sharing their first dimension: ``ds[i] = (t[i] for t)``.

    Shape:
        each tensor (N, *); a sample is a tuple of tensors (*); ``get_batch`` gives (B, *).
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: expected at least one tensor")
        for i, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                raise TypeError(f"TensorDataset: argument {i} is a {type(t).__name__}, "
                                "expected a shendu.Tensor")
            if t.ndim == 0:
                raise ValueError(f"TensorDataset: argument {i} is 0-d; every tensor needs a "
                                 "first (sample) dimension")
        sizes = [t.shape[0] for t in tensors]
        if len(set(sizes)) != 1:
            raise ValueError(f"TensorDataset: all tensors must have the same first dimension "
                             f"(the number of samples), got shapes "
                             f"{[tuple(t.shape) for t in tensors]}")
        self.tensors = tensors

    def __len__(self):
        return self.tensors[0].shape[0]

    def __getitem__(self, index):
        index = check_index(index, len(self), "TensorDataset")
        return tuple(t[index] for t in self.tensors)

    def get_batch(self, indices):
        """One gather per tensor: returns tuple of tensors (B, *)."""
        idx = as_index_array(indices, len(self), "TensorDataset.get_batch")
        batch = []
        for t in self.tensors:
            rows = backend.to_device(idx, t.device)
            batch.append(Tensor._wrap(t._data[rows]))
        return tuple(batch)


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices`` (in that order)."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = as_index_array(indices, len(dataset), "Subset")

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[check_index(index, len(self), "Subset")])]

    def __getattr__(self, name):
        # only get_batch is forwarded, and only when the wrapped dataset has it, so that
        # DataLoader's hasattr(dataset, "get_batch") test stays truthful
        if name == "get_batch" and hasattr(self.__dict__.get("dataset"), "get_batch"):
            return self._get_batch
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _get_batch(self, indices):
        idx = as_index_array(indices, len(self), "Subset.get_batch")
        return self.dataset.get_batch(self.indices[idx])


class ConcatDataset(Dataset):
    """The datasets one after another: ``len = sum(len(d))``."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: expected at least one dataset")
        self.cumulative_sizes = _np.cumsum([len(d) for d in self.datasets])

    def __len__(self):
        return int(self.cumulative_sizes[-1])

    def _locate(self, idx):
        which = _np.searchsorted(self.cumulative_sizes, idx, side="right")
        starts = _np.concatenate([[0], self.cumulative_sizes[:-1]])
        return which, idx - starts[which]

    def __getitem__(self, index):
        index = check_index(index, len(self), "ConcatDataset")
        which, local = self._locate(index)
        return self.datasets[int(which)][int(local)]

    def __getattr__(self, name):
        datasets = self.__dict__.get("datasets", [])
        if name == "get_batch" and all(hasattr(d, "get_batch") for d in datasets):
            return self._get_batch
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _get_batch(self, indices):
        # one gather per member dataset, then rows are put back in the requested order
        idx = as_index_array(indices, len(self), "ConcatDataset.get_batch")
        which, local = self._locate(idx)
        parts, positions = [], []
        for k, dataset in enumerate(self.datasets):
            mask = which == k
            if mask.any():
                parts.append(dataset.get_batch(local[mask]))
                positions.append(_np.nonzero(mask)[0])
        order = _np.argsort(_np.concatenate(positions), kind="stable")
        return _concat_batches(parts, order)


def _concat_batches(parts, order):
    first = parts[0]
    if isinstance(first, Tensor):
        data = backend.namespace(first.device).concatenate([p._data for p in parts])
        return Tensor._wrap(data[backend.to_device(order, first.device)])
    if isinstance(first, (tuple, list)):
        return type(first)(_concat_batches([p[i] for p in parts], order)
                           for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _concat_batches([p[k] for p in parts], order) for k in first}
    raise TypeError(f"ConcatDataset.get_batch: cannot concatenate batches of type "
                    f"{type(first).__name__}")


def _split_lengths(lengths, n):
    """torch's rule: fractions summing to 1 become floor(n * f), remainder dealt round-robin."""
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: lengths must not be empty")
    if math.isclose(sum(lengths), 1.0) and sum(lengths) <= n:
        if any(x < 0 or x > 1 for x in lengths):
            raise ValueError(f"random_split: fractions must lie in [0, 1], got {lengths}")
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        return counts
    if any(not isinstance(x, int) or x < 0 for x in lengths):
        raise ValueError(f"random_split: lengths must be non-negative ints or fractions, got "
                         f"{lengths}")
    if sum(lengths) != n:
        raise ValueError(f"random_split: sum of lengths {sum(lengths)} does not equal the "
                         f"dataset size {n}")
    return lengths


def random_split(dataset, lengths, generator=None):
    """Split ``dataset`` into non-overlapping random ``Subset``s (torch.utils.data.random_split).

    ``lengths`` are ints summing to ``len(dataset)`` or fractions summing to 1 (e.g.
    ``[0.8, 0.1, 0.1]`` for train / validation / test, Concept N2.1). The permutation is drawn
    from ``generator`` (default: the CPU default generator), so a fixed seed gives a fixed split.
    """
    counts = _split_lengths(lengths, len(dataset))
    generator = generator if generator is not None else backend.default_generator("cpu")
    perm = backend.to_numpy(generator.permutation(len(dataset)))
    bounds = _np.cumsum([0] + counts)
    return [Subset(dataset, perm[bounds[i]:bounds[i + 1]]) for i in range(len(counts))]
