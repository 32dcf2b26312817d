"""The planners a depot's EMS can run, by the names the commands take: the LP, or one of the field's heuristics."""

from __future__ import annotations

from evse_emulator.energy.ems.heuristics import HEURISTICS
from evse_emulator.energy.ems.lp import plan
from evse_emulator.energy.ems.site import Planner

PLANNERS = ("lp", *HEURISTICS)


def planner(name: str) -> Planner:
    """The planner called `name`; a LookupError naming the choices for any other."""
    if name == "lp":
        return plan
    if name not in HEURISTICS:
        raise LookupError(f"unknown planner {name!r} (one of {', '.join(PLANNERS)})")
    return HEURISTICS[name]
