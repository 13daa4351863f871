"""Every shendu.nn layer against its torch twin (oracle.check_layer): state_dict keys and
shapes, outputs and gradients in train and eval mode, running statistics, default init, repr,
and the errors that name the layer. Maxout (no twin) is checked by finite differences."""
import math
import warnings

import numpy as np
import pytest
import torch

import shendu
from shendu import nn
from oracle import check_layer, finite_difference_check

T = torch.nn
RNG = np.random.default_rng(0)


# --- repr ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda m: m.Identity(), lambda m: m.Linear(3, 4), lambda m: m.Linear(3, 4, bias=False),
    lambda m: m.Flatten(), lambda m: m.Flatten(0, 2), lambda m: m.Unflatten(1, (2, 5)),
    lambda m: m.Conv2d(3, 16, 3), lambda m: m.Conv2d(3, 16, (3, 5), 2, 1, 2, bias=False),
    lambda m: m.Conv2d(4, 8, 3, padding="same", groups=2),
    lambda m: m.ConvTranspose2d(3, 16, 3, stride=2, output_padding=1),
    lambda m: m.ConvTranspose2d(4, 6, 2, groups=2, dilation=2, bias=False),
    lambda m: m.MaxPool2d(2), lambda m: m.MaxPool2d(3, 1, 1, ceil_mode=True),
    lambda m: m.AvgPool2d(2), lambda m: m.AvgPool2d((3, 2), (2, 1), 1),
    lambda m: m.AdaptiveAvgPool2d(1), lambda m: m.AdaptiveAvgPool2d((2, None)),
    lambda m: m.BatchNorm1d(5), lambda m: m.BatchNorm2d(5, momentum=None, affine=False),
    lambda m: m.BatchNorm2d(5, 1e-3, track_running_stats=False, bias=False),
    lambda m: m.LayerNorm(5), lambda m: m.LayerNorm([4, 5], elementwise_affine=False),
    lambda m: m.LayerNorm(5, bias=False), lambda m: m.Dropout(), lambda m: m.Dropout(0.2),
    lambda m: m.Embedding(10, 3), lambda m: m.Embedding(10, 3, padding_idx=-1),
    lambda m: m.ReLU(), lambda m: m.ReLU(inplace=True), lambda m: m.Sigmoid(),
    lambda m: m.Tanh(), lambda m: m.Softmax(1), lambda m: m.Softmax(),
    lambda m: m.LogSoftmax(dim=-1), lambda m: m.LeakyReLU(), lambda m: m.LeakyReLU(0.1),
    lambda m: m.ELU(), lambda m: m.ELU(0.5), lambda m: m.GELU(), lambda m: m.GELU("tanh"),
    lambda m: m.CrossEntropyLoss(), lambda m: m.NLLLoss(), lambda m: m.MSELoss(),
    lambda m: m.L1Loss(), lambda m: m.BCELoss(), lambda m: m.BCEWithLogitsLoss()])
def test_repr_and_fresh_state_equal_torch(make):
    ours, theirs = make(nn), make(T)
    assert repr(ours) == repr(theirs)
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    for key in ours_sd:
        assert tuple(ours_sd[key].shape) == tuple(theirs_sd[key].shape)
        assert str(ours_sd[key].dtype) == str(theirs_sd[key].dtype).replace("torch.", "")


# --- linear family ------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5), (5,)])
def test_linear(shape, bias):
    check_layer(nn.Linear(5, 3, bias=bias), lambda: T.Linear(5, 3, bias=bias), shape)


@pytest.mark.parametrize("make,shape", [
    (lambda m: m.Identity(7, k=1), (3, 4)), (lambda m: m.Flatten(), (2, 3, 4, 5)),
    (lambda m: m.Flatten(0, -2), (2, 3, 4)), (lambda m: m.Unflatten(1, (2, -1)), (3, 6, 2)),
    (lambda m: m.Unflatten(-1, (3, 2)), (4, 6))])
def test_shape_layers(make, shape):
    check_layer(make(nn), lambda: make(T), shape)


def _bound_stats(w, bound):
    w = w.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.98 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound / math.sqrt(3)


