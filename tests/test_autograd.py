"""The autograd engine: accumulation, fan-out, graph freeing, retain_graph, error messages,
in-place detection, grad modes, autograd.grad and Hessians, deep graphs, hooks, detach."""
import gc
import weakref

import numpy as np
import pytest
import torch
from oracle import assert_close, to_torch

import shendu
from shendu import autograd


def pair(shape, seed=0, requires_grad=True):
    """The same float64 data as a shendu leaf and a torch leaf."""
    data = np.random.default_rng(seed).standard_normal(shape)
    return (shendu.tensor(data, requires_grad=requires_grad),
            to_torch(data, requires_grad=requires_grad))


# --- accumulation and graph structure -----------------------------------------------------

def test_gradients_accumulate_across_backward_calls():
    x, tx = pair((3,))
    for _ in range(2):
        (x * x).sum().backward()
        (tx * tx).sum().backward()
    assert_close(x.grad, tx.grad)
    np.testing.assert_allclose(x.grad.numpy(), 4 * x.detach().numpy())


def test_fan_out_sums_both_uses():
    x, tx = pair((2, 3))
    y, ty = x.exp(), tx.exp()
    z, tz = y * y + y.sum(), ty * ty + ty.sum()
    upstream = np.random.default_rng(1).standard_normal((2, 3))
    z.backward(shendu.tensor(upstream))
    tz.backward(to_torch(upstream))
    assert_close(x.grad, tx.grad)


def test_diamond_graph_and_shared_leaf():
    x, tx = pair((4,))
    w, tw = pair((4,), seed=1)
    for a, b in ((x, w), (tx, tw)):
        h = a * b
        left, right = h.tanh(), h * a
        ((left + right) * h).sum().backward()
    assert_close(x.grad, tx.grad)
    assert_close(w.grad, tw.grad)


def test_requires_grad_propagation_and_leaves():
    x = shendu.ones(2, requires_grad=True)
    c = shendu.ones(2)
    y = x * c
    assert y.requires_grad and not y.is_leaf and y.grad_fn is not None
    assert x.is_leaf and c.is_leaf and x.grad_fn is None
    assert not (c * 2).requires_grad and (c * 2).grad_fn is None
    assert "Mul" in y.grad_fn.name()
    assert "grad_fn=<MulBackward>" in repr(y)
    assert "requires_grad=True" in repr(x)


def test_backward_with_explicit_gradient_and_create_graph():
    x, tx = pair((3,))
    for a in (x, tx):
        (a ** 3).backward(a * 0 + 1, create_graph=True)
    assert x.grad.requires_grad and tx.grad.requires_grad
    gx, tgx = x.grad, tx.grad
    x.grad, tx.grad = None, None
    gx.sum().backward()
    tgx.sum().backward()
    assert_close(x.grad, tx.grad)


def test_integer_and_bool_tensors_cannot_require_grad():
    with pytest.raises(RuntimeError, match="only floating point tensors can require gradients"):
        shendu.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="requires_grad_.*int64"):
        shendu.tensor([1, 2]).requires_grad_()


# --- graph freeing, retain_graph ----------------------------------------------------------

def test_retain_graph_allows_a_second_backward():
    x, tx = pair((3,))
    for a in (x, tx):
        y = (a.exp() * a).sum()
        y.backward(retain_graph=True)
        y.backward()
    assert_close(x.grad, tx.grad)


def test_second_backward_through_freed_graph_names_the_op():
    x = shendu.ones(3, requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"SumBackward: trying to backward through the graph "
                                           "a second time"):
        y.backward()
    h = x * x
    z1, z2 = h.sum(), (h + 1).sum()
    z1.backward()
    with pytest.raises(RuntimeError, match="MulBackward: trying to backward through the graph "
                                           "a second time.*retain_graph=True"):
        z2.backward()


def test_backward_on_non_scalar_without_gradient_raises():
    x = shendu.ones(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"grad can be implicitly created only for scalar "
                                           r"outputs; got shape \(2, 3\)"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match=r"gradient has shape \(3,\) but the output has shape "
                                           r"\(2, 3\)"):
        (x * 2).backward(shendu.ones(3))
    with pytest.raises(RuntimeError, match=r"does not require grad and has no grad_fn"):
        shendu.ones(2).sum().backward()


