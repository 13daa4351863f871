"""Dropout, element-wise and of whole channels (Concept: N3.2.5; Srivastava et al. 2014)."""
from __future__ import annotations

from shendu.nn import functional as F
from shendu.nn._checks import check_input, check_tensor
from shendu.nn.module import Module


class Dropout(Module):
    """While training, zero each element with probability p and scale the rest by 1/(1-p)
    (inverted dropout, so eval mode is the identity). Concept: N3.2.5.

    Args:
        p: probability of zeroing an element, in [0, 1]. Default: 0.5.
        inplace: overwrite the input (only where autograd allows). Default: False.
        generator: (keyword) the Generator that draws the masks; None = the device's default.
            Seeding it makes the masks reproducible.

    Shape:
        input (*) -> output (*)
    """

    def __init__(self, p=0.5, inplace=False, *, generator=None):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ValueError(f"Dropout: dropout probability has to be between 0 and 1, but got "
                             f"{p!r}")
        self.p = p
        self.inplace = inplace
        self.generator = generator

    def forward(self, input):
        check_tensor(f"Dropout(p={self.p})", input)
        return F.dropout(input, self.p, self.training, self.inplace, generator=self.generator)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class _ChannelDropout(Dropout):
    """Zero whole channels (every element of a (sample, channel) slice together) with
    probability p, scaling the rest by 1/(1-p): for feature maps, whose neighbouring
    elements are too correlated for element-wise dropout to regularise (Tompson et al.
    2015)."""

    _fn = ""
    _layout = ""
    _ndims = ()

    def __init__(self, p=0.5, inplace=False):
        super().__init__(p, inplace)

    def forward(self, input):
        name = f"{type(self).__name__}(p={self.p})"
        check_tensor(name, input)
        check_input(name, input, input.ndim in self._ndims, self._layout)
        return getattr(F, self._fn)(input, self.p, self.training, self.inplace)


class Dropout1d(_ChannelDropout):
    """Channel dropout of (N, C, L) signals.  Shape: (N, C, L) -> (N, C, L)."""

    _fn, _layout, _ndims = "dropout1d", "(N, C, L)", (3,)


class Dropout2d(_ChannelDropout):
    """Channel dropout of (N, C, H, W) images.  Shape: (N, C, H, W) -> (N, C, H, W); a 3-D
    input is read as (N, C, L), with torch's warning."""

    _fn, _layout, _ndims = "dropout2d", "(N, C, H, W) or (N, C, L)", (3, 4)
