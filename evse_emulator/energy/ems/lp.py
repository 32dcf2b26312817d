"""The site EMS's plan: one linear programme over the rolling horizon, solved with HiGHS.

Variables (W unless named): per truck i and plugged-in step k, charge c >= 0 and discharge d >= 0 (DC, bounded by
the truck and its charger times the plugged-in fraction of the step; d only on a bidirectional charger with
max_discharge_w > 0 and, in a plan, when the truck starts at or above its floor), the battery energy E (Wh) at
the step's end, the setpoint change v >= |p_k - p_k-1| (p = c - d); per truck the unserved energy u >= 0 (Wh);
per step grid import gi and export ge within the limits; one peak P >= the 15-min peak so far.

Constraints: E_k = E_k-1 + (eta c - d / eta) * step_s / 3600 (eta: the truck's storage efficiency, 1 in the
bound: lossless), E within [floor, battery] (floor = min_soc, or the present SoC when below it); the charge
within the BMS's taper above its knee, on the energy at the step's end (a linear fall to `taper_end` x
max_charge_w at 100 %); E at departure (or the plan's end) + u >= target; gi - ge = base load + sum(c / eff -
d * eff); trucks sharing a charger within one step share its rating; P >= the mean import of every 15-min
window; during FCR (per step, the trucks plugged in the whole step on bidirectional chargers): power headroom
sum eff * (p + d_max) >= capacity and sum eff * (c_max - p) >= capacity, the grid limits hold with capacity on
top, and the energy at both ends of the step holds capacity for `fcr_reserve_s` in each direction (less a
penalised per-step shortfall, so that a reservation the trucks cannot hold does not void the plan).

Objective: import cost - export revenue + demand * (P - peak so far) + unserved penalty (`Weights.unserved`)
+ the FCR shortfall penalty + the regulariser (throughput rising over the horizon, optionally setpoint changes;
see `Weights`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import highspy
import numpy as np

from evse_emulator.energy.ems import fallback
from evse_emulator.energy.ems.model import BOUND_WEIGHTS, PLAN_WEIGHTS, Plan, SitePlan, Weights, evaluate

TIME_LIMIT_S = 10.0
_FcrTruck = tuple[int, float, int, int, float, float, bool]  # truck, eff, c, d cols, c_max, d_max, above its floor


@dataclass
class _Lp:
    """Columns and rows collected before one pass to HiGHS."""

    cost: list[float] = field(default_factory=list)
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    row_lower: list[float] = field(default_factory=list)
    row_upper: list[float] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    index: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    offset: float = 0.0

    def col(self, cost: float, lower: float, upper: float) -> int:
        self.cost.append(cost)
        self.lower.append(lower)
        self.upper.append(upper)
        return len(self.cost) - 1

    def row(self, terms: dict[int, float], lower: float, upper: float) -> None:
        self.starts.append(len(self.index))
        self.index.extend(terms)
        self.value.extend(terms.values())
        self.row_lower.append(lower)
        self.row_upper.append(upper)

    def solve(self, time_limit: float, scale: float) -> tuple[highspy.Highs, bool]:
        """Solve with every cost x `scale` (the energy prices near 1, so that tie-breaks stay above the tolerances)."""
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("time_limit", float(time_limit))
        f64 = np.float64
        n = len(self.cost)
        h.addCols(
            n, np.array(self.cost, f64) * scale, np.array(self.lower, f64), np.array(self.upper, f64), 0, [], [], []
        )
        h.addRows(
            len(self.row_lower),
            np.array(self.row_lower, f64),
            np.array(self.row_upper, f64),
            len(self.index),
            np.array(self.starts, np.int32),
            np.array(self.index, np.int32),
            np.array(self.value, f64),
        )
        h.changeObjectiveOffset(self.offset * scale)
        h.run()
        return h, h.getModelStatus() == highspy.HighsModelStatus.kOptimal


def plan(
    x: SitePlan, *, time_limit: float = TIME_LIMIT_S, weights: Weights = PLAN_WEIGHTS, strict_floor: bool = True
) -> Plan:
    """The optimal plan; `fallback.plan` (marked) when HiGHS fails, finds no optimum or hits `time_limit` (s).

    `strict_floor=False` lets a truck that starts below its floor discharge back to its start (a relaxation,
    for the lower bound); a plan keeps such a truck from discharging until a re-plan sees it above the floor.
    """
    inf = highspy.kHighsInf
    lp = _Lp()
    hours = x.step_s / 3600
    gi = [lp.col(x.import_eur_per_kwh[k] * hours / 1000, 0.0, x.import_limit_w[k]) for k in range(x.n)]
    ge = [lp.col(-x.export_eur_per_kwh[k] * hours / 1000, 0.0, x.export_limit_w[k]) for k in range(x.n)]
    grid_rows: list[dict[int, float]] = [{gi[k]: 1.0, ge[k]: -1.0} for k in range(x.n)]
    on_charger: dict[tuple[str, int], dict[int, float]] = {}
    fcr: list[list[_FcrTruck]] = [[] for _ in range(x.n)]
    energy_at: dict[tuple[int, int], tuple[int | None, float]] = {}  # (truck, boundary k) -> (E col | None, E0)
    cols: list[dict[int, tuple[int, int]]] = []
    throughput = weights.throughput_eur_per_kwh * hours / 1000
    for i, truck in enumerate(x.trucks):
        charger = x.charger(truck.charger)
        eff, cap = charger.efficiency, charger.max_power_w
        e0, floor, full = truck.soc * truck.battery_wh, truck.min_soc * truck.battery_wh, truck.battery_wh
        can_discharge = charger.bidirectional and truck.max_discharge_w > 0 and (e0 >= floor or not strict_floor)
        c_max, d_max = min(truck.max_charge_w, cap), min(truck.max_discharge_w, cap) if can_discharge else 0.0
        e_low = min(floor, e0)
        steps = [k for k in range(x.n) if x.presence(truck, k) > 0]
        mine: dict[int, tuple[int, int]] = {}
        prev: tuple[int | None, float] = (None, e0)
        for k in steps:
            f = x.presence(truck, k)
            tie = throughput * (1 + k / x.n)
            c, d = lp.col(tie, 0.0, c_max * f), lp.col(tie, 0.0, d_max * f)
            e = lp.col(0.0, e_low, full)
            if truck.taper_knee_soc < 1.0:  # c <= c_max f (1 - (1 - end) (E / full - knee) / (1 - knee))
                slope = (1 - truck.taper_end) / (1 - truck.taper_knee_soc)
                lp.row({c: 1.0, e: c_max * f * slope / full}, -inf, c_max * f * (1 + slope * truck.taper_knee_soc))
            mine[k] = (c, d)
            energy_at.setdefault((i, k), prev)
            energy_at[(i, k + 1)] = (e, 0.0)
            eta = truck.storage_efficiency
            terms = {e: 1.0, c: -hours * eta, d: hours / eta}
            if prev[0] is not None:
                terms[prev[0]] = -1.0
            lp.row(terms, prev[1], prev[1])
            prev = (e, 0.0)
            grid_rows[k][c] = -1 / eff
            grid_rows[k][d] = eff
            on_charger.setdefault((charger.id, k), {}).update({c: 1.0, d: 1.0})
            if charger.bidirectional and f >= 1.0:
                fcr[k].append((i, eff, c, d, c_max, d_max, can_discharge and e0 >= floor))
            if weights.variation_eur_per_kw > 0 and k - 1 in mine:
                v = lp.col(weights.variation_eur_per_kw / 1000, 0.0, inf)
                pc, pd = mine[k - 1]
                lp.row({v: 1.0, c: -1.0, d: 1.0, pc: 1.0, pd: -1.0}, 0.0, inf)
                lp.row({v: 1.0, c: 1.0, d: -1.0, pc: -1.0, pd: 1.0}, 0.0, inf)
        cols.append(mine)
        if steps and truck.target_soc * full > 0:
            u = lp.col(weights.unserved(x.unserved_eur_per_kwh, truck) / 1000, 0.0, inf)
            soft = lp.col(x.unserved_eur_per_kwh / 1000, 0.0, truck.soft_soc * full)  # the margin's shortfall
            e_end, _ = energy_at[(i, steps[-1] + 1)]
            assert e_end is not None
            lp.row({e_end: 1.0, u: 1.0, soft: 1.0}, truck.target_soc * full, inf)
        elif truck.departure_s > x.t_s[0]:  # plugged in only after the plan: its shortfall is a constant
            short_kwh = max(0.0, truck.target_soc * full - e0) / 1000
            lp.offset += short_kwh * weights.unserved(x.unserved_eur_per_kwh, truck)
    for k in range(x.n):
        lp.row(grid_rows[k], x.base_load_w[k], x.base_load_w[k])
    for (cid, _), terms in on_charger.items():
        if len(terms) > 2:
            lp.row(terms, 0.0, x.charger(cid).max_power_w)
    fcr_short = _fcr_rows(lp, x, fcr, energy_at, gi, ge, weights.fcr_shortfall_eur_per_kwh * hours / 1000)
    if x.demand_eur_per_kw > 0:
        peak = lp.col(x.demand_eur_per_kw / 1000, x.peak_15min_w, inf)
        lp.offset -= x.demand_eur_per_kw / 1000 * x.peak_15min_w
        for steps, wh, length in x.demand_windows():
            lp.row({peak: 1.0} | {gi[k]: -x.step_s / length for k in steps}, wh * 3600 / length, inf)
    try:
        scale = 1000 / hours / max(0.01, *(abs(p) for p in x.import_eur_per_kwh))
        h, optimal = lp.solve(time_limit, scale)
    except Exception as e:  # any solver failure: the safe plan
        return fallback.plan(x, reason=f"HiGHS failed: {e}")
    if not optimal:
        return fallback.plan(x, reason=f"HiGHS: {h.modelStatusToString(h.getModelStatus())}")
    sol = h.getSolution().col_value
    power = [[sol[m[k][0]] - sol[m[k][1]] if k in m else 0.0 for k in range(x.n)] for m in cols]
    short = [sol[fcr_short[k]] if k in fcr_short else 0.0 for k in range(x.n)]
    objective = h.getInfo().objective_function_value / scale
    return evaluate(
        x, power, weights, fcr_shortfall_w=short, status="optimal", solve_s=h.getRunTime(), objective_eur=objective
    )


def _fcr_rows(
    lp: _Lp,
    x: SitePlan,
    fcr: list[list[_FcrTruck]],
    energy_at: dict[tuple[int, int], tuple[int | None, float]],
    gi: list[int],
    ge: list[int],
    penalty: float,
) -> dict[int, int]:
    """The FCR reservation of every step in a window: power, grid and energy headroom in both directions.

    Each step's reservation may fall short by a penalised slack (its column, per step, is returned): a reservation
    that the plugged-in trucks cannot hold costs its penalty instead of making the whole plan infeasible.
    """
    inf = highspy.kHighsInf
    shortfall: dict[int, int] = {}
    for k in range(x.n):
        capacity = x.fcr(k)
        if capacity <= 0:
            continue
        down: dict[int, float] = {}  # sum eff * (c - d + d_max) >= capacity: the depot can lower its import
        up: dict[int, float] = {}  # sum eff * (c_max - c + d) >= capacity: the depot can raise its import
        spare_down = spare_up = 0.0
        for _, eff, c, d, c_max, d_max, _ in fcr[k]:
            down |= {c: eff, d: -eff}
            up |= {c: -eff, d: eff}
            spare_down += eff * d_max
            spare_up += eff * c_max
        short = lp.col(penalty, 0.0, capacity)
        shortfall[k] = short
        lp.row(down | {short: 1.0}, capacity - spare_down, inf)
        lp.row(up | {short: 1.0}, capacity - spare_up, inf)
        lp.row({gi[k]: 1.0, ge[k]: -1.0, short: 1.0}, capacity - x.export_limit_w[k], inf)
        lp.row({gi[k]: 1.0, ge[k]: -1.0, short: -1.0}, -inf, x.import_limit_w[k] - capacity)
        reserve_wh = capacity * x.fcr_reserve_s / 3600
        if reserve_wh <= 0:
            continue
        for boundary in (k, k + 1):  # the energy at the step's start and end
            give: dict[
                int, float
            ] = {}  # sum eff * (E - floor) >= reserve, over the trucks that may discharge from above the floor
            take: dict[int, float] = {}  # sum (battery - E) >= reserve, i.e. sum E <= sum battery - reserve
            give_rhs, take_rhs = reserve_wh, -reserve_wh
            for i, eff, _, _, _, _, discharges in fcr[k]:
                truck = x.trucks[i]
                col, e0 = energy_at[(i, boundary)]
                take_rhs += truck.battery_wh
                if discharges:
                    give_rhs += eff * truck.min_soc * truck.battery_wh
                if col is None:
                    give_rhs -= eff * e0 if discharges else 0.0
                    take_rhs -= e0
                    continue
                if discharges:
                    give[col] = eff
                take[col] = 1.0
            lp.row(give | {short: x.fcr_reserve_s / 3600}, give_rhs, inf)
            lp.row(take | {short: -x.fcr_reserve_s / 3600}, -inf, take_rhs)
    return shortfall


def lower_bound(x: SitePlan, *, time_limit: float = 600.0) -> float:
    """The perfect-foresight bound (EUR): the same LP called with every truck known from t = 0, lossless battery.

    Pass a `SitePlan` from t = 0 to the end holding every truck of the scenario. The bound uses no priority
    premium, no regulariser and the relaxed floor, so its optimum is a true lower bound of the cost any
    dispatch that keeps the limits, floors and FCR reservation can reach. Raises when HiGHS finds no optimum.
    """
    result = plan(x, time_limit=time_limit, weights=BOUND_WEIGHTS, strict_floor=False)
    if result.fallback:
        raise RuntimeError(f"no lower bound: {result.status}")
    return result.objective_eur - result.costs.fcr_shortfall_eur
