"""Setpoint policies: the power the charger grants in Dynamic control, and the schedules it offers in Scheduled.

Power is signed from the vehicle's point of view: positive charges the truck, negative discharges it (V2G).
A policy proposes; the EV's own limits (which drop discharge to 0 at its V2G reserve or when its departure
target would be missed) and the charger's ratings are applied by the controller afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from stack.config_file import ConfigError, Problem
from stack.session.controller import EnergyRequest, PowerLimits, Schedule, ScheduleEntry


@dataclass(frozen=True, slots=True)
class PolicyInput:
    elapsed: float  # s since the session started
    soc: int | None
    ev: PowerLimits | None  # the EV's limits from its last request (discharge limits 0 = it refuses to discharge)
    evse: PowerLimits
    energy: EnergyRequest | None
    now: float = 0.0  # the clock's time of the request
    armed_current_a: float | None = None  # what the over-current protection was armed for (None: the rating)


class SetpointPolicy(Protocol):
    def setpoint(self, x: PolicyInput) -> float: ...
    def schedules(
        self, max_entries: int, evse: PowerLimits, bidirectional: bool, now: float = 0.0
    ) -> tuple[Schedule, ...]: ...
    def pause(self, now: float) -> bool:
        """Whether the session should pause now (no energy wanted for a while: the EV is asked to pause)."""
        ...

    def renegotiate(self, now: float) -> bool:
        """Whether the schedules offered have changed materially (Scheduled mode: ask for a renegotiation)."""
        ...

    def advertise(self, limits: PowerLimits, now: float) -> PowerLimits:
        """The EVSE limits told in DC_ChargeLoopRes: the ratings, or narrower (what a site EMS allows now)."""
        ...


def _charge_max(x: PolicyInput) -> float:
    ev = x.ev.max_charge_power if x.ev else x.evse.max_charge_power
    return min(ev, x.evse.max_charge_power)


def _needs_charge(x: PolicyInput) -> bool:
    return x.energy is None or x.energy.target_energy > 0


def _deadline_tight(x: PolicyInput, margin: float = 1.25) -> bool:
    """Charging must start now to reach the target by departure (with a margin for the BMS taper)."""
    e = x.energy
    if e is None or e.target_energy <= 0:
        return False
    if e.departure_time is None:
        return True
    return e.departure_time <= margin * 3600 * e.target_energy / max(_charge_max(x), 1.0)


class _OnItsOwn:
    """A charger that decides alone (no site EMS): it never pauses or renegotiates and advertises its ratings."""

    __slots__ = ()

    def pause(self, now: float) -> bool:
        return False

    def renegotiate(self, now: float) -> bool:
        return False

    def advertise(self, limits: PowerLimits, now: float) -> PowerLimits:
        return limits


@dataclass(frozen=True, slots=True)
class ChargeToTarget(_OnItsOwn):
    """Charge at the EV's maximum until its target is met, then hold (the default)."""

    def setpoint(self, x: PolicyInput) -> float:
        return _charge_max(x) if _needs_charge(x) else 0.0

    def schedules(
        self, max_entries: int, evse: PowerLimits, bidirectional: bool, now: float = 0.0
    ) -> tuple[Schedule, ...]:
        entries = tuple(ScheduleEntry(3600, evse.max_charge_power) for _ in range(min(24, max_entries)))
        return (Schedule(1, entries),)


def step_problems(steps: Sequence[tuple[float, float]]) -> list[Problem]:
    """What is wrong with a timetable (key `steps[i][j]`): times finite, >= 0 and increasing, powers finite."""
    problems = []
    previous = None
    for i, step in enumerate(steps):
        if len(step) != 2 or not all(_finite(v) for v in step):
            problems.append(Problem(f"steps[{i}]", f"must be [seconds, watts] of finite numbers, got {list(step)}"))
            continue
        start = step[0]
        if start < 0:
            problems.append(Problem(f"steps[{i}][0]", f"must be >= 0 s, got {start}"))
        elif previous is not None and start <= previous:
            problems.append(
                Problem(f"steps[{i}][0]", f"must be later than the step before ({previous} s), got {start}")
            )
        previous = start
    return problems


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, slots=True)
class ScriptedProfile(_OnItsOwn):
    """A timetable of requested power (s from the session start, W), e.g. a depot's peak-shaving plan.

    After the last step: charge to the target. A requested discharge is not served while the departure target
    is at risk (the charger charges instead), and while the EV refuses it (its limits say 0: V2G reserve
    reached) the charger idles; so the truck does not swing between charge and discharge at its reserve.
    """

    steps: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        problems = step_problems(self.steps)
        if problems:
            raise ConfigError(problems)

    def requested(self, elapsed: float) -> float | None:
        current = None
        for start, power in self.steps:
            if elapsed >= start:
                current = power
        return current

    def setpoint(self, x: PolicyInput) -> float:
        wanted = self.requested(x.elapsed)
        if wanted is None:
            return _charge_max(x) if _needs_charge(x) else 0.0
        if wanted < 0 and _deadline_tight(x):  # the departure target first: no V2G while it is at risk
            return _charge_max(x)
        if wanted < 0 and (x.ev is None or not x.ev.max_discharge_power):
            return 0.0  # at its V2G reserve: idle until the plan or the deadline says otherwise
        if wanted > 0:
            return min(wanted, _charge_max(x)) if _needs_charge(x) else 0.0
        return wanted

    def schedules(
        self, max_entries: int, evse: PowerLimits, bidirectional: bool, now: float = 0.0
    ) -> tuple[Schedule, ...]:
        """One tuple: the timetable as charging entries (discharge steps as a discharging schedule)."""
        if not self.steps:
            return ChargeToTarget().schedules(max_entries, evse, bidirectional)
        charge, discharge = [], []
        for (start, power), (end, _) in zip(self.steps, [*self.steps[1:], (self.steps[-1][0] + 3600, 0)], strict=True):
            duration = max(1, int(end - start))
            charge.append(ScheduleEntry(duration, max(power, 0.0)))
            discharge.append(ScheduleEntry(duration, max(-power, 0.0)))
        charge.append(ScheduleEntry(86_400, evse.max_charge_power))
        discharge.append(ScheduleEntry(86_400, 0.0))
        keep = max(1, max_entries)
        return (Schedule(1, tuple(charge[:keep]), tuple(discharge[:keep]) if bidirectional else None),)