def test_one_element_non_scalar_backward_is_allowed():
    x, tx = pair((1, 1))
    (x * 3).backward()
    (tx * 3).backward()
    assert_close(x.grad, tx.grad)


# --- in-place modification ----------------------------------------------------------------

def test_inplace_change_of_saved_input_raises_naming_op_and_shape():
    x = shendu.ones(3, requires_grad=True)
    w = shendu.full((3,), 2.0)
    y = (x * w).sum()
    w.add_(1)
    with pytest.raises(RuntimeError, match=r"MulBackward: input 1 of shape \(3,\) needed for "
                                           r"gradient computation was modified by an in-place "
                                           "operation"):
        y.backward()


def test_inplace_change_through_data_and_setitem_raises():
    x = shendu.ones(2, 2, requires_grad=True)
    y = (x * x).sum()
    with shendu.no_grad():
        x.data = x.data * 3
    with pytest.raises(RuntimeError, match=r"MulBackward: input 0 of shape \(2, 2\)"):
        y.backward()
    a = shendu.ones(4, requires_grad=True)
    b = shendu.arange(4).float()
    z = (a / b.clamp(min=1.0) * b).sum()
    b[0] = 5.0
    with pytest.raises(RuntimeError, match=r"MulBackward: input 1 of shape \(4,\).*modified by "
                                           "an in-place operation"):
        z.backward()


def test_inplace_change_of_saved_output_raises():
    # exp, tanh, sigmoid, softmax... read their output in backward
    x = shendu.ones(3, requires_grad=True)
    for fn in (lambda t: t.exp(), lambda t: t.tanh(), lambda t: t.softmax(0)):
        y = fn(x)
        out = (y + 1.0).sum()  # add does not save y: only fn's own check can catch it
        with shendu.no_grad():
            y.mul_(2)
        with pytest.raises(RuntimeError, match=r"Backward: its output of shape \(3,\) needed for "
                                               "gradient computation was modified by an "
                                               "in-place operation"):
            out.backward()


def test_inplace_on_leaf_requiring_grad_raises():
    x = shendu.ones(3, requires_grad=True)
    for call, op in ((lambda: x.add_(1), "add_"), (lambda: x.mul_(2), "mul_"),
                     (lambda: x.zero_(), "zero_"), (lambda: x.__setitem__(0, 2.0),
                                                    "__setitem__")):
        with pytest.raises(RuntimeError, match=rf"{op}: a leaf tensor that requires grad is "
                                               "being used in an in-place operation"):
            call()
    with shendu.no_grad():  # the optimizer's way
        x.sub_(0.5)
    np.testing.assert_allclose(x.detach().numpy(), [0.5, 0.5, 0.5])


def test_inplace_ops_without_a_graph_are_fine():
    x = shendu.ones(3)
    x.add_(2).mul_(3).sub_(1, alpha=2).div_(2)
    x[1] = 0.0
    x.clamp_(max=3.0)
    np.testing.assert_allclose(x.numpy(), [3.0, 0.0, 3.0])


# --- grad modes ----------------------------------------------------------------------------

def test_no_grad_and_enable_grad_contexts():
    x = shendu.ones(2, requires_grad=True)
    with shendu.no_grad():
        assert not shendu.is_grad_enabled()
        y = x * 2
        with shendu.enable_grad():
            z = x * 2
        with shendu.set_grad_enabled(True):
            w = x * 2
    assert shendu.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and w.requires_grad


def test_grad_modes_as_decorators_and_after_exceptions():
    @shendu.no_grad()
    def doubled(t):
        return t * 2

    @shendu.enable_grad()
    def tripled(t):
        return t * 3

    x = shendu.ones(2, requires_grad=True)
    assert not doubled(x).requires_grad
    with shendu.no_grad():
        assert tripled(x).requires_grad
    assert doubled.__name__ == "doubled"
    with pytest.raises(ValueError):
        with shendu.no_grad():
            raise ValueError("boom")
    assert shendu.is_grad_enabled()


