"""Learning-rate schedules against torch.optim.lr_scheduler over many steps."""
import numpy as np
import pytest
import torch

import shendu
from shendu.optim import SGD, Adam, lr_scheduler


def optimizers(kind="sgd", lrs=(0.1, 0.02)):
    ours = [shendu.tensor([1.0], requires_grad=True) for _ in lrs]
    theirs = [torch.tensor([1.0], requires_grad=True) for _ in lrs]
    if kind == "sgd":
        make, tmake, extra = SGD, torch.optim.SGD, dict(momentum=0.9)
    else:
        make, tmake, extra = Adam, torch.optim.Adam, {}
    return (make([{"params": [p], "lr": lr} for p, lr in zip(ours, lrs)], **extra),
            tmake([{"params": [p], "lr": lr} for p, lr in zip(theirs, lrs)], **extra))


def compare(make, steps=60, kind="sgd", momentum_key=None):
    opt, topt = optimizers(kind)
    sched = make(lr_scheduler, opt)
    tsched = make(torch.optim.lr_scheduler, topt)
    for group in opt.param_groups:
        assert "initial_lr" in group
    for step in range(steps):
        np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=1e-13,
                                   atol=0, err_msg=f"step {step}")
        assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr()
        if momentum_key:
            ours = [np.ravel(g[momentum_key])[0] for g in opt.param_groups]
            theirs = [np.ravel(g[momentum_key])[0] for g in topt.param_groups]
            np.testing.assert_allclose(ours, theirs, rtol=1e-13, err_msg=f"momentum {step}")
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
    return sched, tsched


SCHEDULES = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=7, gamma=0.5),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[5, 12, 12, 30], gamma=0.3),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.93),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=13, eta_min=1e-3),
    "CosineAnnealingLR-default": lambda m, o: m.CosineAnnealingLR(o, T_max=20),
    "LinearLR": lambda m, o: m.LinearLR(o),
    "LinearLR-args": lambda m, o: m.LinearLR(o, start_factor=0.1, end_factor=0.5,
                                             total_iters=17),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_matches_torch(name):
    compare(SCHEDULES[name])


@pytest.mark.parametrize("kind, key", [("sgd", "momentum"), ("adam", "betas")])
@pytest.mark.parametrize("kwargs", [
    dict(max_lr=0.5, total_steps=50),
    dict(max_lr=[0.5, 0.1], epochs=5, steps_per_epoch=10, pct_start=0.25,
         anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0),
    dict(max_lr=0.5, total_steps=50, three_phase=True, base_momentum=0.8, max_momentum=0.9),
])
def test_one_cycle_matches_torch_including_momentum(kind, key, kwargs):
    compare(lambda m, o: m.OneCycleLR(o, **kwargs), steps=50, kind=kind, momentum_key=key)


def test_one_cycle_without_momentum_cycling_and_errors():
    opt, _ = optimizers()
    sched = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=3, cycle_momentum=False)
    assert opt.param_groups[0]["momentum"] == 0.9
    for _ in range(3):
        sched.step()
    with pytest.raises(ValueError, match="tried to step 4 times"):
        sched.step()
    with pytest.raises(ValueError, match="total_steps OR"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(ValueError, match="anneal_strategy"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=5, anneal_strategy="exp")
    with pytest.raises(ValueError, match="same length"):
        lr_scheduler.OneCycleLR(opt, max_lr=[1.0], total_steps=5)


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(mode="max", factor=0.5, patience=2, threshold=0.05, cooldown=2, min_lr=[0.01, 0.004]),
    dict(factor=0.3, patience=1, threshold=0.1, threshold_mode="abs", min_lr=0.005, eps=1e-3),
    dict(mode="max", patience=0, threshold_mode="abs"),
])
def test_reduce_on_plateau_matches_torch(kwargs):
    rng = np.random.default_rng(0)
    metrics = np.concatenate([np.linspace(1.0, 0.5, 10), 0.5 + 0.02 * rng.random(40),
                              np.linspace(0.5, 0.1, 10), np.full(20, 0.1)])
    opt, topt = optimizers()
    sched = lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    for epoch, metric in enumerate(metrics):
        sched.step(metric)
        tsched.step(metric)
        assert sched.get_last_lr() == tsched.get_last_lr(), f"epoch {epoch}"
        assert sched.num_bad_epochs == tsched.num_bad_epochs
        assert sched.best == tsched.best
    assert sched.get_last_lr() != [0.1, 0.02]  # the schedule did reduce


def test_reduce_on_plateau_validates():
    opt, _ = optimizers()
    with pytest.raises(ValueError, match="factor should be < 1.0"):
        lr_scheduler.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode 'up' is unknown"):
        lr_scheduler.ReduceLROnPlateau(opt, mode="up")
    with pytest.raises(ValueError, match="threshold mode 'log' is unknown"):
        lr_scheduler.ReduceLROnPlateau(opt, threshold_mode="log")
    with pytest.raises(TypeError, match="is not an Optimizer"):
        lr_scheduler.StepLR(object(), step_size=2)


def test_state_dict_round_trip_resumes_the_schedule():
    opt, _ = optimizers()
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    for _ in range(4):
        sched.step()
    state = sched.state_dict()
    assert "optimizer" not in state and state["last_epoch"] == 4

    opt2, _ = optimizers()
    opt2.load_state_dict(opt.state_dict())
    sched2 = lr_scheduler.CosineAnnealingLR(opt2, T_max=10, last_epoch=3)
    sched2.load_state_dict(state)
    for _ in range(8):
        sched.step()
        sched2.step()
        assert sched2.get_last_lr() == sched.get_last_lr()


def test_resuming_without_initial_lr_raises():
    opt, _ = optimizers()
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(opt, step_size=2, last_epoch=5)


def test_linear_lr_validates_factors():
    opt, _ = optimizers()
    with pytest.raises(ValueError, match="starting multiplicative factor"):
        lr_scheduler.LinearLR(opt, start_factor=0.0)
    with pytest.raises(ValueError, match="ending multiplicative factor"):
        lr_scheduler.LinearLR(opt, end_factor=1.5)
