"""Fixtures for tests against real peers: Josev's EXI codec as an oracle, Josev's venv for its SECC and EVCC."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.prerequisites import require
from tools.peers.josev import JosevExi, PeerUnavailable

_unavailable: list[str] = []  # the reason, once a start has failed: later tests are told at once


def start_josev_exi(**options: object) -> JosevExi:
    """A started `JosevExi`; else the `java` or `josev` prerequisite (tests/prerequisites.py) says why not."""
    require("java", None if shutil.which("java") else "java is not on PATH (Josev's EXI codec runs in a JVM)")
    if _unavailable:
        require("josev", _unavailable[0])
    oracle = JosevExi(progress=lambda message: print(message, file=sys.stderr), **options)  # type: ignore[arg-type]
    try:
        oracle.start()
    except PeerUnavailable as exc:
        _unavailable.append(exc.reason)
        require("josev", exc.reason)
    return oracle


@pytest.fixture(scope="session")
def josev_exi() -> Iterator[JosevExi]:
    """Josev's codec (the jar's grammars and options) in a bridge process, for the whole session."""
    oracle = start_josev_exi()
    try:
        yield oracle
    finally:
        oracle.close()


@pytest.fixture(scope="session")
def josev() -> Path:
    """Josev's venv (built on first use); the `josev` prerequisite when it cannot be made here."""
    from tools.peers.josev import ensure_josev

    try:
        return ensure_josev(progress=lambda message: print(message, file=sys.stderr))
    except PeerUnavailable as exc:
        require("josev", exc.reason)
