"""RNN, GRU, LSTM and their cells against torch (Concepts N4.1.1-N4.1.3): outputs, final
states and every gradient (input, h0/c0, each weight) in float64 under a random upstream
gradient, for the fused and the composed path; state_dict both ways; init; dropout between
layers; 1,000-step sequences; second derivatives; one hidden product per step; named errors."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle import assert_close, to_torch

import shendu
from shendu import nn
from shendu.ops import linalg

TORCH = {"RNN": torch.nn.RNN, "GRU": torch.nn.GRU, "LSTM": torch.nn.LSTM,
         "RNNCell": torch.nn.RNNCell, "GRUCell": torch.nn.GRUCell, "LSTMCell": torch.nn.LSTMCell}


def twins(name, *args, fused=None, **kwargs):
    """Our layer in float64 and torch's, holding our weights."""
    extra = {} if fused is None else {"fused": fused}
    ours = getattr(nn, name)(*args, **kwargs, **extra).double()
    theirs = TORCH[name](*args, **kwargs).double()
    theirs.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in ours.state_dict().items()})
    return ours, theirs


def flat(result):
    """(output, h) / (output, (h, c)) / h / (h, c) -> a flat list."""
    if not isinstance(result, tuple):
        return [result]
    out = []
    for r in result:
        out += flat(r)
    return out


def compare(ours, theirs, arrays, hx_split=False, rng=None, rtol=1e-7):
    """Forward both on the same float64 data (arrays[0] the input, the rest the states) and
    back-propagate one random upstream gradient through every output."""
    rng = rng or np.random.default_rng(1)
    xs = [shendu.tensor(a, requires_grad=True) for a in arrays]
    ts = [to_torch(a, requires_grad=True) for a in arrays]
    if len(arrays) == 1:
        out, tout = ours(xs[0]), theirs(ts[0])
    elif hx_split:  # LSTM: hx = (h0, c0)
        out, tout = ours(xs[0], tuple(xs[1:])), theirs(ts[0], tuple(ts[1:]))
    else:
        out, tout = ours(xs[0], xs[1]), theirs(ts[0], ts[1])
    out, tout = flat(out), flat(tout)
    assert len(out) == len(tout)
    for i, (o, t) in enumerate(zip(out, tout)):
        assert_close(o, t, rtol, what=f"output {i}")
        assert o.dtype == shendu.float64
    names = [n for n, _ in theirs.named_parameters()]
    assert names == [n for n, _ in ours.named_parameters()]
    params, tparams = dict(ours.named_parameters()), dict(theirs.named_parameters())
    ups = [rng.standard_normal(t.shape) for t in tout]
    grads = shendu.autograd.grad(out, xs + [params[n] for n in names],
                                 [shendu.tensor(u) for u in ups])
    tgrads = torch.autograd.grad(tout, ts + [tparams[n] for n in names],
                                 [to_torch(u) for u in ups])
    labels = [f"input {i}" for i in range(len(xs))] + names
    for label, g, tg in zip(labels, grads, tgrads):
        assert_close(g, tg, rtol, what=f"grad of {label}")


CONFIGS = [{}, {"num_layers": 2, "bidirectional": True, "batch_first": True},
           {"num_layers": 2, "bias": False}, {"bidirectional": True, "bias": False}]
MODES = [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("GRU", {}), ("LSTM", {})]


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("name,mode_kw", MODES)
def test_layer_matches_torch(name, mode_kw, config, fused):
    ours, theirs = twins(name, 3, 4, fused=fused, **mode_kw, **config)
    rng = np.random.default_rng(0)
    states = (2 if config.get("bidirectional") else 1) * config.get("num_layers", 1)
    x = rng.standard_normal((2, 5, 3) if config.get("batch_first") else (5, 2, 3))
    hx = [rng.standard_normal((states, 2, 4)) for _ in range(2 if name == "LSTM" else 1)]
    compare(ours, theirs, [x] + hx, hx_split=name == "LSTM")
    compare(ours, theirs, [x])  # zero initial states


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("name", ["RNN", "GRU", "LSTM"])
def test_unbatched_input_matches_torch(name, fused):
    ours, theirs = twins(name, 3, 4, num_layers=2, bidirectional=True, batch_first=True,
                         fused=fused)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 3))  # (L, H_in): batch_first does not apply
    hx = [rng.standard_normal((4, 4)) for _ in range(2 if name == "LSTM" else 1)]
    compare(ours, theirs, [x] + hx, hx_split=name == "LSTM")
    compare(ours, theirs, [x])


