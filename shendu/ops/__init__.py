"""Differentiable primitives (one Function each, forward beside backward) and their
public functional forms. ``shendu.NAME`` and ``Tensor.NAME`` are thin wrappers over these."""
from shendu.ops.activation import (elu, erf, gelu, leaky_relu, log_softmax, relu, sigmoid,
                                   softmax, tanh)
from shendu.ops.elementwise import (abs, add, allclose, clamp, clip, clone, div, eq, exp, ge,
                                    gt, isfinite, isnan, le, log, logical_and, logical_not,
                                    logical_or, lt, maximum, minimum, mul, ne, neg, pow, rsqrt,
                                    sign, sqrt, square, sub, where)
from shendu.ops.linalg import bmm, matmul, mm
from shendu.ops.reduce import (all, amax, amin, any, argmax, argmin, logsumexp, max, mean, min,
                               std, sum, var)
from shendu.ops.shape import (cat, chunk, concatenate, expand, flatten, flip, gather, getitem,
                              index_select, masked_fill, pad, permute, repeat, reshape, split,
                              squeeze, stack, t, transpose, tril, triu, unsqueeze, view)

__all__ = [name for name in dir() if not name.startswith("_")]
