"""What one claim's experiment returns, and the two rules that turn measurements into a
verdict. A verdict is only ever produced here, from numbers; nothing writes one by hand.

Verdicts: 'holds', 'does not hold', 'inconclusive'.
- ``compare``: the claim says group A beats group B (e.g. ReLU reaches lower loss than
  sigmoid). One-sided Welch t-test over seeds at level ``alpha``; the effect must also exceed
  ``min_effect`` (a claim of "far fewer" or "faster" is not upheld by a negligible gain).
- ``check_each``: a mechanism check measured once per seed (e.g. the largest output change
  after rescaling is below a tolerance): holds if every seed passes, does not hold if none
  does, inconclusive if the seeds disagree.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from shendu.lab.stats import mean, std, welch_t_test

VERDICTS = ("holds", "does not hold", "inconclusive")


def summarize(values) -> dict:
    """{'values', 'mean', 'std'} of one measured quantity, one value per seed."""
    values = [float(v) for v in values]
    return {"values": values, "mean": mean(values), "std": std(values)}


@dataclass
class ClaimResult:
    """One claim's measured outcome.

    claim_id: CONCEPTS.md ID plus a slug (``N3.2.2-relu-vs-sigmoid``); concept: the ID alone.
    measurement: quantity name -> summarize(...) over seeds. verdict: one of VERDICTS,
    reason: the statistics behind it. figure: path of the PNG (None before it is written).
    quick: True when measured in quick mode (a machinery check; never quote its verdict).
    """

    claim_id: str
    concept: str
    statement: str
    setup: str
    measurement: dict
    verdict: str
    reason: str
    figure: str | None = None
    quick: bool = False
    seeds: list = field(default_factory=list)
    seconds: float = 0.0

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"ClaimResult {self.claim_id}: verdict must be one of {VERDICTS}, "
                             f"got {self.verdict!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def headline(self) -> str:
        """The measurement in one line: 'name mean ± std' for each quantity."""
        return "; ".join(f"{k} {_fmt(v['mean'])} ± {_fmt(v['std'])}"
                         for k, v in self.measurement.items())


def _fmt(x) -> str:
    return f"{x:.4g}"


def compare(a, b, name_a, name_b, higher_is_better=True, alpha=0.05, min_effect=0.0):
    """Verdict and reason for "a is better than b" from per-seed values.

    ``min_effect`` is in the measurement's units (the gain a claim needs to count).
    Returns (verdict, reason).
    """
    a, b = [float(v) for v in a], [float(v) for v in b]
    sign = 1.0 if higher_is_better else -1.0
    gain = sign * (mean(a) - mean(b))
    word = "higher" if higher_is_better else "lower"
    if len(a) < 2 or len(b) < 2:
        return "inconclusive", (f"{name_a} vs {name_b}: gain {gain:+.4g} ({word} is better), but "
                                f"with {min(len(a), len(b))} seed(s) there is no spread to "
                                "judge it against (needs >= 2 seeds)")
    signed_a, signed_b = [sign * v for v in a], [sign * v for v in b]
    test = welch_t_test(signed_a, signed_b)
    p_better, p_worse = test["p_greater"], welch_t_test(signed_b, signed_a)["p_greater"]
    spread = ((std(a) ** 2 + std(b) ** 2) / 2) ** 0.5
    d = f"{gain / spread:.3g}" if spread > 0 else "inf" if gain else "0"
    stat = (f"gain {gain:+.4g} ({word} is better), pooled seed spread {spread:.3g}, effect "
            f"size {d}, Welch t {test['t']:.3g} (df {test['df']:.3g}), one-sided p {p_better:.3g}")
    if p_better < alpha and gain > min_effect:
        return "holds", f"{name_a} beats {name_b}: {stat} < {alpha}"
    if p_worse < alpha:
        return "does not hold", f"{name_b} beats {name_a}: {stat}; reverse p {p_worse:.3g}"
    if p_better < alpha:
        return "does not hold", (f"{name_a} beats {name_b} but only by {gain:.4g} <= the "
                                 f"{min_effect:.4g} the claim needs: {stat}")
    return "inconclusive", f"no significant difference at {alpha}: {stat}"


def check_each(values, passes, what, unit="seed"):
    """Verdict for a per-seed mechanism check: ``passes(value)`` -> bool for each seed.

    ``what`` says what passing means (e.g. 'max |change| < 1e-5'); ``unit`` names what the
    values are per (a seed, or a width for deterministic sweeps). Returns (verdict, reason).
    """
    results = [bool(passes(float(v))) for v in values]
    shown = ", ".join(f"{float(v):.3g}" for v in values)
    if all(results):
        return "holds", f"all {len(results)} {unit}(s) pass {what} (values {shown})"
    if not any(results):
        return "does not hold", f"no seed passes {what} (values {shown})"
    return "inconclusive", (f"{sum(results)} of {len(results)} {unit}s pass {what} "
                            f"(values {shown})")


def combine(parts):
    """One verdict from several (verdict, reason) parts of one claim: holds only if every part
    holds, does not hold if any part does not, else inconclusive. Returns (verdict, reason)."""
    verdicts = [v for v, _ in parts]
    if all(v == "holds" for v in verdicts):
        verdict = "holds"
    elif any(v == "does not hold" for v in verdicts):
        verdict = "does not hold"
    else:
        verdict = "inconclusive"
    return verdict, " | ".join(f"[{v}] {r}" for v, r in parts)
