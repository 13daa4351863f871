"""torch's legacy constructors: ``Tensor(data)``, ``Tensor(*sizes)`` and the typed classes
``FloatTensor``, ``DoubleTensor``, ``LongTensor``, ``IntTensor``, ``BoolTensor``, ``ByteTensor``.

``Tensor(data)`` gives the default float dtype (float32) whatever the data's dtype, as
``torch.Tensor`` does (a Tensor argument is aliased, keeping its dtype); ``shendu.tensor(...)`` is the function that infers the dtype. With int
arguments the result has that shape and uninitialised values (torch's ``torch.Tensor(2, 3)``).
"""
from __future__ import annotations

from shendu import backend


def _is_size(args):
    return bool(args) and all(isinstance(a, int) and not isinstance(a, bool) for a in args)


def legacy_array(args, dtype, device, who):
    """The array ``<who>(*args)`` holds: a copy of data cast to ``dtype``, or an empty shape."""
    from shendu.creation import _to_array
    from shendu.tensor import Tensor

    xp = backend.namespace(backend.normalize_device(device))
    if not args:
        return xp.empty((0,), dtype=dtype)
    if _is_size(args):
        if any(a < 0 for a in args):
            raise RuntimeError(f"{who}: sizes must be non-negative, got {args}")
        return xp.empty(args, dtype=dtype)
    if len(args) > 1:
        raise TypeError(f"{who}: expected data (a list, array or Tensor) or int sizes, got "
                        f"arguments of types {[type(a).__name__ for a in args]}")
    data = args[0]
    if isinstance(data, Tensor):
        if data.dtype != dtype and who != "Tensor":  # Tensor(t) aliases t whatever its dtype
            raise TypeError(f"{who}: expected a Tensor of dtype {dtype} (the legacy constructor "
                            f"never converts a Tensor), got {data.dtype}; use .to({dtype})")
        return backend.to_device(data._data, backend.normalize_device(device)) \
            if device is not None else data._data  # shares memory, as torch
    if isinstance(data, (str, bytes)):
        raise TypeError(f"{who}: expected data (a list, array or Tensor) or int sizes, got "
                        f"{type(data).__name__}")
    return _to_array(data, dtype, device)


class _TypedTensorMeta(type):
    def __instancecheck__(cls, obj):
        from shendu.tensor import Tensor
        return isinstance(obj, Tensor) and obj.dtype == cls.dtype and obj.device == "cpu"


def _typed(name, dtype):
    def __new__(cls, *args, device=None):
        from shendu.tensor import Tensor
        return Tensor._wrap(legacy_array(args, cls.dtype, device, name))

    doc = (f"``{name}(data)`` / ``{name}(*sizes)``: a CPU tensor of dtype {dtype} "
           f"(isinstance checks the dtype, as torch).")
    return _TypedTensorMeta(name, (), {"dtype": dtype, "__new__": __new__, "__doc__": doc})


FloatTensor = _typed("FloatTensor", backend.float32)
DoubleTensor = _typed("DoubleTensor", backend.float64)
HalfTensor = _typed("HalfTensor", backend.float16)
LongTensor = _typed("LongTensor", backend.int64)
IntTensor = _typed("IntTensor", backend.int32)
ByteTensor = _typed("ByteTensor", backend.uint8)
BoolTensor = _typed("BoolTensor", backend.bool_)
