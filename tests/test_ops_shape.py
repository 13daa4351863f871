"""Shape and indexing ops against PyTorch: reshape/view, permute, transpose, flatten, squeeze,
unsqueeze, expand, repeat, cat, stack, split, chunk, indexing, index_select, gather,
masked_fill, pad, flip, tril/triu; values, gradients and second derivatives."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from oracle import check_op
from strategies import FAST, seeds, shape_and_dim, shape_and_dims, shapes

import shendu


@FAST
@given(shape=shapes(min_dims=0, max_dims=4), seed=seeds)
def test_reshape_view_flatten(shape, seed):
    n = int(np.prod(shape))
    check_op(lambda x: x.reshape(-1), [shape], seed=seed, second_order=True)
    check_op(lambda x: x.reshape(n, 1), [shape], seed=seed)
    check_op(lambda x: x.view(1, -1, 1), [shape], seed=seed)
    check_op(lambda x: shendu.reshape(x, (n,)), [shape], lambda x: torch.reshape(x, (n,)),
             seed=seed)
    check_op(lambda x: x.flatten(), [shape], seed=seed)
    if len(shape) >= 2:
        check_op(lambda x: x.flatten(1), [shape], seed=seed, second_order=True)
        check_op(lambda x: x.flatten(-2, -1), [shape], seed=seed)
        check_op(lambda x: x.flatten(0, -2), [shape], seed=seed)


@FAST
@given(shape=shapes(min_dims=1, max_dims=4), data=st.data())
def test_permute_transpose_T(shape, data):
    perm = data.draw(st.permutations(range(len(shape))))
    neg = [p - len(shape) if i % 2 else p for i, p in enumerate(perm)]
    check_op(lambda x: x.permute(*neg), [shape], second_order=True)
    check_op(lambda x: shendu.permute(x, neg), [shape], lambda x: torch.permute(x, neg))
    d0 = data.draw(st.integers(-len(shape), len(shape) - 1))
    d1 = data.draw(st.integers(-len(shape), len(shape) - 1))
    check_op(lambda x: x.transpose(d0, d1), [shape], second_order=True)
    check_op(lambda x: shendu.transpose(x, d0, d1), [shape],
             lambda x: torch.transpose(x, d0, d1))
    if len(shape) <= 2:
        check_op(lambda x: x.T, [shape], second_order=True)
        check_op(lambda x: x.t(), [shape])
    else:
        check_op(lambda x: x.T, [shape], lambda x: x.permute(*reversed(range(x.ndim))))
        check_op(lambda x: x.mT, [shape])


def test_T_of_0d():
    check_op(lambda x: x.T, [()])


@pytest.mark.parametrize("shape", [(), (3,), (2, 3)])
def test_t(shape):
    check_op(shendu.t, [shape], torch.t, second_order=True)
    check_op(lambda x: x.t(), [shape])


def test_t_refuses_3d():
    with pytest.raises(RuntimeError, match=r"t: expects a tensor with <= 2 dims, got shape "
                                           r"\(2, 3, 4\)"):
        shendu.ones(2, 3, 4).t()


@FAST
@given(shape=shapes(min_dims=0, max_dims=4, max_side=3), seed=seeds)
def test_squeeze_unsqueeze(shape, seed):
    check_op(lambda x: x.squeeze(), [shape], seed=seed, second_order=True)
    for d in range(-len(shape) - 1, len(shape) + 1):
        check_op(lambda x: x.unsqueeze(d), [shape], seed=seed)
    for d in range(-len(shape), len(shape)):
        check_op(lambda x: x.squeeze(d), [shape], seed=seed)
    check_op(lambda x: shendu.squeeze(x), [shape], torch.squeeze, seed=seed)
    check_op(lambda x: shendu.unsqueeze(x, 0), [shape], lambda x: torch.unsqueeze(x, 0),
             seed=seed)


def test_squeeze_tuple_of_dims():
    check_op(lambda x: x.squeeze((0, -1)), [(1, 3, 1)])
    check_op(lambda x: x.squeeze((0, 1)), [(1, 3, 1)])


@FAST
@given(shape=shapes(min_dims=0, max_dims=3, max_side=3), data=st.data())
def test_expand(shape, data):
    # stretch some size-1 dims and prepend new ones
    target = tuple(data.draw(st.integers(1, 3)) if n == 1 else n for n in shape)
    lead = tuple(data.draw(st.lists(st.integers(1, 3), max_size=2)))
    check_op(lambda x: x.expand(lead + target), [shape], second_order=True)
    if lead + target:
        check_op(lambda x: x.expand(*(lead + target)), [shape])
    check_op(lambda x: x.expand(lead + (-1,) * len(shape)), [shape])
    check_op(lambda x: shendu.expand(x, *(lead + target)), [shape],
             lambda x: x.expand(lead + target))
    check_op(lambda x, y: x.expand_as(y), [shape, lead + target])


def test_repeat():
    check_op(lambda x: x.repeat(2, 3), [(2, 3)], second_order=True)
    check_op(lambda x: x.repeat(2, 1, 2), [(3,)])
    check_op(lambda x: x.repeat(3), [()])


@FAST
@given(case=shape_and_dim(min_dims=1), sizes=st.lists(st.integers(0, 3), min_size=1,
                                                         max_size=3), seed=seeds)
def test_cat(case, sizes, seed):
    shape, dim = case
    parts = [tuple(n if i != dim % len(shape) else s for i, n in enumerate(shape))
             for s in sizes]
    check_op(lambda *xs: shendu.cat(xs, dim), parts, lambda *xs: torch.cat(xs, dim),
             seed=seed, second_order=True)
    check_op(lambda *xs: shendu.concatenate(list(xs), dim=dim), parts,
             lambda *xs: torch.cat(list(xs), dim=dim), seed=seed)


def test_cat_promotes_dtypes_like_torch():
    a = np.ones((2, 2), dtype=np.float32)
    b = np.ones((1, 2), dtype=np.float64)
    check_op(lambda x, y: shendu.cat([x, y]), [a, b], lambda x, y: torch.cat([x, y]),
             check_float32=False)
    ints = shendu.cat([shendu.tensor([1, 2]), shendu.tensor([0.5])])
    assert ints.dtype == shendu.float32
    assert ints.tolist() == [1.0, 2.0, 0.5]


@FAST
@given(shape=shapes(min_dims=0, max_dims=3), n=st.integers(1, 3), seed=seeds)
def test_stack(shape, n, seed):
    for dim in (0, -1, len(shape) // 2):
        check_op(lambda *xs: shendu.stack(xs, dim), [shape] * n,
                 lambda *xs: torch.stack(xs, dim), seed=seed, second_order=True)


@FAST
@given(case=shape_and_dim(min_dims=1, max_side=6), size=st.integers(1, 4), seed=seeds)
def test_split_chunk(case, size, seed):
    shape, dim = case
    check_op(lambda x: x.split(size, dim), [shape], seed=seed, second_order=True)
    check_op(lambda x: shendu.split(x, size, dim=dim), [shape],
             lambda x: torch.split(x, size, dim=dim), seed=seed)
    check_op(lambda x: x.chunk(size, dim), [shape], seed=seed)
    check_op(lambda x: shendu.chunk(x, size, dim=dim), [shape],
             lambda x: torch.chunk(x, size, dim=dim), seed=seed)
    n = shape[dim]
    sections = [n // 2, n - n // 2]
    check_op(lambda x: x.split(sections, dim), [shape], seed=seed)


@pytest.mark.parametrize("n,chunks", [(5, 3), (6, 4), (4, 4), (3, 5), (7, 2), (0, 2)])
def test_chunk_sizes_match_torch(n, chunks):
    check_op(lambda x: x.chunk(chunks), [(n, 2)])


INDEXES = [
    ("int", lambda x: x[1]),
    ("neg_int", lambda x: x[-1]),
    ("ints", lambda x: x[1, -2]),
    ("slice", lambda x: x[1:]),
    ("slice_step", lambda x: x[::2, 1:3]),
    ("slice_neg", lambda x: x[-2:, :-1]),
    ("none", lambda x: x[None]),
    ("none_mid", lambda x: x[:, None, 1]),
    ("ellipsis", lambda x: x[..., 0]),
    ("ellipsis_none", lambda x: x[..., None]),
    ("list", lambda x: x[[0, 2, 0]]),
    ("list_2d", lambda x: x[:, [1, 1, 3]]),
    ("two_lists", lambda x: x[[0, 1, 2], [3, 0, 3]]),
    ("slice_and_list", lambda x: x[1:, [0, 0]]),
    ("empty_slice", lambda x: x[2:2]),
]


@pytest.mark.parametrize("name,fn", INDEXES, ids=[i[0] for i in INDEXES])
def test_getitem_basic_and_lists(name, fn):
    check_op(fn, [(3, 4, 2)], second_order=True)


def test_getitem_with_index_tensors():
    idx = np.array([[0, 2], [2, 2]])
    check_op(lambda x, i: x[i], [(3, 4), idx], second_order=True)
    check_op(lambda x, i: x[:, i], [(3, 4), idx])
    check_op(lambda x, i: x[i, i], [(3, 4), idx])
    check_op(lambda x, i: x[i], [(5,), np.array(3)])
    check_op(lambda x, i: x[i], [(5, 2), np.array([-1, 0, -1])])


def test_getitem_with_bool_masks():
    rng = np.random.default_rng(0)
    mask = rng.random((3, 4)) > 0.5
    check_op(lambda x, m: x[m], [(3, 4), mask], second_order=True)
    check_op(lambda x, m: x[m], [(3, 4, 2), mask])
    check_op(lambda x, m: x[:, m], [(2, 4), mask[0]])
    check_op(lambda x: x[x > 0], [(3, 4)])
    check_op(lambda x, m: x[m], [(3,), np.zeros(3, dtype=bool)])


@FAST
@given(shape=shapes(min_dims=1, max_dims=3, max_side=5), data=st.data())
def test_getitem_random_slices(shape, data):
    index = []
    for n in shape:
        start = data.draw(st.integers(-n, n))
        stop = data.draw(st.one_of(st.none(), st.integers(-n, n)))
        step = data.draw(st.integers(1, 3))
        index.append(slice(start, stop, step))
    index = tuple(index)
    check_op(lambda x: x[index], [shape], second_order=True)


@FAST
@given(case=shape_and_dim(min_dims=1), data=st.data(), seed=seeds)
def test_index_select(case, data, seed):
    shape, dim = case
    idx = np.array(data.draw(st.lists(st.integers(0, shape[dim] - 1), max_size=5)),
                   dtype=np.int64)
    check_op(lambda x, i: x.index_select(dim, i), [shape, idx], seed=seed, second_order=True)
    check_op(lambda x, i: shendu.index_select(x, dim, i), [shape, idx],
             lambda x, i: torch.index_select(x, dim, i), seed=seed)


@FAST
@given(case=shape_and_dim(min_dims=1), data=st.data(), seed=seeds)
def test_gather(case, data, seed):
    shape, dim = case
    rng = np.random.default_rng(seed)
    # the index may be smaller than the input outside dim, and longer along dim
    index_shape = tuple(data.draw(st.integers(1, n)) if i != dim % len(shape)
                        else data.draw(st.integers(1, 5)) for i, n in enumerate(shape))
    idx = rng.integers(0, shape[dim], size=index_shape)
    check_op(lambda x, i: x.gather(dim, i), [shape, idx], seed=seed, second_order=True)
    check_op(lambda x, i: shendu.gather(x, dim, i), [shape, idx],
             lambda x, i: torch.gather(x, dim, i), seed=seed)


@FAST
@given(shape=shapes(min_dims=0, max_dims=3), data=st.data(), seed=seeds)
def test_masked_fill(shape, data, seed):
    # the mask broadcasts to the input's shape (trailing dims of it)
    mask_shape = shape[data.draw(st.integers(0, len(shape))):]
    mask = np.random.default_rng(seed).random(mask_shape) > 0.5
    check_op(lambda x, m: x.masked_fill(m, -1.5), [shape, mask], seed=seed, second_order=True)
    check_op(lambda x, m: shendu.masked_fill(x, m, float("-inf")), [shape, mask],
             lambda x, m: torch.masked_fill(x, m, float("-inf")), seed=seed)


def test_masked_fill_with_0d_tensor_value():
    mask = np.array([[True, False, True]])
    check_op(lambda x, m, v: x.masked_fill(m, v), [(2, 3), mask, np.array(0.5)],
             second_order=True)


@pytest.mark.parametrize("pad", [(1, 2), (0, 0, 2, 1), (1, 1, 0, 3, 2, 0), (0, 0)])
@pytest.mark.parametrize("value", [0.0, -1.5])
def test_pad(pad, value):
    check_op(lambda x: shendu.pad(x, pad, value=value), [(2, 3, 4)],
             lambda x: F.pad(x, pad, value=value), second_order=True)


@FAST
@given(case=shape_and_dims(), seed=seeds)
def test_flip(case, seed):
    shape, dims = case
    check_op(lambda x: x.flip(dims), [shape], seed=seed, second_order=True)
    check_op(lambda x: shendu.flip(x, dims), [shape], lambda x: torch.flip(x, dims),
             seed=seed)


@pytest.mark.parametrize("diagonal", [-2, -1, 0, 1, 3])
@pytest.mark.parametrize("shape", [(3, 3), (2, 4), (2, 4, 3)])
def test_tril_triu(diagonal, shape):
    check_op(lambda x: x.tril(diagonal), [shape], second_order=True)
    check_op(lambda x: shendu.triu(x, diagonal), [shape], lambda x: torch.triu(x, diagonal))
    check_op(lambda x: x.triu(diagonal=diagonal), [np.arange(12).reshape(3, 4)], grad=False)


def test_shape_ops_keep_int_and_bool_dtypes():
    x = shendu.arange(6)
    assert x.reshape(2, 3).dtype == shendu.int64
    assert shendu.cat([x, x]).dtype == shendu.int64
    assert (x > 2).flip(0).dtype == shendu.bool
    assert x.reshape(2, 3).tril().dtype == shendu.int64


# --- bad input ----------------------------------------------------------------------------

def test_shape_errors_name_the_op_and_shapes():
    x = shendu.ones(3, 4)
    with pytest.raises(RuntimeError, match=r"reshape: shape \[5, 5\] is invalid for input of "
                                           r"shape \(3, 4\)"):
        x.reshape(5, 5)
    with pytest.raises(RuntimeError, match=r"cat: tensor 1 has shape \(2, 4\), which does not "
                                           r"match tensor 0's shape \(2, 3\) outside dim 0"):
        shendu.cat([shendu.ones(2, 3), shendu.ones(2, 4)])
    with pytest.raises(RuntimeError, match=r"cat: tensor 1 has shape \(3,\).*\(3, 4\)"):
        shendu.cat([x, shendu.ones(3)])
    with pytest.raises(RuntimeError, match=r"stack: expects each tensor to be equal size, but "
                                           r"got \(3, 4\) at entry 0 and \(5,\) at entry 1"):
        shendu.stack([x, shendu.ones(5)])
    with pytest.raises(RuntimeError, match=r"expand: size 4 at dim 1 of shape \(3, 4\) cannot "
                                           r"be expanded to 5"):
        x.expand(3, 5)
    with pytest.raises(RuntimeError, match=r"split: sections \[1, 2\] sum to 3, but dim 1 has "
                                           "size 4"):
        x.split([1, 2], dim=1)
    with pytest.raises(RuntimeError, match=r"permute: got 1 dims \(0,\) for a tensor with 2"):
        x.permute(0)
    with pytest.raises(RuntimeError, match=r"permute: repeated dim"):
        x.permute(0, -2)


@pytest.mark.parametrize("call,op", [
    (lambda x: x.permute(0, 2), "permute"), (lambda x: x.transpose(0, 2), "transpose"),
    (lambda x: x.unsqueeze(3), "unsqueeze"), (lambda x: x.unsqueeze(-4), "unsqueeze"),
    (lambda x: x.squeeze(2), "squeeze"), (lambda x: x.flatten(0, 2), "flatten"),
    (lambda x: shendu.cat([x, x], 2), "cat"), (lambda x: shendu.stack([x], 3), "stack"),
    (lambda x: x.split(1, -3), "split"), (lambda x: x.chunk(2, 2), "chunk"),
    (lambda x: x.flip(2), "flip"), (lambda x: x.gather(2, shendu.zeros(3, 4,
                                                                        dtype=shendu.int64)),
                                    "gather"),
    (lambda x: x.index_select(2, shendu.tensor([0])), "index_select"),
])
def test_dim_out_of_range(call, op):
    with pytest.raises(IndexError, match=rf"{op}: dim -?\d+ is out of range for a tensor with "
                                         r"2 dims"):
        call(shendu.ones(3, 4))


def test_index_errors():
    x = shendu.ones(3, 4)
    with pytest.raises(IndexError, match=r"getitem: tensors used as indices must be long or "
                                         "bool, got float32"):
        x[shendu.tensor([0.5])]
    with pytest.raises(IndexError, match=r"getitem: index \[5\] is invalid for a tensor of "
                                         r"shape \(3, 4\)"):
        x[5]
    with pytest.raises(IndexError, match=r"getitem: .* shape \(3, 4\)"):
        x[shendu.tensor([True, False])]
    with pytest.raises(IndexError, match=r"index_select: index must be a 1-D integer tensor, "
                                         "got float32"):
        x.index_select(0, shendu.tensor([0.5]))
    with pytest.raises(TypeError, match=r"gather: index must be an integer tensor, got "
                                        "float32"):
        x.gather(1, shendu.tensor([[0.5]]))
    with pytest.raises(RuntimeError, match=r"gather: index of shape \(4, 1\) does not fit "
                                           r"input of shape \(3, 4\)"):
        x.gather(1, shendu.zeros(4, 1, dtype=shendu.int64))
    with pytest.raises(TypeError, match="masked_fill: mask must be a bool tensor, got float32"):
        x.masked_fill(shendu.ones(3, 4), 0.0)
    with pytest.raises(RuntimeError, match=r"masked_fill: mask of shape \(5,\) cannot be "
                                           r"broadcast to the input's shape \(3, 4\)"):
        x.masked_fill(shendu.ones(5, dtype=shendu.bool), 0.0)
    with pytest.raises(RuntimeError, match=r"masked_fill: mask of shape \(2, 3, 4\)"):
        x.masked_fill(shendu.ones(2, 3, 4, dtype=shendu.bool), 0.0)
    with pytest.raises(RuntimeError, match=r"tril: input must have at least 2 dims, got shape "
                                           r"\(3,\)"):
        shendu.ones(3).tril()
    with pytest.raises(ValueError, match=r"pad: expected an even number of pads"):
        shendu.pad(x, (1, 2, 3))
