"""Transformer layers and stacks against torch (Concept: N5.1, N5.2): state_dict keys, outputs
and gradients of inputs and every parameter (oracle.check_layer), post-norm and pre-norm,
masks of every kind, batch_first both ways; independent deep copies in the stacks; causality
of an encoder layer under the causal mask; xavier init of nn.Transformer; named errors."""
import math

import numpy as np
import pytest
import torch
from oracle import check_layer, to_torch

import shendu
from shendu import nn

T = torch.nn
RNG = np.random.default_rng(1)
E, H, FF = 8, 2, 12


class _Call(nn.Module):
    """``inner(*inputs, **kw)`` as one module, so check_layer can drive keyword masks."""

    def __init__(self, inner, **kw):
        super().__init__()
        self.inner, self.kw = inner, kw

    def forward(self, *args):
        return self.inner(*args, **self.kw)


class _TCall(T.Module):
    def __init__(self, inner, **kw):
        super().__init__()
        self.inner, self.kw = inner, kw

    def forward(self, *args):
        return self.inner(*args, **self.kw)


def check(ours, theirs, inputs, passes=1, **masks):
    """check_layer with each numpy mask given to both sides as that side's tensor; dropout is
    0, so one train pass (plus the eval one) covers what more passes would."""
    ours_kw = {k: shendu.tensor(v) if isinstance(v, np.ndarray) else v for k, v in masks.items()}
    theirs_kw = {k: to_torch(v) if isinstance(v, np.ndarray) else v for k, v in masks.items()}
    check_layer(_Call(ours, **ours_kw), lambda: _TCall(theirs, **theirs_kw), inputs,
                passes=passes)


def _seq(batch_first, length, n=3):
    return (n, length, E) if batch_first else (length, n, E)


def _padding(n, length):
    mask = RNG.random((n, length)) < 0.3
    mask[:, 0] = False  # True = padded; every sequence keeps its first position
    return mask


def _causal(length):
    return np.triu(np.full((length, length), -np.inf), 1)


def _args(**kw):
    args = {"d_model": E, "nhead": H, "dim_feedforward": FF, "dropout": 0.0}
    args.update(kw)
    return args


ENCODER_MASKS = [
    {}, {"src_mask": _causal(5), "is_causal": True}, {"src_key_padding_mask": _padding(3, 5)},
    {"src_mask": np.triu(np.ones((5, 5), bool), 1), "src_key_padding_mask": _padding(3, 5)},
    {"src_mask": RNG.standard_normal((3 * H, 5, 5))},
]


@pytest.mark.parametrize("masks", ENCODER_MASKS)
@pytest.mark.parametrize("batch_first,norm_first,activation", [
    (False, False, "relu"), (True, True, "gelu"), (True, False, "gelu"), (False, True, "relu")])
def test_encoder_layer(batch_first, norm_first, activation, masks):
    kw = _args(batch_first=batch_first, norm_first=norm_first, activation=activation)
    check(nn.TransformerEncoderLayer(**kw), T.TransformerEncoderLayer(**kw),
          _seq(batch_first, 5), **masks)


@pytest.mark.parametrize("kw", [{"bias": False}, {"layer_norm_eps": 1e-3}, {"dim_feedforward": 3},
                                {"activation": torch.tanh}])
def test_encoder_layer_options(kw):
    ours_kw = dict(kw, activation=shendu.tanh) if "activation" in kw else kw
    check(nn.TransformerEncoderLayer(**_args(**ours_kw)),
          T.TransformerEncoderLayer(**_args(**kw)), (4, 5, E))


def test_encoder_layer_unbatched():
    check(nn.TransformerEncoderLayer(**_args()), T.TransformerEncoderLayer(**_args()), (5, E),
          src_mask=_causal(5))


@pytest.mark.parametrize("batch_first,norm_first", [(False, False), (True, True)])
def test_decoder_layer(batch_first, norm_first):
    kw = _args(batch_first=batch_first, norm_first=norm_first, activation="gelu")
    check(nn.TransformerDecoderLayer(**kw), T.TransformerDecoderLayer(**kw),
          [_seq(batch_first, 4), _seq(batch_first, 6)], tgt_mask=_causal(4), tgt_is_causal=True,
          memory_mask=RNG.random((4, 6)) < 0.2, tgt_key_padding_mask=_padding(3, 4),
          memory_key_padding_mask=_padding(3, 6))


