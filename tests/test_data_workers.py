"""torch.utils.data's samplers and DataLoader arguments, and real DataLoader worker processes."""
import os

import numpy as np
import pytest
import torch
import torch.utils.data as tud

import shendu
from shendu.utils import data as sud


class Squares(sud.Dataset):
    """Sample i is (tensor([i, i^2]) + a random jitter from the default generator, i)."""

    def __init__(self, n=23, bad=None, jitter=False):
        self.n, self.bad, self.jitter = n, bad, jitter

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.bad:
            raise ValueError(f"sample {i} is corrupt")
        x = shendu.tensor([float(i), float(i * i)])
        if self.jitter:
            x = x + shendu.rand(2)
        info = sud.get_worker_info()
        return x, (info.id if info is not None else -1)


class Crash(Squares):
    def __getitem__(self, i):
        if i == 5:
            os._exit(3)  # the worker dies without a Python exception
        return super().__getitem__(i)


def test_torch_utils_data_names_exist():
    for name in ("Dataset", "TensorDataset", "DataLoader", "Subset", "random_split",
                 "ConcatDataset", "Sampler", "SequentialSampler", "RandomSampler",
                 "SubsetRandomSampler", "WeightedRandomSampler", "BatchSampler",
                 "default_collate", "default_convert", "get_worker_info"):
        assert hasattr(sud, name) and hasattr(tud, name), name
    assert shendu.utils.data.DataLoader is shendu.data.DataLoader


@pytest.mark.parametrize("n, size, drop", [(10, 3, False), (10, 3, True), (9, 3, True),
                                           (1, 4, False)])
def test_batch_sampler_matches_torch(n, size, drop):
    ours = list(sud.BatchSampler(sud.SequentialSampler(range(n)), size, drop))
    theirs = list(tud.BatchSampler(tud.SequentialSampler(range(n)), size, drop))
    assert ours == theirs
    assert len(sud.BatchSampler(range(n), size, drop)) == len(theirs)
    assert list(sud.BatchSampler(range(n), size, drop)) == theirs  # any iterable sampler


def test_random_samplers_are_seeded_and_have_torch_lengths():
    g = shendu.Generator().manual_seed(0)
    perm = list(sud.RandomSampler(range(10), generator=g))
    assert sorted(perm) == list(range(10))
    long = list(sud.RandomSampler(range(4), num_samples=10, generator=g))
    assert len(long) == 10 == len(tud.RandomSampler(range(4), num_samples=10))
    assert sorted(long[:8]) == sorted(list(range(4)) * 2)  # chained permutations, as torch
    draws = list(sud.RandomSampler(range(3), replacement=True, num_samples=50, generator=g))
    assert len(draws) == 50 and set(draws) <= {0, 1, 2}
    sub = list(sud.SubsetRandomSampler([7, 3, 9], generator=g))
    assert sorted(sub) == [3, 7, 9]
    a = list(sud.RandomSampler(range(50), generator=shendu.Generator().manual_seed(5)))
    b = list(sud.RandomSampler(range(50), generator=shendu.Generator().manual_seed(5)))
    assert a == b
    with pytest.raises(ValueError, match="num_samples should be a positive integer"):
        sud.RandomSampler(range(3), num_samples=0)


def test_weighted_sampler_frequencies_follow_the_weights():
    weights = [1.0, 3.0, 0.0, 6.0]
    g = shendu.Generator().manual_seed(1)
    draws = np.array(list(sud.WeightedRandomSampler(weights, 20000, generator=g)))
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 20000, [0.1, 0.3, 0.0, 0.6],
                               atol=0.015)
    # without replacement: every index once at most, weight 0 never, heavy ones first more often
    firsts = []
    for seed in range(400):
        gen = shendu.Generator().manual_seed(seed)
        picks = list(sud.WeightedRandomSampler(weights, 3, replacement=False, generator=gen))
        assert sorted(picks) == [0, 1, 3]
        firsts.append(picks[0])
    np.testing.assert_allclose(np.bincount(firsts, minlength=4)[[0, 1, 3]] / 400,
                               [0.1, 0.3, 0.6], atol=0.06)
    with pytest.raises(ValueError, match="without replacement"):
        sud.WeightedRandomSampler(weights, 4, replacement=False)
    with pytest.raises(ValueError, match="non-negative"):
        sud.WeightedRandomSampler([1.0, -1.0], 2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(sampler=[0, 1], shuffle=True), "mutually exclusive with shuffle"),
    (dict(batch_sampler=[[0]], batch_size=3), "batch_sampler option is mutually exclusive"),
    (dict(num_workers=-1), "num_workers option should be a non-negative"),
    (dict(prefetch_factor=2), "prefetch_factor option could only be specified"),
    (dict(persistent_workers=True), "persistent_workers option needs num_workers > 0"),
    (dict(timeout=-1), "timeout option should be non-negative")])
