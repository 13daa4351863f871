"""The array-namespace seam: the only module that imports NumPy or CuPy.

Every other module reaches array math through ``xp_of(array)`` or ``namespace(device)``, so the
same op code runs on NumPy (device "cpu") and CuPy (device "cuda"). Backend differences
(scatter-add, strided windows, erf, random generators) live here as functions.
"""
from __future__ import annotations

import math
import os
import sys

# OpenBLAS's idle workers spin for ~2^28 cycles before they sleep. With another process on one
# of two cores, a spinning worker shares its core with that process and every mid-size GEMM
# waits a time slice for it: an LSTM step ran 24.8x PyTorch's (benchmarks/all.py --busy). Letting
# them sleep after 2^4 cycles gave 1.32x there and left shendu's quiet step times unchanged
# (within noise). OpenBLAS reads the variable when it loads, so only an import of shendu before
# NumPy can set it; a user's own value wins.
if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

try:  # CuPy is an optional extra: `pip install shendu[gpu]`
    import cupy as _cupy
except Exception:  # noqa: BLE001 - any import failure means "no GPU backend"
    _cupy = None

# dtypes are NumPy dtype objects, so `t.dtype == shendu.float32` works on both backends
float16 = np.dtype("float16")
float32 = np.dtype("float32")
float64 = np.dtype("float64")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
uint8 = np.dtype("uint8")
bool_ = np.dtype("bool")

default_float = float32
ndarray_cpu = np.ndarray


def cuda_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    if _cupy is None:
        return False
    try:
        return _cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - a driver error means no usable GPU
        return False


_default_device = {"name": "cpu"}


def set_default_device(device) -> None:
    """Where creation functions put tensors when no ``device=`` is given (torch's
    set_default_device); ``SHENDU_TEST_DEVICE=cuda`` runs the test suite this way."""
    _default_device["name"] = "cpu" if device is None else normalize_device(device)


def get_default_device() -> str:
    return _default_device["name"]


def cuda_runtime():
    """CuPy's CUDA runtime module (device count, current device, synchronize); needs a GPU."""
    if not cuda_available():
        raise RuntimeError("CUDA is not available: install the 'gpu' extra (CuPy) on a machine "
                           "with an NVIDIA GPU")
    return _cupy.cuda.runtime


def normalize_device(device) -> str:
    """Map None (the default device) / "cpu" / "cuda" / "cuda:0" to "cpu" or "cuda"."""
    if device is None:
        return _default_device["name"]
    name = str(device)
    if name == "cpu":
        return "cpu"
    if name.startswith("cuda"):
        if not cuda_available():
            raise RuntimeError(f"device {name!r} requested but CuPy/CUDA is not available; "
                               "install the 'gpu' extra on a machine with an NVIDIA GPU")
        return "cuda"
    raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")


def namespace(device: str):
    """The array module (numpy or cupy) for a normalized device name."""
    return np if device == "cpu" else _cupy


def xp_of(array):
    """The array module that owns ``array`` (numpy for NumPy arrays and scalars)."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy
    return np


def device_of(array) -> str:
    return "cuda" if (_cupy is not None and isinstance(array, _cupy.ndarray)) else "cpu"


def is_array(obj) -> bool:
    return isinstance(obj, np.ndarray) or (_cupy is not None and isinstance(obj, _cupy.ndarray))


def as_dtype(dtype, op="dtype"):
    """Normalize a user dtype (shendu dtype, numpy dtype, str, Python type) to np.dtype.

    ``op`` names the caller in the error raised for something that is not a dtype (a device
    name like 'tpu', say); a device is the other thing ``.to()`` accepts, hence the hint."""
    if dtype is None:
        return None
    if dtype is float:
        return default_float
    if dtype is int:
        return int64
    if dtype is bool:
        return bool_
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{op}: {dtype!r} is neither a dtype (e.g. shendu.float32, 'float64', "
                        "int) nor a device ('cpu' or 'cuda')") from None


def infer_dtype(data):
    """torch's rule: Python floats become the default float dtype, ints int64, bools bool."""
    if is_array(data):
        return None
    arr = np.asarray(data)
    if arr.dtype.kind == "f":
        return default_float
    if arr.dtype.kind in "iu":
        return int64
    if arr.dtype.kind == "b":
        return bool_
    raise TypeError(f"tensor(): cannot build a tensor from data of type {type(data).__name__} "
                    f"(numpy dtype {arr.dtype}); expected numbers, bools or nested lists of them")


