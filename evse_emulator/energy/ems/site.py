"""The site EMS as a backend runs it, sans-I/O: what it knows, when it re-plans, what it tells each charger.

It knows the site (limits, tariffs, the FCR it sold, the chargers) from the start and a truck only from its
announcement (a walk-in's comes at its arrival); what a truck has in its pack it learns from the charger's telemetry
(the -20 EVTargetEnergyRequest: Wh to the truck's target), the frequency never in advance. At every dispatch step it
re-plans when something happened (an announcement, an arrival, a departure, a grid-limit change, a truck off its
planned energy by more than `deviation_wh`, a truck planned short of its target), then the real-time layer turns the
plan's step into setpoints (DLB, the grid guard, the demand guard, no trickle, no chatter) and the FCR capacity is
shared over the chargers that can hold it, in proportion to their headroom (each applies it as a droop at every
charge loop); what that leaves short in the direction that lowers the import comes from any charger with room that
way.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from ..realtime import Outlet, RealTimeLayer, Told
from ..topics import MIN_PACK_V, Announcement, Setpoint, Telemetry
from .lp import plan as lp_plan
from .model import DEMAND_WINDOW_S, Charger, Plan, SitePlan, Truck, pack_loss_w

log = logging.getLogger("evse_emulator.energy.ems")

Series = tuple[tuple[float, float], ...]
Planner = Callable[[SitePlan], Plan]
DEVIATION_WH = 3_000.0  # a truck this far off its planned energy makes the EMS re-plan ...
TARGET_TOLERANCE_WH = 10.0  # a truck this close below its target is at it (the plan's rounding, not a drift)
DEVIATION_DWELL_S = 300.0  # ... again within this time only when 3x as far off
VALID_STEPS = 3  # a setpoint stays valid for this many dispatch steps (the charger's watchdog)
# The planning model of a truck's BMS (the backend does not know the pack): full power up to 80 % SoC, then a
# linear fall to 3 % at 100 % (the common shape of MCS packs' charge maps; ours: ev_emulator.battery.CHARGE_TAPER).
TAPER = (0.80, 0.03)
# the plan's model of a pack's and cable's I^2 R losses (`Truck.loss_h`): a generic NMC pack's resistance x its
# capacity / its voltage^2, some 0.035 h: 0.035 x the C-rate lost (4.6 % of the power at 1.3 C, 0.7 % at 0.2 C; ours:
# 0.032-0.039 h from 300 to 1000 kWh)
PACK_LOSS_H = 0.035
FIRM_MARGIN = 0.005  # of which this much is planned as firmly as the target (the rest only at the energy's price)
TARGET_MARGIN = 0.01  # planned above the target: what the plant's ramps and the taper's shape cost at the end
# planned above the V2G floor: a truck that reaches its floor within a step stops giving back at once (its BMS), and
# the import the guard let the others take against that discharge would come from the grid for the rest of the step
FLOOR_MARGIN = 0.01
# the plan's model of a charger's current rating at a truck's pack (the backend knows only the voltage it measured):
# a generic NMC pack's voltage rises by about 20 % of itself from empty to full
VOLTAGE_SLOPE = 0.2
# of the FCR capacity, kept free below the 15-min peak in FCR steps: the droop's import is not known in advance and
# raised the 15-min peak above the plan's in the windows it fell in (against none kept: seeds 10-29 -1.2 %, the
# benchmark's seeds 0-4 -1.5 %; the built-in scenario +3.9 %, whose FCR window is not where its peak is)
FCR_PEAK_SHARE = 0.1
# the plan fills a pack at most this far unless its target is higher: at its limit a BMS opens the contactors and the
# truck ends its charging for the visit, which would take its V2G with it
PLAN_CEILING_SOC = 0.97
# the demand guard cuts or asks a discharge of a truck only this long before its departure at the latest (a re-plan
# moves what it cut or asked to a later window: one that leaves soon has none; seeded day 27's booked t11, cut to its
# minimum five times in its last half hour, left 0.6 kWh short)
GUARD_AHEAD_S = 3600.0
GUARD_MARGIN = 0.005  # the plan and the guard keep this fraction of each grid limit free (the plants' regulation)


def at(series: Series, t: float) -> float:
    """The value of a piecewise-constant series at `t`."""
    value = series[0][1]
    for start, v in series:
        if start > t:
            break
        value = v
    return value


@dataclass(frozen=True, slots=True)
class FcrTerms:
    capacity_w: float
    windows: tuple[tuple[float, float], ...]
    deadband_hz: float
    reserve_s: float
    penalty_eur_per_kwh: float  # x the droop energy not delivered

    def capacity_in(self, t0: float, t1: float) -> float:
        """The capacity held over [t0, t1): only a step wholly inside a window holds it."""
        return self.capacity_w if any(a <= t0 and t1 <= b for a, b in self.windows) else 0.0


@dataclass(frozen=True, slots=True)
class SiteModel:
    """What the backend knows of the site from the start (times in s from the scenario start)."""

    step_s: float
    horizon_s: float
    import_price: Series
    export_price: Series
    base_load: Series  # the forecast of the other consumers (their measured value at dispatch)
    import_limit_w: float
    export_limit_w: float
    demand_eur_per_kw: float
    unserved_eur_per_kwh: float
    chargers: tuple[Charger, ...]
    fcr: FcrTerms | None = None

    def charger(self, cid: str) -> Charger:
        return next(c for c in self.chargers if c.id == cid)


@dataclass
class Decision:
    """One dispatch: the setpoints, and whether (and why) the EMS re-planned first."""

    setpoints: dict[str, Setpoint]
    told: dict[str, Told]
    replanned: tuple[str, ...] = ()


@dataclass
class SiteEms:
    model: SiteModel
    planner: Planner = lp_plan
    layer: RealTimeLayer = field(default_factory=RealTimeLayer)
    deviation_wh: float = DEVIATION_WH
    departure_lead_s: float = 0.0  # the chargers deliver nothing this close to a departure
    voltage_slope: float = VOLTAGE_SLOPE
    fcr_peak_share: float = FCR_PEAK_SHARE
    guard: bool = True  # False: the real-time layer does not guard the grid limits (an uncontrolled depot)
    scheduled: bool = False  # Scheduled mode: each setpoint carries the truck's plan as a profile (no FCR)
    # FCR measured at the connection point: each 15-min window counted with the droop at the room the plan keeps
    # for it, so the demand charge never moves a truck's power against an activation (see `record_step`)
    fcr_strict: bool = False
    known: dict[str, Announcement] = field(default_factory=dict)
    plan: Plan | None = None
    infeasible: dict[str, str] = field(default_factory=dict)  # truck -> why its target cannot be met
    stuck: set[str] = field(default_factory=set)  # trucks that get no more energy this visit (see `_stuck`)
    events: list[tuple[float, str]] = field(default_factory=list)  # (t_s, what the EMS did and why)
    plans: int = 0
    fallbacks: int = 0
    solve_s: float = 0.0
    _pending: list[str] = field(default_factory=list)
    _plugged: dict[str, str | None] = field(default_factory=dict)
    _imports: dict[int, float] = field(default_factory=dict)  # 15-min window -> Wh imported (metered; `record_step`)
    _fcr_held_at: float | None = None  # the last dispatch step's start, when a charger got an FCR share in it
    _limits: tuple[float, float] | None = None
    _deviated: dict[str, float] = field(default_factory=dict)  # truck -> when it last made the EMS re-plan
    _short_at: dict[str, float] = field(default_factory=dict)  # truck -> Wh when it was last found below its target
    _last_energy: dict[str, float] = field(default_factory=dict)  # truck -> Wh: its last word + metered since
    _takes: dict[str, float] = field(default_factory=dict)  # truck -> W its BMS takes now (in the charge loop)
    _gives: dict[str, float] = field(default_factory=dict)  # truck -> W it gives now (in the charge loop)
    _volts: dict[str, float] = field(default_factory=dict)  # truck -> its pack's voltage when last measured
    _fallback_said: str | None = None  # the planner's failure last logged, while it lasts

    @property
    def limits(self) -> tuple[float, float]:
        """The grid import and export limits now (W)."""
        return self._limits or (self.model.import_limit_w, self.model.export_limit_w)

    def _kept(self) -> tuple[float, float]:
        """The limits the plan and the guard work to: `GUARD_MARGIN` of each kept free."""
        return tuple(w * (1 - GUARD_MARGIN) for w in self.limits)  # type: ignore[return-value]

    def announce(self, a: Announcement) -> None:
        self.known[a.truck] = a
        self._pending.append(f"{a.truck} announced")
        rate = min(a.max_charge_w, self.model.charger(a.charger).max_power_w)
        need_wh = max(a.target_soc - a.soc, 0.0) * a.battery_wh
        best = a.soc + rate * (a.departure_s - a.arrival_s) / 3600 / a.battery_wh
        if need_wh > rate * (a.departure_s - a.arrival_s) / 3600 + 1e-6:  # a Wh's millionth: float rounding
            why = f"target {a.target_soc:.0%} cannot be met: at most {min(best, 1.0):.1%} at {rate / 1000:.0f} kW"
            self.infeasible[a.truck] = why
            self.events.append((a.t_s, f"{a.truck}: {why}"))
            log.info("truck %s: %s", a.truck, why)

    def set_grid_limit(self, t_s: float, import_w: float, export_w: float) -> None:
        self._limits = (import_w, export_w)
        self._pending.append(f"grid limit {import_w / 1000:.0f} / {export_w / 1000:.0f} kW")

    def record_step(
        self,
        t_s: float,
        chargers_grid_w: float,
        delivered_wh: Mapping[str, float] | None = None,
        droop_grid_w: float = 0.0,
    ) -> None:
        """The chargers' measured mean grid-side power over the step that started at `t_s`; with the base load,
        the site's import that the demand charge's meter counts. `delivered_wh`: the DC energy each truck got in
        the step by its charger's meter (what moves a paused truck's energy on from its last word).

        `droop_grid_w`: the grid-side part of it that the FCR droop moved. By default the window counts what the
        meter counts, the droop's import with it, so that the plan and the demand guard trim the other trucks after
        an activation that raised the import beyond the room kept for it (and use what one that lowered it left).
        With `fcr_strict` it counts the import without the droop plus, in a step where a charger had an FCR share,
        the room the plan keeps for it, as the plan counts its steps: the demand charge never answers an activation
        in either direction, and the peak the EMS counts differs from the metered one by the droop less its room."""
        grid_w = at(self.model.base_load, t_s) + chargers_grid_w
        counted_w = max(grid_w, 0.0)
        if self.fcr_strict:
            fcr, held = self.model.fcr, self._fcr_held_at == t_s
            room_w = self.fcr_peak_share * fcr.capacity_in(t_s, t_s + self.model.step_s) if fcr and held else 0.0
            counted_w = max(grid_w - droop_grid_w, 0.0) + room_w
        window = int(t_s // DEMAND_WINDOW_S)
        self._imports[window] = self._imports.get(window, 0.0) + counted_w * self.model.step_s / 3600
        for tid, wh in (delivered_wh or {}).items():
            if tid in self._last_energy:
                self._last_energy[tid] += self._stored_wh(tid, wh)

    def _stored_wh(self, tid: str, delivered_wh: float) -> float:
        """What a step's DC energy at the charger moved in the truck's pack, by the plan's loss model (at the
        step's mean power)."""
        hours = self.model.step_s / 3600
        loss_w = pack_loss_w(delivered_wh / hours, PACK_LOSS_H, self.known[tid].battery_wh)
        return delivered_wh - loss_w * hours  # a discharge drains the pack by its loss too

    def dispatch(self, t_s: float, telemetry: Mapping[str, Telemetry]) -> Decision:
        """The setpoints of the step starting at `t_s`, from the chargers' telemetry now."""
        self._notice(telemetry)
        self._takes, self._gives = {}, {}  # what each truck in the charge loop takes and gives now
        for cid, tel in telemetry.items():
            if tel.truck and tel.energy_to_target_wh is not None:
                rating = self.model.charger(cid).power_at(tel.voltage_v)
                self._takes[tel.truck] = min(tel.ev_max_charge_w, rating)
                self._gives[tel.truck] = min(tel.ev_max_discharge_w, rating)
        self._volts.update(_pack_voltages(telemetry, self._volts))
        self._stuck(telemetry)
        energy = self._energy(telemetry)
        self._check_deviation(t_s, energy)
        replanned: tuple[str, ...] = ()
        if self._pending or self.plan is None or not self._covers(t_s):
            replanned = tuple(self._pending) or (self._why_no_plan(t_s),)
            self._replan(t_s, energy, replanned)
        return self._setpoints(t_s, telemetry, energy, replanned)

    # -- knowledge ---------------------------------------------------------------------------------------------
    def _notice(self, telemetry: Mapping[str, Telemetry]) -> None:
        for cid, tel in telemetry.items():
            before = self._plugged.get(cid)
            if tel.truck != before:
                self.layer.forget(cid)  # a new truck has no direction yet (its charger starts it afresh)
                if before is not None:
                    self._pending.append(f"{before} left {cid}")
                if tel.truck is not None:
                    self._pending.append(f"{tel.truck} arrived at {cid}")
                self._plugged[cid] = tel.truck

    def _stuck(self, telemetry: Mapping[str, Telemetry]) -> None:
        """A truck that gets no more energy this visit: it ended its charging (its charger says `finished`), or it
        is paused and has closed its contactors as often as its budget allows. The plan must not count on it
        (re-planned once, when it is found)."""
        for tel in telemetry.values():
            a = self.known.get(tel.truck or "")
            if a is None or a.truck in self.stuck:
                continue
            paused = tel.energy_to_target_wh is None and tel.cycles_used > 0
            if tel.state == "finished":
                self.stuck.add(a.truck)
                self._pending.append(f"{a.truck} ended its charging")
            elif paused and tel.cycles_used >= a.max_contactor_cycles:
                self.stuck.add(a.truck)
                self._pending.append(f"{a.truck} paused with no contactor cycle left")

    def _energy(self, telemetry: Mapping[str, Telemetry]) -> dict[str, float]:
        """Wh in each plugged-in known truck's pack: from its energy to full (to its target when it sends no
        maximum; -20 energy requests are not negative, so above the target that one says nothing). A truck that
        says nothing now (paused, between sessions) is where it last said it was."""
        out = {}
        for tel in telemetry.values():
            a = self.known.get(tel.truck or "")
            if a is None:
                continue
            if tel.energy_to_full_wh is not None:
                wh = a.battery_wh - tel.energy_to_full_wh
            elif tel.energy_to_target_wh is not None:
                wh = a.target_soc * a.battery_wh - tel.energy_to_target_wh
            elif a.truck in self._last_energy:  # silent: its last word and what the meter counted since
                wh = self._last_energy[a.truck]
            else:
                continue
            out[a.truck] = self._last_energy[a.truck] = min(max(wh, 0.0), a.battery_wh)
        return out

    def _check_deviation(self, t_s: float, energy: Mapping[str, float]) -> None:
        p = self.plan
        if p is None:
            return
        k = round((t_s - p.t_s[0]) / self.model.step_s) - 1  # the step that just ended
        for tid, wh in energy.items():
            a = self.known[tid]
            planned = p.find(tid)
            if planned is None or k < 0 or a.arrival_s > t_s - self.model.step_s or a.departure_s <= t_s:
                continue
            off = wh - planned.soc[min(k, len(planned.soc) - 1)] * a.battery_wh  # after its plan: where it ended
            recent = t_s - self._deviated.get(tid, -math.inf) < DEVIATION_DWELL_S
            if self._short_in_plan(tid):  # re-planned each step: each plan's first step takes what the truck says
                short_wh = (a.target_soc - planned.soc[-1]) * a.battery_wh
                self._pending.append(f"{tid} planned {short_wh / 1000:.1f} kWh short of its target")
                self._deviated[tid] = t_s
                continue
            if abs(off) > self.deviation_wh * (3 if recent else 1):  # a steady drift: every 5 min, not every step
                self._pending.append(f"{tid} off plan by {off / 1000:+.0f} kWh")
                self._deviated[tid] = t_s
            elif self._done_too_soon(a, planned.soc[min(k, len(planned.soc) - 1)], wh):
                # a drift below `deviation_wh` that the plan would never make good (a small pack's taper): once,
                # and again only after the truck took energy since (a paused one would be re-planned every step)
                self._pending.append(f"{tid} {(a.target_soc * a.battery_wh - wh) / 1000:.1f} kWh below its target")
                self._short_at[tid] = wh

    def _done_too_soon(self, a: Announcement, planned_soc: float, wh: float) -> bool:
        """The plan has the truck at its target by now, and it is not there (by more than a rounding)."""
        if a.truck in self.infeasible or a.truck in self.stuck:
            return False
        gained = wh > self._short_at.get(a.truck, -math.inf) + TARGET_TOLERANCE_WH
        return gained and planned_soc >= a.target_soc and _below_target(a, wh)

    def _covers(self, t_s: float) -> bool:
        p = self.plan
        return p is not None and p.t_s[0] <= t_s <= p.t_s[-1] and t_s < p.detailed_until_s

    def _why_no_plan(self, t_s: float) -> str:
        p = self.plan
        if p is not None and p.t_s[0] <= t_s <= p.t_s[-1]:
            return "the plan's step-by-step part has ended"
        return "no plan"

    # -- the plan ----------------------------------------------------------------------------------------------
    def _replan(self, t_s: float, energy: Mapping[str, float], why: tuple[str, ...]) -> None:
        self._pending.clear()
        x = self.site_plan(t_s, energy)
        p = self.planner(x)
        self.plan, self.plans, self.solve_s = p, self.plans + 1, self.solve_s + p.solve_s
        if p.fallback:
            self.fallbacks += 1
            if p.status != self._fallback_said:  # said once while it lasts (a limit below the base load: every step)
                log.warning("EMS at %.0f s: %s, the safe plan is used (until the planner solves again)", t_s, p.status)
                self._fallback_said = p.status
        elif self._fallback_said is not None:
            log.warning("EMS at %.0f s: the planner solves again", t_s)
            self._fallback_said = None
        self.events.append((t_s, f"re-planned ({'; '.join(why)}): {p.status}, {x.n} steps, {len(x.trucks)} trucks"))

    def site_plan(self, t_s: float, energy: Mapping[str, float]) -> SitePlan:
        """The plan's inputs from `t_s` to the last known departure (at most the horizon)."""
        m, step = self.model, self.model.step_s
        trucks = [self._truck(a, t_s, energy) for a in self.known.values() if a.departure_s > t_s]
        end = max([t.departure_s for t in trucks] + [t_s + step])
        end = min(m.horizon_s, step * math.ceil(end / step))
        times = tuple(t_s + k * step for k in range(max(1, round((end - t_s) / step))))
        imp, exp = self._kept()
        fcr = None if self.scheduled else m.fcr  # the EV drives a Scheduled session: no droop at the charger
        window = int(t_s // DEMAND_WINDOW_S)
        return SitePlan(
            step_s=step,
            t_s=times,
            import_eur_per_kwh=tuple(at(m.import_price, t) for t in times),
            export_eur_per_kwh=tuple(at(m.export_price, t) for t in times),
            base_load_w=tuple(at(m.base_load, t) for t in times),
            import_limit_w=(imp,) * len(times),
            export_limit_w=(exp,) * len(times),
            chargers=m.chargers,
            trucks=tuple(trucks),
            unserved_eur_per_kwh=m.unserved_eur_per_kwh,
            demand_eur_per_kw=m.demand_eur_per_kw,
            peak_15min_w=self._peak_before(window),
            demand_window_import_wh=self._imports.get(window, 0.0),
            fcr_w=tuple(fcr.capacity_in(t, t + step) for t in times) if fcr else (),
            fcr_reserve_s=fcr.reserve_s if fcr else 0.0,
            fcr_peak_share=self.fcr_peak_share,
        )

    def _peak_before(self, window: int) -> float:
        """The highest mean import (W) of the 15-min windows before `window`: the peak already paid for."""
        return max((wh * 3600 / DEMAND_WINDOW_S for w, wh in self._imports.items() if w < window), default=0.0)

    def _truck(self, a: Announcement, t_s: float, energy: Mapping[str, float]) -> Truck:
        wh = energy.get(a.truck, a.soc * a.battery_wh)
        # a truck planned short of its target only charges (a plan that lets it give back now to take it all in its
        # last minutes leaves it short by what the plant's ramps cost there); nor does one below its target that
        # leaves within the real-time layer's dwell and a step: a turn to give back would hold it idle until it
        # leaves (seeded day 45's booked t02, 6 kWh short and no contactor cycle left, was told -40 kW 5 min before
        # it left and could not turn back)
        short_now = wh < a.target_soc * a.battery_wh
        leaving = a.departure_s - self.departure_lead_s - t_s < self.layer.min_dwell_s + self.model.step_s
        bidirectional = (
            self.model.charger(a.charger).bidirectional
            and not self._short_in_plan(a.truck)
            and not (short_now and leaving)
        )
        plugged = a.truck in energy and self._plugged.get(a.charger) == a.truck
        direction, turn_after = self.layer.direction(a.charger) if plugged else (0, -math.inf)
        return Truck(
            id=a.truck,
            charger=a.charger,
            arrival_s=max(a.arrival_s, t_s) if a.truck not in energy else t_s,
            departure_s=max(a.departure_s - self.departure_lead_s, a.arrival_s),
            battery_wh=a.battery_wh,
            soc=wh / a.battery_wh,
            target_soc=min(a.target_soc + TARGET_MARGIN, 1.0),
            max_soc=max(PLAN_CEILING_SOC, min(a.target_soc + TARGET_MARGIN, 1.0)),
            soft_soc=max(min(a.target_soc + TARGET_MARGIN, 1.0) - a.target_soc - FIRM_MARGIN, 0.0),
            min_soc=min(a.min_soc + FLOOR_MARGIN, 1.0),
            max_charge_w=0.0 if a.truck in self.stuck else a.max_charge_w,
            max_discharge_w=a.max_discharge_w if bidirectional and a.truck not in self.stuck else 0.0,
            min_power_w=a.min_power_w,
            booked=a.booked,
            taper_knee_soc=TAPER[0],
            taper_end=TAPER[1],
            loss_h=PACK_LOSS_H,
            firm_target=a.truck not in self.infeasible,
            charge_now_w=None if a.truck in self.stuck else self._takes.get(a.truck),
            discharge_now_w=None if a.truck in self.stuck else self._gives.get(a.truck),
            voltage_v=self._volts.get(a.truck, 0.0),
            voltage_slope=self.voltage_slope,
            direction=direction,
            turn_after_s=turn_after,
        )

    def _short_in_plan(self, tid: str) -> bool:
        """The last plan leaves the truck short of a target that can be met (one that has not ended its charging).

        The plan's model of its BMS (`TAPER`) and of its current at the charger's rating is only a model: at the top
        of a pack a truck often takes more than the model gives it, and what the truck says it takes now is what each
        plan's first step takes (a booked seeded truck behind a 640 A charger, told 391 kW at 87 % SoC where it took
        530 kW, left 1.6 kWh short when it was re-planned only on a drift).
        """
        p = self.plan
        planned = None if p is None else p.find(tid)
        if planned is None or tid in self.infeasible or tid in self.stuck:
            return False
        return planned.soc[-1] < self.known[tid].target_soc - 1e-9

    # -- the real-time layer -----------------------------------------------------------------------------------
    def _setpoints(
        self, t_s: float, telemetry: Mapping[str, Telemetry], energy: Mapping[str, float], replanned: tuple[str, ...]
    ) -> Decision:
        m = self.model
        fcr_capacity = m.fcr.capacity_in(t_s, t_s + m.step_s) if m.fcr and not self.scheduled else 0.0
        fcr_step = fcr_capacity > 0
        outlets = [self._outlet(cid, tel, t_s, fcr_step, energy) for cid, tel in telemetry.items() if tel.truck]
        imp, exp = self._kept() if self.guard else (math.inf, math.inf)
        held = fcr_capacity if any(o.fcr for o in outlets) else 0.0  # the droop may add this either way
        imp, exp = max(imp - held, 0.0), max(exp - held, 0.0)
        demand = self._demand_limit_w(t_s) if self.guard else math.inf
        told = self.layer.dispatch(t_s, outlets, at(m.base_load, t_s), imp, exp, demand_limit_w=demand)
        shares = _fcr_shares(outlets, told, fcr_capacity)
        self._fcr_held_at = t_s if shares else None
        valid = VALID_STEPS * m.step_s
        deadband = m.fcr.deadband_hz if m.fcr else 0.0
        setpoints = {
            cid: Setpoint(t_s, 0.0, valid, truck=None) if not tel.truck else self._told(cid, tel, told, shares, valid)
            for cid, tel in telemetry.items()
        }
        up = self._droop_up_w(t_s, told, shares)
        for cid, sp in setpoints.items():
            if sp.fcr_w or sp.fcr_down_w:
                setpoints[cid] = replace(sp, deadband_hz=deadband, fcr_up_w=up.get(cid))
        return Decision(setpoints, told, replanned)

    def _droop_up_w(
        self, t_s: float, told: Mapping[str, Told], shares: Mapping[str, tuple[float, float]]
    ) -> dict[str, float]:
        """How far the droop may raise each FCR holder's power (DC) in this step: what its 15-min window may still
        import in this step below the peak with the room kept for the droop (`_window_room_w`), less the base load
        and what the chargers are told, shared over the holders in proportion to their symmetric shares. Only where
        a kW of peak for one window costs more than the penalty on the kWh it would deliver (the demand charge above
        the penalty x 0.25 h): the depot then delivers the import-raising droop as far as the peak allows and pays
        the penalty on the rest. Empty (the whole share) where the penalty is the dearer, without a demand charge or
        the guard, and with `fcr_strict`, where the demand charge must never move a truck's power against an
        activation (a TSO that measures the pool at the connection point)."""
        m = self.model
        held = {cid: sym for cid, (sym, _) in shares.items() if sym > 0}
        if self.fcr_strict or not self.guard or not held or m.fcr is None:
            return {}
        if m.demand_eur_per_kw <= m.fcr.penalty_eur_per_kwh * DEMAND_WINDOW_S / 3600:
            return {}
        window_w = self._window_room_w(t_s)
        if not math.isfinite(window_w):
            return {}
        grid_w = at(m.base_load, t_s) + sum(m.charger(cid).grid_w(t.power_w) for cid, t in told.items())
        room_w = max(window_w, 0.0) - grid_w
        total = sum(held.values())
        return {
            cid: _dc_rise(m.charger(cid), told[cid].power_w, max(room_w, 0.0) * w / total) for cid, w in held.items()
        }

    def _demand_limit_w(self, t_s: float) -> float:
        """The import (with the base load) this step may reach so that its 15-min window's mean import stays within
        the plan's peak with the room the plan keeps for the droop in this step too (`_window_room_w` less it); inf
        without a demand charge, a plan, or in Scheduled mode (the EV drives the power)."""
        room_w = self._window_room_w(t_s)
        if self.model.fcr and math.isfinite(room_w):
            room_w -= self.fcr_peak_share * self.model.fcr.capacity_in(t_s, t_s + self.model.step_s)
        return max(room_w, 0.0)  # an export does not lower the window's import

    def _window_room_w(self, t_s: float) -> float:
        """The import (with the base load and this step's droop) this step may reach so that its 15-min window's
        mean import stays within the plan's peak (`Plan.peak_15min_w`; at least the peak already paid), as the plan
        counts it: what the window has imported so far (as `record_step` counted it: by default the droop's import
        with it), the room the plan keeps for the droop in the later steps, the later steps as planned (the base
        load after the plan's end), the window cut at the horizon. Negative where the window is already over its
        peak; inf without a demand charge, a plan, or in Scheduled mode."""
        p, m = self.plan, self.model
        if p is None or m.demand_eur_per_kw <= 0 or self.scheduled:
            return math.inf
        step, window = m.step_s, int(t_s // DEMAND_WINDOW_S)
        end = min((window + 1) * DEMAND_WINDOW_S, m.horizon_s)
        peak = max(p.peak_15min_w, self._peak_before(window))
        room_wh = peak * (end - window * DEMAND_WINDOW_S) / 3600 - self._imports.get(window, 0.0)
        k = round((t_s - p.t_s[0]) / step)
        t = t_s + step
        while t < end - 1e-9:
            if m.fcr:
                room_wh -= self.fcr_peak_share * m.fcr.capacity_in(t, t + step) * step / 3600
            j = k + round((t - t_s) / step)
            later_w = p.grid_w[j] if j < len(p.t_s) else at(m.base_load, t)
            room_wh -= max(later_w, 0.0) * step / 3600
            t += step
        return room_wh * 3600 / step

    def _told(
        self,
        cid: str,
        tel: Telemetry,
        told: Mapping[str, Told],
        shares: Mapping[str, tuple[float, float]],
        valid: float,
    ) -> Setpoint:
        t = told[cid]
        profile, levels = self._profile(tel.truck or "", tel.t_s, t.power_w) if self.scheduled else ((), 0)
        fcr_w, down_w = shares.get(cid, (0.0, 0.0))
        return Setpoint(tel.t_s, t.power_w, valid, None, tel.truck, t.paused, fcr_w, 0.0, profile, levels, down_w)

    def _profile(self, tid: str, t_s: float, now_w: float) -> tuple[tuple[tuple[float, float, int], ...], int]:
        """The truck's plan from now to its departure as (s, W, price level) entries, equal neighbours merged; the
        first step as the real-time layer told it."""
        p, step = self.plan, self.model.step_s
        planned = None if p is None else p.find(tid)
        levels = _price_levels(self.model.import_price)
        if p is None or planned is None:
            return ((step, now_w, levels[at(self.model.import_price, t_s)]),), len(set(levels.values()))
        k = round((t_s - p.t_s[0]) / step)
        end = self.known[tid].departure_s - self.departure_lead_s
        entries: list[tuple[float, float, int]] = []
        for j in range(max(k, 0), len(planned.power_w)):
            t = p.t_s[j]
            if t >= end:
                break
            duration = min(step, end - t)
            # the step's planned energy in the time the truck is still there (as `_planned` tells it)
            power = now_w if j == k else planned.power_w[j] * step / duration
            level = levels[at(self.model.import_price, t)]
            if entries and entries[-1][1] == power and entries[-1][2] == level:
                entries[-1] = (entries[-1][0] + duration, power, level)
            else:
                entries.append((duration, power, level))
        return tuple(entries), len(set(levels.values()))

    def _outlet(self, cid: str, tel: Telemetry, t_s: float, fcr_step: bool, energy: Mapping[str, float]) -> Outlet:
        charger = self.model.charger(cid)
        a = self.known.get(tel.truck or "")
        heard = tel.energy_to_target_wh is not None  # the truck has told its limits in a charge loop
        ev_charge = tel.ev_max_charge_w if heard else (a.max_charge_w if a else charger.max_power_w)
        ev_discharge = tel.ev_max_discharge_w if heard else (a.max_discharge_w if a else 0.0)
        rating = charger.power_at(tel.voltage_v)  # its current rating at the truck's voltage now
        max_charge = min(ev_charge, rating)
        max_discharge = min(ev_discharge, rating) if charger.bidirectional else 0.0
        planned = self._planned(tel.truck or "", t_s)
        plan_w = max_charge if planned is None else planned  # an unknown truck: charged as the guard allows
        if a is not None and a.truck in energy:  # DLB fills a truck up to its target, no further
            need_wh = min(a.target_soc + TARGET_MARGIN, 1.0) * a.battery_wh - energy[a.truck]
            # but at least at its minimum power while it is below the target itself: a cap below it pauses the truck
            least_w = a.min_power_w if _below_target(a, energy[a.truck]) else 0.0
            max_charge = min(max_charge, max(need_wh * 3600 / self.model.step_s, plan_w, least_w, 0.0))
        budget = a.max_contactor_cycles if a else 1_000_000
        return Outlet(
            id=cid,
            plan_w=plan_w,
            max_charge_w=max_charge,
            max_discharge_w=max_discharge,
            taking_w=max_charge if heard else None,
            measured_w=tel.power_kw * 1000,
            min_power_w=a.min_power_w if a else 0.0,
            cycles_left=max(budget - max(tel.cycles_used, 1), 0),
            booked=a.booked if a else False,
            efficiency=charger.efficiency,
            fcr=fcr_step and charger.bidirectional and max_discharge > 0 and heard,
            running=heard,
            firm=a is not None and (planned is None or self._firm(a, t_s)),
            may_give_w=self._may_give_w(a, t_s, max_discharge, energy) if heard and planned is not None else 0.0,
        )

    def _firm(self, a: Announcement, t_s: float) -> bool:
        """Every Wh the truck gets now counts: the plan leaves it short of its target, its target cannot be met,
        or it leaves within `GUARD_AHEAD_S`."""
        leaves_in_s = a.departure_s - self.departure_lead_s - t_s
        return a.truck in self.infeasible or self._short_in_plan(a.truck) or leaves_in_s < GUARD_AHEAD_S

    def _may_give_w(
        self, a: Announcement | None, t_s: float, max_discharge_w: float, energy: Mapping[str, float]
    ) -> float:
        """The discharge the demand guard may ask of a truck this step: what it gives above its planned floor, from
        a truck that is not firm (`_firm`: the re-plan takes it back in time)."""
        if a is None or a.truck not in energy or self._firm(a, t_s):
            return 0.0
        above_wh = energy[a.truck] - min(a.min_soc + FLOOR_MARGIN, 1.0) * a.battery_wh
        if max_discharge_w > 0:  # what the pack gives of it at the charger, at that power
            above_wh *= 1 - pack_loss_w(max_discharge_w, PACK_LOSS_H, a.battery_wh) / max_discharge_w
        return max(0.0, min(max_discharge_w, above_wh * 3600 / self.model.step_s))

    def _planned(self, tid: str, t_s: float) -> float | None:
        p = self.plan
        if p is None or tid not in self.known:
            return None
        k = round((t_s - p.t_s[0]) / self.model.step_s)
        planned = p.find(tid)
        if planned is None or k < 0:
            return None
        if k >= len(planned.power_w):
            return 0.0  # after its plan: nothing until a re-plan
        # the plan's power is the step's mean; a truck that leaves within the step takes it in the time it is there
        left_s = self.known[tid].departure_s - self.departure_lead_s - t_s
        return planned.power_w[k] * self.model.step_s / left_s if 0 < left_s < self.model.step_s else planned.power_w[k]


def _below_target(a: Announcement, wh: float) -> bool:
    """The truck's pack holds less than its target, by more than the plan's rounding."""
    return wh < a.target_soc * a.battery_wh - TARGET_TOLERANCE_WH


def _pack_voltages(telemetry: Mapping[str, Telemetry], known: Mapping[str, float]) -> dict[str, float]:
    """The pack voltages the chargers measure now: while power flows, or, for a truck not measured so, while it waits
    at zero power in the charge loop (contactors closed: the inlet is at the pack's voltage). Not in pre-charge, a
    pause or below a DC charger's range (the inlet is not at the pack's voltage there). A truck told to wait for a
    late cheap price was otherwise planned at the charger's power rating until it drew current, and at 640 A its
    pack took 375 kW where the plan counted 800 kW (a seeded truck left 4.7 kWh short)."""
    out = {}
    for tel in telemetry.values():
        if tel.truck is None or tel.voltage_v < MIN_PACK_V:
            continue
        flowing = tel.state in ("charging", "discharging")
        waiting = tel.state == "connected" and tel.energy_to_target_wh is not None and tel.truck not in known
        if flowing or waiting:
            out[tel.truck] = tel.voltage_v
    return out


def _dc_rise(charger: Charger, power_w: float, grid_w: float) -> float:
    """How far a charger's DC power may rise from `power_w` for its grid-side power to rise by `grid_w` (>= 0): a
    discharge's less giving back first (DC x efficiency at the grid), then charging (DC / efficiency)."""
    giving_w = max(-power_w, 0.0)
    if grid_w <= giving_w * charger.efficiency:
        return grid_w / charger.efficiency
    return giving_w + (grid_w - giving_w * charger.efficiency) * charger.efficiency


def _price_levels(prices: Series) -> dict[float, int]:
    """Each import price's level: 0 the cheapest, one level per distinct price."""
    return {price: level for level, price in enumerate(sorted({v for _, v in prices}))}


def _fcr_shares(outlets: list[Outlet], told: Mapping[str, Told], capacity_w: float) -> dict[str, tuple[float, float]]:
    """Each charger's FCR shares (symmetric, and lowering the import only): the capacity over the chargers that
    hold it in proportion to their symmetric headroom; where that falls short of the capacity in the direction
    that lowers the import, the rest from any charger in the charge loop with room in that direction (a truck at
    full power cannot raise its import, a one-way charger cannot export), as a share that acts in that direction
    only, so it never raises the import the guard counted."""
    if capacity_w <= 0:
        return {}
    live = [o for o in outlets if o.running and not told[o.id].paused]
    power = {o.id: told[o.id].power_w for o in live}
    down = {o.id: max(0.0, power[o.id] + (o.max_discharge_w if o.fcr else 0.0)) for o in live}
    symmetric = {o.id: min(max(0.0, o.max_charge_w - power[o.id]), down[o.id]) for o in live if o.fcr}
    total = sum(symmetric.values())
    shares = {cid: min(room, capacity_w * room / total) for cid, room in symmetric.items()} if total > 0 else {}
    short = capacity_w - sum(min(shares.get(cid, 0.0), down[cid]) for cid in power)
    spare = {cid: down[cid] - shares.get(cid, 0.0) for cid in power if down[cid] > shares.get(cid, 0.0)}
    room = sum(spare.values())
    extra = {cid: w * min(1.0, short / room) for cid, w in spare.items()} if short > 0 and room > 0 else {}
    return {
        cid: (shares.get(cid, 0.0), extra.get(cid, 0.0)) for cid in power if shares.get(cid, 0.0) or extra.get(cid, 0.0)
    }
