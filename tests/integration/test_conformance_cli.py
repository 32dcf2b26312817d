"""`mcs-v2g test` end to end with real processes over loopback TCP and TLS: our product charger (`mcs-v2g evse`,
the physical plant) and truck (`mcs-v2g ev`, started by `--replug` for each case) judged by the runner, with its
JUnit, HTML, pcapng and JSON outputs read back; a device that breaks a rule makes the run exit 1, bad input 2."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

REPO = Path(__file__).resolve().parents[2]
MCS = [sys.executable, "-m", "mcs_v2g"]
RUN_TIMEOUT_S = 600


def free_port() -> int:
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET6) as probe:
        return probe.connect_ex(("::1", port)) == 0


@pytest.fixture
def charger(request: pytest.FixtureRequest) -> Iterator[int]:
    """Our product charger on [::1]:port, plain TCP or TLS 1.3 (the test PKI of the run's PKI home)."""
    port = free_port()
    tls = [] if getattr(request, "param", False) else ["--no-tls"]
    process = subprocess.Popen(
        [*MCS, "evse", "--listen", f"[::1]:{port}", *tls, "-q"], cwd=REPO, stdout=subprocess.DEVNULL
    )
    try:
        for _ in range(200):
            if listening(port):
                break
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def run_tester(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*MCS, "test", *args], cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def verdicts(path: Path) -> dict[str, str]:
    return {case["id"]: case["verdict"] for case in json.loads(path.read_text())["cases"]}


SECC_CASES = (
    "SECC-SESSION-MCS-BPT-DYNAMIC",
    "SECC-SESSION-DC-SCHEDULED",
    "SECC-SEQ-DC-PRECHARGE",
    "SECC-SID-DC-CHARGELOOP",
    "SECC-RULE-DETAIL-UNOFFERED",
    "SECC-V2GTP-VERSION",
    "SECC-V2GTP-SERVES-AFTER-VERSION",
    "SECC-TIME-DC-CHARGELOOP",
)


def test_our_charger_passes_over_tcp_with_every_report(charger: int, tmp_path: Path) -> None:
    out = {name: tmp_path / name for name in ("junit.xml", "report.html", "run.pcapng", "verdicts.json")}
    done = run_tester(
        "secc", "--target", f"[::1]:{charger}", "--no-tls", "--select", *SECC_CASES,
        "--junit", str(out["junit.xml"]), "--html", str(out["report.html"]),
        "--pcap", str(out["run.pcapng"]), "--json", str(out["verdicts.json"]),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "result ok"
    found = verdicts(out["verdicts.json"])
    assert len(found) == 8 and set(found.values()) == {"pass"}, found
    suite = etree.parse(str(out["junit.xml"])).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("8", "0", "0")
    assert "SECC-SESSION-MCS-BPT-DYNAMIC" in out["report.html"].read_text()
    decoded = subprocess.run(
        [*MCS, "capture", "decode", str(out["run.pcapng"])], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert decoded.returncode == 0, decoded.stderr
    assert "DC_ChargeLoopRes" in decoded.stdout and "SessionStopRes OK" in decoded.stdout


@pytest.mark.parametrize("charger", [True], indirect=True)
def test_our_charger_passes_over_tls_and_the_capture_decrypts(charger: int, tmp_path: Path) -> None:
    pcap = tmp_path / "tls.pcapng"
    done = run_tester(
        "secc", "--target", f"[::1]:{charger}", "--tls", "--pcap", str(pcap), "--json", str(tmp_path / "v.json"),
        "--select", "SECC-TLS-TLS12", "SECC-TLS-NO-CLIENT-CERT", "SECC-TLS-P521", "SECC-SESSION-MCS-BPT-DYNAMIC",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(verdicts(tmp_path / "v.json").values()) == {"pass"}
    decoded = subprocess.run([*MCS, "capture", "decode", str(pcap)], cwd=REPO, capture_output=True, text=True)
    assert decoded.returncode == 0, decoded.stderr
    assert "TLS" in decoded.stdout and "DC_ChargeLoopReq" in decoded.stdout  # decrypted with the embedded secrets


def test_our_truck_passes_started_by_replug(tmp_path: Path) -> None:
    port = free_port()
    profile = tmp_path / "truck.toml"
    profile.write_text('role = "evcc"\nservices = ["MCS_BPT"]\ncontrol_modes = ["dynamic"]\ntls = false\n')
    truck = f"{sys.executable} -m mcs_v2g ev --connect [::1]:{port} --no-tls --charge-loops 3 -q"
    done = run_tester(
        "evcc", "--listen", f"[::1]:{port}", "--profile", str(profile), "--replug", truck,
        "--json", str(tmp_path / "v.json"), "--select", "EVCC-SESSION-*", "EVCC-FAILED-DC-CHARGELOOP",
        "EVCC-TIMEOUT-SERVICEDISCOVERY", "EVCC-V2GTP-VERSION",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    found = verdicts(tmp_path / "v.json")
    assert found["EVCC-SESSION-MCS-BPT-DYNAMIC"] == "pass" and found["EVCC-SESSION-DC-DYNAMIC"] == "inconclusive"
    assert {v for k, v in found.items() if "SESSION-" not in k or k.endswith("MCS-BPT-DYNAMIC")} == {"pass"}


def test_a_rule_broken_by_the_device_fails_the_run(charger: int, tmp_path: Path) -> None:
    """The profile says the charger allows standby; ours refuses it (WARNING_StandbyNotAllowed): a fail, exit 1."""
    profile = tmp_path / "charger.toml"
    profile.write_text('role = "secc"\ntls = false\nstandby = true\n')
    done = run_tester(
        "secc", "--target", f"[::1]:{charger}", "--profile", str(profile), "--select", "SECC-STANDBY-LOOP",
        "--json", str(tmp_path / "v.json"),
    )  # fmt: skip
    assert done.returncode == 1 and done.stdout.splitlines()[-1] == "result FAILED"
    (case,) = json.loads((tmp_path / "v.json").read_text())["cases"]
    assert case["verdict"] == "fail" and case["rule"] and "StandbyNotAllowed" in case["seen"], case


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["secc", "--self", "--select", "NO-SUCH-*"], "no secc case matches NO-SUCH-*"),
        (["secc", "--self", "--profile", "{tmp}/p.toml"], "unknown key 'colour'"),
        (["evcc", "--self", "--profile", "{tmp}/p.toml"], "unknown key 'colour'"),
        (["secc", "--select", "SECC-SEQ-*"], "say where the charger is"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, argv: list[str], why: str) -> None:
    (tmp_path / "p.toml").write_text('colour = "red"\n')
    done = run_tester(*(a.replace("{tmp}", str(tmp_path)) for a in argv))
    assert done.returncode == 2 and why in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
