"""The training doctor on the fault zoo (``shendu.train.fault_zoo``): detection, false alarms,
repair and overhead.

    python benchmarks/doctor.py            # all cases, a few minutes on 2 cores
    python benchmarks/doctor.py --quick    # one case of each fault and family

Each case trains once with ``Doctor()`` (detection: the injected fault's code is among the
codes; a false alarm: any code on a healthy run) and, when faulty, once more from the same seed
with ``Doctor(repair=True)``. A repair counts when the final validation accuracy rises by at
least 2 points, or the final validation loss falls by at least 20% while the accuracy drops by
less than 1 point (over-fitting cures act on the loss first). Overhead: the time spent inside
the doctor's callbacks and hooks over the rest of the run (measured in the same run), and the
wall-clock time per step with the doctor against the same runs without it (best of 3).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from shendu.train.fault_zoo import CASES, run_case  # noqa: E402

SAMPLE_EVERY = 5  # the zoo's runs are short (about 160 steps): sample twice as often


def repaired(before, after):
    gain = after.val_accuracy - before.val_accuracy
    if gain >= 0.02:
        return True
    loss_before = before.val_loss if math.isfinite(before.val_loss) else math.inf
    return after.val_loss <= 0.8 * loss_before and gain > -0.01


def overhead(names, sample_every, repeats=3):
    """(doctor step time / plain step time - 1) per case, best of ``repeats`` each."""
    result = {}
    for name in names:
        plain, doc = math.inf, math.inf
        for _ in range(repeats):
            a = run_case(name, doctor=False)
            b = run_case(name, sample_every=sample_every)
            plain, doc = min(plain, a.seconds / a.steps), min(doc, b.seconds / b.steps)
        result[name] = doc / plain - 1
    return result


def timed_doctor_share(name, sample_every=10):
    """Seconds inside the Doctor's callbacks and hooks / seconds of the run's steps, measured
    in one run (immune to the run-to-run noise of a shared machine)."""
    from shendu.train import Doctor
    spent = [0.0]

    def timed(fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - start
        return wrapper

    class TimedDoctor(Doctor):
        def __init__(self, **kw):
            super().__init__(**kw)
            for hook in ("on_train_batch_begin", "on_before_optimizer_step",
                         "on_train_batch_end", "on_epoch_end", "_input_hook", "_output_hook"):
                setattr(self, hook, timed(getattr(self, hook)))

        def _activation_hook(self, layer, kind):
            return timed(super()._activation_hook(layer, kind))

    import shendu.train as train
    saved, train.Doctor = train.Doctor, TimedDoctor  # run_case imports it from shendu.train
    try:
        result = run_case(name, sample_every=sample_every)
    finally:
        train.Doctor = saved
    return spent[0] / (result.seconds - spent[0])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    names = list(CASES)
    if args.quick:
        seen, names = set(), []
        for name, case in CASES.items():
            key = case.fault or f"healthy-{case.family}"
            if key not in seen:
                seen.add(key)
                names.append(name)
    start = time.perf_counter()
    rows, detected, alarms, fixed, faulty, healthy = [], 0, 0, 0, 0, 0
    print(f"{'case':32s} {'injected':22s} {'found':44s} {'val acc':>15s} {'val loss':>15s} "
          "verdict")
    for name in names:
        case = CASES[name]
        before = run_case(name, sample_every=SAMPLE_EVERY)
        found = ",".join(sorted(before.codes)) or "-"
        if not case.fault:
            healthy += 1
            alarms += bool(before.codes)
            verdict = "FALSE ALARM" if before.codes else "healthy, ok"
            print(f"{name:32s} {'(healthy)':22s} {found:44s} {before.val_accuracy:15.3f} "
                  f"{before.val_loss:15.3g} {verdict}", flush=True)
            continue
        faulty += 1
        detected += before.detected
        after = run_case(name, repair=True, sample_every=SAMPLE_EVERY)
        ok = repaired(before, after)
        fixed += ok
        verdict = ("detected" if before.detected else "MISSED") + \
            (", repaired" if ok else ", not repaired")
        acc = f"{before.val_accuracy:.3f}->{after.val_accuracy:.3f}"
        loss = f"{before.val_loss:.3g}->{after.val_loss:.3g}"
        print(f"{name:32s} {case.fault:22s} {found:44s} {acc:>15s} {loss:>15s} {verdict}",
              flush=True)
        for r in after.repairs:
            print(f"{'':34s}repair at epoch {r['epoch']}: {r['change']} [{r['code']}]")
        rows.append((name, before, after, ok))
    print(f"\n{len(names)} runs ({faulty} faulty, {healthy} healthy) in "
          f"{time.perf_counter() - start:.0f} s")
    print(f"detection rate: {detected}/{faulty} = {detected / max(faulty, 1):.0%}")
    print(f"false alarms on healthy runs: {alarms}/{healthy}")
    print(f"repair rate: {fixed}/{faulty} = {fixed / max(faulty, 1):.0%}")
    probes = ["mlp_relu", "cnn_relu", "lstm"] if not args.quick else ["mlp_relu", "cnn_relu"]
    for every in (10, SAMPLE_EVERY):
        shares = {k: timed_doctor_share(k, every) for k in probes}
        text = ", ".join(f"{k} {v:.1%}" for k, v in shares.items())
        print(f"doctor time / rest of the run (sample_every={every}): {text}")
    costs = overhead(probes, 10)
    text = ", ".join(f"{k} {v:+.1%}" for k, v in costs.items())
    print(f"wall-clock step time with / without the doctor - 1 (sample_every=10, best of 3; "
          f"noisy on a shared machine): {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
