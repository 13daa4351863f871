"""Newton's method and the exact Hessian by double backward (shendu.optim.newton)."""
import numpy as np
import pytest
import torch

import shendu
from oracle import assert_close
from shendu.optim import SGD, Newton, hessian

L2 = 1e-2


def logistic_data(n=200, d=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    w_true = rng.standard_normal(d)
    y = np.where(x @ w_true + 0.5 * rng.standard_normal(n) > 0, 1.0, -1.0)
    return x, y


def logistic_loss(w, b, x, y):
    """mean log(1 + exp(-y (x w + b))) + L2/2 ||w||^2 on shendu or torch tensors."""
    margin = -y * (x @ w + b)
    return (1 + margin.exp()).log().mean() + 0.5 * L2 * (w * w).sum()


def mlp_loss(w1, b1, w2, b2, x, y):
    y_hat = (x @ w1.T + b1).tanh() @ w2.T + b2
    return ((y_hat - y) ** 2).mean() + 0.1 * (w1 ** 2).sum()


def split_flat(flat, shapes):
    out, start = [], 0
    for s in shapes:
        size = int(np.prod(s))
        out.append(flat[start:start + size].reshape(s))
        start += size
    return out


def check_hessian_against_torch(loss, arrays, data):
    ours = [shendu.tensor(a, requires_grad=True) for a in arrays]
    h = hessian(lambda: loss(*ours, *[shendu.tensor(d) for d in data]), ours)
    shapes = [a.shape for a in arrays]
    flat = torch.tensor(np.concatenate([a.ravel() for a in arrays]))
    tdata = [torch.tensor(d) for d in data]
    expected = torch.autograd.functional.hessian(
        lambda v: loss(*split_flat(v, shapes), *tdata), flat)
    assert h.dtype == shendu.float64 and not h.requires_grad
    assert_close(h, expected, rtol=1e-10, atol=1e-12, what="Hessian")


def test_hessian_of_logistic_regression_matches_torch():
    x, y = logistic_data(n=40, d=4)
    rng = np.random.default_rng(1)
    check_hessian_against_torch(logistic_loss, [rng.standard_normal(4), rng.standard_normal(1)],
                                [x, y])


def test_hessian_of_mlp_matches_torch():
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal(s) for s in [(3, 4), (3,), (2, 3), (2,)]]
    data = [rng.standard_normal((6, 4)), rng.standard_normal((6, 2))]
    check_hessian_against_torch(mlp_loss, arrays, data)


def test_hessian_of_a_linear_loss_is_zero_and_accepts_a_loss_tensor():
    w = shendu.tensor([1.0, 2.0, 3.0], dtype=shendu.float64, requires_grad=True)
    h = hessian((w * shendu.tensor([1.0, -1.0, 2.0], dtype=shendu.float64)).sum(), w)
    assert h.shape == (3, 3) and not h.numpy().any()


def test_hessian_keeps_float32():
    w = shendu.tensor([0.5, -1.0], requires_grad=True)
    h = hessian(lambda: (w ** 4).sum(), [w])
    assert h.dtype == shendu.float32
    np.testing.assert_allclose(h.numpy(), np.diag([3.0, 12.0]), rtol=1e-6)


def test_one_newton_step_solves_a_quadratic():
    rng = np.random.default_rng(3)
    m = rng.standard_normal((6, 6))
    a, b = m @ m.T + 6 * np.eye(6), rng.standard_normal(6)
    for mode in ("exact", "cg"):
        w = shendu.tensor(np.zeros(6), requires_grad=True)
        opt = Newton([w], damping=0.0, mode=mode)
        opt.step(lambda: 0.5 * (w @ (shendu.tensor(a) @ w)) - (shendu.tensor(b) * w).sum())
        np.testing.assert_allclose(w.detach().numpy(), np.linalg.solve(a, b), rtol=1e-9,
                                   err_msg=mode)
        assert opt.state[w]["step"] == 1


