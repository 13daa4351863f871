"""shendu.optim against torch.optim: the same tiny MLP, 20 steps, then compare parameters."""
import json

import numpy as np
import pytest
import torch

import shendu
from oracle import assert_close
from shendu.optim import SGD, Adam, AdamW, Optimizer, RMSprop

SHAPES = {"W1": (5, 4), "b1": (5,), "W2": (3, 5), "b2": (3,)}
RTOL, ATOL = 1e-9, 1e-11


def make_params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(dtype) * 0.5 for s in SHAPES.values()]
    ours = [shendu.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    return ours, theirs


def batch(step, dtype=np.float64):
    rng = np.random.default_rng(100 + step)
    return rng.standard_normal((8, 4)).astype(dtype), rng.standard_normal((8, 3)).astype(dtype)


def loss_fn(params, x, y):
    """Mean squared error of a tanh MLP; works on shendu and torch tensors alike."""
    w1, b1, w2, b2 = params
    y_hat = (x @ w1.T + b1).tanh() @ w2.T + b2
    return ((y_hat - y) ** 2).mean()


def train(opt, params, steps, lib, dtype=np.float64, start=0):
    wrap = shendu.tensor if lib == "shendu" else torch.tensor
    for step in range(start, start + steps):
        x, y = batch(step, dtype)
        opt.zero_grad()
        loss_fn(params, wrap(x), wrap(y)).backward()
        opt.step()


def assert_params_close(ours, theirs, rtol=RTOL, atol=ATOL):
    for i, (p, t) in enumerate(zip(ours, theirs)):
        assert_close(p, t, rtol=rtol, atol=atol, what=f"param {i}")


CASES = [
    (SGD, torch.optim.SGD, dict(lr=0.1)),
    (SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
    (SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.5)),
    (SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (SGD, torch.optim.SGD, dict(lr=0.1, weight_decay=0.1)),
    (SGD, torch.optim.SGD, dict(lr=0.05, maximize=True)),
    (SGD, torch.optim.SGD, dict(lr=0.01, momentum=0.8, nesterov=True, weight_decay=0.05,
                                maximize=True)),
    (Adam, torch.optim.Adam, dict(lr=0.01)),
    (Adam, torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
    (Adam, torch.optim.Adam, dict(lr=0.01, weight_decay=0.1)),
    (Adam, torch.optim.Adam, dict(lr=0.01, amsgrad=True)),
    (Adam, torch.optim.Adam, dict(lr=0.01, maximize=True)),
    (Adam, torch.optim.Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.1, maximize=True)),
    (Adam, torch.optim.Adam, dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    (AdamW, torch.optim.AdamW, dict(lr=0.01)),
    (AdamW, torch.optim.AdamW, dict(lr=0.01, weight_decay=0.3, amsgrad=True)),
    (AdamW, torch.optim.AdamW, dict(lr=0.01, weight_decay=0.0, maximize=True)),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.01)),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.01, centered=True)),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.01, momentum=0.9)),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.1,
                                        momentum=0.5, centered=True)),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.01, maximize=True, centered=True)),
]


@pytest.mark.parametrize("cls, torch_cls, kwargs", CASES,
                         ids=[f"{c.__name__}-{k}" for c, _, k in CASES])
def test_matches_torch_over_20_steps(cls, torch_cls, kwargs):
    ours, theirs = make_params()
    opt, topt = cls(ours, **kwargs), torch_cls(theirs, **kwargs)
    train(opt, ours, 20, "shendu")
    train(topt, theirs, 20, "torch")
    assert_params_close(ours, theirs)
    assert opt.state[ours[0]].keys() == topt.state[theirs[0]].keys()
    assert set(opt.param_groups[0]) <= set(topt.param_groups[0])  # torch's names


@pytest.mark.parametrize("cls, torch_cls, kwargs", [
    (SGD, torch.optim.SGD, dict(momentum=0.9)),
    (Adam, torch.optim.Adam, dict(amsgrad=True)),
    (RMSprop, torch.optim.RMSprop, dict(centered=True)),
])
def test_param_groups_with_different_lrs(cls, torch_cls, kwargs):
    ours, theirs = make_params()

    def groups(p):
        return [{"params": p[:2]}, {"params": p[2:], "lr": 0.003, "weight_decay": 0.1}]

    opt, topt = cls(groups(ours), lr=0.05, **kwargs), torch_cls(groups(theirs), lr=0.05, **kwargs)
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.003]
    assert opt.param_groups[0]["weight_decay"] == 0
    train(opt, ours, 20, "shendu")
    train(topt, theirs, 20, "torch")
    assert_params_close(ours, theirs)


