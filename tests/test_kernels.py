"""The optional numba kernels (shendu.kernels) against their NumPy references in shendu.ops."""
import numpy as np
import pytest

import shendu
from shendu import backend, kernels
from shendu.nn import functional as F

pytestmark = pytest.mark.skipif(not backend.compiled_kernels_available(),
                                reason="numba is not installed")


@pytest.fixture
def reference():
    """Run a block with the kernels switched off (the NumPy reference)."""
    class Switch:
        def __enter__(self):
            backend.use_compiled_kernels(False)

        def __exit__(self, *exc):
            backend.use_compiled_kernels(True)
    return Switch()


def _run(fn, reference, *arrays, create_graph=False):
    """fn's output and input gradients, with and without the kernels."""
    results = []
    for compiled in (True, False):
        backend.use_compiled_kernels(compiled)
        try:
            leaves = [shendu.tensor(a, requires_grad=True) for a in arrays]
            out = fn(*leaves)
            seed = np.random.default_rng(1).standard_normal(out.shape).astype(arrays[0].dtype)
            grads = shendu.autograd.grad(out, leaves, shendu.tensor(seed))
            results.append([out.detach().numpy()] + [g.numpy() for g in grads])
        finally:
            backend.use_compiled_kernels(True)
    return results


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-11), (np.float32, 2e-5)])
@pytest.mark.parametrize("shape", [(8, 3, 5, 7), (4, 6), (5, 2, 9), (2, 16, 1, 1)])
def test_batch_norm_kernel_equals_numpy_reference(shape, dtype, tol, reference):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    w = rng.standard_normal(shape[1]).astype(dtype)
    b = rng.standard_normal(shape[1]).astype(dtype)
    stats = {}

    def bn(x, w, b):
        rm, rv = shendu.zeros(shape[1], dtype=x.dtype), shendu.ones(shape[1], dtype=x.dtype)
        out = F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.3)
        stats.setdefault(backend.compiled_kernels_enabled(), (rm.numpy(), rv.numpy()))
        return out

    compiled, plain = _run(bn, reference, x, w, b)
    for a, r in zip(compiled, plain):
        np.testing.assert_allclose(a, r, rtol=tol, atol=tol * 10)
    for a, r in zip(stats[True], stats[False]):
        np.testing.assert_allclose(a, r, rtol=tol, atol=tol)


def test_batch_norm_kernel_reads_channel_major_views_and_keeps_their_layout():
    rng = np.random.default_rng(2)
    memory = rng.standard_normal((3, 4, 5, 6))            # (C, N, H, W)
    x = memory.transpose(1, 0, 2, 3)                       # (N, C, H, W) view, as conv returns
    out, mean, var = kernels.batch_norm_forward(x, np.ones(3), np.zeros(3), 1e-5)
    assert out.shape == x.shape and out.swapaxes(0, 1).flags.c_contiguous
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(var, x.var(axis=(0, 2, 3)), rtol=1e-12)


def _layout(a, kind):
    """a (N, C, ...) as C-contiguous, channel-major (the conv row layout) or strided memory."""
    if kind == "channel-major":
        return np.ascontiguousarray(a.swapaxes(0, 1)).swapaxes(0, 1)
    if kind == "strided":
        return np.repeat(a, 2, axis=-1)[..., ::2]
    return np.ascontiguousarray(a)


