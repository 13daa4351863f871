"""Module behaviour against torch.nn.Module: registration, traversal, state_dict, modes, hooks,
conversion and printing."""
from collections import OrderedDict

import numpy as np
import pytest
import torch

import shendu
from shendu import nn


def _pair():
    """The same small model in both frameworks (tied weights live in a dedicated test)."""
    ours = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.BatchNorm1d(8),
                         nn.Sequential(nn.Linear(8, 3, bias=False), nn.Tanh()))
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
                                 torch.nn.BatchNorm1d(8),
                                 torch.nn.Sequential(torch.nn.Linear(8, 3, bias=False),
                                                     torch.nn.Tanh()))
    return ours, theirs


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(shendu.ones(2, 3))
        self.register_buffer("count", shendu.zeros(1))
        self.register_buffer("scratch", shendu.zeros(2), persistent=False)
        self.child = nn.Linear(3, 2)
        self.scale = 2.0

    def forward(self, x):
        return self.child(x @ self.w.T) * self.scale


def test_registration_routes_by_type():
    net = Net()
    assert list(net._parameters) == ["w"] and list(net._modules) == ["child"]
    assert list(net._buffers) == ["count", "scratch"] and net.scale == 2.0
    assert [n for n, _ in net.named_parameters()] == ["w", "child.weight", "child.bias"]
    assert [n for n, _ in net.named_buffers()] == ["count", "scratch"]
    assert list(net.state_dict()) == ["w", "count", "child.weight", "child.bias"]
    net.w = None
    assert "w" not in dict(net.named_parameters())
    with pytest.raises(TypeError, match="cannot assign Tensor as parameter 'w'"):
        net.w = shendu.ones(2)
    with pytest.raises(TypeError, match="child module 'child'"):
        net.child = 3
    del net.child
    assert "child" not in net._modules
    with pytest.raises(AttributeError, match="no attribute 'child'"):
        net.child  # noqa: B018


def test_named_modules_and_state_dict_keys_equal_torch():
    ours, theirs = _pair()
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert [n for n, _ in ours.named_parameters()] == \
        [n for n, _ in theirs.named_parameters()]
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    for key in ours_sd:
        assert tuple(ours_sd[key].shape) == tuple(theirs_sd[key].shape), key
        assert str(ours_sd[key].dtype) == str(theirs_sd[key].dtype).replace("torch.", ""), key


def test_tied_weights_are_one_parameter():
    enc, dec = nn.Linear(5, 5), nn.Linear(5, 5)
    dec.weight = enc.weight
    model = nn.Sequential(enc, nn.ReLU(), dec)
    tenc, tdec = torch.nn.Linear(5, 5), torch.nn.Linear(5, 5)
    tdec.weight = tenc.weight
    tmodel = torch.nn.Sequential(tenc, torch.nn.ReLU(), tdec)
    assert [n for n, _ in model.named_parameters()] == \
        [n for n, _ in tmodel.named_parameters()] == ["0.weight", "0.bias", "2.bias"]
    assert len(list(model.parameters())) == 3
    # the state_dict still lists every slot, as torch's does
    assert list(model.state_dict()) == list(tmodel.state_dict())
    shared = nn.Linear(2, 2)
    twice = nn.Sequential(shared, shared)
    assert [n for n, _ in twice.named_modules()] == ["", "0"]
    assert len(list(twice.parameters())) == 2


def test_load_state_dict_roundtrip_and_torch_values():
    ours, theirs = _pair()
    result = ours.load_state_dict(theirs.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    for key, value in ours.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), theirs.state_dict()[key].numpy())
    other, _ = _pair()
    other.load_state_dict(ours.state_dict())
    np.testing.assert_array_equal(other[0].weight.detach().numpy(),
                                  ours[0].weight.detach().numpy())


