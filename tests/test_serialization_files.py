"""Issue 15, loading and saving files: foreign and hostile files are refused by name, bf16
loads, and saves are atomic, clean up after kills, honour the umask and fsync the folder."""
import io
import json
import os
import pickle
import signal
import socket
import stat
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch

import shendu


def _write_tree(path, tree, tensors=None):
    """A safetensors file with a hand-made shendu.tree (what a corrupted or hostile file holds)."""
    meta = {"shendu.format": "1", "shendu.tree": json.dumps(tree)}
    path.write_bytes(safetensors.numpy.save(tensors or {"w": np.ones(2, np.float32)},
                                            metadata=meta))
    return path


# --- foreign files ---------------------------------------------------------------------------

def test_torch_save_zip_is_refused_as_pickle_with_the_conversion(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 3).state_dict(), path)
    with pytest.raises(ValueError, match=r"model\.pt.*torch\.save \(pickle\).*never unpickles.*"
                                         r"safetensors\.torch\.save_file"):
        shendu.load(path)


def test_legacy_torch_save_and_bare_pickle_are_refused(tmp_path):
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match=r"legacy\.pt is a pickle file.*save_file"):
        shendu.load(legacy)
    bare = tmp_path / "bare.pkl"
    bare.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    with pytest.raises(ValueError, match=r"bare\.pkl is a pickle file"):
        shendu.load(bare)


def test_zip_with_a_non_npy_member_is_refused_by_name(tmp_path):
    path = tmp_path / "odd.npz"
    buffer = io.BytesIO()
    np.save(buffer, np.ones(2))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", buffer.getvalue())
        archive.writestr("notes.txt", "hello")
    with pytest.raises(ValueError, match=r"odd\.npz is a zip archive but not a NumPy \.npz.*"
                                         r"'notes\.txt'.*torch\.save"):
        shendu.load(path)


def test_torch_bf16_safetensors_loads_as_float32_exactly(tmp_path):
    weights = torch.randn(3, 5, generator=torch.Generator().manual_seed(0)).bfloat16()
    path = tmp_path / "bf16.safetensors"
    safetensors.torch.save_file({"w": weights, "b": torch.arange(3)}, str(path))
    out = shendu.load(path)
    assert out["w"].dtype == shendu.float32 and out["b"].dtype == shendu.int64
    np.testing.assert_array_equal(out["w"].numpy(), weights.float().numpy())
    out["w"].add_(1.0)  # writable, like every loaded tensor
    assert "bfloat16" in shendu.load.__doc__


# --- hostile or corrupted metadata -----------------------------------------------------------

def test_deeply_nested_metadata_is_a_clear_error_not_recursion(tmp_path):
    deep = "[" * 50000 + "]" * 50000
    path = tmp_path / "deep.safetensors"
    meta = {"shendu.format": "1", "shendu.tree": deep}
    path.write_bytes(safetensors.numpy.save({"w": np.ones(1, np.float32)}, metadata=meta))
    with pytest.raises(ValueError, match=r"deep\.safetensors"):
        shendu.load(path)
    tree = {"$tensor": "w"}
    for _ in range(200):  # valid JSON the json module reads, nested past shendu's limit
        tree = [tree]
    with pytest.raises(ValueError, match=r"deep\.safetensors nests containers more than"):
        shendu.load(_write_tree(path, tree))


