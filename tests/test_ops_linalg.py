"""matmul / mm / bmm against PyTorch: 1-D, 2-D, batched and broadcast batch dims, values,
gradients, second derivatives and errors."""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from oracle import check_op
from strategies import FAST, broadcast_pairs, seeds

import shendu


@FAST
@given(batch=broadcast_pairs(max_dims=3, max_side=3), n=st.integers(1, 4),
       k=st.integers(1, 4), m=st.integers(1, 4), seed=seeds)
def test_matmul_batched_broadcast(batch, n, k, m, seed):
    a_shape, b_shape = batch[0] + (n, k), batch[1] + (k, m)
    check_op(lambda a, b: a @ b, [a_shape, b_shape], seed=seed, second_order=True)
    check_op(shendu.matmul, [a_shape, b_shape], torch.matmul, seed=seed)
    check_op(lambda a, b: a.matmul(b), [a_shape, b_shape], seed=seed)


@pytest.mark.parametrize("a_shape,b_shape", [
    ((3,), (3,)),
    ((3,), (3, 4)),
    ((2, 3), (3,)),
    ((5, 2, 3), (3,)),
    ((3,), (5, 3, 4)),
    ((2, 1, 2, 3), (4, 3, 2)),
    ((1, 3), (3, 1)),
    ((0, 3), (3, 2)),
    ((2, 0), (0, 3)),
])
def test_matmul_shapes(a_shape, b_shape):
    check_op(lambda a, b: a @ b, [a_shape, b_shape], second_order=True)


def test_mm_bmm_and_mixed_dtypes():
    check_op(shendu.mm, [(2, 3), (3, 4)], torch.mm, second_order=True)
    check_op(shendu.bmm, [(5, 2, 3), (5, 3, 4)], torch.bmm, second_order=True)
    check_op(lambda a, b: a.mm(b), [(2, 3), (3, 4)])
    check_op(lambda a, b: a.bmm(b), [(5, 2, 3), (5, 3, 4)])
    a = np.ones((2, 3), dtype=np.float32)
    check_op(lambda x, y: x @ y, [a, (3, 2)], lambda x, y: x.double() @ y,
             check_float32=False)
    ints = shendu.tensor([[1, 2], [3, 4]]) @ shendu.tensor([[1], [1]])
    assert ints.dtype == shendu.int64 and ints.tolist() == [[3], [7]]


def test_matmul_float32_stays_float32():
    out = shendu.randn(2, 3) @ shendu.randn(3, 4)
    assert out.dtype == shendu.float32


def test_matmul_gradient_through_shared_operand():
    # x @ x.T uses x twice: both contributions must accumulate
    check_op(lambda x: x @ x.T, [(3, 4)], second_order=True)
    check_op(lambda x: (x @ x) @ x, [(3, 3)], second_order=True)


# --- bad input ----------------------------------------------------------------------------

def test_matmul_errors_name_op_and_shapes():
    with pytest.raises(RuntimeError, match=r"matmul: shapes \(2, 3\) and \(4, 5\) cannot be "
                                           r"multiplied \(3 != 4\)"):
        shendu.ones(2, 3) @ shendu.ones(4, 5)
    with pytest.raises(RuntimeError, match=r"matmul: shapes \(3,\) and \(4,\) cannot be "
                                           r"multiplied"):
        shendu.matmul(shendu.ones(3), shendu.ones(4))
    with pytest.raises(RuntimeError, match=r"matmul: batch dims \(2,\) and \(5,\) of shapes "
                                           r"\(2, 3, 4\) and \(5, 4, 2\) do not broadcast"):
        shendu.ones(2, 3, 4) @ shendu.ones(5, 4, 2)
    with pytest.raises(RuntimeError, match=r"matmul: both arguments need at least 1 dim, got "
                                           r"shapes \(\) and \(3,\)"):
        shendu.tensor(2.0) @ shendu.ones(3)
    with pytest.raises(RuntimeError, match=r"mm: expected 2-D tensors, got \(3,\) and \(3, 2\)"):
        shendu.mm(shendu.ones(3), shendu.ones(3, 2))
    with pytest.raises(RuntimeError, match=r"bmm: expected 3-D tensors with equal batch, got "
                                           r"\(2, 3, 4\) and \(3, 4, 2\)"):
        shendu.bmm(shendu.ones(2, 3, 4), shendu.ones(3, 4, 2))
    with pytest.raises(TypeError, match="matmul: unsupported operand of type list"):
        shendu.ones(2, 2) @ [[1.0, 0.0], [0.0, 1.0]]