def test_set_grad_enabled_as_a_function_call_and_decorator():
    x = shendu.ones(2, requires_grad=True)
    try:
        shendu.set_grad_enabled(False)  # torch: takes effect immediately
        assert not shendu.is_grad_enabled()
        assert not (x * 2).requires_grad
    finally:
        shendu.set_grad_enabled(True)
    assert shendu.is_grad_enabled()

    @shendu.set_grad_enabled(False)
    def f(t):
        return t * 2

    assert shendu.is_grad_enabled()  # decorating does not change the mode
    assert not f(x).requires_grad
    with shendu.set_grad_enabled(False):
        assert not shendu.is_grad_enabled()
    assert shendu.is_grad_enabled()


# --- autograd.grad and higher order --------------------------------------------------------

def test_autograd_grad_does_not_touch_dot_grad_and_checks_inputs():
    x, tx = pair((3,))
    y = (x.exp() * x).sum()
    (g,) = autograd.grad(y, [x])
    (tg,) = torch.autograd.grad((tx.exp() * tx).sum(), [tx])
    assert_close(g, tg)
    assert x.grad is None
    z = shendu.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"autograd.grad: input 1 \(shape \(2,\)\) was not "
                                           "used"):
        autograd.grad((x * 2).sum(), [x, z])
    g1, g2 = autograd.grad((x * 2).sum(), [x, z], allow_unused=True)
    assert g2 is None and np.allclose(g1.numpy(), 2)
    with pytest.raises(RuntimeError, match=r"autograd.grad: input 0 \(shape \(2,\)\) does not "
                                           "require grad"):
        autograd.grad((x * 2).sum(), [shendu.ones(2)])


def test_autograd_grad_with_grad_outputs_and_several_outputs():
    x, tx = pair((2, 3))
    up1 = np.random.default_rng(5).standard_normal((2, 3))
    up2 = np.random.default_rng(6).standard_normal((3,))
    ours = autograd.grad([x.tanh(), x.sum(0) ** 2], x,
                         [shendu.tensor(up1), shendu.tensor(up2)])
    theirs = torch.autograd.grad([tx.tanh(), tx.sum(0) ** 2], tx, [to_torch(up1),
                                                                   to_torch(up2)])
    assert_close(ours[0], theirs[0])


def _mlp(theta, x, lib):
    """A 3-4-1 tanh MLP whose parameters are slices of one flat vector theta (21 values)."""
    w1 = theta[:12].reshape(3, 4)
    b1 = theta[12:16]
    w2 = theta[16:20].reshape(4, 1)
    b2 = theta[20:]
    h = (x @ w1 + b1).tanh()
    out = (h @ w2 + b2).sigmoid() if lib is shendu else torch.sigmoid(h @ w2 + b2)
    return (out ** 2).mean()


def test_hessian_of_small_mlp_matches_torch():
    rng = np.random.default_rng(0)
    theta_np, x_np = rng.standard_normal(21) * 0.7, rng.standard_normal((5, 3))
    theta = shendu.tensor(theta_np, requires_grad=True)
    x = shendu.tensor(x_np)
    (g,) = autograd.grad(_mlp(theta, x, shendu), theta, create_graph=True)
    rows = [autograd.grad(g[i], theta, retain_graph=True)[0].numpy() for i in range(21)]
    expected = torch.autograd.functional.hessian(
        lambda t: _mlp(t, to_torch(x_np), torch), to_torch(theta_np))
    np.testing.assert_allclose(np.stack(rows), expected.numpy(), rtol=1e-7, atol=1e-10)


def test_hessian_wrt_input_and_hvp():
    rng = np.random.default_rng(1)
    theta_np, x_np = rng.standard_normal(21), rng.standard_normal((2, 3))
    v_np = rng.standard_normal((2, 3))
    x = shendu.tensor(x_np, requires_grad=True)
    (g,) = autograd.grad(_mlp(shendu.tensor(theta_np), x, shendu), x, create_graph=True)
    (hv,) = autograd.grad((g * shendu.tensor(v_np)).sum(), x)
    _, expected = torch.autograd.functional.hvp(
        lambda t: _mlp(to_torch(theta_np), t, torch), to_torch(x_np), to_torch(v_np))
    np.testing.assert_allclose(hv.numpy(), expected.numpy(), rtol=1e-7, atol=1e-10)