def test_linear_default_init():
    layer = nn.Linear(1000, 400)
    assert layer.weight.dtype == shendu.float32 and layer.weight.requires_grad
    _bound_stats(layer.weight, 1 / math.sqrt(1000))
    b = layer.bias.detach().numpy()
    assert np.abs(b).max() <= 1 / math.sqrt(1000) and b.std() > 0.8 / math.sqrt(3000)
    assert nn.Linear(2, 2, dtype=shendu.float64).weight.dtype == shendu.float64


def test_linear_and_maxout_errors():
    layer = nn.Linear(784, 10)
    with pytest.raises(ValueError, match=r"^Linear\(in_features=784, out_features=10\): "
                                         r"expected input \(\.\.\., 784\), got \(32, 28, 28\)$"):
        layer(shendu.zeros(32, 28, 28))
    with pytest.raises(TypeError, match="Linear.*shendu.Tensor"):
        layer(np.zeros((2, 784)))
    with pytest.raises(ValueError, match=r"Maxout\(in_features=4, out_features=3, pool_size=2"):
        nn.Maxout(4, 3, 2)(shendu.zeros(2, 5))
    with pytest.raises(ValueError, match="pool_size"):
        nn.Maxout(4, 3, 0)
    with pytest.raises(ValueError, match="Unflatten"):
        nn.Unflatten(1, (4, 2))(shendu.zeros(3, 6))


def test_maxout_forward_is_max_of_pieces():
    layer = nn.Maxout(4, 3, 2).double()
    x = RNG.standard_normal((5, 4))
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    pieces = (x @ w.T + b).reshape(5, 3, 2)  # piece k of output j is row 2 j + k
    expected = np.maximum(pieces[..., 0], pieces[..., 1])
    np.testing.assert_allclose(layer(shendu.tensor(x)).detach().numpy(), expected, rtol=1e-12)
    assert layer.weight.shape == (6, 4) and list(layer.state_dict()) == ["weight", "bias"]
    _bound_stats(nn.Maxout(900, 100, 3).weight, 1 / 30)
    one = nn.Maxout(4, 3, 1).double()
    lin = nn.Linear(4, 3).double()
    lin.load_state_dict(one.state_dict())
    np.testing.assert_allclose(one(shendu.tensor(x)).detach().numpy(),
                               lin(shendu.tensor(x)).detach().numpy())


@pytest.mark.parametrize("shape,pool", [((3, 4), 2), ((2, 2, 4), 3)])
def test_maxout_finite_differences(shape, pool):
    layer = nn.Maxout(4, 2, pool).double()
    # the probes run without graph: the layer's own parameters would otherwise record one
    finite_difference_check(lambda x: layer(x) if x.requires_grad else layer(x).detach(),
                            [shape])
    layer.zero_grad()
    x = shendu.tensor(RNG.standard_normal(shape))
    upstream = RNG.standard_normal((*shape[:-1], 2))
    layer(x).backward(shendu.tensor(upstream))
    for p in layer.parameters():  # central differences for each parameter entry
        numeric = np.zeros(p.shape)
        for idx in np.ndindex(p.shape):
            values = []
            for step in (1e-6, -1e-6):
                with shendu.no_grad():
                    p.data[idx] += step
                    values.append(float((layer(x).numpy() * upstream).sum()))
                    p.data[idx] -= step
            numeric[idx] = (values[0] - values[1]) / 2e-6
        np.testing.assert_allclose(p.grad.numpy(), numeric, rtol=1e-5, atol=1e-7)


# --- convolution ---------------------------------------------------------------------------
@pytest.mark.parametrize("args,kwargs,shape", [
    ((3, 4, 3), {}, (2, 3, 7, 6)),
    ((3, 4, (3, 2)), dict(stride=2, padding=1), (2, 3, 8, 7)),
    ((4, 6, 3), dict(dilation=2, groups=2, bias=False), (2, 4, 9, 8)),
    ((2, 3, 4), dict(padding="same"), (1, 2, 6, 5)),
    ((2, 3, 3), dict(padding="valid", stride=(1, 2)), (2, 2, 5, 7)),
    ((3, 2, 3), dict(padding=1), (3, 6, 5))])  # unbatched