def test_loader_argument_errors_match_torch(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sud.DataLoader(range(5), **kwargs)
    with pytest.raises(ValueError):
        tud.DataLoader(range(5), **kwargs)


def test_sampler_batch_sampler_and_unbatched_loading_match_torch():
    ds, tds = Squares(7), [(torch.tensor([float(i), float(i * i)]), -1) for i in range(7)]
    order = [6, 2, 4, 0]
    ours = [x.tolist() for x, _ in sud.DataLoader(ds, batch_size=3, sampler=order)]
    theirs = [x.tolist() for x, _ in tud.DataLoader(tds, batch_size=3, sampler=order)]
    assert ours == theirs
    ours = [x.tolist() for x, _ in sud.DataLoader(ds, batch_sampler=[[1, 5], [3]])]
    theirs = [x.tolist() for x, _ in tud.DataLoader(tds, batch_sampler=[[1, 5], [3]])]
    assert ours == theirs
    assert list(sud.DataLoader(range(4), batch_size=None)) == \
        list(tud.DataLoader(range(4), batch_size=None))
    converted = next(iter(sud.DataLoader([np.arange(3.0)], batch_size=None)))
    assert isinstance(converted, shendu.Tensor) and converted.dtype == shendu.float64


@pytest.mark.parametrize("workers", [1, 3])
def test_workers_give_the_batches_of_num_workers_0_in_order(workers):
    shendu.manual_seed(7)
    single = [x.tolist() for x, _ in sud.DataLoader(Squares(), batch_size=4, shuffle=True)]
    shendu.manual_seed(7)
    loader = sud.DataLoader(Squares(), batch_size=4, shuffle=True, num_workers=workers)
    batches = list(loader)
    assert [x.tolist() for x, _ in batches] == single
    # batch k was loaded by worker k % workers: real processes did the work
    assert [int(w[0]) for _, w in batches] == [k % workers for k in range(len(single))]
    assert loader._pool is None  # not persistent: the workers were shut down


def test_worker_seeds_make_random_transforms_reproducible_and_distinct():
    def run():
        g = shendu.Generator().manual_seed(3)
        loader = sud.DataLoader(Squares(8, jitter=True), batch_size=2, num_workers=2,
                                generator=g)
        return [x.numpy() for x, _ in loader]

    first, second = run(), run()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    jitter = [x - np.array([[float(i), float(i * i)] for i in range(2 * k, 2 * k + 2)])
              for k, x in enumerate(first)]
    assert not np.allclose(jitter[0], jitter[1])  # workers 0 and 1 had different seeds


def test_worker_init_fn_and_worker_info(tmp_path):
    def init(worker_id):
        info = sud.get_worker_info()
        (tmp_path / f"w{worker_id}").write_text(f"{info.id} {info.num_workers} "
                                                f"{type(info.dataset).__name__}")

    list(sud.DataLoader(Squares(6), batch_size=2, num_workers=2, worker_init_fn=init))
    assert sorted(p.read_text() for p in tmp_path.iterdir()) == ["0 2 Squares", "1 2 Squares"]
    assert sud.get_worker_info() is None  # the main process


def test_a_failing_sample_names_the_worker_and_the_index():
    loader = sud.DataLoader(Squares(bad=13), batch_size=4, num_workers=2)
    with pytest.raises(ValueError, match=r"worker 1 failed on dataset\[13\]: ValueError: "
                                         r"sample 13 is corrupt") as info:
        list(loader)
    assert "Traceback in the worker" in str(info.value) and "__getitem__" in str(info.value)
    with pytest.raises(ValueError, match="sample 13 is corrupt"):  # num_workers=0: as raised
        list(sud.DataLoader(Squares(bad=13), batch_size=4))


def test_a_dead_worker_is_reported_not_waited_for():
    with pytest.raises(RuntimeError, match="exited unexpectedly.*exit code 3"):
        list(sud.DataLoader(Crash(), batch_size=2, num_workers=2))


def test_persistent_workers_survive_epochs_and_shut_down_cleanly():
    loader = sud.DataLoader(Squares(10), batch_size=3, num_workers=2, persistent_workers=True,
                            prefetch_factor=1)
    first = [x.tolist() for x, _ in loader]
    pool = loader._pool
    pids = [w.pid for w in pool.workers]
    it = iter(loader)
    next(it)  # abandon an epoch half-way: its late results must not leak into the next one
    del it
    assert [x.tolist() for x, _ in loader] == first
    assert loader._pool is pool and [w.pid for w in pool.workers] == pids
    workers = list(pool.workers)
    pool.shutdown()
    assert not any(w.is_alive() for w in workers)
    assert [x.tolist() for x, _ in loader] == first  # a fresh pool after a shutdown


def test_pin_memory_is_accepted_and_says_it_does_nothing():
    with pytest.warns(UserWarning, match="pin_memory=True has no effect"):
        loader = sud.DataLoader(Squares(4), batch_size=2, pin_memory=True)
    assert len(list(loader)) == 2


class Stream(sud.IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))


