"""The chatter reproducer of issue 12: a plan that asks for V2G while the departure target is at risk must not
swing the charger between charging and discharging at the truck's V2G reserve."""

from __future__ import annotations

from dataclasses import replace

from mcs_v2g.sim.run import simulate
from mcs_v2g.sim.scenario import Scenario


def direction_changes(currents: list[float], idle_a: float = 1.0) -> int:
    changes, previous = 0, 0
    for current in currents:
        sign = (current > idle_a) - (current < -idle_a)
        if sign and previous and sign != previous:
            changes += 1
        previous = sign or previous
    return changes


def test_a_discharge_plan_does_not_dither_at_the_reserve_when_the_target_is_at_risk() -> None:
    scenario = replace(
        Scenario(),
        steps=((0.0, 750_000.0), (600.0, -750_000.0)),
        departure_s=3600.0,
        initial_soc=0.3,
        max_power=100_000.0,
    )
    result = simulate(scenario, tls=False)
    summary = result.summary()
    assert direction_changes([s.current for s in result.samples]) == 0  # it was 62 before
    # the 90 % target is out of reach in an hour at 100 kW: said so, and the best reachable is met
    assert summary["result"] == "infeasible"
    assert summary["goals"]["departure_soc"]["required_met"]