def test_conv2d(args, kwargs, shape):
    check_layer(nn.Conv2d(*args, **kwargs), lambda: T.Conv2d(*args, **kwargs), shape,
                passes=1)


@pytest.mark.parametrize("args,kwargs,shape", [
    ((3, 4, 3), {}, (2, 3, 4, 5)),
    ((3, 2, 3), dict(stride=2, padding=1, output_padding=1), (2, 3, 4, 3)),
    ((4, 6, (2, 3)), dict(stride=(2, 1), groups=2, dilation=2, bias=False), (1, 4, 3, 4)),
    ((2, 3, 2), dict(stride=2), (2, 3, 3))])  # unbatched
def test_conv_transpose2d(args, kwargs, shape):
    check_layer(nn.ConvTranspose2d(*args, **kwargs),
                lambda: T.ConvTranspose2d(*args, **kwargs), shape, passes=1)


def test_conv_transpose2d_output_size():
    ours, theirs = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1), \
        T.ConvTranspose2d(2, 3, 3, stride=2, padding=1)
    theirs.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in ours.state_dict().items()})
    x = RNG.standard_normal((1, 2, 4, 4)).astype(np.float32)
    for size in [(8, 8), (7, 8), (1, 3, 8, 7)]:
        out = ours(shendu.tensor(x), output_size=size)
        expected = theirs(torch.from_numpy(x), output_size=size)
        np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-5,
                                   atol=1e-6)
    with pytest.raises(ValueError, match="valid sizes range from"):
        ours(shendu.tensor(x), output_size=(10, 10))


def test_conv_default_init():
    _bound_stats(nn.Conv2d(48, 64, 3).weight, 1 / math.sqrt(48 * 9))
    b = nn.Conv2d(48, 2000, 3).bias.detach().numpy()
    assert np.abs(b).max() <= 1 / math.sqrt(48 * 9)
    # torch takes the transposed conv's fan_in from weight dim 1 (= out_channels / groups)
    _bound_stats(nn.ConvTranspose2d(64, 48, 3).weight, 1 / math.sqrt(48 * 9))
    assert nn.Conv2d(4, 6, 3, groups=2).weight.shape == (6, 2, 3, 3)
    assert nn.ConvTranspose2d(4, 6, 3, groups=2).weight.shape == (4, 3, 3, 3)


def test_conv_errors():
    conv = nn.Conv2d(3, 16, 3)
    with pytest.raises(ValueError, match=r"^Conv2d\(3, 16, kernel_size=\(3, 3\)\): expected "
                                         r"input \(N, 3, H, W\), got \(32, 28, 28, 3\)$"):
        conv(shendu.zeros(32, 28, 28, 3))
    with pytest.raises(ValueError, match=r"ConvTranspose2d\(3, 2, kernel_size=\(2, 2\)\)"):
        nn.ConvTranspose2d(3, 2, 2)(shendu.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="in_channels \\(3\\) must be divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="out_channels \\(3\\) must be divisible"):
        nn.Conv2d(4, 3, 3, groups=2)
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding_mode 'reflect'"):
        nn.Conv2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(TypeError, match="kernel_size"):
        nn.Conv2d(3, 4, (3, 3, 3))


# --- pooling ------------------------------------------------------------------------------
@pytest.mark.parametrize("make,shape", [
    (lambda m: m.MaxPool2d(2), (2, 3, 6, 7)),
    (lambda m: m.MaxPool2d((3, 2), stride=(2, 1), padding=1), (1, 2, 7, 5)),
    (lambda m: m.MaxPool2d(3, 2, dilation=2, ceil_mode=True), (1, 2, 9, 8)),
    (lambda m: m.MaxPool2d(2, return_indices=True), (1, 2, 4, 6)),
    (lambda m: m.MaxPool2d(2), (3, 4, 4)),  # unbatched
    (lambda m: m.AvgPool2d(2), (2, 3, 6, 7)),
    (lambda m: m.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), (1, 2, 8, 7)),
    (lambda m: m.AvgPool2d((2, 3), divisor_override=4), (1, 2, 4, 6)),
    (lambda m: m.AdaptiveAvgPool2d(1), (2, 3, 5, 4)),
    (lambda m: m.AdaptiveAvgPool2d((3, 2)), (2, 2, 7, 5)),
    (lambda m: m.AdaptiveAvgPool2d((None, 2)), (2, 3, 4, 5)),
    (lambda m: m.AdaptiveAvgPool2d(2), (3, 5, 5))])
