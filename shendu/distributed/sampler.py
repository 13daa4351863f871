"""DistributedSampler: each rank's share of a data set (torch.utils.data.DistributedSampler)."""
from __future__ import annotations

import math

from shendu import backend
from shendu.distributed import comm


class DistributedSampler:
    """Split the indices 0 .. len(dataset) - 1 into ``num_replicas`` equal, disjoint shares.

    Every rank draws the same permutation (seeded by ``seed + epoch``, so call ``set_epoch``
    at the start of each epoch to reshuffle; the Trainer does), pads it by repeating its first
    indices until its length divides evenly (or, with ``drop_last``, cuts the tail), and takes
    every ``num_replicas``-th index starting at its rank. Without ``drop_last`` each epoch
    covers the data set exactly once plus the padding; with it, at most ``num_replicas - 1``
    samples are left out.

    Args:
        dataset: anything with ``__len__``.
        num_replicas: number of ranks. Default: the world size.
        rank: this rank. Default: the current rank.
        shuffle: permute the indices each epoch. Default: True.
        seed: base seed of the permutation; must be the same on every rank. Default: 0.
        drop_last: drop the tail instead of padding. Default: False.

    Shape:
        iterating yields ``len(self)`` int indices.

    Example:
        >>> sampler = DistributedSampler(range(10), num_replicas=4, rank=1, shuffle=False)
        >>> list(sampler)
        [1, 5, 9]
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
                 drop_last=False):
        num_replicas = comm.get_world_size() if num_replicas is None else num_replicas
        rank = comm.get_rank() if rank is None else rank
        if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) \
                or num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be a positive int, got "
                             f"{num_replicas!r}")
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in [0, {num_replicas - 1}], "
                             f"got {rank!r}")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        if self.drop_last and n % num_replicas:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int):
        """Use the permutation of ``epoch``; the same call on every rank keeps shares
        disjoint."""
        self.epoch = int(epoch)

    def indices(self):
        """This rank's indices for the current epoch, as an int64 array."""
        xp = backend.namespace("cpu")
        n = len(self.dataset)
        if self.shuffle:
            order = backend.Generator(seed=self.seed + self.epoch).permutation(n)
            order = backend.to_numpy(order).astype(backend.int64)
        else:
            order = xp.arange(n, dtype=backend.int64)
        if self.drop_last:
            order = order[:self.total_size]
        elif self.total_size > n:
            order = xp.resize(order, self.total_size)  # repeats from the start, as torch pads
        return order[self.rank:self.total_size:self.num_replicas]

    def __iter__(self):
        return iter(self.indices().tolist())

    def __len__(self):
        return self.num_samples

    def __repr__(self):
        return (f"DistributedSampler(len={len(self.dataset)}, num_replicas={self.num_replicas}, "
                f"rank={self.rank}, shuffle={self.shuffle}, drop_last={self.drop_last})")
