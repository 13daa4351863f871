"""Tensor methods PyTorch scripts use, each checked against torch: ``.data`` as a Tensor
sharing storage, the ``new_*`` constructors, ``.type``, ``narrow``, in-place updates."""
import numpy as np
import pytest
import torch
from oracle import assert_close, to_torch

import shendu


def _pair(shape=(3, 4), seed=0, requires_grad=False):
    a = np.random.default_rng(seed).standard_normal(shape)
    return (shendu.tensor(a, requires_grad=requires_grad),
            to_torch(a, requires_grad=requires_grad))


def test_data_is_a_tensor_sharing_storage_outside_the_graph():
    p, tp = _pair(requires_grad=True)
    d, td = p.data, tp.data
    assert isinstance(d, shendu.Tensor) and not d.requires_grad and d.grad_fn is None
    d.add_(1.0)                     # writes into p without an autograd error
    td.add_(1.0)
    assert_close(p, tp)
    p.data.mul_(2.0).sub_(0.5)
    tp.data.mul_(2.0).sub_(0.5)
    assert_close(p, tp)
    src = np.arange(12.0).reshape(3, 4)
    p.data.copy_(shendu.tensor(src))
    tp.data.copy_(torch.tensor(src))
    assert_close(p, tp)
    assert p.requires_grad and p.is_leaf


def test_data_views_and_indexing_write_through():
    p, tp = _pair(requires_grad=True)
    p.data[0, 1] = 7.0
    tp.data[0, 1] = 7.0
    p.data[1] += 2.0
    tp.data[1] += 2.0
    p.data.clamp_(-1.0, 1.0)
    tp.data.clamp_(-1.0, 1.0)
    assert_close(p, tp)
    assert np.array_equal(np.asarray(p.data), tp.data.numpy())


def test_data_assignment_replaces_values_shape_and_dtype_like_torch():
    p, tp = _pair(requires_grad=True)
    p.data = shendu.zeros(5, dtype=shendu.float32)
    tp.data = torch.zeros(5, dtype=torch.float32)
    assert p.shape == tuple(tp.shape) and p.dtype == shendu.float32 and p.requires_grad
    with pytest.raises(TypeError, match="Tensor.data: expected a Tensor to assign, got ndarray"):
        p.data = np.zeros(5)


def test_parameter_data_idioms_in_a_module():
    torch.manual_seed(0)
    ours, theirs = shendu.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    ours.load_state_dict({k: shendu.tensor(v.detach().numpy()) for k, v in
                          theirs.state_dict().items()})
    for p, tp in zip(ours.parameters(), theirs.parameters()):
        p.data.uniform_(-0.1, 0.1)
        tp.data.copy_(torch.from_numpy(p.detach().numpy()))
        p.data.add_(p.data * 0.5, alpha=-1.0)
        tp.data.add_(tp.data * 0.5, alpha=-1.0)
        assert_close(p, tp, rtol=1e-6, atol=1e-7)
    x = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    assert_close(ours(shendu.tensor(x)), theirs(torch.from_numpy(x)), rtol=1e-5, atol=1e-6)


def test_grad_data_and_numpy_conversion():
    p, tp = _pair(requires_grad=True)
    (p * p).sum().backward()
    (tp * tp).sum().backward()
    p.grad.data.zero_()
    tp.grad.data.zero_()
    assert_close(p.grad, tp.grad)
    with pytest.raises(RuntimeError, match="requires grad"):
        np.asarray(p)
    assert np.asarray(p.data, dtype=np.float32).dtype == np.float32
