"""``shendu doctor RUN_DIR`` and the ``--doctor`` flag of ``shendu train``.

``shendu train --doctor`` adds a ``shendu.train.Doctor`` to the run, prints its diagnosis at the
end and writes ``doctor.json`` (diagnosis, record, thresholds) into the run folder;
``--doctor repair`` lets it repair the run. ``shendu doctor RUN_DIR`` re-prints the diagnosis
from ``doctor.json`` and draws ``doctor.png``: the loss with the faults marked, per-layer
gradient norms over time (log scale) and the dead/saturated fraction of each activation layer.
"""
from __future__ import annotations

import json
import math
import os

DOCTOR_MODES = ("none", "on", "repair")


def add_doctor_parser(sub):
    parser = sub.add_parser("doctor", help="re-print a run's diagnosis and draw doctor.png "
                            "(the run must have been trained with --doctor)")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the folder `shendu train` wrote")
    parser.add_argument("--no-plot", action="store_true", help="only print the diagnosis")
    parser.set_defaults(device="cpu")
    return parser


def add_doctor(config, callbacks, log):
    """(callbacks with the Doctor ``--doctor`` asks for, the Doctor or None). A repairing
    doctor replaces TerminateOnNaN: it treats a non-finite loss instead of stopping."""
    from shendu.train import Doctor, TerminateOnNaN
    if config.doctor not in DOCTOR_MODES:
        raise ValueError(f"--doctor: expected one of {DOCTOR_MODES} (bare --doctor: on), got "
                         f"{config.doctor!r}")
    if config.doctor == "none":
        return callbacks, None
    doctor = Doctor(repair=config.doctor == "repair", log=log)
    if doctor.repair:
        callbacks = [cb for cb in callbacks if not isinstance(cb, TerminateOnNaN)]
    return callbacks + [doctor], doctor


def finish_doctor(doctor, out, log):
    """Print the diagnosis and write ``out/doctor.json``."""
    if doctor is None:
        return None
    report = doctor.to_dict()
    with open(os.path.join(out, "doctor.json"), "w") as f:
        json.dump(report, f, indent=1)
    log(str(doctor.diagnosis()))
    log(f"doctor: wrote {os.path.join(out, 'doctor.json')}; `shendu doctor {out}` draws it")
    return report


def load_report(run_dir):
    path = os.path.join(run_dir, "doctor.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist; train with `shendu train --doctor "
                                f"--out {run_dir}` first")
    with open(path) as f:
        try:
            report = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err})") from None
    if not {"diagnosis", "record"} <= set(report):
        raise ValueError(f"{path} is not a doctor report (keys {sorted(report)})")
    return report


def run_doctor(args, log=print):
    """``shendu doctor RUN_DIR``: print the diagnosis, draw doctor.png; returns the report."""
    from shendu.train.diagnosis import Diagnosis
    report = load_report(args.run_dir)
    log(str(Diagnosis.from_dict(report["diagnosis"])))
    if not args.no_plot:
        path = os.path.join(args.run_dir, "doctor.png")
        if plot_report(report, path, log):
            log(f"wrote {path}")
    return report


def _smooth(values, width):
    out = []
    for i in range(len(values)):
        window = [v for v in values[max(0, i - width + 1):i + 1] if math.isfinite(v)]
        out.append(sum(window) / len(window) if window else math.nan)
    return out


def plot_report(report, path, log):
    """Three panels into ``path``; needs matplotlib (the 'plot' extra)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed (pip install 'shendu[plot]'); skipping doctor.png")
        return False
    rec, diagnosis = report["record"], report["diagnosis"]
    fig, (ax_loss, ax_grad, ax_act) = plt.subplots(1, 3, figsize=(13, 3.8))
    steps = list(range(len(rec["loss"])))
    ax_loss.plot(steps, rec["loss"], color="0.75", lw=0.6, label="step loss")
    ax_loss.plot(steps, _smooth(rec["loss"], 20), color="C0", label="mean of 20 steps")
    epochs = rec["epochs"]
    ends = [s - 1 for s in rec["epoch_steps"]]
    if epochs.get("val_loss"):
        ax_loss.plot(ends[:len(epochs["val_loss"])], epochs["val_loss"], "o-", color="C1",
                     label="validation (per epoch)")
    finite = [v for v in rec["loss"] if math.isfinite(v) and v > 0]
    if finite and max(finite) / min(finite) > 100:
        ax_loss.set_yscale("log")
    for i, f in enumerate(diagnosis["findings"]):
        if f["first_step"] is not None:
            ax_loss.axvline(f["first_step"], color=f"C{3 + i % 6}", ls="--", lw=1,
                            label=f"{f['code']} (step {f['first_step']})")
    for i, r in enumerate(diagnosis.get("repairs", [])):
        ax_loss.axvline(r["step"], color=f"C{2 + 7 * (i % 2)}", lw=1.5,
                        label=f"{r['code']} -> {r['remedy']} (step {r['step']})")
    ax_loss.set(xlabel="step", ylabel="loss", title="loss, faults marked")
    ax_loss.legend(fontsize=7)
    for name in rec["layers"]:
        norms = [v if math.isfinite(v) and v > 0 else math.nan for v in rec["grad_norm"][name]]
        ax_grad.plot(rec["grad_steps"], norms, label=name)
    ax_grad.set_yscale("log")
    ax_grad.set(xlabel="step", ylabel="||grad||", title="gradient norm per layer")
    ax_grad.legend(fontsize=7, ncol=2 if len(rec["layers"]) > 6 else 1)
    names = [n for n, e in rec["activations"].items() if e["fraction"]]
    values = [rec["activations"][n]["fraction"][-1] for n in names]
    colors = ["C3" if rec["activations"][n]["kind"] == "relu" else "C4" for n in names]
    ax_act.bar(range(len(names)), values, color=colors)
    for i, v in enumerate(values):  # a 0% bar is invisible without its number
        ax_act.text(i, v + 0.02, f"{v:.0%}", ha="center", fontsize=7)
    ax_act.set_xticks(range(len(names)), names, rotation=45 if len(names) > 6 else 0,
                      fontsize=7)
    thresholds = report.get("thresholds", {})
    ax_act.axhline(thresholds.get("dead_fraction", 0.5), color="k", ls=":", lw=1,
                   label="threshold")
    ax_act.set_ylim(0, 1)
    ax_act.set(xlabel="activation layer", ylabel="fraction",
               title="dead (red, ReLU) / saturated (purple)")
    ax_act.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return True
