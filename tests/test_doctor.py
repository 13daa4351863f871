"""The training doctor: each finding's number is measured, and crosses its threshold or not.

Small synthetic runs (400 points, 16 features, 4 linearly separable classes) and scripted
records; each test takes well under a second.
"""
import json
import math

import pytest

import shendu
from shendu import cli, nn, optim
from shendu.data import DataLoader, TensorDataset
from shendu.train import Diagnosis, Doctor, History, Trainer, diagnose
from shendu.train.diagnosis import THRESHOLDS, diagnose_record


def blobs(n=400, features=16, classes=4, seed=0, nan_at=None):
    w = shendu.randn(features, classes, generator=shendu.Generator(seed=99))  # one task
    x = shendu.randn(n, features, generator=shendu.Generator(seed=seed))
    y = (x @ w).argmax(1)
    if nan_at is not None:
        x.data[nan_at, 3] = math.nan
    return x, y


def fit(model, opt, epochs=3, doctor=None, data=None, val=True, shuffle=False, batch=20):
    x, y = data if data is not None else blobs()
    xv, yv = blobs(200, x.shape[1], seed=1)
    doctor = doctor or Doctor(sample_every=1, window=5)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=shuffle)
    trainer = Trainer(model, opt, nn.CrossEntropyLoss(), callbacks=[doctor])
    trainer.fit(loader, DataLoader(TensorDataset(xv, yv), batch_size=100) if val else None,
                epochs=epochs)
    return doctor, trainer


def mlp(widths, act=nn.ReLU):
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def record(**fields):
    """A minimal Doctor record with two weight layers; ``fields`` override."""
    rec = {"sample_every": 1, "window": 5, "steps_per_epoch": 10, "num_classes": 4,
           "loss": [1.0] * 40, "epochs": {}, "epoch_steps": [], "layers": ["0", "2"],
           "grad_steps": [0, 1, 2], "grad_norm": {"0": [1.0] * 3, "2": [1.0] * 3},
           "update_ratio": {"0": [1e-3] * 3, "2": [1e-3] * 3}, "activations": {},
           "nonfinite": None, "repairs": []}
    rec.update(fields)
    return rec


def test_healthy_run_has_no_findings_and_a_complete_record():
    shendu.manual_seed(0)
    model = mlp([16, 32, 4])
    doctor, _ = fit(model, optim.Adam(model.parameters(), lr=1e-2))
    diagnosis = doctor.diagnosis()
    assert diagnosis.codes == set() and diagnosis.healthy
    assert "healthy" in str(diagnosis)
    rec = doctor.record
    assert len(rec["loss"]) == 60 and rec["epoch_steps"] == [20, 40, 60]
    assert rec["layers"] == ["0", "2"] and len(rec["grad_norm"]["0"]) == 60
    assert rec["num_classes"] == 4 and set(rec["epochs"]) >= {"loss", "val_accuracy"}
    json.dumps(doctor.to_dict())  # the record is plain data


def test_gradient_norm_and_update_ratio_are_measured():
    shendu.manual_seed(0)
    model = mlp([16, 8, 4])
    w0 = model[0].weight.detach().clone()
    x, y = blobs(20)
    lr = 0.1
    doctor, _ = fit(model, optim.SGD(model.parameters(), lr=lr), epochs=1, data=(x, y),
                    val=False)
    # recompute step 0 by hand from the same initial weights
    shendu.manual_seed(0)
    twin = mlp([16, 8, 4])
    nn.CrossEntropyLoss()(twin(x), y).backward()
    grad = twin[0].weight.grad
    norm = float((grad * grad).sum()) ** 0.5
    assert doctor.record["grad_norm"]["0"][0] == pytest.approx(norm, rel=1e-5)
    expected = lr * norm / float((w0 * w0).sum()) ** 0.5  # plain SGD: ||dw|| = lr ||g||
    assert doctor.record["update_ratio"]["0"][0] == pytest.approx(expected, rel=1e-4)


