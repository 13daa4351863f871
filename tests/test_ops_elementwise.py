"""Elementwise ops against PyTorch: values, gradients (random upstream), second derivatives,
broadcasting, dtype promotion and error messages."""
import numpy as np
import pytest
import torch
from hypothesis import given
from oracle import check_op
from strategies import FAST, broadcast_pairs, broadcast_triples, seeds, shapes

import shendu


def away_from_zero(shape, seed, low=0.5, high=2.0):
    rng = np.random.default_rng(seed + 1)
    return rng.uniform(low, high, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def positive(shape, seed, low=0.5, high=2.0):
    return np.random.default_rng(seed + 2).uniform(low, high, size=shape)


BINARY = [
    lambda a, b: a + b,
    lambda a, b: a - b,
    lambda a, b: a * b,
    lambda a, b: a.add(b, alpha=-1.5),
    lambda a, b: a.sub(b, alpha=2),
    lambda a, b: a.mul(b),
]


@pytest.mark.parametrize("fn", BINARY)
@FAST
@given(pair=broadcast_pairs(), seed=seeds)
def test_binary_arithmetic(fn, pair, seed):
    check_op(fn, list(pair), seed=seed, second_order=True)


@pytest.mark.parametrize("name", ["add", "sub", "mul", "maximum", "minimum"])
@FAST
@given(pair=broadcast_pairs(), seed=seeds)
def test_binary_functional(name, pair, seed):
    check_op(getattr(shendu, name), list(pair), getattr(torch, name), seed=seed,
             second_order=True)


@FAST
@given(pair=broadcast_pairs(), seed=seeds)
def test_div(pair, seed):
    denominator = away_from_zero(pair[1], seed)
    check_op(lambda a, b: a / b, [pair[0], denominator], seed=seed, second_order=True)
    check_op(shendu.div, [pair[0], denominator], torch.div, seed=seed)


@FAST
@given(pair=broadcast_pairs(), seed=seeds)
def test_pow_tensor_exponent(pair, seed):
    check_op(lambda a, b: a ** b, [positive(pair[0], seed), pair[1]], seed=seed,
             second_order=True)
    check_op(shendu.pow, [positive(pair[0], seed), pair[1]], torch.pow, seed=seed)


@pytest.mark.parametrize("exponent", [2, 3, 0.5, -1.5, 0, 1, -2])
@FAST
@given(shape=shapes(), seed=seeds)
def test_pow_scalar_exponent(exponent, shape, seed):
    check_op(lambda a: a ** exponent, [positive(shape, seed)], seed=seed, second_order=True)
    check_op(lambda a: a.pow(exponent), [positive(shape, seed)], seed=seed)


@pytest.mark.parametrize("exponent", [2, 3, 0])
def test_pow_integer_exponent_of_negative_base(exponent):
    check_op(lambda a: a ** exponent, [(3, 4)], second_order=True)


@FAST
@given(shape=shapes(), seed=seeds)
def test_reflected_scalar_ops(shape, seed):
    check_op(lambda a: 2.5 + a, [shape], seed=seed, second_order=True)
    check_op(lambda a: 2.5 - a, [shape], seed=seed, second_order=True)
    check_op(lambda a: 2.5 * a, [shape], seed=seed, second_order=True)
    check_op(lambda a: 2.5 / a, [away_from_zero(shape, seed)], seed=seed, second_order=True)
    check_op(lambda a: 1.7 ** a, [shape], seed=seed, second_order=True)
    check_op(lambda a: a / 4.0 - 1, [shape], seed=seed, second_order=True)


UNARY = [
    ("neg", lambda a: -a, None),
    ("neg_fn", lambda a: a.neg(), None),
    ("exp", lambda a: a.exp(), None),
    ("log", lambda a: a.log(), "positive"),
    ("sqrt", lambda a: a.sqrt(), "positive"),
    ("rsqrt", lambda a: a.rsqrt(), "positive"),
    ("square", lambda a: a.square(), None),
    ("abs", lambda a: a.abs(), "away"),
    ("abs_op", lambda a: abs(a), "away"),
    ("sign", lambda a: a.sign(), "away"),
    ("clamp_both", lambda a: a.clamp(-0.5, 0.7), None),
    ("clamp_min", lambda a: a.clamp(min=-0.3), None),
    ("clamp_max", lambda a: a.clamp(max=0.4), None),
    ("clip", lambda a: a.clip(-1.0, 1.0), None),
]


@pytest.mark.parametrize("name,fn,domain", UNARY, ids=[u[0] for u in UNARY])
@FAST
@given(shape=shapes(), seed=seeds)
def test_unary(name, fn, domain, shape, seed):
    data = {"positive": positive, "away": away_from_zero}.get(domain)
    inputs = [data(shape, seed) if data else shape]
    # abs and sign have a zero second derivative: torch returns a ZeroTensor for it
    check_op(fn, inputs, seed=seed, second_order=name not in ("abs", "abs_op", "sign"))


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "abs", "sign", "neg", "rsqrt",
                                  "square"])