@pytest.mark.parametrize("x_layout", ["contiguous", "channel-major", "strided"])
@pytest.mark.parametrize("g_layout", ["contiguous", "channel-major", "strided"])
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-11), (np.float32, 2e-5)])
def test_batch_norm_kernels_on_every_layout_mix_equal_the_formula(x_layout, g_layout, dtype,
                                                                   tol):
    rng = np.random.default_rng(4)
    x64 = rng.standard_normal((5, 3, 4, 7)) * 2 - 1
    g64 = rng.standard_normal(x64.shape)
    w64, b64 = rng.standard_normal(3), rng.standard_normal(3)
    x, g = _layout(x64.astype(dtype), x_layout), _layout(g64.astype(dtype), g_layout)
    out, mean, var = kernels.batch_norm_forward(x, w64.astype(dtype), b64.astype(dtype), 1e-5)
    axes = (0, 2, 3)
    m, v = x64.mean(axis=axes, keepdims=True), x64.var(axis=axes, keepdims=True)
    rstd = 1 / np.sqrt(v + 1e-5)
    xhat = (x64 - m) * rstd
    w = w64.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(out, xhat * w + b64.reshape(1, -1, 1, 1), rtol=tol, atol=tol)
    np.testing.assert_allclose(mean, m.ravel(), rtol=tol, atol=tol)
    np.testing.assert_allclose(var, v.ravel(), rtol=tol, atol=tol)
    grad_x, sum_gx, sum_g = kernels.batch_norm_backward(g, x, mean, rstd.ravel(),
                                                        w64.astype(dtype), True)
    mg, mgx = g64.mean(axis=axes, keepdims=True), (g64 * xhat).mean(axis=axes, keepdims=True)
    np.testing.assert_allclose(grad_x, w * rstd * (g64 - mg - xhat * mgx), rtol=tol * 10,
                               atol=tol * 10)
    np.testing.assert_allclose(sum_gx, (g64 * xhat).sum(axis=axes), rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(sum_g, g64.sum(axis=axes), rtol=tol, atol=tol * 10)
    assert grad_x.shape == x.shape and out.shape == x.shape


def test_batch_norm_without_affine_and_double_backward_use_the_reference_formula(reference):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 2, 3, 3))
    compiled, plain = _run(lambda t: F.batch_norm(t, None, None, training=True), reference, x)
    for a, r in zip(compiled, plain):
        np.testing.assert_allclose(a, r, rtol=1e-11, atol=1e-12)
    # create_graph takes the Tensor-op backward, which the kernel path must not disturb
    t = shendu.tensor(x, requires_grad=True)
    w = shendu.tensor(rng.standard_normal(2), requires_grad=True)
    out = F.batch_norm(t, None, None, w, None, training=True)
    (g,) = shendu.autograd.grad((out * out.tanh()).sum(), [t], create_graph=True)
    (gw,) = shendu.autograd.grad(g.pow(2).sum(), [w])
    assert np.isfinite(gw.numpy()).all() and np.abs(gw.numpy()).sum() > 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roi_pool_kernel_equals_numpy_reference(dtype, seed, reference):
    """Exact equality of the winners, with many ties (ReLU zeros), boxes far larger than
    others, boxes off the map (empty bins) and random pooled sizes."""
    from shendu.vision import ops
    rng = np.random.default_rng(seed)
    n, c, h, w = 3, int(rng.integers(1, 6)), int(rng.integers(4, 13)), int(rng.integers(4, 13))
    x = np.maximum(rng.standard_normal((n, c, h, w)), 0).astype(dtype)
    k = 40
    corner = rng.uniform(-3, max(h, w) + 2, size=(k, 2))
    size = rng.uniform(0, max(h, w) * 1.5, size=(k, 2)) * (rng.random((k, 1)) < 0.8)
    rois = np.concatenate([rng.integers(0, n, (k, 1)), corner, corner + size], axis=1)
    out = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
    scale = float(rng.choice([1.0, 0.5]))
    compiled, plain = _run(lambda t: ops.roi_pool(t, shendu.tensor(rois.astype(dtype)), out,
                                                  scale), reference, x)
    for a, r in zip(compiled, plain):
        np.testing.assert_array_equal(a, r)


