"""Callbacks fed scripted logs (the Keras test style): no training, no wall clock."""
import io
import math
import sys
import types

import pytest

import shendu
from shendu import nn
from shendu.optim import SGD
from shendu.optim.lr_scheduler import ReduceLROnPlateau, StepLR
from shendu.train import (Callback, CallbackList, CSVLogger, EarlyStopping, GradientClipping,
                          LRScheduler, ModelCheckpoint, ProgressBar, TensorBoard,
                          TerminateOnNaN)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(shendu.zeros(3))


class StubTrainer:
    """Just what callbacks touch: model, stop_training, save_checkpoint."""

    def __init__(self):
        self.model = Tiny()
        self.stop_training = False
        self.saved = []

    def save_checkpoint(self, path, epoch):
        self.saved.append((path, epoch))


def drive(callback, values, key="val_loss"):
    """Run epochs with scripted logs; the weights of epoch e are all equal to e."""
    trainer = StubTrainer()
    callback.set_trainer(trainer)
    callback.on_train_begin()
    last = None
    for epoch, value in enumerate(values):
        trainer.model.w.data = shendu.full((3,), float(epoch)).data
        callback.on_epoch_end(epoch, {key: value, "loss": 0.5})
        last = epoch
        if trainer.stop_training:
            break
    callback.on_train_end()
    return trainer, last


def test_early_stopping_scripted_restores_best_weights():
    es = EarlyStopping(patience=2, restore_best_weights=True)
    trainer, last = drive(es, [1.0, 0.9, 0.95, 0.96, 0.97])
    assert last == 3 and es.stopped_epoch == 3 and es.best_epoch == 1
    assert trainer.model.w.tolist() == [1.0, 1.0, 1.0]


def test_early_stopping_without_restore_keeps_last_weights():
    es = EarlyStopping(patience=1)
    trainer, last = drive(es, [1.0, 0.9, 0.95, 0.8])
    assert last == 2 and trainer.model.w.tolist() == [2.0, 2.0, 2.0]


def test_early_stopping_min_delta_and_max_mode():
    es = EarlyStopping(monitor="val_accuracy", mode="max", min_delta=0.05, patience=1)
    _, last = drive(es, [0.5, 0.52, 0.54, 0.9], key="val_accuracy")
    assert last == 1  # +0.02 is below min_delta, so epoch 1 is no improvement


def test_early_stopping_baseline_and_start_from_epoch():
    values = [0.9, 0.8, 0.7, 0.75, 0.4]
    _, last = drive(EarlyStopping(patience=2, baseline=0.5), values)
    assert last == 3  # Keras: epochs that improve but miss the baseline still count as waits
    _, last = drive(EarlyStopping(patience=2), values)
    assert last == 4
    es = EarlyStopping(patience=0, start_from_epoch=3)
    _, last = drive(es, [1.0, 2.0, 3.0, 4.0, 5.0])
    assert last == 4  # epochs 0-2 are ignored; 3 sets the best, 4 is worse


def test_early_stopping_resets_on_train_begin():
    es = EarlyStopping(patience=1)
    drive(es, [1.0, 2.0, 3.0])
    _, last = drive(es, [5.0, 4.0, 3.0, 2.0])
    assert last == 3 and es.stopped_epoch == 0 and es.best == 2.0


def test_mode_auto_needs_a_loss_key():
    with pytest.raises(ValueError, match="mode='max'"):
        EarlyStopping(monitor="val_accuracy")
    with pytest.raises(ValueError, match="mode must be"):
        ModelCheckpoint("x.st", mode="up")
    assert EarlyStopping(monitor="loss").mode == "min"


def test_missing_monitor_key_warns_with_available_keys():
    es = EarlyStopping(patience=0)
    with pytest.warns(RuntimeWarning, match="available keys: loss"):
        _, last = drive(es, [1.0, 2.0], key="other")
    assert last == 1 and es.stopped_epoch == 0


def test_model_checkpoint_best_only_and_path_format():
    mc = ModelCheckpoint("ckpt-{epoch:02d}.st", save_best_only=True)
    trainer, _ = drive(mc, [1.0, 0.8, 0.9, 0.7])
    assert trainer.saved == [("ckpt-01.st", 0), ("ckpt-02.st", 1), ("ckpt-04.st", 3)]
    mc = ModelCheckpoint("last.st")
    trainer, _ = drive(mc, [1.0, 2.0])
    assert trainer.saved == [("last.st", 0), ("last.st", 1)]


def test_terminate_on_nan_names_epoch_and_step(capsys):
    trainer = StubTrainer()
    cb = TerminateOnNaN()
    cb.set_trainer(trainer)
    cb.on_epoch_begin(2)
    cb.on_train_batch_end(4, {"loss": 0.3})
    assert not trainer.stop_training
    cb.on_train_batch_end(5, {"loss": math.inf})
    assert trainer.stop_training
    err = capsys.readouterr().err
    assert "epoch 2" in err and "step 5" in err


