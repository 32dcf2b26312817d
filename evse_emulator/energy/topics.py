"""The depot's MQTT contract, sans-I/O: topic names under `depot/<site>/...` and the JSON payloads, checked.

    depot/<site>/charger/<id>/telemetry   charger -> EMS   V, A, kW, SoC, state, session id (sim-time stamped)
    depot/<site>/charger/<id>/setpoint    EMS -> charger   {"t_s": .., "power_w": .., "valid_for_s": ..}
    depot/<site>/truck/<id>/announce      operator -> EMS  ETA/ETD, energy need, SoC bounds, booked
    depot/<site>/grid/limit               operator/DSO     {"t_s": .., "import_w": .., "export_w": ..}
    depot/<site>/status/<node>            every node       "online" / "offline" (retained; the last will)
    depot/<site>/charger/<id>/step        charger -> EMS   the step's record (OutletStep) at its end
    depot/<site>/truck/<id>/outcome       charger -> EMS   how the truck's sessions went (VisitOutcome), after it left
    depot/<site>/node/<node>/ready        node -> EMS      {"t_s": .., "chargers": [..]}: all of step t_s published
    depot/<site>/ems/done                 EMS -> nodes     {"t_s": ..}: the EMS has every record and outcome

A payload that is not JSON, lacks a key or has a value of the wrong type is rejected with the reason (the
caller logs it and goes on); a number out of range is clamped and the clamp is said. Nothing here raises.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError

T = TypeVar("T")
# a telemetry voltage below a DC charger's range (IEC 61851-23: 150 V) is not a pack's (pre-charge, a glitch)
MIN_PACK_V = 150.0
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)

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

    def step(self, charger: str) -> str:
        return f"{self.root}/charger/{charger}/step"

    def outcome(self, truck: str) -> str:
        return f"{self.root}/truck/{truck}/outcome"

    def ready(self, node: str) -> str:
        return f"{self.root}/node/{node}/ready"

    @property
    def done(self) -> str:
        return f"{self.root}/ems/done"

    def charger_of(self, topic: str) -> str | None:
        """The charger id of a charger topic of this site, else None."""
        parts = topic.split("/")
        if len(parts) == 5 and parts[:3] == ["depot", self.site, "charger"]:
            return parts[3]
        return None


@dataclass(frozen=True, slots=True)
class Telemetry:
    """What a charger measures and hears over -20 (SoC, the EV's limits, its energy to target)."""

    __pydantic_config__ = _STRICT

    t_s: float  # simulated seconds since the scenario start
    voltage_v: float
    current_a: float  # > 0 into the truck
    power_kw: float
    soc: float | None  # 0..1 as the truck displays it, None without a truck
    state: str  # idle, connected, charging, discharging, paused, finished (the truck ended its charging), fault
    session_id: str | None
    truck: str | None = None  # the plugged-in truck (its EVCCID)
    # what the EV takes and gives now: its power limits in its last DC_ChargeLoopReq, or its current limits at the
    # present voltage where lower (`outlet.ev_power_now`)
    ev_max_charge_w: float = 0.0
    ev_max_discharge_w: float = 0.0
    energy_to_target_wh: float | None = None  # EVTargetEnergyRequest
    energy_to_full_wh: float | None = None  # EVMaximumEnergyRequest: to the truck's maximum SoC
    cycles_used: int = 0  # PowerDelivery(Start)s of this truck's visit: its contactor closings

    def payload(self) -> bytes:
        return _json(self)


@dataclass(frozen=True, slots=True)
class Setpoint:
    """EMS -> charger, for `truck` (None: whichever is plugged in); `fcr_w` is this charger's share of the FCR
    capacity, applied as a droop on the frequency it measures at each charge loop; `fcr_down_w` a share applied only
    where the droop lowers the import (under-frequency), for a charger that cannot raise it (at its maximum);
    `fcr_up_w` the most the droop may raise the power (the import) by, where the site's 15-min peak leaves no more
    room (None: the whole of `fcr_w`)."""

    __pydantic_config__ = _STRICT

    t_s: float
    power_w: float  # + charges the truck
    valid_for_s: float
    clamped: str | None = None  # what was out of range and clamped
    truck: str | None = None
    paused: bool = False  # no energy now: the session pauses (a contactor cycle to resume)
    fcr_w: float = 0.0
    deadband_hz: float = 0.0
    profile: tuple[tuple[float, float, int], ...] = ()  # Scheduled mode: (s, W, price level) from t_s on
    price_levels: int = 0  # the number of price levels the profile's levels are out of
    fcr_down_w: float = 0.0
    fcr_up_w: float | None = None

    def payload(self) -> bytes:
        return _json(self)


@dataclass(frozen=True, slots=True)
class Announcement:
    """Operator -> EMS: a truck's visit as the backend knows it before (booked) or at (walk-in) arrival."""

    __pydantic_config__ = _STRICT

    t_s: float  # when it is announced
    truck: str
    charger: str
    arrival_s: float
    departure_s: float
    battery_wh: float
    soc: float  # expected at arrival, 0..1 of the usable energy
    target_soc: float
    min_soc: float  # V2G floor
    max_charge_w: float
    max_discharge_w: float
    min_power_w: float
    booked: bool
    max_contactor_cycles: int

    def payload(self) -> bytes:
        return _json(self)


@dataclass(frozen=True, slots=True)
class OutletStep:
    """Charger -> EMS at a dispatch step's end: what the plant delivered in the step (the depot report's step)."""

    __pydantic_config__ = _STRICT

    t_s: float  # the step's start
    charger: str
    truck: str | None
    power_w: float  # mean DC power (+ into the truck)
    grid_w: float  # mean grid-side power through the charger's efficiency
    soc: float | None  # the truck's SoC at the step's end
    setpoint_w: float
    fcr_w: float  # mean power delivered for FCR (part of power_w)

    def payload(self) -> bytes:
        return _json(self)


@dataclass(frozen=True, slots=True)
class VisitOutcome:
    """Charger -> EMS when a truck has left: how its sessions went."""

    __pydantic_config__ = _STRICT

    truck: str
    charger: str
    contactor_cycles: int
    direction_changes: int
    session_result: str
    messages: int
    min_soc_seen: float

    def payload(self) -> bytes:
        return _json(self)


def _json(record: object) -> bytes:
    return json.dumps(asdict(record), separators=(",", ":")).encode()  # type: ignore[call-overload]


def parse_record(cls: type[T], payload: bytes) -> T | Rejected:
    """A record of the contract from its JSON, strictly (no missing or unknown key, no wrong type, finite)."""
    try:
        return TypeAdapter(cls).validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        return Rejected(f"{where}: {first['msg']}")


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
        text = payload.decode("utf-8-sig")  # a leading byte-order mark is no error
    except UnicodeDecodeError as exc:
        return Rejected(f"not JSON: not UTF-8 text (byte 0x{payload[exc.start]:02x} at {exc.start})")
    try:
        value = json.loads(text)
    except ValueError as exc:
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
    extras = _setpoint_extras(value, max(max_charge_w, max_discharge_w))
    if isinstance(extras, Rejected):
        return extras
    clamped = min(max(power, -max_discharge_w), max_charge_w)
    notes = [] if clamped == power else [f"power_w {power:.0f} W clamped to {clamped:.0f} W"]
    truck, paused, fcr, fcr_down, fcr_note, deadband = extras
    notes += [fcr_note] if fcr_note else []
    schedule = _profile(value, max_charge_w, max_discharge_w)
    if isinstance(schedule, Rejected):
        return schedule
    profile, levels = schedule
    up = _fcr_up(value, fcr)
    if isinstance(up, Rejected):
        return up
    note = "; ".join(notes) or None
    return Setpoint(t_s, clamped, valid, note, truck, paused, fcr, deadband, profile, levels, fcr_down, up)


def _fcr_up(value: dict[str, Any], fcr_w: float) -> float | None | Rejected:
    """The optional cap on the droop's import (null or absent: none), at most the symmetric share."""
    if value.get("fcr_up_w") is None:
        return None
    up = _number(value, "fcr_up_w")
    if isinstance(up, Rejected):
        return up
    if up < 0:
        return Rejected(f"'fcr_up_w' must be >= 0 or null, got {up}")
    return min(up, fcr_w)


def _profile(
    value: dict[str, Any], max_charge_w: float, max_discharge_w: float
) -> tuple[tuple[tuple[float, float, int], ...], int] | Rejected:
    """The optional Scheduled-mode profile: [[seconds, watts, price level], ...] and its number of levels; powers
    clamped to the ratings."""
    raw, levels = value.get("profile", []), value.get("price_levels", 0)
    if not isinstance(levels, int) or isinstance(levels, bool) or not 0 <= levels <= 255:
        return Rejected(f"'price_levels' must be a whole number 0..255, got {levels!r}")
    if not isinstance(raw, list) or len(raw) > 1024:
        return Rejected("'profile' must be a list of at most 1024 [seconds, watts, level] entries")
    entries = []
    for entry in raw:
        ok = isinstance(entry, list) and len(entry) == 3 and all(_finite_number(v) for v in entry)
        if not ok or entry[0] <= 0 or not float(entry[2]).is_integer() or not 0 <= entry[2] <= max(levels - 1, 0):
            return Rejected(f"'profile' entries are [seconds > 0, watts, level < price_levels], got {entry!r}")
        entries.append((float(entry[0]), min(max(float(entry[1]), -max_discharge_w), max_charge_w), int(entry[2])))
    return tuple(entries), levels


def _finite_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _setpoint_extras(
    value: dict[str, Any], rating_w: float
) -> tuple[str | None, bool, float, float, str, float] | Rejected:
    """The optional keys of a setpoint: truck, paused, the FCR shares (clamped to the rating) and their deadband."""
    truck, paused = value.get("truck"), value.get("paused", False)
    if truck is not None and not isinstance(truck, str):
        return Rejected(f"'truck' must be a string or null, got {truck!r}")
    if not isinstance(paused, bool):
        return Rejected(f"'paused' must be true or false, got {paused!r}")
    fcr, down, deadband = (_number(value, k, 0.0) for k in ("fcr_w", "fcr_down_w", "deadband_hz"))
    for field in (fcr, down, deadband):
        if isinstance(field, Rejected):
            return field
    fcr_w, down_w, band = float(fcr), float(down), float(deadband)  # type: ignore[arg-type]
    if fcr_w < 0 or down_w < 0 or not 0 <= band < 0.2:
        return Rejected(
            f"'fcr_w' and 'fcr_down_w' must be >= 0 and 'deadband_hz' within [0, 0.2), got {fcr_w}, {down_w}, {band}"
        )
    notes = [
        f"{k} {w:.0f} W clamped to {rating_w:.0f} W"
        for k, w in (("fcr_w", fcr_w), ("fcr_down_w", down_w))
        if w > rating_w
    ]
    return truck, paused, min(fcr_w, rating_w), min(down_w, rating_w), "; ".join(notes), band


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

    def current(self, now: float) -> Setpoint | None:
        """The last setpoint while it is valid, else None (a fallback starts: counted, and logged by the caller)."""
        last = self._last
        stale = last is None or now - self._received_s > last.valid_for_s
        if stale and not self._stale:
            self.fallbacks += 1
        self._stale = stale
        return None if stale else last

    def power(self, now: float) -> tuple[float, bool]:
        """(the power to apply now, whether it is the fallback)."""
        last = self.current(now)
        return (self.safe_w, True) if last is None else (last.power_w, False)
