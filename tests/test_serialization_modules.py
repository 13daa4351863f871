"""shendu.save(model) / shendu.load of whole modules: what is re-created, what is refused, and
torch's weights_only rule (issue 16, item 2)."""
import dataclasses
import io
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import shendu
from shendu import nn
from shendu import serialization
from shendu.models import GPT, GPTConfig, get_model


def _round_trip(obj, **load_kwargs):
    buffer = io.BytesIO()
    shendu.save(obj, buffer)
    buffer.seek(0)
    return shendu.load(buffer, **load_kwargs)


def _tree(raw: bytes) -> dict:
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    return json.loads(header["__metadata__"]["shendu.tree"])


def _assert_same_module(a, b, x):
    assert type(a) is type(b) and a.training == b.training
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype
        np.testing.assert_array_equal(sa[key].numpy(), sb[key].numpy())
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert type(q) is nn.Parameter and q.requires_grad == p.requires_grad, name
    with shendu.no_grad():
        np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())


class Net(nn.Module):
    """A user model as a script defines it (here at module level of the test file)."""
    inits = 0

    def __init__(self, hidden=5):
        super().__init__()
        Net.inits += 1
        self.hidden = hidden
        self.fc1 = nn.Linear(3, hidden)
        self.fc2 = nn.Linear(hidden, 2)
        self.act = nn.functional.gelu
        self.scale = (0.5, {"k": [1, None]})

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x))) * self.scale[0]


@dataclasses.dataclass
class UserConfig:
    width: int = 4


@pytest.mark.parametrize("build, shape", [
    (lambda: get_model("lenet5"), (2, 1, 28, 28)),
    (lambda: get_model("resnet20"), (2, 3, 32, 32)),
    (lambda: GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)), None),
    (lambda: nn.TransformerEncoderLayer(8, 2, 16, activation="gelu"), (3, 2, 8)),
    (lambda: nn.LSTM(3, 4, num_layers=2), (5, 2, 3)),
])
def test_whole_shendu_models_round_trip(build, shape):
    shendu.manual_seed(0)
    model = build().eval()
    x = shendu.randint(0, 11, (2, 8)) if shape is None else shendu.randn(*shape)
    loaded = _round_trip(model)
    out_a, out_b = model(x), loaded(x)
    if isinstance(out_a, tuple):  # LSTM: (output, (h, c))
        out_a, out_b = out_a[0], out_b[0]
    np.testing.assert_array_equal(out_a.detach().numpy(), out_b.detach().numpy())
    assert type(loaded) is type(model) and not loaded.training
    assert list(loaded.state_dict()) == list(model.state_dict())


def test_a_bare_module_file_is_a_plain_state_dict_for_safetensors(tmp_path):
    import safetensors.torch
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    shendu.save(model, tmp_path / "m.safetensors")
    theirs = safetensors.torch.load_file(str(tmp_path / "m.safetensors"))
    assert sorted(theirs) == sorted(model.state_dict())
    twin = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    twin.load_state_dict(theirs)


def test_training_mode_requires_grad_frozen_layers_and_plain_attributes_survive():
    model = Net()
    model.fc1.weight.requires_grad_(False)
    model.fc2.train(False)
    model.register_buffer("steps", shendu.tensor(4))
    model.register_buffer("cache", shendu.zeros(2), persistent=False)
    model.dtype = shendu.float64
    with serialization.safe_globals([Net]):
        loaded = _round_trip(model)
    assert loaded.fc1.weight.requires_grad is False and loaded.fc1.bias.requires_grad is True
    assert loaded.training and not loaded.fc2.training
    assert loaded.hidden == 5 and loaded.scale == (0.5, {"k": [1, None]})
    assert loaded.act is nn.functional.gelu and loaded.dtype == shendu.float64
    assert "cache" not in loaded.state_dict() and loaded.cache.shape == (2,)
    _assert_same_module(model, loaded, shendu.randn(4, 3))


def test_tied_weights_and_shared_modules_stay_shared():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared, nn.Linear(4, 4))
    model[3].weight = model[0].weight
    loaded = _round_trip(model)
    assert loaded[0] is loaded[2] and loaded[3].weight is loaded[0].weight
    assert len(list(loaded.parameters())) == len(list(model.parameters())) == 3