def _optimizer_run(make, dtype, compiled, steps=4):
    """Parameters and state after ``steps`` updates of the optimizer ``make(params)`` on fixed
    gradients, with the fused kernels (shendu.optim.fused) on or off."""
    rng = np.random.default_rng(3)
    shapes = [(7, 5), (3,), (300, 256)]
    params = [shendu.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True)
              for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]
    for step_grads in grads:  # zero moments: with eps=0 the update divides 0 by 0 (NaN)
        step_grads[0][0, 0] = 0
    backend.use_compiled_kernels(compiled)
    try:
        opt = make(params)
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = shendu.tensor(g)
            opt.step()
    finally:
        backend.use_compiled_kernels(True)
    state = [{k: (v.numpy() if isinstance(v, shendu.Tensor) else v) for k, v in opt.state[p].items()}
             for p in params]
    return [p.detach().numpy() for p in params], state


def _assert_fused_equals_reference(make, dtype):
    """Parameters and optimizer state after _optimizer_run, fused kernels against NumPy path,
    bit for bit."""
    (fast, fast_state), (ref, ref_state) = (_optimizer_run(make, dtype, c) for c in (True, False))
    for a, r in zip(fast, ref):
        np.testing.assert_array_equal(a, r)
    for a, r in zip(fast_state, ref_state):
        assert a.keys() == r.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], r[k])


_ADAM_OPTIONS = [dict(amsgrad=a, maximize=m, weight_decay=w, decoupled_weight_decay=d)
                 for a in (False, True) for m in (False, True) for w in (0, 0.1)
                 for d in (False, True)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", _ADAM_OPTIONS + [dict(lr=0.0, weight_decay=0.1),
                                                     dict(betas=(0.3, 0.9)),
                                                     dict(betas=(0.5, 0.0), eps=1e-3),
                                                     dict(eps=0.0, amsgrad=True)])
@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.filterwarnings("ignore:invalid value encountered")  # the eps=0 case's 0 / 0
def test_fused_adam_equals_numpy_reference_bitwise(options, dtype, parallel, monkeypatch):
    from shendu.optim import fused
    monkeypatch.setattr(fused, "_PARALLEL_MIN", 1 if parallel else 1 << 62)
    options = dict(dict(lr=0.05), **options)
    make = lambda params: shendu.optim.Adam(params, **options)  # noqa: E731
    _assert_fused_equals_reference(make, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", [dict(), dict(weight_decay=0.1), dict(maximize=True),
                                     dict(momentum=0.9), dict(momentum=0.9, dampening=0.3),
                                     dict(momentum=0.9, nesterov=True, weight_decay=0.01),
                                     dict(momentum=0.5, maximize=True, weight_decay=0.2)])
@pytest.mark.parametrize("parallel", [False, True])
def test_fused_sgd_equals_numpy_reference_bitwise(options, dtype, parallel, monkeypatch):
    from shendu.optim import fused
    monkeypatch.setattr(fused, "_PARALLEL_MIN", 1 if parallel else 1 << 62)
    make = lambda params: shendu.optim.SGD(params, lr=0.05, **options)  # noqa: E731
    _assert_fused_equals_reference(make, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", [dict(), dict(weight_decay=0.1), dict(maximize=True),
                                     dict(rho=0.5, eps=1e-3, lr=0.3),
                                     dict(rho=0.0, weight_decay=0.2, maximize=True)])
@pytest.mark.parametrize("parallel", [False, True])
def test_fused_adadelta_equals_numpy_reference_bitwise(options, dtype, parallel, monkeypatch):
    from shendu.optim import fused
    monkeypatch.setattr(fused, "_PARALLEL_MIN", 1 if parallel else 1 << 62)
    make = lambda params: shendu.optim.Adadelta(params, **options)  # noqa: E731
    _assert_fused_equals_reference(make, dtype)


