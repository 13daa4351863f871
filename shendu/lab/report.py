"""Run claims and write ``report.md`` (one table row per claim), ``results.json`` and the
figures into one folder."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from shendu.lab.common import Progress, seed_list


def run_claims(claims, out, quick=False, seeds=None, seed=0, log=print, show_progress=True):
    """Run each ``Claim`` in turn, writing its figure into ``out``; returns the results."""
    n = len(seed_list(seed, seeds, quick))
    total = sum(c.estimate_s[0 if quick else 1] for c in claims) * n
    log(f"shendu lab: {len(claims)} claim(s), {n} seed(s){' (quick)' if quick else ''}; "
        f"estimated ~{_duration(total)} (rough: the load on the machine changes it)")
    results = []
    for claim in claims:
        # one tick per seed; deterministic sweeps tick per width and the bar is completed below
        progress = Progress(claim.claim_id, n, enabled=show_progress)
        start = time.perf_counter()
        result = claim.run(quick=quick, seed=seed, seeds=seeds, out=out, progress=progress)
        result.seconds = time.perf_counter() - start
        if progress.done < progress.total:
            progress.update(progress.total - progress.done)
        log(f"  {result.claim_id}: {result.verdict}{' (quick)' if quick else ''} "
            f"[{result.seconds:.1f}s]")
        results.append(result)
    return results


def _duration(seconds):
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def write_report(results, out, command, quick=False):
    """``out/report.md`` and ``out/results.json``; returns the report's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    load = "n/a"
    if hasattr(os, "getloadavg"):
        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [f"# shendu lab report{' (QUICK MODE: machinery check, do not quote)' if quick else ''}",
             "", f"Command: `{command}`  ", f"Date: {when}; load average at the end: {load}", "",
             "| claim | concept | measurement (mean ± std over seeds; over widths for the "
             "deterministic sweeps) | verdict | figure |",
             "|---|---|---|---|---|"]
    for r in results:
        verdict = f"{r.verdict} (quick)" if quick else r.verdict
        fig = f"[{Path(r.figure).name}]({Path(r.figure).name})" if r.figure else "-"
        cell = r.headline().replace("|", "\\|")  # a |x| in a quantity's name ends a cell
        lines.append(f"| {r.claim_id} | {r.concept} | {cell} | {verdict} | {fig} |")
    lines += ["", "## Details", ""]
    for r in results:
        lines += [f"### {r.claim_id}", "", f"- claim: {r.statement}", f"- setup: {r.setup}",
                  f"- seeds: {r.seeds or 'deterministic'}; time {r.seconds:.1f} s",
                  f"- verdict: **{r.verdict}**{' (quick)' if quick else ''} - {r.reason}", ""]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps(
        {"command": command, "date": when, "load_average": load, "quick": quick,
         "results": [r.to_dict() for r in results]}, indent=2) + "\n")
    return out / "report.md"
