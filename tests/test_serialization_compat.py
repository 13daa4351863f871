"""Compatibility: checkpoints of format 1 still load; save/load behave as torch.save/torch.load
for nested objects, state_dicts, file objects and map_location."""
import importlib.util
import io
import json
import os
from collections import OrderedDict

import numpy as np
import pytest
import safetensors.numpy
import torch

import shendu
from shendu import nn

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "checkpoints")


def _make_v1():
    spec = importlib.util.spec_from_file_location("make_v1", os.path.join(GOLDEN, "make_v1.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _assert_same(a, b):
    """Equal structure, types, dtypes and values (dict and OrderedDict alike)."""
    if isinstance(a, shendu.Tensor):
        assert type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape
        assert a.requires_grad == b.requires_grad
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    elif isinstance(a, np.ndarray):
        assert type(b) is np.ndarray and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for key in a:
            _assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    else:
        assert type(a) is type(b) and a == b


@pytest.mark.parametrize("name", ["v1_nested.safetensors", "v1_nested.npz"])
def test_format_1_checkpoints_load_as_they_were_saved(name):
    expected = _make_v1().nested_checkpoint()
    loaded = shendu.load(os.path.join(GOLDEN, name))
    _assert_same(expected, loaded)
    generator = shendu.Generator()
    generator.set_state(loaded["rng"]["loader"])  # a Trainer resumes its generators so
    np.testing.assert_array_equal(generator.random((4,), shendu.float64),
                                  shendu.Generator(seed=0).random((4,), shendu.float64))


def test_format_1_state_dict_loads_into_a_model():
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    net.load_state_dict(shendu.load(os.path.join(GOLDEN, "v1_state_dict.safetensors")))
    np.testing.assert_array_equal(net[0].bias.detach().numpy(), [1.0, 2.0, 3.0])


# --- torch parity ----------------------------------------------------------------------------

def _nested(lib, array_of):
    """The same nested object in torch or shendu: ``lib`` is the module, ``array_of`` turns a
    NumPy array into its tensor."""
    w = array_of(np.arange(6, dtype=np.float32).reshape(2, 3))
    shared = array_of(np.ones(2, dtype=np.float64))
    leaf = array_of(np.full(3, 2.0, dtype=np.float32))
    leaf.requires_grad_(True)
    return {"model": OrderedDict([("fc.weight", w), ("fc.bias", array_of(np.zeros(2, "f4")))]),
            "param": lib.nn.Parameter(array_of(np.ones(2, "f4"))),
            "frozen": lib.nn.Parameter(array_of(np.ones(1, "f4")), requires_grad=False),
            "leaf": leaf, "a": shared, "b": [shared, (shared,)],
            "numpy": np.arange(4, dtype=np.int16), "ints": {0: 1, 5: [2, None]},
            "codes": array_of(np.array([[1, 2]], dtype=np.int64)),
            "flags": array_of(np.array([True, False])), "scalar": array_of(np.array(3.5, "f4")),
            "meta": ("name/with#odd%chars", 1e-3, float("inf"), True, None)}


def _torch_to_shendu(obj):
    """A torch.load result spelled in shendu types, to compare with shendu.load's."""
    if isinstance(obj, torch.nn.Parameter):
        return nn.Parameter(shendu.from_numpy(obj.detach().numpy()),
                            requires_grad=obj.requires_grad)
    if isinstance(obj, torch.Tensor):
        return shendu.from_numpy(obj.detach().numpy()).requires_grad_(obj.requires_grad)
    if isinstance(obj, dict):
        return {k: _torch_to_shendu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_torch_to_shendu(v) for v in obj)
    return obj


def test_nested_objects_come_back_as_torch_load_gives_them():
    torch_buffer, shendu_buffer = io.BytesIO(), io.BytesIO()
    torch.save(_nested(torch, lambda a: torch.from_numpy(a.copy())), torch_buffer)
    shendu.save(_nested(shendu, lambda a: shendu.from_numpy(a.copy())), shendu_buffer)
    torch_buffer.seek(0)
    shendu_buffer.seek(0)
    theirs = torch.load(torch_buffer, weights_only=False)
    ours = shendu.load(shendu_buffer)
    _assert_same(_torch_to_shendu(theirs), ours)
    assert theirs["a"] is theirs["b"][0] is theirs["b"][1][0]
    assert ours["a"] is ours["b"][0] is ours["b"][1][0]  # the same tensor stays one tensor


def test_state_dict_round_trip_matches_torch_and_loads_into_the_twin():
    shendu.manual_seed(0)
    ours = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    twin = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4),
                               torch.nn.ReLU(), torch.nn.Linear(4, 2))
    twin.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in ours.state_dict().items()})
    buffer = io.BytesIO()
    torch.save(twin.state_dict(), buffer)
    buffer.seek(0)
    theirs = torch.load(buffer, weights_only=True)
    mine = io.BytesIO()
    shendu.save(ours.state_dict(), mine)
    mine.seek(0)
    loaded = shendu.load(mine, weights_only=True)
    assert list(loaded) == list(theirs)
    _assert_same(_torch_to_shendu(dict(theirs)), loaded)
    fresh = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    fresh.load_state_dict(loaded)
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    twin.eval()
    fresh.eval()
    np.testing.assert_allclose(fresh(shendu.from_numpy(x)).detach().numpy(),
                               twin(torch.from_numpy(x)).detach().numpy(), rtol=1e-6, atol=1e-6)