def test_fused_kernels_take_the_usual_arrays():
    """The bitwise tests above compare two runs of the NumPy path unless this holds."""
    from shendu.optim import fused
    a = np.ones((3, 4), dtype=np.float32)
    assert fused.usable(a, a.copy(), a.copy())
    assert not fused.usable(a, a.astype(np.float64))  # mixed dtypes: the NumPy path
    assert not fused.usable(np.ones((4, 3), dtype=np.float32).T, a)  # not contiguous
    backend.use_compiled_kernels(False)
    try:
        assert not fused.usable(a, a.copy())
    finally:
        backend.use_compiled_kernels(True)


def test_the_threading_layer_is_openmp_with_bounded_spinning(monkeypatch):
    """kernels.load_numba prefers GNU OpenMP with a short spin (see its comment for the
    measurements), falls back to the work-queue layer, and leaves a user's choice alone."""
    import os

    numba = kernels.load_numba()
    if "NUMBA_THREADING_LAYER_PRIORITY" not in os.environ and \
            numba.config.THREADING_LAYER == "default":
        assert numba.config.THREADING_LAYER_PRIORITY[:2] == ["omp", "workqueue"]
        assert os.environ.get("GOMP_SPINCOUNT")
    monkeypatch.setattr(numba.config, "THREADING_LAYER_PRIORITY", ["workqueue", "omp", "tbb"])
    monkeypatch.setenv("NUMBA_THREADING_LAYER_PRIORITY", "workqueue omp tbb")
    kernels.load_numba()
    assert numba.config.THREADING_LAYER_PRIORITY[0] == "workqueue"


def test_float32_gelu_kernel_erf_error():
    """The float32 kernel's rational erf against math.erf on a dense grid, through Phi(x):
    at most 1.8e-7 from the exact value (math.erf rounded to float32 is 6e-8 off), every
    float32 edge kept (NaN, infinities, signed zeros)."""
    import math
    x = np.linspace(-9, 9, 400_001).astype(np.float32)
    out, cdf = kernels.gelu_forward(x)
    exact = np.array([0.5 * (1 + math.erf(float(v) / math.sqrt(2))) for v in x])
    assert np.abs(cdf - exact).max() <= 1.8e-7
    np.testing.assert_array_equal(out, x * cdf)
    edge_out, edge_cdf = kernels.gelu_forward(np.array([np.nan, np.inf, -np.inf, -0.0],
                                                       np.float32))
    np.testing.assert_array_equal(edge_cdf, [np.nan, 1.0, 0.0, 0.5])
    np.testing.assert_array_equal(edge_out, [np.nan, np.inf, np.nan, -0.0])
    assert np.signbit(edge_out[3])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 70000), (2, 64, 512)])
