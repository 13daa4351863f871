"""CharRNN: a character-level recurrent language model (Karpathy's char-rnn, in torch's terms).

Embedding -> RNN / GRU / LSTM (batch_first) -> Dropout -> Linear to next-character logits.
Concept: N4.1.1-N4.1.3 (the recurrent cells), N5.3 (self-supervised next-token prediction).
"""
from __future__ import annotations

from dataclasses import dataclass

from shendu import autograd
from shendu.models._sampling import check_prompt, check_sampling, sample_next
from shendu.nn.dropout import Dropout
from shendu.nn.embedding import Embedding
from shendu.nn.linear import Linear
from shendu.nn.module import Module
from shendu.nn.rnn import GRU, LSTM, RNN
from shendu.ops.shape import cat

CELLS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


@dataclass
class CharRNNConfig:
    """The arguments of ``CharRNN`` (the model registry builds from this)."""

    vocab_size: int = 65
    embed_dim: int = 64
    hidden_size: int = 256
    num_layers: int = 1
    cell: str = "lstm"
    dropout: float = 0.0


class CharRNN(Module):
    """Recurrent language model over token ids.

        e_t = embed[x_t];  h_t = cell(e_t, h_{t-1});  logits_t = head(dropout(h_t))

    Args:
        vocab_size: number of token ids V.
        embed_dim: embedding width E. Default: 64.
        hidden_size: recurrent state width H. Default: 256.
        num_layers: stacked recurrent layers. Default: 1.
        cell: 'lstm', 'gru' or 'rnn' (tanh Elman). Default: 'lstm'.
        dropout: on the embeddings, between recurrent layers and before the head. Default: 0.

    Shape:
        idx (B, T) int64 -> logits (B, T, V); ``step`` also returns the state, which is
        (h, c) with each (num_layers, B, H) for the LSTM and h (num_layers, B, H) otherwise.

    Concept: N4.1.1 (RNN), N4.1.2 (GRU), N4.1.3 (LSTM).

    Example:
        >>> model = CharRNN(11, embed_dim=8, hidden_size=16, cell="gru")
        >>> model(shendu.zeros(2, 5, dtype=shendu.int64)).shape
        (2, 5, 11)
    """

    def __init__(self, vocab_size, embed_dim=64, hidden_size=256, num_layers=1, cell="lstm",
                 dropout=0.0):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"CharRNN: cell must be one of {sorted(CELLS)}, got {cell!r}")
        for name, value in (("vocab_size", vocab_size), ("embed_dim", embed_dim),
                            ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"CharRNN: {name} must be a positive int, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"CharRNN: dropout must lie in [0, 1), got {dropout!r}")
        self.vocab_size, self.embed_dim, self.hidden_size = vocab_size, embed_dim, hidden_size
        self.num_layers, self.cell, self.dropout_p = num_layers, cell, float(dropout)
        self.embed = Embedding(vocab_size, embed_dim)
        # the recurrent layers' own dropout acts only between layers (torch warns otherwise)
        self.rnn = CELLS[cell](embed_dim, hidden_size, num_layers, batch_first=True,
                               dropout=dropout if num_layers > 1 else 0.0)
        self.drop = Dropout(dropout)
        self.head = Linear(hidden_size, vocab_size)

    @property
    def feature_dim(self):
        """Width H of ``features``' output (what a fine-tuning head reads)."""
        return self.hidden_size

    def _states(self, idx, state):
        check_prompt("CharRNN", idx, self.vocab_size)
        out, state = self.rnn(self.drop(self.embed(idx)), state)  # (B, T, H)
        return out, state

    def features(self, idx, state=None):
        """The top layer's hidden state at every position.

        Shape:
            idx (B, T) -> (B, T, H)
        """
        return self._states(idx, state)[0]

    def step(self, idx, state=None):
        """Logits and the final recurrent state, to continue a sequence where it stopped.

        Shape:
            idx (B, T) -> logits (B, T, V), state (see the class docstring)
        """
        out, state = self._states(idx, state)
        return self.head(self.drop(out)), state

    def forward(self, idx):
        return self.step(idx)[0]

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None):
        """Extend ``idx`` by ``max_new_tokens`` sampled tokens (no_grad, eval mode).

        The prompt is read once; then each sampled token is fed back with the carried state,
        so a token costs one recurrent step. Sampling as ``GPT.generate``.

        Shape:
            idx (B, T) -> (B, T + max_new_tokens) int64
        """
        check_sampling("CharRNN", max_new_tokens, temperature, top_k)
        check_prompt("CharRNN.generate", idx, self.vocab_size)
        was_training = self.training
        self.eval()
        try:
            with autograd.no_grad():
                pieces, state, last = [idx], None, idx
                for _ in range(max_new_tokens):
                    logits, state = self.step(last, state)
                    last = sample_next(logits[:, -1, :], temperature, top_k, generator)
                    pieces.append(last)
        finally:
            self.train(was_training)
        return cat(pieces, 1)

    def extra_repr(self):
        return (f"vocab_size={self.vocab_size}, embed_dim={self.embed_dim}, "
                f"hidden_size={self.hidden_size}, num_layers={self.num_layers}, "
                f"cell={self.cell!r}, dropout={self.dropout_p}")
