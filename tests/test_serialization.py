"""shendu.save / shendu.load: round-trips, torch interop, atomic writes, corruption, no pickle."""
import os
import pickle

import numpy as np
import pytest
import safetensors.torch
import torch

import shendu
from shendu import serialization_io


def _state_dict():
    g = shendu.Generator(seed=0)
    return {"fc.weight": shendu.randn(4, 3, generator=g),
            "fc.bias": shendu.randn(4, generator=g),
            "bn.running_var": shendu.rand(4, generator=g, dtype=shendu.float64),
            "bn.num_batches_tracked": shendu.tensor(7),
            "mask": shendu.tensor([True, False]),
            "codes": shendu.tensor([[1, 2], [3, 4]], dtype=shendu.int32)}


def _assert_same(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, shendu.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            _assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    else:
        assert a == b


@pytest.fixture(params=["safetensors", "npz"])
def fmt(request):
    return request.param


def test_flat_state_dict_round_trip_keeps_keys_and_dtypes(tmp_path, fmt):
    sd = _state_dict()
    shendu.save(sd, tmp_path / "m.ckpt", format=fmt)
    out = shendu.load(tmp_path / "m.ckpt")
    _assert_same(sd, out)
    assert out["fc.weight"].dtype == shendu.float32
    assert out["bn.num_batches_tracked"].dtype == shendu.int64


def test_nested_checkpoint_round_trip_is_exact(tmp_path, fmt):
    ckpt = {"model": _state_dict(),
            "optimizer": {"state": {0: {"step": shendu.tensor(3.0), "exp_avg": shendu.ones(4)},
                                    1: {"momentum_buffer": None}},
                          "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1],
                                            "nesterov": False, "name": "a/b#%c"}]},
            "epoch": 3, "best": float("inf"), "note": None, "history": [0.5, 0.25],
            "@weird": shendu.zeros(2), "a/b": [shendu.ones(1), {"x": shendu.ones(2)}]}
    shendu.save(ckpt, tmp_path / "ckpt.bin", format=fmt)
    _assert_same(ckpt, shendu.load(tmp_path / "ckpt.bin"))


def test_bare_tensor_and_numpy_values(tmp_path, fmt):
    t = shendu.arange(6, dtype=shendu.float64).reshape(2, 3).T  # non-contiguous source
    shendu.save(t, tmp_path / "t", format=fmt)
    _assert_same(shendu.tensor(t.numpy().copy()), shendu.load(tmp_path / "t"))
    shendu.save({"w": np.ones(3, dtype=np.float32), "lr": np.float32(0.5)}, tmp_path / "n",
                format=fmt)
    out = shendu.load(tmp_path / "n")
    # a NumPy array comes back as a NumPy array, as torch.load gives it back
    assert isinstance(out["w"], np.ndarray) and out["w"].dtype == np.float32
    assert out["lr"] == 0.5 and isinstance(out["lr"], float)


def test_loaded_tensors_are_writable(tmp_path):
    shendu.save({"w": shendu.ones(3)}, tmp_path / "w.safetensors")
    w = shendu.load(tmp_path / "w.safetensors")["w"]
    w.add_(1.0)
    np.testing.assert_array_equal(w.numpy(), [2.0, 2.0, 2.0])


def test_nested_tensor_names_follow_documented_scheme(tmp_path):
    ckpt = {"model": {"fc.weight": shendu.ones(1)}, "opt": {"state": {0: {"m": shendu.ones(1)}}},
            "top": shendu.ones(1), "@x": shendu.ones(1), "a/b#": [shendu.ones(1)]}
    shendu.save(ckpt, tmp_path / "c.safetensors")
    names = set(safetensors.torch.load_file(str(tmp_path / "c.safetensors")))
    assert names == {"@model/fc.weight", "@opt/state/#0/m", "top", "@@x", "@a%2Fb%23/#0"}


