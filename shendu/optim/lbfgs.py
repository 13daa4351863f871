"""Limited-memory BFGS with an optional strong-Wolfe line search (torch.optim.LBFGS).

Concept: N3.2.3 (second-order optimization: quasi-Newton methods). A port of torch's
``lbfgs.py`` (itself a port of minFunc / torch7's ``optim.lbfgs``) with the same control flow,
so iterates agree with torch to rounding: the two-loop recursion, the first step's
``min(1, 1/|g|_1) * lr`` scaling, the stopping tests in the same order and the strong-Wolfe
bracketing/zoom with cubic interpolation (Nocedal & Wright, Algorithms 3.5-3.6).

All work happens on one flat xp vector of every parameter concatenated in group order; the
numbers that torch keeps as 0-d tensors (``t``, ``ro``, ``H_diag``) are Python floats here.
"""
from __future__ import annotations

from shendu import backend
from shendu.autograd import enable_grad, no_grad
from shendu.optim.optimizer import (NON_NEGATIVE, POSITIVE_INT, Optimizer, check_value,
                                    one_of)
from shendu.tensor import Tensor

_LINE_SEARCHES = (None, "strong_wolfe")


class LBFGS(Optimizer):
    """L-BFGS: quasi-Newton steps from the last ``history_size`` (s, y) pairs.

    Direction d = -H g where H approximates the inverse Hessian by the two-loop recursion over
    s_k = x_{k+1} - x_k and y_k = g_{k+1} - g_k (pairs with y.s <= 1e-10 are skipped), scaled
    by H_diag = y.s / y.y. The step x = x + t d has t = lr (the first iteration of all uses
    min(1, 1/|g|_1) * lr) or comes from a strong-Wolfe line search (c1=1e-4, c2=0.9).
    One ``step(closure)`` runs up to ``max_iter`` iterations and ``max_eval`` closure calls.

    Args:
        params: iterable of Tensors (a single parameter group, as in torch).
        lr: step length. Default: 1.
        max_iter: maximal iterations per ``step``. Default: 20.
        max_eval: maximal closure evaluations per ``step``. Default: max_iter * 5 // 4.
        tolerance_grad: stop once max|g| <= this. Default: 1e-7.
        tolerance_change: stop once the step or the loss change is below this. Default: 1e-9.
        history_size: number of (s, y) pairs kept. Default: 100.
        line_search_fn: None (fixed step) or 'strong_wolfe'. Default: None.

    Shape:
        the parameters are flattened into one vector of size P; the history holds
        2 * history_size vectors of size P (the memory cost torch warns about).

    Concept: N3.2.3. Liu & Nocedal 1989; Nocedal & Wright, Numerical Optimization, ch. 3, 7.

    Example:
        >>> import shendu
        >>> w = shendu.tensor([1.0, -2.0], dtype=shendu.float64, requires_grad=True)
        >>> opt = LBFGS([w], line_search_fn='strong_wolfe')
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = ((w - 3.0) ** 2).sum()
        ...     loss.backward()
        ...     return loss
        >>> _ = opt.step(closure)
        >>> [round(v, 6) for v in w.tolist()]
        [3.0, 3.0]
    """

    hyper_rules = {"lr": ("learning rate", NON_NEGATIVE),
                   "max_iter": ("max_iter value", POSITIVE_INT),
                   "history_size": ("history_size value", POSITIVE_INT),
                   "line_search_fn": ("line_search_fn", one_of(*_LINE_SEARCHES))}

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7,
                 tolerance_change=1e-9, history_size=100, line_search_fn=None):
        check_value("LBFGS", "max_iter value", max_iter, POSITIVE_INT)  # max_eval needs it
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                        tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                        history_size=history_size, line_search_fn=line_search_fn)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]

    def add_param_group(self, param_group):
        if self.param_groups:
            raise ValueError("LBFGS doesn't support adding parameter groups: its history "
                             "couples all parameters into one vector")
        super().add_param_group(param_group)

    # --- the flat parameter vector -------------------------------------------------------
    def _flat_grad(self):
        xp = self._params[0]._xp
        return xp.concatenate([xp.zeros(p.numel(), dtype=p.dtype) if p.grad is None
                               else p.grad._data.reshape(-1) for p in self._params])

    def _add_grad(self, step_size, update):
        offset = 0
        for p in self._params:
            data = p._inplace("LBFGS.step")
            data += step_size * update[offset:offset + p.numel()].reshape(p.shape)
            offset += p.numel()

    def _clone_params(self):
        return [p._data.copy() for p in self._params]

    def _set_params(self, arrays):
        for p, array in zip(self._params, arrays):
            p._inplace("LBFGS.step")[...] = array

    def _directional_evaluate(self, closure, x, t, d):
        self._add_grad(t, d)
        loss = float(_evaluate(closure))
        flat_grad = self._flat_grad()
        self._set_params(x)
        return loss, flat_grad

    def step(self, closure):
        """Run up to ``max_iter`` L-BFGS iterations; return the closure's first loss.

        ``closure()`` must zero the gradients, evaluate the loss, call ``backward()`` and
        return the loss; it runs with gradients enabled.
        """
        if closure is None:
            raise RuntimeError("LBFGS.step requires a closure that re-evaluates the model: "
                               "zero_grad, forward, backward, return the loss")
        with no_grad():
            return self._step(closure)

    def _step(self, closure):
        group = self.param_groups[0]
        lr, max_iter, max_eval = float(group["lr"]), group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        history_size = group["history_size"]
        # LBFGS has only global state; torch files it under the first parameter
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = _evaluate(closure)
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        xp = self._params[0]._xp
        flat_grad = self._flat_grad()
        if float(xp.abs(flat_grad).max()) <= tolerance_grad:
            return orig_loss

        d, t = _array(state.get("d")), state.get("t")
        old_dirs = [_array(v) for v in state.get("old_dirs", [])]
        old_stps = [_array(v) for v in state.get("old_stps", [])]
        ro, h_diag = list(state.get("ro", [])), state.get("H_diag")
        prev_flat_grad, prev_loss = _array(state.get("prev_flat_grad")), state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro, h_diag = [], [], [], 1.0
            else:
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = float(y @ s)
                if ys > 1e-10:
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    h_diag = ys / float(y @ y)
                d = _two_loop(flat_grad, old_dirs, old_stps, ro, h_diag)
            prev_flat_grad = flat_grad.copy()
            prev_loss = loss

            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / float(xp.abs(flat_grad).sum())) * lr
            else:
                t = lr
            gtd = float(flat_grad @ d)
            if gtd > -tolerance_change:
                break

            ls_func_evals = 0
            if group["line_search_fn"] == "strong_wolfe":
                x_init = self._clone_params()

                def obj_func(x, step_length, direction):
                    return self._directional_evaluate(closure, x, step_length, direction)

                loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                    obj_func, x_init, t, d, loss, flat_grad, gtd, max_ls=max_eval - current_evals)
                self._add_grad(t, d)
                opt_cond = float(xp.abs(flat_grad).max()) <= tolerance_grad
            else:
                self._add_grad(t, d)
                opt_cond = False
                if n_iter != max_iter:
                    # torch skips the evaluation after the last iteration (no use for it)
                    loss = float(_evaluate(closure))
                    flat_grad = self._flat_grad()
                    opt_cond = float(xp.abs(flat_grad).max()) <= tolerance_grad
                    ls_func_evals = 1
            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals

            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if float(xp.abs(d * t).max()) <= tolerance_change:
                break
            if abs(loss - prev_loss) < tolerance_change:
                break

        state.update(d=Tensor._wrap(d), t=t, old_dirs=[Tensor._wrap(v) for v in old_dirs],
                     old_stps=[Tensor._wrap(v) for v in old_stps], ro=ro, H_diag=h_diag,
                     prev_flat_grad=Tensor._wrap(prev_flat_grad), prev_loss=prev_loss)
        return orig_loss