def test_unary_functional(name):
    check_op(getattr(shendu, name), [positive((2, 3), 0)], getattr(torch, name),
             second_order=name not in ("abs", "sign"))


def test_clamp_functional_and_tensor_bounds():
    check_op(lambda a: shendu.clamp(a, -0.5, 0.5), [(4, 3)],
             lambda a: torch.clamp(a, -0.5, 0.5))
    check_op(lambda a: shendu.clamp(a, min=shendu.tensor(0.25, dtype=shendu.float64)),
             [(4, 3)], lambda a: torch.clamp(a, min=torch.tensor(0.25, dtype=torch.float64)))


def test_clamp_gradient_at_bounds_matches_torch():
    # torch lets the gradient through at x == min and x == max
    data = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    check_op(lambda a: a.clamp(-0.5, 0.5), [data])


def test_maximum_minimum_ties_split_the_gradient():
    a = np.array([[1.0, 2.0, 3.0]])
    b = np.array([[1.0, 0.0, 3.0]])
    check_op(shendu.maximum, [a, b], torch.maximum)
    check_op(shendu.minimum, [a, b], torch.minimum)


def test_abs_gradient_at_zero_is_zero():
    check_op(lambda a: a.abs(), [np.array([0.0, -1.0, 2.0])])


def test_abs_second_derivative_is_zero():
    x = shendu.tensor([-1.5, 0.5, 2.0], dtype=shendu.float64, requires_grad=True)
    (g,) = shendu.autograd.grad((x.abs() * x).sum(), x, create_graph=True)
    (h,) = shendu.autograd.grad((g * shendu.tensor([1.0, 2.0, 3.0])).sum(), x)
    np.testing.assert_allclose(h.numpy(), 2 * np.sign([-1.5, 0.5, 2.0]) * [1.0, 2.0, 3.0])


@FAST
@given(shapes3=broadcast_triples(), seed=seeds)
def test_where(shapes3, seed):
    cond = np.random.default_rng(seed).random(shapes3[0]) > 0.5
    check_op(lambda c, a, b: shendu.where(c, a, b), [cond, shapes3[1], shapes3[2]],
             lambda c, a, b: torch.where(c, a, b), seed=seed, second_order=True)


def test_where_with_scalars_and_method():
    cond = np.array([[True, False, True], [False, False, True]])
    check_op(lambda c, a: shendu.where(c, a, 0.0), [cond, (2, 3)],
             lambda c, a: torch.where(c, a, 0.0))
    check_op(lambda c, a: shendu.where(c, -1.0, a), [cond, (3,)],
             lambda c, a: torch.where(c, -1.0, a))
    check_op(lambda c, a, b: a.where(c, b), [cond, (2, 3), (1, 3)])
    out = shendu.where(shendu.tensor(cond), 1.0, 0.0)
    assert out.dtype == shendu.float32
    np.testing.assert_array_equal(out.numpy(), cond.astype(np.float32))