@settings(max_examples=8, deadline=None)
@given(length=st.integers(1, 6), batch=st.integers(1, 4), features=st.integers(1, 5),
       hidden=st.integers(1, 5), name=st.sampled_from(["RNN", "GRU", "LSTM"]))
def test_random_shapes_match_torch(length, batch, features, hidden, name):
    ours, theirs = twins(name, features, hidden)
    compare(ours, theirs, [np.random.default_rng(length).standard_normal(
        (length, batch, features))])


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("name,kw", [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}),
                                     ("GRUCell", {}), ("LSTMCell", {})])
def test_cell_matches_torch(name, kw, bias):
    ours, theirs = twins(name, 3, 4, bias=bias, **kw)
    rng = np.random.default_rng(3)
    lstm = name == "LSTMCell"
    for batch in [(5,), ()]:
        x = rng.standard_normal(batch + (3,))
        hx = [rng.standard_normal(batch + (4,)) for _ in range(2 if lstm else 1)]
        compare(ours, theirs, [x] + hx, hx_split=lstm)
        compare(ours, theirs, [x])


@pytest.mark.parametrize("make", [
    lambda m: m.RNN(3, 4), lambda m: m.RNN(3, 4, 2, "relu", False, True, 0.5, True),
    lambda m: m.GRU(3, 4, num_layers=3, bidirectional=True), lambda m: m.GRU(3, 4, bias=False),
    lambda m: m.LSTM(3, 4, 2, batch_first=True, dropout=0.25, bidirectional=True),
    lambda m: m.RNNCell(3, 4, nonlinearity="relu"), lambda m: m.GRUCell(3, 4, bias=False),
    lambda m: m.LSTMCell(3, 4)])
def test_state_dict_repr_and_init_equal_torch(make):
    shendu.manual_seed(0)
    ours, theirs = make(nn), make(torch.nn)
    assert repr(ours) == repr(theirs)
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    for key, value in ours_sd.items():
        assert tuple(value.shape) == tuple(theirs_sd[key].shape)
        assert value.dtype == shendu.float32
    # torch's init: U(-k, k), k = 1/sqrt(hidden) for every weight and bias
    bound = 1 / math.sqrt(ours.hidden_size)
    values = np.concatenate([v.numpy().ravel() for v in ours_sd.values()])
    assert np.abs(values).max() <= bound and np.abs(values).max() > 0.8 * bound
    assert abs(values.mean()) < 0.2 * bound
    # torch -> ours, then both compute the same thing; ours -> torch was used by twins()
    theirs_sd = {k: v + 0.1 for k, v in theirs.state_dict().items()}
    theirs.load_state_dict(theirs_sd)
    ours.eval(), theirs.eval()  # no dropout between layers
    ours.load_state_dict({k: shendu.tensor(v.numpy()) for k, v in theirs_sd.items()})
    x = np.random.default_rng(4).standard_normal((2, 3) if "Cell" in type(ours).__name__
                                                 else (5, 2, 3)).astype(np.float32)
    with torch.no_grad():
        expected = flat(theirs(torch.from_numpy(x)))
    for o, t in zip(flat(ours(shendu.tensor(x))), expected):
        assert_close(o, t, rtol=1e-5, atol=1e-6)


def test_all_weights_follow_torch():
    ours, theirs = nn.LSTM(3, 4, num_layers=2, bidirectional=True), \
        torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    assert [[tuple(w.shape) for w in ws] for ws in ours.all_weights] == \
        [[tuple(w.shape) for w in ws] for ws in theirs.all_weights]
    assert ours.all_weights[3][1] is ours.weight_hh_l1_reverse


