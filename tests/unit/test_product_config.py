"""Bad settings for the charger and the truck are refused with a typed error that names them: the TOML loaders,
the mock driver's plant settings, and the `mcs-v2g evse` / `mcs-v2g ev` command lines (one line, exit 2)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ev_emulator import TruckConfigError, load_truck_config
from evse_emulator import Charger, ChargerConfigError, load_charger_config
from evse_emulator.hal.mock import PlantConfig
from mcs_v2g.cli import main
from stack.clock import VirtualClock

BAD_CHARGER = {
    "not TOML": ("[ratings\nmax_power = ", "Expected ']'"),
    "binary": (b"\x00\xff\xfe\x00", "decode"),
    "top-level rating": ("max_power = 1000000\n", "unknown setting 'max_power'"),
    "unknown section": ("[plan]\nsteps = []\n", "unknown setting 'plan'"),
    "unknown key": ("[ratings]\nmax_power = 1e6\nbogus = 1\n", "unknown keys ['bogus']"),
    "negative power": ("[ratings]\nmax_power = -1\n", "max_power must be a positive number"),
    "nan power": ("[ratings]\nmax_power = nan\n", "max_power must be a positive number"),
    "inf current": ("[ratings]\nmax_current = inf\n", "max_current must be a positive number"),
    "string voltage": ('[ratings]\nmax_voltage = "1250"\n', "max_voltage must be a positive number"),
    "bool as number": ("[ratings]\nmax_voltage = true\n", "max_voltage must be a positive number"),
    "min above max": ("[ratings]\nmin_voltage = 1300\n", "min_voltage must be below max_voltage"),
    "string as bool": ('[ratings]\nbidirectional = "no"\n', "bidirectional must be true or false"),
    "unknown service": ('[services]\noffer = ["ccs"]\n', "offer must list services"),
    "no service": ("[services]\noffer = []\n", "offer must list services"),
    "unknown mode": ('[services]\ncontrol_modes = ["manual"]\n', "control_modes must list"),
    "zero timeout": ("[session]\nsequence_timeout = 0\n", "sequence_timeout must be a positive number"),
    "bad step": ('[policy]\nsteps = [[0, "x"]]\n', "policy steps must be"),
    "negative step time": ("[policy]\nsteps = [[-5, 1000]]\n", "policy steps must be"),
    "step not a pair": ("[policy]\nsteps = [[0, 1, 2]]\n", "too many values"),
    "evse_id not a string": ("evse_id = 5\n", "evse_id must be a non-empty string"),
    "unidirectional BPT only": (
        '[ratings]\nbidirectional = false\n[services]\noffer = ["mcs-bpt"]\n',
        "must offer a service that is not BPT",
    ),
}


@pytest.mark.parametrize("name", list(BAD_CHARGER))
def test_bad_charger_config_is_refused(tmp_path: Path, name: str) -> None:
    text, says = BAD_CHARGER[name]
    path = tmp_path / "charger.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ChargerConfigError, match="charger.toml") as refused:
        load_charger_config(path)
    assert says in str(refused.value)


def test_missing_charger_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ChargerConfigError, match="No such file"):
        load_charger_config(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("hal", "settings", "says"),
    [
        ("can:infypower", {}, "unknown HAL driver"),
        ("mock", {"cable_ohm": "big"}, "cable_ohm must be a finite number"),
        ("mock", {"cable_ohm": -0.002}, "cable_ohm must be >= 0"),
        ("mock", {"rated_current_a": 0}, "rated_current_a must be positive"),
        ("mock", {"mcs": "yes"}, "mcs must be true or false"),
        ("mock", {"max_step_s": math.nan}, "max_step_s must be a finite number"),
        ("mock", {"flux_capacitor": 1.21}, "unknown mock plant settings"),
    ],
)
def test_bad_hal_settings_are_refused(tmp_path: Path, hal: str, settings: dict, says: str) -> None:
    lines = [f'driver = "{hal}"'] + [f"{k} = {v!r}".replace("'", '"') for k, v in settings.items()]
    path = tmp_path / "charger.toml"
    path.write_text("[hal]\n" + "\n".join(lines) + "\n")
    config = load_charger_config(path)
    with pytest.raises(ChargerConfigError, match=says):
        Charger.build(config, VirtualClock())


def test_plant_config_checks_its_values() -> None:
    assert PlantConfig().rated_current_a == 3000.0
    with pytest.raises(ValueError, match="output_capacitance_f must be positive"):
        PlantConfig(output_capacitance_f=0.0)


BAD_TRUCK = {
    "not TOML": ("initial_soc = = 0.3", "Invalid value"),
    "binary": (b"\xff\xfe\x00", "decode"),
    "unknown key": ("battery_kwh = 560\n", "unknown truck settings ['battery_kwh']"),
    "soc above 1": ("initial_soc = 1.5\n", "initial_soc must be a fraction"),
    "soc as bool": ("initial_soc = true\n", "initial_soc must be a fraction"),
    "nan target": ("target_soc = nan\n", "target_soc must be a fraction"),
    "min above target": ("min_soc = 0.9\ntarget_soc = 0.5\n", "min_soc must not exceed target_soc"),
    "inf departure": ("departure_s = inf\n", "departure_s must be a positive number"),
    "zero loop": ("loop_interval = 0\n", "loop_interval must be a positive number"),
    "string as bool": ('offers_v2g = "no"\n', "offers_v2g must be true or false"),
    "negative cycles": ("max_contactor_cycles = -1\n", "max_contactor_cycles must be a whole number"),
    "fractional loops": ("charge_loops = 2.5\n", "charge_loops must be a whole number"),
    "unknown service": ('service = "ccs"\n', "service 'ccs' is not one of"),
    "unknown control": ('control = "manual"\n', "control 'manual' is not one of"),
    "empty vin": ('vin = ""\n', "vin must be a non-empty string"),
}


@pytest.mark.parametrize("name", list(BAD_TRUCK))
def test_bad_truck_config_is_refused(tmp_path: Path, name: str) -> None:
    text, says = BAD_TRUCK[name]
    path = tmp_path / "truck.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(TruckConfigError, match="truck.toml") as refused:
        load_truck_config(path)
    assert says in str(refused.value)


def test_truck_flags_override_the_file_and_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "truck.toml"
    path.write_text("initial_soc = 0.4\ntarget_soc = 0.9\n")
    assert load_truck_config(path, initial_soc=0.5, target_soc=None).initial_soc == 0.5
    with pytest.raises(TruckConfigError, match="min_soc must not exceed target_soc"):
        load_truck_config(path, min_soc=0.95)


@pytest.mark.parametrize(
    "argv",
    [
        ["evse", "--listen", "[::1]:0", "--no-tls", "--config", "{bad}"],
        ["evse", "--listen", "[::1]:0", "--no-tls", "--hal", "can:nowhere"],
        ["ev", "--connect", "[::1]:1", "--no-tls", "--config", "{bad}"],
    ],
    ids=["evse --config", "evse --hal", "ev --config"],
)
def test_cli_refuses_bad_settings_in_one_line(tmp_path: Path, capsys, argv: list[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[ratings]\nmax_power = -1\n" if argv[0] == "evse" else "initial_soc = 7\n")
    assert main([a.replace("{bad}", str(bad)) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mcs-v2g: error: ") and "\n" not in err and "Traceback" not in err


@pytest.mark.parametrize(
    "flags",
    [
        ["--soc", "1.2"],
        ["--soc", "nan"],
        ["--target-soc", "x"],
        ["--departure", "-5"],
        ["--departure", "inf"],
        ["--loop-interval", "0"],
        ["--charge-loops", "many"],
        ["--service", "ccs"],
    ],
)
def test_ev_flags_are_checked_before_anything_runs(capsys, flags: list[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["ev", "--connect", "[::1]:1", "--no-tls", *flags])
    assert stopped.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("address", ["[::1]", "[::1]:port", "[::1]:70000"])
def test_bad_addresses_are_refused(capsys, address: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["evse", "--listen", address, "--no-tls"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "argument --listen" in err and ("ADDR" in err or "port" in err)
