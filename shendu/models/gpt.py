"""GPT: a decoder-only Transformer language model, nanoGPT's layout and names.

Radford et al. 2018/2019 ("Improving Language Understanding by Generative Pre-Training",
"Language Models are Unsupervised Multitask Learners"); the module tree, parameter names and
initialisation follow Karpathy's nanoGPT, so a nanoGPT state_dict of the same config loads.
Concept: N5.1 (multi-head self-attention, learned positional embeddings), N5.2 (causal
masking), N5.3 (generative pre-training).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from shendu import autograd, creation
from shendu.models._sampling import check_prompt, check_sampling, sample_next
from shendu.nn import functional as F
from shendu.nn import init
from shendu.nn.activation import GELU
from shendu.nn.dropout import Dropout
from shendu.nn.embedding import Embedding
from shendu.nn.linear import Linear
from shendu.nn.container import ModuleDict, ModuleList
from shendu.nn.module import Module
from shendu.nn.normalization import LayerNorm
from shendu.ops.shape import cat


@dataclass
class GPTConfig:
    """Sizes of a GPT. The defaults are this project's tiny character-level GPT; GPT-2 small is
    ``GPTConfig(block_size=1024, vocab_size=50257, n_layer=12, n_head=12, n_embd=768)``.

    Args:
        block_size: longest context T the position table covers. Default: 64.
        vocab_size: number of token ids V. Default: 65 (tiny Shakespeare's characters).
        n_layer: Transformer blocks. Default: 4.
        n_head: attention heads per block; must divide n_embd. Default: 4.
        n_embd: width C of the residual stream. Default: 128.
        dropout: on the embeddings, the attention weights and each residual branch. Default: 0.
        bias: Linear and LayerNorm layers learn a bias. Default: True.
    """

    block_size: int = 64
    vocab_size: int = 65
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True


class CausalSelfAttention(Module):
    """Multi-head self-attention where position t sees only positions <= t.

    One Linear ``c_attn`` produces q, k and v (C each); they are split into n_head heads of
    C / n_head, attended with ``F.scaled_dot_product_attention(is_causal=True)``, merged and
    projected by ``c_proj``:  y = c_proj(concat_h softmax(q_h k_h^T / sqrt(d) + causal) v_h).

    Shape:
        x (B, T, C) -> (B, T, C)
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_attn = Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 x (B, T, C)
        shape = (B, T, self.n_head, C // self.n_head)
        q, k, v = (t.reshape(shape).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, nh, hs) -> (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(Module):
    """Position-wise feed-forward: c_proj(GELU(c_fc(x))), hidden width 4C.

    Shape:
        x (B, T, C) -> (B, T, C)
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = GELU()
        self.c_proj = Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(Module):
    """Pre-norm Transformer block: x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)).

    Shape:
        x (B, T, C) -> (B, T, C)
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


def _check_config(config):
    if not isinstance(config, GPTConfig):
        raise TypeError(f"GPT: expected a GPTConfig, got {type(config).__name__}")
    for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"GPT: config.{name} must be a positive int, got {value!r}")
    if config.n_embd % config.n_head:
        raise ValueError(f"GPT: n_embd={config.n_embd} is not divisible by "
                         f"n_head={config.n_head}")
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"GPT: config.dropout must lie in [0, 1), got {config.dropout}")


