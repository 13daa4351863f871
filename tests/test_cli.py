"""`shendu train` / `shendu eval` run in-process with tiny settings on the shipped subset."""
import csv
import importlib.util
import re

import pytest

from shendu import cli
from shendu.data import FashionMNIST

TINY = ["--epochs", "1", "--limit-train", "512", "--limit-test", "400", "--batch-size", "64"]


@pytest.fixture
def no_full_dataset(monkeypatch, tmp_path):
    """Hide the system copy of Fashion-MNIST so the CLI must fall back to the subset."""
    monkeypatch.setattr(FashionMNIST, "system_dirs", ())
    monkeypatch.delenv("SHENDU_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_train_falls_back_to_subset_and_writes_outputs(no_full_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--out", str(out)] + TINY) == 0
    stdout = capsys.readouterr().out
    assert "apt-get install dataset-fashion-mnist" in stdout and "--data-dir" in stdout
    assert "training on the Fashion-MNIST subset shipped with shendu" in stdout
    match = re.search(r"test accuracy: (\d\.\d{4}) \(loss [\d.]+\) on 400 test images", stdout)
    assert match and float(match.group(1)) > 0.2  # chance is 0.1
    for name in ("best.st", "last.st", "history.csv", "config.json"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert len(rows) == 1 and {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(rows[0])
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    assert (out / "curves.png").is_file() == has_matplotlib
    assert ("matplotlib is not installed" in stdout) != has_matplotlib

    # resume one more epoch from the last checkpoint, then evaluate the best checkpoint
    assert cli.main(["train", "--subset", "--out", str(out), "--resume", str(out / "last.st"),
                     "--epochs", "2", "--limit-train", "512", "--limit-test", "400"]) == 0
    assert len(list(csv.DictReader(open(out / "history.csv")))) == 2
    capsys.readouterr()
    assert cli.main(["eval", "--checkpoint", str(out / "best.st")]) == 0
    assert re.search(r"test accuracy: \d\.\d{4} .* on 400 test images", capsys.readouterr().out)


def test_help_lists_subcommands_and_bad_args_are_argparse_errors(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "train" in text and "eval" in text
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--bogus"])
    assert info.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "--optimizer", "lbfgs"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([])


def test_missing_mnist_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SHENDU_DATA", raising=False)
    code = cli.main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path),
                     "--out", str(tmp_path / "run")])
    assert code == 2 and "MNIST" in capsys.readouterr().err


def test_model_config_schedule_and_augmentation_reach_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--subset", "--out", str(out), "--model-config",
                     "activation=relu,pool=avg", "--lr-schedule", "cosine", "--augment",
                     "--epochs", "2", "--limit-train", "256", "--limit-test", "100"]) == 0
    rows = list(csv.DictReader((out / "history.csv").read_text().splitlines()))
    # the per-batch cosine schedule lowers the learning rate logged at each epoch start
    assert float(rows[0]["lr"]) == pytest.approx(1e-3) and float(rows[1]["lr"]) < 1e-3
    capsys.readouterr()
    # eval rebuilds the same (ReLU, average-pool) model from config.json
    assert cli.main(["eval", "--checkpoint", str(out / "best.st")]) == 0


def test_model_overrides_convert_to_the_configs_types():
    config = cli.TrainConfig(model="vgg11_small", model_config="width=0.25, dropout=0")
    assert cli.model_overrides(config) == {"width": 0.25, "dropout": 0.0}
    model = cli.build_model(config)
    assert model.features[0].out_channels == 16 and model.features[0].in_channels == 1


@pytest.mark.parametrize("text, message", [
    ("depth=3", "KEY one of"), ("activation", "KEY=VALUE"), ("input_size=big", "takes a int")])
def test_bad_model_config_is_a_clear_error(text, message, capsys):
    assert cli.main(["train", "--model-config", text]) == 2
    err = capsys.readouterr().err
    assert err.startswith("shendu train: --model-config") and message in err


def test_augmentation_keeps_validation_images_plain():
    config = cli.TrainConfig(subset=True, augment="shift+flip", val_size=100)
    train, val, _ = cli.load_data(config, log=lambda *_: None)
    plain_config = cli.TrainConfig(subset=True, val_size=100)
    plain_train, plain_val, _ = cli.load_data(plain_config, log=lambda *_: None)
    assert (val[3][0].numpy() == plain_val[3][0].numpy()).all()
    assert (train.indices == plain_train.indices).all()
    shifted = [not (train[i][0].numpy() == plain_train[i][0].numpy()).all() for i in range(20)]
    assert sum(shifted) >= 10  # most images are moved or mirrored


def test_monitor_val_accuracy_picks_the_best_checkpoint(tmp_path):
    out = tmp_path / "run"
    assert cli.main(["train", "--subset", "--out", str(out), "--monitor", "val_accuracy",
                     "--epochs", "2", "--patience", "2", "--limit-train", "256",
                     "--limit-test", "100"]) == 0
    from shendu import serialization
    rows = list(csv.DictReader((out / "history.csv").read_text().splitlines()))
    best = max(range(len(rows)), key=lambda i: float(rows[i]["val_accuracy"]))
    assert serialization.load(str(out / "best.st"))["epoch"] == best


def test_augment_kinds_and_digits_are_not_flipped(capsys):
    parser = cli.build_parser()
    assert parser.parse_args(["train", "--augment"]).augment == "auto"
    assert parser.parse_args(["train", "--augment", "flip"]).augment == "flip"
    assert parser.parse_args(["train"]).augment == "none"
    steps = cli.augmentation(cli.TrainConfig(dataset="mnist", augment="auto")).transforms
    assert [type(t).__name__ for t in steps] == ["RandomCrop", "Normalize"]
    steps = cli.augmentation(cli.TrainConfig(augment="flip")).transforms
    assert [type(t).__name__ for t in steps] == ["RandomHorizontalFlip", "Normalize"]
    assert cli.main(["train", "--dataset", "mnist", "--augment", "flip"]) == 2
    assert "use shift for mnist" in capsys.readouterr().err


def test_label_smoothing_reaches_the_training_loss(no_full_dataset, tmp_path, capsys):
    """The same seeded run with and without --label-smoothing: torch's smoothed cross-entropy
    is larger once predictions leave the uniform distribution, so the logged losses differ."""
    losses = {}
    for smoothing in ("0", "0.5"):
        out = tmp_path / f"run{smoothing}"
        assert cli.main(["train", "--out", str(out), "--label-smoothing", smoothing] + TINY) == 0
        losses[smoothing] = float(next(csv.DictReader(open(out / "history.csv")))["loss"])
    capsys.readouterr()
    assert losses["0.5"] > losses["0"] + 1e-3, losses
