"""N5.3: pre-trained then fine-tuned beats trained-from-scratch when labels are few.

Pre-train a character GPT on tiny Shakespeare by next-character prediction (``shendu.lm.
pretrain``, once, seed 0), then ``shendu.lm.finetune_demo``: the speaker task (which character
speaks a line) with a few labelled lines per speaker; the pre-trained body fine-tuned against
the same network from scratch, same labels, epochs and batch order, repeated over seeds.
Measured: test accuracy of each.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from shendu.lab.common import _quiet, pyplot, save_figure, seed_list
from shendu.lab.result import ClaimResult, compare, summarize

CLAIM_ID = "N5.3-pretraining-few-labels"


def run(quick=False, seed=0, seeds=None, out=None, progress=None):
    from shendu.lm import finetune_demo
    from shendu.lm.pretrain import LMConfig, pretrain
    progress = progress or _quiet()
    seeds = seed_list(seed, seeds, quick)
    size = dict(n_layer=1, n_head=2, n_embd=32, block_size=32, max_steps=20, eval_interval=10,
                eval_batches=2, warmup_steps=2) if quick else \
        dict(n_layer=4, n_head=4, n_embd=128, block_size=64, max_steps=1200, eval_interval=200)
    per_class, epochs = (6, 2) if quick else (48, 12)
    with tempfile.TemporaryDirectory() as tmp:
        summary = pretrain(LMConfig(model="gpt", out=str(Path(tmp) / "lm"), seed=0, **size),
                           log=lambda *a: None)
        result = finetune_demo(str(Path(tmp) / "lm" / "model.st"), train_per_class=per_class,
                               epochs=epochs, seed=seeds[0], repeats=len(seeds),
                               log=lambda *a: None)
    progress.update(len(seeds))
    verdict, reason = compare(result["finetuned"], result["scratch"], "pre-trained + fine-tuned",
                              "from scratch")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    keys = ("finetuned", "probe", "scratch")
    ax.bar(["fine-tuned", "linear probe", "from scratch"],
           [summarize(result[k])["mean"] for k in keys],
           yerr=[summarize(result[k])["std"] for k in keys], color=["C0", "C2", "C1"])
    ax.axhline(result["chance"], color="k", ls=":", label="chance")
    ax.set_ylabel("test accuracy"), ax.legend()
    ax.set_title(f"speaker task, {per_class} labelled lines per speaker")
    return ClaimResult(
        CLAIM_ID, "N5.3", "pre-trained then fine-tuned beats trained-from-scratch when labels "
        "are few",
        f"GPT {size['n_layer']} layers, width {size['n_embd']}, pre-trained on tiny Shakespeare "
        f"for up to {size['max_steps']} steps ({summary['steps']} run, best val loss "
        f"{summary['best_val_loss']:.3f}; once, seed 0); speaker task: {len(result['speakers'])}"
        f" speakers, {result['n_train']} training / {result['n_test']} test lines, {epochs} "
        "epochs (shendu.lm.finetune_demo); seeds vary the fine-tuning runs",
        {k: summarize(result[k]) for k in keys}, verdict, reason,
        save_figure(fig, out, CLAIM_ID), quick, seeds)
