"""The fine-tuning demonstration: which tiny-Shakespeare character speaks a given line.

Task. The text is a sequence of speeches, each ``NAME:`` on its own line followed by lines of
that character's speech. A sample is one line of speech, labelled with its speaker, among the
``num_speakers`` characters with the most lines in a region of the text. By default the region
is the last 10% of tiny Shakespeare, the part that ``pretrain``'s 90/10 split holds out, so the
pre-trained model has never read any line of the task. Splits are made by *speech*: a
speaker's speeches are shuffled and the first ones fill the few training labels
(``train_per_class`` lines per class), the rest give the test lines, so no training and test
line come from the same passage. The test set is balanced (the same number of lines per
class), so chance accuracy is 1 / num_speakers.

``finetune_demo`` compares, on the same few labels and the same budget: the pre-trained body
fine-tuned (lower body learning rate), the pre-trained body frozen (a linear probe), and the
same architecture trained from scratch. Concept: N5.3 (claim: pre-trained then fine-tuned
beats trained-from-scratch when labels are few).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from shendu import backend
from shendu.tensor import Tensor

_np = backend.namespace("cpu")
_SPEECH = re.compile(r"(?m)^([A-Z][A-Za-z' ]+):\n((?:.+\n?)+)")


def speaker_lines(text, start=0.0, end=1.0, min_chars=8):
    """[(speaker, speech number, line)] for every speech line in text[start:end] (fractions).

    Lines shorter than ``min_chars`` ("Ay.", "O!") carry no style and are dropped.
    """
    if not 0.0 <= start < end <= 1.0:
        raise ValueError(f"speaker_lines: need 0 <= start < end <= 1, got {start}, {end}")
    part = text[int(len(text) * start):int(len(text) * end)]
    if start > 0:
        part = part[part.find("\n\n") + 2:]  # begin at a speech boundary
    out = []
    for number, match in enumerate(_SPEECH.finditer(part)):
        for line in match.group(2).split("\n"):
            if len(line.strip()) >= min_chars:
                out.append((match.group(1), number, line.strip()))
    return out


@dataclass
class SpeakerTask:
    """A few-label speaker-classification split: train and test (idx, label) pairs.

    Shape:
        x_train (K * train_per_class, T), x_test (K * test_per_class, T) int64, padded with
        ``pad_id`` at the end (T = max_len); y_* (N,) int64 in [0, K).
    """

    speakers: list
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    pad_id: int

    @property
    def train(self):
        return self.x_train, self.y_train

    @property
    def test(self):
        return self.x_test, self.y_test


def _encode(lines, vocab, max_len, pad_id):
    """(N, max_len) ids, each line truncated to max_len and padded at the end."""
    lines = [line[:max_len] for line in lines]
    lengths = _np.array([len(line) for line in lines], dtype=backend.int64)
    codes = vocab.encode("".join(lines)).numpy()  # every line in one pass
    rows = _np.repeat(_np.arange(len(lines)), lengths)
    starts = _np.cumsum(lengths) - lengths
    cols = _np.arange(codes.shape[0]) - _np.repeat(starts, lengths)
    ids = _np.full((len(lines), max_len), pad_id, dtype=backend.int64)
    ids[rows, cols] = codes
    return Tensor._wrap(ids)


def speaker_task(text, vocab, num_speakers=6, train_per_class=48, max_len=64,
                 region=(0.9, 1.0), pad_char="\n", seed=0, test_per_class=None):
    """Build the few-label task (see the module docstring); returns a ``SpeakerTask``.

    ``pad_char`` must be in ``vocab`` and never inside a line (a line has no newline).
    ``test_per_class`` caps the balanced test set (default: as many as the rarest class has).
    """
    lines = speaker_lines(text, *region)
    counts = {}
    for name, _, _ in lines:
        counts[name] = counts.get(name, 0) + 1
    speakers = sorted(counts, key=lambda n: (-counts[n], n))[:num_speakers]
    if len(speakers) < num_speakers:
        raise ValueError(f"speaker_task: the region {region} has only {len(speakers)} "
                         f"speakers, asked for {num_speakers}")
    rng = backend.Generator(seed=seed)
    train, test = [], []
    for label, name in enumerate(speakers):
        speeches = sorted({number for n, number, _ in lines if n == name})
        speeches = [speeches[i] for i in rng.permutation(len(speeches))]
        by_speech = {s: [line for n, number, line in lines if n == name and number == s]
                     for s in speeches}
        taken, mine = 0, ([], [])
        for s in speeches:  # whole speeches go to training until it has enough lines
            side = 0 if taken < train_per_class else 1
            mine[side].extend(by_speech[s])
            taken += len(by_speech[s]) if side == 0 else 0
        if len(mine[0]) < train_per_class or not mine[1]:
            raise ValueError(f"speaker_task: {name} has {counts[name]} lines, too few for "
                             f"{train_per_class} training lines plus a test set")
        train.append(mine[0][:train_per_class])
        test.append(mine[1])
    per_class = min(len(t) for t in test)
    per_class = per_class if test_per_class is None else min(per_class, test_per_class)
    pad_id = vocab.stoi[pad_char]
    x_train = _encode([line for group in train for line in group], vocab, max_len, pad_id)
    x_test = _encode([line for group in test for line in group[:per_class]], vocab, max_len,
                     pad_id)
    y_train = Tensor._wrap(_np.repeat(_np.arange(num_speakers), train_per_class))
    y_test = Tensor._wrap(_np.repeat(_np.arange(num_speakers), per_class))
    return SpeakerTask(speakers, x_train, y_train, x_test, y_test, pad_id)


def finetune_demo(checkpoint, text=None, num_speakers=6, train_per_class=48, epochs=30,
                  lr=1e-3, body_lr=3e-4, probe_lr=1e-2, batch_size=32, seed=0, repeats=1,
                  region=(0.9, 1.0), log=print):
    """Pre-trained + fine-tuned vs linear probe vs from scratch on the speaker task.

    ``checkpoint`` is a ``model.st`` from ``pretrain`` (``shendu lm train``); ``region`` is
    the part of ``text`` (fractions) the task is drawn from. Every run uses the same labels,
    epochs and batch order; the fine-tuned run trains its new head at ``lr`` and the body at
    ``body_lr``, the probe only its head at ``probe_lr`` (a frozen body needs larger steps), and
    the scratch run a fresh network of the same description, all of it at ``lr``. Each is
    repeated with training seeds seed, seed + 1, ... (``repeats``); the split stays fixed.

    Returns:
        {'speakers', 'n_train', 'n_test', 'chance', 'finetuned', 'probe', 'scratch'}, the
        last three being lists of final test accuracies, one per repeat.
    """
    from shendu import manual_seed
    from shendu.data.text import load_text
    from shendu.lm.finetune import SequenceClassifier, finetune
    from shendu.lm.pretrain import build_model, load_pretrained

    text = load_text() if text is None else text
    _, vocab, meta = load_pretrained(checkpoint)
    max_len = meta["spec"]["config"].get("block_size", 64)
    task = speaker_task(text, vocab, num_speakers, train_per_class, max_len, region=region,
                        seed=seed)
    log(f"speakers: {', '.join(task.speakers)}; {task.x_train.shape[0]} training lines "
        f"({train_per_class} per class), {task.x_test.shape[0]} balanced test lines from "
        f"other speeches; chance {1 / num_speakers:.3f}")
    results = {"speakers": task.speakers, "n_train": task.x_train.shape[0],
               "n_test": task.x_test.shape[0], "chance": 1 / num_speakers,
               "finetuned": [], "probe": [], "scratch": []}
    runs = (("finetuned", f"pre-trained body, fine-tuned (body lr {body_lr:g}, head lr {lr:g})",
             dict(lr=lr, body_lr=body_lr)),
            ("probe", f"pre-trained body frozen (linear probe, head lr {probe_lr:g})",
             dict(lr=probe_lr, freeze_body=True)),
            ("scratch", f"same network from scratch (lr {lr:g})", dict(lr=lr)))
    for repeat in range(repeats):
        for key, title, options in runs:
            manual_seed(seed + repeat)
            body = build_model(meta["spec"]) if key == "scratch" else \
                load_pretrained(checkpoint)[0]
            model = SequenceClassifier(body, num_speakers, pad_id=task.pad_id)
            log(f"{title}, seed {seed + repeat}")
            run = finetune(model, task.train, task.test, epochs=epochs, batch_size=batch_size,
                           seed=seed + repeat, log=log, **options)
            results[key].append(run["test_accuracy"])
            log(f"  -> test accuracy {run['test_accuracy']:.3f}")
    summary = " | ".join(f"{name} {_mean(results[key]):.3f}" for key, name in
                         (("finetuned", "fine-tuned"), ("probe", "linear probe"),
                          ("scratch", "from scratch")))
    log(f"test accuracy (mean of {repeats}): {summary} | chance {results['chance']:.3f}")
    return results


def _mean(values):
    return sum(values) / len(values)
