"""Damped Newton's method with exact Hessian-vector products by double backward.

Concept: N3.2.3 (second-order optimization: Newton's method). The Hessian is never
approximated: H v = d/dp <g(p), v> is a second reverse pass through the graph of the gradient
(``create_graph=True``), so the only approximation is the inexact conjugate-gradient solve.
"""
from __future__ import annotations

from shendu import autograd, backend
from shendu.autograd import enable_grad, no_grad
from shendu.optim.optimizer import NON_NEGATIVE, POSITIVE_INT, Optimizer, one_of
from shendu.tensor import Tensor

_MODES = ("cg", "exact")


class Newton(Optimizer):
    """Damped Newton's method: p = p - lr * (H + damping * I)^-1 g.

    Each ``step(closure)`` evaluates the loss (the closure must return it *with its graph*, it
    need not call backward), takes g = dL/dp with ``create_graph=True`` and solves
    (H + damping I) d = g for all parameters jointly (they form one flat vector of size P):
        mode='cg':    conjugate gradient with exact Hessian-vector products (double
                      backward), at most ``cg_iters`` products, stopping once
                      ||residual|| <= cg_tol * ||g||. Memory O(P); for any model size.
        mode='exact': the full (P, P) Hessian built column by column (P products) and a dense
                      solve with the xp linalg solver. For small models.
    If the damped Hessian is not positive definite along a CG direction (a non-convex loss),
    CG stops there; when that happens on the first direction, d = g (a gradient step).

    Args:
        params: iterable of Tensors (a single parameter group, as torch's LBFGS requires).
        lr: step length multiplying the Newton direction. Default: 1.0.
        damping: Levenberg-style damping added to the Hessian's diagonal. Default: 1e-4.
        mode: 'cg' or 'exact'. Default: 'cg'.
        cg_iters: maximum conjugate-gradient iterations per step. Default: 50.
        cg_tol: relative residual tolerance of the CG solve. Default: 1e-10.

    Shape:
        the parameters are flattened and concatenated in group order into a vector of size P.

    Concept: N3.2.3 (Newton's method). Nocedal & Wright, Numerical Optimization, ch. 6-7.

    Example:
        >>> import shendu
        >>> w = shendu.tensor([1.0, -2.0], dtype=shendu.float64, requires_grad=True)
        >>> opt = Newton([w], mode='exact', damping=0.0)
        >>> loss = opt.step(lambda: ((w - 3.0) ** 2).sum())
        >>> w.tolist()
        [3.0, 3.0]
    """

    hyper_rules = {"lr": ("learning rate", NON_NEGATIVE), "damping": ("damping value",
                   NON_NEGATIVE), "mode": ("mode", one_of(*_MODES)),
                   "cg_iters": ("cg_iters value", POSITIVE_INT),
                   "cg_tol": ("cg_tol value", NON_NEGATIVE)}

    def __init__(self, params, lr=1.0, damping=1e-4, mode="cg", cg_iters=50, cg_tol=1e-10):
        defaults = dict(lr=lr, damping=damping, mode=mode, cg_iters=cg_iters, cg_tol=cg_tol)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("Newton doesn't support per-parameter options (parameter groups): "
                             "the Hessian couples all parameters into one system")

    def add_param_group(self, param_group):
        if self.param_groups:
            raise ValueError("Newton doesn't support adding parameter groups: the Hessian "
                             "couples all parameters into one system")
        super().add_param_group(param_group)

    def step(self, closure=None):
        """Take one Newton step; ``closure()`` returns the scalar loss with its graph.

        Returns the loss evaluated before the step.
        """
        if closure is None:
            raise RuntimeError("Newton.step requires a closure that re-evaluates the model and "
                               "returns the loss (with its graph; it need not call backward)")
        group = self.param_groups[0]
        params = group["params"]
        with enable_grad():
            loss = closure()
            _check_loss(loss, "Newton.step")
            hvp, g = _hvp_operator(loss, params)
            if group["mode"] == "exact":
                xp = backend.xp_of(g)
                h = _dense_hessian(hvp, g)
                h[xp.diag_indices_from(h)] += float(group["damping"])
                try:
                    direction = xp.linalg.solve(h, g)
                except xp.linalg.LinAlgError:
                    raise RuntimeError(
                        f"Newton.step: the damped Hessian ({h.shape[0]} x {h.shape[0]}) is "
                        f"singular with damping={group['damping']}; increase damping") from None
            else:
                direction = _conjugate_gradient(hvp, g, float(group["damping"]),
                                                group["cg_iters"], float(group["cg_tol"]))
        lr = float(group["lr"])
        with no_grad():
            for p, d in zip(params, _split(direction, params)):
                p.sub_(d * lr)
                self.state[p]["step"] = self.state[p].get("step", 0) + 1
        return loss