def test_saving_a_too_deep_or_self_containing_object_is_a_clear_error(tmp_path):
    deep = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValueError, match="nested more than"):
        shendu.save(deep, tmp_path / "x")
    loop = {"a": []}
    loop["a"].append(loop)
    with pytest.raises(ValueError, match="does a container hold itself"):
        shendu.save(loop, tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("node, message", [
    ({"$dict": [["k", 1, 2]]}, r"not a \[key, value\] pair"),
    ({"$dict": [["k"]]}, r"not a \[key, value\] pair"),
    ({"$dict": 5}, r"not a list of \[key, value\] pairs"),
    ({"$dict": [[[1], 2]]}, r"keys are str or int"),
    ({"$dict": [[True, 2]]}, r"keys are str or int"),
    ({"$tuple": {"a": 1}}, r"\$tuple node holds"),
    ({"$tensor": ["w"]}, r"refers to tensor \['w'\]"),
    ({"$tensor": "w", "device": "tpu"}, r"device 'tpu'"),
    ({"$what": 1}, r"unexpected metadata node"),
])
def test_malformed_nodes_are_reported_as_corruption(tmp_path, node, message):
    path = _write_tree(tmp_path / "bad.safetensors", {"$dict": [["x", node]]})
    with pytest.raises(ValueError, match=r"bad\.safetensors is corrupted: .*" + message):
        shendu.load(path)


def test_unknown_format_version_is_refused(tmp_path):
    path = tmp_path / "future.safetensors"
    meta = {"shendu.format": "99", "shendu.tree": json.dumps({"$tensor": "w"})}
    path.write_bytes(safetensors.numpy.save({"w": np.ones(1, np.float32)}, metadata=meta))
    with pytest.raises(ValueError, match=r"format '99'.*newer shendu"):
        shendu.load(path)


def test_object_arrays_are_refused_on_saving_instead_of_pickled(tmp_path):
    with pytest.raises(TypeError, match=r"dtype object at key path 'x'"):
        shendu.save({"x": np.array([{"a": 1}], dtype=object)}, tmp_path / "o", format="npz")
    assert not (tmp_path / "o").exists()


# --- writing ---------------------------------------------------------------------------------

def test_save_into_a_missing_folder_names_the_folder(tmp_path):
    folder = tmp_path / "runs" / "exp1"
    with pytest.raises(FileNotFoundError, match=r"the folder '.*runs/exp1' does not exist"):
        shendu.save({"w": shendu.ones(2)}, folder / "ckpt.st")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_files_get_the_permissions_the_umask_allows(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        shendu.save({"w": shendu.ones(2)}, tmp_path / "c.st")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "c.st").st_mode) == mode


def test_save_into_a_folder_without_write_permission_names_the_folder(tmp_path, monkeypatch):
    real_open = os.open

    def refuse(path, flags, mode=0o777):  # what a read-only folder does (the tests run as root)
        if flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(PermissionError, match="no permission to create files in the folder"):
        shendu.save({"w": shendu.ones(2)}, tmp_path / "c.st")


def test_the_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src, dst):
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    shendu.save({"w": shendu.ones(2)}, tmp_path / "c.st")
    assert events == ["fsync file", "replace", "fsync dir"]


_KILLED_SAVER = """
import os, sys, time
import shendu
def stall(fd):  # the bytes are written; the process is killed before the rename
    print("writing", flush=True)
    time.sleep(60)
os.fsync = stall
shendu.save({"w": shendu.zeros(50000)}, sys.argv[1])
"""


def test_a_killed_save_leaves_the_old_file_and_its_temporary_is_swept(tmp_path):
    target = tmp_path / "ckpt.st"
    shendu.save({"w": shendu.ones(3)}, target)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(shendu.__file__)))
    saver = subprocess.Popen([sys.executable, "-c", _KILLED_SAVER, str(target)],
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert saver.stdout.readline().strip() == "writing"
        os.kill(saver.pid, signal.SIGKILL)
    finally:
        saver.wait(timeout=30)
        saver.stdout.close()
    leftovers = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert len(leftovers) == 1 and os.path.getsize(tmp_path / leftovers[0]) > 200000
    np.testing.assert_array_equal(shendu.load(target)["w"].numpy(), np.ones(3))
    shendu.save({"w": shendu.zeros(2)}, target)  # the next save of the target sweeps it
    assert sorted(os.listdir(tmp_path)) == ["ckpt.st"]


def test_the_sweep_spares_temporaries_of_live_writers_and_other_targets(tmp_path):
    host = socket.gethostname().replace(".", "_")
    live = tmp_path / f".ckpt.st.{host}.{os.getpid()}.abcd1234.tmp"  # a save in progress
    other = tmp_path / f".other.st.{host}.999999999.abcd1234.tmp"
    live.write_bytes(b"x")
    other.write_bytes(b"x")
    shendu.save({"w": shendu.ones(1)}, tmp_path / "ckpt.st")
    assert live.exists() and other.exists()