@pytest.mark.parametrize("fused", [True, False])
def test_dropout_between_layers(fused):
    """Train mode: layer 0's output goes through F.dropout with the layer's generator before
    layer 1; eval mode (and the last layer) has no dropout, as torch."""
    rng = np.random.default_rng(5)
    gen = shendu.Generator().manual_seed(7)
    ours = nn.LSTM(3, 4, num_layers=2, dropout=0.5, generator=gen, fused=fused).double()
    first, second = nn.LSTM(3, 4).double(), nn.LSTM(4, 4).double()
    sd = ours.state_dict()
    first.load_state_dict({k: v for k, v in sd.items() if k.endswith("l0")})
    second.load_state_dict({k.replace("l1", "l0"): v for k, v in sd.items()
                            if k.endswith("l1")})
    x = shendu.tensor(rng.standard_normal((6, 2, 3)), requires_grad=True)
    out, (h_n, c_n) = ours(x)
    mid, (h0, c0) = first(x)
    dropped = nn.functional.dropout(mid, 0.5, generator=shendu.Generator().manual_seed(7))
    assert (dropped.detach().numpy() == 0).any()
    expected, (h1, c1) = second(dropped)
    assert_close(out, expected.detach().numpy(), what="train-mode output")
    for ours_state, states in ((h_n, (h0, h1)), (c_n, (c0, c1))):
        assert_close(ours_state, np.concatenate([s.detach().numpy() for s in states]))
    out.sum().backward()
    assert np.isfinite(x.grad.numpy()).all() and ours.weight_ih_l0.grad is not None
    # eval mode: no dropout, equal to torch's eval
    theirs = torch.nn.LSTM(3, 4, num_layers=2, dropout=0.5).double()
    theirs.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in sd.items()})
    ours.eval(), theirs.eval()
    compare(ours, theirs, [rng.standard_normal((6, 2, 3))])
    # training outputs differ from eval's (the masks act) and repeat with the generator seed
    ours.train()
    gen.manual_seed(11)
    with shendu.no_grad():
        a = ours(x)[0].numpy()
        gen.manual_seed(11)
        b = ours(x)[0].numpy()
        np.testing.assert_array_equal(a, b)
        assert not np.allclose(a, ours.eval()(x)[0].numpy())


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("name", ["GRU", "LSTM"])
def test_thousand_steps_back_propagate(name, fused):
    """The engine's iterative sort: no recursion limit over 1,000 unrolled steps."""
    ours, theirs = twins(name, 2, 3, fused=fused)
    compare(ours, theirs, [np.random.default_rng(6).standard_normal((1000, 1, 2))])


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("name", ["RNN", "GRU", "LSTM"])
def test_float32_in_float32_out(name, fused):
    layer = getattr(nn, name)(3, 4, bidirectional=True, fused=fused)
    out, state = layer(shendu.randn(5, 2, 3, requires_grad=True))
    states = state if name == "LSTM" else (state,)
    assert out.dtype == shendu.float32 and all(s.dtype == shendu.float32 for s in states)
    out.sum().backward()
    assert all(p.grad.dtype == shendu.float32 for p in layer.parameters())


@pytest.mark.parametrize("fused,products", [(True, 1), (False, 1 + 7)])
def test_one_projection_and_one_hidden_product_per_step(fused, products, monkeypatch):
    """x W_ih^T for all steps is one product; the composed loop adds one h W_hh^T per step
    (all gates at once); the fused layer does its per-step products inside one Function."""
    from shendu.ops import nn as nn_ops
    calls = []
    original = linalg.MatMul.forward
    monkeypatch.setattr(linalg.MatMul, "forward",
                        lambda self, a, b: calls.append(a.shape) or original(self, a, b))
    original_linear = nn_ops.Linear.forward  # F.linear's one-node product and bias
    monkeypatch.setattr(nn_ops.Linear, "forward", lambda self, x, w, b: calls.append(x.shape)
                        or original_linear(self, x, w, b))
    nn.LSTM(3, 4, fused=fused)(shendu.randn(7, 2, 3))
    assert len(calls) == products
    assert calls[0] == (14, 3)  # (L * N, H_in): every step's input at once


