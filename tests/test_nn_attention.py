"""Attention against torch (Concept: N5.1, N5.2): F.scaled_dot_product_attention with every
mask kind (values, gradients, Hessian-vector products), MultiheadAttention through
oracle.check_layer (state_dict keys, outputs, weights, gradients of inputs and parameters),
the causal structure of the Jacobian, positional encodings, and the named errors."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle import assert_close, check_layer, check_op, to_torch

import shendu
import shendu.nn.functional as F
from shendu import nn

T = torch.nn
RNG = np.random.default_rng(0)


def _sdpa(**kw):
    """The same call on both sides; numpy masks become each framework's tensor."""
    def call(q, k, v):
        if isinstance(q, torch.Tensor):
            args = {n: to_torch(a) if isinstance(a, np.ndarray) else a for n, a in kw.items()}
            return TF.scaled_dot_product_attention(q, k, v, **args)
        args = {n: shendu.tensor(a) if isinstance(a, np.ndarray) else a for n, a in kw.items()}
        return F.scaled_dot_product_attention(q, k, v, **args)
    return call


def _bool(shape, p=0.6):
    mask = RNG.random(shape) < p
    mask[..., 0] = True  # every query keeps one key (a fully masked row is tested apart)
    return mask


# --- scaled_dot_product_attention -----------------------------------------------------------
@pytest.mark.parametrize("kw", [
    {}, {"is_causal": True}, {"scale": 0.3}, {"attn_mask": _bool((5, 6))},
    {"attn_mask": _bool((2, 3, 5, 6))}, {"attn_mask": _bool((3, 1, 6))},
    {"attn_mask": RNG.standard_normal((5, 6))}, {"attn_mask": RNG.standard_normal((3, 5, 6))},
])
def test_sdpa_matches_torch(kw):
    # a float mask must have the query's dtype (torch's rule), so no float32 rerun with it
    float_mask = "attn_mask" in kw and kw["attn_mask"].dtype.kind == "f"
    check_op(_sdpa(**kw), [(2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 7)], second_order=True,
             check_float32=not float_mask)


def test_sdpa_float_mask_gets_a_gradient():
    mask = RNG.standard_normal((5, 6))
    check_op(_call_mask, [(2, 5, 4), (2, 6, 4), (2, 6, 3), mask], second_order=True)


def _call_mask(q, k, v, m):
    fn = TF.scaled_dot_product_attention if isinstance(q, torch.Tensor) else \
        F.scaled_dot_product_attention
    return fn(q, k, v, attn_mask=m)


@pytest.mark.parametrize("shapes", [
    [(5, 4), (6, 4), (6, 2)],                   # no batch dims
    [(2, 1, 5, 4), (1, 3, 6, 4), (2, 3, 6, 4)],  # broadcast batch dims
    [(3, 7, 4), (3, 2, 4), (3, 2, 4)],          # L > S with is_causal: top-left triangle
])
def test_sdpa_shapes(shapes):
    check_op(_sdpa(is_causal=True), shapes)
    check_op(_sdpa(), shapes)


def test_sdpa_grouped_query_attention():
    check_op(_sdpa(enable_gqa=True, is_causal=True), [(2, 4, 5, 3), (2, 2, 5, 3), (2, 2, 5, 3)])


def test_sdpa_fully_masked_row_gives_zero_like_torch():
    mask = _bool((5, 6))
    mask[2] = False
    check_op(_sdpa(attn_mask=mask), [(2, 5, 4), (2, 6, 4), (2, 6, 3)])
    out = F.scaled_dot_product_attention(*(shendu.randn(5, 4) for _ in range(3)),
                                         attn_mask=shendu.tensor(mask[:, :5]))
    assert np.all(out.numpy()[2] == 0) and np.isfinite(out.numpy()).all()


def test_sdpa_is_stable_for_huge_scores():
    q = np.full((1, 3, 2), 1e4)
    check_op(_sdpa(), [q, RNG.standard_normal((1, 4, 2)) * 1e3, (1, 4, 2)],
             check_float32=False)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.integers(1, 5),
       st.integers(1, 5), st.booleans())
def test_sdpa_random_shapes(n, length, source, e, ev, causal):
    check_op(_sdpa(is_causal=causal), [(n, length, e), (n, source, e), (n, source, ev)],
             check_float32=False)


def test_sdpa_dropout_is_seeded_and_unbiased():
    q = shendu.tensor(RNG.standard_normal((2, 5, 4)))
    runs = [F.scaled_dot_product_attention(q, q, q, dropout_p=0.5,
                                           generator=shendu.Generator(seed=3))
            for _ in range(2)]
    plain = F.scaled_dot_product_attention(q, q, q).numpy()
    assert np.array_equal(runs[0].numpy(), runs[1].numpy())
    assert not np.allclose(runs[0].numpy(), plain)
    gen = shendu.Generator(seed=4)
    mean = np.mean([F.scaled_dot_product_attention(q, q, q, dropout_p=0.5, generator=gen)
                    .numpy() for _ in range(400)], axis=0)
    np.testing.assert_allclose(mean, plain, atol=0.15)  # inverted dropout keeps E[out]


