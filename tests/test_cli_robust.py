"""`shendu train`, `eval` and `lm train` refuse bad flags in one line before writing anything,
stop cleanly on Ctrl-C, record what they used, resume reproducibly and write TensorBoard
events (issue 15). Every run is tiny and lives in tmp_path (the working directory too)."""
import argparse
import csv
import glob
import json
import os
import re
import shutil
import struct
import sys
import types

import numpy as np
import pytest

from shendu import cli, serialization
from shendu.data import FashionMNIST
from shendu.lm.pretrain import StepBudget
from shendu.train import Trainer

MNIST_DIR = "/work/shared/data/mnist"
TEXT = "/work/shared/data/tinyshakespeare.txt"
TINY = ["--epochs", "1", "--limit-train", "128", "--limit-test", "50", "--val-size", "100"]
TINY_LM = ["--max-steps", "4", "--eval-interval", "2", "--eval-batches", "1", "--block-size",
           "8", "--batch-size", "4", "--model", "lstm", "--hidden-size", "16", "--embed-dim",
           "8", "--sample-chars", "0"]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Run every command from an empty folder: a default runs/ must never appear in the repo."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    assert not (tmp_path / "runs").exists()


def one_line_error(capsys):
    """The error line: the last on stderr (the progress bar of a finished epoch may precede
    it), starting with 'shendu <command>:', with no traceback anywhere."""
    err = capsys.readouterr().err.strip()
    assert err and "Traceback" not in err, err
    line = err.splitlines()[-1]
    assert line.startswith("shendu "), err
    return line


@pytest.mark.parametrize("flags, message", [
    (["--epochs", "-1"], "--epochs must be at least 1, got -1"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--limit-train", "0"], "--limit-train must be at least 1, got 0"),
    (["--limit-test", "0"], "--limit-test must be at least 1, got 0"),
    (["--val-size", "0"], "--val-size must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--seed", "-1"], "--seed must be >= 0, got -1"),
    (["--patience", "-1"], "--patience must be >= 0, got -1"),
    (["--lr", "-0.1"], "--lr must be > 0"),
    (["--weight-decay", "-1"], "--weight-decay must be >= 0"),
    (["--label-smoothing", "1"], "--label-smoothing must be in [0, 1), got 1.0"),
    (["--label-smoothing", "nan"], "--label-smoothing must be in [0, 1), got nan"),
    (["--data-dir", "does-not-exist"], "--data-dir does-not-exist: no such folder"),
    (["--resume", "missing.st"], "--resume missing.st: no such file"),
    (["--model", "alexnet"], "alexnet cannot run on these images"),
    (["--model", "vgg11"], "vgg11_small and vgg16_small are its 28x28 versions"),
    (["--model", "gpt"], "gpt is a language model"),
    (["--model", "char_rnn"], "char_rnn is a language model"),
    (["--model", "nope"], "unknown model 'nope'; models that fit: "),
    (["--model-config", "input_size=32"], "--model lenet5 cannot run on 1x28x28 images"),
    (["--dataset", "mnist", "--subset"], "--subset: the shipped subset is Fashion-MNIST's"),
    (["--dataset", "mnist", "--augment", "flip"], "use shift for mnist"),
])
def test_bad_train_flags_are_one_line_errors_and_write_nothing(flags, message, in_tmp,
                                                               capsys):
    assert cli.main(["train", "--out", "run"] + flags) == 2
    assert message in one_line_error(capsys)
    assert os.listdir(in_tmp) == []


def test_a_data_dir_without_the_data_does_not_fall_back(in_tmp, capsys):
    (in_tmp / "empty").mkdir()
    assert cli.main(["train", "--out", "run", "--data-dir", "empty"] + TINY) == 2
    assert "IDX files" in one_line_error(capsys)
    assert sorted(os.listdir(in_tmp)) == ["empty"]


def test_help_gives_every_flag_a_meaning():
    parser = cli.build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    lm_subs = next(a for a in subs.choices["lm"]._actions
                   if isinstance(a, argparse._SubParsersAction))
    for name, sub in [("train", subs.choices["train"]), ("eval", subs.choices["eval"]),
                      ("lm", subs.choices["lm"])] + [(f"lm {n}", p)
                                                     for n, p in lm_subs.choices.items()]:
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help and not action.help.startswith("default"), \
                    (name, action.option_strings)


