"""The Tensor API and creation functions against torch: dtypes, devices, conversions,
attributes, random generators and errors."""
import numpy as np
import pytest
import torch
from oracle import assert_close

import shendu


# --- shendu.tensor and dtype inference ----------------------------------------------------

@pytest.mark.parametrize("data", [
    1.5, 3, True, [1.0, 2.0], [1, 2], [True, False], [[1, 2], [3, 4]], [[1.0, 2], [3, 4]],
    [], np.arange(3), np.ones((2, 2)), np.ones(2, dtype=np.float32), np.array([1, 0], bool),
    np.arange(4, dtype=np.int32).reshape(2, 2),
])
def test_tensor_infers_dtype_like_torch(data):
    ours, theirs = shendu.tensor(data), torch.tensor(data)
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize("dtype,expected", [
    (shendu.float64, "float64"), (shendu.float32, "float32"), (shendu.int64, "int64"),
    (shendu.bool, "bool"), (float, "float32"), (int, "int64"), ("float64", "float64"),
    (shendu.double, "float64"), (shendu.long, "int64"),
])
def test_tensor_with_explicit_dtype(dtype, expected):
    assert str(shendu.tensor([1, 0, 2], dtype=dtype).dtype) == expected


def test_tensor_copies_and_from_numpy_shares():
    data = np.ones(3)
    t = shendu.tensor(data)
    data[0] = 5.0
    assert t.tolist() == [1.0, 1.0, 1.0]
    shared = shendu.from_numpy(data)
    data[1] = 7.0
    assert shared.tolist() == [5.0, 7.0, 1.0] and shared.dtype == shendu.float64
    copy = shendu.tensor(shared)
    data[2] = 9.0
    assert copy.tolist() == [5.0, 7.0, 1.0]
    with pytest.raises(TypeError, match="from_numpy: expected a numpy.ndarray, got list"):
        shendu.from_numpy([1.0])


def test_tensor_requires_grad_and_attributes():
    t = shendu.tensor([[1.0, 2.0]], requires_grad=True)
    assert t.requires_grad and t.is_leaf and t.grad is None and t.grad_fn is None
    assert t.shape == (1, 2) and t.ndim == 2 and t.dim() == 2 and t.numel() == 2
    assert t.size() == (1, 2) and t.size(-1) == 2 and len(t) == 1
    assert t.device == "cpu" and t.dtype == shendu.float32
    assert shendu.tensor(2.0, device="cpu").device == "cpu"


def test_bad_tensor_data():
    with pytest.raises((TypeError, ValueError), match=r"tensor\(\)"):
        shendu.tensor([[1, 2], [3]])
    with pytest.raises(TypeError, match=r"tensor\(\): cannot build a tensor from data of type"):
        shendu.tensor("abc")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        shendu.tensor([1.0], device="tpu")


@pytest.mark.skipif(shendu.cuda_available(), reason="checks the error raised without a GPU")
def test_cuda_without_cupy_raises_clearly():
    with pytest.raises(RuntimeError, match="device 'cuda' requested but CuPy/CUDA is not "
                                           "available"):
        shendu.zeros(2, device="cuda")


# --- conversions --------------------------------------------------------------------------

def test_numpy_item_tolist():
    t = shendu.tensor([[1.5, 2.0], [3.0, 4.0]])
    assert isinstance(t.numpy(), np.ndarray) and t.numpy().dtype == np.float32
    assert t.tolist() == [[1.5, 2.0], [3.0, 4.0]]
    assert shendu.tensor([[2.5]]).item() == 2.5 and isinstance(shendu.tensor(3).item(), int)
    assert float(shendu.tensor(1.5)) == 1.5 and int(shendu.tensor(7)) == 7
    assert bool(shendu.tensor([True]))
    with pytest.raises(ValueError, match=r"item\(\): only one-element tensors .* got shape "
                                         r"\(2, 2\)"):
        t.item()
    with pytest.raises(RuntimeError, match=r"numpy\(\): can't call numpy\(\) on a tensor that "
                                           "requires grad"):
        shendu.ones(2, requires_grad=True).numpy()
    with pytest.raises(RuntimeError, match=r"bool\(Tensor\) of shape \(2,\) is ambiguous"):
        bool(shendu.ones(2))


