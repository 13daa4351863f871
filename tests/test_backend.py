"""The backend seam: erf (NumPy reference vs the optional numba kernel), generators."""
import math

import numpy as np
import pytest

import shendu
from shendu import backend

X = np.random.default_rng(0).standard_normal(4000) * 3
EDGES = np.array([0.0, -0.0, 0.5, -0.5, 0.50001, 4.0, -4.0, 4.0001, 6.0, 30.0, -30.0])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_numpy_erf_matches_math_erf(dtype):
    x = np.concatenate([X, EDGES]).astype(dtype)
    expected = np.array([math.erf(v) for v in x.astype(np.float64)])
    got = backend._erf_numpy(x)
    assert got.dtype == x.dtype
    np.testing.assert_allclose(got, expected.astype(dtype), rtol=4 * np.finfo(dtype).eps,
                               atol=np.finfo(dtype).tiny)


@pytest.mark.skipif(not backend.compiled_kernels_available(),
                    reason="numba (the 'fast' extra) is not installed")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compiled_erf_equals_the_numpy_reference(dtype):
    x = np.concatenate([X, EDGES]).astype(dtype)
    compiled = backend.erf(x)
    backend.use_compiled_kernels(False)
    try:
        reference = backend.erf(x)
    finally:
        backend.use_compiled_kernels(True)
    assert compiled.dtype == reference.dtype == x.dtype
    np.testing.assert_allclose(compiled, reference, rtol=4 * np.finfo(dtype).eps, atol=0)


def test_erf_keeps_float16_and_0d():
    assert backend.erf(X[:5].astype(np.float16)).dtype == np.float16
    assert np.shape(backend.erf(np.array(0.5))) == ()


def test_manual_seed_reproduces_bits():
    shendu.manual_seed(3)
    a = shendu.randn(5).numpy().copy()
    shendu.manual_seed(3)
    np.testing.assert_array_equal(a, shendu.randn(5).numpy())