def test_multihead_attention_dropout_only_in_training():
    x = shendu.randn(5, 2, 8)
    mha = nn.MultiheadAttention(8, 2, dropout=0.5)
    ref = nn.MultiheadAttention(8, 2)
    ref.load_state_dict(mha.state_dict())
    with shendu.no_grad():
        assert np.array_equal(mha.eval()(x, x, x)[0].numpy(), ref(x, x, x)[0].numpy())
        train_out, weights = mha.train()(x, x, x, average_attn_weights=False)
    assert not np.allclose(train_out.numpy(), ref(x, x, x)[0].detach().numpy())
    kept = weights.numpy()
    assert np.all((kept == 0) | (kept > 0)) and (kept == 0).mean() > 0.2  # dropped weights


# --- causality (N5.2): the Jacobian is block lower-triangular in position -------------------
def _assert_causal(fn, x, seq_axis):
    """Output position t depends on inputs 0..t only: zero gradient from every later input
    (autograd.grad per output position) and no change when they are perturbed."""
    out = fn(x)
    length = x.shape[seq_axis]
    for t in range(length):
        pick = [slice(None)] * out.ndim
        pick[seq_axis] = t
        g = np.zeros(out.shape)
        g[tuple(pick)] = RNG.standard_normal(out[tuple(pick)].shape)
        grad, = shendu.autograd.grad(out, x, shendu.tensor(g), retain_graph=True)
        later = [slice(None)] * x.ndim
        later[seq_axis] = slice(t + 1, None)
        assert np.all(grad.numpy()[tuple(later)] == 0), f"position {t} sees the future"
        assert np.any(grad.numpy() != 0)
        changed = x.detach().numpy().copy()
        changed[tuple(later)] += RNG.standard_normal(changed[tuple(later)].shape) * 10
        new = fn(shendu.tensor(changed)).detach().numpy()
        assert np.array_equal(new[tuple(pick)], out.detach().numpy()[tuple(pick)])


def test_sdpa_is_causal_never_looks_ahead():
    x = shendu.tensor(RNG.standard_normal((2, 3, 6, 4)), requires_grad=True)
    _assert_causal(lambda t: F.scaled_dot_product_attention(t, t * 2.0, t.flip(-1),
                                                            is_causal=True), x, 2)


@pytest.mark.parametrize("batch_first", [False, True])
def test_multihead_attention_with_causal_mask_never_looks_ahead(batch_first):
    mha = nn.MultiheadAttention(8, 2, batch_first=batch_first).double()
    mask = nn.Transformer.generate_square_subsequent_mask(5, dtype=shendu.float64)
    x = shendu.tensor(RNG.standard_normal((3, 5, 8) if batch_first else (5, 3, 8)),
                      requires_grad=True)
    _assert_causal(lambda t: mha(t, t, t, attn_mask=mask, is_causal=True)[0], x,
                   1 if batch_first else 0)


# --- MultiheadAttention ---------------------------------------------------------------------
class _Bound(nn.Module):
    """Calls ``inner`` with fixed keyword arguments, so check_layer can drive it."""

    def __init__(self, inner, **kw):
        super().__init__()
        self.inner, self.kw = inner, kw

    def forward(self, *args):
        return _drop_none(self.inner(*args, **self.kw))


def _drop_none(out):
    """(output, None) from need_weights=False -> output, for check_layer."""
    return out[0] if isinstance(out, tuple) and out[1] is None else out


class _TBound(T.Module):
    def __init__(self, inner, **kw):
        super().__init__()
        self.inner, self.kw = inner, kw

    def forward(self, *args):
        return _drop_none(self.inner(*args, **self.kw))