def test_to_float_double_keep_the_graph():
    data = np.random.default_rng(0).standard_normal((2, 3))
    x = shendu.tensor(data, dtype=shendu.float32, requires_grad=True)
    tx = torch.tensor(data, dtype=torch.float32, requires_grad=True)
    for a in (x, tx):
        b = a.double()
        c = b.to(torch.float32 if isinstance(a, torch.Tensor) else shendu.float32)
        (b * b + c.double() * 2.0 + a.float()).sum().backward()
    assert x.grad.dtype == shendu.float32
    assert_close(x.grad, tx.grad, rtol=1e-6)
    assert x.double().dtype == shendu.float64 and x.float() is x
    assert x.to("cpu") is x and x.to(shendu.float32) is x
    assert x.to(dtype=shendu.float64).dtype == shendu.float64
    assert x.to(shendu.ones(1, dtype=shendu.float64)).dtype == shendu.float64
    assert x.to("cpu", shendu.float64).dtype == shendu.float64
    assert shendu.tensor([1.7, -1.7]).long().tolist() == [1, -1]
    assert shendu.tensor([0.0, 2.0]).bool().tolist() == [False, True]


def test_to_integer_cuts_the_graph():
    x = shendu.ones(2, requires_grad=True)
    y = x.long()
    assert y.dtype == shendu.int64 and not y.requires_grad


def test_detach_requires_grad_():
    x = shendu.ones(2)
    assert x.requires_grad_() is x and x.requires_grad
    y = (x * 2).detach()
    assert not y.requires_grad and y.is_leaf
    with pytest.raises(RuntimeError, match=r"requires_grad_\(False\) on a non-leaf"):
        (x * 2).requires_grad_(False)


def test_backward_method_signature():
    x = shendu.ones(3, requires_grad=True)
    y = x * x
    y.backward(gradient=shendu.ones(3), retain_graph=True, create_graph=False)
    y.backward(shendu.ones(3))
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 4.0, 4.0])


def test_len_iter_repr():
    t = shendu.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert [row.tolist() for row in t] == [[1.0, 2.0], [3.0, 4.0]]
    assert repr(shendu.tensor([1.0])).startswith("tensor(")
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(shendu.tensor(1.0))


def test_numpy_array_on_the_left_defers_to_tensor():
    out = np.ones(3) + shendu.ones(3)
    assert isinstance(out, shendu.Tensor)


# --- creation functions -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["zeros", "ones"])
def test_zeros_ones(name):
    for args in [(2, 3), ((2, 3),), ([4],), ((),)]:
        ours, theirs = getattr(shendu, name)(*args), getattr(torch, name)(*args)
        assert ours.shape == tuple(theirs.shape) and ours.dtype == shendu.float32
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert getattr(shendu, name)(2, dtype=shendu.int64).dtype == shendu.int64
    assert getattr(shendu, name)(2, requires_grad=True).requires_grad
    with pytest.raises(ValueError, match=r"expected a shape of non-negative ints, got \(2, -1\)"):
        getattr(shendu, name)(2, -1)


def test_full_and_like_functions():
    for value in (1.5, 2, True):
        ours, theirs = shendu.full((2, 3), value), torch.full((2, 3), value)
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert shendu.full((2,), 1, dtype=shendu.float64).dtype == shendu.float64
    x = shendu.ones(2, 3, dtype=shendu.float64)
    for fn, value in ((shendu.zeros_like, 0.0), (shendu.ones_like, 1.0)):
        y = fn(x)
        assert y.shape == (2, 3) and y.dtype == shendu.float64 and (y.numpy() == value).all()
        assert fn(x, dtype=shendu.int64).dtype == shendu.int64
    assert shendu.full_like(x, 7).tolist() == [[7.0] * 3] * 2


@pytest.mark.parametrize("args", [(5,), (2, 7), (1, 10, 3), (0.0, 1.0, 0.1), (-1, 1, 0.25),
                                  (3.5,), (0, -5, -2)])
def test_arange(args):
    ours, theirs = shendu.arange(*args), torch.arange(*args)
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


@pytest.mark.parametrize("args", [(0, 1, 5), (-2.0, 3.0, 11), (1, 1, 1), (0, 1, 0)])
def test_linspace(args):
    ours, theirs = shendu.linspace(*args), torch.linspace(*args)
    assert ours.dtype == shendu.float32
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-7)


def test_eye():
    for args in [(3,), (2, 4), (4, 2)]:
        np.testing.assert_array_equal(shendu.eye(*args).numpy(), torch.eye(*args).numpy())
    assert shendu.eye(2, dtype=shendu.float64).dtype == shendu.float64


