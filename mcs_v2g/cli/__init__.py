"""The `mcs-v2g` command: one entry point with subcommands, one module each."""

from __future__ import annotations

import argparse
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from stack.config_file import ConfigError
from stack.exi import ExiError
from stack.security.pki import PkiError

from . import bench, can, capture, conformance, depot, ems, ev, evse, exi, pki, plant, sim
from .common import CliError, setup_logging

USER_ERRORS = (
    CliError,
    ExiError,
    ConfigError,  # the scenario's, the charger's and the truck's config errors
    PkiError,
    OSError,
    TimeoutError,
    LookupError,
)


def version() -> str:
    """The installed distribution's version, else (a source checkout run in place) its pyproject.toml's."""
    try:
        return metadata.version("mcs-v2g")
    except metadata.PackageNotFoundError:
        pass
    try:
        project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
        return f"{project['version']} (source)"
    except (OSError, ValueError, KeyError):
        return "unknown"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mcs-v2g", description="ISO 15118-20 / MCS stack and emulators")
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = p.add_subparsers(dest="command", required=True)
    for command in (exi, sim, depot, ems, evse, ev, plant, can, pki, bench, capture, conformance):
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
