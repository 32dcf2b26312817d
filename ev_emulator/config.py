"""What a truck is told before it plugs in: its battery, its needs, the service it asks for (TOML or flags).

vin = "WMA06XZZ1MP123456"
service = "mcs-bpt"          # dc | dc-bpt | mcs | mcs-bpt
control = "dynamic"          # dynamic | scheduled
initial_soc = 0.30           # fractions of the usable capacity
target_soc = 0.80
min_soc = 0.20
v2g_reserve_soc = 0.40       # never discharge below this
offers_v2g = true
departure_s = 3600           # seconds after plug-in
max_contactor_cycles = 10    # closings this session
loop_interval = 0.25         # s between DC_ChargeLoopReq
leave_at_target = false      # stop once the target SoC is reached (else stay until departure)
charge_loops = 100           # optional bench limit: stop after this many charge loops
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from stack.session.services import SERVICE_NAMES

CONTROL_MODES = ("dynamic", "scheduled")


class TruckConfigError(ValueError):
    """A truck setting is missing, unknown or out of range (the message names it)."""


@dataclass(frozen=True, slots=True)
class TruckConfig:
    vin: str = "WMA06XZZ1MP123456"
    service: str = "mcs-bpt"
    control: str = "dynamic"
    initial_soc: float = 0.30
    target_soc: float = 0.80
    min_soc: float = 0.20
    v2g_reserve_soc: float = 0.40
    offers_v2g: bool = True
    departure_s: float = 3600.0
    max_contactor_cycles: int | None = 10
    loop_interval: float = 0.25
    leave_at_target: bool = False
    charge_loops: int | None = None

    def checked(self) -> TruckConfig:
        """This config, or a `TruckConfigError` naming every bad value."""
        problems = []
        if self.service not in SERVICE_NAMES:
            problems.append(f"service {self.service!r} is not one of {sorted(SERVICE_NAMES)}")
        if self.control not in CONTROL_MODES:
            problems.append(f"control {self.control!r} is not one of {list(CONTROL_MODES)}")
        for name in ("initial_soc", "target_soc", "min_soc", "v2g_reserve_soc"):
            value = getattr(self, name)
            if not _number(value) or not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be a fraction in [0, 1], got {value!r}")
        if not problems and self.min_soc > self.target_soc:
            problems.append("min_soc must not exceed target_soc")
        for name in ("departure_s", "loop_interval"):
            value = getattr(self, name)
            if not _number(value) or not value > 0:
                problems.append(f"{name} must be a positive number of seconds, got {value!r}")
        for name in ("max_contactor_cycles", "charge_loops"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                problems.append(f"{name} must be a whole number >= 0, got {value!r}")
        for name in ("offers_v2g", "leave_at_target"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be true or false")
        if not isinstance(self.vin, str) or not self.vin:
            problems.append("vin must be a non-empty string")
        if problems:
            raise TruckConfigError("; ".join(problems))
        return self


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def load_truck_config(path: Path | None, **overrides: Any) -> TruckConfig:
    """The defaults, then the TOML file's keys, then `overrides` (flags; None values are skipped)."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise TruckConfigError(f"{path}: {exc}") from None
    values.update({k: v for k, v in overrides.items() if v is not None})
    where = f"{path}: " if path else ""
    known = {f.name for f in fields(TruckConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TruckConfigError(f"{where}unknown truck settings {unknown}; known: {sorted(known)}")
    try:
        return replace(TruckConfig(), **values).checked()
    except TruckConfigError as exc:
        raise TruckConfigError(f"{where}{exc}") from None