# --- file objects ------------------------------------------------------------------------------

def test_file_objects_and_paths_are_both_accepted(tmp_path):
    ckpt = {"w": shendu.ones(3), "epoch": 4}
    with open(tmp_path / "c.st", "wb") as f:
        shendu.save(ckpt, f)
    with open(tmp_path / "c.st", "rb") as f:
        assert shendu.load(f)["epoch"] == 4
    buffer = io.BytesIO(b"prefix")
    buffer.seek(6)
    shendu.save(ckpt, buffer, format="npz")
    buffer.seek(6)  # read from the position, as torch.load does
    assert shendu.load(buffer)["w"].shape == (3,)
    assert shendu.load(tmp_path / "c.st")["epoch"] == 4


def test_bad_file_arguments_are_named(tmp_path):
    with pytest.raises(TypeError, match="path or a binary file object"):
        shendu.save({}, 3)
    with pytest.raises(TypeError, match="path or a binary file object"):
        shendu.load(3)
    shendu.save({}, tmp_path / "c.st")
    with open(tmp_path / "c.st", encoding="latin-1") as f:
        with pytest.raises(TypeError, match="text mode"):
            shendu.load(f)


# --- map_location ------------------------------------------------------------------------------

def _saved_on_cuda(tmp_path):
    """A file as a GPU run writes it (this machine may have no GPU to write one)."""
    tree = {"$dict": [["w", {"$tensor": "w", "device": "cuda"}], ["n", {"$array": "n"}]]}
    meta = {"shendu.format": "2", "shendu.tree": json.dumps(tree)}
    path = tmp_path / "gpu.st"
    path.write_bytes(safetensors.numpy.save({"w": np.ones(2, np.float32),
                                             "n": np.zeros(1, np.int8)}, metadata=meta))
    return path


@pytest.mark.skipif(shendu.cuda_available(), reason="checks the message of a CPU-only machine")
def test_tensors_saved_on_cuda_need_map_location_on_a_cpu_machine(tmp_path):
    path = _saved_on_cuda(tmp_path)
    with pytest.raises(RuntimeError, match=r"gpu\.st holds tensors saved on 'cuda'.*"
                                           r"map_location='cpu'"):
        shendu.load(path)


@pytest.mark.parametrize("map_location", ["cpu", torch.device("cpu"), {"cuda:0": "cpu"},
                                          {"cuda": torch.device("cpu")},
                                          lambda storage, location: storage])
def test_map_location_spellings_of_torch_load(tmp_path, map_location):
    out = shendu.load(_saved_on_cuda(tmp_path), map_location=map_location)
    assert out["w"].device == "cpu" and isinstance(out["n"], np.ndarray)


def test_map_location_callable_result_and_checks(tmp_path):
    seen = []

    def move(tensor, location):
        seen.append(location)
        return tensor * 2

    out = shendu.load(_saved_on_cuda(tmp_path), map_location=move)
    assert seen == ["cuda"] and out["w"].tolist() == [2.0, 2.0]
    with pytest.raises(TypeError, match="must return a Tensor or None"):
        shendu.load(_saved_on_cuda(tmp_path), map_location=lambda t, loc: 1)
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        shendu.load(_saved_on_cuda(tmp_path), map_location="tpu")
    assert shendu.load(_saved_on_cuda(tmp_path), device="cpu")["w"].device == "cpu"
    with pytest.raises(TypeError, match="not both"):
        shendu.load(_saved_on_cuda(tmp_path), map_location="cpu", device="cpu")