def test_sampling_every_k_steps():
    shendu.manual_seed(0)
    model = mlp([16, 8, 4])
    doctor, _ = fit(model, optim.SGD(model.parameters(), lr=0.1), epochs=1,
                    doctor=Doctor(sample_every=4), val=False)
    assert doctor.record["grad_steps"] == [0, 4, 8, 12, 16]


@pytest.mark.parametrize("dead_units, flagged", [(3, False), (4, True)])
def test_dead_relu_fraction_counts_units_that_never_fire(dead_units, flagged):
    shendu.manual_seed(0)
    model = mlp([16, 6, 4])
    with shendu.no_grad():
        model[0].bias.data[:dead_units] = -1000.0  # these units can never be positive
    doctor, _ = fit(model, optim.SGD(model.parameters(), lr=1e-3), epochs=1, val=False)
    fractions = doctor.record["activations"]["1"]["fraction"]
    assert fractions[-1] == pytest.approx(dead_units / 6)
    assert ("dead_relu" in doctor.diagnosis().codes) == flagged  # threshold: > 0.5
    if flagged:
        finding = next(f for f in doctor.diagnosis().findings if f.code == "dead_relu")
        assert finding.evidence["dead_fraction[1]"] == pytest.approx(4 / 6)
        assert finding.where == "1" and finding.remedies[0].concept == "N3.2.4"


@pytest.mark.parametrize("scale, flagged", [(0.1, False), (30.0, True)])
def test_saturated_fraction_is_the_share_of_outputs_in_the_tails(scale, flagged):
    shendu.manual_seed(0)
    model = mlp([16, 32, 4], nn.Tanh)
    with shendu.no_grad():
        model[0].weight.data[...] *= scale
    x, y = blobs()
    with shendu.no_grad():
        expected = float((model[1](model[0](x[:20])).abs() >= 0.995).float().mean())
    doctor, _ = fit(model, optim.SGD(model.parameters(), lr=1e-4), epochs=1, data=(x, y),
                    val=False)
    assert doctor.record["activations"]["1"]["fraction"][0] == pytest.approx(expected)
    assert ("saturated_activations" in doctor.diagnosis().codes) == flagged


