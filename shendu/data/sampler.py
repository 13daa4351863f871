"""Samplers: the order in which a DataLoader visits a dataset (torch.utils.data's samplers).

A sampler iterates over dataset indices; ``BatchSampler`` groups them into lists of indices.
Every random sampler draws from an explicit shendu.Generator (default: the CPU default generator
at iteration time, which ``shendu.manual_seed`` seeds), so a seed fixes the order. Samplers that
can produce a whole epoch at once define ``epoch_indices()`` (an int64 array), which lets
``BatchSampler`` slice batches without a Python loop over samples.
"""
from __future__ import annotations

import numbers

from shendu import backend

_np = backend.namespace("cpu")


def _generator(generator):
    return generator if generator is not None else backend.default_generator("cpu")


def _positive_int(value, who, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{who}: {name} should be a positive integer value, but got "
                         f"{name}={value!r}")
    return int(value)


class Sampler:
    """Base class: subclasses define ``__iter__`` (indices) and usually ``__len__``."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        if hasattr(self, "epoch_indices"):
            return iter(self.epoch_indices().tolist())
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def epoch_indices(self):
        return _np.arange(len(self.data_source), dtype=backend.int64)

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random order of the dataset: a permutation, or draws with replacement.

    Args:
        data_source: the dataset (only its length is used).
        replacement: draw ``num_samples`` indices independently. Default: False.
        num_samples: how many indices per epoch. Default: ``len(data_source)``; without
            replacement more than that chains several permutations, as torch.
        generator: shendu.Generator for the draws.
    """

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        if not isinstance(replacement, bool):
            raise TypeError(f"RandomSampler: replacement should be a boolean value, but got "
                            f"replacement={replacement!r}")
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if num_samples is not None:
            _positive_int(num_samples, "RandomSampler", "num_samples")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else int(self._num_samples)

    def epoch_indices(self):
        n, count, gen = len(self.data_source), self.num_samples, _generator(self.generator)
        if self.replacement:
            return backend.to_numpy(gen.integers(0, n, (count,)))
        perms = [backend.to_numpy(gen.permutation(n)) for _ in range(-(-count // n))]
        return _np.concatenate(perms)[:count].astype(backend.int64)

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given ``indices`` in a random order (a new permutation every epoch)."""

    def __init__(self, indices, generator=None):
        self.indices = _np.asarray(indices, dtype=backend.int64)
        self.generator = generator

    def epoch_indices(self):
        perm = backend.to_numpy(_generator(self.generator).permutation(len(self.indices)))
        return self.indices[perm]

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """Draw ``num_samples`` indices with probability proportional to ``weights``.

    Without replacement the draw is sequential (each index at most once), done in one pass
    with Efraimidis & Spirakis' keys u^(1/w): the ``num_samples`` largest keys.
    """

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        self.num_samples = _positive_int(num_samples, "WeightedRandomSampler", "num_samples")
        if not isinstance(replacement, bool):
            raise TypeError(f"WeightedRandomSampler: replacement should be a boolean value, but "
                            f"got replacement={replacement!r}")
        weights = _np.asarray(weights.tolist() if hasattr(weights, "tolist") else weights,
                              dtype=backend.float64)
        if weights.ndim != 1 or weights.size == 0 or (weights < 0).any() or \
                not _np.isfinite(weights).all() or weights.sum() <= 0:
            raise ValueError(f"WeightedRandomSampler: weights must be a non-empty 1-d sequence "
                             f"of finite non-negative numbers with a positive sum, got "
                             f"{weights.tolist()[:10]}")
        if not replacement and self.num_samples > int((weights > 0).sum()):
            raise ValueError(f"WeightedRandomSampler: cannot draw {self.num_samples} samples "
                             f"without replacement from {int((weights > 0).sum())} indices of "
                             "non-zero weight")
        self.weights, self.replacement, self.generator = weights, replacement, generator

    def epoch_indices(self):
        gen = _generator(self.generator)
        u = backend.to_numpy(gen.random((self.num_samples if self.replacement
                                         else len(self.weights),), backend.float64))
        if self.replacement:  # inverse CDF
            cdf = _np.cumsum(self.weights)
            picks = _np.searchsorted(cdf, u * cdf[-1], side="right")
            return _np.minimum(picks, len(cdf) - 1).astype(backend.int64)
        with _np.errstate(divide="ignore"):
            keys = _np.log(u) / self.weights  # log(u^(1/w)); weight 0 gives -inf
        return _np.argsort(-keys, kind="stable")[:self.num_samples].astype(backend.int64)

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Group a sampler's indices into lists of ``batch_size`` (the last may be shorter).

    Shape:
        yields lists of ints of length batch_size (the last: len % batch_size unless drop_last).
    """

    def __init__(self, sampler, batch_size, drop_last):
        self.batch_size = _positive_int(batch_size, "BatchSampler", "batch_size")
        if not isinstance(drop_last, bool):
            raise ValueError(f"BatchSampler: drop_last should be a boolean value, but got "
                             f"drop_last={drop_last!r}")
        self.sampler, self.drop_last = sampler, drop_last

    def __iter__(self):
        size = self.batch_size
        if hasattr(self.sampler, "epoch_indices"):  # slice one array instead of looping
            order = self.sampler.epoch_indices()
            stop = len(order) - len(order) % size if self.drop_last else len(order)
            for start in range(0, stop, size):
                yield order[start:start + size].tolist()
            return
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
