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
instead of holding it), and the denominators are the bench's bounds, which hold it. So r is a lower bound: any EMS
that knows only what it is told, on the scenario and its twins, has a ratio at least r on one of them (its FCR
penalty, its pack losses and its chargers' ramps only add to it). Not in it: the frequency, which no plan knows
either (the bound omits the droop's energy).

Why a real run is a point of this programme: take its charging as the power into the pack (less the pack's and
cable's losses) and its discharging as the power at the charger. That image keeps every limit the run kept, imports
no more (so costs no more while import prices are >= 0, which is checked) and exports as much, and its pack holds at
least the real pack's energy at all times (floors and targets hold). It may hold more than a full pack, by the
losses of earlier discharging, so the packs here have no top. The steps' mean powers keep the 15-min peaks, the
grid limits and the ratings.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

import highspy
import numpy as np

from evse_emulator.energy.ems.lp import Lp, build
from evse_emulator.energy.ems.model import BOUND_WEIGHTS

from .bound import foresight_plan, lower_bound_eur
from .scenario import DepotScenario


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
    ratio: float  # no EMS that learns of trucks as announced is below it on all of `twins`
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
    (see the module's text). Raises RuntimeError when HiGHS finds no optimum in `time_limit` (s)."""
    cases = twins(scenario)
    days = [replace(scenario, trucks=tuple(t for t in scenario.trucks if t.id not in missing)) for missing, _ in cases]
    bounds = [lower_bound_eur(day) for day in days]
    lp = Lp()
    ratio = lp.col(1.0, 0.0, highspy.kHighsInf)
    scale = 1e3 / bounds[0]  # each day's cost row in thousandths of the scenario's bound
    ratio_rows: list[int] = []
    spent: list[tuple[dict[int, float], float]] = []  # per day: its cost's terms (EUR per unit) and constant
    flows: list[dict[int, dict[str, tuple[list[int], list[int]]]]] = []  # per day: step -> truck -> (c, d)
    for day, bound in zip(days, bounds, strict=True):
        x = foresight_plan(day)
        if min(x.import_eur_per_kwh) < 0:
            raise ValueError("the online bound needs import prices >= 0 (less import must not cost more)")
        # no FCR reservation; no top to a pack, which the image of a real dispatch may pass (see the module's text)
        x = replace(x, fcr_w=(), trucks=tuple(replace(t, max_soc=math.inf) for t in x.trucks))
        built = build(x, BOUND_WEIGHTS, strict_floor=False, detail_s=None)
        firm = {col for i, col in built.unserved.items() if x.trucks[i].firm_target}
        base = lp.extend(built.lp, fixed_to_zero=firm)
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
    h, optimal = lp.solve(time_limit, 1.0)
    if not optimal:
        raise RuntimeError(f"no online bound: HiGHS {h.modelStatusToString(h.getModelStatus())}")
    solution = h.getSolution()
    sol, dual = np.asarray(solution.col_value), np.asarray(solution.row_dual)
    weights = np.abs(dual[ratio_rows]) * np.asarray(bounds)
    weights /= max(weights.sum(), 1e-12)
    return OnlineBound(
        ratio=float(sol[ratio]),
        twins=tuple(
            Twin(missing, when, bound, math.fsum(sol[col] * c for col, c in terms.items()) + offset, float(w))
            for (missing, when), bound, (terms, offset), w in zip(cases, bounds, spent, weights, strict=True)
        ),
        solve_s=h.getRunTime(),
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
                    if d_a or d_b:
                        lp.row(dict.fromkeys(d_a, 1.0) | dict.fromkeys(d_b, -1.0), 0.0, 0.0)
