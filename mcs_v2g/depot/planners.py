"""The planners a depot's EMS can run, by the names the commands take: the LP (with the walk-in forecast, or over
the known trucks only), or one of the field's heuristics."""

from __future__ import annotations

from functools import partial

from evse_emulator.energy.ems.forecast import plan_with_forecast
from evse_emulator.energy.ems.heuristics import HEURISTICS, price_threshold_v2g, price_thresholds
from evse_emulator.energy.ems.lp import plan
from evse_emulator.energy.ems.site import Planner

from .scenario import DepotScenario, series_at

PLANNERS = ("lp", "lp-known", *HEURISTICS)
LAXITY_RESERVE_S = 900.0  # the price-threshold rule keeps a target reachable without a stay's last 15 min


def planner(name: str, scenario: DepotScenario) -> Planner:
    """The planner called `name` for `scenario`; a LookupError naming the choices for any other."""
    if name == "lp":  # the EMS: room for the trucks it does not know yet
        return plan_with_forecast
    if name == "lp-known":  # the LP over the trucks known now only
        return plan
    if name not in HEURISTICS:
        raise LookupError(f"unknown planner {name!r} (one of {', '.join(PLANNERS)})")
    if name == "price-threshold-v2g":  # the operator's thresholds, from the scenario's whole tariff
        steps = scenario.step_starts()
        tariff = scenario.tariff
        prices = [series_at(tariff.import_eur_per_kwh, t) for t in steps]
        thresholds = price_thresholds(prices, [series_at(tariff.export_eur_per_kwh, t) for t in steps])
        return partial(price_threshold_v2g, thresholds=thresholds, reserve_s=LAXITY_RESERVE_S)
    return HEURISTICS[name]
