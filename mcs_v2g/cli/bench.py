"""`mcs-v2g bench exi|session|sim|soak|fuzz|can|faults|depot|pnc`: the benchmarks of a source checkout
(`tools/bench`, with Josev's figures measured in the same run). They are developer tools: the installed product does
not ship them."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from .common import CliError

CHECKOUT = Path(__file__).resolve().parents[2]


def run(args: argparse.Namespace) -> int:
    if not (CHECKOUT / "tools" / "bench" / "__main__.py").is_file():
        raise CliError("the benchmarks run from a source checkout: python -m tools.bench ... in the repository")
    return subprocess.call([sys.executable, "-m", "tools.bench", *args.arguments], cwd=CHECKOUT)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmarks of a source checkout (figures and ratios against Josev)")
    p.add_argument(
        "arguments",
        nargs=argparse.REMAINDER,
        help="exi | session | sim | soak | fuzz | can | faults | depot | pnc, and options",
    )
    p.set_defaults(func=run)