def hessian(closure_or_loss, params) -> Tensor:
    """The exact (P, P) Hessian of a scalar loss w.r.t. ``params`` flattened and concatenated.

    ``closure_or_loss`` is the loss Tensor (with its graph) or a callable returning it. Column j
    is H e_j, a Hessian-vector product by double backward; the result matches
    ``torch.autograd.functional.hessian`` of the same loss of the flat parameter vector.

    Shape:
        params of sizes P_1, ..., P_k -> (P, P) with P = P_1 + ... + P_k, params' dtype.

    Concept: N3.2.3 (Newton's method needs the Hessian).

    Example:
        >>> import shendu
        >>> w = shendu.tensor([1.0, 2.0], requires_grad=True)
        >>> hessian(lambda: (w ** 3).sum(), [w]).shape
        (2, 2)
    """
    if isinstance(params, Tensor):
        params = [params]
    params = list(params)
    with enable_grad():
        loss = closure_or_loss() if callable(closure_or_loss) else closure_or_loss
        _check_loss(loss, "hessian")
        hvp, g = _hvp_operator(loss, params)
        return Tensor._wrap(_dense_hessian(hvp, g))


def _check_loss(loss, caller):
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        got = loss.shape if isinstance(loss, Tensor) else type(loss).__name__
        raise RuntimeError(f"{caller}: expected the closure to return a scalar loss Tensor, got "
                           f"{got}")
    if not loss.requires_grad:
        raise RuntimeError(f"{caller}: the loss has no graph (requires_grad=False); return it "
                           "from the closure without detaching and outside no_grad()")


def _hvp_operator(loss, params):
    """Return (hvp, g): the flat gradient g and a function v -> H v on flat xp arrays."""
    grads = autograd.grad(loss, params, create_graph=True, allow_unused=True)
    xp = params[0]._xp
    flat = [xp.zeros(p.numel(), dtype=p.dtype) if g is None else g._data.reshape(-1)
            for p, g in zip(params, grads)]
    g_flat = xp.concatenate(flat)
    # a gradient that is constant in every parameter (a linear loss) carries no graph
    curved = [(g, i) for i, g in enumerate(grads) if g is not None and g.requires_grad]

    def hvp(v):
        out = xp.zeros_like(g_flat)
        if not curved:
            return out
        vs = _split(v, params)
        with enable_grad():
            dot = None
            for g, i in curved:
                term = (g * Tensor._wrap(vs[i])).sum()
                dot = term if dot is None else dot + term
            hv = autograd.grad(dot, params, retain_graph=True, allow_unused=True)
        start = 0
        for p, h in zip(params, hv):
            if h is not None:
                out[start:start + p.numel()] = h._data.reshape(-1)
            start += p.numel()
        return out

    return hvp, g_flat


def _dense_hessian(hvp, g):
    """Columns H e_j for j < P: P Hessian-vector products (a loop over parameters)."""
    xp = backend.xp_of(g)
    size = g.shape[0]
    h = xp.empty((size, size), dtype=g.dtype)
    unit = xp.zeros_like(g)
    for j in range(size):
        unit[j] = 1
        h[:, j] = hvp(unit)
        unit[j] = 0
    return h


def _conjugate_gradient(hvp, g, damping, max_iters, tol):
    """Solve (H + damping I) x = g by CG from x = 0 (Hestenes & Stiefel 1952)."""
    xp = backend.xp_of(g)
    x = xp.zeros_like(g)
    r = g.copy()
    direction = r.copy()
    rs = float(r @ r)
    stop = tol * rs ** 0.5
    if rs == 0.0:
        return x
    for i in range(max_iters):
        a_dir = hvp(direction)
        a_dir += damping * direction
        curvature = float(direction @ a_dir)
        if curvature <= 0.0:
            # not positive definite along this direction: keep what CG has so far
            return g.copy() if i == 0 else x
        alpha = rs / curvature
        x += alpha * direction
        r -= alpha * a_dir
        rs_new = float(r @ r)
        if rs_new ** 0.5 <= stop:
            break
        direction *= rs_new / rs
        direction += r
        rs = rs_new
    return x


def _split(flat, params):
    """Views of a flat vector shaped like each parameter, in order."""
    out, start = [], 0
    for p in params:
        out.append(flat[start:start + p.numel()].reshape(p.shape))
        start += p.numel()
    return out
