"""Tensor creation functions with torch's names, defaults and dtype rules.

Floats default to float32 (``backend.default_float``); Python ints become int64. Random
functions draw from the device's explicit Generator (``shendu.manual_seed`` seeds them).
"""
from __future__ import annotations

from shendu import backend
from shendu.tensor import Tensor


def _to_array(data, dtype=None, device=None):
    """Build an xp array from nested lists, scalars, arrays or Tensors (always a copy)."""
    dtype = backend.as_dtype(dtype)
    if isinstance(data, Tensor):
        data = data._data
    if device is None and backend.device_of(data) == "cuda":
        device = "cuda"  # GPU data stays there; host data goes to the default device
    device = backend.normalize_device(device)
    xp = backend.namespace(device)
    if backend.is_array(data):
        data = backend.to_device(data, device)
        return xp.array(data, dtype=dtype, copy=True)
    try:
        if dtype is None:
            dtype = backend.infer_dtype(data)
        return xp.asarray(data, dtype=dtype)
    except ValueError as err:  # ragged nested lists, strings that are not numbers
        raise ValueError(f"tensor(): cannot build a tensor from {type(data).__name__} data "
                         f"({err}); expected numbers or equally long nested lists") from None


def _shape(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for n in size:
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"expected a shape of non-negative ints, got {tuple(size)}")
    return tuple(size)


def _float_dtype(dtype):
    return backend.as_dtype(dtype) or backend.default_float


def _make(array, requires_grad):
    t = Tensor._wrap(array)
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(data, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Copy ``data`` into a new leaf tensor (torch.tensor)."""
    return _make(_to_array(data, dtype, device), requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    return tensor(data, dtype, device)


def from_numpy(array) -> Tensor:
    """Share memory with a NumPy array (torch.from_numpy); the dtype is kept."""
    if not isinstance(array, backend.ndarray_cpu):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor._wrap(array)


def zeros(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    xp = backend.namespace(backend.normalize_device(device))
    return _make(xp.zeros(_shape(size), dtype=_float_dtype(dtype)), requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    xp = backend.namespace(backend.normalize_device(device))
    return _make(xp.ones(_shape(size), dtype=_float_dtype(dtype)), requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    xp = backend.namespace(backend.normalize_device(device))
    return _make(xp.empty(_shape(size), dtype=_float_dtype(dtype)), requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    xp = backend.namespace(backend.normalize_device(device))
    if dtype is None:
        dtype = backend.infer_dtype(fill_value)
    return _make(xp.full(_shape((size,)), fill_value, dtype=backend.as_dtype(dtype)),
                 requires_grad)


def zeros_like(t, dtype=None, requires_grad=False) -> Tensor:
    return _make(t._xp.zeros(t.shape, dtype=backend.as_dtype(dtype) or t.dtype), requires_grad)


def ones_like(t, dtype=None, requires_grad=False) -> Tensor:
    return _make(t._xp.ones(t.shape, dtype=backend.as_dtype(dtype) or t.dtype), requires_grad)


def full_like(t, fill_value, dtype=None, requires_grad=False) -> Tensor:
    return _make(t._xp.full(t.shape, fill_value, dtype=backend.as_dtype(dtype) or t.dtype),
                 requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Values in [start, end) spaced by step; int64 unless any argument is a float."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        is_float = any(isinstance(v, float) for v in (start, end, step))
        dtype = backend.default_float if is_float else backend.int64
    xp = backend.namespace(backend.normalize_device(device))
    return _make(xp.arange(start, end, step).astype(backend.as_dtype(dtype)), requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False) -> Tensor:
    xp = backend.namespace(backend.normalize_device(device))
    return _make(xp.linspace(start, end, steps).astype(_float_dtype(dtype)), requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    xp = backend.namespace(backend.normalize_device(device))
    return _make(xp.eye(n, m, dtype=_float_dtype(dtype)), requires_grad)


def _generator(generator, device):
    return backend.generator_for(generator, device, "random tensor creation")


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform samples on [0, 1)."""
    device = backend.normalize_device(device)
    dtype = _float_dtype(dtype)
    data = _generator(generator, device).random(_shape(size), dtype).astype(dtype, copy=False)
    return _make(data, requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal samples."""
    device = backend.normalize_device(device)
    dtype = _float_dtype(dtype)
    data = _generator(generator, device).normal(_shape(size), dtype).astype(dtype, copy=False)
    return _make(data, requires_grad)


def randint(low=0, high=None, size=(), generator=None, dtype=None, device=None) -> Tensor:
    """Integers uniform on [low, high) (int64 by default).

    Accepts torch's forms ``randint(high, size)`` and ``randint(low, high, size)``.
    """
    if isinstance(high, (tuple, list)):  # randint(high, size)
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    if high <= low:
        raise ValueError(f"randint: expected low < high, got low={low} and high={high}")
    device = backend.normalize_device(device)
    data = _generator(generator, device).integers(low, high, _shape((size,)))
    return Tensor._wrap(data.astype(backend.as_dtype(dtype) or backend.int64, copy=False))


def randperm(n, generator=None, device=None) -> Tensor:
    device = backend.normalize_device(device)
    return Tensor._wrap(_generator(generator, device).permutation(n).astype(backend.int64))


def rand_like(t, generator=None) -> Tensor:
    return rand(*t.shape, generator=generator, dtype=t.dtype, device=t.device)


def randn_like(t, generator=None) -> Tensor:
    return randn(*t.shape, generator=generator, dtype=t.dtype, device=t.device)