def test_pooling(make, shape):
    check_layer(make(nn), lambda: make(T), shape, passes=1)


def test_pooling_errors():
    for layer, name in [(nn.MaxPool2d(2), r"MaxPool2d\(kernel_size=2\)"),
                        (nn.AvgPool2d(3), r"AvgPool2d\(kernel_size=3\)"),
                        (nn.AdaptiveAvgPool2d(1), r"AdaptiveAvgPool2d\(output_size=1\)")]:
        with pytest.raises(ValueError, match=name + r": expected input \(N, C, H, W\) or "
                                                   r"\(C, H, W\), got \(4, 4\)"):
            layer(shendu.zeros(4, 4))


# --- normalization ------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [
    {}, dict(momentum=None), dict(momentum=0.3, eps=1e-3), dict(affine=False),
    dict(track_running_stats=False), dict(bias=False),
    dict(momentum=None, affine=False, track_running_stats=False)])
@pytest.mark.parametrize("cls,shape", [("BatchNorm1d", (6, 3)), ("BatchNorm1d", (4, 3, 5)),
                                       ("BatchNorm2d", (4, 3, 3, 2))])
def test_batch_norm(cls, shape, kwargs):
    # 3 train passes (running stats, num_batches_tracked compared after each), then eval
    check_layer(getattr(nn, cls)(3, **kwargs), lambda: getattr(T, cls)(3, **kwargs), shape,
                passes=3, low=-1.0, high=3.0)


def test_batch_norm_running_stats_values():
    bn = nn.BatchNorm1d(2, momentum=None).double()
    batches = [RNG.standard_normal((5, 2)) * (i + 1) + i for i in range(3)]
    for b in batches:
        bn(shendu.tensor(b))
    assert bn.num_batches_tracked.dtype == shendu.int64 and bn.num_batches_tracked.item() == 3
    # momentum=None: the plain average of the batch statistics (unbiased variance)
    np.testing.assert_allclose(bn.running_mean.numpy(),
                               np.mean([b.mean(0) for b in batches], 0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(),
                               np.mean([b.var(0, ddof=1) for b in batches], 0), rtol=1e-12)
    bn.eval()
    bn(shendu.tensor(batches[0]))
    assert bn.num_batches_tracked.item() == 3
    bn.reset_running_stats()
    assert bn.num_batches_tracked.item() == 0 and np.all(bn.running_var.numpy() == 1)


def test_batch_norm_errors():
    with pytest.raises(ValueError, match=r"^BatchNorm2d\(16\): expected input \(N, 16, H, W\), "
                                         r"got \(8, 3, 4, 4\)$"):
        nn.BatchNorm2d(16)(shendu.zeros(8, 3, 4, 4))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(16\): .* got \(8, 16\)"):
        nn.BatchNorm2d(16)(shendu.zeros(8, 16))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(4\): expected input \(N, 4\) or "
                                         r"\(N, 4, L\), got \(2, 4, 3, 3\)"):
        nn.BatchNorm1d(4)(shendu.zeros(2, 4, 3, 3))


@pytest.mark.parametrize("args,kwargs,shape", [
    ((5,), {}, (3, 5)), (((3, 4),), dict(eps=1e-3), (2, 3, 4)),
    ((4,), dict(elementwise_affine=False), (2, 3, 4)), ((4,), dict(bias=False), (6, 4))])
def test_layer_norm(args, kwargs, shape):
    check_layer(nn.LayerNorm(*args, **kwargs), lambda: T.LayerNorm(*args, **kwargs), shape,
                passes=1)


