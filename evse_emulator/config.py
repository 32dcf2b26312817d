"""What a charger is built from: ratings, offered services, session settings, its HAL and its energy policy.

evse_id = "DE*MCS*E0001"
[ratings]
max_voltage = 1250          # V
max_current = 3000          # A
max_power = 3750000         # W
min_voltage = 200           # V
bidirectional = true
[services]
offer = ["dc", "dc-bpt", "mcs", "mcs-bpt"]
control_modes = ["scheduled", "dynamic"]
[session]
service_renegotiation = true
pause_allowed = true
standby_allowed = false
negative_discharge = false
send_discharged_energy = true
sequence_timeout = 60       # s, V2G_SECC_Sequence_Timeout
resume_within = 86400       # s a paused session may be rejoined (SeccConfig.resume_within)
metering_confirmation_wh = 5000  # PnC: ask for a signed MeteringConfirmation 5 kWh before the EV's target
[limits]                    # any field of stack.transport.limits.Limits; unset: its default there
max_connections = 64        # connections served at once
handshake_timeout = 5.0     # s
[hal]
driver = "mock"             # mock | can:<family>
# the driver's settings: for mock, any PlantConfig field (cable_ohm = 0.002, mcs = true, ...)
[policy]
steps = [[0, 750000], [1200, -750000]]   # optional timetable (s from the start, W); default: charge to target

Every key is checked when the file is read (`stack.config_file`): its type, its range (ratings up to 1 500 V,
3 000 A, 4.5 MW; step times >= 0 and increasing), its place (a key outside its section or in two places is
refused), `[limits]` against `Limits` (every bound a finite number above 0, whole where it counts bytes or
connections), and for the mock driver the `[hal]` settings against `PlantConfig`.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Annotated, Any

from annotated_types import Gt, Interval, Le, Len, MaxLen, MinLen

from stack.config_file import DISTINCT, ConfigError, Layout, Problem, one_of, validate, values_of
from stack.session.config import DEFAULT_RESUME_WITHIN, SeccConfig
from stack.session.controller import PowerLimits
from stack.session.services import SERVICE_NAMES, ControlMode, dc_offer
from stack.session.timers import SeccTimers
from stack.transport.limits import DEFAULT_LIMITS, MAX_SOCKET_BUFFER, Limits

from .energy.policy import step_problems

CONTROL_NAMES = {"scheduled": ControlMode.SCHEDULED, "dynamic": ControlMode.DYNAMIC}
LAYOUT = Layout(
    top=frozenset({"evse_id"}),
    sections={
        "ratings": frozenset({"max_voltage", "max_current", "max_power", "min_voltage", "bidirectional"}),
        "services": frozenset({"offer", "control_modes"}),
        "session": frozenset(
            {
                "service_renegotiation",
                "pause_allowed",
                "standby_allowed",
                "negative_discharge",
                "send_discharged_energy",
                "sequence_timeout",
                "resume_within",
                "metering_confirmation_wh",
            }
        ),
        "limits": frozenset(f.name for f in fields(Limits)),
        "policy": frozenset({"steps"}),
    },
    tables=frozenset({"hal"}),  # [hal]: `driver` and the driver's own settings
)
MIN_CHARGE_POWER_W = 5_000.0  # the least the converter regulates; announced as EVSEMinimumChargePower
# The most a charger of this emulator is rated for: MCS goes up to 1 250 V and 3 000 A (PROTOCOL.md section 9);
# 1 500 V is the low-voltage limit of DC equipment.
MAX_VOLTAGE_V = 1500.0
MAX_CURRENT_A = 3000.0
MAX_POWER_W = MAX_VOLTAGE_V * MAX_CURRENT_A
MAX_PLAN_S = 7 * 86_400.0  # a timetable step a week after the start is a typo
# the mock driver's plant ratings come from [ratings]: one place for each rating
MOCK_RATINGS = {"rated_voltage_v": "max_voltage", "rated_current_a": "max_current", "rated_power_w": "max_power"}

Volts = Annotated[float, Gt(0.0), Le(MAX_VOLTAGE_V)]
MIN_OUTPUT_VOLTAGE_V = 200.0  # a charger's lowest DC output by default (ours: the power stage's)
Amps = Annotated[float, Gt(0.0), Le(MAX_CURRENT_A)]
Watts = Annotated[float, Gt(0.0), Le(MAX_POWER_W)]
SignedWatts = Annotated[float, Interval(ge=-MAX_POWER_W, le=MAX_POWER_W)]
PlanSeconds = Annotated[float, Interval(ge=0.0, le=MAX_PLAN_S)]
# a timetable of at most two days at one step a minute (a longer one is a different kind of input)
MAX_PLAN_STEPS = 2880
Plan = Annotated[tuple[tuple[PlanSeconds, SignedWatts], ...], MaxLen(MAX_PLAN_STEPS)]
TimeoutSeconds = Annotated[float, Interval(ge=1.0, le=3600.0)]
Seconds = Annotated[float, Gt(0.0)]  # finite: the schema refuses NaN and infinity
ServiceNames = Annotated[tuple[Annotated[str, one_of(SERVICE_NAMES)], ...], MinLen(1), DISTINCT]
ControlNames = Annotated[tuple[Annotated[str, one_of(CONTROL_NAMES)], ...], MinLen(1), DISTINCT]
Identifier = Annotated[str, Len(1, 255)]  # EVSEID: 1 to 255 characters in -20


class ChargerConfigError(ConfigError):
    """A charger setting is missing, unknown or out of range (the message names it)."""


def _limits_schema() -> type[Any]:
    """`Limits` as a config schema: its fields and defaults, each bound above 0 (`Limits` checks the same, one
    field at a time; the schema names every bad key at once), the socket buffer a C int."""
    hints = typing.get_type_hints(Limits)
    bounds: dict[str, Any] = {name: Gt(0) for name in hints}
    bounds["socket_send_buffer"] = Interval(gt=0, le=MAX_SOCKET_BUFFER)
    return make_dataclass(
        "Limits",
        [(f.name, Annotated[hints[f.name], bounds[f.name]], field(default=f.default)) for f in fields(Limits)],
        frozen=True,
    )


LimitsSchema = _limits_schema()


@dataclass(frozen=True, slots=True)
class ChargerConfig:
    evse_id: Identifier = "DE*MCS*E0001"
    max_voltage: Volts = 1250.0
    max_current: Amps = 3000.0
    max_power: Watts = 3_750_000.0
    min_voltage: Volts = MIN_OUTPUT_VOLTAGE_V
    bidirectional: bool = True
    offer: ServiceNames = tuple(SERVICE_NAMES)
    control_modes: ControlNames = ("scheduled", "dynamic")
    service_renegotiation: bool = True
    pause_allowed: bool = True
    standby_allowed: bool = False
    negative_discharge: bool = False
    send_discharged_energy: bool = True
    sequence_timeout: TimeoutSeconds = 60.0
    resume_within: Seconds = DEFAULT_RESUME_WITHIN
    # PnC: ask for one signed MeteringConfirmation when the EV's remaining energy request falls to this (Wh)
    metering_confirmation_wh: Annotated[float, Gt(0.0)] | None = None
    limits: Limits = DEFAULT_LIMITS  # [limits], checked by `LimitsSchema` when read from a file
    hal: Annotated[str, MinLen(1)] = "mock"
    hal_settings: dict[str, Any] = field(default_factory=dict)
    steps: Plan = ()

    def ratings(self) -> PowerLimits:
        discharge = self.bidirectional
        return PowerLimits(
            max_charge_power=self.max_power,
            min_charge_power=MIN_CHARGE_POWER_W,
            max_charge_current=self.max_current,
            min_charge_current=0.0,
            max_voltage=self.max_voltage,
            min_voltage=self.min_voltage,
            max_discharge_power=self.max_power if discharge else None,
            min_discharge_power=MIN_CHARGE_POWER_W if discharge else None,
            max_discharge_current=self.max_current if discharge else None,
            min_discharge_current=0.0 if discharge else None,
        )

    def secc_config(self) -> SeccConfig:
        modes = tuple(CONTROL_NAMES[m] for m in self.control_modes)
        offers = tuple(dc_offer(SERVICE_NAMES[s], modes) for s in self.offer if self.bidirectional or "bpt" not in s)
        return SeccConfig(
            offers=offers,
            timers=SeccTimers(sequence=self.sequence_timeout),
            service_renegotiation=self.service_renegotiation,
            pause_allowed=self.pause_allowed,
            standby_allowed=self.standby_allowed,
            negative_discharge=self.negative_discharge,
            send_discharged_energy=self.send_discharged_energy,
            resume_within=self.resume_within,
        )

    def cross_check(self) -> list[Problem]:
        """What is wrong between fields (each field alone is checked by its type)."""
        problems = []
        if self.min_voltage >= self.max_voltage:
            problems.append(
                Problem(
                    "min_voltage",
                    f"min_voltage ({self.min_voltage} V) must be below max_voltage ({self.max_voltage} V)",
                )
            )
        if not self.bidirectional and all("bpt" in s for s in self.offer):
            problems.append(Problem("offer", "a unidirectional charger must offer a service that is not BPT"))
        return problems + step_problems(self.steps)

    def checked(self) -> ChargerConfig:
        """This config, or a `ChargerConfigError` naming every bad value."""
        return validate(ChargerConfig, values_of(self), error=ChargerConfigError)


def load_charger_config(path: Path | None, **overrides: Any) -> ChargerConfig:
    """The defaults, then the TOML file, then `overrides` (flags; None values are skipped).

    `[hal]` holds `driver` and the driver's settings; the mock driver's are checked here (its `PlantConfig`).
    """
    values: dict[str, Any] = {}
    keys: dict[str, str] = {}
    if path is not None:
        values, keys = LAYOUT.read(path, ChargerConfigError)
        hal = values.pop("hal", {})
        if "driver" in hal:
            values["hal"], keys["hal"] = hal.pop("driver"), "hal.driver"
        values["hal_settings"], keys["hal_settings"] = hal, "hal"
        values["limits"], keys["limits"] = _limits(values, keys, path), "limits"
    values.update({k: v for k, v in overrides.items() if v is not None})
    config = validate(ChargerConfig, values, keys=keys, path=path, error=ChargerConfigError)
    if config.hal == "mock":
        _check_mock_settings(config.hal_settings, path)
    return config


def _limits(values: dict[str, Any], keys: dict[str, str], path: Path) -> Limits:
    """The `[limits]` keys taken out of `values`, checked, as `Limits` (the defaults for those not written)."""
    written = {name: values.pop(name) for name in LAYOUT.sections["limits"] if name in values}
    checked = validate(LimitsSchema, written, keys=keys, path=path, error=ChargerConfigError)
    return Limits(**values_of(checked))


def _check_mock_settings(settings: dict[str, Any], path: Path | None) -> None:
    from .hal.mock import PlantConfig

    twice = [Problem(f"hal.{k}", f"set by [ratings] {MOCK_RATINGS[k]}") for k in settings if k in MOCK_RATINGS]
    if twice:
        raise ChargerConfigError(twice, path)
    keys = {name: f"hal.{name}" for name in settings}
    validate(PlantConfig, settings, keys=keys, path=path, error=ChargerConfigError)
