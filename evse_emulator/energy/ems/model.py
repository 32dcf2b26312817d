"""What the site EMS knows at plan time (`SitePlan`) and what it decides (`Plan`), with the one cost model both use.

Units are SI: W, Wh, s; prices in EUR/kWh, the demand charge in EUR/kW. Power is signed from the truck's side:
+ charges the truck, - discharges it. Grid power is + import, - export, at the connection point: base load plus
every charger through its efficiency (grid = DC / eff when charging, DC * eff when discharging).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np

PowerW = TypeVar("PowerW", float, np.ndarray)
DEMAND_WINDOW_S = 900.0  # the demand charge is on the mean import of 15-min windows aligned at t = 0


@dataclass(frozen=True, slots=True)
class Charger:
    id: str
    max_power_w: float  # DC rating, both directions
    bidirectional: bool = False
    efficiency: float = 1.0
    max_current_a: float = math.inf  # DC rating: at a pack's voltage it may bind before max_power_w

    def power_at(self, voltage_v: float) -> float:
        """The most DC power at this output voltage (W; the power rating when the voltage is not known)."""
        return min(self.max_power_w, self.max_current_a * voltage_v) if voltage_v > 0 else self.max_power_w

    def grid_w(self, power_w: float) -> float:
        """The grid-side power of a DC power (+ charging: DC / efficiency; discharging: DC x efficiency)."""
        return power_w / self.efficiency if power_w > 0 else power_w * self.efficiency


def pack_loss_w(power_w: PowerW, loss_h: float, battery_wh: float) -> PowerW:
    """A pack's and cable's I^2 R loss (W, >= 0) at a DC power (W, either way; a float or a numpy array): the
    pack's energy moves by the power less it (`Truck.loss_h`)."""
    return loss_h * power_w * power_w / battery_wh


@dataclass(frozen=True, slots=True)
class Truck:
    """A truck known at plan time; `soc` is its SoC now (or at arrival, when it has not arrived yet)."""

    id: str
    charger: str
    arrival_s: float  # plugged in over [arrival_s, departure_s)
    departure_s: float
    battery_wh: float
    soc: float
    target_soc: float  # wanted at departure (at the plan's end when it leaves later)
    min_soc: float = 0.0  # V2G floor: never discharged below
    max_soc: float = 1.0  # the plan fills the pack at most this far (from below it)
    max_charge_w: float = math.inf
    max_discharge_w: float = 0.0  # 0: the truck offers no V2G
    min_power_w: float = 0.0  # not an LP constraint (it needs binaries): the real-time layer pauses below it
    booked: bool = False
    taper_knee_soc: float = 1.0  # above this SoC the charge power falls linearly ...
    taper_end: float = 1.0  # ... to this fraction of max_charge_w at 100 % (the BMS's taper; 1: none)
    # the pack's and cable's I^2 R losses: at a DC power P (either way) the pack's energy moves by P - loss_h x P^2 /
    # battery_wh (loss_h in h: its resistance x battery_wh / its voltage^2); 0: lossless
    loss_h: float = 0.0
    firm_target: bool = True  # False: known not to be reachable (its shortfall costs only the scenario's price)
    soft_soc: float = 0.0  # the top of target_soc that costs only the scenario's price (a planning margin)
    charge_now_w: float | None = None  # what its BMS says it takes now: the first step's bound, not the taper model
    discharge_now_w: float | None = None  # what it says it gives now (its current limit at its voltage): the same
    voltage_v: float = 0.0  # its pack's voltage at `soc` as last measured (0: not known; the charger's power rating)
    voltage_slope: float = 0.0  # the pack's voltage rises by this fraction of `voltage_v` per unit of SoC
    # below its floor now: from this time the plan may discharge it, and holds it at or above the floor from then
    # (inf: not in this plan)
    v2g_from_s: float = math.inf
    # the real-time layer's dwell: in the steps that start before `turn_after_s` the truck keeps its direction now
    # (`direction`: +1 charging, -1 discharging, 0 none)
    direction: int = 0
    turn_after_s: float = -math.inf
    expected: bool = False  # not a truck: the forecast demand of trucks not known yet (`forecast`), no FCR headroom


