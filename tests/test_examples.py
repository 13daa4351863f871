"""The torch-spelled scripts in examples/ run for a few batches (``import shendu as torch``)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
MNIST = Path("/work/shared/data/mnist")
SHAKESPEARE = Path("/work/shared/data/tinyshakespeare.txt")
needs_mnist = pytest.mark.skipif(not MNIST.is_dir(), reason="the project's shared MNIST copy "
                                 "is not on this machine")


def run(script, *args, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO), MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_examples_use_only_torch_spellings():
    for path in EXAMPLES.rglob("*.py"):
        text = path.read_text()
        assert "import torch" not in text.replace("import shendu as torch", ""), path
        assert "shendu." not in text.replace("import shendu.", "").replace(
            "from shendu.", ""), f"{path}: names shendu outside its imports"


def _losses(output):
    return [float(line.rsplit("Loss:", 1)[1]) for line in output.splitlines() if "Loss:" in line]


@needs_mnist
def test_mnist_cnn_adadelta_steplr(tmp_path):
    import shendu
    args = ["--dry-run", "--epochs", "2", "--batch-size", "16", "--test-batch-size", "50",
            "--data-dir", MNIST]
    out = run("mnist.py", *args, "--save-model", "--save-path", tmp_path / "cnn.pt",
              cwd=tmp_path)
    assert out.count("Train Epoch:") == 2 and "Test set: Average loss:" in out
    state = shendu.load(tmp_path / "cnn.pt")
    assert state["conv1.weight"].shape == (32, 1, 3, 3) and state["fc2.bias"].shape == (10,)
    # worker processes load the same batches in the same order: the same losses
    with_workers = run("mnist.py", *args, "--num-workers", "2", cwd=tmp_path)
    assert _losses(with_workers) == _losses(out)


@needs_mnist
def test_vae_writes_sample_and_reconstruction_grids(tmp_path):
    from PIL import Image
    out = run("vae.py", "--dry-run", "--epochs", "1", "--batch-size", "32", "--data-dir", MNIST,
              "--results", tmp_path / "results", cwd=tmp_path)
    assert "====> Test set loss:" in out
    sample = Image.open(tmp_path / "results" / "sample_1.png")
    assert sample.size == (8 * 30 + 2, 8 * 30 + 2)  # 64 digits, 8 per row, 2 px padding
    recon = Image.open(tmp_path / "results" / "reconstruction_1.png")
    assert recon.size == (8 * 30 + 2, 2 * 30 + 2)  # 8 originals above 8 reconstructions


@pytest.mark.parametrize("model", ["LSTM", "GRU", "RNN_TANH", "Transformer"])
def test_word_language_model_trains_saves_and_reloads_the_whole_model(tmp_path, model):
    text = SHAKESPEARE.read_text()[:30000] if SHAKESPEARE.exists() else \
        "the quick brown fox jumps over the lazy dog\n" * 400
    lines = text.splitlines(keepends=True)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    cut1, cut2 = int(0.8 * len(lines)), int(0.9 * len(lines))
    for name, part in (("train", lines[:cut1]), ("valid", lines[cut1:cut2]),
                       ("test", lines[cut2:])):
        (corpus / f"{name}.txt").write_text("".join(part))
    out = run("word_language_model/main.py", "--data", corpus, "--model", model, "--dry-run",
              "--epochs", "2", "--emsize", "16", "--nhid", "16", "--save",
              tmp_path / "model.pt", cwd=tmp_path)
    assert out.count("end of epoch") == 2 and "End of training" in out
    assert (tmp_path / "model.pt").stat().st_size > 0


def test_time_sequence_prediction_with_lbfgs(tmp_path):
    out = run("time_sequence_prediction.py", "--steps", "1", "--length", "12", "--future", "4",
              "--max-iter", "2", "--data", tmp_path / "traindata.pt", "--out", tmp_path / "plots",
              cwd=tmp_path)
    assert out.count("loss:") >= 3 and "test loss:" in out
    assert (tmp_path / "plots" / "predict0.png").exists()
