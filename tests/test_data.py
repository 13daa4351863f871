"""shendu.data: datasets and splits, DataLoader, transforms, MNIST / Fashion-MNIST, text."""
import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.utils.data as tud
from oracle import check_op

import shendu
from shendu.data import (MNIST, CharVocab, ConcatDataset, DataLoader, FashionMNIST,
                         SequenceBatches, Subset, TensorDataset, default_collate,
                         load_fashion_mnist, load_text, random_split, read_idx,
                         train_val_split)
from shendu.data import mnist as mnist_module
from shendu.data.transforms import (Compose, Normalize, RandomCrop, RandomHorizontalFlip,
                                    ToTensor)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MNIST_DIR = SHARED / "mnist"
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _dataset(n=10):
    return TensorDataset(shendu.arange(n * 2, dtype=shendu.float32).reshape(n, 2),
                         shendu.arange(n))


# --- datasets and splits ---------------------------------------------------------------------

def test_tensor_dataset_samples_and_batches():
    ds = _dataset()
    x, y = ds[3]
    np.testing.assert_array_equal(x.numpy(), [6.0, 7.0])
    assert int(y) == 3 and len(ds) == 10 and int(ds[-1][1]) == 9
    xb, yb = ds.get_batch([4, 0, -1])
    np.testing.assert_array_equal(yb.numpy(), [4, 0, 9])
    assert xb.shape == (3, 2) and xb.dtype == shendu.float32
    with pytest.raises(IndexError, match="index 10 is out of range"):
        ds[10]


def test_tensor_dataset_rejects_bad_tensors():
    with pytest.raises(ValueError, match=r"same first dimension.*\(3, 2\).*\(4,\)"):
        TensorDataset(shendu.zeros(3, 2), shendu.zeros(4))
    with pytest.raises(ValueError, match="0-d"):
        TensorDataset(shendu.tensor(1.0))
    with pytest.raises(TypeError, match="argument 1 is a list"):
        TensorDataset(shendu.zeros(2), [1, 2])


def test_random_split_lengths_match_torch_and_partition():
    for n, lengths in [(10, [0.5, 0.3, 0.2]), (11, [0.33, 0.33, 0.34]), (17, [0.8, 0.1, 0.1]),
                       (10, [3, 3, 4])]:
        ours = random_split(_dataset(n), lengths, generator=shendu.Generator(seed=0))
        theirs = tud.random_split(range(n), lengths, generator=torch.Generator().manual_seed(0))
        assert [len(s) for s in ours] == [len(s) for s in theirs]
        seen = np.concatenate([s.indices for s in ours])
        np.testing.assert_array_equal(np.sort(seen), np.arange(n))


def test_random_split_is_seeded_and_validates():
    a = random_split(_dataset(), [7, 3], generator=shendu.Generator(seed=5))
    b = random_split(_dataset(), [7, 3], generator=shendu.Generator(seed=5))
    np.testing.assert_array_equal(a[0].indices, b[0].indices)
    assert int(a[1][0][1]) == int(a[1].indices[0])
    with pytest.raises(ValueError, match="sum of lengths 9 does not equal the dataset size 10"):
        random_split(_dataset(), [5, 4])
    with pytest.raises(ValueError, match="non-negative"):
        random_split(_dataset(), [12, -2])


def test_subset_and_concat_batches_match_samples():
    ds = _dataset()
    sub = Subset(ds, [9, 2, 5])
    assert hasattr(sub, "get_batch")
    np.testing.assert_array_equal(sub.get_batch([2, 0])[1].numpy(), [5, 9])
    cat = ConcatDataset([sub, _dataset(4)])
    assert len(cat) == 7 and int(cat[4][1]) == 1
    xb, yb = cat.get_batch([5, 0, 3, 1])
    np.testing.assert_array_equal(yb.numpy(), [2, 9, 0, 2])
    np.testing.assert_array_equal(xb.numpy(), np.stack([cat[i][0].numpy() for i in [5, 0, 3, 1]]))
    assert not hasattr(Subset(["a", "b"], [1]), "get_batch")


# --- DataLoader ------------------------------------------------------------------------------

