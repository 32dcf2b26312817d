"""The site EMS's plan: one linear programme over the rolling horizon, solved with HiGHS.

The horizon's steps are grouped into blocks (`_blocks`): one block per step for the first `DETAIL_S` (the bound:
all of it), then one per 15-min demand window (split where a truck comes or goes), with the series' means over
it; below, "step" means a block.

Variables (W unless named): per truck i and plugged-in step k, charge c >= 0 and discharge d >= 0 (DC, bounded by
the truck and its charger times the plugged-in fraction of the step; d only on a bidirectional charger with
max_discharge_w > 0 and, in a plan, when the truck starts at or above its floor or from its `v2g_from_s` on), the
battery energy E (Wh) at the step's end, the setpoint change v >= |p_k - p_k-1| (p = c - d); per truck the unserved
energy u >= 0 (Wh); per step grid import gi and export ge within the limits; one peak P >= the 15-min peak so far.

Constraints: E_k = E_k-1 + (c - d - l) * step_s / 3600 (l: the pack's I^2 R loss, the truck's `loss_h` x P^2 /
battery_wh through chords: c and d each in `LOSS_PIECES` pieces that lose at their chord's rate; none in the bound:
lossless), E within [floor, battery] (floor = min_soc, or the present SoC when below it, until `v2g_from_s`); the
charge within the BMS's taper above its knee, on the energy at the step's end (a linear fall to `taper_end` x
max_charge_w at 100 %; in the first step, what the truck says it takes now instead, and no more discharge than it
says it gives now); c + d within the charger's current rating at the pack's voltage, for a truck whose voltage was
measured (linear in E: `Truck.voltage_slope`); E at departure (or the plan's end) + u >= target; gi - ge = base load
+ sum(c / eff - d * eff); trucks sharing a charger within one step share its rating; P >= the mean import of every
15-min window, with `fcr_peak_share` of its FCR capacity kept free for the droop's import; during FCR (per step, the
trucks plugged in the whole step on bidirectional chargers): power headroom sum eff * (p + d_max) >= capacity and
sum eff * (c_max - p) >= capacity, the grid limits hold with capacity on top, and the energy at both ends of the
step holds capacity for `fcr_reserve_s` in each direction (less a penalised per-step shortfall, so that a
reservation the trucks cannot hold does not void the plan).

Objective: import cost - export revenue + demand * (P - peak so far) + unserved penalty (`Weights.unserved`)
+ the FCR shortfall penalty + the regulariser (throughput rising over the horizon, the top half of the rates in
each one-step block at a premium, optionally setpoint changes; see `Weights`).
"""

from __future__ import annotations

import bisect
import functools
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import highspy
import numpy as np

from evse_emulator.energy.ems import fallback
from evse_emulator.energy.ems.model import (
    BOUND_WEIGHTS,
    DEMAND_WINDOW_S,
    PLAN_WEIGHTS,
    TARGETS_MET_BOUND_WEIGHTS,
    Plan,
    SitePlan,
    Truck,
    Weights,
    evaluate,
)

TIME_LIMIT_S = 10.0
DETAIL_S = 3600.0  # the plan is step by step for this long, in 15-min blocks after it
# a truck below its V2G floor is held at its floor from the time the relaxed plan reaches it only when that plan
# has it give back from this far above its floor (see `plan`)
SWITCH_ABOVE_FLOOR_WH = 1_000.0
LOSS_PIECES = 4  # the pack's quadratic loss, in the LP: each direction's power in this many pieces (`_flow`)
Flow = list[int]  # one direction's DC power in a block: its pieces' columns (one piece without a loss model)
_FcrTruck = tuple[int, float, Flow, Flow, float, float, bool]  # truck, eff, c, d, c_max, d_max, above its floor


