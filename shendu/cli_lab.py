"""``shendu lab``: run the claims of the notes and write a report.

    shendu lab [CLAIM_ID ...] [--quick] [--seeds N] [--seed S] [--out DIR]

Writes DIR/report.md (claim, concept, measurement, verdict, figure), DIR/results.json and one
PNG per claim. Concept: the **claim** lines of CONCEPTS.md.
"""
from __future__ import annotations

import shlex
import sys


def add_lab_parser(sub):
    """Register ``lab`` on the main parser's subparsers."""
    lab = sub.add_parser("lab", help="reproduce the notes' claims by measurement "
                         "(report.md, results.json, figures)")
    lab.add_argument("claims", nargs="*", metavar="CLAIM_ID",
                     help="claims to run (default: all); e.g. N3.2.2-relu-vs-sigmoid")
    lab.add_argument("--quick", action="store_true",
                     help="seconds per claim on small data: checks the machinery only")
    lab.add_argument("--seeds", type=int, default=None, help="seeds per comparison "
                     "(default 3, quick 1)")
    lab.add_argument("--seed", type=int, default=0, help="first seed")
    lab.add_argument("--out", default="lab", help="output folder (default: lab)")
    lab.add_argument("--no-progress", dest="progress", action="store_false")
    lab.add_argument("--device", default="cpu", choices=("cpu",), help="the lab runs on the CPU")


def run_lab(args, log=print):
    from shendu.lab import CLAIMS
    from shendu.lab.report import run_claims, write_report
    unknown = [c for c in args.claims if c not in CLAIMS]
    if unknown:
        raise ValueError(f"unknown claim ID(s) {', '.join(unknown)}; valid: "
                         f"{', '.join(CLAIMS)}")
    if args.seeds is not None and args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    claims = [CLAIMS[c] for c in (args.claims or CLAIMS)]
    results = run_claims(claims, args.out, quick=args.quick, seeds=args.seeds, seed=args.seed,
                         log=log, show_progress=args.progress)
    command = "shendu " + " ".join(shlex.quote(a) for a in sys.argv[1:]) \
        if sys.argv[1:2] == ["lab"] else _command(args)
    path = write_report(results, args.out, command, quick=args.quick)
    log(f"report: {path}")
    return results


def _command(args):
    parts = ["shendu", "lab", *args.claims]
    parts += ["--quick"] if args.quick else []
    parts += [f"--seeds {args.seeds}"] if args.seeds is not None else []
    return " ".join(parts + [f"--out {args.out}"])