def test_loading_runs_no_init_and_a_generator_keeps_its_stream():
    generator = shendu.Generator(seed=3)
    model = nn.Sequential(nn.Dropout(0.5, generator=generator),
                          nn.Dropout(0.5, generator=generator))
    generator.random((5,), shendu.float32)  # advance it: the state, not the seed, is saved
    before = Net.inits
    with serialization.safe_globals([Net]):
        loaded = _round_trip({"model": model, "net": Net()})
    assert Net.inits == before + 1  # only the Net() built above
    gen = loaded["model"][0].generator
    assert gen is loaded["model"][1].generator
    np.testing.assert_array_equal(gen.random((3,), shendu.float32),
                                  generator.random((3,), shendu.float32))


def test_a_user_class_needs_the_allow_list_and_the_error_says_how():
    buffer = io.BytesIO()
    shendu.save({"model": Net(), "epoch": 2}, buffer)
    with pytest.raises(ValueError, match=r"<BytesIO> holds a whole module of class "
                                         r"test_serialization_modules\.Net.*safe_globals\(\[Net\]\)"
                                         r".*add_safe_globals\(\[Net\]\)"):
        shendu.load(io.BytesIO(buffer.getvalue()))
    with pytest.raises(ValueError, match="does not lift this"):
        shendu.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    with serialization.safe_globals([Net]):
        assert serialization.get_safe_globals() == [Net]
        assert isinstance(shendu.load(io.BytesIO(buffer.getvalue()))["model"], Net)
    assert serialization.get_safe_globals() == []  # the block's permission ends with it
    serialization.add_safe_globals([Net])
    try:
        assert shendu.load(io.BytesIO(buffer.getvalue()))["epoch"] == 2
    finally:
        serialization.clear_safe_globals()


def test_user_objects_need_the_allow_list_shendu_configs_do_not():
    config = GPTConfig(vocab_size=7)
    assert _round_trip({"c": config})["c"] == config
    with pytest.raises(ValueError, match=r"an object of class .*UserConfig"):
        _round_trip({"c": UserConfig(6)})
    with serialization.safe_globals([UserConfig]):
        assert _round_trip({"c": UserConfig(6)})["c"] == UserConfig(6)


_SCRIPT_SAVE = """
import sys
import shendu
from shendu import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x).relu()

shendu.manual_seed(0)
shendu.save(Net(), sys.argv[1])
"""

_SCRIPT_LOAD = """
import sys
import shendu
from shendu import nn
from shendu.serialization import safe_globals

class Net(nn.Module):
    def __init__(self):
        raise AssertionError("__init__ must not run on loading")

    def forward(self, x):
        return self.fc(x).relu()

try:
    shendu.load(sys.argv[1])
except ValueError as err:
    print("refused:", err)
with safe_globals([Net]):
    model = shendu.load(sys.argv[1])
print("loaded", type(model).__module__, model(shendu.ones(1, 3)).shape)
"""


def test_a_script_defined_class_works_once_allowed(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(shendu.__file__)))
    path = tmp_path / "net.st"
    subprocess.run([sys.executable, "-c", _SCRIPT_SAVE, str(path)], check=True, env=env)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(_SCRIPT_LOAD), str(path)],
                          check=True, env=env, capture_output=True, text=True)
    assert "holds a whole module of class __main__.Net" in done.stdout
    assert "safe_globals([Net])" in done.stdout
    assert "loaded __main__ (1, 2)" in done.stdout
    with serialization.safe_globals([Net]):  # the same qualname in another module matches
        model = shendu.load(path)
    assert type(model) is Net and list(model.state_dict()) == ["fc.weight", "fc.bias"]


def test_weights_only_refuses_module_trees_as_torch_does():
    torch_buffer = io.BytesIO()
    torch.save(torch.nn.Linear(2, 3), torch_buffer)
    torch_buffer.seek(0)
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(torch_buffer, weights_only=True)
    with pytest.raises(ValueError, match=r"weights_only=True loads only tensors.*"
                                         r"safe_globals\(\[Linear\]\)"):
        _round_trip(nn.Linear(2, 3), weights_only=True)
    with pytest.raises(ValueError, match="weights_only=True"):
        _round_trip({"act": nn.functional.relu}, weights_only=True)
    # allowed classes load under weights_only=True, in both
    torch_buffer.seek(0)
    with torch.serialization.safe_globals([torch.nn.Linear]):
        assert isinstance(torch.load(torch_buffer, weights_only=True), torch.nn.Linear)
    with serialization.safe_globals([nn.Linear]):
        assert isinstance(_round_trip(nn.Linear(2, 3), weights_only=True), nn.Linear)
    # state_dicts, containers and arrays load under weights_only=True, in both
    sd = _round_trip({"sd": nn.Linear(2, 3).state_dict(), "step": 1}, weights_only=True)
    assert sorted(sd["sd"]) == ["bias", "weight"]


