"""Generative pre-training: next-token prediction on raw text, no human labels (N5.3).

``pretrain(LMConfig(...))`` trains a GPT or a CharRNN on a character corpus (default tiny
Shakespeare, split 90/10 into contiguous training and validation text) with the
``shendu.train.Trainer``: one Trainer "epoch" is ``eval_interval`` optimizer steps followed by
the validation loss on fixed held-out windows, so early stopping, checkpoints and the CSV log
work per evaluation. Checkpoints carry what is needed to rebuild the model and its
vocabulary (``meta``), so ``load_pretrained`` needs nothing else. Concept: N5.3.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass

from shendu import backend
from shendu.data.text import CharVocab, SequenceBatches, load_text, train_val_split
from shendu.models.char_rnn import CELLS, CharRNN
from shendu.models.gpt import GPT, GPTConfig
from shendu.nn import functional as F
from shendu.train.callbacks import Callback
from shendu.train.trainer import Trainer

MODELS = ("gpt",) + tuple(CELLS)  # gpt, lstm, gru, rnn
DEFAULT_LR = {"gpt": 1e-3, "lstm": 2e-3, "gru": 2e-3, "rnn": 1e-3}


@dataclass
class LMConfig:
    """Everything ``pretrain`` (and ``shendu lm train``) needs; each field is a CLI flag."""

    model: str = "gpt"  # gpt | lstm | gru | rnn
    data: str | None = None  # None: tiny Shakespeare
    val_fraction: float = 0.1
    block_size: int = 64
    batch_size: int = 32
    lr: float | None = None  # None: DEFAULT_LR[model]
    min_lr: float | None = None  # end of the cosine decay; None: lr / 10
    warmup_steps: int = 100
    weight_decay: float = 0.1  # GPT matrices only (configure_optimizers); 0 for the RNNs
    grad_clip: float = 1.0
    max_steps: int = 5000
    eval_interval: int = 250
    eval_batches: int = 20
    patience: int = 4  # evaluations without a better val_loss before stopping
    time_limit: float | None = None  # seconds of training
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    embed_dim: int = 64
    hidden_size: int = 256
    num_layers: int = 1
    seed: int = 0
    out: str | None = None  # None: runs/lm-<model>-<timestamp>
    nproc: int = 1  # processes (MPI ranks) sharing each batch; > 1 re-runs under mpiexec
    device: str = "cpu"
    tensorboard: bool = False  # also write TensorBoard event files to <out>/tensorboard


# what each LMConfig field means, for ``shendu lm train --help``
HELP = {
    "model": "the network: a GPT, or a character RNN with LSTM, GRU or plain RNN cells",
    "data": "text file to learn from (default: tiny Shakespeare)",
    "val_fraction": "fraction of the text (its end) held out for validation",
    "block_size": "characters of context per training sequence",
    "batch_size": "sequences per optimizer step",
    "lr": "peak learning rate (default: 1e-3 for gpt and rnn, 2e-3 for lstm and gru)",
    "min_lr": "learning rate at the end of the cosine decay (default: lr / 10)",
    "warmup_steps": "steps of linear learning-rate warm-up",
    "weight_decay": "AdamW weight decay of the GPT's matrices (0 for the RNNs)",
    "grad_clip": "clip the gradient norm to this (0: no clipping)",
    "max_steps": "optimizer steps to train for at most",
    "eval_interval": "optimizer steps between validation losses (and checkpoints)",
    "eval_batches": "held-out batches each validation loss averages",
    "patience": "evaluations without a better validation loss before stopping",
    "time_limit": "stop after this many seconds, the last evaluation included",
    "n_layer": "GPT: Transformer blocks", "n_head": "GPT: attention heads per block",
    "n_embd": "GPT: width of the token vectors", "dropout": "dropout probability",
    "embed_dim": "RNN: width of the character embedding",
    "hidden_size": "RNN: width of the hidden state", "num_layers": "RNN: stacked layers",
    "seed": "seed of initialisation, batch sampling and dropout",
    "out": "output folder (default: runs/lm-<model>-<time>)",
    "device": "where to compute",
    "nproc": "processes (MPI ranks) sharing each batch; more than 1 re-runs under mpiexec",
    "tensorboard": "also write TensorBoard event files to <out>/tensorboard (needs the "
                   "'tensorboard' extra: pip install 'shendu[tensorboard]')",
}


def lm_loss(logits, targets):
    """Mean next-token cross-entropy in nats per token.

    Shape:
        logits (B, T, V), targets (B, T) int64 -> scalar
    """
    if logits.ndim != 3 or tuple(targets.shape) != tuple(logits.shape[:2]):
        raise ValueError(f"lm_loss: expected logits (B, T, V) and targets (B, T), got "
                         f"{tuple(logits.shape)} and {tuple(targets.shape)}")
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def model_spec(config: LMConfig, vocab_size: int) -> dict:
    """The JSON description ``build_model`` turns back into a model."""
    if config.model not in MODELS:
        raise ValueError(f"lm: unknown model {config.model!r}; choose from {MODELS}")
    if config.model == "gpt":
        fields = GPTConfig(block_size=config.block_size, vocab_size=vocab_size,
                           n_layer=config.n_layer, n_head=config.n_head, n_embd=config.n_embd,
                           dropout=config.dropout, bias=config.bias)
        return {"arch": "gpt", "config": asdict(fields)}
    return {"arch": "char_rnn", "config": dict(
        vocab_size=vocab_size, embed_dim=config.embed_dim, hidden_size=config.hidden_size,
        num_layers=config.num_layers, cell=config.model, dropout=config.dropout)}


def build_model(spec: dict):
    """A fresh GPT or CharRNN from ``model_spec``'s description."""
    if spec.get("arch") == "gpt":
        return GPT(GPTConfig(**spec["config"]))
    if spec.get("arch") == "char_rnn":
        return CharRNN(**spec["config"])
    raise ValueError(f"lm: unknown model description {spec!r}")


