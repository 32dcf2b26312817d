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
[hal]
driver = "mock"             # mock | can:<family>
# the driver's settings: for mock, any PlantConfig field (cable_ohm = 0.002, mcs = true, ...)
[policy]
steps = [[0, 750000], [1200, -750000]]   # optional timetable (s from the start, W); default: charge to target
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stack.session.config import SeccConfig
from stack.session.controller import PowerLimits
from stack.session.services import SERVICE_NAMES, ControlMode, dc_offer
from stack.session.timers import SeccTimers

CONTROL_NAMES = {"scheduled": ControlMode.SCHEDULED, "dynamic": ControlMode.DYNAMIC}
SECTIONS = {
    "ratings": {"max_voltage", "max_current", "max_power", "min_voltage", "bidirectional"},
    "services": {"offer", "control_modes"},
    "session": {
        "service_renegotiation",
        "pause_allowed",
        "standby_allowed",
        "negative_discharge",
        "send_discharged_energy",
        "sequence_timeout",
    },
    "policy": {"steps"},
}
MIN_CHARGE_POWER_W = 5_000.0  # the least the converter regulates; announced as EVSEMinimumChargePower


class ChargerConfigError(ValueError):
    """A charger setting is missing, unknown or out of range (the message names it)."""


@dataclass(frozen=True, slots=True)
class ChargerConfig:
    evse_id: str = "DE*MCS*E0001"
    max_voltage: float = 1250.0
    max_current: float = 3000.0
    max_power: float = 3_750_000.0
    min_voltage: float = 200.0
    bidirectional: bool = True
    offer: tuple[str, ...] = tuple(SERVICE_NAMES)
    control_modes: tuple[str, ...] = ("scheduled", "dynamic")
    service_renegotiation: bool = True
    pause_allowed: bool = True
    standby_allowed: bool = False
    negative_discharge: bool = False
    send_discharged_energy: bool = True
    sequence_timeout: float = 60.0
    hal: str = "mock"
    hal_settings: dict[str, Any] = field(default_factory=dict)
    steps: tuple[tuple[float, float], ...] = ()

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
        )

    def checked(self) -> ChargerConfig:
        problems = []
        for name in ("max_voltage", "max_current", "max_power", "min_voltage", "sequence_timeout"):
            value = getattr(self, name)
            if not _number(value) or value <= 0:
                problems.append(f"{name} must be a positive number, got {value!r}")
        if not problems and self.min_voltage >= self.max_voltage:
            problems.append("min_voltage must be below max_voltage")
        for name in (
            "bidirectional",
            "service_renegotiation",
            "pause_allowed",
            "standby_allowed",
            "negative_discharge",
            "send_discharged_energy",
        ):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be true or false")
        bad = [s for s in self.offer if s not in SERVICE_NAMES]
        if bad or not self.offer:
            problems.append(f"offer must list services of {sorted(SERVICE_NAMES)}, got {list(self.offer)}")
        bad = [m for m in self.control_modes if m not in CONTROL_NAMES]
        if bad or not self.control_modes:
            problems.append(f"control_modes must list some of {sorted(CONTROL_NAMES)}, got {list(self.control_modes)}")
        for t, w in self.steps:
            if not (_number(t) and _number(w)) or t < 0:
                problems.append(f"policy steps must be [seconds >= 0, watts] pairs, got {[t, w]}")
        if not isinstance(self.evse_id, str) or not self.evse_id:
            problems.append("evse_id must be a non-empty string")
        if not self.bidirectional and not any("bpt" not in s for s in self.offer):
            problems.append("a unidirectional charger must offer a service that is not BPT")
        if problems:
            raise ChargerConfigError("; ".join(problems))
        return self


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def load_charger_config(path: Path | None, **overrides: Any) -> ChargerConfig:
    """The defaults, then the TOML file, then `overrides` (flags; None values are skipped)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ChargerConfigError(f"{path}: {exc}") from None
    where = f"{path}: " if path else ""
    values: dict[str, Any] = {}
    hal_settings: dict[str, Any] = {}
    for key, value in data.items():
        if key == "evse_id":
            values[key] = value
        elif key == "hal" and isinstance(value, dict):
            hal_settings = {k: v for k, v in value.items() if k != "driver"}
            if "driver" in value:
                values["hal"] = value["driver"]
        elif key in SECTIONS and isinstance(value, dict):
            unknown = sorted(set(value) - SECTIONS[key])
            if unknown:
                raise ChargerConfigError(f"{where}unknown keys {unknown} in [{key}]; known: {sorted(SECTIONS[key])}")
            values.update(value)
        else:
            known = sorted(["evse_id", "[hal]", *(f"[{s}]" for s in SECTIONS)])
            raise ChargerConfigError(f"{where}unknown setting {key!r}; known: {known}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        for name in ("offer", "control_modes"):
            if name in values:
                values[name] = tuple(values[name])
        if "steps" in values:
            values["steps"] = tuple((t, w) for t, w in values["steps"])
        return ChargerConfig(**values, hal_settings=hal_settings).checked()
    except (TypeError, ValueError) as exc:
        raise ChargerConfigError(f"{where}{exc}") from None