class _NoSampleAccess(TensorDataset):
    def __getitem__(self, index):
        raise AssertionError("the fast path must not index samples one by one")


def test_loader_uses_one_gather_per_batch_and_matches_torch():
    ds = _NoSampleAccess(shendu.arange(14, dtype=shendu.float32).reshape(7, 2), shendu.arange(7))
    ours = list(DataLoader(ds, batch_size=3))
    theirs = list(tud.DataLoader(tud.TensorDataset(torch.arange(14.0).reshape(7, 2),
                                                   torch.arange(7)), batch_size=3))
    assert len(ours) == len(theirs) == 3
    for (x, y), (tx, ty) in zip(ours, theirs):
        np.testing.assert_array_equal(x.numpy(), tx.numpy())
        np.testing.assert_array_equal(y.numpy(), ty.numpy())
        assert y.dtype == shendu.int64


def test_loader_shuffle_is_deterministic_reshuffles_and_covers_all():
    def epochs(seed):
        loader = DataLoader(_dataset(20), batch_size=6, shuffle=True,
                            generator=shendu.Generator(seed=seed))
        return [np.concatenate([y.numpy() for _, y in loader]) for _ in range(2)]

    first, second = epochs(3)
    again = epochs(3)
    np.testing.assert_array_equal(first, again[0])
    np.testing.assert_array_equal(second, again[1])
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(np.sort(first), np.arange(20))
    shendu.manual_seed(11)
    a = [int(y[0]) for _, y in DataLoader(_dataset(20), 4, shuffle=True)]
    shendu.manual_seed(11)
    b = [int(y[0]) for _, y in DataLoader(_dataset(20), 4, shuffle=True)]
    assert a == b


def test_loader_len_and_drop_last():
    ds = _dataset(10)
    assert len(DataLoader(ds, 4)) == 3 and len(DataLoader(ds, 4, drop_last=True)) == 2
    sizes = [len(y) for _, y in DataLoader(ds, 4, drop_last=True, shuffle=True)]
    assert sizes == [4, 4]
    assert [len(y) for _, y in DataLoader(ds, 4)] == [4, 4, 2]
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            DataLoader(ds, bad)
    with pytest.raises(TypeError, match="shendu.Generator"):
        DataLoader(ds, 2, generator=torch.Generator())


class _Samples:
    def __len__(self):
        return 5

    def __getitem__(self, i):
        return {"x": np.full((2,), i, dtype=np.float64), "id": i, "w": 0.5 * i,
                "name": f"s{i}", "pair": (shendu.ones(3) * i, i % 2 == 0)}


def test_default_collate_handles_nested_samples():
    batch = next(iter(DataLoader(_Samples(), batch_size=3)))
    assert batch["x"].shape == (3, 2) and batch["x"].dtype == shendu.float64
    assert batch["id"].dtype == shendu.int64 and batch["w"].dtype == shendu.float32
    assert batch["name"] == ["s0", "s1", "s2"]
    assert batch["pair"][0].shape == (3, 3) and batch["pair"][1].dtype == shendu.bool
    np.testing.assert_array_equal(batch["pair"][1].numpy(), [True, False, True])
    seen = []
    custom = DataLoader(_Samples(), batch_size=2, collate_fn=lambda s: seen.append(len(s)))
    list(custom)
    assert seen == [2, 2, 1]
    with pytest.raises(RuntimeError, match="equal shapes"):
        default_collate([shendu.zeros(2), shendu.zeros(3)])
    with pytest.raises(TypeError, match="cannot be batched"):
        default_collate([object()])


# --- transforms ------------------------------------------------------------------------------

def test_to_tensor_scales_uint8_like_torchvision():
    raw = np.random.default_rng(0).integers(0, 256, (2, 3, 4, 5), dtype=np.uint8)
    out = ToTensor()(raw)
    assert out.dtype == shendu.float32
    np.testing.assert_array_equal(out.numpy(), torch.from_numpy(raw).float().div(255).numpy())
    assert ToTensor()(out) is out
    hwc = ToTensor(channels_last=True)(raw[0].transpose(1, 2, 0))
    np.testing.assert_array_equal(hwc.numpy(), out.numpy()[0])


