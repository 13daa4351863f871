"""Recurrent layers: RNN, GRU and LSTM, their single-step cells, with torch's parameter names,
shapes, gate order, initialization and return values (Concepts: N4.1.1-N4.1.3).

A layer computes the input projection of every time step as one matrix product before its
loop over time; each step then does one matrix product for all gates (h W_hh^T) and slices the
gates. The default path runs that loop in the fused Functions of ``shendu.ops.rnn``
(once-differentiable); ``fused=False`` runs the same equations composed of Tensor ops, which
are twice differentiable. The loop is over time steps only, never over the batch.
"""
from __future__ import annotations

import math
import numbers
import warnings

from shendu import creation
from shendu.nn import functional as F
from shendu.nn import init
from shendu.nn._checks import check_tensor
from shendu.nn.module import Module, Parameter
from shendu.ops import rnn as fused_ops
from shendu.ops.rnn import composed_layer, gru_step, lstm_step, rnn_step
from shendu.ops.shape import cat, stack

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}


def _check_state(layer, name, state, shape, like):
    check_tensor(layer, state, name)
    if tuple(state.shape) != shape:
        raise ValueError(f"{layer}: expected {name} of shape {shape} for input of shape "
                         f"{tuple(like.shape)}, got {tuple(state.shape)}")
    if state.dtype != like.dtype:
        raise TypeError(f"{layer}: {name} has dtype {state.dtype} but the input has "
                        f"{like.dtype}")


def _check_float(layer, x, weight):
    if x.dtype != weight.dtype:
        raise TypeError(f"{layer}: input dtype {x.dtype} does not match the parameters' "
                        f"dtype {weight.dtype}; convert one with .to()")


def _check_sizes(input_size, hidden_size):
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
        if value <= 0:
            raise ValueError(f"{name} must be greater than zero, got {value}")


