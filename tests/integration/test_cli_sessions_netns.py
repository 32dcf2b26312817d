"""`mcs-v2g evse` and `mcs-v2g ev` in two processes and two network namespaces, as a test bench runs them: SDP on
the IPv6 link, then a whole -20 session over TLS 1.3 (mutual authentication with the test PKI) or TCP, between
the emulated charger (mock plant: converter, cable, IMD, contactors, meter) and the emulated truck (battery/BMS
model fed by the charger's reports)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stack.security.pki import generate_pki
from tests.netns import VethPair, veth_pair_fixture

veth_pair = veth_pair_fixture("function")
MCS_V2G = str(Path(sys.executable).parent / "mcs-v2g")
CHARGER_TOML = """\
evse_id = "DE*MCS*E0042"
[policy]
steps = [[0, 750000], [10, -750000], [20, 750000]]   # charge, feed the grid, charge (s after power-on, W)
"""


def _run_pair(veth_pair: VethPair, tmp_path: Path, evse_args: list[str], ev_args: list[str]) -> tuple:
    evse = veth_pair.popen(
        "a",
        [MCS_V2G, "evse", "--interface", "va", *evse_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)  # the SECC binds its TCP/TLS port and joins ff02::1
        ev = veth_pair.popen(
            "b",
            [MCS_V2G, "ev", "--interface", "vb", *ev_args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = ev.communicate(timeout=120)
        time.sleep(0.5)  # the SECC prints its line once the EV has closed
    finally:
        evse.terminate()
        evse_out, evse_err = evse.communicate(timeout=10)
    return ev.returncode, out, err, evse_out, evse_err


@pytest.mark.parametrize(
    ("service", "control", "tls"),
    [("mcs-bpt", "dynamic", True), ("dc-bpt", "scheduled", True), ("mcs", "dynamic", False)],
)
def test_ev_finds_the_charger_with_sdp_and_charges(
    veth_pair: VethPair, tmp_path: Path, service: str, control: str, tls: bool
) -> None:
    pki = generate_pki(tmp_path / "pki")
    tls_args = ["--pki", str(pki.directory), "--keylog", str(tmp_path / "keys.log")] if tls else ["--no-tls"]
    code, out, err, evse_out, evse_err = _run_pair(
        veth_pair,
        tmp_path,
        [*tls_args, "--trace", str(tmp_path / "secc"), "-v"],
        [
            *("--service", service, "--control", control, "--charge-loops", "5", "--loop-interval", "0.01"),
            *tls_args,
            *("--trace", str(tmp_path / "ev.xml")),
        ],
    )
    assert code == 0, out + err + "\n--- SECC ---\n" + evse_out + evse_err
    assert "ok: session terminated; 5 charge loops" in out
    assert ("TLSv1.3" in evse_err) is tls
    assert "ok: session terminated; meter +" in evse_out  # the charger's line for the session
    trace = (tmp_path / "ev.xml").read_text()
    assert trace.count("DC_ChargeLoopReq") >= 5 and "SessionStopRes" in trace
    if tls:
        assert "CLIENT_HANDSHAKE_TRAFFIC_SECRET" in (tmp_path / "keys.log").read_text()


def test_charger_meter_agrees_with_the_truck_battery_within_the_cable_losses(
    veth_pair: VethPair, tmp_path: Path
) -> None:
    """A full MCS_BPT session (charge, V2G, charge) between the two products over SDP and TLS 1.3: the charger's
    meter counts what its plant delivered at its terminals, the truck's pack what the charger's reports made it
    carry; they differ by the cable's I²R (the charger meters before the cable), and by nothing else worth a
    cable loss: integration error of the loop's samples is bounded here by half the cable loss or 4 Wh."""
    pki = generate_pki(tmp_path / "pki")
    config = tmp_path / "charger.toml"
    config.write_text(CHARGER_TOML)
    tls_args = ["--pki", str(pki.directory)]
    code, out, err, evse_out, evse_err = _run_pair(
        veth_pair,
        tmp_path,
        ["--config", str(config), "--json", *tls_args],
        [
            "--service",
            "mcs-bpt",
            "--soc",
            "0.5",
            "--charge-loops",
            "250",
            "--loop-interval",
            "0.1",
            "--json",
            *tls_args,
        ],
    )
    assert code == 0, out + err + "\n--- SECC ---\n" + evse_out + evse_err
    truck, charger = json.loads(out), json.loads(evse_out.strip().splitlines()[-1])
    assert truck["result"] == charger["result"] == "ok" and truck["session_id"] == charger["session_id"]
    assert truck["service"] == charger["service"] == "MCS_BPT" and charger["evse_id"] == "DE*MCS*E0042"
    assert truck["charge_loops"] == 250 and truck["faults"] == {} and charger["faults"] == []
    # both directions really flowed: more than a kilowatt-hour each way at megawatt level
    assert charger["meter_imported_kwh"] > 1.0 and charger["meter_exported_kwh"] > 1.0
    assert truck["battery_in_kwh"] > 1.0 and truck["battery_out_kwh"] > 1.0
    meter = charger["meter_imported_kwh"] - charger["meter_exported_kwh"]
    battery = truck["battery_in_kwh"] - truck["battery_out_kwh"]
    loss = charger["cable_loss_kwh"]
    assert loss > 0.005  # ~1000 A through 2 mOhm for tens of seconds
    assert meter - battery == pytest.approx(loss, abs=max(0.5 * loss, 0.004)), (meter, battery, loss)
