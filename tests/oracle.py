"""PyTorch as the oracle: one-line parity checks for ops and layers.

``check_op(fn, inputs)`` runs ``fn`` on shendu and on torch tensors built from the same
seeded float64 data, compares values, back-propagates the same *random* upstream gradient
through both and compares every input's gradient; it also checks float32 in -> float32 out and,
with ``second_order=True``, compares a Hessian-vector product made by double backward.
"""
from __future__ import annotations

import os

import numpy as np
import torch

import shendu

RTOL, ATOL = 1e-7, 1e-9
# SHENDU_TEST_DEVICE=cuda (see conftest.py): shendu computes on the GPU, whose kernels sum in
# other orders (and often in float32 internally), so every comparison is held to at least
# float32 tolerances there; torch stays on the CPU
DEVICE = os.environ.get("SHENDU_TEST_DEVICE", "cpu")
DEVICE_RTOL, DEVICE_ATOL = (0.0, 0.0) if DEVICE == "cpu" else (1e-4, 1e-5)


def to_torch(x, requires_grad=False):
    t = torch.from_numpy(np.array(x))
    if requires_grad:
        t.requires_grad_(True)
    return t


def _arrays(inputs, rng, low, high):
    arrays = []
    for spec in inputs:
        if isinstance(spec, np.ndarray):
            arrays.append(spec)
        elif isinstance(spec, (tuple, list)):
            arrays.append(rng.uniform(low, high, size=tuple(spec)))
        else:
            arrays.append(np.asarray(spec))
    return arrays


