"""The direct 3x3 convolution kernels (shendu.ops.conv_kernels) against the NumPy reference in
shendu.ops.conv, and against torch.

What dispatches to them (conv._choose): 3x3 kernels, stride 1, padding 1, dilation 1,
groups 1, output size = input size, host float32/float64, in_channels * out_channels at most
conv._DIRECT_MAX_CHANNELS, numba installed and compiled kernels enabled. The tests lift the
channel limit so that every shape here runs the kernels.
"""
import numpy as np
import pytest
import torch

import shendu
from shendu import backend
from shendu.nn import functional as F
from shendu.ops import conv, conv_kernels

pytestmark = pytest.mark.skipif(not backend.compiled_kernels_available(),
                                reason="numba is not installed")

TOL = {np.float64: 1e-10, np.float32: 3e-5}


@pytest.fixture(autouse=True)
def every_channel_count(monkeypatch):
    monkeypatch.setattr(conv, "_DIRECT_MAX_CHANNELS", 1 << 30)


def _grads(fn, arrays, compiled, seed=1):
    """fn's output and the gradients of all its inputs, with the kernels on or off."""
    backend.use_compiled_kernels(compiled)
    try:
        leaves = [shendu.tensor(a, requires_grad=True) for a in arrays]
        out = fn(*leaves)
        g = np.random.default_rng(seed).standard_normal(out.shape).astype(arrays[0].dtype)
        grads = shendu.autograd.grad(out, leaves, shendu.tensor(g))
        return [out.detach().numpy()] + [t.numpy() for t in grads]
    finally:
        backend.use_compiled_kernels(True)


def _close(got, want, dtype):
    for a, r in zip(got, want):
        assert a.shape == r.shape and a.dtype == r.dtype
        scale = max(1.0, float(np.abs(r).max()))
        np.testing.assert_allclose(a, r, rtol=TOL[dtype], atol=TOL[dtype] * scale)


SHAPES = [  # (N, C, O, H, W): odd sizes, 1-pixel and 1-channel images, wide and tall
    (2, 3, 4, 5, 7), (1, 1, 1, 1, 1), (3, 2, 5, 1, 6), (2, 5, 3, 9, 2), (4, 16, 8, 8, 8),
    (1, 7, 9, 13, 11),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_conv2d_kernels_equal_numpy_reference(shape, dtype):
    n, c, o, h, w = shape
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((o, c, 3, 3)).astype(dtype)
    bias = rng.standard_normal(o).astype(dtype)
    assert conv._choose(x, o, 3, 3, conv._SAME_3X3, (h, w)) == "direct"

    def fn(x, weight, bias):
        return F.conv2d(x, weight, bias, padding=1)
    _close(_grads(fn, [x, weight, bias], True), _grads(fn, [x, weight, bias], False), dtype)
    no_bias = [x, weight]
    _close(_grads(lambda a, b: F.conv2d(a, b, padding=1), no_bias, True),
           _grads(lambda a, b: F.conv2d(a, b, padding=1), no_bias, False), dtype)


def test_conv2d_kernels_equal_torch():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 6, 10, 9))
    weight = rng.standard_normal((4, 6, 3, 3))
    bias = rng.standard_normal(4)
    out, gx, gw, gb = _grads(lambda *t: F.conv2d(*t, padding=1), [x, weight, bias], True)
    leaves = [torch.tensor(a, requires_grad=True) for a in (x, weight, bias)]
    ref = torch.nn.functional.conv2d(*leaves, padding=1)
    seed = np.random.default_rng(1).standard_normal(ref.shape)
    ref.backward(torch.tensor(seed))
    for a, r in zip((out, gx, gw, gb), [ref.detach()] + [t.grad for t in leaves]):
        np.testing.assert_allclose(a, r.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv_transpose2d_at_stride_1_uses_the_kernels_and_equals_reference(dtype):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 5, 7, 6)).astype(dtype)
    weight = rng.standard_normal((5, 3, 3, 3)).astype(dtype)       # (C_in, C_out, 3, 3)

    def fn(x, weight):
        return F.conv_transpose2d(x, weight, padding=1)
    _close(_grads(fn, [x, weight], True), _grads(fn, [x, weight], False), dtype)


def test_double_backward_through_the_kernels_equals_reference():
    rng = np.random.default_rng(7)
    arrays = [rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 3))]
    results = []
    for compiled in (True, False):
        backend.use_compiled_kernels(compiled)
        try:
            x, w = (shendu.tensor(a, requires_grad=True) for a in arrays)
            y = F.conv2d(x, w, padding=1)
            gx, gw = shendu.autograd.grad((y * y).sum(), [x, w], create_graph=True)
            results.append([t.numpy() for t in
                            shendu.autograd.grad((gx * gx).sum() + (gw * gw).sum(), [x, w])])
        finally:
            backend.use_compiled_kernels(True)
    _close(results[0], results[1], np.float64)


