"""Comparisons and logical ops: elementwise, broadcasting, returning bool tensors.

They have no gradient, so they never enter the graph; operands are promoted first with the
same rules as arithmetic (``int_tensor < 0.5`` compares as float).
"""
from __future__ import annotations

from shendu.ops.elementwise import as_operands, broadcast_shape
from shendu.tensor import Tensor


def _compare(name, ufunc):
    def compare(a, b):
        a, b = as_operands(a, b, name)
        try:
            return Tensor._wrap(getattr(a._xp, ufunc)(a._data, b._data))
        except ValueError:
            broadcast_shape(name, a.shape, b.shape)
            raise

    compare.__name__ = name
    compare.__doc__ = f"Elementwise {ufunc} with broadcasting; returns a bool tensor."
    return compare


eq = _compare("eq", "equal")
ne = _compare("ne", "not_equal")
lt = _compare("lt", "less")
le = _compare("le", "less_equal")
gt = _compare("gt", "greater")
ge = _compare("ge", "greater_equal")
logical_and = _compare("logical_and", "logical_and")
logical_or = _compare("logical_or", "logical_or")


def logical_not(a):
    return Tensor._wrap(a._xp.logical_not(a._data))


def isnan(a):
    return Tensor._wrap(a._xp.isnan(a._data))


def isfinite(a):
    return Tensor._wrap(a._xp.isfinite(a._data))


def allclose(a, b, rtol=1e-5, atol=1e-8):
    return bool(a._xp.allclose(a._data, b._data, rtol=rtol, atol=atol))

