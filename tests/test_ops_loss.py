"""Losses and penalties against torch: values, gradients (random upstream), Hessian-vector
products, stability, dtypes and every bad-input error."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle import assert_close, check_op, finite_difference_check, to_torch

import shendu
from shendu.ops import loss as L

REDUCTIONS = ["mean", "sum", "none"]


def _index_target(rng, shape, n_classes, ignore=None):
    y = rng.integers(0, n_classes, shape)
    if ignore is not None and y.size:
        y.reshape(-1)[:: 3] = ignore
    return y


def _pair(fn_ours, fn_torch, weight):
    ours_w = None if weight is None else shendu.tensor(weight)
    torch_w = None if weight is None else to_torch(weight)
    return (lambda *a: fn_ours(*a, ours_w)), (lambda *a: fn_torch(*a, torch_w))


@pytest.mark.parametrize("shape", [(6, 5), (3, 4, 2, 3), (4,), (2, 3, 5)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_index_targets(shape, reduction, smoothing, weighted):
    rng = np.random.default_rng(len(shape))
    n_classes = shape[0] if len(shape) == 1 else shape[1]
    target_shape = () if len(shape) == 1 else shape[:1] + shape[2:]
    ignore = None if len(shape) == 1 else 1
    y = _index_target(rng, target_shape, n_classes, ignore)
    weight = rng.uniform(0.5, 2.0, n_classes) if weighted else None
    kw = dict(reduction=reduction, label_smoothing=smoothing, ignore_index=ignore or -100)
    ours, theirs = _pair(lambda x, w: L.cross_entropy(x, shendu.tensor(y), w, **kw),
                         lambda x, w: TF.cross_entropy(x, torch.tensor(y), w, **kw), weight)
    check_op(ours, [shape], theirs, second_order=True, low=-4, high=4)


@pytest.mark.parametrize("shape", [(6, 5), (3, 4, 2, 3), (5,)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_probability_targets(shape, reduction, smoothing, weighted):
    rng = np.random.default_rng(7)
    n_classes = shape[0] if len(shape) == 1 else shape[1]
    probs = rng.dirichlet(np.ones(n_classes), size=int(np.prod(shape)) // n_classes)
    probs = np.moveaxis(probs.reshape((shape[0],) + shape[2:] + (n_classes,)), -1, 1) \
        if len(shape) > 1 else probs.reshape(shape)
    weight = rng.uniform(0.5, 2.0, n_classes) if weighted else None
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    ours, theirs = _pair(lambda x, t, w: L.cross_entropy(x, t, w, **kw),
                         lambda x, t, w: TF.cross_entropy(x, t, w, **kw), weight)
    check_op(ours, [shape, probs], theirs, second_order=True, low=-4, high=4)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 6), c=st.integers(1, 6), spatial=st.lists(st.integers(1, 3), max_size=2),
       seed=st.integers(0, 2 ** 16))
def test_cross_entropy_random_shapes(n, c, spatial, seed):
    rng = np.random.default_rng(seed)
    shape = (n, c, *spatial)
    y = rng.integers(0, c, (n, *spatial))
    check_op(lambda x: L.cross_entropy(x, shendu.tensor(y)), [shape],
             lambda x: TF.cross_entropy(x, torch.tensor(y)), seed=seed, low=-5, high=5)


def test_cross_entropy_all_ignored_is_nan_like_torch():
    x = np.zeros((2, 3))
    y = np.array([-100, -100])
    ours = L.cross_entropy(shendu.tensor(x), shendu.tensor(y))
    assert np.isnan(ours.item()) and torch.isnan(TF.cross_entropy(to_torch(x), torch.tensor(y)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_stable_for_huge_logits(dtype):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((8, 10)) * 1e4).astype(dtype)
    y = rng.integers(0, 10, 8)
    ours = shendu.tensor(x, requires_grad=True)
    theirs = to_torch(x, requires_grad=True)
    out = L.cross_entropy(ours, shendu.tensor(y), label_smoothing=0.1)
    ref = TF.cross_entropy(theirs, torch.tensor(y), label_smoothing=0.1)
    out.backward()
    ref.backward()
    assert out.dtype == shendu.tensor(x).dtype
    assert np.isfinite(out.item()) and np.isfinite(ours.grad.numpy()).all()
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    assert_close(out, ref, rtol=rtol, atol=1e-6)
    assert_close(ours.grad, theirs.grad, rtol=rtol, atol=1e-7)


def test_cross_entropy_float32_grad_dtype():
    x = shendu.randn(4, 3, requires_grad=True)
    L.cross_entropy(x, shendu.tensor([0, 1, 2, 0]), label_smoothing=0.1).backward()
    assert x.grad.dtype == shendu.float32


def test_cross_entropy_errors():
    x = shendu.randn(4, 3)
    with pytest.raises(TypeError, match=r"cross_entropy.*float32 target of shape \(4,\)"):
        L.cross_entropy(x, shendu.tensor([0.0, 1.0, 2.0, 0.0]))
    with pytest.raises(IndexError, match="cross_entropy: target class 3 is out of range"):
        L.cross_entropy(x, shendu.tensor([0, 1, 3, 0]))
    with pytest.raises(IndexError, match="cross_entropy: target class -1"):
        L.cross_entropy(x, shendu.tensor([0, -1, 2, 0]))
    with pytest.raises(ValueError, match=r"cross_entropy.*shape \(4,\).*got \(4, 1\)"):
        L.cross_entropy(x, shendu.tensor([[0], [1], [2], [0]]))
    with pytest.raises(ValueError, match=r"cross_entropy: weight must have shape \(3,\)"):
        L.cross_entropy(x, shendu.tensor([0, 1, 2, 0]), weight=shendu.ones(4))
    with pytest.raises(ValueError, match="cross_entropy: reduction"):
        L.cross_entropy(x, shendu.tensor([0, 1, 2, 0]), reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        L.cross_entropy(x, shendu.tensor([0, 1, 2, 0]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="ignore_index"):
        L.cross_entropy(x, shendu.rand(4, 3), ignore_index=1)
    with pytest.raises(RuntimeError, match="cross_entropy.*'weight'"):
        L.cross_entropy(x, shendu.tensor([0, 1, 2, 0]), weight=shendu.ones(3, requires_grad=True))
    with pytest.raises(TypeError, match="cross_entropy: input must be a floating"):
        L.cross_entropy(shendu.tensor([[1, 2]]), shendu.tensor([0]))
    with pytest.raises(ValueError, match="cross_entropy: input must have at least 1 dim"):
        L.cross_entropy(shendu.tensor(1.0), shendu.tensor(0))


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (3,)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_loss(shape, reduction, weighted):
    rng = np.random.default_rng(3)
    n_classes = shape[0] if len(shape) == 1 else shape[1]
    target_shape = () if len(shape) == 1 else shape[:1] + shape[2:]
    ignore = None if len(shape) == 1 else 2
    y = _index_target(rng, target_shape, n_classes, ignore)
    weight = rng.uniform(0.5, 2.0, n_classes) if weighted else None
    kw = dict(reduction=reduction, ignore_index=ignore or -100)
    ours, theirs = _pair(lambda x, w: L.nll_loss(x, shendu.tensor(y), w, **kw),
                         lambda x, w: TF.nll_loss(x, torch.tensor(y), w, **kw), weight)
    check_op(ours, [shape], theirs, second_order=True)


def test_nll_loss_errors():
    with pytest.raises(IndexError, match="nll_loss: target class 5"):
        L.nll_loss(shendu.randn(2, 3), shendu.tensor([0, 5]))
    with pytest.raises(ValueError, match="nll_loss: reduction"):
        L.nll_loss(shendu.randn(2, 3), shendu.tensor([0, 1]), reduction="mean ")


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(7,), (3, 4, 2), ()])
def test_regression_losses(name, reduction, shape):
    check_op(lambda x, y: getattr(L, name)(x, y, reduction=reduction), [shape, shape],
             lambda x, y: getattr(TF, name)(x, y, reduction=reduction),
             # torch returns its zero Hessian of |d| as a ZeroTensor that numpy() refuses
             second_order=name != "l1_loss")


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_weighted_regression_losses(name, reduction):
    check_op(lambda x, y, w: getattr(L, name)(x, y, reduction, w), [(3, 4), (3, 4), (3, 4)],
             lambda x, y, w: getattr(TF, name)(x, y, reduction=reduction, weight=w), high=3,
             low=0.5)
    with pytest.raises(ValueError, match=rf"{name}: weight must have the input's shape"):
        getattr(L, name)(shendu.rand(3, 4), shendu.rand(3, 4), weight=shendu.rand(4))


@pytest.mark.parametrize("beta", [0.0, 0.5, 3.0])
def test_smooth_l1_beta(beta):
    check_op(lambda x, y: L.smooth_l1_loss(x, y, beta=beta), [(4, 5), (4, 5)],
             lambda x, y: TF.smooth_l1_loss(x, y, beta=beta), second_order=beta > 0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight_shape", [None, (3, 4), (4,)])
def test_binary_cross_entropy(reduction, weight_shape):
    rng = np.random.default_rng(5)
    x = rng.uniform(0.05, 0.95, (3, 4))
    t = rng.uniform(0, 1, (3, 4))
    weight = None if weight_shape is None else rng.uniform(0.5, 2, weight_shape)
    ours, theirs = _pair(lambda a, b, w: L.binary_cross_entropy(a, b, w, reduction),
                         lambda a, b, w: TF.binary_cross_entropy(a, b, w, reduction=reduction),
                         weight)
    check_op(ours, [x, t], theirs, second_order=True)


def test_binary_cross_entropy_clamps_log_at_minus_100():
    x = np.array([0.0, 1.0, 0.0, 1.0])
    t = np.array([1.0, 0.0, 0.0, 1.0])
    ours = L.binary_cross_entropy(shendu.tensor(x), shendu.tensor(t), reduction="none")
    assert_close(ours, TF.binary_cross_entropy(to_torch(x), to_torch(t), reduction="none"))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("with_weight", [False, True])
@pytest.mark.parametrize("with_pos_weight", [False, True])
def test_binary_cross_entropy_with_logits(reduction, with_weight, with_pos_weight):
    rng = np.random.default_rng(9)
    x = rng.uniform(-6, 6, (5, 4))
    t = rng.uniform(0, 1, (5, 4))
    w = rng.uniform(0.5, 2, (5, 4)) if with_weight else None
    pw = rng.uniform(0.5, 3, (4,)) if with_pos_weight else None

    def ours(a, b):
        return L.binary_cross_entropy_with_logits(
            a, b, None if w is None else shendu.tensor(w), reduction,
            None if pw is None else shendu.tensor(pw))

    def theirs(a, b):
        return TF.binary_cross_entropy_with_logits(
            a, b, None if w is None else to_torch(w), reduction=reduction,
            pos_weight=None if pw is None else to_torch(pw))

    check_op(ours, [x, t], theirs, second_order=True)


def test_binary_cross_entropy_with_logits_pos_weight_grad_and_stability():
    # torch refuses a gradient for pos_weight; ours is a composite, so check it numerically
    finite_difference_check(
        lambda a, b, p: L.binary_cross_entropy_with_logits(a, b, pos_weight=p, reduction="none"),
        [(3, 4), np.random.default_rng(1).uniform(0, 1, (3, 4)), (4,)])
    x = np.array([-1e4, -50.0, 0.0, 50.0, 1e4])
    t = np.array([0.0, 1.0, 0.5, 0.0, 1.0])
    for dtype in (np.float32, np.float64):
        ours = L.binary_cross_entropy_with_logits(shendu.tensor(x.astype(dtype)),
                                                  shendu.tensor(t.astype(dtype)),
                                                  reduction="none")
        ref = TF.binary_cross_entropy_with_logits(torch.tensor(x.astype(dtype)),
                                                  torch.tensor(t.astype(dtype)),
                                                  reduction="none")
        assert ours.dtype == dtype and np.isfinite(ours.numpy()).all()
        assert_close(ours, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss",
                                  "binary_cross_entropy", "binary_cross_entropy_with_logits"])
def test_elementwise_losses_refuse_broadcasting(name):
    x = shendu.rand(4, 1)
    with pytest.raises(ValueError, match=rf"{name}: target shape \(4,\) differs from input "
                                         r"shape \(4, 1\)"):
        getattr(L, name)(x, shendu.rand(4))
    with pytest.raises(ValueError, match=f"{name}: reduction"):
        getattr(L, name)(x, shendu.rand(4, 1), reduction="batchmean")
    with pytest.raises(TypeError, match=f"{name}: target must be a floating"):
        getattr(L, name)(x, shendu.tensor([[1], [0], [1], [0]]))


def test_bce_errors():
    with pytest.raises(ValueError, match=r"binary_cross_entropy: all elements of input"):
        L.binary_cross_entropy(shendu.tensor([0.5, 1.5]), shendu.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="binary_cross_entropy: weight of shape"):
        L.binary_cross_entropy(shendu.rand(2, 3), shendu.rand(2, 3), weight=shendu.rand(2))
    with pytest.raises(ValueError, match="pos_weight of shape"):
        L.binary_cross_entropy_with_logits(shendu.rand(2, 3), shendu.rand(2, 3),
                                           pos_weight=shendu.rand(2, 1, 3))
    with pytest.raises(ValueError, match="smooth_l1_loss: beta"):
        L.smooth_l1_loss(shendu.rand(2), shendu.rand(2), beta=-1.0)


def test_l1_l2_penalties_match_torch():
    shapes = [(3, 4), (4,), (2, 2, 2)]
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal(s) for s in shapes]
    ours = [shendu.tensor(a, requires_grad=True) for a in arrays]
    theirs = [to_torch(a, requires_grad=True) for a in arrays]
    for penalty, ref in ((L.l1_penalty, lambda ps: sum(p.abs().sum() for p in ps)),
                         (L.l2_penalty, lambda ps: sum((p * p).sum() for p in ps))):
        out, tout = penalty(iter(ours)), ref(theirs)
        assert_close(out, tout)
        grads = shendu.autograd.grad(out, ours)
        tgrads = torch.autograd.grad(tout, theirs)
        for g, tg in zip(grads, tgrads):
            assert_close(g, tg)
    assert L.l2_penalty(shendu.ones(3)).item() == 3.0
    with pytest.raises(ValueError, match="l1_penalty: got no parameters"):
        L.l1_penalty([])
    with pytest.raises(TypeError, match="l2_penalty: parameter 0"):
        L.l2_penalty([shendu.tensor([1, 2])])
