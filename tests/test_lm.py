"""shendu.lm and `shendu lm` (N5.3): the LM loss, pre-training plumbing and checkpoints,
fine-tuning plumbing (head swap, freezing, a lower body learning rate), the speaker task, and
the CLI run in-process with tiny settings. These check the plumbing, not the N5.3 claim."""
import math
import os

import numpy as np
import pytest
import torch

import shendu
from oracle import assert_close
from shendu.cli import main
from shendu.data.text import CharVocab, load_text
from shendu.lm import (LMConfig, SequenceClassifier, finetune, finetune_param_groups,
                       lm_loss, load_pretrained, pretrain, speaker_lines, speaker_task)
from shendu.lm.pretrain import WarmupCosine
from shendu.models import GPT, CharRNN, GPTConfig

TINY_GPT = dict(block_size=16, batch_size=4, n_layer=1, n_head=2, n_embd=16)


@pytest.fixture(scope="module")
def text():
    return load_text()


def test_lm_loss_matches_torch():
    rng = np.random.default_rng(0)
    logits, targets = rng.standard_normal((3, 5, 7)), rng.integers(0, 7, (3, 5))
    ours = lm_loss(shendu.tensor(logits), shendu.from_numpy(targets))
    theirs = torch.nn.functional.cross_entropy(torch.from_numpy(logits).reshape(-1, 7),
                                               torch.from_numpy(targets).reshape(-1))
    assert_close(ours, theirs)
    with pytest.raises(ValueError, match=r"lm_loss: expected logits \(B, T, V\)"):
        lm_loss(shendu.tensor(logits), shendu.from_numpy(targets[:, :4]))


def test_warmup_cosine_schedule():
    sched = WarmupCosine(lr=1.0, min_lr=0.1, warmup_steps=4, max_steps=14)
    assert sched.lr_at(0) == pytest.approx(0.2) and sched.lr_at(3) == pytest.approx(0.8)
    assert sched.lr_at(4) == pytest.approx(1.0) and sched.lr_at(9) == pytest.approx(0.55)
    assert sched.lr_at(14) == pytest.approx(0.1) and sched.lr_at(100) == pytest.approx(0.1)


@pytest.mark.parametrize("model", ["gpt", "lstm"])
def test_pretrain_writes_checkpoints_that_reload(tmp_path, text, model):
    config = LMConfig(model=model, max_steps=6, eval_interval=3, eval_batches=2,
                      hidden_size=16, embed_dim=8, out=str(tmp_path), **TINY_GPT)
    result = pretrain(config, text=text[:20000], log=lambda *a: None)
    assert result["steps"] == 6
    history = result["history"].history
    assert history["step"] == [3, 6] and len(history["val_loss"]) == 2
    assert result["best_val_loss"] == min(history["val_loss"]) < math.log(65)
    for name in ("config.json", "history.csv", "best.st", "model.st"):
        assert os.path.exists(tmp_path / name), name
    reloaded, vocab, meta = load_pretrained(tmp_path / "model.st")
    assert vocab.chars == result["vocab"].chars and meta["step"] == 6
    assert type(reloaded) is (GPT if model == "gpt" else CharRNN)
    idx = vocab.encode("ROMEO: hi").reshape(1, -1)
    np.testing.assert_array_equal(reloaded(idx).detach().numpy(),
                                  result["model"](idx).detach().numpy())
    resumable = shendu.load(tmp_path / "best.st")  # the Trainer checkpoint carries meta too
    assert {"model", "optimizer", "meta"} <= set(resumable)


def test_pretrain_time_limit_stops_early(tmp_path, text):
    config = LMConfig(max_steps=50, eval_interval=25, eval_batches=1, time_limit=1e-9,
                      out=str(tmp_path), **TINY_GPT)
    assert pretrain(config, text=text[:5000], log=lambda *a: None)["steps"] == 1
    with pytest.raises(ValueError, match="unknown model 'cnn'"):
        pretrain(LMConfig(model="cnn"), text=text[:5000])


def _tiny_classifier(num_classes=3, pad_id=0):
    body = GPT(GPTConfig(block_size=16, vocab_size=11, n_layer=1, n_head=2, n_embd=8))
    return SequenceClassifier(body, num_classes, pad_id=pad_id)


