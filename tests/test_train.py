"""Trainer: the loop against a hand-written torch loop, hook order, stopping, evaluate /
predict, exact resume, the Newton closure path, and the metrics."""
import math

import numpy as np
import pytest
import torch

import shendu
from oracle import assert_close
from shendu import nn
from shendu.data import DataLoader, TensorDataset
from shendu.optim import SGD, Newton
from shendu.optim.lr_scheduler import MultiStepLR
from shendu.train import (Callback, EarlyStopping, LRScheduler, ModelCheckpoint, RunningMean,
                          Trainer, accuracy, confusion_matrix, top_k_accuracy)


class Affine(nn.Module):
    """y = x W^T + b with an optional random mask drawn from the default generator."""

    def __init__(self, w, b, drop=0.0):
        super().__init__()
        self.weight = nn.Parameter(shendu.tensor(w))
        self.bias = nn.Parameter(shendu.tensor(b))
        self.drop = drop

    def forward(self, x):
        if self.training and self.drop:
            keep = shendu.rand(*x.shape, dtype=x.dtype) >= self.drop
            x = x * keep.to(x.dtype) / (1.0 - self.drop)
        return x @ self.weight.T + self.bias


def cross_entropy(output, target):
    logp = output.log_softmax(1)
    return -logp.gather(1, target.unsqueeze(1)).mean()


def make_data(n=10, d=4, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.integers(0, c, size=n), rng.normal(size=(c, d)) * 0.5


def loader_of(X, y, batch_size=4, **kwargs):
    return DataLoader(TensorDataset(shendu.tensor(X), shendu.tensor(y)), batch_size=batch_size,
                      **kwargs)


def test_fit_matches_a_torch_loop_with_penalties_and_clipping():
    X, y, W = make_data()
    model = Affine(W, np.zeros(3))
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    trainer = Trainer(model, opt, cross_entropy, l1=0.01, l2=0.02, grad_clip_norm=0.5)
    history = trainer.fit(loader_of(X, y), epochs=2)

    tw = torch.tensor(W, requires_grad=True)
    tb = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    topt = torch.optim.SGD([tw, tb], lr=0.1, momentum=0.9)
    tX, ty = torch.tensor(X), torch.tensor(y)
    losses = []
    for _ in range(2):
        total = 0.0
        for i in range(0, 10, 4):
            topt.zero_grad()
            loss = torch.nn.functional.cross_entropy(tX[i:i + 4] @ tw.T + tb, ty[i:i + 4])
            # penalties cover weights (ndim >= 2) only, never the bias
            (loss + 0.01 * tw.abs().sum() + 0.02 * (tw ** 2).sum()).backward()
            torch.nn.utils.clip_grad_norm_([tw, tb], 0.5)
            topt.step()
            total += loss.item() * len(ty[i:i + 4])
        losses.append(total / 10)
    assert_close(model.weight.detach().numpy(), tw.detach().numpy(), what="weight")
    assert_close(model.bias.detach().numpy(), tb.detach().numpy(), what="bias")
    assert history.history["loss"] == pytest.approx(losses, rel=1e-12)
    assert history.epoch == [0, 1] and history.history["lr"] == [0.1, 0.1]
    assert sorted(history.history) == ["accuracy", "loss", "lr", "time"]


class Recorder(Callback):
    def __init__(self, stop_at=None):
        super().__init__()
        self.calls, self.stop_at = [], stop_at

    def __getattribute__(self, name):
        if name.startswith("on_"):
            def record(*args, **kwargs):
                self.calls.append((name,) + tuple(a for a in args if isinstance(a, int)))
                if (name, args[:1]) == ("on_train_batch_end", (self.stop_at,)):
                    self.trainer.stop_training = True
            return record
        return super().__getattribute__(name)


def test_hook_order_is_keras():
    X, y, W = make_data(n=8)
    rec = Recorder()
    trainer = Trainer(Affine(W, np.zeros(3)), None, cross_entropy, callbacks=[rec])
    trainer.optimizer = SGD(trainer.model.parameters(), lr=0.1)
    trainer.fit(loader_of(X, y), val_loader=loader_of(X, y, batch_size=8), epochs=2)
    epoch = lambda e: ([("on_epoch_begin", e)]  # noqa: E731
                       + [c for b in range(2) for c in (("on_train_batch_begin", b),
                                                        ("on_before_optimizer_step", b),
                                                        ("on_train_batch_end", b))]
                       + [("on_test_begin",), ("on_test_batch_begin", 0),
                          ("on_test_batch_end", 0), ("on_test_end",), ("on_epoch_end", e)])
    assert rec.calls == [("on_train_begin",)] + epoch(0) + epoch(1) + [("on_train_end",)]
    assert rec.params == {"epochs": 2, "initial_epoch": 0, "steps": 2}


def test_stop_training_from_a_batch_still_validates_then_ends():
    X, y, W = make_data(n=8)
    model = Affine(W, np.zeros(3))
    rec = Recorder(stop_at=0)
    trainer = Trainer(model, SGD(model.parameters(), lr=0.1), cross_entropy, callbacks=[rec])
    history = trainer.fit(loader_of(X, y), val_loader=loader_of(X, y), epochs=5)
    assert history.epoch == [0] and "val_loss" in history.history
    assert [c for c in rec.calls if c[0] == "on_train_batch_end"] == [("on_train_batch_end", 0)]


def test_evaluate_and_predict_in_eval_mode_without_graph():
    X, y, W = make_data(n=10)
    model = Affine(W, np.zeros(3), drop=0.5)
    trainer = Trainer(model, SGD(model.parameters(), lr=0.1), cross_entropy)
    logs = trainer.evaluate(loader_of(X, y))
    assert model.training
    logits = torch.tensor(X) @ torch.tensor(W).T
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor(y)).item()
    assert logs["loss"] == pytest.approx(expected, rel=1e-12)
    assert logs["accuracy"] == pytest.approx((logits.argmax(1).numpy() == y).mean())
    out = trainer.predict(shendu.tensor(X), batch_size=3)
    assert not out.requires_grad and out.shape == (10, 3)
    assert_close(out.numpy(), logits.numpy())
    assert_close(trainer.predict(loader_of(X, y)).numpy(), logits.numpy())
    with pytest.raises(ValueError, match="input, target"):
        trainer.evaluate([shendu.tensor(X)])


