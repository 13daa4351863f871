"""``shendu.lab``: the claims of the notes (CONCEPTS.md lines marked **claim**), each
reproduced by a measurement with a verdict computed from it.

``CLAIMS`` maps a claim ID (the CONCEPTS.md ID plus a slug) to a ``Claim``; ``claim.run(
quick=False, seed=0, seeds=None, out=None, progress=None)`` returns a ``ClaimResult`` and
writes ``out/<claim_id>.png``. Full mode uses 3 seeds per comparison; quick mode (tests, CI)
runs in seconds on small data and only checks the machinery: never quote a quick verdict.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from shendu.lab import (activations, causal, conv_cost, init_variance, pretraining, recurrent,
                        regularization, remedies, symmetry, tricks, understanding, vision)
from shendu.lab.result import VERDICTS, ClaimResult, check_each, combine, compare, summarize


@dataclass(frozen=True)
class Claim:
    """One registered experiment. ``estimate_s``: rough (quick, full) run time in seconds
    per seed, read off the full runs of 2026-12-02 on a 2-core machine at load ~2-4 (the last
    six from the run of docs/lab/, with one BLAS thread; the quick ones are guesses); a loaded
    machine is several times slower. Claims sharing a cached
    training (dead/sparse, dropout/L2/L1) are cheaper after the first."""

    claim_id: str
    run: Callable
    estimate_s: tuple

    @property
    def concept(self) -> str:
        return self.claim_id.split("-", 1)[0]


CLAIMS = {c.claim_id: c for c in [
    Claim(symmetry.CLAIM_ID, symmetry.run, (1, 1)),
    Claim(conv_cost.FORMULA_ID, conv_cost.run_formula, (1, 1)),
    Claim(conv_cost.BOTTLENECK_ID, conv_cost.run_bottleneck, (1, 1)),
    Claim(conv_cost.STACK_ID, conv_cost.run_stack, (1, 1)),
    Claim(activations.CONVERGE_ID, activations.run_converge, (3, 3)),
    Claim(activations.VANISH_ID, activations.run_vanishing, (1, 1)),
    Claim(activations.SPARSE_ID, activations.run_sparse, (3, 3)),
    Claim(activations.DEAD_ID, activations.run_dead, (2, 1)),
    Claim(activations.DERIVATIVE_ID, activations.run_derivatives, (1, 1)),
    Claim(init_variance.CLAIM_ID, init_variance.run, (1, 1)),
    Claim(regularization.DROPOUT_ID, regularization.run_dropout, (3, 15)),
    Claim(regularization.L2_ID, regularization.run_l2, (2, 3)),
    Claim(regularization.L1_ID, regularization.run_l1, (2, 4)),
    Claim(tricks.BN_ID, tricks.run_batchnorm, (4, 3)),
    Claim(tricks.CLIP_ID, tricks.run_clipping, (3, 2)),
    Claim(recurrent.CLAIM_ID, recurrent.run, (2, 20)),
    Claim(causal.CLAIM_ID, causal.run, (1, 1)),
    Claim(pretraining.CLAIM_ID, pretraining.run, (8, 200)),
    Claim(remedies.CLAIM_ID, remedies.run, (6, 11)),
    Claim(understanding.ADVERSARIAL_ID, understanding.run_adversarial, (7, 15)),
    # reuses the adversarial claim's standard CNNs (~15 s per seed on its own)
    Claim(understanding.SALIENCY_ID, understanding.run_saliency, (1, 1)),
    Claim(vision.FAST_ID, vision.run_fast_vs_rcnn, (10, 83)),
    Claim(vision.UPSAMPLING_ID, vision.run_upsampling, (5, 49)),
]}

__all__ = ["CLAIMS", "Claim", "ClaimResult", "VERDICTS", "check_each", "combine", "compare",
           "summarize"]
