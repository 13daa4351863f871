"""shendu.nn.functional keeps torch's names, signatures and semantics."""
import inspect
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from oracle import assert_close, check_op, to_torch

import shendu
import shendu.nn.functional as F
from shendu.ops import conv, loss, nn, normalization

NAMES = ["linear", "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d",
         "adaptive_avg_pool2d", "relu", "relu6", "leaky_relu", "elu", "gelu", "sigmoid", "tanh",
         "softmax", "log_softmax", "dropout", "embedding", "one_hot", "layer_norm",
         "batch_norm", "pad", "cross_entropy", "nll_loss", "mse_loss", "l1_loss",
         "smooth_l1_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
         "conv1d", "max_pool1d", "avg_pool1d", "adaptive_avg_pool1d", "adaptive_max_pool1d",
         "adaptive_max_pool2d", "dropout1d", "dropout2d", "group_norm", "instance_norm", "silu",
         "mish", "softplus", "hardtanh", "selu", "logsigmoid", "prelu", "interpolate",
         "upsample", "pixel_shuffle", "pixel_unshuffle", "unfold", "fold", "huber_loss",
         "kl_div", "cosine_similarity", "normalize"]
# boolean dispatchers (return_indices): their signature is the private function's
DISPATCHED = {"max_pool2d", "max_pool1d", "adaptive_max_pool1d", "adaptive_max_pool2d"}


def _torch_params(name):
    fn = getattr(TF, "_" + name) if name in DISPATCHED else getattr(TF, name)
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # a C builtin: torch documents it in the docstring
        head = fn.__doc__[fn.__doc__.index("(") + 1:fn.__doc__.index(")")]
        return [p.split("=")[0].strip().lstrip("*") for p in head.split(",") if p.strip()
                and p.strip() not in ("*", "/")]


@pytest.mark.parametrize("name", NAMES)
def test_signature_matches_torch(name):
    ours = [p for p, v in inspect.signature(getattr(F, name)).parameters.items()
            if v.kind != inspect.Parameter.KEYWORD_ONLY]
    assert ours == _torch_params(name)[:len(ours)] and len(ours) >= 1
    assert len(ours) == len([p for p in _torch_params(name) if p != "generator"]), name


def test_conv_and_pool_are_the_ops():
    for name in ["conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d",
                 "adaptive_avg_pool2d"]:
        assert getattr(F, name) is getattr(conv, name)
    assert F.linear is nn.linear and F.layer_norm is normalization.layer_norm


@pytest.mark.parametrize("name,kwargs", [("relu", {}), ("relu6", {}), ("sigmoid", {}),
                                         ("tanh", {}), ("gelu", {"approximate": "tanh"}),
                                         ("leaky_relu", {"negative_slope": 0.1}),
                                         ("elu", {"alpha": 0.7}), ("softmax", {"dim": 1}),
                                         ("log_softmax", {"dim": -1})])
def test_activations_match_torch(name, kwargs):
    check_op(lambda x: getattr(F, name)(x, **kwargs), [(3, 4)],
             lambda x: getattr(TF, name)(x, **kwargs), low=-8, high=8)


def test_softmax_dtype_argument():
    x = shendu.randn(2, 3)
    out = F.softmax(x, 1, dtype=shendu.float64)
    assert out.dtype == shendu.float64
    assert_close(out, TF.softmax(to_torch(x.numpy()), 1, dtype=torch.float64))


@pytest.mark.parametrize("name", ["relu", "relu6", "leaky_relu", "elu"])
def test_inplace_writes_when_autograd_allows_it(name):
    data = np.array([-2.0, 0.5, 7.0])
    x = shendu.tensor(data)
    out = getattr(F, name)(x, inplace=True)
    assert out is x
    assert_close(x, getattr(TF, name)(torch.tensor(data)))
    leaf = shendu.tensor(data, requires_grad=True)
    out = getattr(F, name)(leaf, inplace=True)
    assert out is not leaf and np.array_equal(leaf.detach().numpy(), data)
    out.sum().backward()
    assert leaf.grad is not None