def run(tmp_path, epochs, stop_after=None, resume=False):
    """A tiny run whose every random stream matters: init, dropout, shuffling, scheduler."""
    shendu.manual_seed(7)
    X, y, _ = make_data(n=24, d=5, c=3, seed=1)
    W = shendu.randn(3, 5, dtype=shendu.float64).numpy()
    model = Affine(W, np.zeros(3), drop=0.3)
    opt = SGD(model.parameters(), lr=0.2, momentum=0.9)
    loader = loader_of(X, y, batch_size=5, shuffle=True, generator=shendu.Generator(seed=3))
    callbacks = [LRScheduler(MultiStepLR(opt, milestones=[2, 3], gamma=0.5)),
                 EarlyStopping(monitor="loss", patience=10),
                 ModelCheckpoint(tmp_path / "last.st")]
    trainer = Trainer(model, opt, cross_entropy, callbacks=callbacks)
    if resume:
        shendu.manual_seed(12345)  # the checkpoint must bring back the default stream
        history = trainer.fit(loader, epochs=epochs, resume_from=tmp_path / "last.st")
    else:
        history = trainer.fit(loader, epochs=stop_after or epochs)
    return model, history, opt


def test_resume_gives_exactly_the_uninterrupted_weights(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    full_model, full_history, full_opt = run(tmp_path / "a", 4)
    run(tmp_path / "b", 4, stop_after=2)
    model, history, opt = run(tmp_path / "b", 4, resume=True)
    assert np.array_equal(model.weight.detach().numpy(), full_model.weight.detach().numpy())
    assert np.array_equal(model.bias.detach().numpy(), full_model.bias.detach().numpy())
    assert history.epoch == [0, 1, 2, 3]
    assert history.history["loss"] == full_history.history["loss"]
    assert history.history["lr"] == full_history.history["lr"]
    assert opt.param_groups[0]["lr"] == full_opt.param_groups[0]["lr"]


def test_resume_rejects_a_foreign_file(tmp_path):
    shendu.save({"weights": shendu.zeros(2)}, tmp_path / "x.st")
    X, y, W = make_data()
    model = Affine(W, np.zeros(3))
    trainer = Trainer(model, SGD(model.parameters(), lr=0.1), cross_entropy)
    with pytest.raises(ValueError, match="not a Trainer checkpoint"):
        trainer.fit(loader_of(X, y), resume_from=tmp_path / "x.st")


def test_newton_gets_a_closure_and_solves_least_squares():
    rng = np.random.default_rng(0)
    X, w_true = rng.normal(size=(20, 3)), rng.normal(size=(1, 3))
    t = X @ w_true.T + 0.1 * rng.normal(size=(20, 1))
    model = Affine(np.zeros((1, 3)), np.zeros(1))
    opt = Newton(model.parameters(), mode="exact", damping=0.0)
    mse = lambda out, target: ((out - target) ** 2).mean()  # noqa: E731
    trainer = Trainer(model, opt, mse, metrics=())
    trainer.fit(loader_of(X, t, batch_size=20), epochs=1)
    A = np.hstack([X, np.ones((20, 1))])
    solution = torch.linalg.lstsq(torch.tensor(A), torch.tensor(t)).solution.numpy().ravel()
    assert_close(model.weight.detach().numpy().ravel(), solution[:3], rtol=1e-8)
    assert_close(model.bias.detach().numpy(), solution[3:], rtol=1e-8)


def test_metrics_against_torch():
    rng = np.random.default_rng(0)
    scores, target = rng.normal(size=(50, 7)), rng.integers(0, 7, size=50)
    s, t = shendu.tensor(scores), shendu.tensor(target)
    ts, tt = torch.tensor(scores), torch.tensor(target)
    assert accuracy(s, t) == pytest.approx((ts.argmax(1) == tt).double().mean().item())
    for k in (1, 3, 7):
        hits = (ts.topk(k, 1).indices == tt[:, None]).any(1).double().mean().item()
        assert top_k_accuracy(s, t, k) == pytest.approx(hits)
    cm = confusion_matrix(s, t)
    expected = torch.zeros(7, 7, dtype=torch.int64)
    expected.index_put_((tt, ts.argmax(1)), torch.ones(50, dtype=torch.int64), accumulate=True)
    assert cm.dtype == shendu.int64 and cm.numpy().tolist() == expected.tolist()
    assert confusion_matrix(shendu.tensor([0, 2]), shendu.tensor([0, 1])).tolist() == \
        [[1, 0, 0], [0, 0, 1], [0, 0, 0]]
    with pytest.raises(ValueError, match="do not match"):
        accuracy(s, shendu.tensor(target[:10]))
    with pytest.raises(ValueError, match="k must be"):
        top_k_accuracy(s, t, 8)


def test_running_mean_weights_by_count():
    m = RunningMean().update(1.0, 3).update(3.0, 1)
    assert m.value == 1.5 and m.count == 4
    assert math.isnan(RunningMean().value)
