"""`mcs-v2g evse --interface` and `mcs-v2g ev --interface` in two network namespaces: SDP on the IPv6 link,
then the whole -20 session over TLS 1.3 (mutual authentication with the test PKI), as a test bench runs them."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from stack.security.pki import generate_pki
from tests.netns import VethPair, veth_pair_fixture

veth_pair = veth_pair_fixture("function")
MCS_V2G = str(Path(sys.executable).parent / "mcs-v2g")


@pytest.mark.parametrize(
    ("service", "control", "tls"),
    [("mcs-bpt", "dynamic", True), ("dc-bpt", "scheduled", True), ("mcs", "dynamic", False)],
)
def test_ev_finds_the_charger_with_sdp_and_charges(
    veth_pair: VethPair, tmp_path: Path, service: str, control: str, tls: bool
) -> None:
    pki = generate_pki(tmp_path / "pki")
    tls_args = ["--pki", str(pki.directory), "--keylog", str(tmp_path / "keys.log")] if tls else ["--no-tls"]
    evse = veth_pair.popen(
        "a",
        [MCS_V2G, "evse", "--interface", "va", *tls_args, "--trace", str(tmp_path / "secc")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(1.5)  # the SECC binds its TCP/TLS port and joins ff02::1
        ev = veth_pair.popen(
            "b",
            [
                MCS_V2G,
                "ev",
                "--interface",
                "vb",
                "--service",
                service,
                "--control",
                control,
                "--charge-loops",
                "5",
                "--loop-interval",
                "0.01",
                *tls_args,
                "--trace",
                str(tmp_path / "ev.xml"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        out, _ = ev.communicate(timeout=60)
    finally:
        evse.terminate()
        evse_out, _ = evse.communicate(timeout=10)
    assert ev.returncode == 0, out + "\n--- SECC ---\n" + evse_out
    assert "ok: session terminated; 5 charge loops" in out
    assert ("TLSv1.3" in evse_out) is tls
    trace = (tmp_path / "ev.xml").read_text()
    assert trace.count("DC_ChargeLoopReq") >= 5 and "SessionStopRes" in trace
    if tls:
        assert "CLIENT_HANDSHAKE_TRAFFIC_SECRET" in (tmp_path / "keys.log").read_text()
