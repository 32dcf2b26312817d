"""`python -m tools.bench fuzz`: the release fuzz run (>= 10^6 inputs per target) and its table.

Every target of tools/fuzz/targets.py, or those named, each in its own worker process, `--jobs` at a time.
Crash files, the grown corpora and the workers' logs go to `--out` (a later run goes on from its corpora).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tools.fuzz import runner
from tools.fuzz.corpus import REPO
from tools.fuzz.targets import TARGETS

DEFAULT_OUT = REPO / "build" / "fuzz"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=int, default=1_000_000, help="inputs per target (default 10^6)")
    p.add_argument("--target", action="append", choices=list(TARGETS), help="only this target (repeatable)")
    p.add_argument("--jobs", type=int, default=1, help="targets fuzzed at the same time (one process each)")
    p.add_argument(
        "--engine",
        choices=("auto", "atheris", "hypothesis"),
        default="auto",
        help="auto: atheris (coverage-guided) where it is installed, else hypothesis",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"run folder (default {DEFAULT_OUT})")
    p.add_argument("--report", action="store_true", help="print the table of the run in --out as it stands")
    p.add_argument("--json", action="store_true")


def main(args: argparse.Namespace) -> int:
    names = args.target or list(TARGETS)
    if args.report:
        rows = runner.collect(args.out, names)
    else:
        engine = runner.available_engine(args.engine)
        if args.engine == "auto" and engine != "atheris":
            print("fuzz: atheris is not installed: hypothesis engine, without coverage guidance")
        rows = runner.run(names, runs=args.frames, jobs=args.jobs, engine=engine, out=args.out, seed=args.seed)
    print(json.dumps(rows, indent=2) if args.json else runner.table(rows))
    print(f"crash files: {args.out / 'crashes'}")
    clean = all(r["violations"] == 0 for r in rows)
    return 0 if clean else 1