def _flat(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def assert_close(ours, theirs, rtol=RTOL, atol=ATOL, what="value"):
    rtol, atol = max(rtol, DEVICE_RTOL), max(atol, DEVICE_ATOL)
    ours_np = ours.detach().numpy() if isinstance(ours, shendu.Tensor) else np.asarray(ours)
    theirs_np = theirs.detach().numpy(force=True) if isinstance(theirs, torch.Tensor) else theirs
    assert ours_np.shape == tuple(theirs_np.shape), \
        f"{what}: shape {ours_np.shape} != torch {tuple(theirs_np.shape)}"
    np.testing.assert_allclose(ours_np, theirs_np, rtol=rtol, atol=atol, err_msg=what)


def check_op(fn, inputs, torch_fn=None, *, rtol=RTOL, atol=ATOL, low=-2.0, high=2.0, seed=0,
             grad=True, second_order=False, check_float32=True):
    """Compare ``fn`` (on shendu) with ``torch_fn`` (default: the same ``fn``) on torch.

    ``inputs`` holds shapes (filled with uniform[low, high) float64 data) or numpy arrays
    (used as given; only floating arrays are differentiated).
    """
    torch_fn = torch_fn or fn
    rng = np.random.default_rng(seed)
    arrays = _arrays(inputs, rng, low, high)
    diff = [grad and a.dtype.kind == "f" for a in arrays]
    ours = [shendu.tensor(a, requires_grad=d) for a, d in zip(arrays, diff)]
    theirs = [to_torch(a, requires_grad=d) for a, d in zip(arrays, diff)]
    out, tout = _flat(fn(*ours)), _flat(torch_fn(*theirs))
    assert len(out) == len(tout), f"{len(out)} outputs, torch gives {len(tout)}"
    for i, (o, t) in enumerate(zip(out, tout)):
        assert_close(o, t, rtol, atol, what=f"output {i}")
        assert str(o.dtype) == str(t.dtype).replace("torch.", ""), \
            f"output {i}: dtype {o.dtype} != torch {t.dtype}"

    if check_float32:
        out32 = _flat(fn(*[shendu.tensor(a.astype(np.float32)) if a.dtype == np.float64
                           else shendu.tensor(a) for a in arrays]))
        for i, o in enumerate(out32):
            if out[i].dtype == shendu.float64:
                assert o.dtype == shendu.float32, f"output {i}: float32 in gave {o.dtype}"

    if not grad or not any(diff):
        return
    pairs = [(o, t) for o, t in zip(out, tout) if o.requires_grad]
    upstream = [rng.standard_normal(o.shape) for o, _ in pairs]
    sources = [x for x, d in zip(ours, diff) if d]
    tsources = [x for x, d in zip(theirs, diff) if d]
    grads = shendu.autograd.grad([o for o, _ in pairs], sources,
                                 [shendu.tensor(u) for u in upstream],
                                 create_graph=second_order, allow_unused=True)
    tgrads = torch.autograd.grad([t for _, t in pairs], tsources,
                                 [to_torch(u) for u in upstream],
                                 create_graph=second_order, allow_unused=True)
    for i, (g, tg) in enumerate(zip(grads, tgrads)):
        if tg is None:
            assert g is None or np.allclose(g.numpy() if not g.requires_grad
                                            else g.detach().numpy(), 0), f"grad {i}"
            continue
        assert g is not None, f"input {i}: shendu gave no gradient, torch did"
        assert_close(g, tg, rtol, atol, what=f"grad of input {i}")

    if second_order:
        _check_second_order(grads, tgrads, sources, tsources, rng, rtol, atol)


def _check_second_order(grads, tgrads, sources, tsources, rng, rtol, atol):
    """d/dx <grad(x), v> for a random v: a Hessian-vector product through double backward.

    A gradient that is a constant (relu's) carries no graph in shendu; its contribution to the
    product is zero, which torch must then agree with.
    """
    vs = [rng.standard_normal(s.shape) for s in sources]
    ours = [(g * shendu.tensor(v)).sum() for g, v in zip(grads, vs)
            if g is not None and g.requires_grad]
    theirs = [(g * to_torch(v)).sum() for g, v in zip(tgrads, vs)
              if g is not None and g.requires_grad]
    hv = [None] * len(sources)
    thv = [None] * len(sources)
    if ours:
        hv = shendu.autograd.grad(sum(ours[1:], ours[0]), sources, allow_unused=True)
    if theirs:
        thv = torch.autograd.grad(sum(theirs[1:], theirs[0]), tsources, allow_unused=True)
    for i, (h, th) in enumerate(zip(hv, thv)):
        expected = np.zeros(sources[i].shape) if th is None else th.detach().numpy(force=True)
        got = np.zeros(sources[i].shape) if h is None else h.detach().numpy()
        np.testing.assert_allclose(got, expected, rtol=max(rtol, DEVICE_RTOL),
                                   atol=max(atol, DEVICE_ATOL),
                                   err_msg=f"Hessian-vector product of input {i}")


def finite_difference_check(fn, inputs, *, eps=1e-6, rtol=1e-5, atol=1e-7, seed=0):
    """Central differences (float64, per element) against shendu's gradient, for ops that
    have no torch twin. ``fn`` maps shendu tensors to a tensor."""
    rng = np.random.default_rng(seed)
    arrays = _arrays(inputs, rng, -2.0, 2.0)
    tensors = [shendu.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    out = fn(*tensors)
    upstream = rng.standard_normal(out.shape)
    out.backward(shendu.tensor(upstream))
    for k, (a, t) in enumerate(zip(arrays, tensors)):
        if a.dtype.kind != "f":
            continue
        numeric = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            plus, minus = a.copy(), a.copy()
            plus[idx] += eps
            minus[idx] -= eps
            args_p = [shendu.tensor(plus if j == k else b) for j, b in enumerate(arrays)]
            args_m = [shendu.tensor(minus if j == k else b) for j, b in enumerate(arrays)]
            f_p = float((fn(*args_p).detach().numpy() * upstream).sum())
            f_m = float((fn(*args_m).detach().numpy() * upstream).sum())
            numeric[idx] = (f_p - f_m) / (2 * eps)
        np.testing.assert_allclose(t.grad.numpy(), numeric, rtol=rtol, atol=atol,
                                   err_msg=f"finite-difference gradient of input {k}")


def _layer_specs(inputs):
    """One input (a shape of ints or an array) or a list of specs, as ``check_op`` takes."""
    if isinstance(inputs, np.ndarray):
        return [inputs]
    if isinstance(inputs, (tuple, list)) and all(isinstance(n, int) for n in inputs):
        return [tuple(inputs)]
    return list(inputs)


def _assert_same_state(ours, theirs, what, rtol=RTOL, atol=ATOL, check_dtype=False):
    """``state_dict``s with the same keys in the same order, shapes, (dtypes,) values."""
    assert list(ours) == list(theirs), f"{what}: state_dict keys {list(ours)} != torch " \
                                       f"{list(theirs)}"
    for key, value in ours.items():
        assert tuple(value.shape) == tuple(theirs[key].shape), \
            f"{what}: {key} shape {tuple(value.shape)} != torch {tuple(theirs[key].shape)}"
        if check_dtype:
            assert str(value.dtype) == str(theirs[key].dtype).replace("torch.", ""), \
                f"{what}: {key} dtype {value.dtype} != torch {theirs[key].dtype}"
        elif rtol is not None:
            assert_close(value, theirs[key], rtol, atol, what=f"{what}: {key}")


def _compare_pass(layer, torch_layer, arrays, diff, rng, rtol, atol, what):
    """One forward and backward through both layers with the same data and upstream grad."""
    ours = [shendu.tensor(a, requires_grad=d) for a, d in zip(arrays, diff)]
    theirs = [to_torch(a, requires_grad=d) for a, d in zip(arrays, diff)]
    out, tout = _flat(layer(*ours)), _flat(torch_layer(*theirs))
    assert len(out) == len(tout), f"{what}: {len(out)} outputs, torch gives {len(tout)}"
    for i, (o, t) in enumerate(zip(out, tout)):
        assert_close(o, t, rtol, atol, what=f"{what}: output {i}")
        assert str(o.dtype) == str(t.dtype).replace("torch.", ""), \
            f"{what}: output {i} dtype {o.dtype} != torch {t.dtype}"
    pairs = [(o, t) for o, t in zip(out, tout) if t.requires_grad]
    assert all(o.requires_grad for o, _ in pairs), f"{what}: output does not require grad"
    if not pairs:
        return
    names = [n for n, p in torch_layer.named_parameters() if p.requires_grad]
    params = dict(layer.named_parameters())
    sources = [x for x, d in zip(ours, diff) if d] + [params[n] for n in names]
    tparams = dict(torch_layer.named_parameters())
    tsources = [x for x, d in zip(theirs, diff) if d] + [tparams[n] for n in names]
    labels = [f"input {i}" for i, d in enumerate(diff) if d] + names
    upstream = [rng.standard_normal(t.shape) for _, t in pairs]
    grads = shendu.autograd.grad([o for o, _ in pairs], sources,
                                 [shendu.tensor(u) for u in upstream], allow_unused=True)
    tgrads = torch.autograd.grad([t for _, t in pairs], tsources,
                                 [to_torch(u) for u in upstream], allow_unused=True)
    for label, g, tg in zip(labels, grads, tgrads):
        if tg is None:
            assert g is None or not np.any(g.numpy()), f"{what}: grad of {label} should be 0"
            continue
        assert g is not None, f"{what}: shendu gave no gradient for {label}, torch did"
        assert_close(g, tg, rtol, atol, what=f"{what}: grad of {label}")


def check_layer(layer, torch_layer, inputs, *, requires_grad=None, rtol=RTOL, atol=ATOL,
                seed=0, low=-2.0, high=2.0, modes=("train", "eval"), passes=3):
    """Prove a shendu layer equal to its torch twin.

    ``torch_layer`` is a torch Module or a zero-argument callable making one (e.g.
    ``lambda: torch.nn.Linear(3, 4)``); ``inputs`` is a shape, an array, or a list of those
    (one per forward argument; float arrays are differentiated unless ``requires_grad`` lists
    a bool per input). The check:

    1. the fresh layers' state_dict keys (in order), shapes and dtypes are equal;
    2. both go to float64 and torch loads ours via
       ``load_state_dict({k: torch.from_numpy(v.numpy()) ...})`` (so the keys match torch's);
    3. in each of ``modes``, ``passes`` forward passes in train mode (one in eval) on fresh
       seeded data compare outputs, then the gradients w.r.t. the inputs and every named
       parameter under a random upstream gradient, then every buffer (running statistics,
       ``num_batches_tracked``) after the pass;
    4. float32 parameters and input give a float32 output.

    The layer is left in float32.
    """
    if not isinstance(torch_layer, torch.nn.Module):
        torch_layer = torch_layer()
    _assert_same_state(layer.state_dict(), torch_layer.state_dict(), "fresh layer",
                       check_dtype=True)
    layer.double()
    torch_layer.double()
    torch_layer.load_state_dict({k: torch.from_numpy(v.numpy())
                                 for k, v in layer.state_dict().items()})
    rng = np.random.default_rng(seed)
    specs = _layer_specs(inputs)
    for mode in modes:
        training = mode == "train"
        assert layer.train(training) is layer
        torch_layer.train(training)
        for k in range(passes if training else 1):
            arrays = _arrays(specs, rng, low, high)
            diff = requires_grad or [a.dtype.kind == "f" for a in arrays]
            what = f"{mode} pass {k}"
            _compare_pass(layer, torch_layer, arrays, diff, rng, rtol, atol, what)
            _assert_same_state(layer.state_dict(), torch_layer.state_dict(), what, rtol, atol)
    layer.float()
    arrays = _arrays(specs, rng, low, high)
    out = _flat(layer(*[shendu.tensor(a.astype(np.float32) if a.dtype == np.float64 else a)
                        for a in arrays]))
    for i, o in enumerate(out):
        if o.dtype.kind == "f":
            assert o.dtype == shendu.float32, f"output {i}: float32 layer and input gave " \
                                              f"{o.dtype}"