@dataclass(frozen=True, slots=True)
class SitePlan:
    """The plan's inputs: a rolling horizon of `len(t_s)` steps of `step_s` from now to the end.

    Per-step series are indexed like `t_s`. `fcr_w[k] > 0` marks a step inside an FCR window (symmetric capacity);
    `demand_window_import_wh` is the grid import already metered in the 15-min window that `t_s[0]` falls in.
    """

    step_s: float
    t_s: tuple[float, ...]
    import_eur_per_kwh: tuple[float, ...]
    export_eur_per_kwh: tuple[float, ...]
    base_load_w: tuple[float, ...]
    import_limit_w: tuple[float, ...]
    export_limit_w: tuple[float, ...]
    chargers: tuple[Charger, ...]
    trucks: tuple[Truck, ...]
    unserved_eur_per_kwh: float
    demand_eur_per_kw: float = 0.0
    peak_15min_w: float = 0.0  # the highest 15-min mean import reached so far: only an increase costs
    demand_window_import_wh: float = 0.0
    fcr_w: tuple[float, ...] = ()  # empty: no FCR
    fcr_reserve_s: float = 0.0  # SoC headroom to hold fcr_w this long in either direction
    fcr_peak_share: float = 0.0  # of fcr_w, kept free below the 15-min peak for the droop's import

    def __post_init__(self) -> None:
        n = len(self.t_s)
        if n == 0 or self.step_s <= 0:
            raise ValueError("a plan needs at least one step and step_s > 0")
        for k in range(1, n):
            if not math.isclose(self.t_s[k] - self.t_s[k - 1], self.step_s):
                raise ValueError(f"t_s is not evenly spaced by step_s at index {k}")
        series = ("import_eur_per_kwh", "export_eur_per_kwh", "base_load_w", "import_limit_w", "export_limit_w")
        for name in series:
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} values for {n} steps")
        if self.fcr_w and len(self.fcr_w) != n:
            raise ValueError(f"fcr_w has {len(self.fcr_w)} values for {n} steps")
        if any(e > i for i, e in zip(self.import_eur_per_kwh, self.export_eur_per_kwh, strict=True)):
            raise ValueError("an export price above the import price makes import+export a fake profit")
        if self.demand_eur_per_kw > 0 and (DEMAND_WINDOW_S % self.step_s or self.t_s[0] % self.step_s):
            raise ValueError("the demand charge needs step_s dividing 900 s and steps aligned at t = 0")
        ids = {c.id for c in self.chargers}
        for t in self.trucks:
            if t.charger not in ids:
                raise ValueError(f"truck {t.id}: unknown charger {t.charger}")
            if not (0 <= t.soc <= 1 and 0 <= t.min_soc <= 1 and 0 <= t.target_soc <= 1 and t.battery_wh > 0):
                raise ValueError(f"truck {t.id}: SoC values must be within [0, 1] and battery_wh > 0")

    @property
    def n(self) -> int:
        return len(self.t_s)

    def fcr(self, k: int) -> float:
        return self.fcr_w[k] if self.fcr_w else 0.0

    def charger(self, cid: str) -> Charger:
        return next(c for c in self.chargers if c.id == cid)

    def presence(self, truck: Truck, k: int) -> float:
        """The fraction of step k during which the truck is plugged in."""
        t0 = self.t_s[k]
        return max(0.0, min(t0 + self.step_s, truck.departure_s) - max(t0, truck.arrival_s)) / self.step_s

    def presence_row(self, truck: Truck) -> np.ndarray:
        """`presence` of every step at once."""
        start = np.asarray(self.t_s)
        overlap = np.minimum(start + self.step_s, truck.departure_s) - np.maximum(start, truck.arrival_s)
        return np.clip(overlap / self.step_s, 0.0, None)

    def demand_windows(self) -> list[tuple[list[int], float, float]]:
        """Per 15-min window touched by the plan: its steps, the energy before now (Wh) and the covered length (s)."""
        out: dict[int, tuple[list[int], float, float]] = {}
        first = int(self.t_s[0] // DEMAND_WINDOW_S)
        past_s = self.t_s[0] - first * DEMAND_WINDOW_S
        for k, t in enumerate(self.t_s):
            w = int((t + 1e-9) // DEMAND_WINDOW_S)
            steps, wh, length = out.get(w, ([], self.demand_window_import_wh if w == first else 0.0, 0.0))
            out[w] = ([*steps, k], wh, length + self.step_s + (past_s if w == first and not steps else 0.0))
        return list(out.values())


@dataclass(frozen=True, slots=True)
class Weights:
    """What the planner adds to the true cost: booked priority, the FCR shortfall and an anti-chatter regulariser.

    A booked truck's unserved energy costs `booked_weight` x what an unbooked one's does when its target can be
    met, and only `booked_premium` more when it cannot: booked trucks come first when the site is short, but a
    target that cannot be met is not bought at more than about its price (at 10x, the demand charge of a whole
    evening's peak was paid to push a few kWh more into a truck that would leave short anyway). The premium is
    reported apart from the true cost.
    `throughput_eur_per_kwh` charges |DC| energy, rising linearly to twice that at the horizon's end: no
    simultaneous charge and discharge, no round trip that does not pay, and equal-priced steps filled earliest
    first, so a truck's power comes in blocks instead of chattering between ties.
    `flat_premium` charges the top half of a truck's charge (and discharge) rate in each one-step block of the plan
    (its detailed first hour, and a step where a truck comes or goes) at that fraction of the throughput tie-break
    more. Within the detailed hour, where the minutes of a window cost the same, a truck's power is even instead of
    full and then nothing (a pause, a contactor cycle, the resume's ramp, the current limit of a pack run at its
    maximum: each left the window's peak above the plan's); a truck with slack runs at up to half its rate in that
    hour and takes the rest after it, where the 15-min blocks fill earliest first (the re-plans move that hour on).
    The solver's objective counts the premium, `Costs.regulariser_eur` does not. Measured online against none: the
    default and seeds 0-4, 10-29 0.1 -0.27 %, 0.3 -0.37 %, 1.0 -0.34 % in cost; 0.3 on seeds 30-49 -0.37 %, on
    seeds 50-69 -0.70 % (every run ok).
    `variation_eur_per_kw` charges every change of a truck's setpoint between steps (one more column and two rows
    per truck and step, which makes a 24 h / 50-truck plan some 40x slower: off by default).
    `fcr_shortfall_eur_per_kwh` charges each kW of the FCR reservation not held for an hour: above the unserved
    price by default, since a truck's energy can move in time and a sold reservation cannot.
    """

    booked_weight: float = 10.0
    booked_premium: float = 0.05
    throughput_eur_per_kwh: float = 1e-4
    variation_eur_per_kw: float = 0.0
    fcr_shortfall_eur_per_kwh: float = 10.0  # per W of reserved capacity not held, per hour (x 1000)
    target_eur_per_kwh: float = 0.0  # the least a kWh short of a target costs the planner
    flat_premium: float = 0.0

    def unserved(self, price_eur_per_kwh: float, truck: Truck) -> float:
        """What a kWh short of a truck's target costs the planner (EUR): at least `target_eur_per_kwh` when the
        target can be met (`Truck.firm_target`), x booked_weight; the scenario's price for one that cannot,
        x (1 + booked_premium)."""
        if not truck.booked:
            return max(price_eur_per_kwh, self.target_eur_per_kwh) if truck.firm_target else price_eur_per_kwh
        if truck.firm_target:
            return max(price_eur_per_kwh, self.target_eur_per_kwh) * self.booked_weight
        return price_eur_per_kwh * (1 + self.booked_premium)


# The plan puts targets that can be met first (the operator's rule: every truck leaves with the energy it booked):
# a kWh short costs it at least 200 EUR, above what a kWh can cost in demand charge (a 15-min window: 4 kW per kWh, at
# demand charges up to 50 EUR/kW) or in FCR penalty; the report still counts the scenario's unserved price.
PLAN_WEIGHTS = Weights(target_eur_per_kwh=200.0, flat_premium=0.3)
BOUND_WEIGHTS = Weights(booked_weight=1.0, booked_premium=0.0, throughput_eur_per_kwh=0.0, variation_eur_per_kw=0.0)
# the bound of the dispatches that meet every target that can be met (what the depot's EMS must do)
TARGETS_MET_BOUND_WEIGHTS = replace(BOUND_WEIGHTS, target_eur_per_kwh=200.0)


@dataclass(frozen=True, slots=True)
class Costs:
    import_eur: float
    export_revenue_eur: float
    demand_eur: float
    unserved_eur: float
    priority_eur: float  # the booked premium over the true unserved cost (planning only)
    fcr_shortfall_eur: float  # the FCR reservation not held (planning only)
    regulariser_eur: float  # planning only

    @property
    def total_eur(self) -> float:
        """The true cost (as a report states it): import - export revenue + demand + unserved."""
        return self.import_eur - self.export_revenue_eur + self.demand_eur + self.unserved_eur

    @property
    def objective_eur(self) -> float:
        return self.total_eur + self.priority_eur + self.fcr_shortfall_eur + self.regulariser_eur


@dataclass(frozen=True, slots=True)
class TruckPlan:
    id: str
    charger: str
    power_w: tuple[float, ...]  # DC setpoint per step (mean over the step; 0 while not plugged in)
    soc: tuple[float, ...]  # expected SoC at each step's end (held outside the plugged-in window)
    unserved_wh: float  # short of the target at departure (or at the plan's end)


@dataclass(frozen=True, slots=True)
class Plan:
    t_s: tuple[float, ...]
    grid_w: tuple[float, ...]  # per step, + import
    peak_15min_w: float  # the highest 15-min mean import, including the peak so far and the droop's room (as the LP)
    fcr_shortfall_w: tuple[float, ...]  # per step, the FCR reservation the plan does not hold
    trucks: tuple[TruckPlan, ...]
    costs: Costs
    objective_eur: float  # as the solver reported it (the fallback: costs.objective_eur)
    status: str
    solve_s: float
    fallback: bool
    detailed_until_s: float = math.inf  # step by step until then; 15-min means after it (re-plan before it)

    def find(self, tid: str) -> TruckPlan | None:
        """The truck's plan; None when the plan does not hold it."""
        return next((t for t in self.trucks if t.id == tid), None)

    def truck(self, tid: str) -> TruckPlan:
        planned = self.find(tid)
        if planned is None:
            raise KeyError(f"truck {tid} is not in the plan")
        return planned


def evaluate(
    x: SitePlan,
    power_w: Sequence[Sequence[float]],
    weights: Weights,
    *,
    fcr_shortfall_w: Sequence[float] = (),
    status: str,
    solve_s: float = 0.0,
    fallback: bool = False,
    objective_eur: float | None = None,
    detailed_until_s: float = math.inf,
) -> Plan:
    """The plan (SoC, grid, costs) that follows from DC setpoints `power_w[truck][step]`, by the EMS's cost model."""
    h = x.step_s / 3600
    grid_w = np.array(x.base_load_w, dtype=float)
    rising = 1 + np.arange(x.n) / x.n  # the throughput tie-break's weight per step
    trucks: list[TruckPlan] = []
    unserved = priority = throughput = variation = 0.0
    for truck, p in zip(x.trucks, power_w, strict=True):
        eff = x.charger(truck.charger).efficiency
        dc = np.asarray(p, dtype=float)
        if len(dc) != x.n:
            raise ValueError(f"truck {truck.id}: {len(dc)} setpoints for {x.n} steps")
        charging = dc >= 0
        grid_w += np.where(charging, dc / eff, dc * eff)
        # a truck plugged in for part of a step runs at dc / presence for that part: its loss is dc^2 / presence
        presence = x.presence_row(truck)
        loss_w = np.divide(
            pack_loss_w(dc, truck.loss_h, truck.battery_wh), presence, out=np.zeros_like(dc), where=presence > 0
        )
        stored_wh = (dc - loss_w) * h
        energy_wh = truck.soc * truck.battery_wh + np.cumsum(stored_wh)
        energy = float(energy_wh[-1]) if x.n else truck.soc * truck.battery_wh
        throughput += float(np.abs(dc) @ rising) * h / 1000
        if weights.variation_eur_per_kw > 0:
            present = x.presence_row(truck) > 0
            both = present[1:] & present[:-1]
            variation += float(np.abs(np.diff(dc))[both].sum()) / 1000
        short = max(0.0, truck.target_soc * truck.battery_wh - energy) if truck.departure_s > x.t_s[0] else 0.0
        unserved += short / 1000 * x.unserved_eur_per_kwh
        firm_short = max(0.0, short - truck.soft_soc * truck.battery_wh)
        priority += firm_short / 1000 * (weights.unserved(x.unserved_eur_per_kwh, truck) - x.unserved_eur_per_kwh)
        soc = tuple((energy_wh / truck.battery_wh).tolist())
        trucks.append(TruckPlan(truck.id, truck.charger, tuple(p), soc, short))
    grid = grid_w.tolist()
    imports = [max(g, 0.0) for g in grid]
    peak = x.peak_15min_w
    if x.demand_eur_per_kw > 0:
        for steps, wh, length in x.demand_windows():
            droop_wh = x.fcr_peak_share * sum(x.fcr(k) for k in steps) * x.step_s / 3600  # kept free, as the LP
            peak = max(peak, (wh * 3600 + sum(imports[k] for k in steps) * x.step_s + droop_wh * 3600) / length)
    costs = Costs(
        import_eur=sum(g * c for g, c in zip(imports, x.import_eur_per_kwh, strict=True)) * h / 1000,
        export_revenue_eur=sum(max(-g, 0.0) * c for g, c in zip(grid, x.export_eur_per_kwh, strict=True)) * h / 1000,
        demand_eur=x.demand_eur_per_kw * (peak - x.peak_15min_w) / 1000,
        unserved_eur=unserved,
        priority_eur=priority,
        fcr_shortfall_eur=weights.fcr_shortfall_eur_per_kwh * sum(fcr_shortfall_w) * h / 1000,
        regulariser_eur=weights.throughput_eur_per_kwh * throughput + weights.variation_eur_per_kw * variation,
    )
    objective = costs.objective_eur if objective_eur is None else objective_eur
    fcr_short = tuple(fcr_shortfall_w) or (0.0,) * x.n
    trucks_plan = tuple(trucks)
    return Plan(
        x.t_s, tuple(grid), peak, fcr_short, trucks_plan, costs, objective, status, solve_s, fallback, detailed_until_s
    )