def test_third_derivative():
    x, tx = pair((3,))
    grads = []
    for a, grad in ((x, autograd.grad), (tx, torch.autograd.grad)):
        (g1,) = grad((a.tanh() * a).sum(), a, create_graph=True)
        (g2,) = grad(g1.sum(), a, create_graph=True)
        (g3,) = grad(g2.sum(), a)
        grads.append(g3)
    assert_close(grads[0], grads[1])


# --- deep graphs ----------------------------------------------------------------------------

def _lstm_chain(steps, lib, x, w, h, c):
    ref = None
    for t in range(steps):
        gates = (x * (t % 7 + 1) / 7.0 + h) @ w  # (1, 4H)
        i, f, g, o = gates.chunk(4, 1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * c.tanh()
        if t == steps // 2:
            ref = weakref.ref(h)
    return h, ref


def test_lstm_chain_of_1000_steps_backpropagates_and_frees_the_graph():
    rng = np.random.default_rng(0)
    x_np, w_np = rng.standard_normal((1, 4)), rng.standard_normal((4, 16)) * 0.5
    x, w = shendu.tensor(x_np), shendu.tensor(w_np, requires_grad=True)
    h0, c0 = shendu.zeros(1, 4, dtype=shendu.float64), shendu.zeros(1, 4, dtype=shendu.float64)
    h, ref = _lstm_chain(1000, shendu, x, w, h0, c0)
    loss = h.sum()
    gc.collect()
    assert ref() is not None  # the graph keeps the intermediate alive...
    loss.backward()
    gc.collect()
    assert ref() is None  # ...until backward frees it
    tw = to_torch(w_np, requires_grad=True)
    th, _ = _lstm_chain(1000, torch, to_torch(x_np), tw, torch.zeros(1, 4, dtype=torch.float64),
                        torch.zeros(1, 4, dtype=torch.float64))
    th.sum().backward()
    assert_close(w.grad, tw.grad, rtol=1e-6, atol=1e-9)


def test_retained_graph_stays_alive():
    x = shendu.ones(1, 4, requires_grad=True)
    h, ref = x, None
    for t in range(5):
        h = (h * 0.5).tanh()
        if t == 2:
            ref = weakref.ref(h)
    h.sum().backward(retain_graph=True)
    gc.collect()
    assert ref() is not None


# --- hooks, retain_grad, detach -----------------------------------------------------------

def test_hooks_on_intermediate_and_leaf_match_torch():
    x, tx = pair((3,))
    seen = []
    for a in (x, tx):
        y = a * 2
        y.register_hook(lambda g: g * 3)
        a.register_hook(lambda g: seen.append(g.shape) or None)
        (y * y).sum().backward()
    assert_close(x.grad, tx.grad)
    assert [tuple(s) for s in seen] == [(3,), (3,)]


def test_hook_handle_remove():
    x = shendu.ones(2, requires_grad=True)
    handle = x.register_hook(lambda g: g * 10)
    (x * 1).sum().backward()
    handle.remove()
    (x * 1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [11.0, 11.0])
    with pytest.raises(RuntimeError, match="register_hook: cannot register a hook on a tensor "
                                           "that doesn't require gradient"):
        shendu.ones(2).register_hook(lambda g: g)


def test_retain_grad_on_intermediate():
    x, tx = pair((2, 2))
    y, ty = x.exp(), tx.exp()
    y.retain_grad()
    ty.retain_grad()
    (y * y).sum().backward()
    (ty * ty).sum().backward()
    assert_close(y.grad, ty.grad)
    assert_close(x.grad, tx.grad)
    z = x * 2
    (z * z).sum().backward()
    assert z.grad is None  # not retained


def test_detach_shares_data_and_cuts_the_graph():
    x = shendu.ones(3, requires_grad=True)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    assert np.shares_memory(d.numpy(), y.detach().numpy())
    z = (y * d).sum()
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 4.0, 4.0])
    e = x * 3
    e.detach_()
    assert not e.requires_grad and e.grad_fn is None


