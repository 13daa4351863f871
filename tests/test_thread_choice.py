"""threads.ThreadChoice: the measured choice of one BLAS thread or all for a repeated product
(the recurrent layers' per-step products use it)."""
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
def test_thread_choice_keeps_the_count_its_timings_found_faster(two_threads, slow_count,
                                                                expected):
    seen = []

    def product():
        count = _blas_threads(two_threads)
        seen.append(count)
        time.sleep(0.004 if count == slow_count else 0.0)
        return count

    choice = threads.ThreadChoice(trials=3, period=10)
    runs = [choice.run(product) for _ in range(10)]
    assert choice.best == expected
    assert seen[:6] == [1, 2] * 3                 # the trial round alternates the counts
    assert runs[6:] == [expected] * 4             # then keeps the faster one
    assert _blas_threads(two_threads) == 2        # the pool is set back after every call


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
