"""Fused recurrences: one Function runs a whole RNN, GRU or LSTM layer in one direction
(Concepts: N4.1.1-N4.1.3).

Each Function takes the input projection for every step, computed before the loop as one
matrix product (``xw = x W_ih^T + b``, an ordinary differentiable op), the initial state and
W_hh. Each step does one matrix product for all gates (``h W_hh^T``) and the gate arithmetic
in place on xp arrays; the backward is back-propagation through time in the same style and
forms dW_hh as one product over all steps after its loop.

Fused for a profiled speedup (house rule 1). Composed of Tensor ops, an LSTM step costs about
20 op dispatches each way, and slicing the precomputed projection per step makes the backward
quadratic in the sequence length (every slice's gradient is a full (L, N, G) array that the
engine adds up). The backward is array code, so these Functions are once-differentiable;
``shendu.nn.RNN/GRU/LSTM(..., fused=False)`` keep a composed path for second derivatives.

sigmoid(x) is evaluated as 0.5 + 0.5 tanh(x / 2): it cannot overflow, and the halving is folded
into the pre-activations (an exact scaling by a power of two), so all gates of a step take one
tanh over the whole (N, G) block.
"""
from __future__ import annotations

from shendu import backend, threads
from shendu.autograd import Function
from shendu.ops.shape import stack
from shendu.tensor import Tensor


def _steps(length, reverse):
    return range(length - 1, -1, -1) if reverse else range(length)


def _previous(out, h0, reverse):
    """The state each step started from, aligned with time: (L, N, H)."""
    xp = backend.xp_of(out)
    if reverse:
        return xp.concatenate([out[1:], h0[None]], axis=0)
    return xp.concatenate([h0[None], out[:-1]], axis=0)


def _sigmoid_scale(xp, blocks, hidden, dtype):
    """(G,) factors 0.5 on the sigmoid gate blocks, 1 on the tanh ones, and the matching shift
    (0.5 / 0), so that tanh(scale * x) * scale + shift is sigmoid or tanh per block."""
    scale = xp.concatenate([xp.full(hidden, 0.5 if b == "s" else 1.0, dtype=dtype)
                            for b in blocks])
    shift = xp.concatenate([xp.full(hidden, 0.5 if b == "s" else 0.0, dtype=dtype)
                            for b in blocks])
    return scale, shift


def _weight_grad(dgates, prev):
    """sum_t dgates_t^T h_{t-1}: (L, N, G), (L, N, H) -> (G, H), as one product."""
    g, h = dgates.shape[-1], prev.shape[-1]
    return dgates.reshape(-1, g).T @ prev.reshape(-1, h)


class _Recurrence(Function):
    once_differentiable = True

    def _keep(self, **arrays):
        """Save what backward needs, unless no input needs a gradient (inference)."""
        if True in self.needs_input_grad:
            for name, array in arrays.items():
                setattr(self, "saved_" + name, array)


class RNNLayer(_Recurrence):
    """h_t = act(xw_t + h_{t-1} W_hh^T) with act tanh or relu (N4.1.1).

    Shape: xw (L, N, H), h0 (N, H), w_hh (H, H) -> out (L, N, H), h_t in time order.
    """

    def forward(self, xw, h0, w_hh, nonlinearity="tanh", reverse=False):
        xp = backend.xp_of(xw)
        out = xp.empty_like(xw)
        w_t, h = xp.ascontiguousarray(w_hh.T), h0  # BLAS is fastest on C-ordered operands
        for t in _steps(xw.shape[0], reverse):
            pre = threads.matmul(h, w_t)
            pre += xw[t]
            if nonlinearity == "tanh":
                xp.tanh(pre, out=out[t])
            else:
                xp.maximum(pre, 0, out=out[t])
            h = out[t]
        self.relu, self.reverse = nonlinearity == "relu", reverse
        self._keep(out=out, h0=h0)
        return out

    def backward(self, grad):
        g, out, w = grad._data, self.saved_out, self.inputs[2]._data
        xp = backend.xp_of(out)
        deriv = (out > 0).astype(out.dtype) if self.relu else 1 - out * out
        dpre = xp.empty_like(out)
        dh = None
        for t in _steps(out.shape[0], not self.reverse):  # back through time
            d = g[t] if dh is None else g[t] + dh
            xp.multiply(d, deriv[t], out=dpre[t])
            dh = threads.matmul(dpre[t], w)
        dw = _weight_grad(dpre, _previous(out, self.saved_h0, self.reverse)) \
            if self.needs_input_grad[2] else None
        return Tensor._wrap(dpre), Tensor._wrap(dh), _wrap(dw)