class GPT(Module):
    """Decoder-only Transformer language model: next-token logits from a causal context.

    h_0 = wte[idx] + wpe[0..T-1]; h_l = Block_l(h_{l-1}); logits = ln_f(h_L) wte^T.

    The output projection ``lm_head`` shares its weight with the token embedding ``wte``
    (weight tying, Press & Wolf 2017): one Parameter, listed once by ``parameters()`` and under
    both keys in ``state_dict()``, as in torch. GPT-2 initialisation: every Linear and
    Embedding weight N(0, 0.02), biases 0, and the residual projections (``c_proj``)
    N(0, 0.02 / sqrt(2 n_layer)) so the residual stream's variance does not grow with depth.

    Args:
        config: a ``GPTConfig``.

    Shape:
        idx (B, T) int64 with T <= block_size -> logits (B, T, V)

    Concept: N5.1, N5.2, N5.3.

    Example:
        >>> model = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=1, n_head=2, n_embd=8))
        >>> model(shendu.zeros(2, 5, dtype=shendu.int64)).shape
        (2, 5, 11)
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        _check_config(config)
        self.config = config
        self.transformer = ModuleDict(dict(
            wte=Embedding(config.vocab_size, config.n_embd),
            wpe=Embedding(config.block_size, config.n_embd),
            drop=Dropout(config.dropout),
            h=ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying
        self.reset_parameters()

    def reset_parameters(self, generator=None):
        """GPT-2 initialisation (see the class docstring)."""
        for module in self.modules():
            if isinstance(module, (Linear, Embedding)):
                init.normal_(module.weight, 0.0, 0.02, generator=generator)
            if isinstance(module, Linear) and module.bias is not None:
                init.zeros_(module.bias)
        std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                init.normal_(p, 0.0, std, generator=generator)

    @property
    def feature_dim(self):
        """Width C of ``features``' output (what a fine-tuning head reads)."""
        return self.config.n_embd

    def get_num_params(self, non_embedding=True):
        """Parameter count; ``non_embedding`` leaves out the position table (nanoGPT's count;
        the token table is the tied ``lm_head``, so it stays in)."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wpe.weight.numel() if non_embedding else n

    def features(self, idx):
        """The final hidden states ln_f(h_L), one C-vector per position.

        Shape:
            idx (B, T) -> (B, T, C)
        """
        check_prompt("GPT", idx, self.config.vocab_size)
        T = idx.shape[1]
        if T > self.config.block_size:
            raise ValueError(f"GPT: cannot forward a sequence of length {T}; block_size is "
                             f"{self.config.block_size}")
        pos = creation.arange(T, dtype=idx.dtype, device=idx.device)  # (T,)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        return self.transformer.ln_f(x)

    def forward(self, idx):
        return self.lm_head(self.features(idx))

    def configure_optimizers(self, weight_decay, lr, betas=(0.9, 0.95)):
        """AdamW with weight decay on the matrices (every parameter with ndim >= 2: Linear
        weights and the embeddings) and none on biases and LayerNorm scales, as nanoGPT.

        Returns:
            ``shendu.optim.AdamW`` with two param groups: [decay, no_decay].
        """
        from shendu.optim import AdamW
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
        return AdamW(groups, lr=lr, betas=betas)

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None):
        """Extend ``idx`` by ``max_new_tokens`` sampled tokens, one at a time (no_grad).

        The context is cropped to the last ``block_size`` tokens; each next token is drawn
        from softmax(logits_last / temperature) restricted to the ``top_k`` largest logits,
        with ``generator`` (a ``shendu.Generator``; None: the device default). The model is
        put in eval mode for the call and its mode restored afterwards.

        Shape:
            idx (B, T) -> (B, T + max_new_tokens) int64
        """
        check_sampling("GPT", max_new_tokens, temperature, top_k)
        check_prompt("GPT.generate", idx, self.config.vocab_size)
        was_training = self.training
        self.eval()
        try:
            with autograd.no_grad():
                for _ in range(max_new_tokens):
                    context = idx[:, -self.config.block_size:]  # (B, <= block_size)
                    logits = self(context)[:, -1, :]  # (B, V)
                    idx = cat([idx, sample_next(logits, temperature, top_k, generator)], 1)
        finally:
            self.train(was_training)
        return idx

    def extra_repr(self):
        c = self.config
        return (f"block_size={c.block_size}, vocab_size={c.vocab_size}, n_layer={c.n_layer}, "
                f"n_head={c.n_head}, n_embd={c.n_embd}")
