"""linear, embedding, dropout, one_hot, layer_norm, batch_norm against torch (values,
random-upstream gradients, Hessian-vector products), dropout statistics and input errors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from oracle import assert_close, check_op, to_torch

import shendu
from shendu.ops import nn as N
from shendu.ops import normalization as NORM


@pytest.mark.parametrize("x_shape", [(5, 3), (2, 4, 3), (3,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(x_shape, bias):
    shapes = [x_shape, (4, 3)] + ([(4,)] if bias else [])
    check_op(N.linear, shapes, TF.linear, second_order=True)


def test_linear_errors():
    with pytest.raises(ValueError, match=r"linear: expected input \(\*, 3\).*got \(2, 4\)"):
        N.linear(shendu.rand(2, 4), shendu.rand(5, 3))
    with pytest.raises(ValueError, match=r"linear: bias must have shape \(5,\)"):
        N.linear(shendu.rand(2, 3), shendu.rand(5, 3), shendu.rand(3))
    with pytest.raises(ValueError, match="linear: weight must be 2-D"):
        N.linear(shendu.rand(2, 3), shendu.rand(3))


@pytest.mark.parametrize("padding_idx", [None, 2, -1])
@pytest.mark.parametrize("index_shape", [(7,), (3, 5), ()])
def test_embedding(padding_idx, index_shape):
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 6, index_shape)
    if idx.size:
        idx.reshape(-1)[:2] = 2  # repeated rows must accumulate, and hit padding_idx
        idx.reshape(-1)[-1] = 5
    check_op(lambda w: N.embedding(shendu.tensor(idx), w, padding_idx), [(6, 4)],
             lambda w: TF.embedding(torch.tensor(idx), w, padding_idx), second_order=True)


def test_embedding_padding_row_gets_zero_gradient_and_double_backward():
    w = shendu.randn(5, 3, dtype=shendu.float64, requires_grad=True)
    idx = shendu.tensor([[0, 1, 1], [4, 1, 0]])
    out = N.embedding(idx, w, padding_idx=1)
    upstream = shendu.randn(2, 3, 3, dtype=shendu.float64, requires_grad=True)
    (g,) = shendu.autograd.grad(out, w, upstream, create_graph=True)
    assert np.all(g.detach().numpy()[1] == 0)
    v = shendu.randn(5, 3, dtype=shendu.float64)
    (gu,) = shendu.autograd.grad((g * v).sum(), upstream)
    expected = v.numpy()[idx.numpy()] * (idx.numpy() != 1)[..., None]
    np.testing.assert_allclose(gu.numpy(), expected)


def test_embedding_float32_grad():
    w = shendu.randn(10, 4, requires_grad=True)
    N.embedding(shendu.tensor([1, 1, 3]), w).sum().backward()
    assert w.grad.dtype == shendu.float32
    np.testing.assert_array_equal(w.grad.numpy()[:4, 0], [0, 2, 0, 1])


def test_embedding_errors():
    w = shendu.rand(4, 2)
    with pytest.raises(IndexError, match=r"embedding: index 4 is out of range for "
                                         r"num_embeddings=4"):
        N.embedding(shendu.tensor([0, 4]), w)
    with pytest.raises(IndexError, match="embedding: index -1"):
        N.embedding(shendu.tensor([-1, 0]), w)
    with pytest.raises(TypeError, match="embedding: input must be an integer"):
        N.embedding(shendu.tensor([0.0, 1.0]), w)
    with pytest.raises(ValueError, match="embedding: padding_idx 4"):
        N.embedding(shendu.tensor([0]), w, padding_idx=4)
    with pytest.raises(ValueError, match="embedding: weight must be 2-D"):
        N.embedding(shendu.tensor([0]), shendu.rand(4))


def test_dropout_statistics_and_scaling():
    p = 0.3
    x = shendu.ones(200, 500)
    out = N.dropout(x, p, generator=shendu.Generator(seed=0)).numpy()
    zeros = (out == 0).mean()
    assert abs(zeros - p) < 0.01
    assert np.allclose(out[out != 0], 1 / (1 - p))
    assert abs(out.mean() - 1.0) < 0.02
    assert out.dtype == np.float32


def test_dropout_eval_identity_and_edge_probabilities():
    x = shendu.randn(4, 5)
    assert N.dropout(x, 0.5, training=False) is x
    assert N.dropout(x, 0.0) is x
    zeroed = N.dropout(x, 1.0)
    assert zeroed.shape == x.shape and not zeroed.numpy().any()
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=f"dropout: probability p must be in \\[0, 1\\], "
                                             f"got {bad}"):
            N.dropout(x, bad)


def test_dropout_same_seed_same_mask_and_backward_reuses_it():
    x = shendu.randn(30, 40, requires_grad=True)
    a = N.dropout(x, 0.5, generator=shendu.Generator(seed=7))
    b = N.dropout(x, 0.5, generator=shendu.Generator(seed=7))
    c = N.dropout(x, 0.5, generator=shendu.Generator(seed=8))
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert (a.detach().numpy() != c.detach().numpy()).any()
    upstream = np.random.default_rng(0).standard_normal((30, 40)).astype(np.float32)
    a.backward(shendu.tensor(upstream))
    mask = a.detach().numpy() / x.detach().numpy()
    np.testing.assert_allclose(x.grad.numpy(), upstream * mask, rtol=1e-6)


def test_dropout_default_generator_follows_manual_seed():
    x = shendu.ones(10, 10)
    shendu.manual_seed(3)
    first = N.dropout(x).numpy()
    shendu.manual_seed(3)
    np.testing.assert_array_equal(first, N.dropout(x).numpy())


@pytest.mark.parametrize("num_classes", [-1, 7])
def test_one_hot(num_classes):
    idx = np.array([[0, 3], [2, 4], [1, 1]])
    ours = N.one_hot(shendu.tensor(idx), num_classes)
    theirs = TF.one_hot(torch.tensor(idx), num_classes)
    assert ours.dtype == shendu.int64
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_one_hot_errors():
    with pytest.raises(TypeError, match="one_hot: expected an integer"):
        N.one_hot(shendu.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="one_hot: class values must be non-negative"):
        N.one_hot(shendu.tensor([-1, 1]))
    with pytest.raises(ValueError, match="one_hot: class values must be smaller than "
                                         "num_classes=2, got 2"):
        N.one_hot(shendu.tensor([0, 2]), 2)
    with pytest.raises(ValueError, match="one_hot: cannot infer num_classes"):
        N.one_hot(shendu.tensor(np.zeros(0, dtype=np.int64)))


@pytest.mark.parametrize("x_shape,normalized", [((4, 6), (6,)), ((2, 3, 4, 5), (4, 5)),
                                                ((3, 5), 5)])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(x_shape, normalized, affine):
    shape = (normalized,) if isinstance(normalized, int) else normalized
    params = [shape, shape] if affine else []
    check_op(lambda x, *wb: NORM.layer_norm(x, normalized, *wb, eps=1e-4), [x_shape] + params,
             lambda x, *wb: TF.layer_norm(x, shape, *wb, eps=1e-4), second_order=True)


def test_layer_norm_weight_only_and_errors():
    check_op(lambda x, w: NORM.layer_norm(x, (3,), w), [(4, 3), (3,)],
             lambda x, w: TF.layer_norm(x, (3,), w), second_order=True)
    with pytest.raises(ValueError, match=r"layer_norm: expected input \(\*, 4\).*got \(2, 3\)"):
        NORM.layer_norm(shendu.rand(2, 3), 4)
    with pytest.raises(ValueError, match=r"layer_norm: weight must have shape \(3,\)"):
        NORM.layer_norm(shendu.rand(2, 3), 3, shendu.rand(2))


@pytest.mark.parametrize("x_shape", [(6, 3), (4, 3, 5), (2, 3, 4, 3)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_training(x_shape, affine):
    params = [(3,), (3,)] if affine else []
    check_op(lambda x, *wb: NORM.batch_norm(x, None, None, *wb, training=True),
             [x_shape] + params,
             lambda x, *wb: TF.batch_norm(x, None, None, *wb, training=True),
             second_order=True)


@pytest.mark.parametrize("x_shape", [(6, 3), (2, 3, 4, 3)])
def test_batch_norm_eval(x_shape):
    rng = np.random.default_rng(4)
    mean, var = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    check_op(lambda x, w, b: NORM.batch_norm(x, shendu.tensor(mean), shendu.tensor(var), w, b),
             [x_shape, (3,), (3,)],
             lambda x, w, b: TF.batch_norm(x, to_torch(mean), to_torch(var), w, b),
             second_order=True)


@pytest.mark.parametrize("x_shape", [(8, 3), (4, 3, 5, 2)])
def test_batch_norm_running_statistics_follow_torch(x_shape):
    rng = np.random.default_rng(1)
    ours_m, ours_v = shendu.zeros(3, dtype=shendu.float64), shendu.ones(3, dtype=shendu.float64)
    theirs_m, theirs_v = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    for _ in range(4):
        x = rng.standard_normal(x_shape) * 3 + 1
        out = NORM.batch_norm(shendu.tensor(x), ours_m, ours_v, training=True, momentum=0.2)
        ref = TF.batch_norm(to_torch(x), theirs_m, theirs_v, training=True, momentum=0.2)
        assert_close(out, ref)
    assert_close(ours_m, theirs_m)
    assert_close(ours_v, theirs_v)


def test_batch_norm_float32_and_errors():
    x = shendu.randn(4, 3, 2)
    rm, rv = shendu.zeros(3), shendu.ones(3)
    assert NORM.batch_norm(x, rm, rv, training=True).dtype == shendu.float32
    assert rm.dtype == shendu.float32 and rm.numpy().any()
    with pytest.raises(ValueError, match="batch_norm: expected more than 1 value per channel"):
        NORM.batch_norm(shendu.randn(1, 3), None, None, training=True)
    with pytest.raises(ValueError, match=r"batch_norm: running_mean must have shape \(3,\)"):
        NORM.batch_norm(x, shendu.zeros(4), rv)
    with pytest.raises(ValueError, match="batch_norm: running_mean and running_var are "
                                         "required"):
        NORM.batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match=r"batch_norm: expected input \(N, C, \*\)"):
        NORM.batch_norm(shendu.randn(3), None, None, training=True)
