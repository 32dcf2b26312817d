"""What a simulation plays: the truck's state and needs, the charger, the energy plan, injected faults."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ev_emulator.config import TruckConfig, TruckConfigError
from evse_emulator.config import ChargerConfig, ChargerConfigError

START = 1_795_294_800.0  # 2026-11-21 18:00 UTC: a truck arrives at the depot in the evening


class ScenarioError(Exception):
    """The scenario file cannot be read or has a bad value."""


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str = "MCS V2G at the depot: charge, feed the evening peak, charge for departure"
    service: str = "mcs-bpt"
    control: str = "dynamic"
    start: float = START
    loop_interval: float = 2.0  # s of simulated time between DC_ChargeLoopReq
    # truck
    initial_soc: float = 0.25
    target_soc: float = 0.90
    min_soc: float = 0.20
    v2g_reserve_soc: float = 0.40
    offers_v2g: bool = True
    departure_s: float = 5400.0  # from the start
    max_contactor_cycles: int | None = 10
    # charger
    max_voltage: float = 1250.0
    max_current: float = 3000.0
    max_power: float = 3_750_000.0
    # energy plan: (seconds from the start of energy transfer, W; + charge, - discharge)
    steps: tuple[tuple[float, float], ...] = ((0.0, 750_000.0), (1200.0, -750_000.0), (2400.0, 750_000.0))
    # faults
    insulation_fault_ohm: float | None = None
    ev_stops_answering_s: float | None = None  # the truck hangs (no close, no answer) this long after the start
    charger_stops_answering_s: float | None = None  # the same for the charger
    secc_sequence_timeout: float = 60.0

    @property
    def duration(self) -> float:
        return self.departure_s

    def truck(self) -> TruckConfig:
        return TruckConfig(
            service=self.service,
            control=self.control,
            initial_soc=self.initial_soc,
            target_soc=self.target_soc,
            min_soc=self.min_soc,
            v2g_reserve_soc=self.v2g_reserve_soc,
            offers_v2g=self.offers_v2g,
            departure_s=self.departure_s,
            max_contactor_cycles=self.max_contactor_cycles,
            loop_interval=self.loop_interval,
        )

    def charger(self) -> ChargerConfig:
        # the plant steps at most one loop interval (10 s at most) when it catches up with the clock
        plant = {"max_step_s": min(10.0, self.loop_interval)}
        return ChargerConfig(
            max_voltage=self.max_voltage,
            max_current=self.max_current,
            max_power=self.max_power,
            offer=(self.service,),
            sequence_timeout=self.secc_sequence_timeout,
            hal_settings=plant,
            steps=self.steps,
        )


def overnight() -> Scenario:
    """An 8-hour overnight MCS_BPT session (the benchmark): slow charge, V2G at the evening peak, top-up."""
    return Scenario(
        name="overnight depot session, 8 h",
        initial_soc=0.20,
        departure_s=8 * 3600.0,
        loop_interval=10.0,
        steps=((0.0, 300_000.0), (2 * 3600.0, -500_000.0), (3 * 3600.0, 200_000.0), (6 * 3600.0, 750_000.0)),
    )


def load(path: Path | None) -> Scenario:
    """The default scenario, with the values of a TOML file (flat keys, or [truck]/[charger]/[plan]/[faults])."""
    if path is None:
        return Scenario()
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    known = {f.name for f in fields(Scenario)}
    unknown = sorted(set(flat) - known)
    if unknown:
        raise ScenarioError(f"{path}: unknown keys {unknown}; known: {sorted(known)}")
    if "steps" in flat:
        try:
            flat["steps"] = tuple((float(t), float(p)) for t, p in flat["steps"])
        except (TypeError, ValueError):
            raise ScenarioError(f"{path}: steps must be [[seconds, watts], ...]") from None
    try:
        scenario = replace(Scenario(), **flat)
    except TypeError as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    problems = check(scenario)
    if problems:
        raise ScenarioError(f"{path}: {'; '.join(problems)}")
    return scenario


def check(s: Scenario) -> list[str]:
    """What is wrong with a scenario (empty when it can run): the truck's and the charger's own checks, and the
    scenario's fault figures and plan."""
    problems = []
    for config in (s.truck, s.charger):
        try:
            config().checked()
        except (TruckConfigError, ChargerConfigError) as exc:
            problems.append(str(exc))
    for name in ("insulation_fault_ohm", "ev_stops_answering_s", "charger_stops_answering_s"):
        value = getattr(s, name)
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool) or value < 0):
            problems.append(f"{name} must be a number >= 0")
    if not s.steps:
        problems.append("steps must hold at least one [seconds, watts] pair")
    return problems
