"""A stand-in for CuPy made of NumPy, to catch host/device mix-ups on a machine without a GPU.

``DeviceArray`` is NumPy memory that behaves like a CuPy array in the one way that breaks code
written for NumPy only: an operation that mixes it with a host ``numpy.ndarray`` raises
TypeError (CuPy refuses implicit host-to-device transfers), and every result stays a
DeviceArray (CuPy reductions return 0-d device arrays, not NumPy scalars). ``install`` puts the
fake module where shendu.backend looks for CuPy, so ``device='cuda'`` runs on it.
"""
import sys
import types

import numpy as np

# functions that take host data on purpose, as their CuPy namesakes do
_ACCEPTS_HOST = {"asarray", "array", "asanyarray", "ascontiguousarray"}


class DeviceArray(np.ndarray):
    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        args = [_unwrap(x, f"cupy.{ufunc.__name__}") for x in inputs]
        if out is not None:
            kwargs["out"] = tuple(_unwrap(o, f"cupy.{ufunc.__name__}") for o in out)
        return _wrap(getattr(ufunc, method)(*args, **kwargs))

    def __array_function__(self, func, types_, args, kwargs):
        name = f"cupy.{func.__name__}"
        return _wrap(func(*_unwrap_tree(args, name), **_unwrap_tree(kwargs, name)))


def _unwrap(x, op):
    if isinstance(x, DeviceArray):
        return x.view(np.ndarray)
    if isinstance(x, np.ndarray):
        raise TypeError(f"{op}: a host numpy.ndarray {x.shape} {x.dtype} was mixed with device "
                        "arrays; CuPy refuses implicit host-to-device transfers")
    return x


def _unwrap_tree(obj, op):
    if isinstance(obj, dict):
        return {k: _unwrap_tree(v, op) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap_tree(v, op) for v in obj)
    return _unwrap(obj, op)


def _wrap(result):
    if isinstance(result, DeviceArray):
        return result
    if isinstance(result, np.ndarray):
        return result.view(DeviceArray)
    if isinstance(result, np.generic):
        return np.asarray(result).view(DeviceArray)
    if isinstance(result, tuple):
        return tuple(_wrap(r) for r in result)
    if isinstance(result, list):
        return [_wrap(r) for r in result]
    return result


def _device_function(name, numpy_function):
    def call(*args, **kwargs):
        if name in _ACCEPTS_HOST:
            args = [a.view(np.ndarray) if isinstance(a, DeviceArray) else a for a in args]
            return _wrap(np.array(numpy_function(*args, **kwargs)))
        op = f"cupy.{name}"
        return _wrap(numpy_function(*_unwrap_tree(args, op), **_unwrap_tree(kwargs, op)))
    return call


class _Namespace(types.ModuleType):
    """Attributes of ``source`` with functions made to take and give DeviceArrays."""

    def __init__(self, name, source):
        super().__init__(name)
        self._source = source

    def __getattr__(self, name):
        value = getattr(self._source, name)
        if callable(value) and not isinstance(value, type):
            return _device_function(name, value)
        return value


class _Generator:
    def __init__(self, seed):
        self._rng = np.random.default_rng(seed)

    def __getattr__(self, name):
        return _device_function(name, getattr(self._rng, name))


def _scatter_add(target, indices, values):
    np.add.at(target.view(np.ndarray), _unwrap_tree(indices, "cupyx.scatter_add"),
              _unwrap(values, "cupyx.scatter_add"))


def install(monkeypatch):
    """Make shendu.backend see this fake as CuPy with one GPU, for one test."""
    from shendu import backend
    cupy = _Namespace("cupy", np)
    cupy.ndarray = DeviceArray
    cupy.asnumpy = lambda x: np.array(x.view(np.ndarray) if isinstance(x, DeviceArray) else x)
    cupy.random = types.SimpleNamespace(default_rng=_Generator)
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
    cupy.lib = types.SimpleNamespace(stride_tricks=_Namespace("cupy.lib.stride_tricks",
                                                              np.lib.stride_tricks))
    from shendu.backend import _erf_numpy
    cupyx = types.ModuleType("cupyx")
    cupyx.scatter_add = _scatter_add
    special = types.ModuleType("cupyx.scipy.special")
    special.erf = lambda x: _wrap(_erf_numpy(x.view(np.ndarray)))
    cupyx.scipy = types.SimpleNamespace(special=special)
    modules = {"cupy": cupy, "cupy.lib": cupy.lib, "cupy.lib.stride_tricks": cupy.lib.stride_tricks,
               "cupyx": cupyx, "cupyx.scipy": cupyx.scipy, "cupyx.scipy.special": special}
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(backend, "_cupy", cupy)
    monkeypatch.setattr(backend, "_default_generators", {})