class TorchStream(tud.IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))


@pytest.mark.parametrize("kwargs", [dict(batch_size=3), dict(batch_size=3, drop_last=True),
                                    dict(batch_size=None)])
def test_iterable_datasets_batch_like_torch(kwargs):
    ours = [b.tolist() if hasattr(b, "tolist") else b
            for b in sud.DataLoader(Stream(7) + Stream(2), **kwargs)]
    theirs = [b.tolist() if hasattr(b, "tolist") else b
              for b in tud.DataLoader(tud.ChainDataset([TorchStream(7), TorchStream(2)]),
                                      **kwargs)]
    assert ours == theirs
    with pytest.raises(TypeError):
        len(sud.DataLoader(Stream(3)))
    with pytest.raises(ValueError, match="expected unspecified shuffle"):
        sud.DataLoader(Stream(3), shuffle=True)
    with pytest.raises(ValueError, match="num_workers > 0 is not supported"):
        sud.DataLoader(Stream(3), num_workers=2)


@pytest.mark.parametrize("shuffle, drop_last", [(False, False), (True, False), (True, True)])
def test_distributed_sampler_on_the_torch_path_matches_torch(shuffle, drop_last):
    from shendu.utils.data import DistributedSampler
    union = []
    for rank in range(3):
        ours = DistributedSampler(list(range(10)), num_replicas=3, rank=rank, shuffle=shuffle,
                                  drop_last=drop_last)
        theirs = tud.DistributedSampler(list(range(10)), num_replicas=3, rank=rank,
                                        shuffle=shuffle, drop_last=drop_last)
        assert len(ours) == len(theirs)
        union += list(ours)
        if not shuffle:  # shuffled, the permutation is our generator's, not torch's
            assert list(ours) == list(theirs)
    assert len(union) == (9 if drop_last else 12)
    assert set(union) <= set(range(10)) and (drop_last or set(union) == set(range(10)))


class CompiledKernelsFlag(sud.Dataset):
    """Sample i is whether the process that fetched it may run numba kernels."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return shendu.tensor([float(shendu.backend.compiled_kernels_enabled())])


def test_forked_workers_do_not_run_compiled_kernels():
    """numba's OpenMP layer (GNU libgomp) is not fork-safe, so a worker forked from a process
    that has run a parallel kernel must use the NumPy reference (shendu.data.workers); the
    workers switch the kernels off whether or not numba is installed."""
    from shendu.ops import conv_kernels
    x = np.ones((1, 4, 4, 4), dtype=np.float32)
    if conv_kernels.available(x):  # start the parent's threading layer
        conv_kernels.correlate3x3(conv_kernels.to_tall(x), np.ones((4, 4, 3, 3), np.float32),
                                  None, 1, (4, 4))
    flags = [b.numpy() for b in sud.DataLoader(CompiledKernelsFlag(), batch_size=2,
                                               num_workers=2)]
    assert np.concatenate(flags).ravel().tolist() == [0.0] * 4
    assert shendu.backend.compiled_kernels_enabled()