@dataclass
class Lp:
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

    def extend(self, other: Lp, upper: Mapping[int, float] | None = None) -> int:
        """Append `other`'s columns (with no cost: the caller prices them) and rows, with `upper` (its column ->
        bound) in place of its columns' upper bounds. Returns the index of its first column here."""
        base, caps = len(self.cost), upper or {}
        self.cost.extend([0.0] * len(other.cost))
        self.lower.extend(other.lower)
        self.upper.extend(caps.get(n, u) for n, u in enumerate(other.upper))
        self.starts.extend(len(self.index) + s for s in other.starts)
        self.index.extend(base + n for n in other.index)
        self.value.extend(other.value)
        self.row_lower.extend(other.row_lower)
        self.row_upper.extend(other.row_upper)
        return base

    def solve(self, time_limit: float, scale: float, solver: str = "choose") -> tuple[highspy.Highs, bool]:
        """Solve with every cost x `scale` (the energy prices near 1, so that tie-breaks stay above the tolerances),
        by HiGHS's `solver` ("simplex", "ipm"; "choose": HiGHS's pick)."""
        _swallow_highs_banner()
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("time_limit", float(time_limit))
        h.setOptionValue("solver", solver)
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


@functools.cache
def _swallow_highs_banner() -> None:
    """Let HiGHS print its banner once, to /dev/null. highspy (1.16) prints it from C++ to the process's stdout
    (file descriptor 1) on the first instance, before a log option can be set: at the top of the depot's summary
    table, or inside anything a pipeline reads from stdout. Best effort: with no stdout to redirect (closed, or
    none), the banner goes wherever fd 1 goes, and the plan is made all the same."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


@dataclass(frozen=True, slots=True)
class _Block:
    """Consecutive steps planned as one: one power per truck, the series' means (the limits' least) over them."""

    steps: tuple[int, ...]
    start_s: float
    end_s: float
    hours: float
    import_eur_per_kwh: float
    export_eur_per_kwh: float
    base_load_w: float
    import_limit_w: float
    export_limit_w: float
    fcr_w: float


def _blocks(x: SitePlan, detail_s: float | None) -> list[_Block]:
    """The plan's time grid: every step up to `detail_s` from now (None: all of them), then the steps of each
    15-min demand window together (the tariffs and limits change on those boundaries in practice), split where a
    truck comes or goes.

    Within a block every truck is plugged in for the same fraction of each step, so its power is the same in each
    and the block's mean grid power is each step's (but for the base load's changes). A truck that arrived
    mid-block would take the block's energy in fewer steps while another discharged through all of them: the
    LP would net an export against an import that the steps do not net, and the 15-min peak would come out above
    the plan's (by 60 kW on a seeded day).
    """
    groups: list[list[int]] = []
    last_window = None
    changes = _presence_changes(x)
    for k, t in enumerate(x.t_s):
        if detail_s is None or t < x.t_s[0] + detail_s:
            groups.append([k])
            continue
        window = int((t + 1e-9) // DEMAND_WINDOW_S)
        if window == last_window and k not in changes:
            groups[-1].append(k)
        else:
            groups.append([k])
        last_window = window
    out = []
    for ks in groups:
        m = len(ks)
        out.append(
            _Block(
                steps=tuple(ks),
                start_s=x.t_s[ks[0]],
                end_s=x.t_s[ks[-1]] + x.step_s,
                hours=m * x.step_s / 3600,
                import_eur_per_kwh=sum(x.import_eur_per_kwh[k] for k in ks) / m,
                export_eur_per_kwh=sum(x.export_eur_per_kwh[k] for k in ks) / m,
                base_load_w=sum(x.base_load_w[k] for k in ks) / m,
                import_limit_w=min(x.import_limit_w[k] for k in ks),
                export_limit_w=min(x.export_limit_w[k] for k in ks),
                fcr_w=max(x.fcr(k) for k in ks),
            )
        )
    return out


def _presence_changes(x: SitePlan) -> set[int]:
    """The steps at which some truck's plugged-in fraction differs from the step before."""
    changes: set[int] = set()
    for truck in x.trucks:
        changes.update((np.flatnonzero(np.diff(x.presence_row(truck))) + 1).tolist())
    return changes


def plan(
    x: SitePlan,
    *,
    time_limit: float = TIME_LIMIT_S,
    weights: Weights = PLAN_WEIGHTS,
    strict_floor: bool = True,
    detail_s: float | None = DETAIL_S,
) -> Plan:
    """The optimal plan; `fallback.plan` (marked) when HiGHS fails, finds no optimum or hits `time_limit` (s).

    The plan is step by step for `detail_s` (None: to its end) and in 15-min blocks after that: a tenth of the
    LP for a day's plan, and the far future is planned again before it comes (`Plan.detailed_until_s`).
    `strict_floor=False` lets a truck that starts below its floor discharge back to its start (a relaxation,
    for the lower bound). A plan gives such a truck V2G only once it is charged to its floor, which needs a
    switch in time that an LP cannot choose: the relaxed plan is solved first, and where it charges the truck to
    its floor and has it give back after that, the plan is solved again with that time as its `v2g_from_s` (the
    first plan of a seeded day with every truck known: 11,683 EUR with no V2G for such trucks, 11,407 so, 11,406
    relaxed). When that plan cannot be solved, the plan gives such trucks no V2G. A relaxed plan that discharges
    none of them, in a horizon with no FCR, is the plan as it is. The solves share `time_limit` (at least 1 s
    each).
    """
    below = [t for t in x.trucks if t.soc < t.min_soc and t.max_discharge_w > 0 and t.v2g_from_s == math.inf]
    if not strict_floor or not any(x.charger(t.charger).bidirectional for t in below):
        return _solve(x, time_limit, weights, strict_floor, detail_s)
    relaxed = _solve(x, time_limit, weights, False, detail_s)
    if not relaxed.fallback and not any(x.fcr_w) and not _gives_below_floor(relaxed, below):
        return relaxed  # it holds every floor, so it is the plan's optimum too (with FCR, its rows differ)
    spent = relaxed.solve_s
    switched = x if relaxed.fallback else replace(x, trucks=tuple(_v2g_from(x, t, relaxed) for t in x.trucks))
    if switched.trucks != x.trucks:
        final = _solve(switched, max(time_limit - spent, 1.0), weights, True, detail_s)
        spent += final.solve_s
        if not final.fallback:
            return replace(final, solve_s=spent)
    # no switch, or none that the site can hold (the relaxed plan may have used such a truck as storage below its
    # floor, which the switch then has to fill first): the plan with no V2G below the floor
    final = _solve(x, max(time_limit - spent, 1.0), weights, True, detail_s)
    return replace(final, solve_s=spent + final.solve_s)


def _gives_below_floor(relaxed: Plan, below: list[Truck]) -> bool:
    """Whether the relaxed plan discharges any of the trucks that start below their floor."""
    return any(
        any(w < 0.0 for w in planned.power_w) for planned in (relaxed.find(t.id) for t in below) if planned is not None
    )


def _v2g_from(x: SitePlan, truck: Truck, relaxed: Plan) -> Truck:
    """The truck with V2G from the end of the step in which the relaxed plan charges it to its floor, when that
    plan has it give back after that from `SWITCH_ABOVE_FLOOR_WH` or more above its floor (a discharge the floor
    allows some of); as it is otherwise."""
    planned = relaxed.find(truck.id)
    if truck.soc >= truck.min_soc or truck.v2g_from_s < math.inf or planned is None:
        return truck
    k = next((k for k, soc in enumerate(planned.soc) if soc >= truck.min_soc - 1e-9), None)
    if k is None:
        return truck
    above_wh = [(soc - truck.min_soc) * truck.battery_wh for soc in planned.soc]
    if not any(planned.power_w[j] < -1.0 and above_wh[j - 1] >= SWITCH_ABOVE_FLOOR_WH for j in range(k + 1, x.n)):
        return truck
    return replace(truck, v2g_from_s=x.t_s[k] + x.step_s)


@dataclass(frozen=True, slots=True)
class Built:
    """A plan's LP before it is solved, with the columns that a caller combining several of them needs."""

    lp: Lp
    blocks: list[_Block]
    cols: list[dict[int, tuple[Flow, Flow, float]]]  # per truck: block -> (charge, discharge, plugged-in fraction)
    unserved: dict[int, int]  # truck -> its column of energy short of its target (Wh)
    fcr_short: dict[int, int]  # block -> its column of FCR reservation not held (W)


def _solve(x: SitePlan, time_limit: float, weights: Weights, strict_floor: bool, detail_s: float | None) -> Plan:
    """`plan` with every truck's V2G as it says (see there)."""
    built = build(x, weights, strict_floor, detail_s)
    lp, blocks, cols, fcr_short = built.lp, built.blocks, built.cols, built.fcr_short
    try:
        scale = 3.6 / x.step_s * 1e6 / max(0.01, *(abs(p) for p in x.import_eur_per_kwh))
        h, optimal = lp.solve(time_limit, scale)
    except Exception as e:  # any solver failure: the safe plan
        return fallback.plan(x, reason=f"HiGHS failed: {e}")
    if not optimal:
        return fallback.plan(x, reason=f"HiGHS: {h.modelStatusToString(h.getModelStatus())}")
    sol = np.asarray(h.getSolution().col_value)
    power = np.zeros((len(x.trucks), x.n))
    for i, mine in enumerate(cols):
        present = x.presence_row(x.trucks[i])
        for j, (c, d, f) in mine.items():
            first, last = blocks[j].steps[0], blocks[j].steps[-1] + 1
            net = sol[c].sum() - sol[d].sum()
            if last - first == 1:
                power[i, first] = net
            else:  # the block's mean power while plugged in, over its steps
                power[i, first:last] = net / f * present[first:last]
    short = [0.0] * x.n
    for j, col in fcr_short.items():
        for k in blocks[j].steps:
            short[k] = float(sol[col])
    detailed = all(len(b.steps) == 1 for b in blocks)
    coarse_from = next((x.t_s[b.steps[0]] for b in blocks if len(b.steps) > 1), math.inf)
    return evaluate(
        x,
        power.tolist(),
        weights,
        fcr_shortfall_w=short,
        status="optimal",
        solve_s=h.getRunTime(),
        objective_eur=h.getInfo().objective_function_value / scale if detailed else None,
        detailed_until_s=coarse_from,
    )


def build(x: SitePlan, weights: Weights, strict_floor: bool, detail_s: float | None) -> Built:
    """The LP of `plan` (see the module's text), not solved."""
    inf = highspy.kHighsInf
    lp = Lp()
    blocks = _blocks(x, detail_s)
    starts = [b.start_s for b in blocks]
    gi = [lp.col(b.import_eur_per_kwh * b.hours / 1000, 0.0, b.import_limit_w) for b in blocks]
    ge = [lp.col(-b.export_eur_per_kwh * b.hours / 1000, 0.0, b.export_limit_w) for b in blocks]
    grid_rows: list[dict[int, float]] = [{gi[j]: 1.0, ge[j]: -1.0} for j in range(len(blocks))]
    on_charger: dict[tuple[str, int], dict[int, float]] = {}
    sharing: dict[tuple[str, int], int] = {}  # (charger, block) -> the trucks on it
    fcr: list[list[_FcrTruck]] = [[] for _ in blocks]
    energy_at: dict[tuple[int, int], tuple[int | None, float]] = {}  # (truck, boundary j) -> (E col | None, E0)
    cols: list[dict[int, tuple[Flow, Flow, float]]] = []  # per truck: block -> (c, d, presence)
    unserved: dict[int, int] = {}
    for i, truck in enumerate(x.trucks):
        charger = x.charger(truck.charger)
        eff, cap = charger.efficiency, charger.max_power_w
        e0, floor, full = truck.soc * truck.battery_wh, truck.min_soc * truck.battery_wh, truck.battery_wh
        # from when it may discharge, and from when its floor holds (a truck below it: its start until then)
        if e0 >= floor:
            v2g_from = held_from = -math.inf
        elif not strict_floor:  # the relaxation: it may discharge back to its start
            v2g_from, held_from = -math.inf, math.inf
        else:
            v2g_from = held_from = truck.v2g_from_s
        can_discharge = charger.bidirectional and truck.max_discharge_w > 0 and v2g_from < math.inf
        c_max, d_max = min(truck.max_charge_w, cap), min(truck.max_discharge_w, cap) if can_discharge else 0.0
        mine: dict[int, tuple[Flow, Flow, float]] = {}
        prev: tuple[int | None, float] = (None, e0)
        for j in range(max(bisect.bisect_right(starts, truck.arrival_s) - 1, 0), len(blocks)):
            b = blocks[j]
            if b.start_s >= truck.departure_s:
                break
            f = max(0.0, min(b.end_s, truck.departure_s) - max(b.start_s, truck.arrival_s)) / (b.end_s - b.start_s)
            if f <= 0:
                continue
            tie = weights.throughput_eur_per_kwh * b.hours / 1000 * (1 + b.steps[0] / x.n)
            now_w = truck.charge_now_w if j == 0 else None  # the truck's own word for the present step
            gives_w = truck.discharge_now_w if j == 0 else None  # and what it says it gives now
            d_now = d_max if b.start_s >= v2g_from else 0.0
            c_set = c_max if now_w is None else min(now_w, cap)
            d_set = d_now if gives_w is None else min(gives_w, d_now)
            if b.start_s < truck.turn_after_s:  # the real-time layer's dwell: no turn yet (its droop still moves it)
                c_set, d_set = (
                    (c_set, 0.0) if truck.direction > 0 else (0.0, d_set) if truck.direction < 0 else (c_set, d_set)
                )
            pieces = LOSS_PIECES if truck.loss_h > 0 else 1
            c_pieces = _pieces(max(c_max, c_set), truck.min_power_w, pieces if c_set > 0 else 1)
            d_pieces = _pieces(d_max, truck.min_power_w, pieces if d_set > 0 else 1)
            c = _flow(lp, tie, c_set, c_pieces, f)
            d = _flow(lp, tie, d_set, d_pieces, f)
            if tie > 0 and weights.flat_premium > 0 and len(b.steps) == 1:
                # a one-step block (the detailed part; where a truck comes or goes): the top half of its rates at the
                # premium (even powers in a window)
                top = lp.col(tie * weights.flat_premium, 0.0, inf)
                lp.row({top: 1.0} | _each(c, -1.0), -c_max * f / 2, inf)
                if d_now > 0:
                    lp.row({top: 1.0} | _each(d, -1.0), -d_now * f / 2, inf)
            e_low = floor if b.end_s >= held_from else e0
            e = lp.col(0.0, e_low, max(truck.max_soc * full, e0))
            # c <= c_max f (1 - (1 - end) (E / full - knee) / (1 - knee))
            if truck.taper_knee_soc < 1.0 and now_w is None:
                slope = (1 - truck.taper_end) / (1 - truck.taper_knee_soc)
                cap_w = c_max * f * (1 + slope * truck.taper_knee_soc)
                lp.row(_each(c, 1.0) | {e: c_max * f * slope / full}, -inf, cap_w)
            if truck.voltage_v > 0 and charger.max_current_a < math.inf:
                # c + d <= I V(E) f: the charger's current rating at the pack's voltage, linear in its energy
                amps = charger.max_current_a * f * truck.voltage_v
                slope = amps * truck.voltage_slope
                lp.row(_each(c + d, 1.0) | {e: -slope / full}, -inf, amps - slope * truck.soc)
            energy_at.setdefault((i, j), prev)
            energy_at[(i, j + 1)] = (e, 0.0)
            # the pack's energy moves by the power less the loss: each piece at its chord's marginal loss
            k = truck.loss_h / full
            terms = {e: 1.0}
            for flow, spans, sign in ((c, c_pieces, -1.0), (d, d_pieces, 1.0)):
                for col, (low, high) in zip(flow, spans, strict=True):
                    terms[col] = sign * b.hours * (1 + sign * k * (low + high))
            if prev[0] is not None:
                terms[prev[0]] = -1.0
            lp.row(terms, prev[1], prev[1])
            prev = (e, 0.0)
            grid_rows[j].update(_each(c, -1 / eff) | _each(d, eff))
            on_charger.setdefault((charger.id, j), {}).update(_each(c + d, 1.0))
            sharing[(charger.id, j)] = sharing.get((charger.id, j), 0) + 1
            if charger.bidirectional and f >= 1.0 and not truck.expected:
                fcr[j].append((i, eff, c, d, c_max, d_now, can_discharge and b.start_s >= held_from))
            if weights.variation_eur_per_kw > 0 and j - 1 in mine:
                v = lp.col(weights.variation_eur_per_kw / 1000, 0.0, inf)
                pc, pd, _ = mine[j - 1]
                change = _each(c, 1.0) | _each(d, -1.0) | _each(pc, -1.0) | _each(pd, 1.0)
                lp.row({v: 1.0} | {col: -w for col, w in change.items()}, 0.0, inf)
                lp.row({v: 1.0} | change, 0.0, inf)
            mine[j] = (c, d, f)
        cols.append(mine)
        if mine and truck.target_soc * full > 0:
            u = unserved[i] = lp.col(weights.unserved(x.unserved_eur_per_kwh, truck) / 1000, 0.0, inf)
            soft = lp.col(x.unserved_eur_per_kwh / 1000, 0.0, truck.soft_soc * full)  # the margin's shortfall
            e_end, _ = energy_at[(i, max(mine) + 1)]
            assert e_end is not None
            lp.row({e_end: 1.0, u: 1.0, soft: 1.0}, truck.target_soc * full, inf)
        elif truck.departure_s > x.t_s[0]:  # plugged in only after the plan: its shortfall is a constant
            short_kwh = max(0.0, truck.target_soc * full - e0) / 1000
            lp.offset += short_kwh * weights.unserved(x.unserved_eur_per_kwh, truck)
    for j, b in enumerate(blocks):
        lp.row(grid_rows[j], b.base_load_w, b.base_load_w)
    for (cid, j), terms in on_charger.items():
        if sharing[(cid, j)] > 1:  # one truck alone is within the rating already
            lp.row(terms, 0.0, x.charger(cid).max_power_w)
    fcr_short = _fcr_rows(lp, x, blocks, fcr, energy_at, gi, ge, weights.fcr_shortfall_eur_per_kwh / 1000)
    if x.demand_eur_per_kw > 0:
        peak = lp.col(x.demand_eur_per_kw / 1000, x.peak_15min_w, inf)
        lp.offset -= x.demand_eur_per_kw / 1000 * x.peak_15min_w
        block_of = {k: j for j, b in enumerate(blocks) for k in b.steps}
        for steps, wh, length in x.demand_windows():
            terms = {peak: 1.0}
            for k in steps:
                terms[gi[block_of[k]]] = terms.get(gi[block_of[k]], 0.0) - x.step_s / length
            droop_w = x.fcr_peak_share * sum(x.fcr(k) for k in steps) * x.step_s / length
            lp.row(terms, wh * 3600 / length + droop_w, inf)
    return Built(lp, blocks, cols, unserved, fcr_short)


def _pieces(top_w: float, min_w: float, pieces: int) -> list[tuple[float, float]]:
    """The power spans (W) of one direction's pieces: [0, `min_w`] and `pieces` - 1 even spans up to `top_w` (`pieces`
    even spans without a minimum power, one when the minimum is the top or above). The first span's chord is the
    loss of a truck run below its minimum: the real-time layer pauses it there, so what it gets comes at the
    minimum power for part of the time, and spreading its power thinner saves no loss."""
    if min_w >= top_w or pieces == 1:
        return [(0.0, top_w)]
    if min_w <= 0:
        width = top_w / pieces
        return [(n * width, (n + 1) * width) for n in range(pieces)]
    width = (top_w - min_w) / (pieces - 1)
    return [(0.0, min_w)] + [(min_w + n * width, min_w + (n + 1) * width) for n in range(pieces - 1)]


def _flow(lp: Lp, cost: float, limit_w: float, spans: list[tuple[float, float]], f: float) -> Flow:
    """One direction's DC power in a block (plugged-in fraction `f`), up to `limit_w`: one column per span of
    `_pieces`. With the pack's loss each piece loses at its chord's rate of the convex curve, so the LP fills
    them in order wherever the pack's energy is worth something (it would fill a dearer piece first only to shed
    energy, and count a loss the pack does not have) and its loss lies on the chords: above the curve by at most
    a quarter of the widest span squared x the loss's coefficient (a 64th of the top's loss in four even spans),
    the plan expecting a little less in the pack than it gets, never more."""
    bounds = [min(max(limit_w - low, 0.0), high - low) for low, high in spans[:-1]]
    bounds.append(max(limit_w - spans[-1][0], 0.0))  # the last piece: what the limit leaves
    return [lp.col(cost, 0.0, w * f) for w in bounds]


def _each(flow: Flow, coefficient: float) -> dict[int, float]:
    """A row's terms: every piece of `flow` with `coefficient`."""
    return dict.fromkeys(flow, coefficient)


def _fcr_rows(
    lp: Lp,
    x: SitePlan,
    blocks: list[_Block],
    fcr: list[list[_FcrTruck]],
    energy_at: dict[tuple[int, int], tuple[int | None, float]],
    gi: list[int],
    ge: list[int],
    penalty: float,
) -> dict[int, int]:
    """The FCR reservation of every block in a window: power, grid and energy headroom in both directions.

    Each block's reservation may fall short by a penalised slack (its column, per block, is returned; `penalty`
    per W and hour): a reservation that the plugged-in trucks cannot hold costs its penalty instead of making the
    whole plan infeasible.
    """
    inf = highspy.kHighsInf
    shortfall: dict[int, int] = {}
    for j, b in enumerate(blocks):
        capacity = b.fcr_w
        if capacity <= 0:
            continue
        down: dict[int, float] = {}  # sum eff * (c - d + d_max) >= capacity: the depot can lower its import
        up: dict[int, float] = {}  # sum eff * (c_max - c + d) >= capacity: the depot can raise its import
        spare_down = spare_up = 0.0
        for _, eff, c, d, c_max, d_max, _ in fcr[j]:
            down |= _each(c, eff) | _each(d, -eff)
            up |= _each(c, -eff) | _each(d, eff)
            spare_down += eff * d_max
            spare_up += eff * c_max
        short = lp.col(penalty * b.hours, 0.0, capacity)
        shortfall[j] = short
        lp.row(down | {short: 1.0}, capacity - spare_down, inf)
        lp.row(up | {short: 1.0}, capacity - spare_up, inf)
        lp.row({gi[j]: 1.0, ge[j]: -1.0, short: 1.0}, capacity - b.export_limit_w, inf)
        lp.row({gi[j]: 1.0, ge[j]: -1.0, short: -1.0}, -inf, b.import_limit_w - capacity)
        reserve_wh = capacity * x.fcr_reserve_s / 3600
        if reserve_wh <= 0:
            continue
        for boundary in (j, j + 1):  # the energy at the block's start and end
            give: dict[
                int, float
            ] = {}  # sum eff * (E - floor) >= reserve, over the trucks that may discharge from above the floor
            take: dict[int, float] = {}  # sum (battery - E) >= reserve, i.e. sum E <= sum battery - reserve
            give_rhs, take_rhs = reserve_wh, -reserve_wh
            for i, eff, _, _, _, _, discharges in fcr[j]:
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


def lower_bound(x: SitePlan, *, targets_met: bool = False, time_limit: float = 600.0) -> float:
    """The perfect-foresight bound (EUR): the same LP called with every truck known from t = 0, lossless battery.

    Pass a `SitePlan` from t = 0 to the end holding every truck of the scenario. The bound uses no priority
    premium, no regulariser and the relaxed floor, so its optimum is a true lower bound of the cost any
    dispatch that keeps the limits, floors and FCR reservation can reach. `targets_met`: of the dispatches that
    also meet every target marked firm (`Truck.firm_target`), as the operator's rule asks; a firm kWh short
    costs the LP `TARGETS_MET_BOUND_WEIGHTS.target_eur_per_kwh`, and an optimum that still leaves one short
    means that no dispatch meets them all (raised, as is HiGHS finding no optimum).
    """
    weights = TARGETS_MET_BOUND_WEIGHTS if targets_met else BOUND_WEIGHTS
    result = plan(x, time_limit=time_limit, weights=weights, strict_floor=False, detail_s=None)
    if result.fallback:
        raise RuntimeError(f"no lower bound: {result.status}")
    if result.costs.priority_eur > 1e-6:
        short = [t.id for t, p in zip(x.trucks, result.trucks, strict=True) if t.firm_target and p.unserved_wh > 1.0]
        raise RuntimeError(f"no lower bound: the targets of {', '.join(short)} cannot all be met together")
    return result.objective_eur - result.costs.fcr_shortfall_eur
