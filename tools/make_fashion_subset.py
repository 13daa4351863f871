"""Build the class-balanced Fashion-MNIST subset shipped in shendu/data/assets.

Reads the full IDX files (default: /usr/share/datasets/fashion-mnist, Debian package
dataset-fashion-mnist), keeps the first N_TRAIN / 10 training and N_TEST / 10 test images of
every class in file order (no randomness, so rerunning gives identical bytes) and writes them as
gzipped IDX files with a zero gzip timestamp. Run from the repository root:

    python tools/make_fashion_subset.py [SOURCE_DIR]
"""
from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

from shendu import backend
from shendu.data.mnist import ASSETS, SUBSET_PREFIX, FashionMNIST, read_idx

N_TRAIN, N_TEST = 9_000, 2_000  # keeps the four files under 5 MB
_np = backend.namespace("cpu")


def balanced_indices(labels, total, num_classes=10):
    """The first total / num_classes positions of each class, in file order."""
    per_class = total // num_classes
    keep = _np.zeros(labels.shape[0], dtype=bool)
    for c in range(num_classes):
        positions = _np.nonzero(labels == c)[0]
        if positions.size < per_class:
            raise ValueError(f"class {c} has only {positions.size} samples, need {per_class}")
        keep[positions[:per_class]] = True
    return _np.nonzero(keep)[0]


def idx_bytes(array) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(">" + "I" * array.ndim, *array.shape)
    return header + array.astype(backend.uint8).tobytes()


def main(source: str = FashionMNIST.system_dirs[0]) -> None:
    source = Path(source)
    for split, total in (("train", N_TRAIN), ("t10k", N_TEST)):
        images = read_idx(source / f"{split}-images-idx3-ubyte.gz")
        labels = read_idx(source / f"{split}-labels-idx1-ubyte.gz")
        idx = balanced_indices(labels, total)
        for kind, dims, array in (("images", 3, images[idx]), ("labels", 1, labels[idx])):
            out = ASSETS / f"{SUBSET_PREFIX}{split}-{kind}-idx{dims}-ubyte.gz"
            out.write_bytes(gzip.compress(idx_bytes(array), compresslevel=9, mtime=0))
            print(f"{out}: {array.shape} {out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main(*sys.argv[1:])
