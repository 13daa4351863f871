"""MNIST and Fashion-MNIST: 28x28 grey images in 10 classes, read from IDX files into memory.

Where the files are looked for, first match wins (each folder holds ``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each
optionally gzipped):
1. ``root`` and ``root/<name>`` when ``root`` is given;
2. ``$SHENDU_DATA/<name>`` (name: ``mnist`` or ``fashion-mnist``);
3. Fashion-MNIST only: ``/usr/share/datasets/fashion-mnist`` (Debian ``dataset-fashion-mnist``);
4. the user cache ``~/.cache/shendu/<name>``;
5. with ``download=True``: the official mirrors, into ``root`` (or the cache), each file's
   uncompressed bytes checked against the SHA-256 of the upstream release.
``FashionMNIST(allow_subset=True)`` falls back to the 9,000 + 2,000 image class-balanced subset
shipped in ``shendu/data/assets`` (made by ``tools/make_fashion_subset.py``); ``.is_subset`` and
``.source`` say which data was loaded.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import struct
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from shendu import backend
from shendu.data.dataset import Dataset, as_index_array, check_index
from shendu.serialization import atomic_write
from shendu.tensor import Tensor

_np = backend.namespace("cpu")
ASSETS = Path(__file__).resolve().parent / "assets"
SUBSET_PREFIX = "fashion-mnist-subset-"
_IDX_UINT8 = 0x08


def read_idx(path) -> object:
    """Read an IDX file of unsigned bytes (optionally gzipped) into a uint8 array.

    Raises ValueError naming the file for a bad gzip stream, a bad magic number or a length
    that does not match the header.
    """
    path = str(path)
    with open(path, "rb") as f:
        raw = f.read()
    if path.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{path}: not a valid gzip file ({err})") from None
    if len(raw) < 4:
        raise ValueError(f"{path}: truncated IDX file ({len(raw)} bytes, the magic number "
                         "alone needs 4)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] != _IDX_UINT8 or raw[3] == 0:
        raise ValueError(f"{path}: bad IDX magic number 0x{raw[:4].hex()}; expected "
                         "0x000008NN (unsigned bytes, NN dimensions)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, expected {header} "
                         f"for {ndim} dimensions)")
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    expected = 1
    for d in dims:
        expected *= d
    if len(raw) - header != expected:
        raise ValueError(f"{path}: wrong length: the header promises shape {dims} = "
                         f"{expected} bytes of data but the file holds {len(raw) - header}")
    return _np.frombuffer(raw, dtype=backend.uint8, offset=header).reshape(dims).copy()


def verify_sha256(raw: bytes, expected: str, what) -> None:
    """Raise ValueError unless sha256(raw) == expected (hex)."""
    got = hashlib.sha256(raw).hexdigest()
    if got != expected:
        raise ValueError(f"{what}: SHA-256 mismatch: expected {expected}, got {got}; the file "
                         "is corrupt or not the official release")


def download_file(url: str, dest, sha256: str, timeout: float = 60.0) -> None:
    """Fetch ``url`` (gzipped when it ends in .gz), check the uncompressed bytes' SHA-256, then
    write the fetched bytes to ``dest`` atomically; nothing is written when the check fails."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed URLs
        blob = response.read()
    raw = blob
    if url.endswith(".gz"):
        try:
            raw = gzip.decompress(blob)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{url}: not a valid gzip file ({err})") from None
    verify_sha256(raw, sha256, url)
    atomic_write(str(dest), blob)


def _file_paths(directory: Path, prefix: str = ""):
    """The four IDX paths in ``directory`` (plain or .gz), or None if any is missing."""
    paths = {}
    for split in ("train", "t10k"):
        for kind, dims in (("images", 3), ("labels", 1)):
            stem = directory / f"{prefix}{split}-{kind}-idx{dims}-ubyte"
            found = [p for p in (stem, stem.with_name(stem.name + ".gz")) if p.is_file()]
            if not found:
                return None
            paths[split, kind] = found[0]
    return paths


