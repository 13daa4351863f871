"""shendu.lab: verdict rules on constructed measurements, the claim registry against
CONCEPTS.md, quick mode of every claim, and the ``shendu lab`` CLI."""
import json
import re
from pathlib import Path

import pytest

from shendu.lab import CLAIMS, ClaimResult, check_each, combine, compare
from shendu.lab.stats import t_sf, welch_t_test

CONCEPTS = Path(__file__).resolve().parents[1] / ".." / "shared" / "CONCEPTS.md"
# every claim of CONCEPTS.md has its experiment now; an ID listed here would be one whose
# prerequisite is another issue
WAITING = set()


def test_welch_matches_known_values():
    # reference values from scipy.stats.ttest_ind(equal_var=False, alternative='greater')
    test = welch_t_test([1.0, 2.1, 2.9, 4.2], [0.5, 0.7, 1.9])
    assert test["t"] == pytest.approx(1.8880643298028688, rel=1e-12)
    assert test["df"] == pytest.approx(4.785052853166535, rel=1e-12)
    assert test["p_greater"] == pytest.approx(0.0601273993334959, rel=1e-9)
    assert t_sf(-1.3, 3.5) == pytest.approx(0.8637022920978149, rel=1e-9)
    assert t_sf(0.0, 7) == pytest.approx(0.5)


def test_compare_gives_each_verdict():
    assert compare([0.10, 0.11, 0.12], [0.50, 0.52, 0.49], "a", "b",
                   higher_is_better=False)[0] == "holds"
    assert compare([0.50, 0.52, 0.49], [0.10, 0.11, 0.12], "a", "b",
                   higher_is_better=False)[0] == "does not hold"
    assert compare([0.30, 0.50, 0.10], [0.31, 0.12, 0.45], "a", "b")[0] == "inconclusive"
    # significant but below the effect the claim needs
    assert compare([1.01, 1.011, 1.012], [1.0, 1.001, 1.002], "a", "b",
                   min_effect=0.5)[0] == "does not hold"
    assert compare([1.0], [0.0], "a", "b")[0] == "inconclusive"  # one seed: no spread


def test_check_each_and_combine_give_each_verdict():
    assert check_each([0.0, 1e-12], lambda v: v < 1e-9, "tiny")[0] == "holds"
    assert check_each([1.0, 2.0], lambda v: v < 1e-9, "tiny")[0] == "does not hold"
    assert check_each([0.0, 2.0], lambda v: v < 1e-9, "tiny")[0] == "inconclusive"
    h, n, i = ("holds", "x"), ("does not hold", "y"), ("inconclusive", "z")
    assert combine([h, h])[0] == "holds"
    assert combine([h, i])[0] == "inconclusive"
    assert combine([i, n])[0] == "does not hold"
    with pytest.raises(ValueError, match="verdict must be one of"):
        ClaimResult("N0-x", "N0", "s", "setup", {}, "probably", "because")


def test_remedied_applies_exactly_one_remedy():
    import shendu
    from shendu import optim
    from shendu.train.fault_zoo import remedied

    def build(case, remedy):
        fixed, clip = remedied(case, remedy)
        shendu.manual_seed(0)
        return (*fixed(), clip)

    kinds = lambda m: [type(x).__name__ for x in m]  # noqa: E731
    base, base_opt, clip = build("mlp_deep_sigmoid_default_init", "clip")
    assert clip == 1.0 and "BatchNorm1d" not in kinds(base)
    relu, relu_opt, clip = build("mlp_deep_sigmoid_default_init", "relu")
    assert clip is None and "Sigmoid" not in kinds(relu)
    assert kinds(relu).count("ReLU") == kinds(base).count("Sigmoid")
    assert type(relu_opt) is type(base_opt) and relu_opt.defaults == base_opt.defaults
    bn, bn_opt, _ = build("mlp_deep_sigmoid_default_init", "batch_norm")
    assert kinds(bn).count("BatchNorm1d") == kinds(base).count("Sigmoid")
    assert kinds(bn)[1:4] == ["Linear", "BatchNorm1d", "Sigmoid"] and kinds(bn)[-1] == "Linear"
    assert bn_opt.defaults == base_opt.defaults  # same SGD settings, now over the BN scales
    assert sum(len(g["params"]) for g in bn_opt.param_groups) == len(list(bn.parameters()))
    _, adam, _ = build("mlp_relu_high_lr", "adam")
    assert isinstance(adam, optim.Adam) and adam.defaults["lr"] == 1e-3
    small, _, _ = build("mlp_deep_tanh_small_init", "init")
    first = small[1].weight  # xavier_uniform_ with tanh's gain: std 5/3 sqrt(2 / (784 + 64))
    assert abs(first.std().item() / (5 / 3 * (2 / (784 + 64)) ** 0.5) - 1) < 0.05
    with pytest.raises(ValueError, match="no Sigmoid/Tanh"):
        remedied("mlp_relu_high_lr", "relu")[0]()
    with pytest.raises(ValueError, match="unknown remedy 'dropout'"):
        remedied("mlp_relu_high_lr", "dropout")
    with pytest.raises(ValueError, match="unknown case"):
        remedied("nope", "adam")
    with pytest.raises(ValueError, match="nn.Sequential"):
        remedied("rnn_high_lr", "batch_norm")[0]()


