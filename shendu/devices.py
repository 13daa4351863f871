"""``shendu.device``: torch.device's names and semantics, as a ``str`` the backend understands.

A ``device`` is a string ("cpu", "cuda", "cuda:1") with ``.type`` and ``.index``, so it can go
wherever shendu takes a device (``tensor(..., device=d)``, ``t.to(d)``, ``model.to(d)``) and
equals its own spelling. shendu drives at most one GPU through CuPy: every CUDA index maps to
the current CuPy device.
"""
from __future__ import annotations

_TYPES = ("cpu", "cuda")


def _parse(spec: str):
    kind, sep, index = spec.partition(":")
    if kind not in _TYPES:
        raise RuntimeError(f"shendu.device: expected one of {', '.join(_TYPES)} device type at "
                           f"start of device string: {spec!r}")
    if not sep:
        return kind, None
    if not index.isdigit():
        raise RuntimeError(f"shendu.device: invalid device string: {spec!r}")
    return kind, int(index)


class device(str):  # noqa: N801 - torch's spelling
    """A device: ``device("cpu")``, ``device("cuda:0")``, ``device("cuda", 0)``.

    Attributes:
        type: "cpu" or "cuda".
        index: the device ordinal, or None when not given.

    Equality is by type and index, as torch: ``device("cuda") != device("cuda:0")``.
    Unlike torch, a device also equals its string (``device("cpu") == "cpu"``), because
    shendu passes devices around as strings.
    """

    def __new__(cls, type_or_spec, index=None):
        if isinstance(type_or_spec, device) and index is None:
            return type_or_spec
        if not isinstance(type_or_spec, str):
            raise TypeError(f"shendu.device: expected a string like 'cpu' or 'cuda:0' or a "
                            f"device, got {type(type_or_spec).__name__}")
        kind, parsed = _parse(type_or_spec)
        if index is not None:
            if parsed is not None:
                raise RuntimeError(f"shendu.device: type {type_or_spec!r} already holds an index;"
                                   f" cannot also pass index={index!r}")
            if isinstance(index, bool) or not isinstance(index, int):
                raise TypeError(f"shendu.device: index must be int, not "
                                f"{type(index).__name__}")
            if index < 0:
                raise RuntimeError(f"shendu.device: device index must not be negative, got "
                                   f"{index}")
            parsed = index
        self = super().__new__(cls, kind if parsed is None else f"{kind}:{parsed}")
        self.type, self.index = kind, parsed
        return self

    def __repr__(self):
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __reduce__(self):
        return device, (str(self),)


_BY_NAME = {name: device(name) for name in _TYPES}


def of(name: str) -> device:
    """The shared ``device`` for a backend device name ("cpu" or "cuda")."""
    return _BY_NAME[name]