def save_pretrained(path, model, vocab, spec, **extra):
    """Write weights plus ``meta`` = {spec, vocab characters, extra} with ``shendu.save``."""
    from shendu.serialization import save
    meta = {"spec": spec, "vocab": vocab.chars, **extra}
    save({"model": model.state_dict(), "meta": meta}, path)


def load_pretrained(path):
    """(model, vocab, meta) from a file of ``save_pretrained`` or a ``pretrain`` checkpoint."""
    from shendu.serialization import load
    state = load(path)
    if not isinstance(state, dict) or "model" not in state or "meta" not in state:
        raise ValueError(f"load_pretrained: {path!r} is not a language-model checkpoint (it "
                         f"needs 'model' and 'meta' entries)")
    model = build_model(state["meta"]["spec"])
    model.load_state_dict(state["model"])
    return model, CharVocab(state["meta"]["vocab"]), state["meta"]


class LMTrainer(Trainer):
    """A Trainer whose checkpoints also hold ``meta`` (model description and vocabulary)."""

    def __init__(self, *args, meta=None, **kwargs):
        super().__init__(*args, metrics=(), **kwargs)
        self.meta = dict(meta or {})
        self.steps = 0

    def train_step(self, x, y, batch):
        self.steps += 1
        return super().train_step(x, y, batch)

    def checkpoint(self, epoch):
        state = super().checkpoint(epoch)
        state["meta"] = {**self.meta, "step": self.steps}
        return state


class WarmupCosine(Callback):
    """Per-step learning rate: linear warm-up to ``lr``, then cosine decay to ``min_lr`` at
    ``max_steps`` (nanoGPT's schedule); sets every param group's 'lr' before each step."""

    def __init__(self, lr, min_lr, warmup_steps, max_steps):
        super().__init__()
        self.lr, self.min_lr = lr, min_lr
        self.warmup_steps, self.max_steps = warmup_steps, max_steps
        self.step = 0

    def lr_at(self, step):
        if step < self.warmup_steps:
            return self.lr * (step + 1) / (self.warmup_steps + 1)
        span = max(1, self.max_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (self.lr - self.min_lr)

    def on_train_batch_begin(self, batch, logs=None):
        for group in self.trainer.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step)
        self.step += 1

    def state_dict(self):
        return {"step": self.step}

    def load_state_dict(self, state):
        self.step = state["step"]