def test_gelu_kernels_equal_the_numpy_passes(monkeypatch, shape, dtype):
    """F.gelu through the fused kernels (shendu.kernels.gelu_*) against the same op with the
    kernels' size limit out of reach (NumPy passes around the compiled math.erf): float64 bit
    for bit both ways; float32 within the kernel's erf error (1.8e-7, a rational
    approximation) times |x| forward, and backward within that times |g| plus a few ulps
    (NumPy's own float32 exp). Both against torch's exact GELU as well."""
    import torch

    from shendu.ops import activation
    rng = np.random.default_rng(7)
    x0 = (rng.standard_normal(shape) * 3).astype(dtype)
    x0.flat[:4] = [0.0, -0.0, 40.0, -40.0]
    g0 = rng.standard_normal(shape).astype(dtype)
    results = []
    for limit in (activation._GELU_KERNEL_MIN, 1 << 62):
        monkeypatch.setattr(activation, "_GELU_KERNEL_MIN", limit)
        x = shendu.from_numpy(x0.copy()).requires_grad_()
        y = F.gelu(x)
        y.backward(shendu.from_numpy(g0))
        results.append((y.detach().numpy(), x.grad.numpy()))
    (y_kernel, g_kernel), (y_ref, g_ref) = results
    if dtype == np.float64:
        np.testing.assert_array_equal(y_kernel, y_ref)
        np.testing.assert_array_equal(g_kernel, g_ref)
    else:
        eps = np.finfo(dtype).eps
        assert (np.abs(y_kernel - y_ref) <= 2e-7 * np.abs(x0) + eps * np.abs(y_ref)).all()
        assert (np.abs(g_kernel - g_ref) <= 2e-7 * np.abs(g0) +
                4 * eps * np.abs(g_ref).max()).all()
    tx = torch.from_numpy(x0.astype(np.float64)).requires_grad_()
    ty = torch.nn.functional.gelu(tx)
    ty.backward(torch.from_numpy(g0.astype(np.float64)))
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(y_kernel, ty.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(g_kernel, tx.grad.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, normalized, affine", [
    ((64, 32, 128), (128,), True), ((300, 8, 9), (8, 9), True), ((2, 20000), (20000,), False),
    ((40, 1000), (1000,), True),
])
def test_layer_norm_kernels_equal_the_numpy_passes_and_torch(shape, normalized, affine, dtype):
    """F.layer_norm through kernels.layer_norm_* (float64 row statistics) against the NumPy
    passes (kernels off) and torch: forward and every gradient, the output gradient also
    read through a transposed view (the kernel then takes a contiguous copy)."""
    import torch
    rng = np.random.default_rng(len(shape) + shape[-1])
    x0 = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    w0, b0 = (rng.standard_normal(normalized).astype(dtype) for _ in range(2))
    g0 = np.ascontiguousarray(rng.standard_normal(shape[::-1]).astype(dtype).T)

    def run(compiled, g):
        backend.use_compiled_kernels(compiled)
        try:
            leaves = [shendu.tensor(a, requires_grad=True) for a in
                      ((x0, w0, b0) if affine else (x0,))]
            y = F.layer_norm(leaves[0], normalized, *leaves[1:])
            grads = shendu.autograd.grad(y, leaves, shendu.tensor(g))
            return [y.detach().numpy()] + [t.numpy() for t in grads]
        finally:
            backend.use_compiled_kernels(True)

    tol = 1e-12 if dtype == np.float64 else 3e-5
    with_kernel = run(True, g0)
    for got, want in zip(with_kernel, run(False, g0)):
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)
    transposed = np.asfortranarray(g0)  # same values, other strides
    for got, want in zip(run(True, transposed), with_kernel):
        np.testing.assert_array_equal(got, want)
    leaves = [torch.tensor(a.astype(np.float64), requires_grad=True) for a in
              ((x0, w0, b0) if affine else (x0,))]
    y = torch.nn.functional.layer_norm(leaves[0], normalized, *leaves[1:])
    grads = torch.autograd.grad(y, leaves, torch.tensor(g0.astype(np.float64)))
    for got, want in zip(with_kernel, [y.detach().numpy()] + [t.numpy() for t in grads]):
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def test_layer_norm_kernel_is_used_and_keeps_its_double_backward():
    from shendu.ops import normalization as nn_ops
    x = shendu.randn(64, 512, dtype=shendu.float64, requires_grad=True)
    w = shendu.randn(512, dtype=shendu.float64, requires_grad=True)
    y = F.layer_norm(x, (512,), w)
    assert x.numel() >= nn_ops._LAYER_NORM_KERNEL_MIN and y.grad_fn.rows
    (gx,) = shendu.autograd.grad((y * y).sum(), [x], create_graph=True)
    (gxx,) = shendu.autograd.grad(gx.sum(), [x])
    import torch
    xt = torch.tensor(x.detach().numpy(), requires_grad=True)
    wt = torch.tensor(w.detach().numpy())
    yt = torch.nn.functional.layer_norm(xt, (512,), wt)
    (gt,) = torch.autograd.grad((yt * yt).sum(), [xt], create_graph=True)
    (gtt,) = torch.autograd.grad(gt.sum(), [xt])
    np.testing.assert_allclose(gx.detach().numpy(), gt.detach().numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(gxx.numpy(), gtt.numpy(), rtol=1e-8, atol=1e-8)