def test_dropout_inplace_and_generator():
    x = shendu.ones(50, 50)
    out = F.dropout(x, 0.5, True, True, generator=shendu.Generator(seed=1))
    assert out is x and (x.numpy() == 0).any()
    a = F.dropout(shendu.ones(9, 9), 0.5, generator=shendu.Generator(seed=2))
    b = F.dropout(shendu.ones(9, 9), p=0.5, training=True, generator=shendu.Generator(seed=2))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert F.dropout(x, 0.5, training=False) is x


def test_embedding_and_pad():
    idx = np.array([[1, 0], [3, 3]])
    check_op(lambda w: F.embedding(shendu.tensor(idx), w, 0), [(4, 3)],
             lambda w: TF.embedding(torch.tensor(idx), w, 0))
    with pytest.raises(NotImplementedError, match="embedding: max_norm"):
        F.embedding(shendu.tensor(idx), shendu.rand(4, 3), max_norm=1.0)
    check_op(lambda x: F.pad(x, (1, 2, 0, 1)), [(2, 3, 4)], lambda x: TF.pad(x, (1, 2, 0, 1)))
    check_op(lambda x: F.pad(x, (1, 1), value=2.5), [(2, 3)],
             lambda x: TF.pad(x, (1, 1), value=2.5))


def test_norms_and_one_hot_through_f():
    check_op(lambda x, w, b: F.layer_norm(x, (4,), w, b), [(3, 4), (4,), (4,)],
             lambda x, w, b: TF.layer_norm(x, (4,), w, b))
    check_op(lambda x, w, b: F.batch_norm(x, None, None, w, b, True), [(5, 2, 3), (2,), (2,)],
             lambda x, w, b: TF.batch_norm(x, None, None, w, b, True))
    np.testing.assert_array_equal(F.one_hot(shendu.tensor([2, 0]), 3).numpy(),
                                  TF.one_hot(torch.tensor([2, 0]), 3).numpy())


def test_cross_entropy_positional_arguments_match_torch():
    rng = np.random.default_rng(0)
    y = np.array([0, 2, 1, 1])
    w = rng.uniform(0.5, 2, 3)
    check_op(lambda x: F.cross_entropy(x, shendu.tensor(y), shendu.tensor(w), None, 1, None,
                                       "sum", 0.1), [(4, 3)],
             lambda x: TF.cross_entropy(x, torch.tensor(y), to_torch(w), None, 1, None, "sum",
                                        0.1))
    check_op(lambda x: F.nll_loss(x, shendu.tensor(y), None, None, 2, None, "none"), [(4, 3)],
             lambda x: TF.nll_loss(x, torch.tensor(y), None, None, 2, None, "none"))


@pytest.mark.parametrize("size_average,reduce", [(None, False), (False, None), (True, True),
                                                 (False, False)])
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss"])
def test_legacy_reduction_arguments(size_average, reduce, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that size_average/reduce are deprecated
        check_op(lambda x, y: getattr(F, name)(x, y, size_average, reduce), [(3, 2), (3, 2)],
                 lambda x, y: getattr(TF, name)(x, y, size_average, reduce))


def test_binary_losses_through_f():
    rng = np.random.default_rng(1)
    p, t = rng.uniform(0.1, 0.9, (4, 2)), rng.uniform(0, 1, (4, 2))
    check_op(lambda a, b: F.binary_cross_entropy(a, b, None, None, None, "sum"), [p, t],
             lambda a, b: TF.binary_cross_entropy(a, b, None, None, None, "sum"))
    pw = rng.uniform(0.5, 2, 2)
    check_op(lambda a, b: F.binary_cross_entropy_with_logits(a, b, pos_weight=shendu.tensor(pw)),
             [(4, 2), t],
             lambda a, b: TF.binary_cross_entropy_with_logits(a, b, pos_weight=to_torch(pw)))
    assert F.l1_penalty is loss.l1_penalty and F.l2_penalty is loss.l2_penalty