def test_layer_norm_errors():
    with pytest.raises(ValueError, match=r"^LayerNorm\(\(3, 4\)\): expected input "
                                         r"\(\.\.\., 3, 4\), got \(2, 4, 3\)$"):
        nn.LayerNorm((3, 4))(shendu.zeros(2, 4, 3))


# --- dropout ------------------------------------------------------------------------------
def test_dropout_statistics_and_modes():
    x = shendu.ones(400, 500)
    out = nn.Dropout(0.3, generator=shendu.Generator(seed=1))(x).numpy()
    kept = out != 0
    assert abs(kept.mean() - 0.7) < 0.005
    np.testing.assert_allclose(out[kept], 1 / 0.7, rtol=1e-6)
    assert out.dtype == np.float32
    layer = nn.Dropout(0.3).eval()
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())
    check_layer(nn.Dropout(0.4), lambda: T.Dropout(0.4), (3, 4), modes=("eval",))
    np.testing.assert_array_equal(nn.Dropout(0.0)(x).numpy(), x.numpy())
    assert not nn.Dropout(1.0)(x).numpy().any()
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)


def test_dropout_seed_and_backward_mask():
    x = shendu.tensor(RNG.standard_normal((50, 40)), requires_grad=True)
    a = nn.Dropout(0.5, generator=shendu.Generator(seed=7))(x)
    b = nn.Dropout(0.5, generator=shendu.Generator(seed=7))(x)
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    c = nn.Dropout(0.5, generator=shendu.Generator(seed=8))(x)
    assert not np.array_equal(a.detach().numpy(), c.detach().numpy())
    upstream = RNG.standard_normal((50, 40))
    a.backward(shendu.tensor(upstream))
    mask = (a.detach().numpy() != 0) * 2.0  # the forward's mask, scaled by 1 / (1 - p)
    np.testing.assert_allclose(x.grad.numpy(), upstream * mask, rtol=1e-12)


# --- embedding ----------------------------------------------------------------------------
@pytest.mark.parametrize("padding_idx", [None, 0, -2])
def test_embedding(padding_idx):
    ids = np.array([[1, 0, 3, 3], [8, 0, 2, 1], [1, 1, 7, 9]], dtype=np.int64)
    check_layer(nn.Embedding(10, 4, padding_idx=padding_idx),
                lambda: T.Embedding(10, 4, padding_idx=padding_idx), ids, passes=1)


def test_embedding_init_and_padding_gradient():
    emb = nn.Embedding(2000, 100, padding_idx=3)
    w = emb.weight.detach().numpy()
    assert not w[3].any() and abs(w.std() - 1) < 0.01 and abs(w.mean()) < 0.01
    emb(shendu.tensor([[3, 4], [3, 3]])).sum().backward()
    assert not emb.weight.grad.numpy()[3].any() and np.all(emb.weight.grad.numpy()[4] == 1)
    table = shendu.tensor(RNG.standard_normal((5, 2)))
    frozen = nn.Embedding.from_pretrained(table)
    assert not frozen.weight.requires_grad and frozen.embedding_dim == 2
    np.testing.assert_array_equal(frozen(shendu.tensor([4])).numpy(), table.numpy()[[4]])
    assert nn.Embedding.from_pretrained(table, freeze=False).weight.requires_grad


def test_embedding_errors():
    with pytest.raises(TypeError, match=r"Embedding\(10, 3\): expected input of integer ids"):
        nn.Embedding(10, 3)(shendu.zeros(2, 2))
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(10, 3, padding_idx=10)
    with pytest.raises(ValueError, match="sparse"):
        nn.Embedding(10, 3, sparse=True)


# --- activations --------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda m: m.ReLU(), lambda m: m.Sigmoid(), lambda m: m.Tanh(), lambda m: m.Softmax(1),
    lambda m: m.Softmax(dim=-1), lambda m: m.LogSoftmax(0), lambda m: m.LeakyReLU(),
    lambda m: m.LeakyReLU(0.1), lambda m: m.ELU(), lambda m: m.ELU(alpha=0.7),
    lambda m: m.GELU(), lambda m: m.GELU(approximate="tanh")])