def test_train_steps_trains_on_attacked_batches():
    import shendu
    from shendu import nn
    from shendu.lab.common import train_steps
    seen = []

    def attack(model, x, y):
        seen.append(tuple(x.shape))
        return x * 0  # all-black inputs: the net can only learn the label frequencies
    shendu.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    x, y = shendu.rand(16, 1, 2, 2), shendu.randint(0, 2, (16,))
    train_steps(net, x, y, 3, lr=0.1, batch=8, attack=attack)
    assert seen == [(8, 1, 2, 2)] * 3


def _claim_concepts():
    """Concept IDs of the CONCEPTS.md entries that carry a **claim** line."""
    if not CONCEPTS.exists():
        pytest.skip(f"CONCEPTS.md not found at {CONCEPTS} (shared/ beside the clone)")
    concepts, current = [], None
    for line in CONCEPTS.read_text().splitlines():
        m = re.match(r"\s*- (N[\d.]+)\s", line)
        if m:
            current = m.group(1)
        if "**claim" in line and current and current not in concepts:
            concepts.append(current)
    return concepts


def test_every_claim_without_a_waiting_prerequisite_has_an_experiment():
    covered = {c.concept for c in CLAIMS.values()}
    concepts = _claim_concepts()
    assert len(concepts) >= 12, concepts
    missing = [c for c in concepts if c not in covered and c not in WAITING]
    assert not missing, f"claims of CONCEPTS.md without an experiment: {missing}"
    assert covered <= set(concepts), f"experiments for IDs with no claim: {covered - set(concepts)}"


@pytest.mark.parametrize("claim_id", list(CLAIMS))
def test_quick_mode_runs(claim_id, tmp_path):
    result = CLAIMS[claim_id].run(quick=True, out=tmp_path)
    assert result.claim_id == claim_id and result.quick
    assert result.verdict in ("holds", "does not hold", "inconclusive")
    assert result.measurement and all({"mean", "std", "values"} <= set(v)
                                      for v in result.measurement.values())
    assert Path(result.figure).stat().st_size > 1000
    assert result.reason


def test_cli_writes_report_results_and_figures(tmp_path, capsys):
    from shendu.cli import main
    out = tmp_path / "lab"
    assert main(["lab", "N2.1-relu-symmetry", "N2.3.2-three-3x3-vs-7x7", "--quick",
                 "--seeds", "2", "--out", str(out), "--no-progress"]) == 0
    report = (out / "report.md").read_text()
    assert "QUICK MODE" in report and "| N2.1-relu-symmetry | N2.1 |" in report
    data = json.loads((out / "results.json").read_text())
    assert [r["claim_id"] for r in data["results"]] == ["N2.1-relu-symmetry",
                                                         "N2.3.2-three-3x3-vs-7x7"]
    assert data["results"][0]["seeds"] == [0, 1]
    assert (out / "N2.1-relu-symmetry.png").exists()
    assert "estimated" in capsys.readouterr().out


def test_cli_bad_claim_is_one_line_listing_valid_ids(tmp_path, capsys):
    from shendu.cli import main
    assert main(["lab", "N9-nope", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "N9-nope" in err and "N5.2-causal-attention" in err
    assert not (tmp_path / "x").exists()
    assert main(["lab", "--seeds", "0", "--out", str(tmp_path / "y")]) == 2
    assert not (tmp_path / "y").exists()
