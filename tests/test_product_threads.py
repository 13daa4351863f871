"""threads.product_threads: shendu's large BLAS products run on the pool's threads less the
cores other processes keep busy, measured once per process (threads.busy_cores)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import shendu
from shendu import threads


class _FakeBlas:
    """A BLAS pool stand-in: the logic is tested whatever this machine's pool size."""

    def __init__(self):
        self.threads = 2
        self.seen = []

    def set_num_threads(self, num):
        self.threads = num
        self.seen.append(num)

    def get_num_threads(self):
        return self.threads


@pytest.fixture
def two_threads(monkeypatch):
    lib = _FakeBlas()
    controller = type("Controller", (), {"lib_controllers": [lib]})()
    monkeypatch.setattr(threads, "_blas_controller", lambda: controller)
    monkeypatch.setattr(threads, "_usable_cpus", lambda: {0, 1})
    monkeypatch.setitem(threads._state, "threads", 2)
    monkeypatch.setitem(threads._state, "products", None)
    yield lib


@pytest.fixture
def one_core_busy(two_threads, monkeypatch):
    """Another process holds one of the two cores; yields (the pool stand-in, the list of
    load measurements made)."""
    calls = []
    monkeypatch.setattr(threads, "busy_cores", lambda: calls.append(1) or 0.97)
    yield two_threads, calls


@pytest.mark.parametrize("busy, expected", [(0.0, 2), (0.3, 2), (0.7, 1), (0.97, 1),
                                            (1.9, 1), (None, 2)])
def test_products_leave_the_busy_cores_to_their_owners(two_threads, monkeypatch, busy,
                                                        expected):
    monkeypatch.setattr(threads, "busy_cores", lambda: busy)
    assert threads.product_threads() == expected


def test_the_load_is_measured_once_per_process_and_after_set_num_threads(one_core_busy,
                                                                          monkeypatch):
    _, measured = one_core_busy
    assert [threads.product_threads() for _ in range(5)] == [1] * 5
    assert len(measured) == 1  # reproducible: later products keep the count
    monkeypatch.setitem(threads._state, "threads", 3)  # as set_num_threads(3) leaves it
    assert threads.product_threads() == 1 and len(measured) == 2


def test_one_thread_set_by_the_user_needs_no_measurement(two_threads, monkeypatch):
    monkeypatch.setitem(threads._state, "threads", 1)
    monkeypatch.setattr(threads, "busy_cores", lambda: pytest.fail("measured"))
    assert threads.product_threads() == 1


def test_busy_cores_counts_other_processes_ticks_only(monkeypatch):
    """(busy ticks - this process's own) / elapsed ticks per CPU, from two /proc/stat reads."""
    reads = iter([(1000, 5000), (1000 + 10 + 4, 5000 + 2 * 10)])  # 10 ticks elapsed per CPU
    clock = iter([2.0, 2.04])  # this process used 0.04 s = 4 ticks at 100 Hz
    monkeypatch.setattr(threads, "_usable_cpus", lambda: {0, 1})
    monkeypatch.setattr(threads, "_cpu_ticks", lambda cpus: next(reads))
    monkeypatch.setattr(threads.time, "process_time", lambda: next(clock))
    monkeypatch.setattr(threads.os, "sysconf", lambda name: 100)
    assert threads.busy_cores(seconds=0) == pytest.approx(1.0)


def test_busy_cores_sees_a_spinning_process():
    """On Linux a spinning process counts as a busy core; without /proc/stat (macOS,
    Windows) nothing is measured and the products keep the pool's size."""
    if not os.path.exists("/proc/stat"):
        assert threads.busy_cores(seconds=0.01) is None
        return
    spinner = subprocess.Popen([sys.executable, "-c", "print(flush=True)\nwhile True: pass"],
                               stdout=subprocess.PIPE)
    try:
        spinner.stdout.readline()  # it is spinning now
        assert threads.busy_cores(seconds=0.2) >= 0.5
    finally:
        spinner.kill()
        spinner.wait()


def test_matmul_runs_large_products_on_the_chosen_count_and_sets_the_pool_back(
        one_core_busy):
    pool, measured = one_core_busy
    rng = np.random.default_rng(1)
    big_a, big_b = rng.standard_normal((64, 512)), rng.standard_normal((512, 64))
    small_a, small_b = rng.standard_normal((4, 8)), rng.standard_normal((8, 3))
    np.testing.assert_array_equal(threads.matmul(small_a, small_b), small_a @ small_b)
    assert measured == [] and pool.seen == []  # small products run as they are
    out = np.empty((64, 64))
    assert threads.matmul(big_a, big_b, out=out) is out
    np.testing.assert_array_equal(out, big_a @ big_b)
    assert pool.seen == [1, 2] and len(measured) == 1


def test_matmul_leaves_the_pool_alone_on_quiet_cores(two_threads, monkeypatch):
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.0)
    rng = np.random.default_rng(1)
    threads.matmul(rng.standard_normal((64, 512)), rng.standard_normal((512, 64)))
    assert two_threads.seen == []


def test_recurrent_layers_on_one_product_thread_equal_torch(one_core_busy):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 32, 64))
    ours = shendu.nn.LSTM(64, 256).double()
    theirs = torch.nn.LSTM(64, 256).double()
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            p.copy_(torch.from_numpy(getattr(ours, name).detach().numpy()))
    y, _ = ours(shendu.tensor(x))
    ref, _ = theirs(torch.from_numpy(x))
    assert 1 in one_core_busy[0].seen  # the step products ran on one thread
    np.testing.assert_allclose(y.detach().numpy(), ref.detach().numpy(), rtol=1e-10,
                               atol=1e-10)


def test_layers_on_one_product_thread_equal_torch(one_core_busy):
    """Linear, matmul and a convolution whose GEMMs go through threads.matmul, forward and
    backward, against torch in float64."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 40, 9, 9))
    w = rng.standard_normal((48, 40, 3, 3))
    lw = rng.standard_normal((30, 48 * 49))
    ours = [shendu.tensor(a, requires_grad=True) for a in (x, w, lw)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, lw)]
    for _ in range(2):
        results = []
        for lib, fn, (a, b, c) in ((shendu, shendu.nn.functional, ours),
                                   (torch, torch.nn.functional, theirs)):
            y = fn.linear(fn.conv2d(a, b, stride=1).reshape(8, -1), c)
            z = (y @ y.T).sum()
            grads = lib.autograd.grad(z, [a, b, c])
            results.append([z.detach().numpy()] + [g.detach().numpy() for g in grads])
        for mine, ref in zip(*results):
            np.testing.assert_allclose(mine, ref, rtol=1e-10, atol=1e-8)
    assert 1 in one_core_busy[0].seen