def test_activation(make):
    check_layer(make(nn), lambda: make(T), (3, 4, 2), passes=1, low=-3.0, high=3.0)


def test_activation_inplace_and_implicit_softmax_dim():
    x = shendu.tensor([[-1.0, 2.0]])
    with shendu.no_grad():
        assert nn.ReLU(inplace=True)(x) is x
    np.testing.assert_array_equal(x.numpy(), [[0.0, 2.0]])
    data = RNG.standard_normal((2, 3, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = T.Softmax()(torch.from_numpy(data)).numpy()
    with pytest.warns(UserWarning, match="implicit dimension"):
        out = nn.Softmax()(shendu.tensor(data))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("fast")
    with pytest.raises(TypeError, match="Sigmoid"):
        nn.Sigmoid()([1.0])


# --- losses -------------------------------------------------------------------------------
LOGITS = RNG.standard_normal((6, 4))
LABELS = np.array([0, 3, 1, 1, 2, 3], dtype=np.int64)
PROBS = RNG.dirichlet(np.ones(4), size=6)
W4 = RNG.uniform(0.5, 2.0, 4)  # class weights; each layer gets its own copy


@pytest.mark.parametrize("make,inputs,grad", [
    (lambda m, w: m.CrossEntropyLoss(), [LOGITS, LABELS], None),
    (lambda m, w: m.CrossEntropyLoss(w, ignore_index=1), [LOGITS, LABELS], None),
    (lambda m, w: m.CrossEntropyLoss(reduction="none", label_smoothing=0.2),
     [LOGITS, LABELS], None),
    (lambda m, w: m.CrossEntropyLoss(w, reduction="sum"), [LOGITS, PROBS], None),
    (lambda m, w: m.CrossEntropyLoss(), [(2, 4, 3, 2), np.array([[[0, 1]] * 3, [[3, 2]] * 3])],
     None),
    (lambda m, w: m.NLLLoss(), [LOGITS, LABELS], None),
    (lambda m, w: m.NLLLoss(w, reduction="none", ignore_index=3), [LOGITS, LABELS], None),
    (lambda m, w: m.MSELoss(), [(3, 5), (3, 5)], None),
    (lambda m, w: m.MSELoss(reduction="sum"), [(3, 5), (3, 5)], None),
    (lambda m, w: m.L1Loss(reduction="none"), [(2, 3, 4), (2, 3, 4)], None),
    (lambda m, w: m.L1Loss(), [(7,), (7,)], None),
    (lambda m, w: m.BCELoss(), [RNG.uniform(0.05, 0.95, (6, 4)), PROBS], [True, False]),
    (lambda m, w: m.BCELoss(w, reduction="none"), [RNG.uniform(0.05, 0.95, (6, 4)), PROBS],
     [True, False]),
    (lambda m, w: m.BCEWithLogitsLoss(), [LOGITS, PROBS], None),
    (lambda m, w: m.BCEWithLogitsLoss(w, pos_weight=w * 2), [LOGITS, PROBS], None)])
def test_loss(make, inputs, grad):
    check_layer(make(nn, shendu.tensor(W4)), lambda: make(T, torch.tensor(W4)), inputs,
                requires_grad=grad, passes=1)


def test_loss_arguments():
    with pytest.warns(UserWarning, match="deprecated"):
        assert nn.MSELoss(size_average=False).reduction == "sum"
    with pytest.warns(UserWarning, match="deprecated"):
        assert nn.CrossEntropyLoss(reduce=False).reduction == "none"
    with pytest.raises(ValueError, match="MSELoss: reduction must be"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        nn.CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(TypeError, match="CrossEntropyLoss: weight must be a Tensor"):
        nn.CrossEntropyLoss(weight=[1.0, 2.0])
    with pytest.raises(TypeError, match="target"):
        nn.L1Loss()(shendu.zeros(3), [0.0, 0.0, 0.0])
    with pytest.raises(ValueError):
        nn.MSELoss()(shendu.zeros(3, 1), shendu.zeros(3))
    loss = nn.CrossEntropyLoss(weight=shendu.tensor(W4))
    assert list(loss.state_dict()) == ["weight"]
