"""N5.2: in masked (causal) attention a position never attends to later positions, so the
output at position t cannot depend on inputs after t. Measured on a whole GPT (embeddings,
causal self-attention, MLPs, layer norms): change every token after t and compare the logits
at positions <= t. The control changes the token AT t, which must move the logits at t.
"""
from __future__ import annotations

import shendu
from shendu.lab.common import _quiet, pyplot, save_figure, seed_list
from shendu.lab.result import ClaimResult, check_each, combine, summarize

CLAIM_ID = "N5.2-causal-attention"
TOLERANCE = 1e-10


def _wrap(ids, vocab):
    """ids in [0, 2 * vocab) back into [0, vocab): a different token wherever the shift was
    between 1 and vocab - 1."""
    return shendu.where(ids >= vocab, ids - vocab, ids)


def _changes(seed, block, vocab):
    """Max |logit change| at positions <= t after changing the inputs after t, for every t;
    and the change at t when the token at t itself changes (the control)."""
    from shendu.models.gpt import GPT, GPTConfig
    shendu.manual_seed(seed)
    model = GPT(GPTConfig(block_size=block, vocab_size=vocab, n_layer=2, n_head=2, n_embd=16,
                          dropout=0.0)).double().eval()
    gen = shendu.Generator(seed=seed)
    idx = shendu.randint(0, vocab, (4, block), generator=gen)
    future, control = [], []
    with shendu.no_grad():
        base = model(idx)
        for t in range(block - 1):
            changed = idx.clone()
            shift = 1 + shendu.randint(0, vocab - 1, (4, block - t - 1), generator=gen)
            changed[:, t + 1:] = _wrap(idx[:, t + 1:] + shift, vocab)
            future.append((model(changed)[:, :t + 1] - base[:, :t + 1]).abs().max().item())
            at_t = idx.clone()
            at_t[:, t] = _wrap(idx[:, t] + 1, vocab)
            control.append((model(at_t)[:, t] - base[:, t]).abs().max().item())
    return future, control


def run(quick=False, seed=0, seeds=None, out=None, progress=None):
    progress = progress or _quiet()
    seeds = seed_list(seed, seeds, quick)
    block, vocab = (8, 11) if quick else (32, 37)
    worst_future, worst_control, curves = [], [], []
    for s in seeds:
        future, control = _changes(s, block, vocab)
        worst_future.append(max(future)), worst_control.append(min(control))
        curves.append((future, control))
        progress.update()
    verdict, reason = combine([
        check_each(worst_future, lambda v: v < TOLERANCE,
                   f"max |logit change at positions <= t| < {TOLERANCE:g} for every t"),
        check_each(worst_control, lambda v: v > 1e-6,
                   "control: changing the token at t moves the logits at t (> 1e-6)")])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    future, control = curves[0]
    ax.semilogy(range(block - 1), [max(v, 1e-18) for v in future], "o-",
                label="change inputs after t: logits at <= t")
    ax.semilogy(range(block - 1), control, "s--", label="control: change input at t")
    ax.axhline(TOLERANCE, color="k", ls=":", label=f"tolerance {TOLERANCE:g}")
    ax.set_xlabel("position t"), ax.set_ylabel("max |logit change| (1e-18 = exactly 0)")
    ax.set_title(f"causal GPT (seed {seeds[0]}, float64)"), ax.legend(fontsize=8)
    return ClaimResult(
        CLAIM_ID, "N5.2", "an output at position t is unchanged by any change of inputs after t",
        f"shendu GPT (2 layers, 2 heads, width 16, block {block}, vocab {vocab}) in float64, "
        "random weights, 4 random sequences per seed; every t: all tokens after t replaced",
        {"max change at <= t": summarize(worst_future),
         "control: min change at t": summarize(worst_control)},
        verdict, reason, save_figure(fig, out, CLAIM_ID), quick, seeds)