class _CellBase(Module):
    def __init__(self, input_size, hidden_size, bias, gates, device, dtype):
        super().__init__()
        _check_sizes(input_size, hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.weight_ih = Parameter(creation.empty(gates * hidden_size, input_size,
                                                  device=device, dtype=dtype))
        self.weight_hh = Parameter(creation.empty(gates * hidden_size, hidden_size,
                                                  device=device, dtype=dtype))
        for name in ("bias_ih", "bias_hh"):
            self.register_parameter(name, Parameter(creation.empty(
                gates * hidden_size, device=device, dtype=dtype)) if bias else None)
        self.reset_parameters()

    def reset_parameters(self):
        """torch's default: every weight and bias ~ U(-k, k), k = 1/sqrt(hidden_size)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _prepare(self, input, hx, names):
        """Batch an unbatched input and validate/zero-fill the states: (N, I), [(N, H)...]."""
        layer = f"{type(self).__name__}({self.extra_repr()})"
        check_tensor(layer, input)
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(f"{layer}: expected input (N, {self.input_size}) or unbatched "
                             f"({self.input_size},), got {tuple(input.shape)}")
        _check_float(layer, input, self.weight_ih)
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        shape = (x.shape[0], self.hidden_size)
        if hx is None:
            states = [creation.zeros(*shape, dtype=x.dtype, device=x.device) for _ in names]
        else:
            states = list(hx) if len(names) > 1 else [hx]
            if len(states) != len(names):
                raise ValueError(f"{layer}: expected hx = ({', '.join(names)}), got "
                                 f"{len(states)} tensors")
            for name, s in zip(names, states):
                _check_state(layer, name, s, shape if batched else shape[1:], input)
            if not batched:
                states = [s.unsqueeze(0) for s in states]
        return x, states, batched

    def _project(self, x, h):
        return (F.linear(x, self.weight_ih, self.bias_ih),
                F.linear(h, self.weight_hh, self.bias_hh))

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s


class RNNCell(_CellBase):
    """One Elman step: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu).
    Concept: N4.1.1 (h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h)).

    Args:
        input_size, hidden_size: feature sizes H_in and H.
        bias: learn b_ih and b_hh. Default: True.
        nonlinearity: 'tanh' or 'relu'. Default: 'tanh'.

    Shape:
        input (N, H_in) or (H_in,), hx (N, H) or (H,) (zeros when None) -> h' like hx

    Attributes:
        weight_ih (H, H_in), weight_hh (H, H), bias_ih (H,), bias_hh (H,), all U(-k, k) with
        k = 1/sqrt(H).

    Example:
        >>> RNNCell(10, 20)(shendu.zeros(3, 10)).shape
        (3, 20)
    """

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", *,
                 device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: unknown nonlinearity {nonlinearity!r}; select from "
                             "'tanh' or 'relu'")
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        x, (h,), batched = self._prepare(input, hx, ("hx",))
        h = rnn_step(*self._project(x, h), self.nonlinearity)
        return h if batched else h.squeeze(0)


class GRUCell(_CellBase):
    """One GRU step, torch's gate order (r, z, n). Concept: N4.1.2 (Cho et al. 2014).

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h

    Shape:
        input (N, H_in) or (H_in,), hx (N, H) or (H,) (zeros when None) -> h' like hx

    Attributes:
        weight_ih (3H, H_in), weight_hh (3H, H), bias_ih (3H,), bias_hh (3H,): the r, z, n
        blocks stacked, all U(-k, k) with k = 1/sqrt(H).
    """

    def __init__(self, input_size, hidden_size, bias=True, *, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input, hx=None):
        x, (h,), batched = self._prepare(input, hx, ("hx",))
        h = gru_step(*self._project(x, h), h)
        return h if batched else h.squeeze(0)


class LSTMCell(_CellBase):
    """One LSTM step, torch's gate order (i, f, g, o). Concept: N4.1.3 (Hochreiter &
    Schmidhuber 1997).

        i, f, o = sigmoid(W_i* x + b_i* + W_h* h + b_h*);  g = tanh(W_ig x + b_ig + W_hg h + b_hg)
        c' = f * c + i * g;  h' = o * tanh(c')

    Shape:
        input (N, H_in) or (H_in,), hx = (h, c) each (N, H) or (H,) (zeros when None)
        -> (h', c') like hx

    Attributes:
        weight_ih (4H, H_in), weight_hh (4H, H), bias_ih (4H,), bias_hh (4H,): the i, f, g, o
        blocks stacked, all U(-k, k) with k = 1/sqrt(H).
    """

    def __init__(self, input_size, hidden_size, bias=True, *, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input, hx=None):
        x, (h, c), batched = self._prepare(input, hx, ("h0", "c0"))
        gi, gh = self._project(x, h)
        h, c = lstm_step(gi + gh, c)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class RNNBase(Module):
    """Shared machinery of RNN, GRU and LSTM: parameters per layer and direction, input and
    state checks, the loop over layers, dropout between them and the two directions.

    Args:
        mode: 'RNN_TANH', 'RNN_RELU', 'GRU' or 'LSTM'.
        input_size: features H_in of each input step.
        hidden_size: features H of the hidden state.
        num_layers: stacked recurrent layers; layer l > 0 reads layer l-1's output. Default: 1.
        bias: learn b_ih and b_hh. Default: True.
        batch_first: input and output are (N, L, *) instead of (L, N, *); the states keep
            (D * num_layers, N, H). Default: False.
        dropout: dropout probability on the output of every layer but the last, in training
            mode only. Default: 0.
        bidirectional: run a second layer over the reversed sequence (D = 2) and concatenate
            both outputs. Default: False.
        generator: (keyword) Generator drawing the dropout masks; None = the device default.
        fused: (keyword) run each layer's time loop in one fused Function (fast,
            once-differentiable); False composes Tensor ops (twice differentiable).
            Default: True.

    Attributes:
        weight_ih_l{k}[_reverse]: (G H, H_in) for k = 0, else (G H, D H); G = 1, 3 or 4 gates.
        weight_hh_l{k}[_reverse]: (G H, H).  bias_ih_l{k}[_reverse], bias_hh_l{k}[_reverse]:
        (G H,). All initialised U(-1/sqrt(H), 1/sqrt(H)), as torch.
    """

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, proj_size=0, *,
                 generator=None, fused=True, device=None, dtype=None):
        super().__init__()
        _check_sizes(input_size, hidden_size)
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"{mode}: num_layers must be a positive int, got {num_layers!r}")
        if (isinstance(dropout, bool) or not isinstance(dropout, numbers.Number)
                or not 0 <= dropout <= 1):
            raise ValueError(f"{mode}: dropout should be a number in [0, 1], got {dropout!r}")
        if proj_size != 0:
            raise ValueError(f"{mode}: proj_size is not supported (got {proj_size})")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so "
                          "non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={dropout} and num_layers={num_layers}", stacklevel=3)
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        self.generator, self.fused = generator, fused
        gates = _GATES[mode] * hidden_size
        self._all_weights = []
        for layer in range(num_layers):
            size = input_size if layer == 0 else hidden_size * self._directions
            for suffix in ("", "_reverse")[:self._directions]:
                names = [f"weight_ih_l{layer}{suffix}", f"weight_hh_l{layer}{suffix}"]
                shapes = [(gates, size), (gates, hidden_size)]
                if bias:
                    names += [f"bias_ih_l{layer}{suffix}", f"bias_hh_l{layer}{suffix}"]
                    shapes += [(gates,), (gates,)]
                for name, shape in zip(names, shapes):
                    setattr(self, name, Parameter(creation.empty(*shape, device=device,
                                                                 dtype=dtype)))
                self._all_weights.append(names)
        self.reset_parameters()

    @property
    def _directions(self):
        return 2 if self.bidirectional else 1

    @property
    def all_weights(self):
        """[[weight_ih, weight_hh(, bias_ih, bias_hh)] per layer and direction], as torch."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def flatten_parameters(self):
        """A no-op, as torch's on the CPU: the weights need no contiguous cuDNN buffer here.
        Kept so scripts that call it after ``.to(device)`` or ``DataParallel`` run."""

    def _name(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    def _prepare(self, input, hx):
        """(L, N, H_in) input, the initial states as lists of (N, H) per layer and direction
        (None: zeros), and whether the input was batched."""
        layer = self._name()
        check_tensor(layer, input)
        layout = "(N, L, H_in)" if self.batch_first else "(L, N, H_in)"
        if input.ndim not in (2, 3) or input.shape[-1] != self.input_size:
            raise ValueError(f"{layer}: expected input {layout} with H_in = {self.input_size}"
                             f", or unbatched (L, {self.input_size}), got "
                             f"{tuple(input.shape)}")
        _check_float(layer, input, self.weight_ih_l0)
        batched = input.ndim == 3
        x = input if batched else input.unsqueeze(1)
        if batched and self.batch_first:
            x = x.transpose(0, 1)  # (L, N, H_in)
        if x.shape[0] == 0:
            raise ValueError(f"{layer}: expected a sequence length > 0, got input "
                             f"{tuple(input.shape)}")
        names = ("h0", "c0") if self.mode == "LSTM" else ("h0",)
        count = self.num_layers * self._directions
        if hx is None:
            return x, [[None] * count for _ in names], batched
        states = list(hx) if self.mode == "LSTM" and isinstance(hx, (tuple, list)) else [hx]
        if len(states) != len(names):
            raise ValueError(f"{layer}: expected hx = ({', '.join(names)}), got "
                             f"{len(states)} tensors")
        shape = (count, x.shape[1], self.hidden_size) if batched else (count, self.hidden_size)
        for name, s in zip(names, states):
            _check_state(layer, name, s, shape, input)
        if not batched:
            states = [s.unsqueeze(1) for s in states]  # (D * num_layers, 1, H)
        return x, [[s[k] for k in range(count)] for s in states], batched

    def forward(self, input, hx=None):
        x, states, batched = self._prepare(input, hx)
        finals = [[] for _ in states]
        for layer in range(self.num_layers):
            outs = []
            for direction in range(self._directions):
                k = layer * self._directions + direction
                out, last = self._run(x, k, [s[k] for s in states])
                outs.append(out)
                for store, s in zip(finals, last):
                    store.append(s)
            x = outs[0] if len(outs) == 1 else cat(outs, dim=2)  # (L, N, D * H)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True, generator=self.generator)
        if self.batch_first and batched:
            x = x.transpose(0, 1)  # (N, L, D * H)
        finals = [stack(f) for f in finals]  # (D * num_layers, N, H) each
        if not batched:
            x, finals = x.squeeze(1), [f.squeeze(1) for f in finals]
        return x, (finals[0] if self.mode != "LSTM" else tuple(finals))

    def _run(self, x, k, init_states):
        """One layer in one direction: (L, N, H_in) -> (L, N, H) and the final states."""
        w_ih, w_hh, *biases = self.all_weights[k]
        b_ih, b_hh = biases or (None, None)
        # b_hh joins the projection except in the GRU, where it sits inside r * (...)
        bias = b_ih if self.mode == "GRU" or b_ih is None else b_ih + b_hh
        xw = F.linear(x, w_ih, bias)  # (L, N, G H): every step's input projection at once
        length, n = x.shape[:2]
        states = [s if s is not None else
                  creation.zeros(n, self.hidden_size, dtype=x.dtype, device=x.device)
                  for s in init_states]
        reverse = k % self._directions == 1
        if not self.fused:
            return composed_layer(self.mode, xw, states, w_hh, b_hh, reverse)
        last = 0 if reverse else length - 1
        if self.mode == "LSTM":
            y = fused_ops.LSTMLayer.apply(xw, *states, w_hh, reverse=reverse)  # (L + 1, N, H)
            return y[:length], (y[last], y[length])
        if self.mode == "GRU":
            out = fused_ops.GRULayer.apply(xw, *states, w_hh, b_hh, reverse=reverse)
        else:
            out = fused_ops.RNNLayer.apply(xw, *states, w_hh, reverse=reverse,
                                           nonlinearity=self.mode[4:].lower())
        return out, (out[last],)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        for name, default in (("num_layers", 1), ("bias", True), ("batch_first", False),
                              ("dropout", 0.0), ("bidirectional", False)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        return s



class RNN(RNNBase):
    """Elman RNN, stacked and optionally bidirectional. Concept: N4.1.1.

        h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)   (relu with nonlinearity='relu')

    i.e. the notes' h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h) with b_h = b_ih + b_hh.

    Args:
        input_size, hidden_size, num_layers=1, nonlinearity='tanh', bias=True,
        batch_first=False, dropout=0.0, bidirectional=False, and the keywords generator,
        fused, device, dtype: see RNNBase. nonlinearity is 'tanh' or 'relu'.

    Shape:
        input (L, N, H_in), or (N, L, H_in) when batch_first, or unbatched (L, H_in);
        h0 (D * num_layers, N, H) or (D * num_layers, H), zeros when None
        -> output (L, N, D * H) (batch_first: (N, L, D * H); unbatched: (L, D * H)),
           h_n like h0. D = 2 if bidirectional else 1.

    Example:
        >>> out, h_n = RNN(10, 20, num_layers=2)(shendu.zeros(5, 3, 10))
        >>> out.shape, h_n.shape
        ((5, 3, 20), (2, 3, 20))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, *, generator=None,
                 fused=True, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: unknown nonlinearity {nonlinearity!r}; select from 'tanh' "
                             "or 'relu'")
        super().__init__(f"RNN_{nonlinearity.upper()}", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, generator=generator,
                         fused=fused, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity


class GRU(RNNBase):
    """Gated recurrent unit, stacked and optionally bidirectional. Concept: N4.1.2 (Cho et
    al. 2014): gates, no cell state; the update gate z eases vanishing gradients.

        r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
        z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}

    Args and Shape: as RNN (no nonlinearity); weights stack the r, z, n blocks (G = 3).

    Example:
        >>> out, h_n = GRU(10, 20, batch_first=True)(shendu.zeros(3, 5, 10))
        >>> out.shape, h_n.shape
        ((3, 5, 20), (1, 3, 20))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, generator=None, fused=True, device=None,
                 dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, generator=generator, fused=fused,
                         device=device, dtype=dtype)


class LSTM(RNNBase):
    """Long short-term memory, stacked and optionally bidirectional. Concept: N4.1.3
    (Hochreiter & Schmidhuber 1997): a cell state c_t that the gates write additively.

        i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)      input gate
        f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)      forget gate
        g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)         candidate
        o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)      output gate
        c_t = f_t * c_{t-1} + i_t * g_t;   h_t = o_t * tanh(c_t)

    Args: as RNN (no nonlinearity; proj_size must be 0); weights stack the i, f, g, o blocks
    (G = 4).

    Shape:
        input as RNN; hx = (h0, c0), each (D * num_layers, N, H) or (D * num_layers, H),
        zeros when None -> output as RNN, (h_n, c_n) like (h0, c0).

    Example:
        >>> out, (h_n, c_n) = LSTM(10, 20, bidirectional=True)(shendu.zeros(5, 3, 10))
        >>> out.shape, h_n.shape, c_n.shape
        ((5, 3, 40), (2, 3, 20), (2, 3, 20))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, *, generator=None, fused=True,
                 device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, generator=generator, fused=fused,
                         device=device, dtype=dtype)