def test_changing_lr_between_steps_is_honoured():
    ours, theirs = make_params()
    opt, topt = Adam(ours, lr=0.01), torch.optim.Adam(theirs, lr=0.01)
    for k in range(5):
        opt.param_groups[0]["lr"] = topt.param_groups[0]["lr"] = 0.01 / (k + 1)
        train(opt, ours, 2, "shendu", start=2 * k)
        train(topt, theirs, 2, "torch", start=2 * k)
    assert_params_close(ours, theirs)


def test_closure_is_evaluated_and_returned():
    ours, theirs = make_params()
    opt, topt = SGD(ours, lr=0.1, momentum=0.9), torch.optim.SGD(theirs, lr=0.1, momentum=0.9)
    x, y = batch(0)

    def closure():
        opt.zero_grad()
        loss = loss_fn(ours, shendu.tensor(x), shendu.tensor(y))
        loss.backward()
        return loss

    def tclosure():
        topt.zero_grad()
        loss = loss_fn(theirs, torch.tensor(x), torch.tensor(y))
        loss.backward()
        return loss

    for _ in range(5):
        with shendu.no_grad():  # the closure re-enables gradients itself
            loss = opt.step(closure)
        tloss = topt.step(tclosure)
        assert abs(loss.item() - tloss.item()) < 1e-12
    assert_params_close(ours, theirs)


@pytest.mark.parametrize("cls, kwargs", [
    (SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (Adam, dict(lr=0.01, amsgrad=True)),
    (AdamW, dict(lr=0.01)),
    (RMSprop, dict(lr=0.01, momentum=0.5, centered=True)),
])
def test_state_dict_round_trip_continues_identically(cls, kwargs):
    ours, _ = make_params()
    opt = cls([{"params": ours[:2]}, {"params": ours[2:], "lr": 0.02}], **kwargs)
    train(opt, ours, 10, "shendu")
    state = opt.state_dict()
    assert sorted(state["state"]) == [0, 1, 2, 3]
    assert [g["params"] for g in state["param_groups"]] == [[0, 1], [2, 3]]
    json.dumps(state["param_groups"])  # hyper-parameters are plain numbers, bools, tuples
    for buffers in state["state"].values():
        for value in buffers.values():
            assert isinstance(value, (shendu.Tensor, int, float))

    clones = [shendu.tensor(p.detach().numpy(), requires_grad=True) for p in ours]
    fresh = cls([{"params": clones[:2]}, {"params": clones[2:]}], **kwargs)
    fresh.load_state_dict(state)
    assert fresh.param_groups[1]["lr"] == 0.02
    assert fresh.param_groups[1]["params"][0] is clones[2]
    train(opt, ours, 10, "shendu", start=10)
    train(fresh, clones, 10, "shendu", start=10)
    for p, q in zip(ours, clones):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())


def test_loads_a_torch_state_dict_and_continues_like_torch():
    ours, theirs = make_params()
    topt = torch.optim.Adam(theirs, lr=0.01, amsgrad=True)
    train(topt, theirs, 10, "torch")
    tstate = topt.state_dict()
    state = {"state": {k: {n: v.numpy() for n, v in s.items()} for k, s in
                       tstate["state"].items()},
             "param_groups": tstate["param_groups"]}
    ours = [shendu.tensor(t.detach().numpy(), requires_grad=True) for t in theirs]
    opt = Adam(ours, lr=0.01, amsgrad=True)
    opt.load_state_dict(state)
    assert opt.state[ours[0]]["step"] == 10
    train(opt, ours, 10, "shendu", start=10)
    train(topt, theirs, 10, "torch", start=10)
    assert_params_close(ours, theirs)


def test_stateless_sgd_keeps_no_state_like_torch():
    ours, theirs = make_params()
    opt, topt = SGD(ours, lr=0.1), torch.optim.SGD(theirs, lr=0.1)
    train(opt, ours, 2, "shendu")
    train(topt, theirs, 2, "torch")
    assert opt.state_dict()["state"] == {} == topt.state_dict()["state"]
    group, tgroup = opt.state_dict()["param_groups"][0], topt.state_dict()["param_groups"][0]
    assert set(group) <= set(tgroup)  # same keys, less torch's foreach/fused/... flags


def test_load_state_dict_validates_group_structure():
    ours, _ = make_params()
    opt = SGD(ours, lr=0.1)
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})
    with pytest.raises(ValueError, match="doesn't match the size"):
        opt.load_state_dict({"state": {}, "param_groups": [{"lr": 0.1, "params": [0]}]})