class MNIST(Dataset):
    """The MNIST handwritten digits: 60,000 training and 10,000 test images (LeCun et al.).

    ``ds[i]`` is ``(image, label)``: a float32 image in [0, 1] and an int in 0..9; ``transform``
    (if any) is applied to that float image, or to a whole (B, 1, 28, 28) batch when DataLoader
    gathers with ``get_batch``, so it must accept both (all of shendu.data.transforms do).

    Attributes:
        data: uint8 Tensor (N, 28, 28). targets: int64 Tensor (N,).
        classes: the 10 class names. source: the folder read. is_subset: False for the full set.

    Shape:
        sample: image (1, 28, 28), label int; ``get_batch``: (B, 1, 28, 28), (B,) int64.
    """

    name = "mnist"
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five",
               "6 - six", "7 - seven", "8 - eight", "9 - nine"]
    mirrors = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
               "http://yann.lecun.com/exdb/mnist/")
    # SHA-256 of the uncompressed upstream files
    sha256 = {
        "train-images-idx3-ubyte":
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte":
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte":
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte":
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    }
    system_dirs: tuple = ()

    def __init__(self, root=None, train=True, transform=None, download=False):
        self._load(root, train, transform, download, allow_subset=False)

    def _load(self, root, train, transform, download, allow_subset):
        self.train = bool(train)
        self.transform = transform
        self.is_subset = False
        paths = self._find(root)
        if paths is None and download:
            paths = self._download(Path(root) if root is not None else self._cache_dir())
        if paths is None and allow_subset:
            paths = _file_paths(ASSETS, SUBSET_PREFIX)
            self.is_subset, self.source = True, str(ASSETS)
        if paths is None:
            raise FileNotFoundError(self._not_found_message(root))
        self._read(paths)

    # --- locating and reading -------------------------------------------------------------
    @classmethod
    def _cache_dir(cls) -> Path:
        return Path.home() / ".cache" / "shendu" / cls.name

    @classmethod
    def search_dirs(cls, root=None) -> list:
        """The folders searched, in order (see the module docstring)."""
        dirs = []
        if root is not None:
            dirs += [Path(root), Path(root) / cls.name]
        if os.environ.get("SHENDU_DATA"):
            dirs.append(Path(os.environ["SHENDU_DATA"]) / cls.name)
        return dirs + [Path(d) for d in cls.system_dirs] + [cls._cache_dir()]

    def _find(self, root):
        for directory in self.search_dirs(root):
            paths = _file_paths(directory)
            if paths is not None:
                self.source = str(directory)
                return paths
        return None

    def _not_found_message(self, root) -> str:
        searched = ", ".join(str(d) for d in self.search_dirs(root))
        return (f"{type(self).__name__}: the four IDX files (train-images-idx3-ubyte[.gz], ...) "
                f"were not found in any of: {searched}. Pass root=, set $SHENDU_DATA, or use "
                "download=True")

    def _read(self, paths):
        split = "train" if self.train else "t10k"
        images = read_idx(paths[split, "images"])
        labels = read_idx(paths[split, "labels"])
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ValueError(f"{paths[split, 'images']}: expected images of shape (N, 28, 28), "
                             f"got {images.shape}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"{paths[split, 'labels']}: expected {images.shape[0]} labels (one "
                             f"per image in {paths[split, 'images']}), got shape {labels.shape}")
        if labels.size and labels.max() >= len(self.classes):
            raise ValueError(f"{paths[split, 'labels']}: label {labels.max()} is out of range "
                             f"for {len(self.classes)} classes")
        self.data = Tensor._wrap(images)
        self.targets = Tensor._wrap(labels.astype(backend.int64))

    def _download(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        for filename, digest in self.sha256.items():
            errors = []
            for mirror in self.mirrors:
                try:
                    download_file(mirror + filename + ".gz", directory / (filename + ".gz"),
                                  digest)
                    break
                except (urllib.error.URLError, OSError, ValueError) as err:
                    errors.append(f"{mirror}: {err}")
            else:
                raise RuntimeError(f"{type(self).__name__}: could not download {filename}: "
                                   + "; ".join(errors))
        self.source = str(directory)
        return _file_paths(directory)

    # --- access ---------------------------------------------------------------------------
    def __len__(self):
        return self.data.shape[0]

    def _images(self, data):
        image = Tensor._wrap(data.astype(backend.float32) / 255)  # torchvision's scaling
        return self.transform(image) if self.transform is not None else image

    def __getitem__(self, index):
        index = check_index(index, len(self), type(self).__name__)
        image = self._images(self.data._data[index][None])  # (1, 28, 28)
        return image, int(self.targets._data[index])

    def get_batch(self, indices):
        """Gather a batch in one indexing call: ((B, 1, 28, 28) float32, (B,) int64)."""
        idx = as_index_array(indices, len(self), f"{type(self).__name__}.get_batch")
        images = self._images(self.data._data[idx][:, None])  # (B, 1, 28, 28)
        return images, Tensor._wrap(self.targets._data[idx])

    def __repr__(self):
        kind = "subset" if self.is_subset else "full"
        return (f"{type(self).__name__}(split={'train' if self.train else 'test'}, "
                f"samples={len(self)}, {kind}, source={self.source!r})")


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST (Xiao et al., 2017): MNIST's format with 10 clothing classes.

    Args (beyond MNIST's):
        allow_subset: when the full set is not found (and not downloaded), load the small
            class-balanced subset shipped with shendu instead; ``.is_subset`` tells which.
    """

    name = "fashion-mnist"
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    sha256 = {
        "train-images-idx3-ubyte":
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte":
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte":
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte":
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    }
    system_dirs = ("/usr/share/datasets/fashion-mnist",)

    def __init__(self, root=None, train=True, transform=None, download=False,
                 allow_subset=False):
        self._load(root, train, transform, download, allow_subset)

    def _not_found_message(self, root) -> str:
        return (super()._not_found_message(root) + ", or allow_subset=True for the small "
                "shipped subset (apt-get install dataset-fashion-mnist provides the full set)")

    @classmethod
    def subset(cls, train=True, transform=None):
        """The shipped class-balanced subset (9,000 train / 2,000 test images)."""
        self = cls.__new__(cls)
        self.train, self.transform = bool(train), transform
        self.is_subset, self.source = True, str(ASSETS)
        paths = _file_paths(ASSETS, SUBSET_PREFIX)
        if paths is None:
            raise FileNotFoundError(f"FashionMNIST.subset: the shipped subset is missing from "
                                    f"{ASSETS}; reinstall shendu")
        self._read(paths)
        return self


def load_fashion_mnist(train=True, transform=None, prefer_full=True, root=None):
    """Fashion-MNIST for examples and the CLI: the full set when found, else the shipped subset.

    Check ``.is_subset`` (and ``.source``) on the result to tell the user which one was used.
    """
    if not prefer_full:
        return FashionMNIST.subset(train, transform)
    return FashionMNIST(root, train, transform, allow_subset=True)