def test_normalize_matches_torch_with_gradients():
    mean, std = (0.5, -0.2, 0.1), (0.3, 2.0, 0.7)
    tm = torch.tensor(mean, dtype=torch.float64).view(-1, 1, 1)
    ts = torch.tensor(std, dtype=torch.float64).view(-1, 1, 1)
    check_op(lambda x: Normalize(mean, std)(x), [(2, 3, 4, 4)],
             lambda x: (x - tm) / ts)
    check_op(lambda x: Normalize(0.5, 0.25)(x), [(1, 3, 3)], lambda x: (x - 0.5) / 0.25)
    with pytest.raises(ValueError, match=r"C = 3, got shape \(2, 2, 4, 4\)"):
        Normalize(mean, std)(shendu.zeros(2, 2, 4, 4))
    with pytest.raises(TypeError, match="ToTensor"):
        Normalize(mean, std)(shendu.zeros(3, 4, 4, dtype=shendu.uint8))
    with pytest.raises(ValueError, match="non-zero"):
        Normalize((0.0,), (0.0,))


def test_random_crop_cuts_windows_of_the_padded_image():
    n, pad, size = 40, 2, 4
    x = shendu.arange(n * 2 * 5 * 5, dtype=shendu.float32).reshape(n, 2, 5, 5)
    out = RandomCrop(size, padding=pad, generator=shendu.Generator(seed=0))(x)
    assert out.shape == (n, 2, size, size) and out.dtype == shendu.float32
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    offsets = set()
    for i in range(n):
        hits = [(r, c) for r in range(6) for c in range(6)
                if np.array_equal(padded[i, :, r:r + size, c:c + size], out.numpy()[i])]
        assert hits, f"sample {i} is not a window of its padded image"
        offsets.add(hits[0])
    assert len(offsets) > 5  # offsets are drawn per sample
    again = RandomCrop(size, padding=pad, generator=shendu.Generator(seed=0))(x)
    np.testing.assert_array_equal(again.numpy(), out.numpy())
    assert RandomCrop((3, 2))(x[0]).shape == (2, 3, 2)
    assert RandomCrop(3)(x[0, 0]).shape == (3, 3)
    np.testing.assert_array_equal(RandomCrop(5)(x).numpy(), x.numpy())
    with pytest.raises(ValueError, match="larger than the padded image"):
        RandomCrop(6)(x)
    with pytest.raises(ValueError, match="padding"):
        RandomCrop(3, padding=(1, 2, 3))


def test_random_horizontal_flip_per_sample():
    x = shendu.randn(2000, 1, 2, 3, generator=shendu.Generator(seed=1))
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1.0)(x).numpy(),
                                  torch.flip(torch.from_numpy(x.numpy()), [-1]).numpy())
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0)(x).numpy(), x.numpy())
    out = RandomHorizontalFlip(generator=shendu.Generator(seed=2))(x).numpy()
    flipped = np.all(out == x.numpy()[..., ::-1], axis=(1, 2, 3))
    kept = np.all(out == x.numpy(), axis=(1, 2, 3))
    assert np.all(flipped ^ kept) and 0.45 < flipped.mean() < 0.55
    assert RandomHorizontalFlip()(x[0]).shape == (1, 2, 3)
    with pytest.raises(ValueError, match="p must lie in"):
        RandomHorizontalFlip(p=1.5)


def test_compose_chains_transforms():
    raw = np.full((2, 1, 4, 4), 255, dtype=np.uint8)
    pipeline = Compose([ToTensor(), RandomHorizontalFlip(), Normalize((0.5,), (0.5,))])
    np.testing.assert_array_equal(pipeline(raw).numpy(), np.ones((2, 1, 4, 4), np.float32))
    assert "Normalize" in repr(pipeline)


# --- MNIST / Fashion-MNIST -------------------------------------------------------------------

