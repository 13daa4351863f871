"""`shendu viz ...` and `shendu train --adversarial-eps` in-process, tiny, on the subset."""
import os

import numpy as np
import pytest
from PIL import Image

from shendu import cli

IMAGES = "/work/shared/data/images"
TINY = ["--subset", "--epochs", "1", "--limit-train", "256", "--limit-test", "100",
        "--model", "lenet5", "--model-config", "activation=relu"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A PGD-trained tiny run (so the --adversarial-* path is exercised too)."""
    out = tmp_path_factory.mktemp("run")
    assert cli.main(["train", "--out", str(out), "--adversarial-eps", "0.1",
                     "--adversarial-steps", "2", "--adversarial-ramp", "2"] + TINY) == 0
    return out


def png(path):
    with Image.open(path) as img:
        return np.asarray(img)


def test_viz_kernels_features_saliency_write_pngs(run, tmp_path, capsys):
    ckpt, out = str(run / "best.st"), str(tmp_path / "viz")
    assert cli.main(["viz", "kernels", "--checkpoint", ckpt, "--out", out]) == 0
    kernels = png(os.path.join(out, "kernels-model.features.0.png"))
    assert kernels.shape == (8 * (5 + 2), 8 * (6 * 6 + 1), 3)  # 6 filters, 5x5, padding 1, x8
    assert cli.main(["viz", "features", "--checkpoint", ckpt, "--out", out, "--subset",
                     "--layers", "features.1,features.3"]) == 0
    assert "features-model.features.1.png" in os.listdir(out)
    assert "zero fraction" in capsys.readouterr().out
    assert cli.main(["viz", "saliency", "--checkpoint", ckpt, "--out", out, "--subset",
                     "--count", "2", "--ig-steps", "4"]) == 0
    assert png(os.path.join(out, "saliency.png")).ndim == 3


def test_viz_adversarial_compares_two_checkpoints(run, tmp_path, capsys):
    out = str(tmp_path / "adv")
    assert cli.main(["viz", "adversarial", "--checkpoint", str(run / "best.st"), "--compare",
                     str(run / "last.st"), "--out", out, "--subset", "--limit", "20",
                     "--eps", "0,0.2", "--steps", "2", "--count", "2"]) == 0
    text = capsys.readouterr().out
    assert text.count("PGD-trained (eps 0.1) lenet5") == 2 and "eps 0.2:" in text
    assert {"robust-accuracy.png", "adversarial-examples.png"} <= set(os.listdir(out))


def test_viz_style_reports_losses(tmp_path, capsys):
    out = str(tmp_path / "style")
    assert cli.main(["viz", "style", "--content", f"{IMAGES}/astronaut.png", "--style",
                     f"{IMAGES}/coffee.png", "--out", out, "--size", "16", "--steps", "3"]) == 0
    text = capsys.readouterr().out
    assert "before: style" in text and "after: style" in text
    side = png(os.path.join(out, "style-side-by-side.png"))
    assert side.shape == (3 * (16 + 8), 3 * (3 * 16 + 16), 3)  # 3 images, padding 4, x3


@pytest.mark.parametrize("argv, message", [
    (["viz", "adversarial", "--checkpoint", "CKPT", "--eps", "0,x"], "--eps"),
    (["viz", "adversarial", "--checkpoint", "CKPT", "--eps", "0,2"], "--eps"),
    (["viz", "kernels", "--checkpoint", "CKPT", "--layer", "conv9"], "--layer"),
    (["viz", "kernels", "--checkpoint", "missing.st"], "no checkpoint"),
    (["viz", "style", "--content", "missing.png", "--style", "missing.png"], "no image"),
    (["viz", "style", "--content", "a", "--style", "b", "--network", "vgg19"], "--weights"),
    (["train", "--adversarial-eps", "3"], "--adversarial-eps"),
])
def test_viz_flags_fail_in_one_line_before_writing(run, tmp_path, capsys, argv, message):
    out = tmp_path / "never"
    argv = [str(run / "best.st") if a == "CKPT" else a for a in argv] + ["--out", str(out)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not out.exists()