def _evaluate(closure):
    with enable_grad():
        return closure()


def _array(value):
    return value._data if isinstance(value, Tensor) else value


def _two_loop(flat_grad, old_dirs, old_stps, ro, h_diag):
    """-H g by the L-BFGS two-loop recursion (Nocedal & Wright, Algorithm 7.4)."""
    num_old = len(old_dirs)
    al = [0.0] * num_old
    q = -flat_grad
    for i in range(num_old - 1, -1, -1):
        al[i] = float(old_stps[i] @ q) * ro[i]
        q -= al[i] * old_dirs[i]
    r = q * h_diag
    for i in range(num_old):
        be_i = float(old_dirs[i] @ r) * ro[i]
        r += (al[i] - be_i) * old_stps[i]
    return r


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """Minimiser of the cubic through (x1, f1, g1), (x2, f2, g2), clipped to ``bounds``."""
    xmin_bound, xmax_bound = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square < 0:
        return (xmin_bound + xmax_bound) / 2.0
    d2 = d2_square ** 0.5
    if x1 <= x2:
        min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(min_pos, xmin_bound), xmax_bound)


def _strong_wolfe(obj_func, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9,
                  max_ls=25):
    """Step length satisfying the strong Wolfe conditions: bracket, then zoom (torch's port
    of torch7's lswolfe.lua). Returns (f_new, g_new, t, evaluations)."""
    d_norm = float(backend.xp_of(d).abs(d).max())
    g = g.copy()
    f_new, g_new = obj_func(x, t, d)
    ls_func_evals = 1
    gtd_new = float(g_new @ d)
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    bracket_gtd = None
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new.copy()], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new.copy()], [gtd_prev, gtd_new]
            break
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                               bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new.copy(), gtd_new
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = float(g_new @ d)
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]
    low_pos, zoom_evals = _zoom(obj_func, x, d, f, gtd, (c1, c2, tolerance_change, max_ls),
                                d_norm, ls_iter, done, bracket, bracket_f, bracket_g, bracket_gtd)
    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals + zoom_evals


def _zoom(obj_func, x, d, f, gtd, constants, d_norm, ls_iter, done, bracket, bracket_f,
          bracket_g, bracket_gtd):
    """Shrink the bracket in place until a point meets the strong Wolfe conditions.

    Returns (index of the bracket's low end, closure evaluations made)."""
    c1, c2, tolerance_change, max_ls = constants
    evaluations = 0
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0],
                               bracket[1], bracket_f[1], bracket_gtd[1])
        # too close to an end of the bracket twice in a row (or outside it): move t to 10%
        # of the bracket's width from the nearest end
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                if abs(t - max(bracket)) < abs(t - min(bracket)):
                    t = max(bracket) - eps
                else:
                    t = min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = obj_func(x, t, d)
        evaluations += 1
        gtd_new = float(g_new @ d)
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            bracket[high_pos], bracket_f[high_pos] = t, f_new
            bracket_g[high_pos], bracket_gtd[high_pos] = g_new.copy(), gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos] = bracket_g[low_pos]
                bracket_gtd[high_pos] = bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos] = t, f_new
            bracket_g[low_pos], bracket_gtd[low_pos] = g_new.copy(), gtd_new
    return low_pos, evaluations