COMPARISONS = ["eq", "ne", "lt", "le", "gt", "ge"]
OPERATORS = {"eq": "__eq__", "ne": "__ne__", "lt": "__lt__", "le": "__le__", "gt": "__gt__",
             "ge": "__ge__"}


@pytest.mark.parametrize("name", COMPARISONS)
@FAST
@given(pair=broadcast_pairs(), seed=seeds)
def test_comparisons(name, pair, seed):
    rng = np.random.default_rng(seed)
    # small integers as floats so that ties (eq, le, ge) actually happen
    a, b = (rng.integers(-1, 2, size=s).astype(np.float64) for s in pair)
    check_op(getattr(shendu, name), [a, b], getattr(torch, name), grad=False)
    check_op(lambda x, y: getattr(x, OPERATORS[name])(y), [a, b], grad=False)
    check_op(lambda x: getattr(x, name)(0.0), [a], grad=False)


def test_comparison_with_scalar_on_the_left_and_int_tensors():
    check_op(lambda a: 0.5 < a, [(3, 2)], grad=False)
    check_op(lambda a: a == 1, [np.array([0, 1, 2])], grad=False)
    out = shendu.tensor([1, 2, 3]) >= shendu.tensor([1.5, 2.0, 2.5])
    assert out.dtype == shendu.bool
    assert out.tolist() == [False, True, True]


@pytest.mark.parametrize("name", ["logical_and", "logical_or"])
@FAST
@given(pair=broadcast_pairs(), seed=seeds)
def test_logical_binary(name, pair, seed):
    rng = np.random.default_rng(seed)
    a, b = (rng.random(s) > 0.5 for s in pair)
    check_op(getattr(shendu, name), [a, b], getattr(torch, name), grad=False)
    op = (lambda x, y: x & y) if name == "logical_and" else (lambda x, y: x | y)
    check_op(op, [a, b], grad=False)


def test_logical_not_and_on_floats():
    mask = np.array([[True, False], [False, True]])
    check_op(shendu.logical_not, [mask], torch.logical_not, grad=False)
    check_op(lambda m: ~m, [mask], grad=False)
    check_op(lambda m: m.logical_not(), [mask], grad=False)
    check_op(shendu.logical_and, [np.array([0.0, 1.5, 2.0]), np.array([1.0, 0.0, 3.0])],
             torch.logical_and, grad=False)


def test_isnan_isfinite_allclose():
    data = np.array([1.0, np.nan, np.inf, -np.inf, 0.0])
    for name in ("isnan", "isfinite"):
        check_op(getattr(shendu, name), [data], getattr(torch, name), grad=False)
        check_op(lambda x: getattr(x, name)(), [data], grad=False)
    a = shendu.tensor([1.0, 2.0])
    assert a.allclose(a + 1e-9) and shendu.allclose(a, a * 1.0)
    assert not a.allclose(a + 1e-3)


# --- dtype promotion (torch's rules) ------------------------------------------------------

