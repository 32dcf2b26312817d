"""Bad settings for the charger and the truck are refused with a typed error that names them: the TOML loaders,
the mock driver's plant settings, and the `mcs-v2g evse` / `mcs-v2g ev` command lines (one line, exit 2)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from ev_emulator import TruckConfigError, load_truck_config
from evse_emulator import Charger, ChargerConfig, ChargerConfigError, load_charger_config
from evse_emulator.hal.mock import PlantConfig
from mcs_v2g.cli import main
from stack.clock import VirtualClock
from stack.session.config import SeccConfig
from stack.transport.limits import Limits

BAD_CHARGER = {
    "not TOML": ("[ratings\nmax_power = ", "Expected ']'"),
    "binary": (b"\x00\xff\xfe\x00", "not UTF-8"),
    "top-level rating": ("max_power = 1000000\n", "max_power: belongs in [ratings]"),
    "unknown section": ("[plan]\nsteps = []\n", "[plan]: unknown section"),
    "unknown key": ("[ratings]\nmax_power = 1e6\nbogus = 1\n", "ratings.bogus: unknown key"),
    "negative power": ("[ratings]\nmax_power = -1\n", "ratings.max_power: must be greater than 0, got -1"),
    "nan power": ("[ratings]\nmax_power = nan\n", "ratings.max_power: must be a finite number"),
    "inf power": ("[ratings]\nmax_power = inf\n", "ratings.max_power: must be a finite number"),
    "inf current": ("[ratings]\nmax_current = inf\n", "ratings.max_current: must be a finite number"),
    "current above MCS": ("[ratings]\nmax_current = 3500\n", "ratings.max_current: must be less than or equal"),
    "string voltage": ('[ratings]\nmax_voltage = "1250"\n', "ratings.max_voltage: must be a number"),
    "bool as number": ("[ratings]\nmax_voltage = true\n", "ratings.max_voltage: must be a number, got true"),
    "min above max": ("[ratings]\nmin_voltage = 1300\n", "ratings.min_voltage: min_voltage (1300.0 V) must be below"),
    "string as bool": ('[ratings]\nbidirectional = "no"\n', "ratings.bidirectional: must be true or false"),
    "table as rating": ("[ratings.max_power]\nx = 1\n", "ratings.max_power: must be a number"),
    "section as value": ("ratings = 5\n", "ratings: must be a table [ratings]"),
    "unknown service": ('[services]\noffer = ["ccs"]\n', "services.offer[0]: must be one of dc, dc-bpt, mcs, mcs-bpt"),
    "no service": ("[services]\noffer = []\n", "services.offer: must have at least 1 item"),
    "service twice": ('[services]\noffer = ["mcs", "mcs"]\n', "services.offer: must not name an entry twice"),
    "unknown mode": ('[services]\ncontrol_modes = ["manual"]\n', "services.control_modes[0]: must be one of"),
    "zero timeout": ("[session]\nsequence_timeout = 0\n", "session.sequence_timeout: must be greater than or equal"),
    "bad step": ('[policy]\nsteps = [[0, "x"]]\n', "policy.steps[0][1]: must be a number"),
    "nan step": ("[policy]\nsteps = [[0, nan]]\n", "policy.steps[0][1]: must be a finite number"),
    "negative step time": (
        "[policy]\nsteps = [[-5, 1000]]\n",
        "policy.steps[0][0]: must be greater than or equal to 0",
    ),
    "steps not in order": ("[policy]\nsteps = [[0, 1], [60, 2], [30, 3]]\n", "policy.steps[2][0]: must be later"),
    "step not a pair": ("[policy]\nsteps = [[0, 1, 2]]\n", "policy.steps[0]: must have at most 2 items"),
    "evse_id not a string": ("evse_id = 5\n", "evse_id: must be a string, got 5"),
    "empty evse_id": ('evse_id = ""\n', "evse_id: must have at least 1 character"),
    "unidirectional BPT only": (
        '[ratings]\nbidirectional = false\n[services]\noffer = ["mcs-bpt"]\n',
        "services.offer: a unidirectional charger must offer a service that is not BPT",
    ),
    "hal not a table": ('hal = "mock"\n', "hal: must be a table [hal]"),
    "unknown plant setting": ("[hal]\nflux_capacitor = 1.21\n", "hal.flux_capacitor: unknown key"),
    "plant setting of the wrong type": ('[hal]\ncable_ohm = "big"\n', "hal.cable_ohm: must be a number"),
    "negative plant setting": ("[hal]\ncable_ohm = -0.002\n", "hal.cable_ohm: must be >= 0"),
    "rating set twice": ("[hal]\nrated_current_a = 500\n", "hal.rated_current_a: set by [ratings] max_current"),
    "zero resume window": ("[session]\nresume_within = 0\n", "session.resume_within: must be greater than 0, got 0"),
    "inf resume window": ("[session]\nresume_within = inf\n", "session.resume_within: must be a finite number"),
    "resume window as text": ('[session]\nresume_within = "1d"\n', "session.resume_within: must be a number"),
    "limits not a table": ("limits = 5\n", "limits: must be a table [limits]"),
    "limit at the top level": ("max_connections = 8\n", "max_connections: belongs in [limits]"),
    "unknown limit": ("[limits]\nmax_sessions = 8\n", "limits.max_sessions: unknown key; known here: decode_in"),
    "zero connections": ("[limits]\nmax_connections = 0\n", "limits.max_connections: must be greater than 0, got 0"),
    "fractional connections": ("[limits]\nmax_connections = 2.5\n", "limits.max_connections: must be a whole number"),
    "negative timeout": ("[limits]\nframe_timeout = -1\n", "limits.frame_timeout: must be greater than 0, got -1"),
    "nan timeout": ("[limits]\nhandshake_timeout = nan\n", "limits.handshake_timeout: must be a finite number"),
    "inf timeout": ("[limits]\nsend_timeout = inf\n", "limits.send_timeout: must be a finite number"),
    "bool as limit": ("[limits]\nread_buffer = true\n", "limits.read_buffer: must be a whole number, got true"),
    "string as limit": ('[limits]\nmax_payload = "64k"\n', "limits.max_payload: must be a whole number, got '64k'"),
    "socket buffer beyond a C int": (
        "[limits]\nsocket_send_buffer = 4294967296\n",
        "limits.socket_send_buffer: must be less than or equal to 2147483647",
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


def test_every_bad_limit_is_named_at_once(tmp_path: Path) -> None:
    path = tmp_path / "charger.toml"
    path.write_text("[limits]\nmax_connections = 0\nwrite_buffer = -5\nfirst_message_timeout = nan\n")
    with pytest.raises(ChargerConfigError) as refused:
        load_charger_config(path)
    assert [p.key for p in refused.value.problems] == [
        "limits.max_connections",
        "limits.first_message_timeout",
        "limits.write_buffer",
    ]


def test_limits_and_resume_window_reach_the_secc(tmp_path: Path) -> None:
    """Written keys are taken, the others keep the defaults of `Limits` and `SeccConfig`."""
    path = tmp_path / "charger.toml"
    path.write_text("[session]\nresume_within = 3600\n[limits]\nmax_connections = 8\nhandshake_timeout = 3\n")
    config = load_charger_config(path)
    assert config.limits == replace(Limits(), max_connections=8, handshake_timeout=3.0)
    assert config.secc_config().resume_within == 3600.0
    assert Charger.build(config, VirtualClock()).server().limits == config.limits
    plain = tmp_path / "plain.toml"
    plain.write_text('evse_id = "DE*MCS*E0002"\n')
    defaults = load_charger_config(plain)
    assert defaults.limits == Limits() and defaults.secc_config().resume_within == SeccConfig().resume_within


def test_missing_charger_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ChargerConfigError, match="absent.toml: no such file"):
        load_charger_config(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("hal", "settings", "says"),
    [
        ("serial:x", {}, "unknown HAL driver"),
        ("can:acme", {}, "unknown CAN module family 'acme'"),
        ("can:infypower", {"channel": "can0"}, r"unknown CAN driver settings \['channel'\]"),
        ("can:infypower", {"bus": "nobus"}, "CAN bus must be INTERFACE:CHANNEL"),
        ("mock", {"cable_ohm": "big"}, "cable_ohm: must be a finite number"),
        ("mock", {"cable_ohm": -0.002}, "cable_ohm: must be >= 0"),
        ("mock", {"rated_current_a": 0}, "rated_current_a: must be positive"),
        ("mock", {"mcs": "yes"}, "mcs: must be true or false"),
        ("mock", {"max_step_s": math.nan}, "max_step_s: must be a finite number"),
        ("mock", {"flux_capacitor": 1.21}, "unknown mock plant settings"),
    ],
)
def test_bad_hal_settings_made_in_code_are_refused_by_build(hal: str, settings: dict, says: str) -> None:
    """A config built in code (not loaded) meets the driver's own checks when the charger is assembled."""
    config = ChargerConfig(hal=hal, hal_settings=settings)
    with pytest.raises(ChargerConfigError, match=says):
        Charger.build(config, VirtualClock())