@pytest.mark.parametrize("norm", [False, True])
def test_stacks(norm):
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(**_args(norm_first=True)), 2,
                                nn.LayerNorm(E) if norm else None)
    tenc = T.TransformerEncoder(T.TransformerEncoderLayer(**_args(norm_first=True)), 2,
                                T.LayerNorm(E) if norm else None, enable_nested_tensor=False)
    check(enc, tenc, (5, 3, E), mask=_causal(5), src_key_padding_mask=_padding(3, 5))
    dec = nn.TransformerDecoder(nn.TransformerDecoderLayer(**_args()), 2,
                                nn.LayerNorm(E) if norm else None)
    tdec = T.TransformerDecoder(T.TransformerDecoderLayer(**_args()), 2,
                                T.LayerNorm(E) if norm else None)
    check(dec, tdec, [(4, 3, E), (6, 3, E)], tgt_mask=_causal(4),
          memory_key_padding_mask=_padding(3, 6))


@pytest.mark.parametrize("batch_first,norm_first", [(False, False), (True, True)])
def test_transformer(batch_first, norm_first):
    kw = _args(num_encoder_layers=2, num_decoder_layers=1, batch_first=batch_first,
               norm_first=norm_first)
    check(nn.Transformer(**kw), T.Transformer(**kw), [_seq(batch_first, 6), _seq(batch_first, 4)],
          tgt_mask=_causal(4), src_key_padding_mask=_padding(3, 6),
          memory_key_padding_mask=_padding(3, 6))


def test_stack_layers_are_independent_copies():
    layer = nn.TransformerEncoderLayer(**_args())
    enc = nn.TransformerEncoder(layer, 3)
    weights = [m.linear1.weight for m in enc.layers]
    assert len({id(w) for w in weights} | {id(layer.linear1.weight)}) == 4
    assert all(np.array_equal(w.data, layer.linear1.weight.data) for w in weights)
    with shendu.no_grad():
        enc.layers[0].linear1.weight.add_(1.0)
    assert not np.array_equal(enc.layers[1].linear1.weight.data, enc.layers[0].linear1.weight.data)
    assert len(list(enc.parameters())) == 3 * len(list(layer.parameters()))


def test_transformer_init_and_keys_match_torch():
    model = nn.Transformer(16, 2, 1, 1, 24)
    assert list(model.state_dict()) == list(T.Transformer(16, 2, 1, 1, 24).state_dict())
    w = model.encoder.layers[0].linear1.weight.data  # xavier_uniform_, not Linear's default
    bound = math.sqrt(6 / (16 + 24))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert not model.decoder.layers[0].multihead_attn.in_proj_bias.data.any()


def test_generate_square_subsequent_mask():
    ours = nn.Transformer.generate_square_subsequent_mask(4)
    theirs = T.Transformer.generate_square_subsequent_mask(4)
    assert ours.dtype == shendu.float32
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_with_causal_mask_never_looks_ahead(norm_first):
    layer = nn.TransformerEncoderLayer(**_args(norm_first=norm_first, batch_first=True)).double()
    mask = nn.Transformer.generate_square_subsequent_mask(6, dtype=shendu.float64)
    x = shendu.tensor(RNG.standard_normal((2, 6, E)), requires_grad=True)
    out = layer(x, src_mask=mask, is_causal=True)
    for t in range(6):
        g = np.zeros(out.shape)
        g[:, t] = RNG.standard_normal((2, E))
        grad, = shendu.autograd.grad(out, x, shendu.tensor(g), retain_graph=True)
        assert np.all(grad.numpy()[:, t + 1:] == 0) and np.any(grad.numpy()[:, t] != 0)
        changed = x.detach().numpy().copy()
        changed[:, t + 1:] += 5.0
        new = layer(shendu.tensor(changed), src_mask=mask, is_causal=True)
        assert np.array_equal(new.detach().numpy()[:, : t + 1], out.detach().numpy()[:, : t + 1])


@pytest.mark.parametrize("call,error,match", [
    (lambda: nn.TransformerEncoderLayer(E, 3), ValueError, "divisible"),
    (lambda: nn.TransformerEncoderLayer(E, H, activation="swish"), ValueError, "activation"),
    (lambda: nn.TransformerEncoder(nn.TransformerEncoderLayer(E, H), 0), ValueError,
     "num_layers"),
    (lambda: nn.TransformerEncoderLayer(E, H)(shendu.randn(5, 3, E + 1)), ValueError,
     r"TransformerEncoderLayer\(d_model=8, nhead=2\): expected src"),
    (lambda: nn.TransformerDecoderLayer(E, H)(shendu.randn(5, 3, E), shendu.randn(5, 3, 4)),
     ValueError, "expected memory"),
    (lambda: nn.Transformer(E, H, 1, 1, FF)(shendu.randn(5, 3, E), shendu.randn(4, 2, E)),
     ValueError, "same batch size"),
    (lambda: nn.TransformerEncoderLayer(E, H)(shendu.randn(5, 3, E),
                                              src_mask=shendu.zeros(4, 4)),
     ValueError, "attn_mask of shape"),
    (lambda: nn.TransformerEncoderLayer(E, H)(shendu.randn(5, 3, E), is_causal=True),
     RuntimeError, "needs attn_mask"),
])
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