class GRULayer(_Recurrence):
    """r, z = sigmoid(xw_rz + h W_hrz^T + b_hrz); n = tanh(xw_n + r * (h W_hn^T + b_hn));
    h' = (1 - z) * n + z * h (N4.1.2). ``xw`` holds x W_ih^T + b_ih only.

    Shape: xw (L, N, 3H), h0 (N, H), w_hh (3H, H), b_hh (3H,) or None -> out (L, N, H).
    """

    def forward(self, xw, h0, w_hh, b_hh=None, reverse=False):
        xp = backend.xp_of(xw)
        length, n, hidden = xw.shape[0], xw.shape[1], w_hh.shape[1]
        scale, _ = _sigmoid_scale(xp, "ssn", hidden, xw.dtype)
        w_t = xp.ascontiguousarray(w_hh.T) * scale  # C-ordered: BLAS is fastest on it
        b = None if b_hh is None else b_hh * scale
        rz = xw[..., :2 * hidden] * 0.5  # (L, N, 2H): pre-activations, then the gates
        gh = xp.empty_like(xw)  # h W_hh^T + b_hh per step; the n block is needed by backward
        new = xp.empty((length, n, hidden), dtype=xw.dtype)
        out = xp.empty_like(new)
        h = h0
        for t in _steps(length, reverse):
            threads.matmul(h, w_t, out=gh[t])
            if b is not None:
                gh[t] += b
            a = rz[t]
            a += gh[t, :, :2 * hidden]
            xp.tanh(a, out=a)
            a *= 0.5
            a += 0.5
            r, z = a[:, :hidden], a[:, hidden:]
            cand = new[t]
            xp.multiply(r, gh[t, :, 2 * hidden:], out=cand)
            cand += xw[t, :, 2 * hidden:]
            xp.tanh(cand, out=cand)
            xp.subtract(h, cand, out=out[t])
            out[t] *= z
            out[t] += cand
            h = out[t]
        self.reverse = reverse
        self._keep(rz=rz, new=new, gh_n=gh[..., 2 * hidden:], out=out, h0=h0)
        return out

    def backward(self, grad):
        g, out, w = grad._data, self.saved_out, self.inputs[2]._data
        xp = backend.xp_of(out)
        hidden = out.shape[-1]
        r, z = self.saved_rz[..., :hidden], self.saved_rz[..., hidden:]
        cand = self.saved_new
        prev = _previous(out, self.saved_h0, self.reverse)
        # d(pre-activation) per unit of dh, for all steps at once
        to_n = (1 - z) * (1 - cand * cand)
        to_z = (prev - cand) * z * (1 - z)
        to_r = self.saved_gh_n * r * (1 - r)
        dx = xp.empty(out.shape[:2] + (3 * hidden,), dtype=out.dtype)
        dgh = xp.empty_like(dx)
        dh = None
        for t in _steps(out.shape[0], not self.reverse):  # back through time
            d = g[t] if dh is None else g[t] + dh
            dn = dx[t, :, 2 * hidden:]
            xp.multiply(d, to_n[t], out=dn)
            xp.multiply(dn, to_r[t], out=dx[t, :, :hidden])
            xp.multiply(d, to_z[t], out=dx[t, :, hidden:2 * hidden])
            dgh[t, :, :2 * hidden] = dx[t, :, :2 * hidden]
            xp.multiply(dn, r[t], out=dgh[t, :, 2 * hidden:])
            dh = d * z[t]
            dh += threads.matmul(dgh[t], w)
        need = self.needs_input_grad
        dw = _weight_grad(dgh, prev) if need[2] else None
        db = dgh.sum(axis=(0, 1)) if need[3] else None
        return Tensor._wrap(dx), Tensor._wrap(dh), _wrap(dw), _wrap(db)