def test_plant_config_checks_its_values() -> None:
    assert PlantConfig().rated_current_a == 3000.0
    with pytest.raises(ValueError, match="output_capacitance_f: must be positive") as refused:
        PlantConfig(output_capacitance_f=0.0, over_current_factor=0.5, imd_voltage_tolerance=1.0)
    assert "over_current_factor: must be at least 1" in str(refused.value)
    assert "imd_voltage_tolerance: must be below 1" in str(refused.value)


def test_code_built_charger_config_is_checked_like_a_file() -> None:
    with pytest.raises(ChargerConfigError, match="max_power: must be greater than 0"):
        ChargerConfig(max_power=-1.0).checked()
    with pytest.raises(ChargerConfigError, match=r"steps\[1\]\[0\]: must be later"):
        ChargerConfig(steps=((10.0, 1.0), (10.0, 2.0))).checked()
    assert ChargerConfig(max_power=400_000).checked().max_power == 400_000.0  # an int is a number
    with pytest.raises(ChargerConfigError, match="limits: must be an instance of Limits"):
        ChargerConfig(limits={"max_connections": 1}).checked()  # type: ignore[arg-type]
    with pytest.raises(ChargerConfigError, match="resume_within: must be greater than 0"):
        ChargerConfig(resume_within=-1.0).checked()


