"""Character-level text data: a vocabulary, tiny Shakespeare, and random next-character windows.

Concept: N4 (recurrent language models) and N5.3 (self-supervised learning: predict the next
character from the previous ones, no human labels).
"""
from __future__ import annotations

import os
from pathlib import Path

from shendu import backend
from shendu.tensor import Tensor

_np = backend.namespace("cpu")
REPO_ROOT = Path(__file__).resolve().parents[2]


def default_text_path() -> Path:
    """tiny Shakespeare: ``$SHENDU_DATA/tinyshakespeare.txt`` if set, else the checkout's
    ``../shared/data/tinyshakespeare.txt`` (beside the repository root)."""
    if os.environ.get("SHENDU_DATA"):
        candidate = Path(os.environ["SHENDU_DATA"]) / "tinyshakespeare.txt"
        if candidate.is_file():
            return candidate
    return REPO_ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"


def load_text(path=None) -> str:
    """Read a UTF-8 text file (default: tiny Shakespeare, see ``default_text_path``)."""
    path = Path(path) if path is not None else default_text_path()
    if not path.is_file():
        raise FileNotFoundError(f"load_text: {path} does not exist; pass the path of a UTF-8 "
                                "text file or set $SHENDU_DATA to a folder holding "
                                "tinyshakespeare.txt")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"load_text: {path} is not valid UTF-8 ({err})") from None


def _codepoints(text: str):
    """The Unicode code points of ``text`` as a uint32 array, without a Python loop."""
    return _np.frombuffer(text.encode("utf-32-le"), dtype=_np.uint32)


class CharVocab:
    """The sorted unique characters of a text; ``encode`` maps text to ids, ``decode`` back.

    ``CharVocab(vocab.chars)`` rebuilds the same vocabulary, so storing ``chars`` (a string) in a
    checkpoint's metadata is enough to restore it.
    """

    def __init__(self, text: str):
        if not isinstance(text, str):
            raise TypeError(f"CharVocab: expected a str, got {type(text).__name__}")
        if not text:
            raise ValueError("CharVocab: cannot build a vocabulary from empty text")
        self._codes = _np.unique(_codepoints(text))  # sorted code points
        self.chars = "".join(chr(c) for c in self._codes)
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}
        self.itos = list(self.chars)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def __len__(self):
        return len(self.chars)

    def encode(self, text: str) -> Tensor:
        """int64 ids of every character of ``text``; unknown characters raise ValueError.

        Shape:
            str of length L -> (L,) int64.
        """
        codes = _codepoints(text)
        ids = _np.searchsorted(self._codes, codes)
        ids = _np.minimum(ids, len(self._codes) - 1)
        unknown = self._codes[ids] != codes
        if unknown.any():
            missing = sorted({chr(c) for c in codes[unknown][:1000]})
            raise ValueError(f"CharVocab.encode: characters not in the vocabulary: "
                             f"{''.join(missing)!r}")
        return Tensor._wrap(ids.astype(backend.int64))

    def decode(self, ids) -> str:
        """The text for a sequence of ids (Tensor, array or list of ints)."""
        if isinstance(ids, Tensor):
            ids = backend.to_numpy(ids._data)
        ids = _np.asarray(ids, dtype=backend.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.chars)):
            raise ValueError(f"CharVocab.decode: ids must lie in [0, {len(self.chars)}), got "
                             f"values from {ids.min()} to {ids.max()}")
        return self._codes[ids].astype("<u4").tobytes().decode("utf-32-le")

    def __repr__(self):
        return f"CharVocab(vocab_size={self.vocab_size})"


def _ids_array(ids, who):
    if isinstance(ids, Tensor):
        ids = ids._data
    if not backend.is_array(ids):
        ids = _np.asarray(ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise ValueError(f"{who}: expected a 1-d integer sequence of ids, got shape "
                         f"{tuple(ids.shape)} and dtype {ids.dtype}")
    return ids


def train_val_split(ids, val_fraction=0.1):
    """Split a token sequence into a leading training part and a trailing validation part.

    Contiguous (not shuffled), so no validation window overlaps training text. Concept: N2.1.

    Shape:
        (L,) -> (L - V,), (V,) with V = int(L * val_fraction).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"train_val_split: val_fraction must lie in [0, 1), got {val_fraction}")
    data = _ids_array(ids, "train_val_split")
    n_train = data.shape[0] - int(data.shape[0] * val_fraction)
    return Tensor._wrap(data[:n_train]), Tensor._wrap(data[n_train:])


class SequenceBatches:
    """Random next-character training windows: x = ids[s:s+T], y = ids[s+1:s+T+1].

    Each batch draws ``batch_size`` start positions s from ``generator`` and gathers all windows
    with one fancy index. Iterating yields ``num_batches`` batches (default: about one pass over
    the tokens, ``(len(ids) - 1) // (block_size * batch_size)``, at least 1); ``sample()`` draws
    one batch.

    Shape:
        ids (L,) -> x, y (B, T) int64 with B = batch_size, T = block_size.
    """

    def __init__(self, ids, block_size, batch_size, generator=None, num_batches=None):
        self.ids = _ids_array(ids, "SequenceBatches").astype(backend.int64, copy=False)
        for name, value in (("block_size", block_size), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SequenceBatches: {name} must be a positive int, got {value!r}")
        if self.ids.shape[0] <= block_size:
            raise ValueError(f"SequenceBatches: need more than block_size={block_size} tokens "
                             f"to form one (x, y) window, got {self.ids.shape[0]}")
        self.block_size, self.batch_size = block_size, batch_size
        self.generator = generator
        default = (self.ids.shape[0] - 1) // (block_size * batch_size)
        self.num_batches = max(1, default) if num_batches is None else int(num_batches)
        self._offsets = backend.xp_of(self.ids).arange(block_size)  # (T,)

    def __len__(self):
        return self.num_batches

    def sample(self):
        """One random batch (x, y), each (B, T) int64."""
        generator = self.generator or backend.default_generator("cpu")
        starts = generator.integers(0, self.ids.shape[0] - self.block_size, (self.batch_size,))
        starts = backend.to_device(starts, backend.device_of(self.ids))
        idx = starts[:, None] + self._offsets  # (B, T)
        return Tensor._wrap(self.ids[idx]), Tensor._wrap(self.ids[idx + 1])

    def __iter__(self):
        for _ in range(self.num_batches):
            yield self.sample()

    def __repr__(self):
        return (f"SequenceBatches(tokens={self.ids.shape[0]}, block_size={self.block_size}, "
                f"batch_size={self.batch_size}, num_batches={self.num_batches})")