class LSTMLayer(_Recurrence):
    """i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (xw_t + h_{t-1} W_hh^T), in torch's
    order; c_t = f * c_{t-1} + i * g; h_t = o * tanh(c_t) (N4.1.3).

    Shape: xw (L, N, 4H), h0 (N, H), c0 (N, H), w_hh (4H, H) -> (L + 1, N, H): h_t in time
    order, then the final cell state (the one output a single Function can return).
    """

    def forward(self, xw, h0, c0, w_hh, reverse=False):
        xp = backend.xp_of(xw)
        length, n, hidden = xw.shape[0], xw.shape[1], w_hh.shape[1]
        scale, shift = _sigmoid_scale(xp, "ssts", hidden, xw.dtype)
        w_t = xp.ascontiguousarray(w_hh.T) * scale  # C-ordered: BLAS is fastest on it
        gates = xw * scale  # (L, N, 4H): pre-activations, then the gates in place
        cells = xp.empty((length, n, hidden), dtype=xw.dtype)
        tanh_c = xp.empty_like(cells)
        out = xp.empty((length + 1, n, hidden), dtype=xw.dtype)
        h, c = h0, c0
        for t in _steps(length, reverse):
            a = gates[t]
            a += threads.matmul(h, w_t)
            xp.tanh(a, out=a)
            a *= scale
            a += shift
            xp.multiply(a[:, hidden:2 * hidden], c, out=cells[t])
            cells[t] += a[:, :hidden] * a[:, 2 * hidden:3 * hidden]
            xp.tanh(cells[t], out=tanh_c[t])
            xp.multiply(a[:, 3 * hidden:], tanh_c[t], out=out[t])
            h, c = out[t], cells[t]
        out[length] = c
        self.reverse = reverse
        self._keep(gates=gates, cells=cells, tanh_c=tanh_c, out=out, h0=h0, c0=c0)
        return out

    def _factors(self):
        """(L, N, 4, H): d(gate pre-activation) per unit of dc (i, f, g) or dh (o)."""
        gates, hidden = self.saved_gates, self.saved_cells.shape[-1]
        xp = backend.xp_of(gates)
        f4 = 1 - gates
        f4 *= gates  # sigmoid' = s (1 - s)
        g = gates[..., 2 * hidden:3 * hidden]
        f4[..., 2 * hidden:3 * hidden] = 1 - g * g  # tanh' = 1 - g^2
        f4 = f4.reshape(gates.shape[:2] + (4, hidden))
        f4[..., 0, :] *= g
        f4[..., 1, :] *= _previous(self.saved_cells, self.saved_c0, self.reverse)
        f4[..., 2, :] *= gates[..., :hidden]
        f4[..., 3, :] *= self.saved_tanh_c
        return f4, xp

    def backward(self, grad):
        g, w = grad._data, self.inputs[3]._data
        length, hidden = self.saved_cells.shape[0], self.saved_cells.shape[-1]
        f4, xp = self._factors()
        gates, tanh_c = self.saved_gates, self.saved_tanh_c
        to_c = gates[..., 3 * hidden:] * (1 - tanh_c * tanh_c)  # dc/dh through h = o tanh(c)
        dgates = xp.empty(gates.shape, dtype=gates.dtype)
        d4 = dgates.reshape(f4.shape)
        dh, dc = None, g[length]
        for t in _steps(length, not self.reverse):  # back through time
            d = g[t] if dh is None else g[t] + dh
            dc = d * to_c[t] + dc
            xp.multiply(dc[:, None, :], f4[t, :, :3], out=d4[t, :, :3])
            xp.multiply(d, f4[t, :, 3], out=d4[t, :, 3])
            dc = dc * gates[t, :, hidden:2 * hidden]
            dh = threads.matmul(dgates[t], w)
        dw = None
        if self.needs_input_grad[3]:
            out = self.saved_out[:length]
            dw = _weight_grad(dgates, _previous(out, self.saved_h0, self.reverse))
        return Tensor._wrap(dgates), Tensor._wrap(dh), Tensor._wrap(dc), _wrap(dw)


def _wrap(array):
    return None if array is None else Tensor._wrap(array)


# --- the same equations composed of Tensor ops (the cells and fused=False) -------------
def rnn_step(gi, gh, nonlinearity):
    """h' = act(gi + gh) with gi = x W_ih^T + b_ih, gh = h W_hh^T + b_hh (N4.1.1)."""
    pre = gi + gh
    return pre.tanh() if nonlinearity == "tanh" else pre.relu()


def gru_step(gi, gh, h):
    """r, z = sigmoid(gi_rz + gh_rz); n = tanh(gi_n + r * gh_n); h' = (1 - z) n + z h (N4.1.2)."""
    i_r, i_z, i_n = gi.chunk(3, 1)
    h_r, h_z, h_n = gh.chunk(3, 1)
    r = (i_r + h_r).sigmoid()
    z = (i_z + h_z).sigmoid()
    n = (i_n + r * h_n).tanh()
    return n + z * (h - n)


def lstm_step(gates, c):
    """i, f, g, o = chunks of gates (N, 4H); c' = f c + i g; h' = o tanh(c') (N4.1.3)."""
    i, f, g, o = gates.chunk(4, 1)
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c.tanh(), c


def composed_layer(mode, xw, states, w_hh, b_hh, reverse):
    """One layer in one direction, the fused Functions' equations in Tensor ops (twice
    differentiable). ``xw`` (L, N, G H) is the input projection (with b_hh folded in except
    for the GRU); ``states`` [h0] or [h0, c0], each (N, H). Returns the outputs (L, N, H) in
    time order and the final states. Each xw[t] slice sends a full (L, N, G H) gradient back,
    so the backward costs O(L^2 N G H): the reference path, not the fast one.
    """
    w_t, h = w_hh.mT, states[0]  # (H, G H)
    c = states[1] if mode == "LSTM" else None
    outs = [None] * xw.shape[0]
    for t in _steps(xw.shape[0], reverse):
        gh = h @ w_t  # (N, G H): all gates in one product
        if mode == "LSTM":
            h, c = lstm_step(xw[t] + gh, c)
        elif mode == "GRU":
            h = gru_step(xw[t], gh if b_hh is None else gh + b_hh, h)
        else:
            h = rnn_step(xw[t], gh, mode[4:].lower())
        outs[t] = h
    return stack(outs), ((h, c) if mode == "LSTM" else (h,))