def test_deep_sigmoid_with_small_init_has_vanishing_gradients():
    shendu.manual_seed(0)
    model = mlp([16] + [32] * 8 + [4], nn.Sigmoid)
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
    doctor, _ = fit(model, optim.SGD(model.parameters(), lr=0.1), epochs=2)
    finding = next(f for f in doctor.diagnosis().findings if f.code == "vanishing_gradients")
    ratio = finding.evidence["grad_first_over_last"]
    rec = doctor.record
    first, last = rec["grad_norm"]["0"], rec["grad_norm"][rec["layers"][-1]]
    assert ratio == pytest.approx(sorted(a / b for a, b in zip(first, last))[len(first) // 2],
                                  rel=0.5)
    assert ratio < THRESHOLDS["vanishing_ratio"] and finding.remedies[0].concept == "N3.2.2"


@pytest.mark.parametrize("first, flagged", [(1e-4, True), (1e-2, False)])
def test_vanishing_threshold_on_the_first_over_last_ratio(first, flagged):
    rec = record(grad_norm={"0": [first] * 3, "2": [1.0] * 3})
    assert ("vanishing_gradients" in diagnose_record(rec).codes) == flagged


@pytest.mark.parametrize("update, flagged", [(0.2, True), (0.05, False)])
def test_exploding_threshold_on_the_update_ratio(update, flagged):
    rec = record(update_ratio={"0": [1e-3, update, 1e-3], "2": [1e-3] * 3})
    diagnosis = diagnose_record(rec)
    assert ("exploding_gradients" in diagnosis.codes) == flagged
    if flagged:
        assert diagnosis.findings[0].evidence["update_over_weight"] == update


def test_huge_learning_rate_explodes_or_goes_nonfinite():
    shendu.manual_seed(0)
    model = mlp([16, 64, 64, 4])
    doctor, _ = fit(model, optim.SGD(model.parameters(), lr=50.0), epochs=1)
    assert "exploding_gradients" in doctor.diagnosis().codes


def test_nan_input_is_found_at_its_step_and_named_input():
    shendu.manual_seed(0)
    model = mlp([16, 8, 4])
    data = blobs(nan_at=130)  # batch 6 of 20 samples
    doctor, _ = fit(model, optim.SGD(model.parameters(), lr=0.1), epochs=1, data=data)
    finding = doctor.diagnosis().findings[0]
    assert (finding.code, finding.where, finding.first_step) == ("nonfinite", "input", 6)
    assert finding.remedies[0].name == "clean_inputs"


@pytest.mark.parametrize("tail, flagged", [([0.5] * 10 + [2.5, 0.5] * 10, True),
                                           ([0.5] * 30, False)])
def test_loss_oscillation_needs_a_drop_then_jumps_above_the_start(tail, flagged):
    rec = record(loss=[2.0] * 4 + [1.0] * 16 + tail)
    assert ("loss_oscillation" in diagnose_record(rec).codes) == flagged


def test_flat_loss_is_not_oscillation_but_slow_convergence():
    flat = record(loss=[2.3, 2.31] * 20)
    assert diagnose_record(flat).codes == {"slow_convergence"}
    finding = diagnose_record(flat).findings[0]
    assert finding.evidence["relative_drop"] < finding.evidence["below"]
    falling = record(loss=[2.3 - 0.04 * i for i in range(40)])
    assert diagnose_record(falling).codes == set()


def epochs(train_acc, val_acc, losses):
    return {"loss": losses, "val_loss": losses, "accuracy": train_acc, "val_accuracy": val_acc}


def test_table2_underfitting_tells_not_converged_from_converged_too_low():
    still_falling = Diagnosis(diagnose(History(epochs([.2, .3], [.2, .28], [2.0, 1.8])),
                                       num_classes=4).findings)
    assert still_falling.codes == {"underfitting"}
    assert still_falling.findings[0].evidence["state"] == "not converged"
    assert still_falling.findings[0].remedies[0].name == "raise_lr"
    flat = diagnose(History(epochs([.3, .3], [.28, .28], [1.2, 1.19])), num_classes=4)
    assert flat.findings[0].evidence["state"] == "converged too low"
    assert flat.findings[0].remedies[0].name == "bigger_model"
    # a loss that never left the chance loss ln 4 = 1.386 has not converged, however flat
    stuck = diagnose(History(epochs([.25, .25], [.25, .25], [1.386, 1.386])), num_classes=4)
    assert stuck.findings[0].evidence["state"] == "not converged"
    # high = 0.5 * (1 - 1/4) = 0.375: an error of 0.3 is not high
    assert diagnose(History(epochs([.7, .7], [.7, .7], [1, .9])), num_classes=4).codes == set()


def test_table2_overfitting_is_low_train_error_high_val_error(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,accuracy,loss,val_accuracy,val_loss\n0,0.9,0.3,0.8,0.6\n"
                    "1,0.99,0.05,0.8,0.9\n")
    diagnosis = diagnose(str(path))
    assert diagnosis.codes == {"overfitting"}
    ev = diagnosis.findings[0].evidence
    assert ev["gap"] == pytest.approx(0.19) and ev["gap_above"] == THRESHOLDS["gap"]
    assert {r.concept for r in diagnosis.findings[0].remedies} >= {"N3.2.5", "N3.2.6"}
    path.write_text("epoch,accuracy,loss,val_accuracy,val_loss\n0,0.95,0.2,0.9,0.3\n")
    assert diagnose(path).codes == set()  # a gap of 0.05 is under 0.1


def test_diagnosis_round_trips_through_json():
    rec = record(loss=[2.3, 2.31] * 20, grad_norm={"0": [1e-5] * 3, "2": [1.0] * 3})
    diagnosis = diagnose_record(rec)
    again = Diagnosis.from_dict(json.loads(json.dumps(diagnosis.to_dict())))
    assert again.codes == diagnosis.codes == {"vanishing_gradients"}
    assert str(again) == str(diagnosis) and "(N3.2.2)" in str(again)


def test_unknown_threshold_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown threshold"):
        Doctor(thresholds={"dead": 0.4})


def test_repair_cleans_nan_inputs_and_reports_before_and_after():
    shendu.manual_seed(0)
    model = mlp([16, 16, 4])
    logs = []
    doctor = Doctor(sample_every=1, repair=True, log=logs.append)
    doctor, trainer = fit(model, optim.SGD(model.parameters(), lr=0.1), epochs=3,
                          data=blobs(nan_at=130), doctor=doctor)
    repair = doctor.record["repairs"][0]
    assert (repair["code"], repair["remedy"], repair["step"]) == ("nonfinite", "clean_inputs", 7)
    assert math.isnan(repair["before"]) and repair["after"] > 0.5
    assert any("rolled back" in line for line in logs)
    assert "repair at epoch 0" in str(doctor.diagnosis())
    assert "nonfinite" not in doctor.diagnosis().codes


def test_repair_reinitialises_dead_relus():
    shendu.manual_seed(0)
    model = mlp([16, 16, 4])
    with shendu.no_grad():
        model[0].bias.data[...] = -20.0
    doctor, _ = fit(model, optim.SGD(model.parameters(), lr=0.1), epochs=3,
                    doctor=Doctor(sample_every=1, window=5, repair=True, log=lambda *a: None))
    repair = doctor.record["repairs"][0]
    assert (repair["code"], repair["remedy"]) == ("dead_relu", "reinit")
    assert "mean bias -20" in repair["change"] and repair["after"] > repair["before"] + 0.2
    assert float(model[0].bias.data.mean()) > -1


def test_repair_swaps_sigmoid_for_relu_on_vanishing_gradients():
    shendu.manual_seed(0)
    model = mlp([16] + [32] * 8 + [4], nn.Sigmoid)
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
    doctor, _ = fit(model, optim.SGD(model.parameters(), lr=0.1), epochs=3,
                    doctor=Doctor(sample_every=1, repair=True, log=lambda *a: None))
    assert doctor.record["repairs"][0]["remedy"] == "relu"
    assert not any(isinstance(m, nn.Sigmoid) for m in model.modules())
    assert all(e["kind"] == "relu" for e in doctor.record["activations"].values())


def test_cli_train_doctor_writes_report_and_doctor_command_draws_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--subset", "--model", "mlp", "--optimizer", "sgd", "--lr", "1e-6",
                     "--epochs", "3", "--limit-train", "1024", "--limit-test", "100",
                     "--out", str(out), "--doctor"]) == 0
    printed = capsys.readouterr().out
    assert "doctor: slow_convergence" in printed
    report = json.loads((out / "doctor.json").read_text())
    assert "slow_convergence" in report["diagnosis"]["codes"]
    assert cli.main(["doctor", str(out)]) == 0
    assert "doctor: slow_convergence" in capsys.readouterr().out
    pytest.importorskip("matplotlib")
    assert (out / "doctor.png").stat().st_size > 1000


def test_cli_doctor_without_report_is_one_line_error(tmp_path, capsys):
    assert cli.main(["doctor", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "doctor.json does not exist" in err and "\n" not in err


def test_closure_optimizer_without_before_step_event_still_records_the_loss():
    shendu.manual_seed(0)
    model = mlp([16, 4])
    doctor, _ = fit(model, optim.Newton(model.parameters(), damping=1.0), epochs=1,
                    data=blobs(40), val=False)
    assert len(doctor.record["loss"]) == 2 and doctor.record["grad_steps"] == []
    assert "nonfinite" not in doctor.diagnosis().codes
