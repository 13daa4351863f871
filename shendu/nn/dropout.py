"""Dropout (Concept: N3.2.5; Srivastava et al. 2014)."""
from __future__ import annotations

from shendu.nn import functional as F
from shendu.nn._checks import check_tensor
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
