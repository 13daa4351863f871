"""The torch.nn layers PyTorch scripts use beyond the core set, each against its torch twin
with oracle.check_layer (state_dict, outputs and gradients in float64, train and eval), plus
the errors that name the layer."""
import warnings

import numpy as np
import pytest
import torch
from oracle import assert_close, check_layer

import shendu
from shendu import nn

T = torch.nn


@pytest.mark.parametrize("make,shape", [
    (lambda m: m.Conv1d(3, 4, 3), (2, 3, 9)),
    (lambda m: m.Conv1d(4, 6, 2, stride=2, padding=1, dilation=2, groups=2, bias=False),
     (2, 4, 11)),
    (lambda m: m.Conv1d(3, 2, 4, padding="same"), (2, 3, 7)),
    (lambda m: m.Conv1d(3, 5, 3), (3, 8)),                          # unbatched (C, L)
    (lambda m: m.MaxPool1d(3, 2, 1), (2, 3, 10)),
    (lambda m: m.MaxPool1d(2, ceil_mode=True, dilation=2), (2, 2, 9)),
    (lambda m: m.AvgPool1d(3, 2, 1), (2, 3, 10)),
    (lambda m: m.AvgPool1d(2, count_include_pad=False, padding=1), (3, 7)),
    (lambda m: m.AdaptiveAvgPool1d(4), (2, 3, 10)),
    (lambda m: m.AdaptiveMaxPool1d(3), (2, 3, 8)),
    (lambda m: m.AdaptiveMaxPool2d((3, 4)), (2, 3, 7, 9)),
    (lambda m: m.AdaptiveMaxPool2d(1), (2, 3, 5, 5)),
    (lambda m: m.AdaptiveMaxPool2d((None, 2)), (3, 4, 5)),
    (lambda m: m.GroupNorm(2, 6), (3, 6, 4, 5)),
    (lambda m: m.GroupNorm(3, 3, affine=False), (2, 3, 7)),
    (lambda m: m.GroupNorm(1, 4), (5, 4)),
    (lambda m: m.InstanceNorm2d(3), (2, 3, 4, 5)),
    (lambda m: m.InstanceNorm2d(3, affine=True), (3, 4, 5)),
    (lambda m: m.InstanceNorm2d(3, affine=True, track_running_stats=True), (4, 3, 5, 6)),
    (lambda m: m.InstanceNorm1d(2, track_running_stats=True, momentum=0.3), (3, 2, 8)),
    (lambda m: m.SiLU(), (3, 4)), (lambda m: m.Mish(), (3, 4)),
    (lambda m: m.Softplus(), (3, 4)), (lambda m: m.Softplus(beta=2.0, threshold=3.0), (5, 4)),
    (lambda m: m.Hardtanh(), (3, 4)), (lambda m: m.Hardtanh(-0.5, 1.5), (3, 4)),
    (lambda m: m.ReLU6(), (3, 4)), (lambda m: m.SELU(), (3, 4)),
    (lambda m: m.LogSigmoid(), (3, 4)),
    (lambda m: m.PReLU(), (2, 3, 4)), (lambda m: m.PReLU(3, init=0.1), (2, 3, 4)),
    (lambda m: m.PReLU(5), (4, 5)), (lambda m: m.PReLU(), (5,)),
    (lambda m: m.Upsample(scale_factor=2), (2, 3, 4, 5)),
    (lambda m: m.Upsample(size=(7, 3)), (2, 3, 4, 5)),
    (lambda m: m.Upsample(scale_factor=1.5, mode="bilinear"), (2, 2, 4, 5)),
    (lambda m: m.Upsample(size=(6, 9), mode="bilinear", align_corners=True), (2, 2, 4, 5)),
    (lambda m: m.Upsample(size=(3, 2), mode="bilinear", align_corners=False), (2, 2, 4, 5)),
    (lambda m: m.Upsample(scale_factor=3, mode="linear"), (2, 3, 5)),
    (lambda m: m.UpsamplingNearest2d(scale_factor=2), (1, 2, 3, 3)),
    (lambda m: m.UpsamplingBilinear2d(size=(5, 7)), (1, 2, 3, 3)),
    (lambda m: m.PixelShuffle(2), (2, 8, 3, 4)),
    (lambda m: m.PixelUnshuffle(2), (2, 2, 4, 6)),
    (lambda m: m.ZeroPad2d(2), (2, 3, 4, 5)),
    (lambda m: m.ZeroPad2d((1, 0, 2, 3)), (3, 4, 5)),
    (lambda m: m.ZeroPad1d((2, 1)), (2, 3, 4)),
    (lambda m: m.ConstantPad2d(1, 3.5), (2, 3, 4)),
    (lambda m: m.Unfold(3), (2, 3, 6, 7)),
    (lambda m: m.Unfold((2, 3), dilation=(2, 1), padding=1, stride=2), (2, 2, 7, 8)),
    (lambda m: m.Fold((5, 6), 3), (2, 18, 12)),
    (lambda m: m.Fold((7, 8), (2, 3), dilation=(2, 1), padding=1, stride=2), (2, 12, 16)),
    (lambda m: m.Dropout2d(0.3), (2, 3, 4, 4)),      # eval mode is the identity
])
def test_layer_matches_torch(make, shape):
    modes = ("eval",) if "Dropout" in type(make(nn)).__name__ else ("train", "eval")
    check_layer(make(nn), lambda: make(T), shape, modes=modes)