def test_load_state_dict_strict_errors_list_every_key():
    ours, _ = _pair()
    sd = ours.state_dict()
    del sd["0.bias"]
    sd["extra.weight"] = shendu.zeros(1)
    sd["3.0.weight"] = shendu.zeros(3, 9)
    with pytest.raises(RuntimeError) as err:
        ours.load_state_dict(sd)
    message = str(err.value)
    assert 'Missing key(s) in state_dict: "0.bias".' in message
    assert 'Unexpected key(s) in state_dict: "extra.weight".' in message
    assert "size mismatch for 3.0.weight: copying a param with shape (3, 9) from " \
           "checkpoint, the shape in current model is (3, 8)." in message
    del sd["3.0.weight"]
    result = ours.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["0.bias", "3.0.weight"]
    assert result.unexpected_keys == ["extra.weight"]


def test_train_eval_return_self_and_recurse():
    ours, _ = _pair()
    assert ours.eval() is ours
    assert all(not m.training for m in ours.modules())
    assert ours.train() is ours
    assert all(m.training for m in ours.modules())
    assert ours[3].train(False) is ours[3]
    assert ours.training and not ours[3][0].training
    with pytest.raises(ValueError, match="mode must be a bool"):
        ours.train("eval")


def test_apply_visits_children_first_then_self():
    ours, theirs = _pair()
    seen, tseen = [], []
    assert ours.apply(lambda m: seen.append(type(m).__name__)) is ours
    theirs.apply(lambda m: tseen.append(type(m).__name__))
    assert seen == tseen


def test_zero_grad():
    model = nn.Linear(3, 2)
    model(shendu.ones(4, 3)).sum().backward()
    assert model.weight.grad is not None
    model.zero_grad(set_to_none=False)
    assert np.all(model.weight.grad.numpy() == 0) and model.weight.grad.shape == (2, 3)
    model.zero_grad()
    assert model.weight.grad is None and model.bias.grad is None


def test_to_dtype_casts_floats_only():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    model(shendu.ones(4, 3)).sum().backward()
    assert model.to(shendu.float64) is model
    assert all(p.dtype == shendu.float64 for p in model.parameters())
    assert model[0].weight.grad.dtype == shendu.float64
    assert model[1].running_var.dtype == shendu.float64
    assert model[1].num_batches_tracked.dtype == shendu.int64
    assert model(shendu.ones(4, 3, dtype=shendu.float64)).dtype == shendu.float64
    assert model.float()[0].weight.dtype == shendu.float32
    with pytest.raises(TypeError, match="floating point"):
        model.to(shendu.int64)


def test_forward_hooks_and_pre_hooks():
    model = nn.Linear(3, 2)
    calls = []

    def pre(module, args):
        calls.append(("pre", module))
        return (args[0] * 0,)

    def post(module, args, output):
        calls.append(("post", args[0].shape))
        return output + 1

    h_pre, h_post = model.register_forward_pre_hook(pre), model.register_forward_hook(post)
    out = model(shendu.ones(5, 3))
    expected = model.bias.detach().numpy() + 1
    np.testing.assert_allclose(out.detach().numpy(), np.broadcast_to(expected, (5, 2)))
    assert calls == [("pre", model), ("post", (5, 3))]
    h_pre.remove()
    h_post.remove()
    h_post.remove()  # removing twice is harmless, as in torch
    x = shendu.ones(5, 3)
    np.testing.assert_allclose(model(x).detach().numpy(),
                               (x @ model.weight.T + model.bias).detach().numpy())
    assert len(calls) == 2


def test_repr_matches_torch():
    ours, theirs = _pair()
    assert repr(ours) == repr(theirs)
    assert repr(nn.Sequential()) == repr(torch.nn.Sequential())


def test_containers():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    layers.append(nn.ReLU())
    assert len(layers) == 4 and isinstance(layers[-1], nn.ReLU)
    assert [n for n, _ in layers.named_parameters()][:2] == ["0.weight", "0.bias"]
    heads = nn.ModuleDict(OrderedDict(a=nn.Linear(2, 1), b=nn.Tanh()))
    assert list(heads) == ["a", "b"] and "a" in heads
    assert list(heads.state_dict()) == ["a.weight", "a.bias"]
    seq = nn.Sequential(OrderedDict(fc=nn.Linear(2, 3), act=nn.ReLU()))
    assert list(seq.state_dict()) == ["fc.weight", "fc.bias"]
    assert isinstance(seq[1:], nn.Sequential) and len(seq[1:]) == 1
    assert seq.get_submodule("fc") is seq[0]
