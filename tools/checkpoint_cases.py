"""Issue-15 file cases: one line per case, "clear" when the outcome is right and names the file.

``PYTHONPATH=. python tools/checkpoint_cases.py`` (run it against another checkout to compare).
"""
import json
import os
import pickle
import signal
import stat
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import safetensors.numpy
import safetensors.torch
import torch

import shendu

FOLDER = tempfile.mkdtemp()
results = []


def path(name):
    return os.path.join(FOLDER, name)


def case(name, action, is_right):
    try:
        out, err = action(), None
    except BaseException as caught:  # noqa: BLE001 - every outcome is counted
        out, err = None, caught
    results.append(is_right(out, err))
    shown = f"{type(err).__name__}: {str(err)[:70]}" if err else f"returned {str(out)[:70]}"
    print(f"{'clear' if results[-1] else 'BAD  '}  {name:30s} {shown}")


def names(fragment, *words):
    return lambda out, err: (isinstance(err, (ValueError, FileNotFoundError))
                             and fragment in str(err) and all(w in str(err) for w in words))


def tree_file(name, tree):
    meta = {"shendu.format": "1", "shendu.tree": tree}
    with open(path(name), "wb") as f:
        f.write(safetensors.numpy.save({"w": np.ones(1, "f4")}, metadata=meta))
    return path(name)


torch.save({"w": torch.ones(2)}, path("t.pt"))
case("torch.save zip", lambda: shendu.load(path("t.pt")), names("t.pt", "pickle", "save_file"))
torch.save({"w": torch.ones(2)}, path("l.pt"), _use_new_zipfile_serialization=False)
case("legacy torch.save", lambda: shendu.load(path("l.pt")), names("l.pt", "pickle"))
with open(path("b.pkl"), "wb") as f:
    f.write(pickle.dumps([1, 2]))
case("bare pickle", lambda: shendu.load(path("b.pkl")), names("b.pkl", "pickle"))
with zipfile.ZipFile(path("z.npz"), "w") as archive:
    archive.writestr("a.txt", "x")
case("zip with a non-.npy member", lambda: shendu.load(path("z.npz")), names("z.npz"))
deep_file = tree_file("deep.st", "[" * 50000 + "]" * 50000)
case("deeply nested metadata", lambda: shendu.load(deep_file), names("deep.st"))
for i, node in enumerate([{"$dict": [[1, 2, 3]]}, {"$dict": 5}, {"$dict": [["k"]]},
                          {"$dict": [[[1], 2]]}]):
    bad = tree_file(f"m{i}.st", json.dumps(node))
    case(f"malformed $dict #{i}", lambda: shendu.load(bad), names(f"m{i}.st", "corrupted"))
safetensors.torch.save_file({"w": torch.ones(2, dtype=torch.bfloat16)}, path("bf.st"))
case("bf16 safetensors", lambda: shendu.load(path("bf.st"))["w"].dtype,
     lambda out, err: err is None and str(out) == "float32")
case("save into a missing folder", lambda: shendu.save({}, path("nope/x.st")),
     names(path("nope"), "folder"))
deep = []
for _ in range(5000):
    deep = [deep]
case("save a 5000-deep list", lambda: shendu.save(deep, path("x")),
     lambda out, err: isinstance(err, (ValueError, TypeError)) and "nested" in str(err))
case("save an object array (npz)",
     lambda: shendu.save({"x": np.array([{}], dtype=object)}, path("o"), format="npz"),
     lambda out, err: isinstance(err, TypeError) and "dtype object" in str(err))
old_umask = os.umask(0o022)
shendu.save({}, path("u.st"))
os.umask(old_umask)
case("umask 022 gives 0644", lambda: oct(stat.S_IMODE(os.stat(path("u.st")).st_mode)),
     lambda out, err: out == "0o644")
synced = []
real_fsync = os.fsync


def spy(fd):
    synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
    real_fsync(fd)


os.fsync = spy
shendu.save({}, path("f.st"))
os.fsync = real_fsync
case("folder fsynced after rename", lambda: synced, lambda out, err: out and out[-1] is True)
SAVER = ("import os, sys, time, shendu\n"
         "os.fsync = lambda fd: (print('w', flush=True), time.sleep(60))\n"
         "shendu.save({'w': shendu.zeros(100000)}, sys.argv[1])\n")
saver = subprocess.Popen([sys.executable, "-c", SAVER, path("k.st")], stdout=subprocess.PIPE,
                         text=True)
saver.stdout.readline()
os.kill(saver.pid, signal.SIGKILL)
saver.wait()
shendu.save({}, path("k.st"))
case("killed save: temporary swept", lambda: [n for n in os.listdir(FOLDER) if
                                              n.endswith(".tmp")],
     lambda out, err: out == [])
print(f"{sum(results)} of {len(results)} clear")
