"""CharRNN (N4.1.1-N4.1.3): parity with a torch twin for every cell, state continuation,
stateful generation against a full recompute, learning, errors."""
import numpy as np
import pytest
import torch
import torch.nn as tnn

import shendu
from oracle import assert_close
from shendu.models import CharRNN, get_model

V = 13


class TorchCharRNN(tnn.Module):
    def __init__(self, cell, num_layers):
        super().__init__()
        self.embed = tnn.Embedding(V, 6)
        self.rnn = {"lstm": tnn.LSTM, "gru": tnn.GRU, "rnn": tnn.RNN}[cell](
            6, 10, num_layers, batch_first=True)
        self.head = tnn.Linear(10, V)

    def forward(self, idx):
        return self.head(self.rnn(self.embed(idx))[0])


def _ids(shape, seed=0):
    return np.random.default_rng(seed).integers(0, V, size=shape)


@pytest.mark.parametrize("cell,num_layers", [("lstm", 1), ("gru", 2), ("rnn", 1)])
def test_matches_torch_twin(cell, num_layers):
    shendu.manual_seed(0)
    ours = CharRNN(V, embed_dim=6, hidden_size=10, num_layers=num_layers, cell=cell).double()
    theirs = TorchCharRNN(cell, num_layers).double()
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                            for k, v in ours.state_dict().items()})  # strict: same keys
    ids = _ids((3, 9))
    out, tout = ours(shendu.from_numpy(ids)), theirs(torch.from_numpy(ids))
    assert_close(out, tout, what="logits")
    upstream = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(shendu.from_numpy(upstream))
    tout.backward(torch.from_numpy(upstream))
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad, tparams[name].grad, rtol=1e-7, atol=1e-10, what=f"grad {name}")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_step_continues_where_it_stopped(cell):
    model = CharRNN(V, embed_dim=6, hidden_size=10, num_layers=2, cell=cell)
    idx = shendu.from_numpy(_ids((2, 10)))
    full = model(idx).detach().numpy()
    first, state = model.step(idx[:, :4])
    second, _ = model.step(idx[:, 4:], state)
    np.testing.assert_allclose(np.concatenate([first.detach().numpy(),
                                               second.detach().numpy()], 1), full,
                               rtol=1e-5, atol=1e-6)
    assert model.features(idx).shape == (2, 10, 10) and model.feature_dim == 10


def test_stateful_generate_equals_full_recompute():
    model = CharRNN(V, embed_dim=6, hidden_size=10, cell="gru")
    prompt = shendu.from_numpy(_ids((2, 3)))
    out = model.generate(prompt, 8, temperature=0.8, top_k=5, generator=shendu.Generator(seed=3))
    assert out.shape == (2, 11) and out.dtype == shendu.int64
    # the same draws, recomputing the whole sequence for every token
    from shendu.models._sampling import sample_next
    gen, manual = shendu.Generator(seed=3), prompt
    with shendu.no_grad():
        for _ in range(8):
            nxt = sample_next(model(manual)[:, -1, :], 0.8, 5, gen)
            manual = shendu.cat([manual, nxt], 1)
    np.testing.assert_array_equal(out.numpy(), manual.numpy())


def test_generate_is_deterministic_with_a_seeded_generator():
    model = CharRNN(V, embed_dim=6, hidden_size=10)
    prompt = shendu.from_numpy(_ids((1, 4)))
    a = model.generate(prompt, 30, generator=shendu.Generator(seed=1)).numpy()
    b = model.generate(prompt, 30, generator=shendu.Generator(seed=1)).numpy()
    c = model.generate(prompt, 30, generator=shendu.Generator(seed=2)).numpy()
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_loss_decreases_on_tiny_corpus(cell):
    shendu.manual_seed(0)
    model = CharRNN(V, embed_dim=8, hidden_size=32, cell=cell)
    seq = np.tile(np.arange(V), 30)
    starts = np.arange(0, 300, 11)
    x = shendu.from_numpy(seq[starts[:, None] + np.arange(16)])
    y = shendu.from_numpy(seq[starts[:, None] + np.arange(1, 17)])
    opt = shendu.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = shendu.nn.functional.cross_entropy(model(x).reshape(-1, V), y.reshape(-1))
        loss.backward()
        shendu.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


def test_dropout_only_in_training():
    model = CharRNN(V, embed_dim=6, hidden_size=10, num_layers=2, dropout=0.5)
    idx = shendu.from_numpy(_ids((2, 5)))
    model.eval()
    np.testing.assert_array_equal(model(idx).detach().numpy(), model(idx).detach().numpy())
    model.train()
    assert (model(idx).detach().numpy() != model(idx).detach().numpy()).any()


def test_registry_and_errors():
    model = get_model("char_rnn", vocab_size=V, cell="gru", hidden_size=12)
    assert isinstance(model, CharRNN) and model.cell == "gru"
    with pytest.raises(ValueError, match="CharRNN: cell must be one of"):
        CharRNN(V, cell="transformer")
    with pytest.raises(ValueError, match="CharRNN: hidden_size must be a positive int"):
        CharRNN(V, hidden_size=0)
    with pytest.raises(ValueError, match=r"CharRNN: expected idx \(B, T\)"):
        model(shendu.zeros(5, dtype=shendu.int64))
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(shendu.zeros(1, 2, dtype=shendu.int64), -1)