class StepBudget(Callback):
    """Stop after ``max_steps`` optimizer steps or ``time_limit`` seconds of training.

    Stopping ends the interval, which is then evaluated and checkpointed; that time counts
    too, so training stops once elapsed time plus the expected cost of that last evaluation
    (the previous one's duration, or before any, ``eval_batches`` forward passes at half a
    training step's time each) reaches the limit.
    """

    def __init__(self, max_steps, time_limit=None, eval_batches=0):
        super().__init__()
        self.max_steps, self.time_limit, self.eval_batches = max_steps, time_limit, eval_batches

    def on_train_begin(self, logs=None):
        self.start = self._batch_start = time.perf_counter()
        self.step_time = self.eval_time = self._test_start = None

    def on_train_batch_begin(self, batch, logs=None):
        self._batch_start = time.perf_counter()

    def on_test_begin(self, logs=None):
        self._test_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self._test_start is not None:
            self.eval_time = time.perf_counter() - self._test_start

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        took = now - self._batch_start
        self.step_time = took if self.step_time is None else min(self.step_time, took)
        reserve = (self.eval_time if self.eval_time is not None
                   else 0.5 * self.step_time * self.eval_batches)
        over_time = (self.time_limit is not None
                     and now - self.start + reserve >= self.time_limit)
        if self.trainer.steps >= self.max_steps or over_time:
            self.trainer.stop_training = True


class StepLog(Callback):
    """One line per evaluation: step, train and validation loss (nats/char), lr, elapsed.

    Also records 'step' and 'elapsed' in the logs and the history (ahead of the CSV logger,
    hence the order), so the curves can be drawn against optimizer steps.
    """

    order = -50

    def __init__(self, log=print):
        super().__init__()
        self.log = log

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.log(f"step {self.trainer.steps:6d} | train {logs.get('loss', math.nan):.4f} | "
                 f"val {logs.get('val_loss', math.nan):.4f} | "
                 f"lr {self.trainer.optimizer.param_groups[0]['lr']:.2e} | "
                 f"{time.perf_counter() - self.start:7.1f}s")
        # the lr printed is the lr logged (the Trainer's 'lr' is the one before warm-up ran)
        for key, value in (("step", self.trainer.steps),
                           ("elapsed", time.perf_counter() - self.start),
                           ("lr", self.trainer.optimizer.param_groups[0]["lr"])):
            logs[key] = value
            history = self.trainer.history
            values = history.history.setdefault(key, [math.nan] * (len(history.epoch) - 1))
            if len(values) == len(history.epoch):  # History.append padded it with NaN
                values[-1] = value
            else:
                values.append(value)


