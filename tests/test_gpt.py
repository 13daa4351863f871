"""GPT (N5.1-N5.3): shapes, weight tying, GPT-2 init, parity with a torch twin built from
torch.nn modules, causality, learning, optimizer groups, seeded generation."""
import math

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as TF

import shendu
from oracle import assert_close
from shendu.models import GPT, GPTConfig, get_model
from shendu.models._sampling import sample_next

TINY = dict(block_size=16, vocab_size=11, n_layer=2, n_head=2, n_embd=8)


# --- the torch twin: nanoGPT written with torch.nn modules ---------------------------------

class TorchAttention(tnn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_attn = tnn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.c_proj = tnn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.n_head, self.n_embd = c.n_head, c.n_embd

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for t in (q, k, v))
        y = TF.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class TorchBlock(tnn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1 = tnn.LayerNorm(c.n_embd, bias=c.bias)
        self.attn = TorchAttention(c)
        self.ln_2 = tnn.LayerNorm(c.n_embd, bias=c.bias)
        self.mlp = tnn.Module()
        self.mlp.c_fc = tnn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias)
        self.mlp.c_proj = tnn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp.c_proj(TF.gelu(self.mlp.c_fc(self.ln_2(x))))


class TorchGPT(tnn.Module):
    def __init__(self, c):
        super().__init__()
        self.transformer = tnn.ModuleDict(dict(
            wte=tnn.Embedding(c.vocab_size, c.n_embd), wpe=tnn.Embedding(c.block_size, c.n_embd),
            h=tnn.ModuleList([TorchBlock(c) for _ in range(c.n_layer)]),
            ln_f=tnn.LayerNorm(c.n_embd, bias=c.bias)))
        self.lm_head = tnn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight

    def forward(self, idx):
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(idx.shape[1]))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


def _ids(shape, vocab, seed=0):
    return np.random.default_rng(seed).integers(0, vocab, size=shape)


@pytest.mark.parametrize("bias", [True, False])
def test_forward_and_gradients_match_torch_twin(bias):
    config = GPTConfig(**TINY, bias=bias)
    shendu.manual_seed(0)
    ours = GPT(config).double()
    theirs = TorchGPT(config).double()
    # strict load: our state_dict keys and shapes are the torch twin's (nanoGPT's)
    theirs.load_state_dict({k: torch.from_numpy(v.detach().numpy().copy())
                            for k, v in ours.state_dict().items()})
    ids = _ids((3, 13), config.vocab_size)
    out, tout = ours(shendu.from_numpy(ids)), theirs(torch.from_numpy(ids))
    assert_close(out, tout, what="logits")
    upstream = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(shendu.from_numpy(upstream))
    tout.backward(torch.from_numpy(upstream))
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad, tparams[name].grad, rtol=1e-7, atol=1e-10, what=f"grad {name}")


def test_shapes_dtype_and_features():
    model = GPT(GPTConfig(**TINY))
    idx = shendu.from_numpy(_ids((4, 7), 11))
    logits = model(idx)
    assert logits.shape == (4, 7, 11) and logits.dtype == shendu.float32
    assert model.features(idx).shape == (4, 7, 8) and model.feature_dim == 8


def test_weight_tying_is_one_parameter():
    model = GPT(GPTConfig(**TINY))
    assert model.lm_head.weight is model.transformer.wte.weight
    names = [n for n, _ in model.named_parameters()]
    assert "lm_head.weight" not in names and "transformer.wte.weight" in names
    state = model.state_dict()
    assert "lm_head.weight" in state and "transformer.wte.weight" in state
    n_unique = sum(p.numel() for p in model.parameters())
    c = model.config
    per_block = (2 * 2 * c.n_embd + 3 * c.n_embd * (c.n_embd + 1) + c.n_embd * (c.n_embd + 1)
                 + 4 * c.n_embd * (c.n_embd + 1) + c.n_embd * (4 * c.n_embd + 1))
    expected = (c.vocab_size + c.block_size) * c.n_embd + c.n_layer * per_block + 2 * c.n_embd
    assert n_unique == expected
    assert model.get_num_params() == expected - c.block_size * c.n_embd


def test_gpt2_initialisation_statistics():
    shendu.manual_seed(0)
    model = GPT(GPTConfig(block_size=64, vocab_size=300, n_layer=8, n_head=4, n_embd=128))
    for name, p in model.named_parameters():
        w = p.detach().numpy()
        if name.endswith("c_proj.weight"):
            assert abs(w.std() - 0.02 / math.sqrt(16)) < 5e-4, name
        elif name.endswith("weight") and p.ndim == 2:
            assert abs(w.std() - 0.02) < 1e-3, name
        elif name.endswith("bias") and "ln" not in name:
            assert not w.any(), name
        elif "ln" in name:
            assert (w == (1.0 if name.endswith("weight") else 0.0)).all(), name


