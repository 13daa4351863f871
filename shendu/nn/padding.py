"""Constant padding layers: ZeroPad1d/2d and ConstantPad1d/2d, over ``F.pad``.

``padding`` is an int (every side) or (left, right) for 1-D, (left, right, top, bottom) for
2-D, as torch (non-negative here).

Shape: ZeroPad2d (N, C, H, W) or (C, H, W) -> H + top + bottom, W + left + right;
ZeroPad1d (N, C, L) or (C, L) -> L + left + right.
"""
from __future__ import annotations

from shendu.nn import functional as F
from shendu.nn._checks import check_input, check_tensor
from shendu.nn.module import Module


class _ConstantPadNd(Module):
    _sides = 2

    def __init__(self, padding, value):
        super().__init__()
        name = type(self).__name__
        if isinstance(padding, int) and not isinstance(padding, bool):
            padding = (padding,) * self._sides
        if (not isinstance(padding, (tuple, list)) or len(padding) != self._sides
                or not all(isinstance(p, int) and not isinstance(p, bool) for p in padding)):
            raise TypeError(f"{name}: padding must be an int or {self._sides} ints, got "
                            f"{padding!r}")
        self.padding = tuple(padding)
        self.value = value

    def forward(self, input):
        name = f"{type(self).__name__}({self.padding})"
        check_tensor(name, input)
        spatial = self._sides // 2
        check_input(name, input, input.ndim in (spatial + 1, spatial + 2),
                    "(N, C, L) or (C, L)" if spatial == 1 else "(N, C, H, W) or (C, H, W)")
        return F.pad(input, self.padding, "constant", self.value)

    def extra_repr(self):
        return f"padding={self.padding}, value={self.value}"


class ConstantPad1d(_ConstantPadNd):
    """Pad the last dim with ``value``: padding = int or (left, right)."""

    def __init__(self, padding, value):
        super().__init__(padding, value)


class ConstantPad2d(_ConstantPadNd):
    """Pad the last two dims with ``value``: padding = int or (left, right, top, bottom)."""

    _sides = 4

    def __init__(self, padding, value):
        super().__init__(padding, value)


class ZeroPad1d(ConstantPad1d):
    """Pad the last dim with zeros: padding = int or (left, right)."""

    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self):
        return f"padding={self.padding}"


class ZeroPad2d(ConstantPad2d):
    """Pad the last two dims with zeros: padding = int or (left, right, top, bottom)."""

    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self):
        return f"padding={self.padding}"