def test_mnist_reads_the_shared_files():
    test = MNIST(MNIST_DIR, train=False)
    assert test.data.shape == (10000, 28, 28) and test.data.dtype == shendu.uint8
    assert np.bincount(test.targets.numpy()).tolist() == MNIST_TEST_COUNTS
    train = MNIST(MNIST_DIR, train=True)
    assert np.bincount(train.targets.numpy()).tolist() == MNIST_TRAIN_COUNTS
    image, label = train[0]
    assert image.shape == (1, 28, 28) and image.dtype == shendu.float32 and label == 5
    assert 0.0 <= image.numpy().min() and image.numpy().max() == 1.0
    assert train.source == str(MNIST_DIR) and not train.is_subset and len(train.classes) == 10
    xb, yb = next(iter(DataLoader(train, batch_size=32)))
    assert xb.shape == (32, 1, 28, 28) and yb.dtype == shendu.int64 and int(yb[0]) == 5
    np.testing.assert_array_equal(xb.numpy()[0], image.numpy())


def test_mnist_checksums_match_the_shared_files():
    for name, digest in MNIST.sha256.items():
        raw = gzip.decompress((MNIST_DIR / f"{name}.gz").read_bytes())
        assert hashlib.sha256(raw).hexdigest() == digest, name


def test_dataset_lookup_uses_env_then_reports_searched_places(tmp_path, monkeypatch):
    monkeypatch.setenv("SHENDU_DATA", str(SHARED))
    assert len(MNIST(train=False)) == 10000
    monkeypatch.setenv("SHENDU_DATA", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"MNIST.*not found.*download=True"):
        MNIST(train=False)
    monkeypatch.setattr(FashionMNIST, "system_dirs", ())
    with pytest.raises(FileNotFoundError, match="allow_subset=True"):
        FashionMNIST(train=False)
    sub = FashionMNIST(train=False, allow_subset=True)
    assert sub.is_subset and len(sub) == 2000


def test_mnist_transform_applies_to_samples_and_batches():
    ds = MNIST(MNIST_DIR, train=False, transform=Normalize((0.1307,), (0.3081,)))
    image, _ = ds[7]
    xb, _ = ds.get_batch([7])
    raw = ds.data.numpy()[7].astype(np.float32) / 255
    np.testing.assert_allclose(image.numpy()[0], (raw - 0.1307) / 0.3081, rtol=1e-6)
    np.testing.assert_array_equal(xb.numpy()[0], image.numpy())


def test_fashion_mnist_full_or_shipped_subset():
    train = FashionMNIST(train=True, allow_subset=True)
    test = load_fashion_mnist(train=False)
    assert train.is_subset == test.is_subset
    assert train.classes[0] == "T-shirt/top" and train.data.shape[1:] == (28, 28)
    per_class = 900 if train.is_subset else 6000
    assert np.bincount(train.targets.numpy()).tolist() == [per_class] * 10
    if not train.is_subset:
        for name, digest in FashionMNIST.sha256.items():
            raw = gzip.decompress((Path(train.source) / f"{name}.gz").read_bytes())
            assert hashlib.sha256(raw).hexdigest() == digest, name
        sub = load_fashion_mnist(train=False, prefer_full=False)
        labels = test.targets.numpy()
        keep = np.sort(np.concatenate([np.nonzero(labels == c)[0][:200] for c in range(10)]))
        np.testing.assert_array_equal(sub.data.numpy(), test.data.numpy()[keep])
        np.testing.assert_array_equal(sub.targets.numpy(), labels[keep])


def test_shipped_subset_is_small_and_licensed():
    assets = Path(mnist_module.__file__).parent / "assets"
    assert sum(p.stat().st_size for p in assets.iterdir()) < 5_000_000
    assert "Zalando" in (assets / "FASHION_MNIST_LICENSE").read_text()
    sub = load_fashion_mnist(train=False, prefer_full=False)
    assert sub.is_subset and np.bincount(sub.targets.numpy()).tolist() == [200] * 10


def _idx(dims, payload_len=None):
    header = bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + bytes(int(np.prod(dims)) if payload_len is None else payload_len)


