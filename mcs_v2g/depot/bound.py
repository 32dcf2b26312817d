"""The perfect-foresight lower bound of a depot scenario's cost: the EMS's LP with everything known at t = 0.

`foresight_plan` is the `SitePlan` from t = 0 to `horizon_s` that holds every truck of the scenario as announced
(arrival, departure, initial SoC, target, floor, powers, booked), the scenario's price and base-load series per step,
the grid limits as the scenario states them and the FCR capacity of every step wholly inside a window (as `SiteEms`
counts it). It is built here rather than by `SiteEms.site_plan`, which plans to a margin above each target, keeps
`GUARD_MARGIN` of each limit free and room below the peak for the FCR droop, models the BMS's taper, the pack's
losses and the chargers' current rating at the measured pack voltage, moves departures forward by the
chargers' lead and ends at the last known departure: the bound has none of these (no taper, lossless
`loss_h` 0, the whole horizon, so that the base load's import and the demand charge count as in the
report). `lower_bound_eur` solves it with `lp.lower_bound` (same HiGHS, no priority premium, no regulariser).

Two bounds: by default of the dispatches that meet every target the scenario says can be met
(`DepotScenario.feasible`), as the EMS must (a run that misses one is not `ok`); `targets_met=False`, of every
dispatch, which may leave a feasible target short at the scenario's unserved price when that is cheaper than the
demand charge of meeting it (seed 0 of the benchmark: 6 % lower, by leaving feasible targets some 350 kWh short).

How the bound relates to the report's `cost_eur.total` (import - export revenue + demand + unserved + fcr_penalty):
the bound is the least import - export revenue + demand + unserved of any dispatch that keeps the grid limits, the
floors, the chargers' and trucks' ratings and holds the FCR reservation (capacity and energy headroom in both
directions in every window step). In the LP a reservation not held is a penalised slack (`Weights.
fcr_shortfall_eur_per_kwh`) whose cost `lower_bound` takes out again; `fcr_shortfall_kwh` says whether the bound's
optimum used it (the LP counts a truck's energy headroom for FCR only when it starts at or above its V2G floor:
on the built-in scenario the trucks of the FCR window all arrive below it, so the bound holds none of the
reservation there, a relaxation that only lowers it). The report's
fcr_penalty (penalty_eur_per_kwh x the droop energy asked but not delivered) is at least 0 and is 0 for a dispatch
that holds the reservation and follows the droop, so the bound adds 0 for it: it is the cost of the ideal FCR
delivery, and an EMS total that includes its fcr_penalty is compared with it as is. Not modelled by the bound: the
droop's own energy (the frequency's mean deviation moves a little energy through the grid and the packs). A
dispatch that does not hold the reservation (the heuristics do not) is outside the bound's set: its import -
export + demand + unserved may fall below the bound, at the price of its fcr_penalty.
"""

from __future__ import annotations

import math
from dataclasses import replace

from evse_emulator.energy.ems.lp import lower_bound, plan
from evse_emulator.energy.ems.model import BOUND_WEIGHTS, SitePlan, Truck
from evse_emulator.energy.ems.site import PACK_LOSS_H, TAPER, at

from .run import announcement, site_model
from .scenario import DepotScenario, TruckSpec


def foresight_plan(scenario: DepotScenario) -> SitePlan:
    """The `SitePlan` of the whole scenario as known at t = 0 with perfect foresight (see the module's text)."""
    m, step = site_model(scenario), float(scenario.step_s)
    times = tuple(float(t) for t in scenario.step_starts())
    n = len(times)
    return SitePlan(
        step_s=step,
        t_s=times,
        import_eur_per_kwh=tuple(at(m.import_price, t) for t in times),
        export_eur_per_kwh=tuple(at(m.export_price, t) for t in times),
        base_load_w=tuple(at(m.base_load, t) for t in times),
        import_limit_w=(m.import_limit_w,) * n,
        export_limit_w=(m.export_limit_w,) * n,
        chargers=m.chargers,
        trucks=tuple(_truck(scenario, spec) for spec in scenario.trucks),
        unserved_eur_per_kwh=m.unserved_eur_per_kwh,
        demand_eur_per_kw=m.demand_eur_per_kw,
        fcr_w=tuple(m.fcr.capacity_in(t, t + step) for t in times) if m.fcr else (),
        fcr_reserve_s=m.fcr.reserve_s if m.fcr else 0.0,
    )


def _truck(scenario: DepotScenario, spec: TruckSpec) -> Truck:
    """A truck as announced: no target margin, no departure lead, no taper, lossless."""
    a = announcement(spec)
    bidirectional = scenario.charger_of(spec).bidirectional
    return Truck(
        id=a.truck,
        charger=a.charger,
        arrival_s=a.arrival_s,
        departure_s=a.departure_s,
        battery_wh=a.battery_wh,
        soc=a.soc,
        target_soc=a.target_soc,
        min_soc=a.min_soc,
        max_charge_w=a.max_charge_w,
        max_discharge_w=a.max_discharge_w if bidirectional else 0.0,
        min_power_w=a.min_power_w,
        booked=a.booked,
        firm_target=scenario.feasible(spec),
    )


def lower_bound_eur(scenario: DepotScenario, *, targets_met: bool = True) -> float:
    """The perfect-foresight lower bound (EUR) of the scenario's import - export + demand + unserved, of the
    dispatches that meet every feasible target (`targets_met=False`: of all of them)."""
    return lower_bound(foresight_plan(scenario), targets_met=targets_met)


def physical_bound_eur(scenario: DepotScenario) -> float:
    """The same bound with the EMS's own model of the trucks (the BMS's taper, the pack's and cable's losses):
    what an EMS that knew every truck from t = 0 could reach with these trucks. Not a bound of the scenario (a
    lossless truck would do better), but the gap from it to the EMS is what the EMS does not know, and how it
    executes."""
    x = foresight_plan(scenario)
    real = tuple(replace(t, taper_knee_soc=TAPER[0], taper_end=TAPER[1], loss_h=PACK_LOSS_H) for t in x.trucks)
    return lower_bound(replace(x, trucks=real), targets_met=True)


def fcr_shortfall_kwh(scenario: DepotScenario) -> float:
    """The FCR reservation (kW x h) the bound's optimum does not hold: 0 when its trucks can hold all of it."""
    x = foresight_plan(scenario)
    if not x.fcr_w:
        return 0.0
    result = plan(x, time_limit=600.0, weights=BOUND_WEIGHTS, strict_floor=False)
    if result.fallback:
        raise RuntimeError(f"no lower bound: {result.status}")
    return math.fsum(result.fcr_shortfall_w) * x.step_s / 3600 / 1000