def test_cg_and_exact_directions_agree_on_an_mlp():
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal(s) * 0.5 for s in [(3, 4), (3,), (2, 3), (2,)]]
    x, y = shendu.tensor(rng.standard_normal((10, 4))), shendu.tensor(rng.standard_normal((10, 2)))
    params = [shendu.tensor(a, requires_grad=True) for a in arrays]
    lowest = np.linalg.eigvalsh(hessian(lambda: mlp_loss(*params, x, y), params).numpy())[0]
    damping = max(0.0, -lowest) + 0.5  # CG needs H + damping I positive definite
    results = []
    for mode in ("exact", "cg"):
        params = [shendu.tensor(a, requires_grad=True) for a in arrays]
        Newton(params, lr=0.5, damping=damping, mode=mode, cg_iters=100).step(
            lambda: mlp_loss(*params, x, y))
        results.append(np.concatenate([p.detach().numpy().ravel() for p in params]))
    np.testing.assert_allclose(results[1], results[0], rtol=1e-8, atol=1e-10)


def grad_norm(w, b, x, y):
    loss = logistic_loss(w, b, x, y)
    gw, gb = shendu.autograd.grad(loss, [w, b])
    return float(np.sqrt((gw.numpy() ** 2).sum() + (gb.numpy() ** 2).sum()))


@pytest.mark.parametrize("mode", ["cg", "exact"])
def test_newton_reaches_the_logistic_optimum_in_few_steps(mode):
    x_np, y_np = logistic_data()
    x, y = shendu.tensor(x_np), shendu.tensor(y_np)
    w = shendu.tensor(np.zeros(5), requires_grad=True)
    b = shendu.tensor(np.zeros(1), requires_grad=True)
    opt = Newton([w, b], mode=mode)
    steps = 0
    while grad_norm(w, b, x, y) >= 1e-8:
        assert steps < 8, f"Newton ({mode}) needed more than 8 steps"
        opt.step(lambda: logistic_loss(w, b, x, y))
        steps += 1
    assert steps >= 2  # the problem is not trivially solved by one step

    w_sgd = shendu.tensor(np.zeros(5), requires_grad=True)
    b_sgd = shendu.tensor(np.zeros(1), requires_grad=True)
    sgd = SGD([w_sgd, b_sgd], lr=0.5, momentum=0.9)
    for _ in range(50):
        sgd.zero_grad()
        logistic_loss(w_sgd, b_sgd, x, y).backward()
        sgd.step()
    assert grad_norm(w_sgd, b_sgd, x, y) > 1e-3  # 50 SGD steps are still far off


def test_negative_curvature_falls_back_to_a_gradient_step():
    w = shendu.tensor([1.0], dtype=shendu.float64, requires_grad=True)
    opt = Newton([w], lr=0.1, damping=0.0)
    opt.step(lambda: -(w * w).sum())
    assert w.tolist() == pytest.approx([1.2])  # w - 0.1 * (-2w): downhill, not to the maximum


def test_newton_keeps_float32():
    w = shendu.tensor([2.0, -1.0], requires_grad=True)
    opt = Newton([w], damping=0.0)
    for _ in range(3):
        opt.step(lambda: ((w - 1.0) ** 2).sum())
    assert w.dtype == shendu.float32
    np.testing.assert_allclose(w.detach().numpy(), [1.0, 1.0], rtol=1e-6)


def test_newton_errors():
    w = shendu.tensor([1.0], requires_grad=True)
    opt = Newton([w])
    with pytest.raises(RuntimeError, match="requires a closure"):
        opt.step()
    with pytest.raises(RuntimeError, match="has no graph"):
        opt.step(lambda: (w * w).sum().detach())
    v = shendu.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar loss"):
        Newton([v]).step(lambda: v * v)
    with pytest.raises(ValueError, match="parameter groups"):
        Newton([{"params": [w]}, {"params": [shendu.tensor([1.0], requires_grad=True)]}])
    with pytest.raises(ValueError, match="Invalid mode"):
        Newton([w], mode="bfgs")
    with pytest.raises(RuntimeError, match="singular with damping=0.0"):
        Newton([v], damping=0.0, mode="exact").step(lambda: (v * 2.0).sum())
    with pytest.raises(ValueError, match="Invalid damping value: -1"):
        Newton([w], damping=-1)
