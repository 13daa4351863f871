"""shendu.vision.datasets.MNIST / FashionMNIST with torchvision's signature, samples and layout."""
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import shendu
import shendu.data.mnist as idx_module
from shendu.utils.data import DataLoader
from shendu.vision import datasets, transforms


def idx_bytes(array):
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(">" + "I" * array.ndim,
                                                                     *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_split(folder, n_train=12, n_test=5, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        (folder / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
        (folder / f"{split}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
        arrays[split] = images, labels
    return arrays


@pytest.mark.parametrize("cls, folder", [(datasets.MNIST, "MNIST"),
                                         (datasets.FashionMNIST, "FashionMNIST")])
def test_torchvision_layout_and_pil_samples(tmp_path, cls, folder):
    arrays = write_split(tmp_path / folder / "raw")
    ds = cls(str(tmp_path), train=True)
    assert len(ds) == 12 and ds.source == str(tmp_path / folder / "raw")
    image, label = ds[3]
    assert isinstance(image, Image.Image) and image.mode == "L" and image.size == (28, 28)
    np.testing.assert_array_equal(np.array(image), arrays["train"][0][3])
    assert type(label) is int and label == arrays["train"][1][3]
    assert ds.data.dtype == shendu.uint8 and ds.targets.dtype == shendu.int64
    assert len(ds.classes) == 10 and ds.class_to_idx[ds.classes[4]] == 4
    test = cls(tmp_path, train=False)
    assert len(test) == 5 and "Split: Test" in repr(test)


def test_transforms_and_target_transform_apply_like_torchvision(tmp_path):
    arrays = write_split(tmp_path / "MNIST" / "raw")
    ds = datasets.MNIST(tmp_path, transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]),
        target_transform=lambda y: y + 100)
    x, y = ds[0]
    expected = (arrays["train"][0][0].astype(np.float32) / 255 - 0.1307) / 0.3081
    assert x.shape == (1, 28, 28) and x.dtype == shendu.float32
    np.testing.assert_allclose(x.numpy()[0], expected, rtol=1e-6)
    assert y == arrays["train"][1][0] + 100
    xb, yb = next(iter(DataLoader(ds, batch_size=4, shuffle=False)))
    assert xb.shape == (4, 1, 28, 28) and yb.dtype == shendu.int64
    np.testing.assert_array_equal(yb.numpy(), arrays["train"][1][:4].astype(np.int64) + 100)


def test_the_existing_lookup_still_applies(tmp_path, monkeypatch):
    write_split(tmp_path / "flat")  # root holding the files directly
    assert len(datasets.MNIST(tmp_path / "flat")) == 12
    write_split(tmp_path / "env" / "mnist", n_train=3)
    monkeypatch.setenv("SHENDU_DATA", str(tmp_path / "env"))
    assert len(datasets.MNIST(tmp_path / "nothing-here")) == 3
    monkeypatch.delenv("SHENDU_DATA")
    with pytest.raises(FileNotFoundError, match=r"MNIST/raw.*download=True"):
        datasets.MNIST(tmp_path / "nothing-here")


def test_download_goes_to_root_raw_like_torchvision(tmp_path, monkeypatch):
    source = write_split(tmp_path / "upstream")
    del source
    fetched = []

    def fake_download(url, dest, sha256, timeout=60.0):
        name = url.rsplit("/", 1)[1]
        plain = (tmp_path / "upstream" / name[:-3])
        blob = plain.read_bytes() if plain.exists() else gzip.decompress(
            (tmp_path / "upstream" / name).read_bytes())
        fetched.append(dest)
        dest.write_bytes(gzip.compress(blob))

    monkeypatch.setattr(idx_module, "download_file", fake_download)
    monkeypatch.setattr(idx_module.MNIST, "_cache_dir", classmethod(lambda c: tmp_path / "c"))
    ds = datasets.MNIST(tmp_path / "root", download=True)
    assert len(ds) == 12 and len(fetched) == 4
    assert all(p.parent == tmp_path / "root" / "MNIST" / "raw" for p in fetched)
    assert ds.source == str(tmp_path / "root" / "MNIST" / "raw")


MNIST_ROOT = Path("/work/shared/data/mnist")


@pytest.mark.skipif(not MNIST_ROOT.is_dir(), reason="the project's shared MNIST copy is not on "
                    "this machine")
def test_real_mnist_files_load_with_torchvision_spelling():
    root = str(MNIST_ROOT)
    ds = datasets.MNIST(root, train=False, transform=transforms.ToTensor())
    x, y = ds[0]
    assert len(ds) == 10000 and x.shape == (1, 28, 28) and y == 7  # the first test digit
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