def test_resume_of_another_models_checkpoint_is_refused_before_writing(in_tmp, capsys):
    assert cli.main(["train", "--subset", "--out", "run"] + TINY) == 0
    before = (in_tmp / "run" / "config.json").read_text()
    assert cli.main(["train", "--subset", "--model", "mlp", "--resume", "run/last.st"]
                    + TINY) == 2
    assert "is a checkpoint of --model lenet5, not mlp" in one_line_error(capsys)
    assert (in_tmp / "run" / "config.json").read_text() == before


def test_records_say_what_the_run_used(no_full_dataset_env, in_tmp):
    assert cli.main(["train", "--out", "run"] + TINY[:-2] + ["--val-size", "5000"]) == 0
    used = json.loads((in_tmp / "run" / "config.json").read_text())
    # the full set is missing: the subset (9,000 images) was used, so 900 validation images
    assert used["subset"] is True and used["val_size"] == 900 and used["lr"] == 1e-3


@pytest.fixture
def no_full_dataset_env(monkeypatch, tmp_path):
    monkeypatch.setattr(FashionMNIST, "system_dirs", ())
    monkeypatch.delenv("SHENDU_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_eval_of_a_copied_checkpoint_needs_no_config_json(in_tmp, capsys, monkeypatch):
    assert cli.main(["train", "--dataset", "mnist", "--data-dir", MNIST_DIR, "--out", "run"]
                    + TINY) == 0
    expected = re.search(r"test accuracy: (\d\.\d{4})", capsys.readouterr().out).group(1)
    (in_tmp / "elsewhere").mkdir()
    shutil.copy(in_tmp / "run" / "best.st", in_tmp / "elsewhere" / "best.st")
    shutil.rmtree(in_tmp / "run")
    monkeypatch.chdir(in_tmp / "elsewhere")
    assert cli.main(["eval", "--checkpoint", "best.st"]) == 0
    printed = capsys.readouterr().out
    assert f"test accuracy: {expected}" in printed and "test images of mnist" in printed
    assert cli.main(["eval", "--checkpoint", "best.st", "--model", "resnet20"]) == 2
    assert "is a checkpoint of --model lenet5, not resnet20" in one_line_error(capsys)
    assert cli.main(["eval", "--checkpoint", "missing.st"]) == 2
    assert "no such file" in one_line_error(capsys)


def test_eval_of_a_language_model_checkpoint_points_to_lm_sample(in_tmp, capsys):
    assert cli.main(["lm", "train", "--data", TEXT, "--out", "lm"] + TINY_LM) == 0
    capsys.readouterr()
    assert cli.main(["eval", "--checkpoint", "lm/model.st"]) == 2
    assert "use `shendu lm sample --checkpoint lm/model.st`" in one_line_error(capsys)


def test_ctrl_c_stops_cleanly_and_says_where_the_last_checkpoint_is(in_tmp, capsys,
                                                                   monkeypatch):
    real_epoch = Trainer._train_epoch

    def interrupted_in_the_second_epoch(self, loader, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return real_epoch(self, loader, epoch)

    monkeypatch.setattr(Trainer, "_train_epoch", interrupted_in_the_second_epoch)
    flags = ["train", "--subset"] + TINY[2:] + ["--epochs", "3"]
    assert cli.main(flags + ["--out", "run"]) == 130
    err = one_line_error(capsys)
    last = os.path.join("run", "last.st")
    assert err == f"shendu train: interrupted; the last checkpoint is {last} (resume with " \
                  f"--resume {last})"
    assert serialization.load(last)["epoch"] == 0
    monkeypatch.setattr(Trainer, "_train_epoch", real_epoch)
    assert cli.main(flags + ["--resume", last]) == 0  # into the same folder
    assert len(serialization.load(last)["history"]["epoch"]) == 3


def test_resume_with_augmentation_is_reproducible(in_tmp):
    flags = ["train", "--subset", "--augment", "--limit-train", "128", "--val-size", "100",
             "--limit-test", "50", "--batch-size", "32"]
    assert cli.main(flags + ["--out", "straight", "--epochs", "2"]) == 0
    assert cli.main(flags + ["--out", "split", "--epochs", "1"]) == 0
    assert cli.main(flags + ["--out", "split", "--epochs", "2", "--resume",
                             "split/last.st"]) == 0
    straight = serialization.load("straight/last.st")
    resumed = serialization.load("split/last.st")
    assert set(resumed["rng"]) == {"default", "loader", "data0"}  # data0: the augmentation's
    for key, value in straight["model"].items():
        np.testing.assert_array_equal(resumed["model"][key].numpy(), value.numpy(), key)


def read_scalars(folder):
    """{tag: [(step, value)]} from the TensorBoard event files in ``folder`` (TFRecords of
    Event protos: length, length CRC, payload, payload CRC)."""
    from tensorboardX.proto import event_pb2
    scalars = {}
    for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
        data, pos = open(path, "rb").read(), 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_tensorboard_flag_writes_event_files_for_train_and_lm_train(in_tmp, capsys):
    pytest.importorskip("tensorboardX", reason="the 'tensorboard' extra is not installed")
    assert cli.main(["train", "--subset", "--out", "run", "--tensorboard", "--epochs", "2"]
                    + TINY[2:]) == 0
    scalars = read_scalars("run/tensorboard")
    rows = list(csv.DictReader(open("run/history.csv")))
    assert [step for step, _ in scalars["epoch/val_loss"]] == [0, 1]
    assert [v for _, v in scalars["epoch/val_loss"]] == pytest.approx(
        [float(r["val_loss"]) for r in rows], rel=1e-6)
    assert cli.main(["lm", "train", "--data", TEXT, "--out", "lm", "--tensorboard"]
                    + TINY_LM) == 0
    lm_scalars = read_scalars("lm/tensorboard")
    assert len(lm_scalars["epoch/val_loss"]) == 2 and "epoch/lr" in lm_scalars


def test_lm_train_shows_progress_logs_the_printed_lr_and_takes_device_after(in_tmp, capsys,
                                                                            monkeypatch):
    pytest.importorskip("tqdm", reason="the 'progress' extra is not installed")
    from shendu.train import ProgressBar
    postfixes, real = [], ProgressBar.on_train_batch_end

    def recording(self, batch, logs=None):  # tqdm draws at most every 0.1 s: read the bar
        real(self, batch, logs)
        postfixes.append(self._bar.postfix)

    monkeypatch.setattr(ProgressBar, "on_train_batch_end", recording)
    assert cli.main(["lm", "train", "--data", TEXT, "--out", "lm", "--device", "cpu"]
                    + TINY_LM) == 0
    captured = capsys.readouterr()
    assert len(postfixes) == 4 and all(re.fullmatch(r"loss=\d\.\d{4}, tokens_s=\d+", p)
                                       for p in postfixes), postfixes
    printed = re.findall(r"lr (\d\.\d\de-\d\d)", captured.out)
    logged = [float(r["lr"]) for r in csv.DictReader(open("lm/history.csv"))]
    assert len(printed) == len(logged) == 2
    assert [float(p) for p in printed] == pytest.approx(logged, rel=5e-3)
    assert json.load(open("lm/config.json"))["device"] == "cpu"
    assert cli.main(["lm", "train", "--seed", "-1"] + TINY_LM) == 2
    assert "seed must be >= 0" in one_line_error(capsys)
    assert not os.path.exists("runs")


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_time_limit_keeps_room_for_the_last_evaluation(monkeypatch):
    """Steps of 1 s and an evaluation of 3 s (as measured): with a 10 s limit, training must
    stop at 7 s so that the final evaluation ends by 10 s instead of 13 s."""
    clock = FakeClock()
    # the module's own clock only (shendu.lm.pretrain, the attribute, is the function)
    monkeypatch.setattr(sys.modules["shendu.lm.pretrain"], "time",
                        types.SimpleNamespace(perf_counter=clock))
    budget = StepBudget(max_steps=100, time_limit=10.0, eval_batches=4)

    class FakeTrainer:
        steps, stop_training = 0, False

    budget.trainer = FakeTrainer()
    budget.on_train_begin()
    stopped_at = None
    for step in range(20):
        budget.on_train_batch_begin(step)
        clock.now += 1.0
        budget.trainer.steps += 1
        budget.on_train_batch_end(step)
        if step == 1:  # an evaluation after two steps, taking 3 s
            budget.on_test_begin()
            clock.now += 3.0
            budget.on_epoch_end(0)
        if budget.trainer.stop_training:
            stopped_at = clock.now
            break
    assert stopped_at == 7.0
    # before any evaluation the reserve is eval_batches forward passes at half a step each
    fresh = StepBudget(max_steps=100, time_limit=3.0, eval_batches=4)
    fresh.trainer = FakeTrainer()
    clock.now = 0.0
    fresh.on_train_begin()
    fresh.on_train_batch_begin(0)
    clock.now += 1.0
    fresh.on_train_batch_end(0)
    assert fresh.trainer.stop_training  # 1 s + 4 * 0.5 s reaches 3 s
