"""Fixtures for tests against real peers: Josev's EXI codec as an oracle."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tools.peers.josev import JosevExi, PeerUnavailable

_unavailable: list[str] = []  # the reason, once a start has failed: later tests skip at once


def start_josev_exi(**options: object) -> JosevExi:
    """A started `JosevExi`, or a skip saying why Josev cannot run here."""
    if _unavailable:
        pytest.skip(_unavailable[0])
    oracle = JosevExi(progress=lambda message: print(message, file=sys.stderr), **options)  # type: ignore[arg-type]
    try:
        oracle.start()
    except PeerUnavailable as exc:
        _unavailable.append(f"Josev EXI oracle unavailable: {exc.reason}")
        pytest.skip(_unavailable[0])
    return oracle


@pytest.fixture(scope="session")
def josev_exi() -> Iterator[JosevExi]:
    """Josev's EXI codec (the jar's grammars and options) in a bridge process, for the whole session."""
    oracle = start_josev_exi()
    try:
        yield oracle
    finally:
        oracle.close()