def check_bound(ours, theirs, inputs, **kw):
    """check_layer on ``ours(*inputs, **kw)`` vs ``theirs(*inputs, **kw)``; numpy arrays in
    ``kw`` become each side's tensors (float masks float64, as the layers in the check)."""
    ours_kw = {k: shendu.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    theirs_kw = {k: to_torch(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    check_layer(_Bound(ours, **ours_kw), lambda: _TBound(theirs, **theirs_kw), inputs, passes=1)


def _mha_inputs(batch_first, n=3, length=4, source=5, e=8, kdim=None, vdim=None):
    def shape(seq, feat):
        return (n, seq, feat) if batch_first else (seq, n, feat)
    return [shape(length, e), shape(source, kdim or e), shape(source, vdim or e)]


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("kw", [
    {}, {"average_attn_weights": False}, {"need_weights": False},
    {"key_padding_mask": _bool((3, 5), 0.7) == 0},
    {"attn_mask": _bool((4, 5)) == 0},
    {"attn_mask": RNG.standard_normal((6, 4, 5)), "average_attn_weights": False},
    {"attn_mask": RNG.standard_normal((4, 5)), "key_padding_mask": RNG.standard_normal((3, 5))},
])
def test_multihead_attention_matches_torch(batch_first, kw):
    make = {"embed_dim": 8, "num_heads": 2, "batch_first": batch_first}
    check_bound(nn.MultiheadAttention(**make), T.MultiheadAttention(**make),
                _mha_inputs(batch_first), **kw)


@pytest.mark.parametrize("make", [
    {"kdim": 3, "vdim": 5}, {"bias": False}, {"add_bias_kv": True},
    {"add_zero_attn": True, "add_bias_kv": True}, {"num_heads": 1}, {"num_heads": 8}])
def test_multihead_attention_variants(make):
    args = {"embed_dim": 8, "num_heads": 2, "batch_first": True}
    args.update(make)
    inputs = _mha_inputs(True, kdim=make.get("kdim"), vdim=make.get("vdim"))
    check_bound(nn.MultiheadAttention(**args), T.MultiheadAttention(**args), inputs,
                key_padding_mask=_bool((3, 5), 0.7) == 0)


def test_multihead_attention_self_attention_and_unbatched():
    mha, tmha = nn.MultiheadAttention(8, 4), T.MultiheadAttention(8, 4)
    check_layer(_SelfAttn(mha), lambda: _TSelfAttn(tmha), (5, 2, 8))
    check_bound(nn.MultiheadAttention(8, 2), T.MultiheadAttention(8, 2),
                [(4, 8), (5, 8), (5, 8)], key_padding_mask=_bool(5, 0.7) == 0,
                average_attn_weights=False)


class _SelfAttn(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x, x, x, attn_mask=nn.Transformer.generate_square_subsequent_mask(
            x.shape[0], dtype=x.dtype), is_causal=True)


class _TSelfAttn(T.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x, x, x, attn_mask=T.Transformer.generate_square_subsequent_mask(
            x.shape[0], dtype=x.dtype), is_causal=True)


def test_multihead_attention_init_matches_torch():
    mha = nn.MultiheadAttention(64, 4)
    w = mha.in_proj_weight.data
    bound = math.sqrt(6 / (64 + 3 * 64))  # xavier_uniform_ on (3E, E)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound
    assert not mha.in_proj_bias.data.any() and not mha.out_proj.bias.data.any()
    assert np.abs(mha.out_proj.weight.data).max() <= 1 / math.sqrt(64)
    sep = nn.MultiheadAttention(8, 2, kdim=3, vdim=5)
    assert [k for k, _ in sep.named_parameters()] == \
        [k for k, _ in T.MultiheadAttention(8, 2, kdim=3, vdim=5).named_parameters()]
    assert sep.in_proj_weight is None and sep.k_proj_weight.shape == (8, 3)


@pytest.mark.parametrize("call,match", [
    (lambda: nn.MultiheadAttention(10, 3), "divisible"),
    (lambda: nn.MultiheadAttention(0, 1), "positive"),
    (lambda: _mha()(shendu.randn(4, 2, 6), shendu.randn(5, 2, 8), shendu.randn(5, 2, 8)),
     "query"),
    (lambda: _mha()(shendu.randn(4, 2, 8), shendu.randn(5, 2, 8), shendu.randn(6, 2, 8)),
     "share"),
    (lambda: _mha()(shendu.randn(4, 2, 8), shendu.randn(5, 3, 8), shendu.randn(5, 3, 8)),
     "batch"),
    (lambda: _mha()(*_x3(), key_padding_mask=shendu.zeros(5, 2).bool()), "key_padding_mask"),
    (lambda: _mha()(*_x3(), attn_mask=shendu.zeros(5, 4).bool()), "attn_mask"),
    (lambda: _mha()(*_x3(), attn_mask=shendu.zeros(2, 4, 4).bool()), "attn_mask"),
    (lambda: _mha()(shendu.randn(4, 8), shendu.randn(4, 2, 8), shendu.randn(4, 2, 8)), "3-D"),
])
def test_multihead_attention_errors_name_the_layer(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert "MultiheadAttention" in str(info.value)


def test_multihead_attention_type_errors():
    with pytest.raises(TypeError, match="only bool and floating types of attn_mask"):
        _mha()(*_x3(), attn_mask=shendu.zeros(4, 4, dtype=shendu.int64))
    with pytest.raises(TypeError, match="query"):
        _mha()(np.zeros((4, 2, 8)), *_x3()[1:])
    with pytest.raises(RuntimeError, match="is_causal=True needs attn_mask"):
        _mha()(*_x3(), is_causal=True)


def _mha():
    return nn.MultiheadAttention(8, 2)


def _x3():
    x = shendu.randn(4, 2, 8)
    return x, x, x


@pytest.mark.parametrize("call,error,match", [
    (lambda: F.scaled_dot_product_attention(*_qkv((2, 5, 4), (2, 6, 3), (2, 6, 3))),
     ValueError, "same E"),
    (lambda: F.scaled_dot_product_attention(*_qkv((2, 5, 4), (2, 6, 4), (2, 7, 3))),
     ValueError, "same S"),
    (lambda: F.scaled_dot_product_attention(*_qkv((2, 5, 4), (3, 6, 4), (3, 6, 4))),
     ValueError, "broadcast"),
    (lambda: F.scaled_dot_product_attention(*_qkv((5, 4), (6, 4), (6, 4)),
                                            attn_mask=shendu.zeros(6, 5).bool()),
     ValueError, "attn_mask of shape"),
    (lambda: F.scaled_dot_product_attention(*_qkv((5, 4), (6, 4), (6, 4)),
                                            attn_mask=shendu.zeros(5, 6, dtype=shendu.int64)),
     TypeError, "attn_mask must be bool"),
    (lambda: F.scaled_dot_product_attention(*_qkv((5, 4), (6, 4), (6, 4)), is_causal=True,
                                            attn_mask=shendu.zeros(5, 6).bool()),
     ValueError, "either attn_mask or is_causal"),
    (lambda: F.scaled_dot_product_attention(*_qkv((5, 4), (6, 4), (6, 4)), dropout_p=1.0),
     ValueError, "dropout_p"),
    (lambda: F.scaled_dot_product_attention(*_qkv((4,), (6, 4), (6, 4))), ValueError, "2 dims"),
    (lambda: F.scaled_dot_product_attention(*_qkv((3, 5, 4), (2, 6, 4), (2, 6, 4)),
                                            enable_gqa=True), ValueError, "enable_gqa"),
])
def test_sdpa_errors_name_the_op(call, error, match):
    with pytest.raises(error, match=match) as info:
        call()
    assert "scaled_dot_product_attention" in str(info.value)


def _qkv(*shapes):
    return [shendu.randn(*s) for s in shapes]


# --- positional encodings -------------------------------------------------------------------
def _torch_sinusoid(length, d):
    """The Vaswani formula as torch's tutorial writes it (float64)."""
    position = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * (-math.log(10000.0) / d))
    pe = torch.zeros(length, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)[:, : d // 2]
    return pe


@pytest.mark.parametrize("d", [6, 7])
@pytest.mark.parametrize("batch_first", [False, True])
def test_positional_encoding(d, batch_first):
    layer = nn.PositionalEncoding(d, max_len=50, batch_first=batch_first, dtype=shendu.float64)
    assert layer.state_dict() == {} and "pe" in dict(layer.named_buffers())
    pe = _torch_sinusoid(50, d)
    assert_close(layer.pe, pe, rtol=1e-12, atol=1e-14)
    x = RNG.standard_normal((3, 9, d) if batch_first else (9, 3, d))
    check_op(lambda t: layer(t) if isinstance(t, shendu.Tensor) else
             t + (pe[:9] if batch_first else pe[:9].unsqueeze(1)), [x], check_float32=False)
    assert nn.PositionalEncoding(d)(shendu.zeros(4, d)).dtype == shendu.float32
    # sin^2 + cos^2 = 1 on each frequency: every position vector has norm sqrt(d / 2)
    norms = np.linalg.norm(layer.pe.numpy()[:, : 2 * (d // 2)], axis=1)
    np.testing.assert_allclose(norms, math.sqrt(d // 2), rtol=1e-12)


@pytest.mark.parametrize("batch_first", [False, True])
def test_learned_positional_embedding_loads_into_torch_embedding(batch_first):
    layer = nn.LearnedPositionalEmbedding(10, 4, batch_first=batch_first)
    emb = T.Embedding(10, 4)

    class Twin(T.Module):
        def __init__(self):
            super().__init__()
            self.weight = emb.weight

        def forward(self, x):
            pos = self.weight[: x.shape[1 if batch_first else 0]]
            return x + (pos if batch_first else pos.unsqueeze(1))

    check_layer(layer, Twin, (2, 7, 4) if batch_first else (7, 2, 4))


def test_positional_errors():
    with pytest.raises(ValueError, match=r"PositionalEncoding\(4\).*exceeds max_len 5"):
        nn.PositionalEncoding(4, max_len=5)(shendu.zeros(6, 1, 4))
    with pytest.raises(ValueError, match=r"LearnedPositionalEmbedding\(5, 4\).*got \(2, 3, 5\)"):
        nn.LearnedPositionalEmbedding(5, 4, batch_first=True)(shendu.zeros(2, 3, 5))
