"""threads.ThreadChoice: the measured choice of one BLAS thread or all for a repeated product
made once per product shape (every large product goes through threads.matmul)."""
import time

import numpy as np
import pytest

import shendu
from shendu import threads


class _FakeBlas:
    """A BLAS pool stand-in: the choice's logic is tested whatever this machine's pool size."""

    def __init__(self):
        self.threads = 2

    def set_num_threads(self, num):
        self.threads = num

    def get_num_threads(self):
        return self.threads


@pytest.fixture
def two_threads(monkeypatch):
    lib = _FakeBlas()
    controller = type("Controller", (), {"lib_controllers": [lib]})()
    monkeypatch.setattr(threads, "_blas_controller", lambda: controller)
    monkeypatch.setitem(threads._state, "threads", 2)
    yield controller


def _blas_threads(controller):
    return max(lib.get_num_threads() for lib in controller.lib_controllers)


@pytest.mark.parametrize("slow_count, expected", [(1, 2), (2, 1)])
def test_thread_choice_keeps_the_count_its_first_call_found_faster(two_threads, slow_count,
                                                                   expected):
    seen = []

    def product():
        count = _blas_threads(two_threads)
        seen.append(count)
        time.sleep(0.004 if count == slow_count else 0.0)
        return count

    choice = threads.ThreadChoice(trials=3)
    runs = [choice.run(product) for _ in range(10)]
    assert choice.best == expected
    assert seen[:6] == [1, 2] * 3                 # the first call's trial alternates the counts
    assert seen[6:] == [expected] * 10            # then every call, the first one's result too
    assert runs == [expected] * 10
    assert _blas_threads(two_threads) == 2        # the pool is set back after every call


def test_thread_choice_never_changes_once_made(two_threads):
    """Reproducibility: a later slowdown of the chosen count does not move the choice."""
    slow = {1: 0.0, 2: 0.004}

    def product():
        time.sleep(slow[_blas_threads(two_threads)])

    choice = threads.ThreadChoice(trials=2)
    choice.run(product)
    assert choice.best == 1
    slow.update({1: 0.004, 2: 0.0})
    for _ in range(5):
        choice.run(product)
    assert choice.best == 1


def test_choices_stop_at_their_limit_instead_of_forgetting(two_threads, monkeypatch):
    monkeypatch.setattr(threads, "_choices", {})
    monkeypatch.setattr(threads, "_MAX_CHOICES", 2)
    kept = [threads.choice(k) for k in ("a", "b")]
    assert threads.choice("c") is None and threads.choice("a") is kept[0]


def test_thread_choice_runs_plainly_on_one_thread(two_threads, monkeypatch):
    monkeypatch.setitem(threads._state, "threads", 1)
    choice = threads.ThreadChoice()
    assert choice.run(lambda: 7) == 7 and choice.best is None


def test_recurrent_layers_with_thread_choice_equal_torch(two_threads):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 5))
    ours = shendu.nn.LSTM(5, 4).double()
    theirs = torch.nn.LSTM(5, 4).double()
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            p.copy_(torch.from_numpy(getattr(ours, name).detach().numpy()))
    y, _ = ours(shendu.tensor(x))
    ref, _ = theirs(torch.from_numpy(x))
    np.testing.assert_allclose(y.detach().numpy(), ref.detach().numpy(), rtol=1e-12,
                               atol=1e-12)


def test_matmul_chooses_threads_for_large_products_only(two_threads, monkeypatch):
    monkeypatch.setattr(threads, "_choices", {})
    rng = np.random.default_rng(1)
    big_a, big_b = rng.standard_normal((64, 512)), rng.standard_normal((512, 64))
    small_a, small_b = rng.standard_normal((4, 8)), rng.standard_normal((8, 3))
    for _ in range(8):
        np.testing.assert_array_equal(threads.matmul(big_a, big_b), big_a @ big_b)
        np.testing.assert_array_equal(threads.matmul(small_a, small_b), small_a @ small_b)
    out = np.empty((64, 64))
    assert threads.matmul(big_a, big_b, out=out) is out
    keys = list(threads._choices)
    assert [k[:2] for k in keys] == [((64, 512), (512, 64))] * 2  # with and without out=
    assert threads._choices[keys[0]].best in (1, 2)
    assert _blas_threads(two_threads) == 2


def test_layers_on_chosen_threads_equal_torch(two_threads):
    """Linear, matmul and a convolution whose GEMMs go through threads.matmul, forward and
    backward, against torch in float64 (the choice changes thread counts, never results)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 40, 9, 9))
    w = rng.standard_normal((48, 40, 3, 3))
    lw = rng.standard_normal((30, 48 * 49))
    ours = [shendu.tensor(a, requires_grad=True) for a in (x, w, lw)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, lw)]
    for _ in range(8):  # through a trial round and past it
        results = []
        for lib, fn, (a, b, c) in ((shendu, shendu.nn.functional, ours),
                                   (torch, torch.nn.functional, theirs)):
            y = fn.linear(fn.conv2d(a, b, stride=1).reshape(8, -1), c)
            z = (y @ y.T).sum()
            grads = lib.autograd.grad(z, [a, b, c])
            results.append([z.detach().numpy()] + [g.detach().numpy() for g in grads])
        for mine, ref in zip(*results):
            np.testing.assert_allclose(mine, ref, rtol=1e-10, atol=1e-8)