BAD_TRUCK = {
    "not TOML": ("initial_soc = = 0.3", "Invalid value"),
    "binary": (b"\xff\xfe\x00", "not UTF-8"),
    "unknown key": ("battery_kwh = 560\n", "battery_kwh: unknown key"),
    "unknown section": ("[battery]\ncapacity = 560\n", "[battery]: unknown section"),
    "soc above 1": ("initial_soc = 1.5\n", "initial_soc: must be less than or equal to 1"),
    "soc as bool": ("initial_soc = true\n", "initial_soc: must be a number, got true"),
    "soc as string": ('initial_soc = "0.3"\n', "initial_soc: must be a number, got '0.3'"),
    "nan target": ("target_soc = nan\n", "target_soc: must be a finite number"),
    "min above target": ("min_soc = 0.9\ntarget_soc = 0.5\n", "min_soc: must not exceed target_soc"),
    "inf departure": ("departure_s = inf\n", "departure_s: must be a finite number"),
    "departure in a year": ("departure_s = 31536000\n", "departure_s: must be less than or equal"),
    "zero loop": ("loop_interval = 0\n", "loop_interval: must be greater than or equal to 0.01"),
    "millisecond loop": ("loop_interval = 0.001\n", "loop_interval: must be greater than or equal to 0.01"),
    "minute loop": ("loop_interval = 60\n", "loop_interval: must be less than or equal to 30"),
    "string as bool": ('offers_v2g = "no"\n', "offers_v2g: must be true or false, got 'no'"),
    "number as bool": ("leave_at_target = 1\n", "leave_at_target: must be true or false, got 1"),
    "negative cycles": ("max_contactor_cycles = -1\n", "max_contactor_cycles: must be greater than or equal to 0"),
    "fractional loops": ("charge_loops = 2.5\n", "charge_loops: must be a whole number"),
    "unknown service": ('service = "ccs"\n', "service: must be one of dc, dc-bpt, mcs, mcs-bpt, got 'ccs'"),
    "unknown control": ('control = "manual"\n', "control: must be one of dynamic, scheduled"),
    "empty vin": ('vin = ""\n', "vin: must have at least 1 character"),
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
    with pytest.raises(TruckConfigError, match="min_soc: must not exceed target_soc"):
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