def test_causality_logits_at_t_ignore_later_tokens():
    model = GPT(GPTConfig(**TINY))
    ids = _ids((2, 12), 11)
    base = model(shendu.from_numpy(ids)).detach().numpy()
    for t in (0, 5, 10):
        changed = ids.copy()
        changed[:, t + 1:] = (changed[:, t + 1:] + 3) % 11
        out = model(shendu.from_numpy(changed)).detach().numpy()
        np.testing.assert_array_equal(out[:, :t + 1], base[:, :t + 1])
        assert np.abs(out[:, t + 1:] - base[:, t + 1:]).max() > 1e-4


def test_loss_decreases_on_tiny_corpus():
    shendu.manual_seed(0)
    model = GPT(GPTConfig(**TINY))
    text = np.tile(np.arange(11), 40)  # a periodic sequence: the next id is predictable
    starts = np.arange(0, 300, 7)
    x = shendu.from_numpy(text[starts[:, None] + np.arange(12)])
    y = shendu.from_numpy(text[starts[:, None] + np.arange(1, 13)])
    opt = model.configure_optimizers(weight_decay=0.0, lr=1e-2)
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss = shendu.nn.functional.cross_entropy(model(x).reshape(-1, 11), y.reshape(-1))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]  # 2.40 -> 1.22 measured


def test_configure_optimizers_decay_groups():
    model = GPT(GPTConfig(**TINY))
    opt = model.configure_optimizers(weight_decay=0.1, lr=3e-4, betas=(0.9, 0.95))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim < 2 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert sum(p is model.lm_head.weight for p in decay["params"]) == 1
    assert decay["lr"] == 3e-4 and decay["betas"] == (0.9, 0.95)


def test_generate_is_deterministic_and_crops_to_block_size():
    model = GPT(GPTConfig(**TINY))
    prompt = shendu.from_numpy(_ids((2, 3), 11))
    a = model.generate(prompt, 20, generator=shendu.Generator(seed=5))
    b = model.generate(prompt, 20, generator=shendu.Generator(seed=5))
    c = model.generate(prompt, 20, generator=shendu.Generator(seed=6))
    assert a.shape == (2, 23) and a.dtype == shendu.int64  # 23 > block_size 16: cropped
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    np.testing.assert_array_equal(a.detach().numpy()[:, :3], prompt.detach().numpy())
    assert (a.detach().numpy() != c.detach().numpy()).any()
    assert model.training  # the mode is restored


def test_generate_top_k_1_is_greedy():
    model = GPT(GPTConfig(**TINY))
    idx = shendu.from_numpy(_ids((3, 4), 11))
    out = model.generate(idx, 5, top_k=1, generator=shendu.Generator(seed=0))
    manual = idx
    for _ in range(5):
        nxt = model(manual).detach().numpy()[:, -1].argmax(-1)[:, None]
        manual = shendu.cat([manual, shendu.from_numpy(nxt)], 1)
    np.testing.assert_array_equal(out.detach().numpy(), manual.detach().numpy())


def test_sample_next_frequencies_and_top_k():
    logits = shendu.tensor(np.log([[0.5, 0.25, 0.125, 0.125]] * 20000), dtype=shendu.float32)
    ids = sample_next(logits, generator=shendu.Generator(seed=0)).detach().numpy().ravel()
    freq = np.bincount(ids, minlength=4) / ids.size
    np.testing.assert_allclose(freq, [0.5, 0.25, 0.125, 0.125], atol=0.015)
    top2 = sample_next(logits, top_k=2, generator=shendu.Generator(seed=0)).detach().numpy().ravel()
    assert set(np.unique(top2)) == {0, 1}
    assert abs((top2 == 0).mean() - 2 / 3) < 0.015
    hot = sample_next(logits, temperature=0.05, generator=shendu.Generator(seed=0)).detach().numpy()
    assert (hot == 0).mean() > 0.99


def test_registry_builds_gpt():
    model = get_model("gpt", **TINY)
    assert isinstance(model, GPT) and model.config.n_layer == 2


def test_errors_name_the_model():
    model = GPT(GPTConfig(**TINY))
    with pytest.raises(ValueError, match="GPT: cannot forward a sequence of length 17"):
        model(shendu.zeros(1, 17, dtype=shendu.int64))
    with pytest.raises(ValueError, match=r"GPT: expected idx \(B, T\)"):
        model(shendu.zeros(2, 3))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 11\)"):
        model(shendu.tensor([[3, 11]]))
    with pytest.raises(ValueError, match="not divisible"):
        GPT(GPTConfig(n_embd=10, n_head=4))
    with pytest.raises(TypeError, match="GPTConfig"):
        GPT(dict(TINY))
    with pytest.raises(ValueError, match="temperature"):
        model.generate(shendu.zeros(1, 2, dtype=shendu.int64), 3, temperature=0)
    with pytest.raises(ValueError, match="top_k"):
        model.generate(shendu.zeros(1, 2, dtype=shendu.int64), 3, top_k=0)
