"""The depot's MQTT contract, sans-I/O: topic names under `depot/<site>/...` and the JSON payloads, checked.

    depot/<site>/charger/<id>/telemetry   charger -> EMS   V, A, kW, SoC, state, session id (sim-time stamped)
    depot/<site>/charger/<id>/setpoint    EMS -> charger   {"t_s": .., "power_w": .., "valid_for_s": ..}
    depot/<site>/truck/<id>/announce      operator -> EMS  ETA/ETD, energy need, SoC bounds, booked
    depot/<site>/grid/limit               operator/DSO     {"t_s": .., "import_w": .., "export_w": ..}
    depot/<site>/status/<node>            every node       "online" / "offline" (retained; the last will)

A payload that is not JSON, lacks a key or has a value of the wrong type is rejected with the reason (the
caller logs it and goes on); a number out of range is clamped and the clamp is said. Nothing here raises.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

ONLINE, OFFLINE = "online", "offline"


@dataclass(frozen=True, slots=True)
class Topics:
    """The topic names of one site."""

    site: str

    def __post_init__(self) -> None:
        if not self.site or any(c in self.site for c in "/+#"):
            raise ValueError(f"a site name is one MQTT topic level (no '/', '+', '#'), got {self.site!r}")

    @property
    def root(self) -> str:
        return f"depot/{self.site}"

    def telemetry(self, charger: str) -> str:
        return f"{self.root}/charger/{charger}/telemetry"

    def setpoint(self, charger: str) -> str:
        return f"{self.root}/charger/{charger}/setpoint"

    def announce(self, truck: str) -> str:
        return f"{self.root}/truck/{truck}/announce"

    @property
    def grid_limit(self) -> str:
        return f"{self.root}/grid/limit"

    def status(self, node: str) -> str:
        return f"{self.root}/status/{node}"

    def charger_of(self, topic: str) -> str | None:
        """The charger id of a charger topic of this site, else None."""
        parts = topic.split("/")
        if len(parts) == 5 and parts[:3] == ["depot", self.site, "charger"]:
            return parts[3]
        return None


@dataclass(frozen=True, slots=True)
class Telemetry:
    t_s: float  # simulated seconds since the scenario start
    voltage_v: float
    current_a: float  # > 0 into the truck
    power_kw: float
    soc: float | None  # 0..1, None without a truck
    state: str  # idle, charging, discharging, paused, fault
    session_id: str | None

    def payload(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Setpoint:
    t_s: float
    power_w: float  # + charges the truck
    valid_for_s: float
    clamped: str | None = None  # what was out of range and clamped


@dataclass(frozen=True, slots=True)
class GridLimit:
    t_s: float
    import_w: float
    export_w: float


@dataclass(frozen=True, slots=True)
class Rejected:
    """A payload that cannot be used, and why (logged, then ignored)."""

    reason: str


def _object(payload: bytes) -> dict[str, Any] | Rejected:
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        return Rejected(f"not JSON: {exc}")
    if not isinstance(value, dict):
        return Rejected(f"not a JSON object: {type(value).__name__}")
    return value


def _number(value: dict[str, Any], key: str, default: float | None = None) -> float | Rejected:
    raw = value.get(key, default)
    if raw is None:
        return Rejected(f"missing {key!r}")
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        return Rejected(f"{key!r} must be a finite number, got {raw!r}")
    return float(raw)


def parse_setpoint(
    payload: bytes, max_charge_w: float, max_discharge_w: float, default_valid_s: float
) -> Setpoint | Rejected:
    """A setpoint for a charger rated `max_charge_w` / `max_discharge_w` (0: one-way): clamped to them."""
    value = _object(payload)
    if isinstance(value, Rejected):
        return value
    fields = [_number(value, "t_s"), _number(value, "power_w"), _number(value, "valid_for_s", default_valid_s)]
    for field in fields:
        if isinstance(field, Rejected):
            return field
    t_s, power, valid = (float(f) for f in fields)  # type: ignore[arg-type]
    if valid <= 0:
        return Rejected(f"'valid_for_s' must be positive, got {valid}")
    clamped = min(max(power, -max_discharge_w), max_charge_w)
    note = None if clamped == power else f"power_w {power:.0f} W clamped to {clamped:.0f} W"
    return Setpoint(t_s, clamped, valid, note)


def parse_grid_limit(payload: bytes) -> GridLimit | Rejected:
    value = _object(payload)
    if isinstance(value, Rejected):
        return value
    fields = [_number(value, "t_s"), _number(value, "import_w"), _number(value, "export_w")]
    for field in fields:
        if isinstance(field, Rejected):
            return field
    t_s, import_w, export_w = (float(f) for f in fields)  # type: ignore[arg-type]
    if import_w < 0 or export_w < 0:
        return Rejected(f"limits are magnitudes >= 0 W, got import {import_w}, export {export_w}")
    return GridLimit(t_s, import_w, export_w)


class SetpointWatchdog:
    """The charger's side: the EMS's last setpoint while it is valid, else a safe share (and it says so)."""

    def __init__(self, safe_w: float) -> None:
        self.safe_w = safe_w
        self._last: Setpoint | None = None
        self._received_s = -math.inf
        self.fallbacks = 0  # times the setpoints stopped and the safe share took over
        self._stale = True

    def update(self, setpoint: Setpoint, now: float) -> None:
        self._last, self._received_s = setpoint, now

    def power(self, now: float) -> tuple[float, bool]:
        """(the power to apply now, whether it is the fallback)."""
        last = self._last
        stale = last is None or now - self._received_s > last.valid_for_s
        if stale and not self._stale:
            self.fallbacks += 1
        self._stale = stale
        return (self.safe_w, True) if stale or last is None else (last.power_w, False)