def test_kernels_read_strided_views():
    rng = np.random.default_rng(8)
    memory = rng.standard_normal((4, 3, 6, 5)).astype(np.float32)   # (C, N, H, W)
    x = memory.transpose(1, 0, 2, 3)                                 # (N, C, H, W) view
    weight = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    fn = lambda a, b: F.conv2d(a, b, padding=1)  # noqa: E731
    _close(_grads(fn, [x, weight], True), _grads(fn, [np.ascontiguousarray(x), weight], False),
           np.float32)


def test_tall_planes_layout():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5) + 1
    tall = conv_kernels.to_tall(x)
    n, c, h, w = x.shape
    assert tall.shape == (c, (n * (h + 1) + 2) * (w + 1) + 2)
    for (i, ch, r, q), v in np.ndenumerate(x):
        assert tall[ch, 1 + (i * (h + 1) + 1 + r) * (w + 1) + q] == v
    assert np.count_nonzero(tall) == x.size                         # all else is padding


def test_nan_propagates_through_the_kernels():
    x = np.ones((1, 2, 4, 4), dtype=np.float32)
    x[0, 1, 2, 2] = np.nan
    y = F.conv2d(shendu.tensor(x), shendu.ones(3, 2, 3, 3), padding=1).numpy()
    assert np.isnan(y[0, :, 1:4, 1:4]).all() and np.isfinite(y[0, :, 0]).all()


@pytest.mark.parametrize("case", ["stride", "padding", "kernel", "groups", "dilation", "size",
                                  "channels", "disabled", "integer"])
def test_other_convolutions_keep_the_numpy_reference(case, monkeypatch):
    x = np.zeros((2, 4, 8, 8), dtype=np.int64 if case == "integer" else np.float32)
    geom, kh, out_hw, c_out = conv._SAME_3X3, 3, (8, 8), 4
    if case == "stride":
        geom, out_hw = conv.Geom((2, 2), (1, 1), (1, 1), 1), (4, 4)
    elif case == "padding":
        geom, out_hw = conv.Geom((1, 1), (0, 0), (1, 1), 1), (6, 6)
    elif case == "kernel":
        kh, geom = 5, conv.Geom((1, 1), (2, 2), (1, 1), 1)
    elif case == "groups":
        geom = conv.Geom((1, 1), (1, 1), (1, 1), 2)
    elif case == "dilation":
        geom, out_hw = conv.Geom((1, 1), (1, 1), (2, 2), 1), (6, 6)
    elif case == "size":
        out_hw = (7, 8)
    elif case == "channels":
        monkeypatch.setattr(conv, "_DIRECT_MAX_CHANNELS", 4 * 4 - 1)
    elif case == "disabled":
        monkeypatch.setattr(backend, "compiled_kernels_enabled", lambda: False)
    assert conv._choose(x, c_out, kh, kh, geom, out_hw) in ("rows", "full")


GEOMETRIES = [  # (N, C, H, W, kh, kw, stride, pad, dilation, groups)
    (2, 3, 9, 8, 3, 3, (1, 1), (0, 0), (1, 1), 1), (3, 4, 7, 10, 3, 2, (2, 3), (1, 2), (1, 1), 2),
    (1, 6, 11, 9, 2, 3, (1, 2), (2, 0), (2, 2), 3), (2, 1, 5, 5, 5, 5, (1, 1), (2, 2), (1, 1), 1),
    (4, 2, 6, 13, 1, 3, (3, 1), (0, 1), (1, 3), 1),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_col2im_kernel_equals_the_numpy_loop(geometry, dtype):
    """conv._col2im (the adjoint of im2col, the strided convolutions' input gradient) with
    the add_cols kernel against the NumPy loop over taps, bit for bit."""
    n, c, h, w, kh, kw, stride, pad, dilation, groups = geometry
    geom = conv.Geom(stride, pad, dilation, groups)
    out_hw = tuple((size + 2 * p - d * (k - 1) - 1) // s + 1 for size, k, s, p, d in
                   zip((h, w), (kh, kw), stride, pad, dilation))
    cols = np.random.default_rng(3).standard_normal((n, c, kh, kw) + out_hw).astype(dtype)
    results = []
    for compiled in (True, False):
        backend.use_compiled_kernels(compiled)
        try:
            results.append(conv._col2im(cols, geom, (h, w)))
        finally:
            backend.use_compiled_kernels(True)
    np.testing.assert_array_equal(results[0], results[1])
    assert (np.signbit(results[0]) == np.signbit(results[1])).all()