def test_random_shapes_dtypes_and_ranges():
    shendu.manual_seed(0)
    u = shendu.rand(1000)
    n = shendu.randn(2, 500)
    r = shendu.randint(3, 7, (1000,))
    assert u.dtype == n.dtype == shendu.float32 and r.dtype == shendu.int64
    assert 0.0 <= u.numpy().min() and u.numpy().max() < 1.0
    assert abs(n.numpy().mean()) < 0.15 and abs(n.numpy().std() - 1) < 0.1
    assert set(np.unique(r.numpy())) == {3, 4, 5, 6}
    assert shendu.randn((3, 2), dtype=shendu.float64).dtype == shendu.float64
    assert shendu.rand(2, requires_grad=True).requires_grad


def test_randint_accepts_torchs_call_forms():
    assert shendu.randint(5, (3,)).shape == (3,)
    assert shendu.randint(0, 5, size=(2, 2)).shape == (2, 2)
    assert shendu.randint(high=4, size=(6,), low=2).numpy().min() >= 2
    assert shendu.randint(2, 5, (4,), dtype=shendu.int32).dtype == shendu.int32
    with pytest.raises(ValueError, match="randint: expected low < high, got low=3 and high=3"):
        shendu.randint(3, 3, (2,))


def test_manual_seed_and_generators_reproduce_bits():
    shendu.manual_seed(123)
    a = (shendu.randn(4).numpy(), shendu.rand(3).numpy(), shendu.randint(0, 9, (5,)).numpy())
    b = shendu.randn(4).numpy()
    shendu.manual_seed(123)
    c = (shendu.randn(4).numpy(), shendu.rand(3).numpy(), shendu.randint(0, 9, (5,)).numpy())
    for x, y in zip(a, c):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], b)
    g1, g2 = shendu.Generator().manual_seed(7), shendu.Generator().manual_seed(7)
    shendu.manual_seed(0)
    x1 = shendu.randn(5, generator=g1).numpy()
    shendu.randn(5)  # the default generator does not disturb an explicit one
    x2 = shendu.randn(5, generator=g2).numpy()
    np.testing.assert_array_equal(x1, x2)
    state = g1.get_state()
    y1 = shendu.rand(3, generator=g1).numpy()
    g1.set_state(state)
    np.testing.assert_array_equal(shendu.rand(3, generator=g1).numpy(), y1)


def test_dtype_aliases():
    assert shendu.float == shendu.float32 and shendu.double == shendu.float64
    assert shendu.long == shendu.int64 and shendu.bool == shendu.bool_
    assert shendu.tensor([1.0]).is_floating_point()
    assert not shendu.tensor([1]).is_floating_point()


def test_setitem_and_inplace_ops_match_torch():
    ours, theirs = shendu.zeros(3, 4), torch.zeros(3, 4)
    for t, lib in ((ours, shendu), (theirs, torch)):
        t[lib.tensor([0, 2])] = 1.0
        t[:, 1] = lib.tensor([5.0, 6.0, 7.0])
        t[t > 5] = -1.0
        t[lib.tensor([True, False, True]), 0] = 9.0
        t[1] = 2.5
        t.masked_fill_(t < 0, 3.0)
        t.add_(1.0).mul_(2.0).sub_(lib.ones(4), alpha=0.5).div_(3.0).clamp_(max=5.0)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)
    assert ours.dtype == shendu.float32
    ints = shendu.zeros(2, dtype=shendu.int64)
    ints[0] = 2.7  # truncated, as torch
    ints.fill_(ints[0])
    assert ints.tolist() == [2, 2]
    dst = shendu.zeros(2, 3)
    dst.copy_(shendu.ones(3, dtype=shendu.float64))
    assert dst.dtype == shendu.float32 and dst.tolist() == [[1.0] * 3] * 2
    with pytest.raises(RuntimeError, match=r"copy_: source of shape \(2,\) cannot be broadcast "
                                           r"to the destination shape \(2, 3\)"):
        dst.copy_(shendu.ones(2))
    with pytest.raises(RuntimeError, match=r"add_: operand of shape \(3, 3\) cannot be "
                                           r"broadcast to the tensor's shape \(2, 3\)"):
        dst.add_(shendu.ones(3, 3))
    with pytest.raises(RuntimeError, match=r"mul_: operand of shape \(2,\)"):
        dst.mul_(shendu.ones(2))
