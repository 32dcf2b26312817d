"""The `mcs-v2g` command: one entry point with subcommands, one module each."""

from __future__ import annotations

import argparse
import sys

from ev_emulator import TruckConfigError
from evse_emulator import ChargerConfigError
from stack.exi import ExiError
from stack.security.pki import PkiError

from ..sim.scenario import ScenarioError
from . import bench, ev, evse, exi, pki, sim
from .common import CliError, setup_logging

USER_ERRORS = (
    CliError,
    ExiError,
    ScenarioError,
    ChargerConfigError,
    TruckConfigError,
    PkiError,
    OSError,
    TimeoutError,
    LookupError,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mcs-v2g", description="ISO 15118-20 / MCS stack and emulators")
    sub = p.add_subparsers(dest="command", required=True)
    for command in (exi, sim, evse, ev, pki, bench):
        command.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "logs", False):
        setup_logging(args.verbose)
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        print(f"mcs-v2g: error: {exc or type(exc).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
