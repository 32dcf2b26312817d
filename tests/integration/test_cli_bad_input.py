"""Bad input at the door of `mcs-v2g` (issue 10, "Bad input that escapes"): every case ends with exit status 2 and
one line on stderr naming the file, the key and the reason, with no traceback and nothing written (no PKI, no
output file) in the working directory or anywhere else. Also: `exi` reads long hex, binary EXI files and stdin;
the test PKI goes to the user's data directory (or the one given), never the working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mcs_v2g.cli import main
from mcs_v2g.cli.common import ensure_test_pki
from stack import exi, schemas
from stack.security.pki import PKI_DIR_ENV, pki_home
from stack.v2gtp import build
from tools.bench.samples import schedule_exchange_res, session_setup_req

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory; the test PKI would go to `tmp_path/pki` (it must not be made)."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv(PKI_DIR_ENV, str(tmp_path / "pki"))
    return work


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the command in-process: exit status 2, nothing on stdout, one error line on stderr (returned)."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mcs-v2g: error: "), err
    return lines[0]


def nothing_written(workdir: Path, *inputs: str) -> None:
    assert sorted(p.name for p in workdir.iterdir()) == sorted(inputs)
    assert not (workdir.parent / "pki").exists()


# ------------------------------------------------------------------------------- scenario (`mcs-v2g sim`)

BAD_SCENARIOS = {
    "nan power": ("max_power = nan", "max_power: must be a finite number"),
    "inf power": ("max_power = inf", "max_power: must be a finite number"),
    "inf departure": ("departure_s = inf", "departure_s: must be a finite number"),
    "start as a word": ('start = "yesterday"', "start: must be seconds since 1970"),
    "string as bool": ('offers_v2g = "no"', "offers_v2g: must be true or false"),
    "bool as soc": ("initial_soc = true", "initial_soc: must be a number, got true"),
    "millisecond loop": ("loop_interval = 0.001", "loop_interval: must be greater than or equal to 0.01"),
    "nan in steps": ("steps = [[0, 750000], [600, nan]]", "steps[1][1]: must be a finite number"),
    "negative step time": ("steps = [[-60, 750000]]", "steps[0][0]: must be greater than or equal to 0"),
    "unknown section": ("[plant]\ncable_ohm = 0.002", "[plant]: unknown section"),
    "negative fault": ("[faults]\ninsulation_fault_ohm = -5", "faults.insulation_fault_ohm: must be greater"),
    "key set twice": ("max_power = 1e6\n[charger]\nmax_power = 2e6", "charger.max_power: set twice"),
}


@pytest.mark.parametrize("name", list(BAD_SCENARIOS))
def test_sim_refuses_a_bad_scenario(workdir: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    text, says = BAD_SCENARIOS[name]
    (workdir / "scenario.toml").write_text(text + "\n")
    line = refused(["sim", "--json", "--scenario", "scenario.toml"], capsys)  # TLS on: no PKI may be made
    assert "scenario.toml: " in line and says in line
    nothing_written(workdir, "scenario.toml")


# ----------------------------------------------------------------- charger and truck (`mcs-v2g evse`/`ev`)

BAD_CHARGERS = {
    "negative power": ("[ratings]\nmax_power = -1", "ratings.max_power: must be greater than 0, got -1"),
    "nan power": ("[ratings]\nmax_power = nan", "ratings.max_power: must be a finite number"),
    "unknown key": ("[ratings]\nmax_power = 1e6\nmax_powr = 2e6", "ratings.max_powr: unknown key"),
    "unknown top-level key": ("evse = 1", "evse: unknown key"),
    "unknown plant setting": ('[hal]\ndriver = "mock"\ncable_ohms = 0.002', "hal.cable_ohms: unknown key"),
    "string as bool": ('[session]\npause_allowed = "no"', "session.pause_allowed: must be true or false"),
}


@pytest.mark.parametrize("name", list(BAD_CHARGERS))
def test_evse_refuses_a_bad_charger_file(workdir: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    text, says = BAD_CHARGERS[name]
    (workdir / "charger.toml").write_text(text + "\n")
    line = refused(["evse", "--listen", "[::1]:0", "--config", "charger.toml"], capsys)
    assert "charger.toml: " in line and says in line
    nothing_written(workdir, "charger.toml")


BAD_TRUCKS = {
    "string as bool": ('offers_v2g = "no"', "offers_v2g: must be true or false"),
    "bool as soc": ("initial_soc = true", "initial_soc: must be a number, got true"),
    "millisecond loop": ("loop_interval = 0.001", "loop_interval: must be greater than or equal to 0.01"),
    "inf departure": ("departure_s = inf", "departure_s: must be a finite number"),
}


@pytest.mark.parametrize("name", list(BAD_TRUCKS))
def test_ev_refuses_a_bad_truck_file(workdir: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    text, says = BAD_TRUCKS[name]
    (workdir / "truck.toml").write_text(text + "\n")
    line = refused(["ev", "--connect", "[::1]:1", "--config", "truck.toml"], capsys)
    assert "truck.toml: " in line and says in line
    nothing_written(workdir, "truck.toml")


# ------------------------------------------------------------------------------------- `mcs-v2g exi`


def frame_of(message: object) -> bytes:
    payload_type = schemas.schema_set(schemas.default_schema_id(type(message))).payload_type
    assert payload_type is not None
    return build(payload_type, exi.encode(message))


def test_exi_decodes_hex_longer_than_a_file_name(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = frame_of(schedule_exchange_res())
    assert len(frame.hex()) > 256  # longer than NAME_MAX: once read as a file name ("File name too long")
    assert main(["exi", "decode", frame.hex()]) == 0
    assert "<cm:ScheduleExchangeRes" in capsys.readouterr().out
    nothing_written(workdir)


def test_exi_decodes_a_binary_file_a_hex_file_and_stdin(workdir: Path, capsys, monkeypatch) -> None:
    frame = frame_of(session_setup_req())
    (workdir / "setup.exi").write_bytes(frame)
    (workdir / "setup.txt").write_text(frame.hex(" ", 8) + "\n")
    outputs = []
    for argv in (["setup.exi"], ["setup.txt"]):
        assert main(["exi", "decode", *argv]) == 0
        outputs.append(capsys.readouterr().out)
    with (workdir / "setup.exi").open("rb") as stdin:
        monkeypatch.setattr(sys, "stdin", type("Stdin", (), {"buffer": stdin})())
        assert main(["exi", "decode", "-"]) == 0
    outputs.append(capsys.readouterr().out)
    assert "<cm:SessionSetupReq" in outputs[0] and outputs[0] == outputs[1] == outputs[2]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["exi", "decode", "missing.exi"], "missing.exi: no such file"),
        (["exi", "decode", "captures/missing"], "captures/missing: no such file"),
        (["exi", "decode", "missing.hex"], "missing.hex: no such file"),
        (["exi", "encode", "missing.xml"], "missing.xml: no such file"),
        (["exi", "decode", "garbage.exi"], "error: "),
        (["exi", "decode", "empty.exi"], "empty.exi: empty"),
        (["exi", "decode", "message.xml"], "input is XML, not EXI"),
        (["exi", "encode", "garbage.exi"], "input is not XML"),
        (["exi", "decode", "g" * 300], "not hexadecimal"),
        (["exi", "decode", "."], ".: is a directory"),
    ],
)
def test_exi_refuses_bad_input_in_one_line(workdir: Path, capsys, argv: list[str], says: str) -> None:
    (workdir / "garbage.exi").write_bytes(b"\x01\xfe\x80\x01\x00\x00\x00\x04\x80\xff\xfe\xfd")
    (workdir / "empty.exi").write_bytes(b"")
    (workdir / "message.xml").write_text(exi.to_xml(session_setup_req()))
    assert says in refused(argv, capsys)
    nothing_written(workdir, "garbage.exi", "empty.exi", "message.xml")


# ------------------------------------------------------------------------------------------------ the PKI


def test_pki_goes_to_the_user_data_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.delenv(PKI_DIR_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert pki_home() == tmp_path / "home" / ".local" / "share" / "mcs-v2g" / "pki"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert pki_home() == tmp_path / "data" / "mcs-v2g" / "pki"
    monkeypatch.setenv("XDG_DATA_HOME", "relative")  # the XDG spec: a relative path is ignored
    assert pki_home() == tmp_path / "home" / ".local" / "share" / "mcs-v2g" / "pki"
    monkeypatch.setenv(PKI_DIR_ENV, str(tmp_path / "mine"))
    assert pki_home() == tmp_path / "mine"


def test_a_new_test_pki_is_announced_once_and_not_in_the_working_directory(workdir: Path, capsys) -> None:
    pki = ensure_test_pki(profile="secp256r1")
    assert pki.directory == workdir.parent / "pki" / "secp256r1" and pki.secc_key.is_file()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(pki.directory) in err[0] and "private keys" in err[0]
    assert ensure_test_pki(profile="secp256r1") == pki  # already there: nothing said
    assert capsys.readouterr().err == ""
    assert list(workdir.iterdir()) == []


# ----------------------------------------------------------------- end to end, through the console entry


@pytest.mark.parametrize(
    ("argv", "file", "text", "says"),
    [
        (["sim", "--scenario", "s.toml"], "s.toml", 'start = "yesterday"\n', "s.toml: start: must be"),
        (["evse", "--listen", "[::1]:0", "--config", "c.toml"], "c.toml", "[ratings]\nmax_power = -1\n", "max_power"),
        (["exi", "decode", "x.exi"], None, "", "x.exi: no such file"),
    ],
    ids=["sim", "evse", "exi"],
)
def test_console_entry_exit_status_and_one_line(tmp_path: Path, argv, file, text, says) -> None:
    work = tmp_path / "work"
    work.mkdir()
    if file:
        (work / file).write_text(text)
    env = {**os.environ, PKI_DIR_ENV: str(tmp_path / "pki"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "mcs_v2g", *argv], cwd=work, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and says in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in work.iterdir()) == ([file] if file else []) and not (tmp_path / "pki").exists()


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    words = capsys.readouterr().out.split()
    assert words[0] == "mcs-v2g" and words[1][0].isdigit()
