"""Ops PyTorch scripts use, against torch in float64 (oracle.check_op: values, gradients
under a random upstream gradient and, where the op is twice differentiable, a Hessian-vector
product), as ``F.*``, ``shendu.*`` and Tensor methods; plus their bad-input errors."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from oracle import assert_close, check_op, finite_difference_check

import shendu
import shendu.nn.functional as F

RNG = np.random.default_rng(0)


# --- functional forms of the new layers ---------------------------------------------------
@pytest.mark.parametrize("name,kwargs", [
    ("silu", {}), ("mish", {}), ("softplus", {}), ("softplus", {"beta": 2.0, "threshold": 2.0}),
    ("hardtanh", {}), ("hardtanh", {"min_val": -0.3, "max_val": 1.2}), ("selu", {}),
    ("logsigmoid", {}), ("relu6", {}),
])
def test_activations_match_torch(name, kwargs):
    check_op(lambda x: getattr(F, name)(x, **kwargs), [(3, 5)],
             lambda x: getattr(TF, name)(x, **kwargs), low=-8, high=8,
             second_order=name not in ("hardtanh", "relu6"))


def test_hardtanh_and_relu6_give_no_gradient_on_the_bounds():
    x = np.array([-1.0, 0.0, 1.0, 6.0, 7.0])
    check_op(F.relu6, [x], TF.relu6)
    check_op(lambda t: F.hardtanh(t, 0.0, 6.0), [x], lambda t: TF.hardtanh(t, 0.0, 6.0))
    assert F.relu6(shendu.tensor([-3, 2, 9])).tolist() == [0, 2, 6]


def test_logsigmoid_and_softplus_are_stable_for_large_inputs():
    x = np.array([-800.0, -30.0, 0.0, 30.0, 800.0])
    check_op(F.logsigmoid, [x], TF.logsigmoid)
    check_op(F.softplus, [x], TF.softplus)


@pytest.mark.parametrize("weight", [(1,), (3,)])
def test_prelu_matches_torch(weight):
    check_op(F.prelu, [(2, 3, 4), weight], TF.prelu, second_order=True)


@pytest.mark.parametrize("kwargs", [{}, {"stride": 2, "padding": 1}, {"dilation": 2},
                                    {"padding": "same"}, {"groups": 2}])
def test_conv1d_matches_torch(kwargs):
    w = (4, 2 if kwargs.get("groups") else 4, 3)
    check_op(lambda x, w, b: F.conv1d(x, w, b, **kwargs), [(2, 4, 9), w, (4,)],
             lambda x, w, b: TF.conv1d(x, w, b, **kwargs), second_order=True)


@pytest.mark.parametrize("name,args", [
    ("max_pool1d", (3, 2, 1)), ("avg_pool1d", (3, 2, 1)), ("adaptive_avg_pool1d", (4,)),
    ("adaptive_max_pool1d", (3,)), ("adaptive_max_pool2d", ((3, 2),)),
])
def test_pools_match_torch(name, args):
    shape = (2, 3, 7, 5) if name.endswith("2d") else (2, 3, 10)
    check_op(lambda x: getattr(F, name)(x, *args), [shape],
             lambda x: getattr(TF, name)(x, *args))


def test_pool_indices_match_torch():
    x = RNG.standard_normal((2, 3, 11))
    ours = F.max_pool1d(shendu.tensor(x), 3, 2, 1, return_indices=True)
    theirs = TF.max_pool1d(torch.tensor(x), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(ours[1].numpy(), theirs[1].numpy())
    x = RNG.standard_normal((2, 3, 7, 9))
    ours = F.adaptive_max_pool2d(shendu.tensor(x), (3, 4), return_indices=True)
    theirs = TF.adaptive_max_pool2d(torch.tensor(x), (3, 4), return_indices=True)
    np.testing.assert_array_equal(ours[1].numpy(), theirs[1].numpy())


@pytest.mark.parametrize("shape,groups", [((3, 6, 4, 5), 3), ((2, 4, 7), 2), ((4, 5), 5)])
def test_group_norm_matches_torch(shape, groups):
    c = shape[1]
    check_op(lambda x, w, b: F.group_norm(x, groups, w, b), [shape, (c,), (c,)],
             lambda x, w, b: TF.group_norm(x, groups, w, b), second_order=True)
    check_op(lambda x: F.group_norm(x, groups), [shape], lambda x: TF.group_norm(x, groups))


def test_instance_norm_matches_torch():
    check_op(lambda x, w, b: F.instance_norm(x, weight=w, bias=b), [(2, 3, 4, 5), (3,), (3,)],
             lambda x, w, b: TF.instance_norm(x, weight=w, bias=b), second_order=True)


@pytest.mark.parametrize("kwargs", [
    {"scale_factor": 2}, {"size": (7, 3)}, {"scale_factor": (1.5, 0.5)},
    {"size": (9, 4), "mode": "bilinear", "align_corners": True},
    {"size": (9, 4), "mode": "bilinear", "align_corners": False},
    {"scale_factor": 2.5, "mode": "bilinear"}, {"size": (3, 2), "mode": "bilinear"},
    {"scale_factor": 1.7, "mode": "bilinear", "recompute_scale_factor": True},
    {"size": (6, 11), "mode": "nearest-exact"}, {"size": (2, 3), "mode": "area"},
])
def test_interpolate_2d_matches_torch(kwargs):
    check_op(lambda x: F.interpolate(x, **kwargs), [(2, 3, 4, 5)],
             lambda x: TF.interpolate(x, **kwargs), second_order=True)


@pytest.mark.parametrize("kwargs", [{"scale_factor": 3}, {"size": 11, "mode": "linear"},
                                    {"size": 4, "mode": "linear", "align_corners": True}])
def test_interpolate_1d_matches_torch(kwargs):
    check_op(lambda x: F.interpolate(x, **kwargs), [(2, 3, 6)],
             lambda x: TF.interpolate(x, **kwargs))


def test_pixel_shuffle_and_padding():
    check_op(lambda x: F.pixel_shuffle(x, 3), [(2, 18, 2, 3)],
             lambda x: TF.pixel_shuffle(x, 3), second_order=True)
    check_op(lambda x: F.pixel_unshuffle(x, 2), [(1, 2, 4, 6)],
             lambda x: TF.pixel_unshuffle(x, 2))


@pytest.mark.parametrize("kwargs", [{"kernel_size": 3},
                                    {"kernel_size": (2, 3), "stride": 2, "padding": 1,
                                     "dilation": (2, 1)}])
def test_unfold_and_fold_match_torch(kwargs):
    check_op(lambda x: F.unfold(x, **kwargs), [(2, 3, 7, 8)],
             lambda x: TF.unfold(x, **kwargs), second_order=True)
    blocks = TF.unfold(torch.zeros(1, 1, 7, 8), **kwargs).shape[-1]
    k = math.prod(kwargs["kernel_size"]) if isinstance(kwargs["kernel_size"], tuple) else 9
    check_op(lambda c: F.fold(c, (7, 8), **kwargs), [(2, 3 * k, blocks)],
             lambda c: TF.fold(c, (7, 8), **kwargs), second_order=True)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_huber_and_smooth_l1_match_torch(reduction):
    check_op(lambda x, y: F.huber_loss(x, y, reduction, 0.6), [(4, 3), (4, 3)],
             lambda x, y: TF.huber_loss(x, y, reduction, 0.6))
    check_op(lambda x, y: F.smooth_l1_loss(x, y, reduction=reduction, beta=0.4),
             [(4, 3), (4, 3)],
             lambda x, y: TF.smooth_l1_loss(x, y, reduction=reduction, beta=0.4))


def test_kl_div_matches_torch():
    logp = np.log(RNG.dirichlet(np.ones(4), size=3))
    q = RNG.dirichlet(np.ones(4), size=3)
    check_op(lambda a, b: F.kl_div(a, b, reduction="batchmean"), [logp, q],
             lambda a, b: TF.kl_div(a, b, reduction="batchmean"), second_order=True)
    check_op(lambda a, b: F.kl_div(a, b, reduction="sum", log_target=True), [logp, np.log(q)],
             lambda a, b: TF.kl_div(a, b, reduction="sum", log_target=True))


@pytest.mark.parametrize("kwargs", [{}, {"p": 1.0, "dim": 0}, {"p": 3.0, "dim": -1},
                                    {"p": math.inf}])
def test_normalize_matches_torch(kwargs):
    check_op(lambda x: F.normalize(x, **kwargs), [(4, 5)],
             lambda x: TF.normalize(x, **kwargs), second_order=not kwargs.get("p") == math.inf)


def test_cosine_similarity_matches_torch():
    check_op(lambda a, b: F.cosine_similarity(a, b), [(4, 5, 2), (4, 5, 2)],
             lambda a, b: TF.cosine_similarity(a, b), second_order=True)
    check_op(lambda a, b: F.cosine_similarity(a, b, dim=-1), [(3, 4), (1, 4)],
             lambda a, b: TF.cosine_similarity(a, b, dim=-1))


def test_one_hot_matches_torch():
    idx = np.array([[2, 0], [1, 4]])
    np.testing.assert_array_equal(F.one_hot(shendu.tensor(idx)).numpy(),
                                  TF.one_hot(torch.tensor(idx)).numpy())
    np.testing.assert_array_equal(F.one_hot(shendu.tensor(idx), 6).numpy(),
                                  TF.one_hot(torch.tensor(idx), 6).numpy())


# --- tensor ops ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sin", "cos"])
def test_trigonometry_matches_torch(name):
    check_op(lambda x: getattr(shendu, name)(x), [(3, 4)], lambda x: getattr(torch, name)(x),
             low=-5, high=5, second_order=True)
    check_op(lambda x: getattr(x, name)(), [(5,)], lambda x: getattr(x, name)())


@pytest.mark.parametrize("name,kwargs", [("floor", {}), ("ceil", {}), ("round", {}),
                                         ("round", {"decimals": 2})])
def test_rounding_matches_torch_with_zero_gradient(name, kwargs):
    check_op(lambda x: getattr(shendu, name)(x, **kwargs), [(3, 4)],
             lambda x: getattr(torch, name)(x, **kwargs), low=-5, high=5)
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5])   # half to even, as torch
    assert_close(getattr(shendu.tensor(x), name)(**kwargs),
                 getattr(torch.tensor(x), name)(**kwargs))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cumsum_matches_torch(dim):
    check_op(lambda x: shendu.cumsum(x, dim), [(3, 4)], lambda x: torch.cumsum(x, dim),
             second_order=True)
    assert shendu.tensor([1, 2, 3]).cumsum(0).dtype == shendu.int64


def test_prod_matches_torch_including_zeros():
    check_op(lambda x: x.prod(), [(3, 4)], lambda x: x.prod(), second_order=True)
    check_op(lambda x: x.prod(1, keepdim=True), [(3, 4)], lambda x: x.prod(1, keepdim=True))
    x = RNG.standard_normal((3, 4))
    x[0, 1] = 0.0
    x[2, 0] = x[2, 3] = 0.0
    check_op(lambda t: shendu.prod(t, 1), [x], lambda t: torch.prod(t, 1))
    check_op(lambda t: t.prod(), [x], lambda t: t.prod())


@pytest.mark.parametrize("equation,shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 2)]),
    ("i,j->ij", [(3,), (4,)]), ("ij->", [(3, 4)]), ("ij->j", [(3, 4)]),
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]), ("...ij,...jk->...ik",
                                                         [(2, 3, 4), (2, 4, 5)]),
    ("ij,ij", [(3, 4), (3, 4)]), ("ji", [(3, 4)]), ("i,i->", [(5,), (5,)]),
])
def test_einsum_matches_torch(equation, shapes):
    check_op(lambda *xs: shendu.einsum(equation, *xs), shapes,
             lambda *xs: torch.einsum(equation, *xs), second_order=True)


def test_outer_matches_torch():
    check_op(shendu.outer, [(3,), (4,)], torch.outer, second_order=True)
    check_op(lambda a, b: a.outer(b), [(2,), (5,)], lambda a, b: a.outer(b))


@pytest.mark.parametrize("kwargs", [{}, {"p": 1}, {"p": 3}, {"p": math.inf}, {"p": -math.inf},
                                    {"p": 2, "dim": 1}, {"p": "fro", "dim": (0, 1)},
                                    {"dim": 0, "keepdim": True}, {"p": 0.5, "dim": -1}])
def test_norm_matches_torch(kwargs):
    smooth = kwargs.get("p", 2) not in (1, math.inf, -math.inf)
    check_op(lambda x: shendu.norm(x, **kwargs), [(3, 4)], lambda x: torch.norm(x, **kwargs),
             second_order=smooth)
    check_op(lambda x: x.norm(**kwargs), [(2, 5)], lambda x: x.norm(**kwargs))


def test_norm_of_zero_vector_has_zero_gradient_like_torch():
    check_op(lambda x: x.norm(dim=1), [np.zeros((2, 3))], lambda x: x.norm(dim=1))
    check_op(lambda x: F.normalize(x), [np.zeros((2, 3))], lambda x: TF.normalize(x))


@pytest.mark.parametrize("kwargs", [{}, {"dim": 0}, {"descending": True}, {"dim": 1,
                                                                           "stable": True}])
def test_sort_and_argsort_match_torch(kwargs):
    check_op(lambda x: shendu.sort(x, **kwargs).values, [(4, 5)],
             lambda x: torch.sort(x, **kwargs).values, second_order=True)
    x = RNG.standard_normal((4, 5))
    ours, theirs = shendu.tensor(x).sort(**kwargs), torch.tensor(x).sort(**kwargs)
    np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
    np.testing.assert_array_equal(shendu.argsort(shendu.tensor(x), **kwargs).numpy(),
                                  torch.argsort(torch.tensor(x), **kwargs).numpy())
    ties = np.array([3, 1, 3, 1, 2, 3])
    np.testing.assert_array_equal(shendu.tensor(ties).argsort(stable=True).numpy(),
                                  torch.tensor(ties).argsort(stable=True).numpy())


@pytest.mark.parametrize("kwargs", [{"k": 2}, {"k": 3, "dim": 0}, {"k": 1, "largest": False},
                                    {"k": 5}])
def test_topk_matches_torch(kwargs):
    check_op(lambda x: shendu.topk(x, **kwargs).values, [(4, 5)],
             lambda x: torch.topk(x, **kwargs).values)
    x = RNG.standard_normal((4, 5))
    np.testing.assert_array_equal(shendu.tensor(x).topk(**kwargs).indices.numpy(),
                                  torch.tensor(x).topk(**kwargs).indices.numpy())


@pytest.mark.parametrize("kwargs", [{}, {"return_inverse": True}, {"return_counts": True},
                                    {"return_inverse": True, "return_counts": True},
                                    {"dim": 0, "return_inverse": True, "return_counts": True}])
def test_unique_matches_torch(kwargs):
    x = np.array([[3, 1, 2], [3, 1, 2], [0, 1, 1]])
    ours, theirs = shendu.tensor(x).unique(**kwargs), torch.tensor(x).unique(**kwargs)
    ours = ours if isinstance(ours, tuple) else (ours,)
    theirs = theirs if isinstance(theirs, tuple) else (theirs,)
    assert len(ours) == len(theirs)
    for o, t in zip(ours, theirs):
        np.testing.assert_array_equal(o.numpy(), t.numpy())
        assert str(o.dtype) == str(t.dtype).replace("torch.", "")
    np.testing.assert_array_equal(shendu.unique(shendu.tensor([2.5, 1.0, 2.5])).numpy(),
                                  [1.0, 2.5])


def test_multinomial_frequencies_and_generator():
    probs = np.array([[0.1, 0.0, 0.6, 0.3], [0.25, 0.25, 0.25, 0.25]])
    gen = shendu.Generator(seed=3)
    draws = shendu.multinomial(shendu.tensor(probs), 20000, replacement=True,
                               generator=gen).numpy()
    assert draws.shape == (2, 20000) and draws.dtype == np.int64
    for row, p in zip(draws, probs):
        freq = np.bincount(row, minlength=4) / row.size
        np.testing.assert_allclose(freq, p, atol=0.015)
    again = shendu.multinomial(shendu.tensor(probs), 20000, replacement=True,
                               generator=shendu.Generator(seed=3)).numpy()
    np.testing.assert_array_equal(draws, again)
    # without replacement: distinct categories, never one of weight 0; first draw ~ p
    w = shendu.tensor(np.tile(probs[:1], (6000, 1)))
    picks = w.multinomial(3, generator=shendu.Generator(seed=4)).numpy()
    assert all(len(set(r)) == 3 for r in picks[:200]) and not (picks == 1).any()
    np.testing.assert_allclose(np.bincount(picks[:, 0], minlength=4) / 6000, probs[0],
                               atol=0.02)
    assert shendu.multinomial(shendu.tensor([0.2, 0.8]), 1).shape == (1,)


def test_inference_mode_as_context_and_decorators():
    x = shendu.ones(2, requires_grad=True)
    with shendu.inference_mode():
        assert not (x * 2).requires_grad
    with shendu.inference_mode(False):
        assert (x * 2).requires_grad

    @shendu.inference_mode
    def bare():
        return (x * 2).requires_grad

    @shendu.inference_mode()
    def called():
        return (x * 2).requires_grad

    assert not bare() and not called() and (x * 2).requires_grad


# --- Tensor conveniences ------------------------------------------------------------------
def test_new_constructors_inherit_dtype_and_device():
    ours = shendu.zeros(2, dtype=shendu.float64)
    theirs = torch.zeros(2, dtype=torch.float64)
    for name, args in [("new_zeros", (2, 3)), ("new_ones", ((3,),)), ("new_empty", (4,))]:
        o, t = getattr(ours, name)(*args), getattr(theirs, name)(*args)
        assert o.shape == tuple(t.shape) and str(o.dtype) == str(t.dtype).replace("torch.", "")
        if name != "new_empty":
            assert_close(o, t)
    assert_close(ours.new_full((2, 2), 1.5), theirs.new_full((2, 2), 1.5))
    assert_close(ours.new_tensor([1, 2]), theirs.new_tensor([1, 2]))
    assert ours.new_zeros(3, dtype=shendu.int64).dtype == shendu.int64
    made = ours.new_ones(2, requires_grad=True)
    assert made.requires_grad and made.is_leaf and made.dtype == shendu.float64


def test_type_and_is_cuda_like_torch():
    for ours, theirs in [(shendu.zeros(2), torch.zeros(2)),
                         (shendu.zeros(2, dtype=shendu.int64), torch.zeros(2, dtype=torch.int64)),
                         (shendu.zeros(2, dtype=shendu.bool), torch.zeros(2, dtype=torch.bool))]:
        assert ours.type() == theirs.type() and ours.is_cuda == theirs.is_cuda
    x = shendu.tensor([1.7, -2.2])
    assert x.type(shendu.int64).dtype == shendu.int64
    assert x.type("torch.DoubleTensor").dtype == shendu.float64
    with pytest.raises(ValueError, match="Tensor.type: unknown type 'torch.FooTensor'"):
        x.type("torch.FooTensor")


def test_narrow_matches_torch():
    check_op(lambda x: x.narrow(1, 1, 2), [(3, 4)], lambda x: x.narrow(1, 1, 2))
    check_op(lambda x: x.narrow(-1, -3, 3), [(2, 5)], lambda x: x.narrow(-1, -3, 3))
    with pytest.raises(IndexError, match=r"narrow: start 3 \+ length 2 exceeds dimension 1 of "
                                         r"size 4"):
        shendu.zeros(3, 4).narrow(1, 3, 2)


@pytest.mark.parametrize("name,args", [
    ("sqrt_", ()), ("exp_", ()), ("log_", ()), ("abs_", ()), ("neg_", ()), ("floor_", ()),
    ("ceil_", ()), ("round_", ()), ("pow_", (2.0,)), ("clamp_min_", (1.0,)),
    ("clamp_max_", (1.0,)),
])
def test_inplace_math_matches_torch(name, args):
    x = RNG.uniform(0.1, 3.0, (3, 4))
    ours, theirs = shendu.tensor(x), torch.tensor(x)
    assert getattr(ours, name)(*args) is ours
    getattr(theirs, name)(*args)
    assert_close(ours, theirs)


def test_addcmul_addcdiv_lerp_match_torch():
    a, b, c = (RNG.uniform(0.5, 2.0, s) for s in [(3, 4), (3, 4), (4,)])
    for name in ["addcmul_", "addcdiv_"]:
        ours, theirs = shendu.tensor(a), torch.tensor(a)
        getattr(ours, name)(shendu.tensor(b), shendu.tensor(c), value=-0.3)
        getattr(theirs, name)(torch.tensor(b), torch.tensor(c), value=-0.3)
        assert_close(ours, theirs)
    ours, theirs = shendu.tensor(a), torch.tensor(a)
    ours.lerp_(shendu.tensor(b), 0.25)
    theirs.lerp_(torch.tensor(b), 0.25)
    assert_close(ours, theirs)
    leaf = shendu.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="sqrt_: a leaf tensor that requires grad"):
        leaf.sqrt_()
    with shendu.no_grad():
        leaf.exp_()
    assert np.allclose(leaf.detach().numpy(), math.e)


def test_random_fills_have_the_right_moments_and_follow_the_generator():
    x = shendu.empty(200, 100, dtype=shendu.float64)
    x.uniform_(-2.0, 4.0, generator=shendu.Generator(seed=1))
    data = x.numpy()
    assert data.min() >= -2.0 and data.max() < 4.0 and abs(data.mean() - 1.0) < 0.05
    again = shendu.empty(200, 100, dtype=shendu.float64).uniform_(
        -2.0, 4.0, generator=shendu.Generator(seed=1))
    np.testing.assert_array_equal(data, again.numpy())
    y = shendu.empty(200, 100).normal_(3.0, 0.5)
    assert y.dtype == shendu.float32
    assert abs(y.numpy().mean() - 3.0) < 0.02 and abs(y.numpy().std() - 0.5) < 0.02
    z = shendu.empty(10000).bernoulli_(0.3)
    assert set(np.unique(z.numpy())) <= {0.0, 1.0} and abs(z.numpy().mean() - 0.3) < 0.03
    with pytest.raises(TypeError, match="uniform_: expected a floating point tensor"):
        shendu.zeros(3, dtype=shendu.int64).uniform_()


# --- errors -----------------------------------------------------------------------------
@pytest.mark.parametrize("call,error,message", [
    (lambda: F.conv1d(shendu.zeros(2, 3, 8), shendu.zeros(4, 2, 3)), ValueError,
     r"conv1d: expected input \(N, 2, L\) with 2 channels to match weight \(4, 2, 3\)"),
    (lambda: F.conv1d(shendu.zeros(2, 3, 4, 4), shendu.zeros(4, 3, 3)), ValueError,
     r"conv1d: expected a 2-D \(C, L\) or 3-D \(N, C, L\) input, got shape \(2, 3, 4, 4\)"),
    (lambda: F.max_pool1d(shendu.zeros(2, 3, 8), (2, 2)), TypeError,
     r"max_pool1d: kernel_size must be an int or a 1-tuple of ints, got \(2, 2\)"),
    (lambda: F.group_norm(shendu.zeros(2, 6, 3), 4), ValueError,
     r"group_norm: num_groups must be a positive int dividing the 6 channels"),
    (lambda: F.interpolate(shendu.zeros(1, 1, 4, 4), size=3, scale_factor=2), ValueError,
     "interpolate: give exactly one of size and scale_factor"),
    (lambda: F.interpolate(shendu.zeros(1, 1, 4, 4), scale_factor=2, align_corners=True),
     ValueError, "interpolate: align_corners can only be set with the interpolating modes"),
    (lambda: F.unfold(shendu.zeros(2, 3), 2), ValueError,
     r"unfold: expected a 3-D \(C, H, W\) or 4-D \(N, C, H, W\) input, got shape \(2, 3\)"),
    (lambda: F.kl_div(shendu.zeros(2, 3), shendu.zeros(3, 2)), ValueError,
     r"kl_div: target shape \(3, 2\) differs from input shape \(2, 3\)"),
    (lambda: F.cosine_similarity(shendu.zeros(2, 3), shendu.zeros(4, 3)), ValueError,
     r"cosine_similarity: x1 \(2, 3\) and x2 \(4, 3\) do not broadcast"),
    (lambda: shendu.norm(shendu.zeros(2, 2), p="nuc"), ValueError, "norm: p='nuc' is not"),
    (lambda: shendu.einsum("ij,jk->ik", shendu.zeros(2, 3), shendu.zeros(4, 2)), ValueError,
     r"einsum: subscript 'j' has size 3 and 4"),
    (lambda: shendu.einsum("ii->i", shendu.zeros(2, 2)), ValueError,
     "einsum: repeated subscript in 'ii'"),
    (lambda: shendu.einsum("ij->ik", shendu.zeros(2, 2)), ValueError,
     "einsum: output subscripts 'ik' must be distinct and appear in an input"),
    (lambda: shendu.topk(shendu.zeros(3), 4), RuntimeError, r"topk: k \(4\) must be an int"),
    (lambda: shendu.outer(shendu.zeros(2, 2), shendu.zeros(2)), RuntimeError,
     r"outer: expected two 1-D tensors, got \(2, 2\)"),
    (lambda: shendu.multinomial(shendu.tensor([0.5, 0.0]), 2), RuntimeError,
     "multinomial: cannot draw 2 samples without replacement from a row with only 1"),
    (lambda: shendu.multinomial(shendu.tensor([0.5, -0.1]), 1), RuntimeError,
     "multinomial: weights must be finite and non-negative"),
    (lambda: F.softplus(shendu.zeros(2), beta=0.0), ValueError, "softplus: beta must be > 0"),
    (lambda: F.pixel_unshuffle(shendu.zeros(1, 1, 3, 4), 2), ValueError,
     r"pixel_unshuffle: expected input \(\*, C, H, W\) with H and W divisible by 2"),
])
def test_bad_input_gives_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_prod_second_derivative_with_zeros_refuses_clearly():
    x = shendu.tensor([0.0, 2.0, 3.0], requires_grad=True)
    (g,) = shendu.autograd.grad(x.prod(), x, create_graph=False)
    assert_close(g, torch.tensor([6.0, 0.0, 0.0], dtype=torch.float32))
    with pytest.raises(RuntimeError, match="ProdBackward: a second derivative of prod"):
        shendu.autograd.grad(x.prod(), x, create_graph=True)


def test_mish_selu_through_finite_differences_at_extremes():
    # far tails, where a naive formula overflows
    finite_difference_check(F.mish, [np.array([-30.0, -3.0, 0.3, 25.0])])
    finite_difference_check(F.selu, [np.array([-4.0, -0.2, 0.2, 4.0])])