def test_lr_scheduler_per_epoch_per_batch_and_plateau():
    model = Tiny()
    opt = SGD(model.parameters(), lr=1.0)
    cb = LRScheduler(StepLR(opt, step_size=1, gamma=0.5))
    cb.on_train_batch_end(0, {"loss": 1.0})
    cb.on_epoch_end(0, {"loss": 1.0})
    assert opt.param_groups[0]["lr"] == 0.5
    cb = LRScheduler(StepLR(opt, step_size=1, gamma=0.5), per="batch")
    for batch in range(3):
        cb.on_train_batch_end(batch, {"loss": 1.0})
    cb.on_epoch_end(0, {})
    assert opt.param_groups[0]["lr"] == 0.5 * 0.125
    opt = SGD(model.parameters(), lr=1.0)
    cb = LRScheduler(ReduceLROnPlateau(opt, factor=0.1, patience=0))
    assert cb.monitor == "val_loss"
    for epoch, value in enumerate([1.0, 1.0]):
        cb.on_epoch_end(epoch, {"val_loss": value})
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="per must be"):
        LRScheduler(StepLR(opt, 1), per="step")


def test_gradient_clipping_norm_and_value():
    trainer = StubTrainer()
    w = trainer.model.w
    w.grad = shendu.tensor([3.0, 4.0, 0.0])
    cb = GradientClipping(max_norm=1.0)
    cb.set_trainer(trainer)
    cb.on_before_optimizer_step(0)
    assert cb.last_norm == pytest.approx(5.0)
    assert w.grad.tolist() == pytest.approx([0.6, 0.8, 0.0], rel=1e-5)
    w.grad = shendu.tensor([3.0, -4.0, 0.5])
    cb = GradientClipping(max_value=1.0)
    cb.set_trainer(trainer)
    cb.on_before_optimizer_step(0)
    assert w.grad.tolist() == [1.0, -1.0, 0.5]
    with pytest.raises(ValueError, match="max_norm"):
        GradientClipping()


def test_csv_logger_writes_and_appends(tmp_path):
    path = tmp_path / "h.csv"
    drive(CSVLogger(path), [1.0, 0.5])
    drive(CSVLogger(path, append=True), [0.25])
    assert path.read_text().splitlines() == ["epoch,loss,val_loss", "0,0.5,1.0", "1,0.5,0.5",
                                             "0,0.5,0.25"]


def test_progress_bar_plain_line_per_epoch():
    out = io.StringIO()
    bar = ProgressBar(file=out, use_tqdm=False)
    bar.set_params({"epochs": 2, "steps": 2})
    for epoch in range(2):
        bar.on_epoch_begin(epoch)
        for batch in range(2):
            bar.on_train_batch_end(batch, {"loss": 1.0, "size": 8})
        bar.on_epoch_end(epoch, {"loss": 1.0, "val_loss": 0.75, "lr": 0.01, "time": 1.0})
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2")
    assert "samples/s" in lines[0] and "loss 1.0000" in lines[0] and "val_loss 0.7500" in lines[0]


def test_callback_list_orders_and_checks_types():
    calls = []

    class Named(Callback):
        def __init__(self, name, order):
            super().__init__()
            self.name, self.order = name, order

        def on_epoch_end(self, epoch, logs=None):
            calls.append(self.name)

    cbs = CallbackList([Named("saver", 100), Named("a", 0), Named("bar", -100), Named("b", 0)])
    cbs.on_epoch_end(0, {})
    assert calls == ["bar", "a", "b", "saver"]
    with pytest.raises(TypeError, match="Callback instances"):
        CallbackList([object()])
    with pytest.raises(AttributeError):
        cbs.on_nothing()


def test_tensorboard_without_a_writer_package_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # None makes the import fail
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(ImportError, match="pip install tensorboardX"):
        TensorBoard(tmp_path)


def test_tensorboard_writes_epoch_and_batch_scalars(tmp_path, monkeypatch):
    events = []

    class FakeWriter:
        def __init__(self, log_dir):
            events.append(("open", log_dir))

        def add_scalar(self, tag, value, step):
            events.append((tag, value, step))

        def flush(self):
            pass

        def close(self):
            events.append(("close",))

    monkeypatch.setitem(sys.modules, "tensorboardX",
                        types.SimpleNamespace(SummaryWriter=FakeWriter))
    cb = TensorBoard(tmp_path, log_batches=True)
    cb.on_train_begin()
    cb.on_train_batch_end(0, {"loss": 2.0})
    cb.on_train_batch_end(1, {"loss": 1.0})
    cb.on_epoch_end(0, {"loss": 1.5, "val_loss": 1.25})
    cb.on_train_end()
    assert events == [("open", str(tmp_path)), ("batch/loss", 2.0, 0), ("batch/loss", 1.0, 1),
                      ("epoch/loss", 1.5, 0), ("epoch/val_loss", 1.25, 0), ("close",)]