@pytest.mark.parametrize("make,shapes", [
    (lambda m: m.SmoothL1Loss(), [(4, 3), (4, 3)]),
    (lambda m: m.SmoothL1Loss(reduction="sum", beta=0.5), [(4, 3), (4, 3)]),
    (lambda m: m.HuberLoss(), [(4, 3), (4, 3)]),
    (lambda m: m.HuberLoss(reduction="none", delta=0.7), [(5, 2), (5, 2)]),
    (lambda m: m.CosineSimilarity(), [(4, 5, 2), (4, 5, 2)]),
    (lambda m: m.CosineSimilarity(dim=-1, eps=1e-6), [(3, 4), (1, 4)]),
])
def test_two_input_layer_matches_torch(make, shapes):
    check_layer(make(nn), lambda: make(T), shapes)


@pytest.mark.parametrize("reduction", ["batchmean", "sum", "mean", "none"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_loss_matches_torch(reduction, log_target):
    rng = np.random.default_rng(3)
    logp = np.log(rng.dirichlet(np.ones(5), size=4))
    target = rng.dirichlet(np.ones(5), size=4)
    target[0, 1] = 0.0                                   # zero targets contribute nothing
    if log_target:
        target = np.log(rng.dirichlet(np.ones(5), size=4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                  # torch warns about 'mean'
        check_layer(nn.KLDivLoss(reduction=reduction, log_target=log_target),
                    lambda: T.KLDivLoss(reduction=reduction, log_target=log_target),
                    [logp, target], requires_grad=[True, False])


def test_dropout2d_zeroes_whole_channels_with_the_right_rate():
    layer = nn.Dropout2d(0.5)
    out = layer(shendu.ones(64, 32, 3, 3)).numpy()
    planes = out.reshape(64, 32, 9)
    assert np.all((planes == 0).all(axis=2) | (planes == 2.0).all(axis=2))
    assert 0.4 < (planes[:, :, 0] == 0).mean() < 0.6
    x = shendu.ones(8, 4, 5, requires_grad=True)
    y = nn.Dropout1d(0.5)(x)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.detach().numpy())
    with pytest.warns(UserWarning, match="3-D input"):
        nn.Dropout2d()(shendu.ones(2, 3, 4))


def test_parameter_list_and_dict_register_like_torch():
    class Ours(nn.Module):
        def __init__(self):
            super().__init__()
            self.ws = nn.ParameterList([nn.Parameter(shendu.ones(2)), shendu.zeros(3)])
            self.ws.append(nn.Parameter(shendu.ones(1)))
            self.d = nn.ParameterDict({"a": nn.Parameter(shendu.ones(2, 2))})
            self.d["b"] = shendu.zeros(4)

    class Theirs(T.Module):
        def __init__(self):
            super().__init__()
            self.ws = T.ParameterList([T.Parameter(torch.ones(2)), torch.zeros(3)])
            self.ws.append(T.Parameter(torch.ones(1)))
            self.d = T.ParameterDict({"a": T.Parameter(torch.ones(2, 2))})
            self.d["b"] = torch.zeros(4)

    ours, theirs = Ours(), Theirs()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [tuple(p.shape) for p in ours.parameters()] == \
        [tuple(p.shape) for p in theirs.parameters()]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in ours.ws)
    assert len(ours.ws) == 3 and ours.ws[-1].shape == (1,) and "b" in ours.d
    assert list(ours.d.keys()) == ["a", "b"] and len(ours.ws[1:]) == 2
    with pytest.raises(TypeError, match="ParameterList: expected a Parameter or Tensor"):
        ours.ws.append(3.0)
    with pytest.raises(IndexError, match="ParameterList: index 5 is out of range"):
        ours.ws[5]


def test_rnn_flatten_parameters_is_a_no_op():
    for cls in (nn.RNN, nn.LSTM, nn.GRU):
        layer = cls(3, 4)
        before = {k: v.numpy().copy() for k, v in layer.state_dict().items()}
        assert layer.flatten_parameters() is None
        assert all(np.array_equal(before[k], v.numpy()) for k, v in layer.state_dict().items())


def test_instance_norm_eval_uses_running_stats():
    ours = nn.InstanceNorm2d(3, track_running_stats=True)
    theirs = T.InstanceNorm2d(3, track_running_stats=True).double()
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 5))
    ours.double()
    ours(shendu.tensor(x))
    theirs(torch.tensor(x))
    ours.eval()
    theirs.eval()
    assert_close(ours(shendu.tensor(x)), theirs(torch.tensor(x)))
    assert_close(ours.running_var, theirs.running_var)


