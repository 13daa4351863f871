"""Reductions against PyTorch: sum, mean, var, std, max/min, amax/amin, argmax/argmin,
logsumexp, all/any; with dim (int, tuple, negative), keepdim, 0-d inputs and ties."""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from oracle import check_op
from strategies import FAST, seeds, shape_and_dim, shape_and_dims, shapes

import shendu


@pytest.mark.parametrize("name", ["sum", "mean", "var", "std", "logsumexp", "amax", "amin"])
@FAST
@given(case=shape_and_dims(), keepdim=st.booleans(), seed=seeds)
def test_reduce_over_dims(name, case, keepdim, seed):
    shape, dims = case
    fn = lambda x: getattr(x, name)(dims, keepdim=keepdim)  # noqa: E731
    # var/std of a single element is nan (torch agrees); need >= 2 elements for a value
    if name in ("var", "std") and np.prod([shape[d] for d in dims]) < 2:
        shape = tuple(s if i not in [d % len(shape) for d in dims] else 2
                      for i, s in enumerate(shape))
    check_op(fn, [shape], seed=seed, second_order=name not in ("amax", "amin"))
    check_op(lambda x: getattr(shendu, name)(x, dims, keepdim=keepdim), [shape],
             lambda x: getattr(torch, name)(x, dims, keepdim=keepdim), seed=seed)


@pytest.mark.parametrize("name", ["sum", "mean", "var", "std"])
@FAST
@given(shape=shapes(min_dims=0), seed=seeds)
def test_reduce_all(name, shape, seed):
    if name in ("var", "std") and np.prod(shape) < 2:
        shape = shape + (2,)
    check_op(lambda x: getattr(x, name)(), [shape], seed=seed, second_order=True)


@pytest.mark.parametrize("name", ["max", "min"])
@FAST
@given(case=shape_and_dim(), keepdim=st.booleans(), seed=seeds)
def test_max_min_with_dim(name, case, keepdim, seed):
    shape, dim = case
    check_op(lambda x: getattr(x, name)(dim, keepdim), [shape], seed=seed, second_order=True)
    check_op(lambda x: getattr(x, name)(dim=dim, keepdim=keepdim).values, [shape], seed=seed)
    check_op(lambda x: getattr(shendu, name)(x, dim, keepdim)[1], [shape],
             lambda x: getattr(torch, name)(x, dim, keepdim)[1], seed=seed, grad=False)


@pytest.mark.parametrize("name", ["max", "min", "amax", "amin"])
@FAST
@given(shape=shapes(min_dims=0), seed=seeds)
def test_max_min_all(name, shape, seed):
    check_op(lambda x: getattr(x, name)(), [shape], seed=seed)


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@FAST
@given(case=shape_and_dim(), keepdim=st.booleans(), seed=seeds)
def test_argmax_argmin(name, case, keepdim, seed):
    shape, dim = case
    check_op(lambda x: getattr(x, name)(dim, keepdim), [shape], seed=seed, grad=False)
    check_op(lambda x: getattr(shendu, name)(x, dim=dim, keepdim=keepdim), [shape],
             lambda x: getattr(torch, name)(x, dim=dim, keepdim=keepdim), seed=seed,
             grad=False)
    check_op(lambda x: getattr(x, name)(), [shape], seed=seed, grad=False)


def test_0d_reductions_with_dim():
    for name in ("sum", "mean", "amax", "logsumexp"):
        check_op(lambda x: getattr(x, name)(0), [()], second_order=name != "amax")
        check_op(lambda x: getattr(x, name)(-1, keepdim=True), [()])
    check_op(lambda x: x.max(0), [()])
    check_op(lambda x: x.argmax(0), [()], grad=False)
    check_op(lambda x: x.argmin(-1, keepdim=True), [()], grad=False)


def test_ties_share_gradient_like_torch():
    data = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    # amax / max() without dim split the gradient evenly over the ties
    check_op(lambda x: x.amax(1), [data])
    check_op(lambda x: x.max(), [data])
    check_op(lambda x: x.amin(), [data])
    # max(dim) sends the gradient to the selected index only; torch picks the first
    check_op(lambda x: x.max(1), [data])
    check_op(lambda x: x.min(0), [data])
    check_op(lambda x: x.argmax(1), [data], grad=False)
    check_op(lambda x: x.argmin(), [data], grad=False)