def test_modules_with_hooks_and_lambdas_are_refused_on_saving(tmp_path):
    model = nn.Linear(2, 2)
    handle = model.register_forward_hook(lambda m, i, o: None)
    with pytest.raises(TypeError, match=r"module at the top level \(Linear\).*hooks in "
                                        r"_forward_hooks.*state_dict"):
        shendu.save(model, tmp_path / "m")
    handle.remove()
    model.act = lambda x: x
    with pytest.raises(TypeError, match=r"key path 'act': a lambda"):
        shendu.save(model, tmp_path / "m")
    model = nn.Linear(2, 2)
    optimizer = shendu.optim.Adam(model.parameters())
    model(shendu.ones(1, 2)).sum().backward()
    optimizer.step()  # its state is keyed by the Parameters themselves
    with pytest.raises(TypeError, match=r"inside the Adam object at the top level; save its "
                                        r"state_dict\(\) instead"):
        shendu.save(optimizer, tmp_path / "m")
    assert not (tmp_path / "m").exists()


def _hostile(tmp_path, node):
    import safetensors.numpy
    meta = {"shendu.format": "2", "shendu.tree": json.dumps(node)}
    path = tmp_path / "evil.st"
    path.write_bytes(safetensors.numpy.save({"w": np.ones(1, np.float32)}, metadata=meta))
    return path


@pytest.mark.parametrize("node, message", [
    ({"$module": "antigravity:Fly", "$id": 0, "state": {"$dict": []}}, "antigravity.Fly"),
    ({"$object": "os:system", "$id": 0, "state": {"$dict": []}}, "os.system"),
    ({"$global": "os:system"}, "a reference to os.system"),
    ({"$global": "shendu.serialization:save"}, "shendu.serialization.save"),
    ({"$global": "shendu.__main__:main"}, "shendu.__main__.main"),
    ({"$global": "shendu.nn.functional:__builtins__"}, "__builtins__"),
    ({"$module": "shendu.backend:Generator", "$id": 0, "state": {"$dict": []}},
     "module of class shendu.backend.Generator"),
    ({"$object": "shendu.backend:Generator", "$id": 0, "state": {"$dict": []}},
     "object of class shendu.backend.Generator"),
])
def test_hostile_files_name_nothing_that_is_imported_or_built(tmp_path, node, message):
    with pytest.raises(ValueError, match=message):
        shendu.load(_hostile(tmp_path, node))
    assert "antigravity" not in sys.modules and "shendu.__main__" not in sys.modules


@pytest.mark.parametrize("state, message", [
    ({"$dict": [["_parameters", {"$dict": [["w", 3]]}]]}, "not Parameters"),
    ({"$dict": [["__class__", 1]]}, "not a dict of attribute names"),
    ({"$dict": [["_forward_hooks", 1]]}, "hook table"),
    ({"$dict": [["training", "yes"]]}, "training flag"),
    ([1], "not a dict of attribute names"),
])
def test_malformed_module_state_is_reported_as_corruption(tmp_path, state, message):
    node = {"$module": "shendu.nn.linear:Linear", "$id": 0, "state": state}
    with pytest.raises(ValueError, match=r"evil\.st is corrupted: .*" + message):
        shendu.load(_hostile(tmp_path, node))
    for ref in (5, [5]):
        with pytest.raises(ValueError, match=r"refers to object .*5.* before defining it"):
            shendu.load(_hostile(tmp_path, {"$ref": ref}))
    bad_generator = {"$generator": {"$dict": [["seed", "x"], ["state", 1]]}, "$id": 0}
    with pytest.raises(ValueError, match=r"corrupted: unreadable Generator state"):
        shendu.load(_hostile(tmp_path, bad_generator))
    bad_state = {"$generator": {"$dict": [["seed", 1], ["state", {"$dict": []}]]}, "$id": 0}
    with pytest.raises(ValueError, match=r"corrupted: unreadable Generator state"):
        shendu.load(_hostile(tmp_path, bad_state))


def test_allow_list_argument_checks():
    with pytest.raises(TypeError, match="expected classes or functions"):
        serialization.add_safe_globals([3])
    with pytest.raises(TypeError, match=r"expected \(class_or_function, 'module.name'\)"):
        serialization.add_safe_globals([(Net,)])
    with serialization.safe_globals([(Net, "old_scripts.Net")]):
        assert serialization.get_safe_globals() == [(Net, "old_scripts.Net")]
