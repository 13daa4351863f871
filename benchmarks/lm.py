"""Language-model training steps, shendu vs PyTorch CPU in one process.

Two models, each with a torch twin written here from torch.nn modules and loaded with the same
weights, fed the same batch:
- char-LSTM: ``shendu.models.CharRNN`` (embedding 64, hidden 256, 1 layer, vocab 65), sequence
  64, batch 32, Adam, gradient clipping at norm 1.0;
- tiny GPT: ``shendu.models.GPT`` (n_layer 4, n_head 4, n_embd 128, block 64, vocab 65),
  batch 32, AdamW with nanoGPT's decay / no-decay groups.
One step is zero_grad, forward, cross-entropy, backward, (clip), optimizer step. Steps
alternate shendu/torch (the order flips every repeat); the script prints the median ms per
step and the ratio shendu/torch (target <= 1.5 each).

Run: ``python benchmarks/lm.py [--repeats N] [--threads 2] [--only lstm|gpt] [--profile]
[--device cpu|cuda]`` (cuda: both frameworks on the GPU; each step ends with ``loss.item()``,
which waits for the GPU).
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time

# torch's OpenMP workers spin after each op by default and then starve NumPy's OpenBLAS
# threads (and vice versa) when the two alternate in one process: measured 3 s per char-LSTM
# step for both; passive waiting gives 60 / 43 ms. Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as tnn  # noqa: E402
import torch.nn.functional as TF  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import shendu  # noqa: E402
from _common import add_device_argument, check_device  # noqa: E402
from shendu.models import GPT, CharRNN, GPTConfig  # noqa: E402

VOCAB, SEQ, BATCH = 65, 64, 32
GPT_CONFIG = GPTConfig(block_size=SEQ, vocab_size=VOCAB, n_layer=4, n_head=4, n_embd=128)


class TorchCharLSTM(tnn.Module):
    def __init__(self):
        super().__init__()
        self.embed = tnn.Embedding(VOCAB, 64)
        self.rnn = tnn.LSTM(64, 256, batch_first=True)
        self.head = tnn.Linear(256, VOCAB)

    def forward(self, idx):
        return self.head(self.rnn(self.embed(idx))[0])


class TorchBlock(tnn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1, self.ln_2 = tnn.LayerNorm(c.n_embd), tnn.LayerNorm(c.n_embd)
        self.attn = tnn.Module()
        self.attn.c_attn = tnn.Linear(c.n_embd, 3 * c.n_embd)
        self.attn.c_proj = tnn.Linear(c.n_embd, c.n_embd)
        self.mlp = tnn.Module()
        self.mlp.c_fc = tnn.Linear(c.n_embd, 4 * c.n_embd)
        self.mlp.c_proj = tnn.Linear(4 * c.n_embd, c.n_embd)
        self.n_head = c.n_head

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.attn.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in (q, k, v))
        y = TF.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn.c_proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp.c_proj(TF.gelu(self.mlp.c_fc(self.ln_2(x))))


class TorchGPT(tnn.Module):
    def __init__(self, c):
        super().__init__()
        self.transformer = tnn.ModuleDict(dict(
            wte=tnn.Embedding(c.vocab_size, c.n_embd), wpe=tnn.Embedding(c.block_size, c.n_embd),
            h=tnn.ModuleList([TorchBlock(c) for _ in range(c.n_layer)]),
            ln_f=tnn.LayerNorm(c.n_embd)))
        self.lm_head = tnn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight

    def forward(self, idx):
        positions = torch.arange(idx.shape[1], device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(positions)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


def _torch_groups(model):
    params = list(model.parameters())
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def steppers(which, rng, device="cpu"):
    """(shendu step, torch step), each returning the loss, from the same weights and batch."""
    if which == "lstm":
        ours, theirs = CharRNN(VOCAB, 64, 256), TorchCharLSTM()
        opt, topt = shendu.optim.Adam(ours.parameters()), torch.optim.Adam(theirs.parameters())
        clip = 1.0
    else:
        ours, theirs = GPT(GPT_CONFIG), TorchGPT(GPT_CONFIG)
        opt = ours.configure_optimizers(0.1, 1e-3, betas=(0.9, 0.99))
        topt = torch.optim.AdamW(_torch_groups(theirs), lr=1e-3, betas=(0.9, 0.99))
        clip = None
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                            for k, v in ours.state_dict().items()})
    ours.to(device), theirs.to(device)  # in place: the optimizers keep the same parameters
    ids = rng.integers(0, VOCAB, size=(BATCH, SEQ + 1))
    inputs, targets = ids[:, :-1], ids[:, 1:].reshape(-1)
    x, y = shendu.from_numpy(inputs).to(device), shendu.from_numpy(targets).to(device)
    tx, ty = torch.from_numpy(inputs).to(device), torch.from_numpy(targets).to(device)

    def step_ours():
        opt.zero_grad()
        loss = shendu.nn.functional.cross_entropy(ours(x).reshape(-1, VOCAB), y)
        loss.backward()
        if clip:
            shendu.nn.utils.clip_grad_norm_(ours.parameters(), clip)
        opt.step()
        return loss.item()

    def step_torch():
        topt.zero_grad()
        loss = TF.cross_entropy(theirs(tx).reshape(-1, VOCAB), ty)
        loss.backward()
        if clip:
            tnn.utils.clip_grad_norm_(theirs.parameters(), clip)
        topt.step()
        return loss.item()

    return step_ours, step_torch


def bench(which, repeats, profile, device="cpu"):
    step_ours, step_torch = steppers(which, np.random.default_rng(0), device)
    loss, tloss = step_ours(), step_torch()  # warm-up; same weights and batch: same loss
    print(f"{which}: first-step loss shendu {loss:.6f}  torch {tloss:.6f}")
    if profile:
        prof = cProfile.Profile()
        prof.runcall(lambda: [step_ours() for _ in range(5)])
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    times = {"shendu": [], "torch": []}
    for k in range(repeats):
        pair = [("shendu", step_ours), ("torch", step_torch)]
        for name, step in pair if k % 2 == 0 else pair[::-1]:
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    ms = {name: 1000 * statistics.median(t) for name, t in times.items()}
    ratio = ms["shendu"] / ms["torch"]
    print(f"{which} step: shendu {ms['shendu']:.1f} ms  torch {ms['torch']:.1f} ms  ratio "
          f"{ratio:.2f} ({'meets' if ratio <= 1.5 else 'misses'} the 1.5 target)")
    return ratio


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=["lstm", "gpt"], default=None)
    parser.add_argument("--profile", action="store_true", help="cProfile 5 shendu steps first")
    add_device_argument(parser)
    args = parser.parse_args()
    check_device(args.device, __file__)
    torch.set_num_threads(args.threads)
    for which in ("lstm", "gpt"):
        if args.only in (None, which):
            bench(which, args.repeats, args.profile, args.device)


if __name__ == "__main__":
    main()
