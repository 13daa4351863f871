"""Hypothesis strategies shared by the op parity tests: shapes, broadcast pairs, dims, seeds.

Sides stay small (<= 4) so each example costs milliseconds; 0-d shapes and size-1 axes are
drawn often because that is where broadcasting and reduction bugs hide.
"""
from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# derandomize: the same examples on every run, so a failure is reproducible in CI
FAST = settings(max_examples=20, deadline=None, derandomize=True)

seeds = st.integers(0, 2**16)


def shapes(min_dims=0, max_dims=3, min_side=1, max_side=4):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcast_pairs(min_dims=0, max_dims=3, min_side=1, max_side=4):
    """Two shapes that broadcast together, e.g. (3, 1, 4) and (2, 1)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=min_dims, max_dims=max_dims, min_side=min_side,
        max_side=max_side).map(lambda r: r.input_shapes)


def broadcast_triples(min_dims=0, max_dims=3, max_side=4):
    return hnp.mutually_broadcastable_shapes(
        num_shapes=3, min_dims=min_dims, max_dims=max_dims, min_side=1,
        max_side=max_side).map(lambda r: r.input_shapes)


@st.composite
def shape_and_dim(draw, min_dims=1, max_dims=3, min_side=1, max_side=4):
    """A shape and one valid dim of it, negative half the time."""
    shape = draw(shapes(min_dims, max_dims, min_side, max_side))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    return shape, dim


@st.composite
def shape_and_dims(draw, min_dims=1, max_dims=3, max_side=4):
    """A shape and a tuple of distinct dims of it (possibly negative)."""
    shape = draw(shapes(min_dims, max_dims, 1, max_side))
    axes = draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape),
                         unique=True))
    signs = draw(st.lists(st.booleans(), min_size=len(axes), max_size=len(axes)))
    return shape, tuple(a - len(shape) if neg else a for a, neg in zip(axes, signs))