def test_torch_written_state_dict_loads_into_shendu(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    sd = net.state_dict()
    safetensors.torch.save_file(sd, str(tmp_path / "torch.safetensors"))
    out = shendu.load(tmp_path / "torch.safetensors")
    assert set(out) == set(sd)
    for key, value in sd.items():
        assert isinstance(out[key], shendu.Tensor)
        assert str(out[key].dtype) == str(value.dtype).replace("torch.", "")
        np.testing.assert_array_equal(out[key].numpy(), value.numpy())


def test_shendu_written_state_dict_loads_into_torch(tmp_path):
    sd = _state_dict()
    shendu.save(sd, tmp_path / "s.safetensors")
    theirs = safetensors.torch.load_file(str(tmp_path / "s.safetensors"))
    assert list(sorted(theirs)) == sorted(sd)
    for key, value in sd.items():
        assert str(theirs[key].dtype) == "torch." + str(value.dtype)
        np.testing.assert_array_equal(theirs[key].numpy(), value.numpy())
    net = torch.nn.Linear(3, 4)
    net.load_state_dict({"weight": theirs["fc.weight"], "bias": theirs["fc.bias"]})


def test_atomic_write_keeps_previous_file_on_failure(tmp_path, monkeypatch, fmt):
    target = tmp_path / "ckpt.safetensors"
    shendu.save({"w": shendu.ones(3)}, target, format=fmt)
    before = target.read_bytes()

    def crash(fd):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="simulated"):
        shendu.save({"w": shendu.zeros(1000)}, target, format=fmt)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]  # temp file cleaned up
    monkeypatch.undo()
    np.testing.assert_array_equal(shendu.load(target)["w"].numpy(), np.ones(3))


def test_truncated_and_corrupted_files_raise_naming_the_file(tmp_path, fmt):
    path = tmp_path / "bad.ckpt"
    shendu.save({"w": shendu.ones(100), "meta": {"epoch": 1}}, path, format=fmt)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="bad.ckpt"):
        shendu.load(path)
    path.write_bytes(b"\x00" * 3)
    with pytest.raises(ValueError, match="bad.ckpt.*truncated"):
        shendu.load(path)
    path.write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match="bad.ckpt"):
        shendu.load(path)


def test_corrupted_header_json_is_reported(tmp_path):
    path = tmp_path / "h.safetensors"
    shendu.save({"w": shendu.ones(2)}, path)
    raw = bytearray(path.read_bytes())
    raw[8] = ord("#")  # break the opening brace of the JSON header
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="h.safetensors.*header"):
        shendu.load(path)


def test_npz_fallback_when_safetensors_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(serialization_io, "_st_numpy", None)
    shendu.save({"w": shendu.ones(2), "step": 5}, tmp_path / "c.safetensors")
    assert (tmp_path / "c.safetensors").read_bytes()[:4] == b"PK\x03\x04"
    out = shendu.load(tmp_path / "c.safetensors")
    assert out["step"] == 5 and out["w"].dtype == shendu.float32
    with pytest.raises(RuntimeError, match="safetensors"):
        shendu.save({"w": shendu.ones(2)}, tmp_path / "d", format="safetensors")


def test_npz_never_unpickles(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="evil.npz"):
        shendu.load(path)


def test_save_writes_no_pickle(tmp_path, monkeypatch, fmt):
    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used")

    monkeypatch.setattr(pickle, "dumps", forbidden)
    monkeypatch.setattr(pickle, "dump", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    shendu.save({"model": _state_dict(), "epoch": 1}, tmp_path / "x", format=fmt)
    assert shendu.load(tmp_path / "x")["epoch"] == 1
    assert b"\x80\x04\x95" not in (tmp_path / "x").read_bytes()  # no pickle protocol-4 frame


def test_unsupported_values_are_rejected_by_name(tmp_path):
    with pytest.raises(TypeError, match="set.*'cfg' -> 'tags'"):
        shendu.save({"cfg": {"tags": {1, 2}}}, tmp_path / "x")
    with pytest.raises(TypeError, match="keys must be str or int"):
        shendu.save({(1, 2): shendu.ones(1)}, tmp_path / "x")
    with pytest.raises(ValueError, match="format"):
        shendu.save({}, tmp_path / "x", format="pickle")
    assert not (tmp_path / "x").exists()


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        shendu.load(tmp_path / "nope.safetensors")