def test_corrupt_idx_files_give_named_errors(tmp_path):
    good = tmp_path / "ok-idx3-ubyte"
    good.write_bytes(_idx((2, 3, 3)))
    assert read_idx(good).shape == (2, 3, 3)
    cases = {"magic": (b"\x00\x00\x0d\x03" + bytes(20), "bad IDX magic"),
             "short": (_idx((2, 3, 3), payload_len=10), "wrong length"),
             "long": (_idx((2, 3, 3), payload_len=30), "wrong length"),
             "tiny": (b"\x00\x00", "truncated IDX file"),
             "header": (bytes([0, 0, 8, 3, 0, 0]), "truncated IDX header")}
    for name, (blob, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(blob)
        with pytest.raises(ValueError, match=f"{name}.*{message}"):
            read_idx(path)
    bad_gz = tmp_path / "broken.gz"
    bad_gz.write_bytes(gzip.compress(_idx((2, 3, 3)))[:-10])
    with pytest.raises(ValueError, match="broken.gz: not a valid gzip file"):
        read_idx(bad_gz)


def test_mnist_with_mismatched_files_names_the_file(tmp_path):
    for split, n_img, n_lab in (("train", 3, 3), ("t10k", 4, 5)):
        (tmp_path / f"{split}-images-idx3-ubyte").write_bytes(_idx((n_img, 28, 28)))
        (tmp_path / f"{split}-labels-idx1-ubyte").write_bytes(_idx((n_lab,)))
    assert len(MNIST(tmp_path, train=True)) == 3
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte: expected 4 labels"):
        MNIST(tmp_path, train=False)


def test_download_verifies_sha256(tmp_path):
    raw = b"\x00\x00\x08\x01\x00\x00\x00\x02\x07\x03"
    src = tmp_path / "src-labels-idx1-ubyte.gz"
    src.write_bytes(gzip.compress(raw))
    dest = tmp_path / "out" / "labels.gz"
    dest.parent.mkdir()
    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        mnist_module.download_file(src.as_uri(), dest, "0" * 64)
    assert not dest.exists()
    mnist_module.download_file(src.as_uri(), dest, hashlib.sha256(raw).hexdigest())
    np.testing.assert_array_equal(read_idx(dest), [7, 3])


# --- text ------------------------------------------------------------------------------------

def test_char_vocab_round_trip_and_errors():
    text = "héllo wörld, 深度!"
    vocab = CharVocab(text)
    assert vocab.chars == "".join(sorted(set(text))) and vocab.vocab_size == len(set(text))
    ids = vocab.encode(text)
    assert ids.dtype == shendu.int64 and ids.shape == (len(text),)
    assert [vocab.itos[i] for i in ids.tolist()] == list(text)
    assert vocab.decode(ids) == text and vocab.decode([vocab.stoi["深"]]) == "深"
    assert CharVocab(vocab.chars).chars == vocab.chars
    with pytest.raises(ValueError, match=r"not in the vocabulary: '\?z'"):
        vocab.encode("zoo?")
    with pytest.raises(ValueError, match="ids must lie in"):
        vocab.decode([len(vocab)])


def test_load_text_default_and_errors(tmp_path):
    text = load_text()
    assert len(text) == 1115394 and text.startswith("First Citizen")
    assert CharVocab(text).vocab_size == 65
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(ValueError, match="bad.txt is not valid UTF-8"):
        load_text(tmp_path / "bad.txt")
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_text(tmp_path / "missing.txt")


def test_train_val_split_and_sequence_batches():
    ids = shendu.arange(100)
    train, val = train_val_split(ids, val_fraction=0.1)
    np.testing.assert_array_equal(val.numpy(), np.arange(90, 100))
    assert train.shape == (90,)
    batches = SequenceBatches(train, block_size=8, batch_size=5,
                              generator=shendu.Generator(seed=0))
    assert len(batches) == 2
    pairs = list(batches)
    x, y = pairs[0]
    assert x.shape == y.shape == (5, 8) and x.dtype == y.dtype == shendu.int64
    np.testing.assert_array_equal(x.numpy(), x.numpy()[:, :1] + np.arange(8))
    np.testing.assert_array_equal(y.numpy(), x.numpy() + 1)
    assert y.numpy().max() <= 89
    again = SequenceBatches(train, 8, 5, generator=shendu.Generator(seed=0)).sample()
    np.testing.assert_array_equal(again[0].numpy(), x.numpy())
    with pytest.raises(ValueError, match="need more than block_size=8"):
        SequenceBatches(shendu.arange(8), 8, 2)
    with pytest.raises(ValueError, match="1-d integer"):
        train_val_split(shendu.zeros(3, 2))