@pytest.mark.parametrize("make,expected", [
    (lambda: shendu.ones(2) + 1.5, "float32"),
    (lambda: 1.5 * shendu.ones(2), "float32"),
    (lambda: shendu.ones(2) + 2, "float32"),
    (lambda: shendu.tensor([1, 2]) + 1.5, "float32"),
    (lambda: shendu.tensor([1, 2]) * 2.0, "float32"),
    (lambda: 2.0 - shendu.tensor([1, 2]), "float32"),
    (lambda: shendu.tensor([1, 2]) + 1, "int64"),
    (lambda: shendu.tensor([True, False]) + 1, "int64"),
    (lambda: shendu.tensor([True, False]) + 1.0, "float32"),
    (lambda: shendu.ones(2) + shendu.ones(2, dtype=shendu.float64), "float64"),
    (lambda: shendu.ones(2, dtype=shendu.float64) * shendu.ones(2), "float64"),
    (lambda: shendu.tensor([1, 2]) + shendu.ones(2), "float32"),
    (lambda: shendu.tensor([1, 2]) / shendu.tensor([2, 4]), "float32"),
    (lambda: shendu.tensor([1, 2]) / 2, "float32"),
    (lambda: shendu.ones(2, dtype=shendu.float64) / 3, "float64"),
    (lambda: shendu.tensor([1, 2]) ** 2, "int64"),
    (lambda: shendu.tensor([1, 2]) ** 0.5, "float32"),
    (lambda: shendu.ones(2) ** shendu.ones(2, dtype=shendu.float64), "float64"),
    (lambda: shendu.maximum(shendu.tensor([1, 2]), 1.5), "float32"),
    (lambda: shendu.where(shendu.tensor([True, False]), shendu.tensor([1, 2]), 0.5),
     "float32"),
    (lambda: shendu.tensor([1, 2]).exp(), "float32"),
    (lambda: shendu.tensor([1, 4]).sqrt(), "float32"),
    (lambda: -shendu.tensor([1, 2]), "int64"),
    (lambda: shendu.tensor([-1, 2]).abs(), "int64"),
    (lambda: shendu.ones(2) > 0, "bool"),
    (lambda: shendu.tensor([1, 2]) == shendu.tensor([1.0, 2.5]), "bool"),
])
def test_dtype_promotion(make, expected):
    assert str(make().dtype) == expected


@pytest.mark.parametrize("make,expected", [
    (lambda x: x / np.prod((2, 3)), "float32"),
    (lambda x: x * np.float32(2.0), "float32"),
    (lambda x: np.int64(2) * x, "float32"),
    (lambda x: x + np.array(2.0), "float32"),
    (lambda x: x + np.ones(3), "float64"),
    (lambda x: x.long() + np.ones(3, dtype=np.int32), "int64"),
    (lambda x: x.long() * np.float64(0.5), "float32"),
])
def test_numpy_scalars_act_as_python_numbers(make, expected):
    out = make(shendu.ones(3))
    assert str(out.dtype) == expected and out.shape == (3,)


def test_float32_scalar_arithmetic_stays_float32_values():
    x = shendu.tensor([0.1, 0.2], dtype=shendu.float32)
    y = x * 3.3 + 1e-3
    expected = torch.tensor([0.1, 0.2], dtype=torch.float32) * 3.3 + 1e-3
    assert y.dtype == shendu.float32
    np.testing.assert_array_equal(y.numpy(), expected.numpy())


# --- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "maximum", "minimum", "pow",
                                  "eq", "lt", "logical_and"])
def test_broadcast_error_names_op_and_shapes(name):
    a, b = shendu.ones(3, 4), shendu.ones(5)
    with pytest.raises(RuntimeError, match=rf"{name}: shapes \(3, 4\) and \(5,\) cannot be "
                                           "broadcast"):
        getattr(shendu, name)(a, b)


def test_operator_broadcast_error():
    with pytest.raises(RuntimeError, match=r"add: shapes \(3, 4\) and \(5,\)"):
        shendu.ones(3, 4) + shendu.ones(5)
    with pytest.raises(RuntimeError, match=r"mul: shapes \(2, 3\) and \(2,\)"):
        shendu.ones(2, 3) * shendu.ones(2)


def test_where_errors():
    x = shendu.ones(3, 4)
    with pytest.raises(TypeError, match=r"where: condition must have dtype bool, got float32"):
        shendu.where(shendu.ones(3, 4), x, x)
    with pytest.raises(TypeError, match="where: condition must be a bool Tensor"):
        shendu.where([True], x, x)
    with pytest.raises(RuntimeError, match=r"where: shapes .*\(3, 4\).*\(5,\).*cannot be "
                                           "broadcast"):
        shendu.where(x > 0, x, shendu.ones(5))


def test_unsupported_operand_and_clamp_errors():
    with pytest.raises(TypeError, match="add: unsupported operand of type str"):
        shendu.ones(2) + "a"
    with pytest.raises(ValueError, match="clamp: at least one of min and max"):
        shendu.ones(2).clamp()
    with pytest.raises(TypeError, match="exp: expected a Tensor, got list"):
        shendu.exp([1.0])
