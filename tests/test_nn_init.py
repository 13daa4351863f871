"""shendu.nn.init against torch.nn.init: gains, fan rules, sample statistics, determinism."""
import math

import numpy as np
import pytest
import torch

import shendu
from shendu.nn import init

N_BIG = (400, 500)  # 200k draws: the sample std is within ~0.3% of the truth


@pytest.mark.parametrize("nonlinearity,param", [
    ("linear", None), ("conv1d", None), ("conv2d", None), ("conv_transpose2d", None),
    ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
    ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)), ("selu", None)])
def test_calculate_gain_equals_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == \
        torch.nn.init.calculate_gain(nonlinearity, param)


def test_calculate_gain_rejects_unknown():
    with pytest.raises(ValueError, match="swish"):
        init.calculate_gain("swish")


@pytest.mark.parametrize("shape", [(7, 3), (16, 3, 5, 5), (4, 6, 3), (2, 8, 3, 1)])
def test_fans_equal_torch(shape):
    ours = init._calculate_fan_in_and_fan_out(shendu.empty(*shape))
    theirs = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(*shape))
    assert ours == theirs


def test_fans_reject_1d():
    with pytest.raises(ValueError, match="fewer than 2 dims"):
        init._calculate_fan_in_and_fan_out(shendu.empty(5))


def _draw(fn, shape=N_BIG, **kwargs):
    t = shendu.empty(*shape, dtype=shendu.float64)
    out = fn(t, generator=shendu.Generator(seed=0), **kwargs)
    assert out is t
    return t.numpy()


def _close(value, target, what):
    assert abs(value - target) <= 0.02 * target, f"{what}: {value} vs formula {target}"


@pytest.mark.parametrize("gain", [1.0, 5 / 3])
def test_xavier_statistics(gain):
    fan_in, fan_out = N_BIG[1], N_BIG[0]
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    u = _draw(init.xavier_uniform_, gain=gain)
    _close(u.std(), std, "xavier_uniform_ std")
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    assert np.abs(u).max() <= bound and np.abs(u).max() > 0.99 * bound
    _close(_draw(init.xavier_normal_, gain=gain).std(), std, "xavier_normal_ std")


@pytest.mark.parametrize("mode,nonlinearity,a", [
    ("fan_in", "relu", 0.0), ("fan_out", "relu", 0.0), ("fan_in", "leaky_relu", math.sqrt(5)),
    ("fan_in", "leaky_relu", 0.1)])
def test_kaiming_statistics(mode, nonlinearity, a):
    fan = N_BIG[1] if mode == "fan_in" else N_BIG[0]
    std = torch.nn.init.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    kwargs = dict(a=a, mode=mode, nonlinearity=nonlinearity)
    u = _draw(init.kaiming_uniform_, **kwargs)
    _close(u.std(), std, "kaiming_uniform_ std")
    assert np.abs(u).max() <= math.sqrt(3) * std
    n = _draw(init.kaiming_normal_, **kwargs)
    _close(n.std(), std, "kaiming_normal_ std")
    assert abs(n.mean()) < 0.02 * std


def test_kaiming_conv_fan_includes_receptive_field():
    u = _draw(init.kaiming_normal_, shape=(64, 32, 5, 5), nonlinearity="relu")
    _close(u.std(), math.sqrt(2) / math.sqrt(32 * 25), "conv kaiming_normal_ std")


def test_kaiming_rejects_bad_mode():
    with pytest.raises(ValueError, match="fan_avg"):
        init.kaiming_uniform_(shendu.empty(3, 3), mode="fan_avg")


def test_normal_uniform_statistics():
    n = _draw(init.normal_, mean=1.5, std=0.3)
    _close(n.std(), 0.3, "normal_ std")
    assert abs(n.mean() - 1.5) < 0.003
    u = _draw(init.uniform_, a=-2.0, b=4.0)
    assert u.min() >= -2.0 and u.max() < 4.0
    _close(u.std(), 6 / math.sqrt(12), "uniform_ std")


def test_trunc_normal_stays_in_bounds():
    t = _draw(init.trunc_normal_, shape=(200, 100), std=1.0, a=-0.5, b=1.0)
    assert t.min() >= -0.5 and t.max() <= 1.0
    # the truncated normal's mean is phi(a) - phi(b) over Phi(b) - Phi(a)
    pdf = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    mean = (pdf(-0.5) - pdf(1.0)) / (cdf(1.0) - cdf(-0.5))
    assert abs(t.mean() - mean) < 0.01


@pytest.mark.parametrize("shape", [(30, 30), (20, 50), (50, 20), (8, 4, 3, 3)])
def test_orthogonal(shape):
    w = _draw(init.orthogonal_, shape=shape, gain=2.0)
    flat = w.reshape(shape[0], -1)
    rows, cols = flat.shape
    gram = flat @ flat.T if rows <= cols else flat.T @ flat
    np.testing.assert_allclose(gram, 4.0 * np.eye(min(rows, cols)), atol=1e-10)


def test_constant_zeros_ones_eye():
    t = shendu.empty(3, 4)
    assert init.constant_(t, 2.5) is t and np.all(t.numpy() == 2.5)
    assert np.all(init.zeros_(t).numpy() == 0) and np.all(init.ones_(t).numpy() == 1)
    np.testing.assert_array_equal(init.eye_(t).numpy(), np.eye(3, 4))
    with pytest.raises(ValueError, match="2-D"):
        init.eye_(shendu.empty(2, 2, 2))


@pytest.mark.parametrize("fn", [init.uniform_, init.normal_, init.xavier_uniform_,
                                init.xavier_normal_, init.kaiming_uniform_,
                                init.kaiming_normal_, init.orthogonal_, init.trunc_normal_])
def test_same_seed_same_values(fn):
    def draw(seed):
        return fn(shendu.empty(6, 5), generator=shendu.Generator(seed=seed)).numpy()
    np.testing.assert_array_equal(draw(3), draw(3))
    assert not np.array_equal(draw(3), draw(4))


@pytest.mark.parametrize("dtype", [shendu.float32, shendu.float64])
def test_init_keeps_dtype_and_graph_free(dtype):
    p = shendu.nn.Parameter(shendu.empty(4, 3, dtype=dtype))
    init.kaiming_uniform_(p, a=math.sqrt(5))
    init.orthogonal_(p)
    assert p.dtype == dtype and p.is_leaf and p.grad_fn is None and p.requires_grad
