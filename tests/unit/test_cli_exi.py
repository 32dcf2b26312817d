"""`mcs-v2g exi decode|encode` end to end, through the installed console script."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stack import exi
from stack.v2gtp import build
from tools.bench.samples import dc_charge_loop_req, session_setup_req

_BESIDE_PYTHON = Path(sys.executable).parent / "mcs-v2g"
MCS_V2G = str(_BESIDE_PYTHON) if _BESIDE_PYTHON.exists() else (shutil.which("mcs-v2g") or "mcs-v2g")


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MCS_V2G, *args], input=stdin, capture_output=True, text=True, timeout=60)


def test_decode_frame_then_encode_gives_the_same_bytes(tmp_path) -> None:
    payload = exi.encode(dc_charge_loop_req())
    frame = build(0x8004, payload)
    decoded = run("exi", "decode", frame.hex())
    assert decoded.returncode == 0, decoded.stderr
    assert "<dc:DC_ChargeLoopReq" in decoded.stdout and "BPT_Dynamic_DC_CLReqControlMode" in decoded.stdout
    xml_file = tmp_path / "loop.xml"
    xml_file.write_text(decoded.stdout)
    assert run("exi", "encode", str(xml_file)).stdout.strip() == payload.hex()
    assert run("exi", "encode", "--frame", "-", stdin=decoded.stdout).stdout.strip() == frame.hex()


def test_decode_payload_needs_a_schema() -> None:
    payload = exi.encode(session_setup_req()).hex()
    assert run("exi", "decode", payload).returncode == 2
    ok = run("exi", "decode", "--schema", "iso20-common", payload)
    assert ok.returncode == 0 and "<cm:SessionSetupReq" in ok.stdout


@pytest.mark.parametrize(
    "bad",
    ["zz", "80", "01fe8004000000ff80", "01fe1234000000018000"],
    ids=["not-hex", "truncated-exi", "short-frame", "unknown-payload-type"],
)
def test_bad_input_is_one_line_and_exit_2(bad: str) -> None:
    result = run("exi", "decode", "--schema", "iso20-dc", bad) if bad == "80" else run("exi", "decode", bad)
    assert result.returncode == 2
    assert result.stderr.startswith("mcs-v2g: error:") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_encode_rejects_invalid_xml(tmp_path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text('<cm:SessionSetupReq xmlns:cm="urn:iso:std:iso:15118:-20:CommonMessages"/>')
    result = run("exi", "encode", str(bad))
    assert result.returncode == 2 and "not valid against the schema" in result.stderr


def test_decode_reads_binary_exi_from_a_file_and_from_stdin(tmp_path) -> None:
    frame = build(0x8004, exi.encode(dc_charge_loop_req()))
    (tmp_path / "loop.exi").write_bytes(frame)
    from_hex = run("exi", "decode", frame.hex())
    from_file = run("exi", "decode", str(tmp_path / "loop.exi"))
    from_stdin = subprocess.run([MCS_V2G, "exi", "decode", "-"], input=frame, capture_output=True, timeout=60)
    assert from_hex.returncode == from_file.returncode == from_stdin.returncode == 0, from_file.stderr
    assert "<dc:DC_ChargeLoopReq" in from_hex.stdout
    assert from_hex.stdout == from_file.stdout == from_stdin.stdout.decode()


def test_a_missing_file_is_not_read_as_hex(tmp_path) -> None:
    result = run("exi", "decode", str(tmp_path / "capture.exi"))
    assert (
        result.returncode == 2 and result.stderr.strip() == f"mcs-v2g: error: {tmp_path / 'capture.exi'}: no such file"
    )