@pytest.mark.parametrize("make,x,message", [
    (lambda: nn.Conv1d(3, 4, 3), shendu.zeros(2, 5, 9),
     r"Conv1d\(3, 4, kernel_size=\(3,\)\): expected input \(N, 3, L\) or \(3, L\), got "
     r"\(2, 5, 9\)"),
    (lambda: nn.Conv1d(3, 4, 3), shendu.zeros(2, 3, 4, 4), r"Conv1d.*got \(2, 3, 4, 4\)"),
    (lambda: nn.MaxPool1d(2), shendu.zeros(2, 3, 4, 4), r"MaxPool1d\(kernel_size=2\): "
     r"expected input \(N, C, L\) or \(C, L\), got \(2, 3, 4, 4\)"),
    (lambda: nn.AdaptiveMaxPool2d(2), shendu.zeros(3, 4), r"AdaptiveMaxPool2d\(output_size=2"
     r"\): expected input \(N, C, H, W\) or \(C, H, W\), got \(3, 4\)"),
    (lambda: nn.GroupNorm(2, 4), shendu.zeros(2, 6, 3), r"GroupNorm\(2, 4\): expected input "
     r"\(N, 4, \*\), got \(2, 6, 3\)"),
    (lambda: nn.InstanceNorm2d(3), shendu.zeros(2, 3, 4), r"InstanceNorm2d\(3\): expected "
     r"input \(N, 3, H, W\) or \(3, H, W\), got \(2, 3, 4\)"),
    (lambda: nn.PixelShuffle(2), shendu.zeros(1, 6, 2, 2), r"pixel_shuffle: expected input "
     r"\(\*, C \* 2\^2, H, W\), got \(1, 6, 2, 2\)"),
    (lambda: nn.Upsample(scale_factor=2, mode="bilinear"), shendu.zeros(1, 2, 3),
     r"interpolate: mode 'bilinear' needs a 4-D input, got shape \(1, 2, 3\); use 'linear'"),
    (lambda: nn.Upsample(scale_factor=2, mode="bicubic"), shendu.zeros(1, 2, 3, 3),
     r"interpolate: mode 'bicubic' is not supported"),
    (lambda: nn.Fold((4, 4), 2), shendu.zeros(1, 8, 5), r"fold: input \(1, 8, 5\) has 5 "
     r"blocks, but output_size \(4, 4\) .* gives 3 x 3 = 9"),
    (lambda: nn.PReLU(4), shendu.zeros(2, 3, 5), r"prelu: weight has 4 slopes but the input "
     r"\(2, 3, 5\) has 3 channels"),
    (lambda: nn.ZeroPad2d(1), shendu.zeros(4), r"ZeroPad2d\(\(1, 1, 1, 1\)\): expected input"),
])
def test_bad_input_names_the_layer(make, x, message):
    with pytest.raises((ValueError, TypeError, RuntimeError), match=message):
        make()(x)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match=r"GroupNorm: num_channels \(5\) must be divisible by "
                                         r"num_groups \(2\)"):
        nn.GroupNorm(2, 5)
    with pytest.raises(ValueError, match="Upsample: give exactly one of size and scale_factor"):
        nn.Upsample()
    with pytest.raises(ValueError, match=r"Hardtanh: min_val \(2\) must not exceed"):
        nn.Hardtanh(2, 1)
    with pytest.raises(TypeError, match="Conv1d: kernel_size must be an int or 1 of ints"):
        nn.Conv1d(2, 2, (3, 3))
    with pytest.raises(ValueError, match="KLDivLoss: reduction must be"):
        nn.KLDivLoss(reduction="avg")


@pytest.mark.parametrize("make", [
    lambda m: m.Conv1d(3, 16, 3, stride=2, bias=False), lambda m: m.GroupNorm(2, 8),
    lambda m: m.InstanceNorm2d(4), lambda m: m.InstanceNorm2d(4, affine=True),
    lambda m: m.GroupNorm(2, 4, affine=False), lambda m: m.SiLU(), lambda m: m.PReLU(3),
    lambda m: m.Softplus(beta=2.0), lambda m: m.Hardtanh(-2.0, 2.0), lambda m: m.Mish(),
    lambda m: m.PixelShuffle(3), lambda m: m.AdaptiveMaxPool2d((2, 3)),
    lambda m: m.Unfold(3), lambda m: m.CosineSimilarity(), lambda m: m.MaxPool1d(2),
])
def test_repr_matches_torch(make):
    assert repr(make(nn)) == repr(make(T))