def to_device(array, device: str):
    """Copy an array to "cpu" (NumPy) or "cuda" (CuPy) if it is not there already."""
    if device_of(array) == device:
        return array
    if device == "cpu":
        return _cupy.asnumpy(array)
    return _cupy.asarray(array)


def to_numpy(array):
    return _cupy.asnumpy(array) if device_of(array) == "cuda" else array


def is_floating(dtype) -> bool:
    return np.dtype(dtype).kind == "f"


def result_dtype(*dtypes):
    return np.result_type(*dtypes)


# --- kernels whose spelling differs between NumPy and CuPy ---------------------------------

def scatter_add(target, indices, values):
    """target[indices] += values, accumulating repeated indices (np.add.at semantics)."""
    xp = xp_of(target)
    if xp is np:
        np.add.at(target, indices, values)
    else:
        import cupyx
        cupyx.scatter_add(target, indices, values)
    return target


def sliding_window_view(x, window_shape, axis):
    """A strided, zero-copy view of all windows (numpy.lib.stride_tricks semantics)."""
    xp = xp_of(x)
    if xp is np:
        return np.lib.stride_tricks.sliding_window_view(x, window_shape, axis=axis)
    from cupy.lib.stride_tricks import sliding_window_view as cupy_windows
    return cupy_windows(x, window_shape, axis=axis)


def as_strided(x, shape, strides):
    """Strided view; strides in bytes as NumPy and CuPy both take them."""
    if xp_of(x) is np:
        return np.lib.stride_tricks.as_strided(x, shape=shape, strides=strides, writeable=False)
    return _cupy.lib.stride_tricks.as_strided(x, shape=shape, strides=strides)


# W. J. Cody's rational approximations (Math. Comp. 1969), accurate to double precision; NumPy
# has no erf and SciPy is not a core dependency.
_ERF_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
          3.20937758913846947e03, 1.85777706184603153e-1)
_ERF_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
          2.84423683343917062e03)
_ERF_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
          2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
          2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_ERF_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
          1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
          3.43936767414372164e03, 1.23033935480374942e03)
_ERF_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
          1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_ERF_Q = (2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1,
          6.05183413124413191e-2, 2.33520497626869185e-3)


def _erf_numpy(x):
    out_dtype = x.dtype
    x = x.astype(np.float64)
    ax = np.abs(x)
    out = np.empty_like(x)
    small = ax <= 0.5
    mid = (ax > 0.5) & (ax <= 4.0)
    big = ax > 4.0
    if small.any():
        xs = x[small]
        z = xs * xs
        num = _ERF_A[4] * z
        den = z
        for i in range(3):
            num = (num + _ERF_A[i]) * z
            den = (den + _ERF_B[i]) * z
        out[small] = xs * (num + _ERF_A[3]) / (den + _ERF_B[3])
    if mid.any():
        y = ax[mid]
        num = _ERF_C[8] * y
        den = y
        for i in range(7):
            num = (num + _ERF_C[i]) * y
            den = (den + _ERF_D[i]) * y
        erfc = (num + _ERF_C[7]) / (den + _ERF_D[7])
        erfc *= np.exp(-y * y)
        out[mid] = np.sign(x[mid]) * (1.0 - erfc)
    if big.any():
        y = ax[big]
        z = 1.0 / (y * y)
        num = _ERF_P[5] * z
        den = z
        for i in range(4):
            num = (num + _ERF_P[i]) * z
            den = (den + _ERF_Q[i]) * z
        r = z * (num + _ERF_P[4]) / (den + _ERF_Q[4])
        r = (1.0 / math.sqrt(math.pi) - r) / y
        out[big] = np.sign(x[big]) * (1.0 - r * np.exp(-y * y))
    return out.astype(out_dtype, copy=False)


