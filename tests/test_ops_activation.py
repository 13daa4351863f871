"""Activations against PyTorch: relu, leaky_relu, elu, sigmoid, tanh, gelu (exact and tanh),
softmax, log_softmax; values, gradients, second derivatives and stability at |x| = 1e4."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from oracle import check_op
from strategies import FAST, seeds, shape_and_dim, shapes

import shendu


def away_from_zero(shape, seed):
    rng = np.random.default_rng(seed + 3)
    return rng.uniform(0.05, 3.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)


ACTIVATIONS = [
    ("relu", shendu.relu, torch.relu, False),
    ("relu_method", lambda x: x.relu(), None, False),
    ("leaky_relu", shendu.leaky_relu, F.leaky_relu, False),
    ("leaky_relu_0.1", lambda x: shendu.leaky_relu(x, 0.1), lambda x: F.leaky_relu(x, 0.1),
     False),
    ("elu", shendu.elu, F.elu, True),
    ("elu_alpha", lambda x: shendu.elu(x, alpha=0.5), lambda x: F.elu(x, alpha=0.5), True),
    ("sigmoid", shendu.sigmoid, torch.sigmoid, True),
    ("sigmoid_method", lambda x: x.sigmoid(), None, True),
    ("tanh", shendu.tanh, torch.tanh, True),
    ("tanh_method", lambda x: x.tanh(), None, True),
    ("gelu", shendu.gelu, F.gelu, True),
    ("gelu_tanh", lambda x: shendu.gelu(x, approximate="tanh"),
     lambda x: F.gelu(x, approximate="tanh"), True),
    ("erf", shendu.erf, torch.erf, True),
    ("erf_method", lambda x: x.erf(), None, True),
]


@pytest.mark.parametrize("name,fn,torch_fn,smooth", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
@FAST
@given(shape=shapes(min_dims=0, max_dims=3), seed=seeds)
def test_activation(name, fn, torch_fn, smooth, shape, seed):
    # piecewise-linear ones have a zero second derivative (torch's ZeroTensor): first order
    check_op(fn, [away_from_zero(shape, seed)], torch_fn, seed=seed, second_order=smooth,
             low=-4.0, high=4.0)


@pytest.mark.parametrize("name,fn,torch_fn,smooth", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_wide_range(name, fn, torch_fn, smooth):
    data = np.concatenate([np.linspace(-30, 30, 61) + 0.25, [-700.0, 700.0]])
    check_op(fn, [data], torch_fn, second_order=smooth, rtol=1e-7, atol=1e-12)


def test_relu_and_leaky_relu_at_zero_match_torch():
    data = np.array([-1.0, 0.0, 1.0])
    check_op(shendu.relu, [data], torch.relu)
    check_op(shendu.leaky_relu, [data], F.leaky_relu)
    check_op(shendu.elu, [data], F.elu)


def test_relu_of_integers():
    check_op(shendu.relu, [np.array([-2, 0, 3])], torch.relu, grad=False)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@FAST
@given(case=shape_and_dim(min_dims=1), seed=seeds)
def test_softmax(name, case, seed):
    shape, dim = case
    check_op(lambda x: getattr(shendu, name)(x, dim), [shape],
             lambda x: getattr(torch, name)(x, dim), seed=seed, second_order=True)
    check_op(lambda x: getattr(x, name)(dim), [shape], seed=seed)
    check_op(lambda x: getattr(shendu, name)(x, dim=dim), [shape],
             lambda x: getattr(F, name)(x, dim=dim), seed=seed)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_0d(name):
    check_op(lambda x: getattr(x, name)(0), [()], second_order=True)
    check_op(lambda x: getattr(x, name)(-1), [()])


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_stable_for_logits_of_1e4(name):
    data = np.array([[1e4, 0.0, -1e4], [1e4, 1e4, 1e4 - 2.0], [-1e4, -1e4 + 1.0, -1e4]])
    check_op(lambda x: getattr(x, name)(1), [data], second_order=True)
    check_op(lambda x: getattr(x, name)(0), [data], second_order=True)
    out32 = getattr(shendu.tensor(data, dtype=shendu.float32), name)(1)
    assert out32.dtype == shendu.float32
    assert np.isfinite(out32.numpy()).all() if name == "softmax" else \
        not np.isnan(out32.numpy()).any()
    expected = getattr(torch.tensor(data, dtype=torch.float32), name)(1)
    np.testing.assert_allclose(out32.numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)


def test_softmax_with_minus_inf_mask_matches_torch():
    data = np.array([[0.5, -np.inf, 1.0], [-np.inf, 2.0, -np.inf]])
    check_op(lambda x: x.softmax(-1), [data])
    check_op(lambda x: x.log_softmax(-1), [data])


def test_float32_in_float32_out():
    x = shendu.randn(3, 4)
    for out in (x.relu(), shendu.leaky_relu(x), shendu.elu(x), x.sigmoid(), x.tanh(),
                shendu.gelu(x), shendu.gelu(x, approximate="tanh"), x.softmax(1),
                x.log_softmax(0)):
        assert out.dtype == shendu.float32


# --- bad input ----------------------------------------------------------------------------

def test_activation_errors():
    x = shendu.ones(3, 4)
    with pytest.raises(IndexError, match="softmax: dim 2 is out of range for a tensor with 2 "
                                         "dims"):
        x.softmax(2)
    with pytest.raises(IndexError, match="log_softmax: dim -3 is out of range"):
        shendu.log_softmax(x, -3)
    with pytest.raises(TypeError, match="softmax: dim must be given explicitly"):
        shendu.softmax(x)
    with pytest.raises(TypeError, match="sigmoid: expected a floating point tensor, got int64"):
        shendu.sigmoid(shendu.tensor([1, 2]))
    with pytest.raises(ValueError, match="gelu: approximate must be 'none' or 'tanh', got "
                                         "'fast'"):
        shendu.gelu(x, approximate="fast")
    with pytest.raises(TypeError, match="tanh: expected a Tensor, got list"):
        shendu.tanh([1.0])