def test_max_of_two_tensors_is_elementwise():
    check_op(lambda a, b: shendu.max(a, b), [(3, 1), (4,)], lambda a, b: torch.max(a, b))
    check_op(lambda a, b: shendu.min(a, b), [(3, 4), (4,)], lambda a, b: torch.min(a, b))


@pytest.mark.parametrize("correction", [0, 1, 2])
def test_var_std_correction(correction):
    check_op(lambda x: x.var(1, correction=correction), [(3, 5)], second_order=True)
    check_op(lambda x: x.std(0, keepdim=True, correction=correction), [(4, 2)],
             second_order=True)
    check_op(lambda x: x.var(unbiased=False), [(3, 5)],
             lambda x: x.var(correction=0))


def test_var_std_positional_order_is_torchs():
    # torch reads x.var(dim, unbiased, keepdim): a positional bool is `unbiased`
    check_op(lambda x: x.var(1, False), [(3, 5)], second_order=True)
    check_op(lambda x: x.std(0, True, True), [(3, 5)])
    check_op(lambda x: shendu.var(x, 1, False, True), [(3, 5)],
             lambda x: torch.var(x, 1, False, True))


def test_logsumexp_is_stable_for_huge_logits():
    data = np.array([[1e4, 1e4 - 1.0, -1e4], [-1e4, -1e4, 0.0], [-np.inf, 0.0, 1.0]])
    check_op(lambda x: x.logsumexp(1), [data], second_order=True)
    check_op(lambda x: shendu.logsumexp(x, dim=-1, keepdim=True), [data],
             lambda x: torch.logsumexp(x, dim=-1, keepdim=True))
    all_neg_inf = shendu.tensor([[-float("inf"), -float("inf")]])
    np.testing.assert_array_equal(all_neg_inf.logsumexp(1).numpy(), [-np.inf])


def test_sum_of_integers_and_bools_is_int64():
    check_op(lambda x: x.sum(), [np.array([[1, 2], [3, 4]], dtype=np.int32)], grad=False)
    check_op(lambda x: x.sum(0), [np.array([True, False, True])], grad=False)
    check_op(lambda x: x.sum(), [np.array([1.0, 2.0], dtype=np.float32)], grad=False)


@FAST
@given(case=shape_and_dims(), keepdim=st.booleans(), seed=seeds)
def test_all_any(case, keepdim, seed):
    shape, dims = case
    data = np.random.default_rng(seed).random(shape) > 0.3
    for name in ("all", "any"):
        check_op(lambda x: getattr(x, name)(dims[0], keepdim), [data], grad=False)
        check_op(lambda x: getattr(x, name)(), [data], grad=False)


def test_empty_reductions_match_torch():
    empty = np.zeros((0, 3))
    check_op(lambda x: x.sum(0), [empty])
    check_op(lambda x: x.sum(), [empty])
    check_op(lambda x: x.mean(1), [empty])


def test_float32_outputs_stay_float32():
    x = shendu.randn(4, 5)
    for out in (x.sum(), x.mean(1), x.var(0), x.std(), x.max(), x.max(1).values, x.amin(0),
                x.logsumexp(1)):
        assert out.dtype == shendu.float32


# --- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda x: x.sum(2), lambda x: x.sum(-3), lambda x: x.mean((0, 5)), lambda x: x.var(2),
    lambda x: x.max(2), lambda x: x.argmax(-3), lambda x: x.logsumexp(2),
    lambda x: x.amax(3), lambda x: x.all(2),
])
def test_dim_out_of_range_names_op_and_range(call):
    with pytest.raises(IndexError, match=r"\w+: dim -?\d+ is out of range for a tensor with 2 "
                                         r"dims \(expected an int in \[-2, 1\]\)"):
        call(shendu.ones(3, 4))


def test_reduction_errors():
    x = shendu.ones(3, 4)
    with pytest.raises(ValueError, match=r"sum: dim \(0, -2\) names an axis twice"):
        x.sum((0, -2))
    with pytest.raises(TypeError, match="mean: expected a floating point tensor, got int64"):
        shendu.tensor([1, 2]).mean()
    with pytest.raises(RuntimeError, match=r"max: cannot reduce an empty tensor of shape "
                                           r"\(0, 3\)"):
        shendu.zeros(0, 3).max()
    with pytest.raises(TypeError, match="sum: dim must be an int or a tuple of ints, got 1.5"):
        x.sum(1.5)