def test_second_derivative_composed_matches_torch_and_fused_refuses():
    rng = np.random.default_rng(8)
    x_np = rng.standard_normal((4, 2, 3))
    v_np = rng.standard_normal((4, 2, 3))
    ours, theirs = twins("LSTM", 3, 4, fused=False)
    x, tx = shendu.tensor(x_np, requires_grad=True), to_torch(x_np, requires_grad=True)
    (g,) = shendu.autograd.grad((ours(x)[0] ** 2).sum(), x, create_graph=True)
    (tg,) = torch.autograd.grad((theirs(tx)[0] ** 2).sum(), tx, create_graph=True)
    (hv,) = shendu.autograd.grad((g * shendu.tensor(v_np)).sum(), x)
    (thv,) = torch.autograd.grad((tg * to_torch(v_np)).sum(), tx)
    assert_close(hv, thv, what="Hessian-vector product")
    fused = nn.LSTM(3, 4).double()
    x = shendu.tensor(x_np, requires_grad=True)
    with pytest.raises(RuntimeError, match="LSTMLayerBackward is once-differentiable"):
        shendu.autograd.grad((fused(x)[0] ** 2).sum(), x, create_graph=True)


def test_inference_under_no_grad_records_no_graph():
    layer = nn.GRU(3, 4)
    with shendu.no_grad():
        out, h_n = layer(shendu.randn(5, 2, 3))
    assert out.grad_fn is None and not out.requires_grad
    assert_close(h_n[0], out[-1].numpy(), what="h_n is the last output")
    assert layer(shendu.randn(5, 2, 3))[0].grad_fn is not None


@pytest.mark.parametrize("call,match", [
    (lambda: nn.LSTM(10, 20)(shendu.zeros(5, 3, 7)),
     r"LSTM\(10, 20\): expected input \(L, N, H_in\) with H_in = 10.*got \(5, 3, 7\)"),
    (lambda: nn.GRU(10, 20, batch_first=True)(shendu.zeros(2, 5, 3, 10)),
     r"GRU\(10, 20, batch_first=True\): expected input \(N, L, H_in\).*got \(2, 5, 3, 10\)"),
    (lambda: nn.RNN(10, 20, 2)(shendu.zeros(5, 3, 10), shendu.zeros(1, 3, 20)),
     r"RNN\(10, 20, num_layers=2\): expected h0 of shape \(2, 3, 20\).*got \(1, 3, 20\)"),
    (lambda: nn.LSTM(10, 20)(shendu.zeros(5, 10), (shendu.zeros(1, 3, 20),) * 2),
     r"LSTM\(10, 20\): expected h0 of shape \(1, 20\) for input of shape \(5, 10\)"),
    (lambda: nn.LSTM(10, 20)(shendu.zeros(5, 3, 10), shendu.zeros(1, 3, 20)),
     r"LSTM\(10, 20\): expected hx = \(h0, c0\), got 1 tensors"),
    (lambda: nn.GRU(10, 20)(shendu.zeros(0, 3, 10)), r"GRU\(10, 20\): expected a sequence"),
    (lambda: nn.GRUCell(10, 20)(shendu.zeros(3, 7)),
     r"GRUCell\(10, 20\): expected input \(N, 10\) or unbatched \(10,\), got \(3, 7\)"),
    (lambda: nn.LSTMCell(10, 20)(shendu.zeros(3, 10), (shendu.zeros(3, 20), shendu.zeros(20))),
     r"LSTMCell\(10, 20\): expected c0 of shape \(3, 20\).*got \(20,\)"),
    (lambda: nn.RNNCell(10, 20)(shendu.zeros(2, 3, 10)), r"RNNCell\(10, 20\): expected input"),
])
def test_bad_input_names_layer_and_shapes(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_types_and_arguments():
    with pytest.raises(TypeError, match=r"LSTM: input dtype float64 does not match"):
        nn.LSTM(3, 4)(shendu.zeros(2, 1, 3, dtype=shendu.float64))
    with pytest.raises(TypeError, match=r"GRU\(3, 4\): h0 has dtype float64"):
        nn.GRU(3, 4)(shendu.zeros(2, 1, 3), shendu.zeros(1, 1, 4, dtype=shendu.float64))
    with pytest.raises(TypeError, match=r"RNN\(3, 4\): expected input to be a shendu.Tensor"):
        nn.RNN(3, 4)(np.zeros((2, 1, 3)))
    with pytest.raises(ValueError, match="unknown nonlinearity 'gelu'"):
        nn.RNN(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match="dropout should be a number in"):
        nn.GRU(3, 4, 2, dropout=1.5)
    with pytest.raises(ValueError, match="proj_size is not supported"):
        nn.LSTM(3, 4, proj_size=2)
    with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
        nn.LSTMCell(3, 0)
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        nn.LSTM(3, 4, dropout=0.5)
