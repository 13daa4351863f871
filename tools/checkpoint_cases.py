"""Issue-15 file cases: one line per case, "clear" when the outcome is right and names the file.

``PYTHONPATH=. python tools/checkpoint_cases.py`` (run it against another checkout to compare).
"""
import io, json, os, pickle, signal, stat, subprocess, sys, tempfile, zipfile
import numpy as np, safetensors.numpy, safetensors.torch, torch
import shendu

d = tempfile.mkdtemp()
P = lambda n: os.path.join(d, n)
results = []

def case(name, fn, ok):
    try:
        out = fn(); err = None
    except BaseException as e:  # noqa
        out, err = None, e
    good = ok(out, err)
    results.append(good)
    msg = f"{type(err).__name__}: {str(err)[:70]}" if err else f"returned {str(out)[:70]}"
    print(f"{'clear ' if good else 'BAD   '} {name:32s} {msg}")

def named(n, *words):
    return lambda out, err: isinstance(err, (ValueError, FileNotFoundError)) and n in str(err) and all(w in str(err) for w in words)

torch.save({"w": torch.ones(2)}, P("t.pt"))
case("torch.save zip", lambda: shendu.load(P("t.pt")), named("t.pt", "pickle", "save_file"))
torch.save({"w": torch.ones(2)}, P("l.pt"), _use_new_zipfile_serialization=False)
case("legacy torch.save", lambda: shendu.load(P("l.pt")), named("l.pt", "pickle"))
open(P("b.pkl"), "wb").write(pickle.dumps([1, 2]))
case("bare pickle", lambda: shendu.load(P("b.pkl")), named("b.pkl", "pickle"))
with zipfile.ZipFile(P("z.npz"), "w") as z: z.writestr("a.txt", "x")
case("zip with non-.npy member", lambda: shendu.load(P("z.npz")), named("z.npz"))
meta = {"shendu.format": "1", "shendu.tree": "[" * 50000 + "]" * 50000}
open(P("deep.st"), "wb").write(safetensors.numpy.save({"w": np.ones(1, "f4")}, metadata=meta))
case("deeply nested metadata", lambda: shendu.load(P("deep.st")), named("deep.st"))
for i, node in enumerate([{"$dict": [[1, 2, 3]]}, {"$dict": 5}, {"$dict": [["k"]]}, {"$dict": [[[1], 2]]}]):
    meta = {"shendu.format": "1", "shendu.tree": json.dumps(node)}
    open(P(f"m{i}.st"), "wb").write(safetensors.numpy.save({"w": np.ones(1, "f4")}, metadata=meta))
    case(f"malformed $dict #{i}", lambda: shendu.load(P(f"m{i}.st")), named(f"m{i}.st", "corrupted"))
safetensors.torch.save_file({"w": torch.ones(2, dtype=torch.bfloat16)}, P("bf.st"))
case("bf16 safetensors", lambda: shendu.load(P("bf.st"))["w"].dtype,
     lambda out, err: err is None and str(out) == "float32")
case("save into missing folder", lambda: shendu.save({}, P("nope/x.st")), named(os.path.join(d, "nope"), "folder"))
deep = []
for _ in range(5000): deep = [deep]
case("save a 5000-deep list", lambda: shendu.save(deep, P("x")), lambda o, e: isinstance(e, (ValueError, TypeError)) and "nested" in str(e))
case("save object array (npz)", lambda: shendu.save({"x": np.array([{}], dtype=object)}, P("o"), format="npz"),
     lambda o, e: isinstance(e, TypeError) and "dtype object" in str(e))
old = os.umask(0o022); shendu.save({}, P("u.st")); os.umask(old)
case("umask 022 gives 0644", lambda: oct(stat.S_IMODE(os.stat(P("u.st")).st_mode)), lambda o, e: o == "0o644")
calls = []
real = os.fsync
def spy(fd): calls.append(stat.S_ISDIR(os.fstat(fd).st_mode)); real(fd)
os.fsync = spy; shendu.save({}, P("f.st")); os.fsync = real
case("folder fsynced after rename", lambda: calls, lambda o, e: o and o[-1] is True)
script = "import os,sys,time,shendu\nos.fsync=lambda fd:(print('w',flush=True),time.sleep(60))\nshendu.save({'w':shendu.zeros(100000)},sys.argv[1])"
p = subprocess.Popen([sys.executable, "-c", script, P("k.st")], stdout=subprocess.PIPE, text=True)
p.stdout.readline(); os.kill(p.pid, signal.SIGKILL); p.wait()
shendu.save({}, P("k.st"))
case("killed save: temp swept", lambda: [n for n in os.listdir(d) if n.endswith(".tmp")], lambda o, e: o == [])
print(f"{sum(results)} of {len(results)} clear")
