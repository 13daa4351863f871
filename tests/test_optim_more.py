"""Adadelta, Adagrad, Adamax, NAdam and RAdam against torch.optim: 20 steps, float64, ~1e-9."""
import json

import numpy as np
import pytest
import torch

import shendu
from shendu import optim
from test_optim import assert_params_close, make_params, train

CASES = [
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-4)),
    ("Adadelta", dict(weight_decay=0.1, maximize=True)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1)),
    ("Adagrad", dict(lr=0.05, weight_decay=0.1, eps=1e-6, maximize=True)),
    ("Adamax", dict()),
    ("Adamax", dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6)),
    ("Adamax", dict(lr=0.01, weight_decay=0.1, maximize=True)),
    ("NAdam", dict()),
    ("NAdam", dict(lr=0.01, momentum_decay=0.01, betas=(0.85, 0.99))),
    ("NAdam", dict(lr=0.01, weight_decay=0.1)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", dict()),
    ("RAdam", dict(lr=0.01, betas=(0.9, 0.9))),  # beta2 small: rho_t > 5 from step 6 on
    ("RAdam", dict(lr=0.01, weight_decay=0.1, eps=1e-6)),
    ("RAdam", dict(lr=0.01, betas=(0.8, 0.8), weight_decay=0.1, decoupled_weight_decay=True,
                   maximize=True)),
]


@pytest.mark.parametrize("name, kwargs", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_matches_torch_over_20_steps(name, kwargs):
    ours, theirs = make_params()
    opt, topt = getattr(optim, name)(ours, **kwargs), getattr(torch.optim, name)(theirs, **kwargs)
    train(opt, ours, 20, "shendu")
    train(topt, theirs, 20, "torch")
    assert_params_close(ours, theirs)
    assert opt.state[ours[0]].keys() == topt.state[theirs[0]].keys()
    assert set(opt.param_groups[0]) <= set(topt.param_groups[0])  # torch's names
    for key, value in opt.defaults.items():
        assert topt.defaults[key] == value, key  # torch's defaults


@pytest.mark.parametrize("name", ["Adadelta", "Adagrad", "Adamax", "NAdam", "RAdam"])
def test_param_groups_and_state_dict_round_trip(name):
    ours, theirs = make_params()

    def groups(p):
        return [{"params": p[:2]}, {"params": p[2:], "lr": 0.003, "weight_decay": 0.1}]

    opt, topt = getattr(optim, name)(groups(ours)), getattr(torch.optim, name)(groups(theirs))
    train(opt, ours, 10, "shendu")
    train(topt, theirs, 10, "torch")
    assert_params_close(ours, theirs)
    state = opt.state_dict()
    json.dumps(state["param_groups"])
    clones = [shendu.tensor(p.detach().numpy(), requires_grad=True) for p in ours]
    fresh = getattr(optim, name)(groups(clones))
    fresh.load_state_dict(state)
    train(opt, ours, 10, "shendu", start=10)
    train(fresh, clones, 10, "shendu", start=10)
    train(topt, theirs, 10, "torch", start=10)
    for p, q in zip(ours, clones):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
    assert_params_close(clones, theirs)


def test_adagrad_has_state_from_construction_like_torch():
    ours, theirs = make_params()
    opt = optim.Adagrad(ours, initial_accumulator_value=0.5)
    topt = torch.optim.Adagrad(theirs, initial_accumulator_value=0.5)
    assert len(opt.state) == len(topt.state) == 4
    np.testing.assert_array_equal(opt.state[ours[1]]["sum"].numpy(),
                                  topt.state[theirs[1]]["sum"].numpy())


@pytest.mark.parametrize("name", ["Adamax", "NAdam", "RAdam"])
def test_float32_params_stay_float32(name):
    ours, theirs = make_params(np.float32)
    opt = getattr(optim, name)(ours, lr=0.01, weight_decay=0.1)
    topt = getattr(torch.optim, name)(theirs, lr=0.01, weight_decay=0.1)
    train(opt, ours, 5, "shendu", np.float32)
    train(topt, theirs, 5, "torch", np.float32)
    assert all(p.dtype == shendu.float32 for p in ours)
    assert_params_close(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, kwargs, message", [
    ("Adadelta", dict(rho=1.5), "Invalid rho value: 1.5"),
    ("Adagrad", dict(lr_decay=-1), "Invalid lr_decay value: -1"),
    ("Adagrad", dict(initial_accumulator_value=-1), "Invalid initial_accumulator_value"),
    ("Adamax", dict(betas=(1.0, 0.9)), "Invalid beta parameter at index 0: 1.0"),
    ("NAdam", dict(momentum_decay=-1), "Invalid momentum_decay value: -1"),
    ("RAdam", dict(eps=-1), "Invalid epsilon value: -1"),
])
def test_invalid_hyper_parameters_raise_like_torch(name, kwargs, message):
    ours, theirs = make_params()
    with pytest.raises(ValueError, match=message):
        getattr(optim, name)(ours, **kwargs)
    with pytest.raises(ValueError, match=message):
        getattr(torch.optim, name)(theirs, **kwargs)
