"""Differentiable primitives (one Function each, forward beside backward) and their
public functional forms. ``shendu.NAME`` and ``Tensor.NAME`` are thin wrappers over these."""
from shendu.ops.activation import (elu, erf, gelu, leaky_relu, log_softmax, relu, selu,
                                   sigmoid, softmax, tanh)
from shendu.ops.compare import (allclose, eq, ge, gt, isfinite, isnan, le, logical_and,
                                logical_not, logical_or, lt, ne)
from shendu.ops.elementwise import (abs, add, clamp, clip, clone, div, exp, log, maximum,
                                    minimum, mul, neg, pow, rsqrt, sign, sqrt, square, sub,
                                    where)
from shendu.ops.indexing import gather, getitem, index_select, masked_fill
from shendu.ops.linalg import bmm, einsum, matmul, mm, outer
from shendu.ops.norms import cosine_similarity, norm
from shendu.ops.pointwise import ceil, cos, floor, round, sin
from shendu.ops.reduce import (all, amax, amin, any, argmax, argmin, cumsum, logsumexp, max,
                               mean, min, prod, std, sum, var)
from shendu.ops.sorting import argsort, multinomial, sort, topk, unique
from shendu.ops.shape import (cat, chunk, concatenate, expand, flatten, flip, pad, permute,
                              repeat, reshape, split, squeeze, stack, t, transpose, tril, triu,
                              unsqueeze, view)

__all__ = [name for name in dir() if not name.startswith("_")]