def test_zero_grad_set_to_none_and_to_zero():
    ours, _ = make_params()
    opt = SGD(ours, lr=0.1)
    x, y = batch(0)
    loss_fn(ours, shendu.tensor(x), shendu.tensor(y)).backward()
    grads = [p.grad for p in ours]
    opt.zero_grad(set_to_none=False)
    for p, g in zip(ours, grads):
        assert p.grad is g and not p.grad.numpy().any()
    opt.zero_grad()
    assert all(p.grad is None for p in ours)


def test_zero_grad_detaches_a_graph_carrying_grad():
    w = shendu.tensor([1.0, 2.0], requires_grad=True)
    (w ** 3).sum().backward(create_graph=True)
    assert w.grad.requires_grad
    SGD([w]).zero_grad(set_to_none=False)
    assert not w.grad.requires_grad and w.grad.tolist() == [0.0, 0.0]


def test_params_without_grad_are_skipped():
    ours, theirs = make_params()
    opt, topt = Adam(ours, lr=0.1), torch.optim.Adam(theirs, lr=0.1)
    for params, o, lib in ((ours, opt, shendu), (theirs, topt, torch)):
        x, _ = batch(0)
        (lib.tensor(x) @ params[0].T + params[1]).sum().backward()
        o.step()
    assert ours[2] not in opt.state and len(opt.state) == 2
    assert_params_close(ours, theirs)


def test_step_bumps_version_so_a_stale_graph_refuses_backward():
    w = shendu.tensor([1.0, 2.0], requires_grad=True)
    opt = SGD([w], lr=0.1)
    (w * w).sum().backward()
    stale = (w * w).sum()
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        stale.backward()


@pytest.mark.parametrize("cls, kwargs, message", [
    (SGD, dict(lr=-1), "Invalid learning rate: -1"),
    (SGD, dict(momentum=-0.1), "Invalid momentum value: -0.1"),
    (SGD, dict(weight_decay=-1e-3), "Invalid weight_decay value: -0.001"),
    (SGD, dict(nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
    (SGD, dict(momentum=0.9, dampening=0.1, nesterov=True), "Nesterov momentum requires"),
    (Adam, dict(lr=-0.5), "Invalid learning rate: -0.5"),
    (Adam, dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
    (Adam, dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    (Adam, dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (AdamW, dict(weight_decay=-0.01), "Invalid weight_decay value: -0.01"),
    (RMSprop, dict(alpha=-0.5), "Invalid alpha value: -0.5"),
    (RMSprop, dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    (RMSprop, dict(momentum=-1.0), "Invalid momentum value: -1.0"),
])
def test_invalid_hyper_parameters_raise(cls, kwargs, message):
    ours, _ = make_params()
    with pytest.raises(ValueError, match=message):
        cls(ours, **kwargs)


def test_invalid_params_raise():
    w = shendu.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([])
    with pytest.raises(TypeError, match="iterable of Tensors"):
        SGD(w)
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        SGD([w, 3.0])
    with pytest.raises(ValueError, match="non-leaf"):
        SGD([w * 2])
    with pytest.raises(ValueError, match="more than one parameter group"):
        SGD([{"params": [w]}, {"params": [w]}])
    with pytest.raises(TypeError, match="ordered collections"):
        SGD({w})


def test_add_param_group_and_named_params():
    ours, _ = make_params()
    opt = Adam([("w1", ours[0]), ("b1", ours[1])], lr=0.01)
    opt.add_param_group({"params": [("w2", ours[2]), ("b2", ours[3])], "lr": 0.1})
    assert opt.param_groups[1]["betas"] == (0.9, 0.999)
    assert opt.state_dict()["param_groups"][1]["param_names"] == ["w2", "b2"]
    with pytest.raises(ValueError, match="with/without names"):
        opt.add_param_group({"params": [shendu.tensor([1.0], requires_grad=True)]})


def test_base_class_requires_an_update_rule():
    w = shendu.tensor([1.0], requires_grad=True)
    opt = Optimizer([w], dict(lr=0.1))
    (w * 2).sum().backward()
    with pytest.raises(NotImplementedError):
        opt.step()


@pytest.mark.parametrize("cls, torch_cls, kwargs", [c for c in CASES if len(c[2]) > 2],
                         ids=[f"{c[0].__name__}-{c[2]}" for c in CASES if len(c[2]) > 2])
def test_float32_params_stay_float32(cls, torch_cls, kwargs):
    ours, theirs = make_params(np.float32)
    opt, topt = cls(ours, **kwargs), torch_cls(theirs, **kwargs)
    train(opt, ours, 5, "shendu", np.float32)
    train(topt, theirs, 5, "torch", np.float32)
    for p in ours:
        assert p.dtype == shendu.float32
        assert all(v.dtype == shendu.float32 for v in opt.state[p].values()
                   if isinstance(v, shendu.Tensor))
    assert_params_close(ours, theirs, rtol=1e-5, atol=1e-6)