def test_grad_of_leaf_is_a_fresh_writable_tensor():
    # one gradient reaching two leaves, and the stride-0 gradient of expand(), get copies
    a = shendu.ones(3, requires_grad=True)
    b = shendu.ones(3, requires_grad=True)
    (a + b).sum().backward()
    with shendu.no_grad():
        a.grad.add_(1)
    np.testing.assert_allclose(b.grad.numpy(), [1.0, 1.0, 1.0])
    s = shendu.ones(1, requires_grad=True)
    s.expand(4).sum().backward()
    c = shendu.ones((), requires_grad=True)
    c.expand(2, 2).sum().backward()
    with shendu.no_grad():
        c.grad.mul_(2)
    assert c.grad.item() == 8.0


def test_leaf_grad_never_aliases_the_callers_gradient():
    x = shendu.ones(3, requires_grad=True)
    g = shendu.ones(3)
    (x + 1).backward(g)
    y = shendu.ones(2, 3, requires_grad=True)
    g2 = shendu.ones(6)
    y.reshape(6).backward(g2)  # y.grad would be a view of g2
    with shendu.no_grad():
        x.grad.mul_(0)
        y.grad.zero_()
    assert g.tolist() == [1.0, 1.0, 1.0] and g2.tolist() == [1.0] * 6


def test_backward_drops_what_forward_saved():
    x = shendu.ones(4, requires_grad=True)
    y = x.relu()
    fn = y.grad_fn
    assert getattr(fn, "saved_positive", None) is not None
    y.sum().backward()
    assert getattr(fn, "saved_positive", None) is None and fn.inputs is None


# --- dtypes --------------------------------------------------------------------------------

def test_gradient_dtype_matches_leaf_dtype():
    x = shendu.ones(3, requires_grad=True)
    (x * 2.5).sum().backward()
    assert x.grad.dtype == shendu.float32
    y = shendu.ones(3, dtype=shendu.float64, requires_grad=True)
    (y.float() * x).sum().backward()
    assert y.grad.dtype == shendu.float64 and x.grad.dtype == shendu.float32


@pytest.mark.parametrize("make,expected", [
    (lambda: shendu.ones(2) + 0.1, shendu.float32),
    (lambda: shendu.arange(3) + 0.5, shendu.float32),
    (lambda: shendu.ones(2) + shendu.ones(2, dtype=shendu.float64), shendu.float64),
    (lambda: shendu.arange(3) / shendu.arange(1, 4), shendu.float32),
    (lambda: shendu.ones(2) < 3, shendu.bool),
    (lambda: shendu.arange(3) != shendu.arange(3), shendu.bool),
])
def test_dtype_promotion_rules(make, expected):
    assert make().dtype == expected


def test_same_seed_same_graph_same_bits():
    def run():
        shendu.manual_seed(3)
        w = shendu.randn(4, 4, requires_grad=True)
        x = shendu.randn(8, 4)
        ((x @ w).tanh() @ w).softmax(1).log().sum().backward()
        return w.grad.numpy().copy()

    np.testing.assert_array_equal(run(), run())


def test_once_differentiable_refuses_a_second_derivative_by_name():
    from shendu.autograd import Function

    class FusedSquare(Function):
        once_differentiable = True

        def forward(self, a):
            return a * a

        def backward(self, grad):
            return grad * (2.0 * self.inputs[0].detach())

    x = shendu.tensor([1.0, 2.0], requires_grad=True)
    (g,) = shendu.autograd.grad(FusedSquare.apply(x).sum(), x)
    np.testing.assert_allclose(g.numpy(), [2.0, 4.0])
    with pytest.raises(RuntimeError, match="FusedSquareBackward is once-differentiable"):
        shendu.autograd.grad(FusedSquare.apply(x).sum(), x, create_graph=True)
