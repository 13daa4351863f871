"""The max pooling kernels (shendu.ops.pool_kernels) against the NumPy reference in
shendu.ops.pool, bit for bit, and against torch: maxima, arg-max offsets (first maximum, last
NaN), return_indices and the routed gradient, over strides, padding, dilation and ceil_mode."""
import numpy as np
import pytest
import torch

import shendu
from shendu import backend
from shendu.nn import functional as F
from shendu.ops import pool, pool_kernels

pytestmark = pytest.mark.skipif(not backend.compiled_kernels_available(),
                                reason="numba is not installed")

CASES = [  # (N, C, H, W), kernel, stride, padding, dilation, ceil_mode
    ((2, 3, 8, 8), 2, 2, 0, 1, False), ((3, 2, 9, 7), 3, 2, 1, 1, True),
    ((1, 4, 10, 11), (2, 3), (1, 2), (1, 1), (2, 1), False), ((2, 2, 5, 5), 3, 1, 1, 1, False),
    ((2, 3, 7, 9), 2, 3, 0, 1, True), ((64, 8, 24, 24), 2, 2, 0, 1, False),
    ((3, 2, 9, 7), 2, 2, 0, 1, False), ((1, 3, 5, 6), 2, None, 0, 1, True),
]


def _input(shape, dtype, seed):
    """Random values with ties (a coarse grid), signed zeros, infinities and NaNs."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.standard_normal(shape) * 2) / 2
    flat = x.reshape(-1)
    picks = rng.choice(flat.size, size=(4, max(1, flat.size // 50)), replace=False)
    flat[picks[0]], flat[picks[1]] = np.nan, -np.inf
    flat[picks[2]], flat[picks[3]] = -0.0, np.inf
    return x.astype(dtype)


def _run(x0, g0, args, compiled):
    backend.use_compiled_kernels(compiled)
    try:
        x = shendu.tensor(x0, requires_grad=True)
        y, idx = F.max_pool2d(x, *args, return_indices=True)
        (gx,) = shendu.autograd.grad(y, [x], shendu.tensor(g0))
        y2 = F.max_pool2d(x, *args)  # the training path without indices
        (gx2,) = shendu.autograd.grad(y2, [x], shendu.tensor(g0))
        return y.detach().numpy(), idx.numpy(), gx.numpy(), y2.detach().numpy(), gx2.numpy()
    finally:
        backend.use_compiled_kernels(True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_max_pool_kernels_equal_the_numpy_reference(case, dtype):
    shape, *args = case
    x0 = _input(shape, dtype, seed=sum(shape))
    out_shape = F.max_pool2d(shendu.tensor(x0), *args).shape
    g0 = np.random.default_rng(1).standard_normal(out_shape).astype(dtype)
    with_kernel, reference = _run(x0, g0, args, True), _run(x0, g0, args, False)
    for got, want in zip(with_kernel, reference):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("case", CASES)
def test_max_pool_kernels_equal_torch(case):
    shape, *args = case
    x0 = np.random.default_rng(2).standard_normal(shape)  # no ties: torch's order may differ
    x = shendu.tensor(x0, requires_grad=True)
    y, idx = F.max_pool2d(x, *args, return_indices=True)
    g0 = np.random.default_rng(3).standard_normal(y.shape)
    (gx,) = shendu.autograd.grad(y, [x], shendu.tensor(g0))
    xt = torch.tensor(x0, requires_grad=True)
    yt, it = torch.nn.functional.max_pool2d(xt, *args, return_indices=True)
    (gt,) = torch.autograd.grad(yt, [xt], torch.tensor(g0))
    np.testing.assert_array_equal(y.detach().numpy(), yt.detach().numpy())
    np.testing.assert_array_equal(idx.numpy(), it.numpy())
    np.testing.assert_allclose(gx.numpy(), gt.numpy(), rtol=1e-12, atol=1e-12)


def test_the_training_path_keeps_the_kernels_offsets():
    x = shendu.randn(2, 3, 8, 8, requires_grad=True)
    y = F.max_pool2d(x, 2)
    assert y.grad_fn.saved_idx is not None  # found in the forward sweep, not again backward
    with shendu.no_grad():
        assert F.max_pool2d(x, 2).grad_fn is None
    assert pool_kernels.takes_2x2(y.grad_fn.pool, x.shape) and pool._disjoint(y.grad_fn.pool)
    assert not pool_kernels.takes_2x2(F.max_pool2d(x, 3, 2).grad_fn.pool, x.shape)
