"""The depot EMS's real-time layer, sans-I/O: from the plan's setpoints to what each charger is told now.

Within each dispatch step the plan (`ems.lp`) is adjusted to what is measured, in this order:
1. FCR droop: the depot's frequency response shared over the chargers that hold FCR (the frequency is only
   known as it is measured);
2. dynamic load balancing: what a truck does not take of its setpoint (its BMS tapers) goes to the others that
   can take more;
3. the grid guard: the connection point's import and export limits on the measured base load, charging (or
   discharging) cut back pro rata, unbooked trucks first; what relieves a limit (a discharge against the import
   limit) counts only as far as it is measured now, since a discharge that starts or grows ramps up within the
   step;
4. the demand guard: the import that keeps the 15-min window within the plan's peak (`demand_limit_w`, from
   what the window has imported so far, as the plan counts it);
   charging is cut pro rata, unbooked trucks first, down to each truck's `min_power_w` (never paused for it: a
   pause costs a contactor cycle, and the plan re-plans the energy it leaves short), a firm truck (`Outlet.firm`)
   or one holding FCR not at all; what that leaves above the limit the trucks that may give back
   (`Outlet.may_give_w`; no FCR held, idle or discharging after a discharge) give back;
5. no trickle: a setpoint below the truck's `min_power_w` pauses the session, while its contactor-cycle budget
   lets it resume; with no cycle left it holds the minimum instead; a truck holding FCR idles at 0 W instead (the
   droop moves it);
6. no chatter: a change smaller than `deadband_w` keeps the previous setpoint, and the direction turns only
   after `min_dwell_s` in the present one (the guard and the pause act at once: safety first).
The guard acts on what the chargers will be told (after the pauses), so a pause never lifts the site's import
above its limit; a cut that leaves a trickle pauses that session too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FULL_DROOP_HZ = 0.2  # full FCR capacity at |f - 50 Hz| >= 0.2 Hz (ENTSO-E FCR)
NOMINAL_HZ = 50.0


@dataclass(frozen=True, slots=True)
class Outlet:
    """One charger with its truck as the real-time layer sees it."""

    id: str
    plan_w: float  # the EMS plan's setpoint for this step (+ charges the truck)
    max_charge_w: float  # the truck's and the charger's, whichever is lower, now
    max_discharge_w: float  # 0: no V2G (one-way charger, or the truck at its floor)
    taking_w: float | None = None  # the most it takes now: its BMS's limit within the charger's (None: not heard)
    measured_w: float = 0.0  # the DC power measured now (+ charges the truck)
    min_power_w: float = 0.0
    cycles_left: int = 1_000_000  # contactor cycles (pause + resume) the session may still spend
    booked: bool = False
    efficiency: float = 1.0
    fcr: bool = False  # holds part of the FCR reservation
    running: bool = True  # in the charge loop now (False: paused, or not started yet)
    firm: bool = False  # the demand guard leaves it alone (planned short, target out of reach, leaving soon)
    may_give_w: float = 0.0  # the most discharge the demand guard may have it run at (its setpoint included)


@dataclass(frozen=True, slots=True)
class Told:
    """What a charger is told now, and why it differs from the plan (empty: as planned)."""

    power_w: float
    paused: bool = False
    why: tuple[str, ...] = ()


def droop_w(frequency_hz: float, capacity_w: float, deadband_hz: float) -> float:
    """The FCR response (+ charges): 0 inside the deadband, the full capacity at 0.2 Hz off, linear between;
    under-frequency asks the depot to give back (negative)."""
    offset = frequency_hz - NOMINAL_HZ
    if abs(offset) <= deadband_hz:
        return 0.0
    share = min(1.0, (abs(offset) - deadband_hz) / (FULL_DROOP_HZ - deadband_hz))
    return math.copysign(capacity_w * share, offset)


def _counted(o: Outlet, power_w: float, sign: float) -> float:
    """What the guard counts of an outlet told `power_w` against the limit in direction `sign` (+1 import, -1
    export): all of it where it adds to that direction; where it relieves it, no more than the outlet is measured
    to do now (nothing from a truck not in the charge loop)."""
    if sign * power_w >= 0:
        return power_w
    relief = o.measured_w if o.running and o.measured_w * power_w > 0 else 0.0
    return power_w if abs(power_w) <= abs(relief) else relief


def grid_w(outlet: Outlet, power_w: float) -> float:
    """The grid side of a DC power: DC / eff while charging, DC * eff while discharging."""
    return power_w / outlet.efficiency if power_w >= 0 else power_w * outlet.efficiency


class RealTimeLayer:
    """Keeps what each charger was told (for the deadband and the dwell) across calls."""

    def __init__(self, deadband_w: float = 10_000.0, min_dwell_s: float = 300.0) -> None:
        self.deadband_w = deadband_w
        self.min_dwell_s = min_dwell_s
        self._told: dict[str, float] = {}  # id -> the power last told
        self._direction: dict[str, tuple[int, float]] = {}  # id -> (the last direction run, 1 or -1; since when)
        self.direction_changes: dict[str, int] = {}

    def dispatch(
        self,
        now: float,
        outlets: list[Outlet],
        base_load_w: float,
        import_limit_w: float,
        export_limit_w: float,
        fcr_w: float = 0.0,
        demand_limit_w: float = math.inf,
    ) -> dict[str, Told]:
        """What every charger is told now; `fcr_w`: the depot's droop response (see `droop_w`);
        `demand_limit_w`: the import (with the base load) that keeps the 15-min window within the plan's peak."""
        power = {o.id: o.plan_w for o in outlets}
        why: dict[str, list[str]] = {o.id: [] for o in outlets}
        self._droop(outlets, power, why, fcr_w)
        self._balance(outlets, power, why)
        for o in outlets:
            power[o.id] = min(max(power[o.id], -o.max_discharge_w), o.max_charge_w)
        steady = self._steady(now, outlets, power, why)
        first = {o.id: self._no_trickle(o, steady[o.id], why[o.id]) for o in outlets}
        guarded = {cid: t.power_w for cid, t in first.items()}
        self._guard(outlets, guarded, why, base_load_w, import_limit_w, export_limit_w)
        self._demand_guard(outlets, guarded, why, base_load_w, demand_limit_w)
        self._demand_give(outlets, guarded, why, base_load_w, demand_limit_w)
        told = {o.id: self._after_guard(o, first[o.id], guarded[o.id], why[o.id]) for o in outlets}
        for o in outlets:
            self._remember(now, o.id, told[o.id].power_w)
        return told

    @staticmethod
    def _droop(outlets: list[Outlet], power: dict[str, float], why: dict[str, list[str]], fcr_w: float) -> None:
        holders = [o for o in outlets if o.fcr]
        if not holders or fcr_w == 0:
            return
        for o in holders:
            power[o.id] += fcr_w / len(holders)
            why[o.id].append(f"FCR {fcr_w / len(holders):+.0f} W")

    @staticmethod
    def _balance(outlets: list[Outlet], power: dict[str, float], why: dict[str, list[str]]) -> None:
        """What a charging truck does not take goes to the charging trucks that can take more."""
        spare, short = 0.0, set()
        for o in outlets:
            if o.taking_w is not None and power[o.id] > 0 and o.taking_w < power[o.id]:
                spare += power[o.id] - o.taking_w
                power[o.id] = o.taking_w
                short.add(o.id)
                why[o.id].append(f"takes {o.taking_w:.0f} W")
        takers = [o for o in outlets if power[o.id] > 0 and o.id not in short]
        for o in sorted(takers, key=lambda o: not o.booked):
            extra = min(spare, o.max_charge_w - power[o.id])
            if extra > 0:
                power[o.id] += extra
                spare -= extra
                why[o.id].append(f"DLB +{extra:.0f} W")

    def _steady(
        self, now: float, outlets: list[Outlet], power: dict[str, float], why: dict[str, list[str]]
    ) -> dict[str, float]:
        steady = dict(power)
        for o in outlets:
            wanted = power[o.id]
            direction, since = self._direction.get(o.id, (0, now))
            if direction and wanted * direction < 0 and now - since < self.min_dwell_s:
                steady[o.id] = 0.0  # idle until the dwell is over, then turn
                why[o.id].append(f"dwell: {self.min_dwell_s - (now - since):.0f} s before turning")
                continue
            previous = self._told.get(o.id)
            if previous is not None and previous * wanted >= 0 and abs(wanted - previous) < self.deadband_w:
                steady[o.id] = previous
        return steady

    @staticmethod
    def _guard(
        outlets: list[Outlet],
        power: dict[str, float],
        why: dict[str, list[str]],
        base_load_w: float,
        import_limit_w: float,
        export_limit_w: float,
    ) -> None:
        """Cut charging (or discharging) pro rata until the connection point is within its limits; unbooked
        trucks give first."""
        for sign, limit in ((1.0, import_limit_w), (-1.0, export_limit_w)):
            for booked in (False, True):
                total = base_load_w + sum(grid_w(o, _counted(o, power[o.id], sign)) for o in outlets)
                excess = sign * total - limit
                if excess <= 1e-9:
                    break
                group = [o for o in outlets if o.booked is booked and sign * power[o.id] > 0]
                flow = sum(sign * grid_w(o, power[o.id]) for o in group)
                if flow <= 0:
                    continue
                keep = max(0.0, 1 - excess / flow)
                for o in group:
                    power[o.id] *= keep
                    why[o.id].append(f"grid limit: x{keep:.3f}")

    @staticmethod
    def _demand_guard(
        outlets: list[Outlet], power: dict[str, float], why: dict[str, list[str]], base_load_w: float, limit_w: float
    ) -> None:
        """Cut charging pro rata, unbooked trucks first, until the import is within `limit_w`; no truck below its
        minimum power (one at or below it keeps its setpoint), none that is firm (`Outlet.firm`) or holds FCR (a cut
        would shrink the headroom it lowers its import by). A limit on energy over the window, not on power now:
        the setpoints count as told (a discharge ramping up gives the rest of it within the step)."""
        for booked in (False, True):
            total = base_load_w + sum(grid_w(o, power[o.id]) for o in outlets)
            excess = total - limit_w
            if excess <= 1e-9:
                return
            group = [
                o for o in outlets if o.booked is booked and not o.firm and not o.fcr and power[o.id] > o.min_power_w
            ]
            room = sum(grid_w(o, power[o.id] - o.min_power_w) for o in group)
            if room <= 0:
                continue
            keep = max(0.0, 1 - excess / room)
            for o in group:
                power[o.id] = o.min_power_w + (power[o.id] - o.min_power_w) * keep
                why[o.id].append(f"15-min peak: x{keep:.3f} above the minimum")

    def _demand_give(
        self,
        outlets: list[Outlet],
        power: dict[str, float],
        why: dict[str, list[str]],
        base_load_w: float,
        limit_w: float,
    ) -> None:
        """What the cuts leave above `limit_w`, given back by the trucks that may (`Outlet.may_give_w`), in
        proportion to it: only trucks in the charge loop that hold no FCR (its headroom stays), are idle or
        discharging and last ran discharging (no turn, no new dwell), each by at least its minimum power or not at
        all; down to no import at most (an export does not lower the window's import). The setpoints count as told,
        as in `_demand_guard`."""
        total = base_load_w + sum(grid_w(o, power[o.id]) for o in outlets)
        excess = total - max(limit_w, 0.0)
        if excess <= 1e-9:
            return
        givers = [
            o
            for o in outlets
            if o.may_give_w > 0
            and o.running
            and not o.fcr
            and power[o.id] <= 0
            and power[o.id] > -o.max_discharge_w
            and self._direction.get(o.id, (0, 0.0))[0] < 0
        ]
        # what each may give beyond its setpoint
        room = {o.id: max(min(o.may_give_w, o.max_discharge_w) + power[o.id], 0.0) for o in givers}
        grid_room = sum(room[o.id] * o.efficiency for o in givers)
        if grid_room <= 0:
            return
        share = min(1.0, excess / grid_room)
        for o in givers:
            extra = room[o.id] * share
            if abs(power[o.id] - extra) < o.min_power_w:
                continue
            power[o.id] -= extra
            why[o.id].append(f"15-min peak: gives {extra:.0f} W more")

    @staticmethod
    def _no_trickle(o: Outlet, power: float, why: list[str]) -> Told:
        if not o.running and abs(power) < max(o.min_power_w, 1.0):  # resuming costs a cycle: not for nothing
            return Told(0.0, True, (*why, "stays paused"))
        if power == 0 or abs(power) >= o.min_power_w:
            return Told(power, False, tuple(why))
        if o.fcr:  # it holds FCR: idle at 0 W with the contactors closed, the droop moves it
            return Told(0.0, False, (*why, f"below min {o.min_power_w:.0f} W: idle for FCR"))
        if o.cycles_left > 0:
            return Told(0.0, True, (*why, f"below min {o.min_power_w:.0f} W: paused"))
        held = math.copysign(o.min_power_w, power)
        return Told(held, False, (*why, "no contactor cycle left to resume: held at the minimum"))

    @staticmethod
    def _after_guard(o: Outlet, before: Told, power: float, why: list[str]) -> Told:
        """The guard's cut, paused when it leaves a trickle (and a cycle to resume); the guard wins over the
        minimum when no cycle is left."""
        if power == before.power_w:
            return before
        if abs(power) < o.min_power_w and o.cycles_left > 0 and not o.fcr:
            return Told(0.0, True, (*why, f"below min {o.min_power_w:.0f} W after the grid guard: paused"))
        return Told(power, False, tuple(why))

    def direction(self, outlet_id: str) -> tuple[int, float]:
        """The direction the outlet last ran (+1 charging, -1 discharging, 0 none yet) and from when it may turn."""
        direction, since = self._direction.get(outlet_id, (0, -math.inf))
        return direction, since + self.min_dwell_s

    def forget(self, outlet_id: str) -> None:
        """A new truck at the outlet: no setpoint told and no direction run yet."""
        self._told.pop(outlet_id, None)
        self._direction.pop(outlet_id, None)

    def _remember(self, now: float, outlet_id: str, power: float) -> None:
        self._told[outlet_id] = power
        sign = (power > 0) - (power < 0)
        direction, _ = self._direction.get(outlet_id, (0, now))
        if sign and sign != direction:
            if direction:
                self.direction_changes[outlet_id] = self.direction_changes.get(outlet_id, 0) + 1
            self._direction[outlet_id] = (sign, now)
