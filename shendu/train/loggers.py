"""Logging callbacks: CSVLogger (a row per epoch), ProgressBar (tqdm or a plain line) and
TensorBoard (event files, when tensorboardX or tensorboard is installed)."""
from __future__ import annotations

import csv
import math
import os
import sys
import time

from shendu.distributed import get_world_size
from shendu.train.callbacks import Callback


class CSVLogger(Callback):
    """Write one row per epoch (epoch plus every logs key) to a CSV file.

    Args:
        path: the CSV file.
        separator: field separator. Defaults to ','.
        append: keep existing rows (for resumed runs) instead of truncating. Defaults to False.
    """

    rank_zero_only = True

    def __init__(self, path, separator=",", append=False):
        super().__init__()
        self.path, self.separator, self.append = os.fspath(path), separator, append
        self._file = self._writer = None

    def on_train_begin(self, logs=None):
        has_rows = self.append and os.path.exists(self.path) and os.path.getsize(self.path) > 0
        self._keys = None
        if has_rows:
            with open(self.path, newline="") as f:
                header = f.readline().strip()
            self._keys = header.split(self.separator)[1:] if header else None
        self._file = open(self.path, "a" if self.append else "w", newline="")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._keys is None:
            self._keys = sorted(logs)
            self._file.write(self.separator.join(["epoch"] + self._keys) + "\n")
        writer = csv.writer(self._file, delimiter=self.separator, lineterminator="\n")
        writer.writerow([epoch] + [logs.get(k, "") for k in self._keys])
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


def _format_logs(logs):
    keys = [k for k in logs if k not in ("time", "size", "batch", "lr")]
    parts = [f"{k} {logs[k]:.4f}" for k in keys]
    if "lr" in logs:
        parts.append(f"lr {logs['lr']:.4g}")
    return " - ".join(parts)


class ProgressBar(Callback):
    """Show per-epoch progress with the running loss and samples/s.

    Uses a ``tqdm`` bar when tqdm is installed (the 'progress' extra); otherwise prints one
    plain line per epoch to ``file`` (stderr by default).

    Args:
        file: where to write (default: stderr).
        use_tqdm: force the tqdm bar on or off (default: on when tqdm is installed).
        unit: what the throughput counts, e.g. 'tokens'. Defaults to 'samples'.
        per_sample: units in one sample (a language model's block_size tokens per
            sequence). Defaults to 1.
        summary: print the line at each epoch's end (off where another callback prints
            its own, as ``shendu lm train``'s StepLog). Defaults to True.
    """

    order = -100
    rank_zero_only = True

    def __init__(self, file=None, use_tqdm=None, unit="samples", per_sample=1, summary=True):
        super().__init__()
        self.file = file
        self.unit, self.per_sample, self.summary = unit, per_sample, summary
        if use_tqdm is None:
            try:
                import tqdm  # noqa: F401
                use_tqdm = True
            except ImportError:
                use_tqdm = False
        self.use_tqdm = use_tqdm
        self._bar = None

    def _out(self):
        return self.file if self.file is not None else sys.stderr

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self._start = epoch, time.perf_counter()
        self._seen, self._loss_sum, self._train_time = 0, 0.0, 0.0
        if self.use_tqdm:
            from tqdm.auto import tqdm
            self._bar = tqdm(total=self.params.get("steps"), file=self._out(), leave=False,
                             desc=f"epoch {epoch + 1}/{self.params.get('epochs', '?')}")

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        n = logs.get("size", 1)
        self._seen += n * self.per_sample
        self._train_time = time.perf_counter() - self._start  # samples/s excludes validation
        self._loss_sum += logs.get("loss", math.nan) * n * self.per_sample
        if self._bar is not None:
            elapsed = max(time.perf_counter() - self._start, 1e-9)
            self._bar.set_postfix({"loss": f"{self._loss_sum / self._seen:.4f}",
                                   f"{self.unit}_s": f"{self._rate(elapsed):.0f}"},
                                  refresh=False)
            self._bar.update(1)

    def _rate(self, seconds):
        # under DistributedDataParallel every rank trains on as many samples as this one
        return self._seen * get_world_size() / seconds

    def on_epoch_end(self, epoch, logs=None):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if not self.summary:
            return
        elapsed = time.perf_counter() - self._start
        rate = self._rate(max(self._train_time, 1e-9))
        print(f"epoch {epoch + 1}/{self.params.get('epochs', '?')} - {elapsed:.1f}s - "
              f"{rate:.0f} {self.unit}/s - {_format_logs(logs or {})}",
              file=self._out(), flush=True)


def _summary_writer_class():
    try:
        from tensorboardX import SummaryWriter
        return SummaryWriter
    except ImportError:
        pass
    try:
        import tensorboard  # noqa: F401 - torch's writer needs the tensorboard package
        from torch.utils.tensorboard import SummaryWriter
        return SummaryWriter
    except ImportError:
        return None


class TensorBoard(Callback):
    """Write every epoch's logs (and optionally every batch loss) as TensorBoard scalars.

    This callback writes event files only when ``tensorboardX`` is importable, or else
    ``tensorboard`` together with torch's ``torch.utils.tensorboard`` writer; neither is a
    dependency of shendu, and without them the constructor raises ImportError saying so.
    Scalars are named 'epoch/<key>' (x axis: 0-based epoch) and 'batch/loss' (x axis: global
    step) when ``log_batches``.

    Args:
        log_dir: folder for the event files (``tensorboard --logdir`` it).
        log_batches: also log each training batch's loss. Defaults to False.
    """

    rank_zero_only = True

    def __init__(self, log_dir, log_batches=False):
        super().__init__()
        writer_class = _summary_writer_class()
        if writer_class is None:
            raise ImportError("TensorBoard: writing event files needs `pip install tensorboardX`"
                              " (or tensorboard with torch); neither is installed")
        self.log_dir, self.log_batches = os.fspath(log_dir), log_batches
        self._writer_class = writer_class
        self._writer, self._step = None, 0

    def on_train_begin(self, logs=None):
        self._writer = self._writer_class(self.log_dir)

    def on_train_batch_end(self, batch, logs=None):
        if self.log_batches and logs and "loss" in logs:
            self._writer.add_scalar("batch/loss", logs["loss"], self._step)
        self._step += 1

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self._writer.add_scalar(f"epoch/{key}", value, epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
