"""The least worst ratio to the perfect-foresight bound that any EMS can reach when it learns of trucks as announced.

The bound (`mcs_v2g.depot.bound`) knows every truck from t = 0. A backend learns of a walk-in at its arrival and of a
booking when it is made, so on a day it must act the same way as on a *twin* of that day that differs only in what it
has not been told yet. The twins here are the scenario without one truck announced after t = 0, and the scenario
without every truck announced at or after a given time (the day ending as known then).

`online_bound` solves one linear programme over the scenario and its twins: one dispatch per twin (the bound's model:
lossless, untapered, the grid limits, the ratings, the floors, every feasible target met), the dispatches of twins
that the EMS cannot yet tell apart held equal in every step that ends before the first announcement that tells them
apart (non-anticipativity), and the least r such that every twin's import - export revenue + demand + unserved is at
most r x its own bound. The FCR reservation is left out of the dispatches (a relaxation: an EMS may pay the penalty
instead of holding it), and the denominators are the bench's bounds, which hold it. So r is a lower bound in this
sense: any EMS that knows only what it is told, keeps the grid limits and meets every feasible target (what a run
that counts must do) is above r x the bound on the scenario or on one of its twins (its FCR penalty, its pack
losses and its chargers' ramps only add to it). It does not say that an EMS cannot be within r on the scenario
alone, at the price of a twin. Not in it: the frequency, which no plan knows either (the bound omits the droop's
energy). Twins whose bound is not above 0 are left out (a ratio to them means nothing; fewer twins give a lower r).
The programme is solved twice: the min-max, whose duals give a worst mix of the days (weights summing to 1), then
the least mean ratio of that mix over the same dispatches. By weak duality the second is below the min-max's
optimum whatever the accuracy of the first solve, and it is a plain LP priced like the bound's: it is `ratio`.

Why a real run is a point of this programme: take each step's mean charging and discharging power at the charger
(the judge's grid power is that over the efficiency, or times it). That image imports, exports and peaks exactly as
the run did, within its ratings and the grid limits (to the judge's `LIMIT_MARGIN_W`), and its lossless pack holds
at least the real pack's energy at every step's end, so its floors and targets hold (to the judge's
`TARGET_SOC_TOLERANCE`). It may hold more than a full pack, by the real pack's losses, so the packs here have no
top.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, replace

import highspy
import numpy as np

from evse_emulator.energy.ems.lp import Lp, build
from evse_emulator.energy.ems.model import BOUND_WEIGHTS, SitePlan

from .bound import foresight_plan, lower_bound_eur
from .judge import LIMIT_MARGIN_W, TARGET_SOC_TOLERANCE
from .scenario import DepotScenario

# The LPs' objectives (a ratio near 1) x this: the dispatch's powers are in W (up to 10^6), and HiGHS's optimality
# tolerance is absolute, so an objective of order 1 left the min-max's optimum 0.5 % off (the built-in day: 1.062 to
# 1.072 for changes that move it by 10^-5)
OBJECTIVE_SCALE = 1e6


@dataclass(frozen=True, slots=True)
class Twin:
    """The scenario without `missing` (truck ids): the EMS cannot tell it from the scenario before `told_s`."""

    missing: frozenset[str]
    told_s: float
    bound_eur: float
    cost_eur: float  # its dispatch's cost in the min-max optimum (at most ratio x bound)
    weight: float  # its probability in the worst mixture of the days (its ratio row's dual x bound): > 0 where it binds

    @property
    def ratio(self) -> float:
        return self.cost_eur / self.bound_eur


@dataclass(frozen=True, slots=True)
class OnlineBound:
    ratio: float  # no EMS that learns of trucks as announced is below it on all of `twins` (the mix's optimum)
    minmax: float  # the min-max LP's own optimum (within the solver's tolerances; at least `ratio`)
    twins: tuple[Twin, ...]  # the first: the scenario itself
    solve_s: float


def twins(scenario: DepotScenario) -> list[tuple[frozenset[str], float]]:
    """The scenario (nothing missing) and its twins: without each truck announced after t = 0, and without all of
    those announced from each such time on; each with the time the EMS learns it is not the scenario."""
    late = [t for t in scenario.trucks if t.announced_s > 0]
    out: dict[frozenset[str], float] = {frozenset(): math.inf}
    for truck in late:
        out.setdefault(frozenset({truck.id}), truck.announced_s)
    for told in sorted({t.announced_s for t in late}):
        out.setdefault(frozenset(t.id for t in late if t.announced_s >= told), told)
    return list(out.items())


def online_bound(scenario: DepotScenario, *, time_limit: float = 1800.0) -> OnlineBound:
    """The least r for which some non-anticipative dispatch is within r x the bound on the scenario and every twin
    (see the module's text). Raises ValueError when the scenario's own bound is not above 0, RuntimeError when HiGHS
    finds no optimum in `time_limit` (s)."""
    cases, days, bounds = _days(scenario)
    lp = Lp()
    ratio = lp.col(1.0, 0.0, highspy.kHighsInf)
    scale = 1e3 / bounds[0]  # each day's cost row in thousandths of the scenario's bound
    ratio_rows: list[int] = []
    spent: list[tuple[dict[int, float], float]] = []  # per day: its cost's terms (EUR per unit) and constant
    flows: list[dict[int, dict[str, tuple[list[int], list[int]]]]] = []  # per day: step -> truck -> (c, d)
    for day, bound in zip(days, bounds, strict=True):
        x = _as_judged(foresight_plan(day))
        built = build(x, BOUND_WEIGHTS, strict_floor=False, detail_s=None)
        # every feasible target met, to the judge's tolerance
        firm = {
            col: TARGET_SOC_TOLERANCE * x.trucks[i].battery_wh
            for i, col in built.unserved.items()
            if x.trucks[i].firm_target
        }
        base = lp.extend(built.lp, upper=firm)
        terms = {base + j: c for j, c in enumerate(built.lp.cost) if c}
        spent.append((terms, built.lp.offset))
        row = {col: c * scale for col, c in terms.items()} | {ratio: -bound * scale}  # cost - r x bound <= 0
        lp.row(row, -highspy.kHighsInf, -built.lp.offset * scale)
        ratio_rows.append(len(lp.row_lower) - 1)
        mine: dict[int, dict[str, tuple[list[int], list[int]]]] = {}
        for i, blocks in enumerate(built.cols):
            for j, (c, d, _) in blocks.items():
                mine.setdefault(built.blocks[j].steps[0], {})[x.trucks[i].id] = (
                    [base + n for n in c],
                    [base + n for n in d],
                )
        flows.append(mine)
    told = [{t.id: t.announced_s for t in day.trucks} for day in days]
    _hold_equal(lp, flows, told, float(scenario.step_s))
    # 1. the min-max: its duals give a worst mix of the days
    wall = time.perf_counter()
    h, optimal = lp.solve(time_limit, OBJECTIVE_SCALE, solver="ipm")  # with crossover: 7-11x faster than simplex
    _check(h, optimal)
    solution = h.getSolution()
    sol, dual = np.asarray(solution.col_value), np.asarray(solution.row_dual)
    weights = np.abs(dual[ratio_rows]) * np.asarray(bounds)
    weights /= max(weights.sum(), 1e-12)
    # 2. the least mean ratio of that mix, over the same dispatches: below the min-max by weak duality, whatever
    # the first solve's accuracy (a plain LP priced like the bound's, from the min-max's basis)
    cost = np.zeros(len(lp.cost))
    for (terms, _), bound, w in zip(spent, bounds, weights, strict=True):
        for col, coefficient in terms.items():
            cost[col] += w * coefficient / bound * OBJECTIVE_SCALE
    h.changeColsCost(len(cost), np.arange(len(cost), dtype=np.int32), cost)
    h.setOptionValue("solver", "simplex")  # from the crossover's basis
    h.run()
    _check(h, h.getModelStatus() == highspy.HighsModelStatus.kOptimal)
    mixed = h.getInfo().objective_function_value / OBJECTIVE_SCALE + math.fsum(
        w * offset / bound for (_, offset), bound, w in zip(spent, bounds, weights, strict=True)
    )
    return OnlineBound(
        ratio=min(mixed, float(sol[ratio])),
        minmax=float(sol[ratio]),
        twins=tuple(
            Twin(missing, when, bound, math.fsum(sol[col] * c for col, c in terms.items()) + offset, float(w))
            for (missing, when), bound, (terms, offset), w in zip(cases, bounds, spent, weights, strict=True)
        ),
        solve_s=time.perf_counter() - wall,
    )


def _check(h: highspy.Highs, optimal: bool) -> None:
    if not optimal:  # infeasible would mean that no online dispatch meets every feasible target on all the days
        raise RuntimeError(f"no online bound: HiGHS says {h.modelStatusToString(h.getModelStatus())}")


def _days(scenario: DepotScenario) -> tuple[list[tuple[frozenset[str], float]], list[DepotScenario], list[float]]:
    """The twins (see `twins`) whose bound is above 0, each as a scenario, and their bounds; ValueError when the
    scenario's own bound is not above 0."""
    cases: list[tuple[frozenset[str], float]] = []
    days: list[DepotScenario] = []
    bounds: list[float] = []
    for missing, when in twins(scenario):
        day = replace(scenario, trucks=tuple(t for t in scenario.trucks if t.id not in missing))
        bound = lower_bound_eur(day)
        if not missing and bound <= 0:
            raise ValueError(f"no online bound: the scenario's bound is {bound:.2f} EUR, a ratio to it means nothing")
        if bound > 0:
            cases.append((missing, when))
            days.append(day)
            bounds.append(bound)
    return cases, days, bounds


def _as_judged(x: SitePlan) -> SitePlan:
    """The bound's plan of a day as the judge counts a run that keeps its limits: the grid limits to its margin, no
    FCR reservation, no top to a pack (see the module's text)."""
    return replace(
        x,
        import_limit_w=tuple(w + LIMIT_MARGIN_W for w in x.import_limit_w),
        export_limit_w=tuple(w + LIMIT_MARGIN_W for w in x.export_limit_w),
        fcr_w=(),
        trucks=tuple(replace(t, max_soc=math.inf) for t in x.trucks),
    )


def _hold_equal(
    lp: Lp,
    flows: list[dict[int, dict[str, tuple[list[int], list[int]]]]],
    told: list[dict[str, float]],
    step_s: float,
) -> None:
    """Each truck's charge and discharge equal, step by step, across the days that the EMS cannot tell apart yet:
    those with the same trucks announced before the step's end (a truck announced within the step may already
    change it). A truck plugged in during the step was announced by then, so such days hold the same trucks."""
    for k in sorted({k for mine in flows for k in mine}):
        end = (k + 1) * step_s
        alike: dict[frozenset[str], list[int]] = {}
        for day, announced in enumerate(told):
            alike.setdefault(frozenset(t for t, when in announced.items() if when < end), []).append(day)
        for days in alike.values():
            for a, b in itertools.pairwise(days):
                for truck, (c_a, d_a) in flows[a].get(k, {}).items():
                    c_b, d_b = flows[b][k][truck]
                    lp.row(dict.fromkeys(c_a, 1.0) | dict.fromkeys(c_b, -1.0), 0.0, 0.0)
                    lp.row(dict.fromkeys(d_a, 1.0) | dict.fromkeys(d_b, -1.0), 0.0, 0.0)
