"""LambdaLR, CyclicLR, SequentialLR and CosineAnnealingWarmRestarts against torch's sequences."""
import math

import numpy as np
import pytest
import torch

from shendu.optim import lr_scheduler
from test_lr_scheduler import compare, optimizers


class Warmup:
    """A callable object: LambdaLR's state_dict keeps its attributes (torch's rule)."""

    def __init__(self, steps):
        self.steps = steps

    def __call__(self, epoch):
        return min(1.0, (epoch + 1) / self.steps)


def seq_cosine(m, o):
    warm = m.LinearLR(o, start_factor=0.1, total_iters=5)
    cos = m.CosineAnnealingLR(o, T_max=20, eta_min=1e-3)
    return m.SequentialLR(o, [warm, cos], milestones=[5])


def seq_three(m, o):
    return m.SequentialLR(o, [m.ExponentialLR(o, gamma=0.9), m.StepLR(o, step_size=4, gamma=0.5),
                              m.MultiStepLR(o, milestones=[3, 9], gamma=0.2)],
                          milestones=[6, 15])


SCHEDULES = {
    "LambdaLR-fn": lambda m, o: m.LambdaLR(o, lambda e: 0.95 ** e),
    "LambdaLR-per-group": lambda m, o: m.LambdaLR(o, [lambda e: 1 / (e + 1),
                                                      lambda e: math.cos(e / 10)]),
    "LambdaLR-object": lambda m, o: m.LambdaLR(o, Warmup(7)),
    "CyclicLR": lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=5),
    "CyclicLR-triangular2": lambda m, o: m.CyclicLR(o, base_lr=[0.01, 0.002],
                                                    max_lr=[0.1, 0.05], step_size_up=4,
                                                    step_size_down=7, mode="triangular2"),
    "CyclicLR-exp_range": lambda m, o: m.CyclicLR(o, 0.001, 0.1, step_size_up=6,
                                                  mode="exp_range", gamma=0.97,
                                                  cycle_momentum=False),
    "CyclicLR-scale_fn": lambda m, o: m.CyclicLR(o, 0.001, 0.1, step_size_up=3,
                                                 scale_fn=lambda x: 0.5 * (1 + math.sin(x)),
                                                 scale_mode="iterations"),
    "CosineAnnealingWarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=7),
    "CosineAnnealingWarmRestarts-mult": lambda m, o: m.CosineAnnealingWarmRestarts(
        o, T_0=3, T_mult=2, eta_min=1e-4),
    "SequentialLR-warmup-cosine": seq_cosine,
    "SequentialLR-three": seq_three,
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_matches_torch(name):
    key = "momentum" if name.startswith("CyclicLR") and "exp_range" not in name else None
    compare(SCHEDULES[name], steps=60, momentum_key=key)


def test_cyclic_lr_cycles_adam_beta1_like_torch():
    compare(lambda m, o: m.CyclicLR(o, 0.001, 0.01, step_size_up=4, base_momentum=0.85,
                                    max_momentum=0.95), steps=30, kind="adam",
            momentum_key="betas")


def test_warm_restarts_with_fractional_epochs_match_torch():
    opt, topt = optimizers()
    sched = lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=4, T_mult=2)
    tsched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(topt, T_0=4, T_mult=2)
    for epoch in np.arange(0, 30, 0.37):
        sched.step(float(epoch))
        tsched.step(float(epoch))
        np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=1e-13)
        assert sched.T_i == tsched.T_i and sched.last_epoch == tsched.last_epoch
    with pytest.raises(ValueError, match="non-negative epoch"):
        sched.step(-1)


def test_state_dicts_resume_like_torch():
    for make in (SCHEDULES["LambdaLR-object"], seq_cosine,
                 SCHEDULES["CyclicLR-triangular2"]):
        opt, _ = optimizers()
        sched = make(lr_scheduler, opt)
        for _ in range(8):
            opt.step()
            sched.step()
        state = sched.state_dict()
        assert "optimizer" not in state
        opt2, _ = optimizers()
        sched2 = make(lr_scheduler, opt2)  # build everything, then load (torch's order)
        opt2.load_state_dict(opt.state_dict())
        sched2.load_state_dict(state)
        for _ in range(10):
            sched.step()
            sched2.step()
            assert sched2.get_last_lr() == sched.get_last_lr()
    opt, _ = optimizers()
    sched = lr_scheduler.LambdaLR(opt, Warmup(5))
    assert sched.state_dict()["lr_lambdas"] == [{"steps": 5}, {"steps": 5}]
    assert lr_scheduler.LambdaLR(opt, lambda e: 1.0).state_dict()["lr_lambdas"] == [None, None]


@pytest.mark.parametrize("make, match", [
    (lambda m, o: m.LambdaLR(o, [lambda e: 1.0]), "Expected 2 lr_lambdas|expected 2 lr_lambdas"),
    (lambda m, o: m.CyclicLR(o, 0.1, 1.0, mode="sine"), "mode"),
    (lambda m, o: m.CyclicLR(o, [0.1], 1.0), "same length as optimizer.param_groups"),
    (lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=0), "positive integer T_0"),
    (lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=0), "T_mult >= 1"),
    (lambda m, o: m.SequentialLR(o, [m.StepLR(o, 2)], milestones=[3]), "one more than"),
    (lambda m, o: m.SequentialLR(o, [m.ReduceLROnPlateau(o)], milestones=[]),
     "does not support `ReduceLROnPlateau`"),
])
def test_invalid_arguments_raise_like_torch(make, match):
    opt, topt = optimizers()
    with pytest.raises(ValueError, match=match):
        make(lr_scheduler, opt)
    with pytest.raises(ValueError, match=match):
        make(torch.optim.lr_scheduler, topt)
