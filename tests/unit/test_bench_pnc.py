"""`python -m tools.bench pnc` (tools/bench/pnc.py) on a tiny run: every figure is there and the report names them;
what it times is the real check (a changed request or an unknown MO root is refused). No timings are asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stack.security import xmldsig
from tools.bench import pnc


@pytest.fixture(scope="module")
def tiny() -> dict:
    return pnc.run(calls=3, warmup=1, sessions=2, session_warmup=0, loops=1, josev=False, progress=lambda _: None)


def test_a_tiny_run_has_every_figure(tiny: dict) -> None:
    assert set(tiny["suites"]) == set(pnc.SUITES)
    for figures in tiny["suites"].values():
        assert figures["fragment_bytes"] > 1000  # the element carries the contract chain of 3 certificates
        assert min(figures[k] for k in ("sign_per_s", "verify_per_s", "check_per_s", "decode_us")) > 0
    rows = tiny["sessions"]["rows"]
    assert list(rows) == ["EIM", "PnC", "PnC + CertificateInstallation"]
    assert rows["PnC + CertificateInstallation"]["messages"] == rows["PnC"]["messages"] + 2  # its Req and Res
    assert all(row["peak_kib"] > 0 and row["sessions_per_s"] > 0 for row in rows.values())
    assert tiny["josev"] == "skipped (--no-josev)"
    json.dumps(tiny)  # --json prints it


def test_the_report_names_what_was_measured(tiny: dict) -> None:
    text = pnc.report(tiny)
    for label in pnc.SUITES.values():
        assert label in text
    for needle in ("3 calls after 1 warm-up", "median of 2 after 0 warm-up", "Josev: skipped", "PnC costs"):
        assert needle in text


def test_the_timed_check_refuses_what_the_secc_refuses(tmp_path: Path) -> None:
    kit = pnc.make_kit(tmp_path, "secp521r1")
    req = pnc.authorization_req(kit.contract)
    assert pnc.secc_check(req, kit.mo_roots, pnc.NOW) == kit.contract.emaid
    other = pnc.make_kit(tmp_path / "other", "secp521r1")
    with pytest.raises(ValueError, match="contract refused"):
        pnc.secc_check(req, other.mo_roots, pnc.NOW)
    mode = req.pnc_a_req_authorization_mode
    assert mode is not None
    mode.gen_challenge = bytes(16)
    with pytest.raises(xmldsig.DigestMismatchError):
        pnc.secc_check(req, kit.mo_roots, pnc.NOW)