# Optional compiled kernels (the `fast` extra installs numba). The NumPy code above stays the
# reference; tests compare the two. Profiling GELU in a Transformer showed erf as its largest
# cost: the masked NumPy evaluation is ~10x slower than one compiled loop over math.erf.
_compiled = {"enabled": True, "erf": None}


def use_compiled_kernels(enabled: bool) -> None:
    """Switch the optional numba kernels on or off (for tests and for comparisons)."""
    _compiled["enabled"] = bool(enabled)


def compiled_kernels_enabled() -> bool:
    """Whether code may use an optional compiled kernel (see shendu.kernels)."""
    return _compiled["enabled"]


def compiled_kernels_available() -> bool:
    return _compiled_erf() is not None


def _compiled_erf():
    if _compiled["erf"] is None:
        try:
            import numba
        except ImportError:
            _compiled["erf"] = False
        else:
            @numba.vectorize(["float32(float32)", "float64(float64)"], nopython=True,
                             cache=False)
            def erf_kernel(value):
                return math.erf(value)

            _compiled["erf"] = erf_kernel
    return _compiled["erf"] or None


def erf(x):
    """Elementwise error function on either backend, keeping the input dtype."""
    if xp_of(x) is np:
        kernel = _compiled_erf() if _compiled["enabled"] and x.dtype in (float32, float64) \
            else None
        if kernel is not None:
            return kernel(x)
        return _erf_numpy(x)
    import cupyx.scipy.special
    return cupyx.scipy.special.erf(x)


# --- random numbers: one explicit Generator per device ---------------------------------------

class Generator:
    """A seeded random source for one device (torch.Generator's role).

    Wraps numpy.random.Generator (PCG64) or cupy.random.Generator; every random draw in shendu
    goes through one of these, never the global np.random functions. ``device`` defaults to
    the default device (``set_default_device``; 'cpu' unless changed).
    """

    def __init__(self, device=None, seed=None):
        self.device = normalize_device(device)
        self.manual_seed(seed)

    def manual_seed(self, seed):
        self.initial_seed = seed
        if self.device == "cpu":
            self._rng = np.random.default_rng(seed)
        else:
            self._rng = _cupy.random.default_rng(seed)
        return self

    def get_state(self) -> dict:
        if self.device != "cpu":
            raise RuntimeError("Generator.get_state is only available on the CPU backend")
        return dict(self._rng.bit_generator.state)

    def set_state(self, state: dict):
        if self.device != "cpu":
            raise RuntimeError("Generator.set_state is only available on the CPU backend")
        self._rng.bit_generator.state = state

    def random(self, shape, dtype):
        return self._rng.random(shape, dtype=dtype if dtype in (float32, float64) else float64)

    def normal(self, shape, dtype):
        return self._rng.standard_normal(shape, dtype=dtype if dtype in (float32, float64)
                                         else float64)

    def integers(self, low, high, shape):
        return self._rng.integers(low, high, size=shape, dtype=int64)

    def permutation(self, n):
        return self._rng.permutation(n)


_default_generators: dict[str, Generator] = {}


def default_generator(device="cpu") -> Generator:
    device = normalize_device(device)
    if device not in _default_generators:
        _default_generators[device] = Generator(device)
    return _default_generators[device]


def generator_for(generator, device, op) -> Generator:
    """``generator`` (or the device's default one) after checking it draws on ``device``: a
    CPU generator's draws mixed into GPU arrays would fail deep inside CuPy (torch refuses
    the same mix)."""
    if generator is None:
        return default_generator(device)
    if generator.device != device:
        raise ValueError(f"{op}: generator is on {generator.device} but the tensor is on "
                         f"{device}; pass a Generator(device={device!r})")
    return generator


def manual_seed(seed: int) -> Generator:
    """Seed the default generator of every device (torch.manual_seed)."""
    for device in list(_default_generators) + ["cpu"]:
        default_generator(device).manual_seed(seed)
    return default_generator("cpu")
