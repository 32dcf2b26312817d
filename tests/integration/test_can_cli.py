"""The CAN commands at the door: `plant --list-families`, the plant's refusals of bad values, a short `sim` over
each family's CAN plant with a bus log, and `can decode` of that log (text and JSON) or of what is not a log.

Refusals run `main` in this process (they stop before any bus is opened); the simulations and the decoding run
as processes, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evse_emulator.hal.can.family import family, family_names
from mcs_v2g.cli import main

REPO = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "mcs_v2g"]
BOARD_FRAMES = {"IO_Command", "IO_Status", "IO_Meter", "IO_Energy"}
# a frame of each family's that only a charger commanding current sends (our DBC files' names)
SETPOINT_FRAME = {"infypower": "SetVoltageCurrent", "infypower-beg": "WriteRegister", "winline": "WL_Request"}
# five minutes at 300 kW from 30 %: the 2 % to the target fit with room to spare (result ok)
SHORT_SCENARIO = """\
initial_soc = 0.30
target_soc = 0.32
departure_s = 300
loop_interval = 2
steps = [[0, 300000]]
"""


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the command in-process: exit status 2, nothing on stdout, one error line on stderr (returned)."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mcs-v2g: error: "), err
    assert "Traceback" not in err
    return lines[0]


def run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*COMMAND, *argv], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_plant_lists_the_families_one_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plant", "--list-families"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == family_names() and err == ""
    assert {"infypower", "infypower-beg", "winline"} <= set(out.split())


PLANT = ["plant", "--can", "virtual:mcs-cli-refused", "--family", "infypower"]


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["plant", "--can", "nocolon", "--family", "infypower"], "CAN bus must be INTERFACE:CHANNEL"),
        (["plant", "--can", "bogus:x", "--family", "infypower"], "unknown python-can interface 'bogus'"),
        (["plant", "--can", ":x", "--family", "infypower"], "CAN bus must be INTERFACE:CHANNEL"),
        (["plant", "--can", "socketcan:mcsnosuch0", "--family", "infypower"], "cannot open CAN bus"),
        (["plant", "--can", "virtual:x", "--family", "nosuch"], "unknown CAN module family 'nosuch'"),
        (["plant", "--family", "infypower"], "plant needs --can"),
        (["plant", "--can", "virtual:x"], "plant needs --can"),
        ([*PLANT, "--fault", "bogus@3"], "unknown plant fault 'bogus'"),
        ([*PLANT, "--fault", "over_voltage"], "fault must be NAME@SECONDS"),
        ([*PLANT, "--fault", "over_voltage@-1"], "fault time must be a finite number"),
        ([*PLANT, "--fault", "over_voltage@nan"], "fault time must be a finite number"),
        ([*PLANT, "--fault", "module_loss:x@3"], "the address a whole number from 0"),
        ([*PLANT, "--fault", "module_loss:-1@3"], "the address a whole number from 0"),
        ([*PLANT, "--fault", "module_loss@3"], "module_loss needs a module address"),
        ([*PLANT, "--fault", "insulation:7@3"], "only derate and module_loss take a module"),
        ([*PLANT, "--fault", "derate:25@3"], "the rack has modules 0..19"),
        ([*PLANT, "--modules", "0"], "--modules (0) must be a positive multiple"),
        ([*PLANT, "--modules", "-4"], "--modules (-4) must be a positive multiple"),
        ([*PLANT, "--modules", "3", "--series", "2"], "--modules (3) must be a positive multiple of --series"),
        ([*PLANT, "--series", "5", "--modules", "10"], "--series (1..4, got 5)"),
        ([*PLANT, "--soc", "1.5"], "--soc must be between 0 and 1"),
        ([*PLANT, "--duration", "0"], "--duration must be positive"),
    ],
)
def test_plant_refuses_bad_values(argv: list[str], why: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert why in refused(argv, capsys)


@pytest.mark.parametrize("value", ["x", "2.5"])
def test_plant_modules_must_be_a_whole_number(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([*PLANT, "--modules", value])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "argument --modules: invalid int value" in err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def bus_logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    """A short CAN simulation per family: its bus log and its summary."""
    folder = tmp_path_factory.mktemp("can-sim")
    scenario = folder / "short.toml"
    scenario.write_text(SHORT_SCENARIO)
    found = {}
    for name in family_names():
        log = folder / f"{name}.log"
        done = run(
            "sim", "--no-tls", "--json", "--scenario", str(scenario), "--hal", f"can:{name}", "--can-log", str(log)
        )
        lines = done.stdout.strip().splitlines()
        assert done.returncode == 0 and len(lines) == 1, done.stdout + done.stderr
        found[name] = (log, json.loads(lines[0]))
    return found


@pytest.mark.parametrize("name", family_names())
def test_sim_over_each_family_charges_and_logs_the_bus(name: str, bus_logs: dict[str, tuple[Path, dict]]) -> None:
    log, summary = bus_logs[name]
    assert summary["result"] == "ok", summary
    assert summary["energy_charged_kwh"] > 0
    assert log.is_file() and log.stat().st_size > 0


@pytest.mark.parametrize("name", family_names())
def test_can_decode_names_the_dbc_frames(name: str, bus_logs: dict[str, tuple[Path, dict]]) -> None:
    log, _ = bus_logs[name]
    done = run("can", "decode", str(log), "--family", name)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    lines = done.stdout.splitlines()
    assert lines
    names = {_frame_name(line) for line in lines}
    known = {m.name for m in family(name).database().messages} | BOARD_FRAMES
    assert names <= known, names - known  # nothing "unknown"
    assert names >= BOARD_FRAMES and SETPOINT_FRAME[name] in names
    assert any("ContactorState=closed" in line for line in lines if _frame_name(line) == "IO_Status")


def _frame_name(line: str) -> str:
    """The frame column of a decoded line: time, ID, sender (one or two words: "module 3"), frame, signals."""
    fields = line.split()
    return fields[4] if fields[2] == "module" else fields[3]


@pytest.mark.parametrize("name", family_names())
def test_can_decode_json_lines(name: str, bus_logs: dict[str, tuple[Path, dict]]) -> None:
    log, _ = bus_logs[name]
    done = run("can", "decode", str(log), "--family", name, "--json")
    assert done.returncode == 0, done.stderr
    frames = [json.loads(line) for line in done.stdout.splitlines()]
    assert frames and {"time_s", "frame_id", "name", "sender", "signals", "data"} <= set(frames[0])
    assert SETPOINT_FRAME[name] in {f["name"] for f in frames}
    meters = [f["signals"] for f in frames if f["name"] == "IO_Meter"]
    assert meters and all(isinstance(m["Voltage"], int | float) for m in meters)


@pytest.mark.parametrize(
    ("file", "content", "why"),
    [
        ("missing.log", None, "no such file"),
        ("bus.txt", b"(0.0) vcan0 18F00100#0000000000000000\n", "must end in .log, .asc or .blf"),
        ("folder.log", "folder", "is a folder"),
        ("junk.log", b"garbage line\nmore junk (x) y\n", "not a readable bus log"),
        ("junk.blf", bytes(range(256)) * 2, "not a readable bus log"),
    ],
)
def test_can_decode_refuses_what_is_not_a_log(tmp_path: Path, file: str, content: bytes | str | None, why: str) -> None:
    path = tmp_path / file
    if content == "folder":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    done = run("can", "decode", str(path), "--family", "infypower")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
    assert len(lines) == 1 and lines[0].startswith("mcs-v2g: error: ") and why in lines[0], done.stderr


def test_can_decode_refuses_an_unknown_family(bus_logs: dict[str, tuple[Path, dict]]) -> None:
    log, _ = bus_logs["infypower"]
    done = run("can", "decode", str(log), "--family", "nosuch")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("mcs-v2g: error: unknown CAN module family 'nosuch'"), done.stderr