def test_classifier_head_swap_and_padding_is_ignored():
    shendu.manual_seed(0)
    model = _tiny_classifier()
    assert model.head.in_features == 8 and model.head.out_features == 3
    line = np.array([[3, 5, 7, 2, 9]])
    padded = np.concatenate([line, np.zeros((1, 6), dtype=line.dtype)], 1)
    np.testing.assert_allclose(model(shendu.from_numpy(padded)).detach().numpy(),
                               model(shendu.from_numpy(line)).detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    assert model(shendu.from_numpy(np.ones((4, 7), dtype=np.int64))).shape == (4, 3)
    with pytest.raises(TypeError, match="features"):
        SequenceClassifier(shendu.nn.Linear(3, 3), 2)


def _labelled(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return (shendu.from_numpy(rng.integers(1, 11, (n, 10))),
            shendu.from_numpy(rng.integers(0, 3, n)))


def test_frozen_body_is_unchanged_and_the_head_learns():
    model = _tiny_classifier()
    body_before = {k: v.clone() for k, v in model.body.state_dict().items()}
    head_before = model.head.weight.detach().clone()
    run = finetune(model, _labelled(), _labelled(seed=1), epochs=2, freeze_body=True,
                   batch_size=8)
    assert run["history"].epoch == [0, 1] and 0.0 <= run["test_accuracy"] <= 1.0
    for key, value in model.body.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), body_before[key].numpy(), err_msg=key)
    assert all(not p.requires_grad for p in model.body.parameters())
    assert np.abs(model.head.weight.detach().numpy() - head_before.numpy()).max() > 1e-4


def test_lower_body_learning_rate_group():
    model = _tiny_classifier()
    groups = finetune_param_groups(model, lr=1e-2, body_lr=1e-4)
    assert [g["lr"] for g in groups] == [1e-2, 1e-4]
    assert len(groups[0]["params"]) == 2 and len(groups[1]["params"]) == \
        len(list(model.body.parameters()))
    body_before = [p.detach().numpy().copy() for p in groups[1]["params"]]
    head_before = [p.detach().numpy().copy() for p in groups[0]["params"]]
    opt = shendu.optim.AdamW(groups, weight_decay=0.0)
    x, y = _labelled()
    shendu.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    # Adam's first step moves each coordinate by lr * g / (|g| + eps): at most the group's lr
    body_step = max(np.abs(p.detach().numpy() - b).max()
                    for p, b in zip(groups[1]["params"], body_before))
    head_step = max(np.abs(p.detach().numpy() - b).max()
                    for p, b in zip(groups[0]["params"], head_before))
    assert body_step == pytest.approx(1e-4, rel=1e-2)
    assert head_step == pytest.approx(1e-2, rel=1e-2)
    assert len(finetune_param_groups(model, 1e-2, body_lr=0.0)) == 1


def _synthetic_play():
    speeches = []
    for s in range(40):
        name = "ABC"[s % 3] * 4
        lines = [f"{name.lower()} speech {s} line {i} says a thing" for i in range(3 + s % 2)]
        speeches.append(f"{name}:\n" + "\n".join(lines) + "\n")
    return "\n".join(speeches)


def test_speaker_task_splits_by_speech_and_balances_test():
    text = _synthetic_play()
    lines = speaker_lines(text)
    assert len(lines) == sum(3 + s % 2 for s in range(40)) and lines[0][0] == "AAAA"
    task = speaker_task(text, CharVocab(text), num_speakers=3, train_per_class=6,
                        max_len=40, region=(0.0, 1.0))
    assert task.speakers == sorted(task.speakers, key=lambda n: -sum(x[0] == n for x in lines))
    assert task.x_train.shape == (18, 40) and task.y_train.tolist() == sorted([0, 1, 2] * 6)
    counts = np.bincount(task.y_test.numpy())
    assert len(set(counts)) == 1 and counts[0] > 0  # balanced
    vocab = CharVocab(text)

    def speeches(x):
        return {vocab.decode(row).split(" line")[0] for row in x.numpy()}
    assert not speeches(task.x_train) & speeches(task.x_test)  # no passage on both sides
    assert (task.x_train.numpy()[:, -1] == task.pad_id).all()  # lines are padded at the end


def test_cli_train_sample_and_finetune_demo(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["lm", "train", "--model", "gpt", "--max-steps", "4", "--eval-interval", "2",
                 "--eval-batches", "1", "--block-size", "16", "--batch-size", "4",
                 "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--sample-chars", "20",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "step      4 |" in printed and "best validation loss" in printed
    assert main(["lm", "sample", "--checkpoint", str(out / "model.st"), "--prompt", "ROMEO:",
                 "--max-new-tokens", "12", "--top-k", "5", "--seed", "0"]) == 0
    sample = capsys.readouterr().out
    assert sample.startswith("ROMEO:") and len(sample.rstrip("\n")) >= 6
    assert main(["lm", "finetune-demo", "--checkpoint", str(out / "model.st"),
                 "--num-speakers", "3", "--train-per-class", "4", "--epochs", "1",
                 "--repeats", "1"]) == 0
    report = capsys.readouterr().out
    assert "PETRUCHIO" in report and "test accuracy (mean of 1): fine-tuned" in report