def plot_curves(history, path, log=print):
    """Training and validation loss against the optimizer step; needs matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed; skipping curves.png")
        return False
    steps = history.history.get("step", [])
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        if key in history.history:
            ax.plot(steps, history.history[key], marker="o", markersize=3, label=label)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/char)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _check_config(config):
    if config.model not in MODELS:
        raise ValueError(f"lm train: unknown model {config.model!r}; choose from {MODELS}")
    for name in ("block_size", "batch_size", "max_steps", "eval_interval", "eval_batches"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"lm train: {name} must be a positive int, got {value!r}")
    if config.time_limit is not None and config.time_limit <= 0:
        raise ValueError(f"lm train: time_limit must be > 0 seconds, got {config.time_limit}")
    for name, ok, expected in (
            ("lr", config.lr is None or config.lr > 0, "> 0"),
            ("min_lr", config.min_lr is None or config.min_lr >= 0, ">= 0"),
            ("val_fraction", 0 < config.val_fraction < 1, "between 0 and 1"),
            ("dropout", 0 <= config.dropout < 1, "in [0, 1)"),
            ("warmup_steps", config.warmup_steps >= 0, ">= 0"),
            ("weight_decay", config.weight_decay >= 0, ">= 0"),
            ("grad_clip", config.grad_clip >= 0, ">= 0 (0: no clipping)"),
            ("patience", config.patience >= 0, ">= 0"), ("seed", config.seed >= 0, ">= 0")):
        if not ok:
            raise ValueError(f"lm train: {name} must be {expected}, got {getattr(config, name)}")


def pretrain(config: LMConfig, text=None, log=print) -> dict:
    """Train a language model by next-token prediction; returns a summary dict.

    Writes to ``config.out``: config.json, history.csv, best.st (resumable, best val_loss),
    model.st (the best weights with ``meta``, for ``load_pretrained``) and curves.png.

    Returns:
        {'model', 'vocab', 'spec', 'best_val_loss', 'steps', 'history', 'out', 'elapsed'}
    """
    from shendu import Generator, manual_seed
    from shendu.distributed.launch import TrainingRun
    from shendu.train import (CSVLogger, EarlyStopping, ModelCheckpoint, ProgressBar,
                              TensorBoard, TerminateOnNaN)
    _check_config(config)
    backend.normalize_device(config.device)
    if config.tensorboard:
        from shendu.train.loggers import _summary_writer_class
        if _summary_writer_class() is None:
            raise ImportError("--tensorboard needs tensorboardX: pip install "
                              "'shendu[tensorboard]'")
    run = TrainingRun(config.nproc, config.batch_size, "lm train")  # this rank's part
    log = run.log(log)
    manual_seed(config.seed)
    text = load_text(config.data) if text is None else text
    vocab = CharVocab(text)
    train_ids, val_ids = train_val_split(vocab.encode(text), config.val_fraction)
    spec = model_spec(config, vocab.vocab_size)
    model = build_model(spec)
    lr = config.lr if config.lr is not None else DEFAULT_LR[config.model]
    if isinstance(model, GPT):
        optimizer = model.configure_optimizers(config.weight_decay, lr, betas=(0.9, 0.99))
    else:
        from shendu.optim import Adam
        optimizer = Adam(model.parameters(), lr=lr)
    out = config.out or os.path.join("runs", f"lm-{config.model}-"
                                             f"{time.strftime('%Y%m%d-%H%M%S')}")
    out = run.shared(out)  # rank 0's timestamp
    if run.is_main:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(asdict(config), f, indent=2)
    # each rank draws its share of the global batch from a stream of its own
    stream = Generator(seed=config.seed + 1 + 10_000 * run.rank)
    train_batches = SequenceBatches(train_ids, config.block_size, run.batch_size,
                                    generator=stream,
                                    num_batches=config.eval_interval)
    held_out = SequenceBatches(val_ids, config.block_size, config.batch_size,
                               generator=Generator(seed=config.seed + 2))
    val_batches = [held_out.sample() for _ in range(config.eval_batches)]  # fixed windows
    n_params = sum(p.numel() for p in model.parameters())
    log(f"{config.model}: {n_params:,} parameters; {train_ids.shape[0]:,} train / "
        f"{val_ids.shape[0]:,} val characters, vocab {vocab.vocab_size}; writing to {out}")
    meta = {"spec": spec, "vocab": vocab.chars}
    min_lr = config.min_lr if config.min_lr is not None else lr / 10
    callbacks = [ProgressBar(unit="tokens", per_sample=config.block_size, summary=False),
                 WarmupCosine(lr, min_lr, config.warmup_steps, config.max_steps),
                 StepBudget(config.max_steps, config.time_limit, config.eval_batches),
                 StepLog(log),
                 TerminateOnNaN(),
                 EarlyStopping(patience=config.patience, restore_best_weights=True),
                 CSVLogger(os.path.join(out, "history.csv")),
                 ModelCheckpoint(os.path.join(out, "best.st"), save_best_only=True)]
    if config.tensorboard:
        callbacks.append(TensorBoard(os.path.join(out, "tensorboard")))
    trainer = LMTrainer(run.wrap(model), optimizer, lm_loss, callbacks=callbacks, meta=meta,
                        grad_clip_norm=config.grad_clip or None, device=config.device)
    rounds = -(-config.max_steps // config.eval_interval)
    start = time.perf_counter()
    history = trainer.fit(train_batches, val_batches, epochs=rounds)
    elapsed = time.perf_counter() - start
    best = min(history.history.get("val_loss", [math.nan]))
    if run.is_main:
        save_pretrained(os.path.join(out, "model.st"), model, vocab, spec, step=trainer.steps,
                        val_loss=best)
        plot_curves(history, os.path.join(out, "curves.png"), log)
    log(f"best validation loss {best:.4f} nats/char after {trainer.steps} steps "
        f"({elapsed:.0f}s); weights in {os.path.join(out, 'model.st')}")
    return {"model": model, "vocab": vocab, "spec": spec, "best_val_loss": best,
            "steps": trainer.steps, "history": history, "out": out, "elapsed": elapsed}


def sample_text(model, vocab, prompt, max_new_tokens=200, temperature=1.0, top_k=None,
                seed=None):
    """Continue ``prompt`` with sampled characters; returns prompt + continuation."""
    from shendu import Generator
    if not prompt:
        raise ValueError("sample: the prompt must hold at least one character")
    idx = vocab.encode(prompt).reshape(1, -1)
    generator = Generator(seed=seed) if seed is not None else backend.default_generator("cpu")
    out = model.generate(idx, max_new_tokens, temperature=temperature, top_k=top_k,
                         generator=generator)
    return vocab.decode(out[0])
