"""The EMS's real-time layer: droop, load balancing, the grid guard, no trickle, no chatter (hand-checked)."""

from __future__ import annotations

import math

import pytest

from evse_emulator.energy.realtime import Outlet, RealTimeLayer, droop_w, grid_w

LIMITS = {"base_load_w": 0.0, "import_limit_w": 10e6, "export_limit_w": 10e6}


def outlet(name: str, plan_w: float, **kw: object) -> Outlet:
    settings: dict = {"max_charge_w": 750_000.0, "max_discharge_w": 750_000.0} | kw
    return Outlet(name, plan_w, **settings)


def told(layer: RealTimeLayer, outlets: list[Outlet], now: float = 0.0, **limits: float) -> dict[str, float]:
    return {k: v.power_w for k, v in layer.dispatch(now, outlets, **(LIMITS | limits)).items()}


def test_droop_is_zero_in_the_deadband_linear_then_full() -> None:
    assert droop_w(50.005, 400_000, 0.01) == 0.0
    assert droop_w(49.80, 400_000, 0.01) == -400_000  # under-frequency: give back
    assert droop_w(50.105, 400_000, 0.01) == pytest.approx(400_000 * 0.095 / 0.19)
    assert droop_w(50.5, 400_000, 0.01) == 400_000


def test_the_fcr_response_is_shared_over_the_chargers_that_hold_it() -> None:
    layer = RealTimeLayer(deadband_w=0)
    power = told(
        layer, [outlet("a", 100_000, fcr=True), outlet("b", 100_000, fcr=True), outlet("c", 100_000)], fcr_w=-300_000
    )
    assert power == {"a": -50_000, "b": -50_000, "c": 100_000}


def test_what_a_truck_does_not_take_goes_to_the_others_booked_first() -> None:
    layer = RealTimeLayer(deadband_w=0)
    outlets = [
        outlet("tapering", 400_000, taking_w=250_000),
        outlet("walk_in", 300_000, max_charge_w=400_000),
        outlet("booked", 300_000, max_charge_w=350_000, booked=True),
    ]
    power = told(layer, outlets)
    assert power == {"tapering": 250_000, "booked": 350_000, "walk_in": 400_000}


def test_the_grid_guard_cuts_unbooked_charging_first_to_the_limit() -> None:
    layer = RealTimeLayer(deadband_w=0)
    outlets = [outlet("walk_in", 600_000, efficiency=0.96), outlet("booked", 600_000, booked=True, efficiency=0.96)]
    power = told(layer, outlets, base_load_w=300_000, import_limit_w=1_200_000)
    grid = 300_000 + sum(grid_w(o, power[o.id]) for o in outlets)
    assert grid == pytest.approx(1_200_000)
    assert power["booked"] == 600_000 and power["walk_in"] < 600_000


def test_the_grid_guard_holds_the_export_limit_too() -> None:
    layer = RealTimeLayer(deadband_w=0)
    outlets = [outlet("a", -700_000), outlet("b", -700_000)]
    power = told(layer, outlets, base_load_w=100_000, export_limit_w=1_000_000)
    assert 100_000 + sum(power.values()) == pytest.approx(-1_000_000)


def test_the_grid_guard_counts_a_discharge_only_as_far_as_it_is_measured() -> None:
    """A discharge told -400 kW that gives -100 kW now ramps up within the step: against the 600 kW import limit
    the guard counts the -100 kW, so the charging truck gets 600 - 100 (base load) + 100 = 600 kW (counting all of
    the -400 kW, 800 kW); one not in the charge loop yet counts nothing. Against the export limit all of it counts."""
    layer = RealTimeLayer(deadband_w=0)
    ramping = [outlet("giving", -400_000, measured_w=-100_000), outlet("taking", 800_000)]
    power = told(layer, ramping, base_load_w=100_000, import_limit_w=600_000)
    assert power == {"giving": -400_000, "taking": pytest.approx(600_000)}
    silent = [outlet("giving", -400_000, measured_w=-100_000, running=False), outlet("taking", 800_000)]
    assert told(RealTimeLayer(deadband_w=0), silent, base_load_w=100_000, import_limit_w=600_000)["taking"] == (
        pytest.approx(500_000)
    )
    exporting = [outlet("giving", -400_000, measured_w=-100_000), outlet("taking", 100_000, measured_w=100_000)]
    power = told(RealTimeLayer(deadband_w=0), exporting, export_limit_w=250_000)
    assert power == {"giving": pytest.approx(-350_000), "taking": 100_000}


def test_below_the_minimum_power_a_session_pauses_while_it_can_resume() -> None:
    layer = RealTimeLayer(deadband_w=0)
    result = layer.dispatch(0.0, [outlet("a", 20_000, min_power_w=30_000, cycles_left=2)], **LIMITS)
    assert result["a"].power_w == 0.0 and result["a"].paused
    held = RealTimeLayer(deadband_w=0).dispatch(0.0, [outlet("a", 20_000, min_power_w=30_000, cycles_left=0)], **LIMITS)
    assert held["a"].power_w == 30_000 and not held["a"].paused and "no contactor cycle" in held["a"].why[-1]


def test_small_changes_keep_the_setpoint_and_the_direction_turns_only_after_the_dwell() -> None:
    """The issue's chatter: a plan that flips between +100 kW and -100 kW at every loop never turns the
    direction before the dwell is over (it idles instead), and turns once after it."""
    layer = RealTimeLayer(deadband_w=10_000, min_dwell_s=300)
    assert told(layer, [outlet("a", 100_000)], now=0)["a"] == 100_000
    assert told(layer, [outlet("a", 105_000)], now=5)["a"] == 100_000  # within the deadband
    for t in range(10, 300, 5):  # the plan flips every loop
        wanted = -100_000 if t % 10 else 100_000
        assert told(layer, [outlet("a", wanted)], now=t)["a"] in (100_000, 0.0)
    assert told(layer, [outlet("a", -100_000)], now=300)["a"] == -100_000  # the dwell is over: it turns
    assert layer.direction_changes["a"] == 1


def test_the_direction_and_when_it_may_turn_are_told_to_the_plan() -> None:
    layer = RealTimeLayer(deadband_w=0, min_dwell_s=300)
    assert layer.direction("a") == (0, -math.inf)
    told(layer, [outlet("a", -100_000)], now=60)
    assert layer.direction("a") == (-1, 360)
    told(layer, [outlet("a", 0.0)], now=120)  # idle: the direction and its dwell stay
    assert layer.direction("a") == (-1, 360)


def test_the_demand_guard_cuts_unbooked_charging_first_down_to_the_minimum_power() -> None:
    layer = RealTimeLayer(deadband_w=0)
    outlets = [
        outlet("walk_in", 600_000, min_power_w=50_000, efficiency=0.96),
        outlet("booked", 600_000, min_power_w=50_000, booked=True, efficiency=0.96),
    ]
    power = told(layer, outlets, base_load_w=200_000, demand_limit_w=1_000_000)
    assert 200_000 + sum(grid_w(o, power[o.id]) for o in outlets) == pytest.approx(1_000_000)
    assert power["booked"] == 600_000 and 50_000 < power["walk_in"] < 600_000
    deep = told(RealTimeLayer(deadband_w=0), outlets, base_load_w=200_000, demand_limit_w=300_000)
    assert deep == pytest.approx({"walk_in": 50_000, "booked": 50_000})  # held at the minimum, not paused


def test_the_demand_guard_spares_a_truck_planned_short_and_gives_way_to_the_grid_guard() -> None:
    layer = RealTimeLayer(deadband_w=0)
    outlets = [outlet("short", 600_000, firm=True), outlet("other", 600_000)]
    power = told(layer, outlets, demand_limit_w=900_000)
    assert power == pytest.approx({"short": 600_000, "other": 300_000})
    tighter = told(RealTimeLayer(deadband_w=0), outlets, import_limit_w=800_000, demand_limit_w=1e6)
    assert sum(tighter.values()) == pytest.approx(800_000)


def test_what_the_cuts_leave_above_the_peak_is_given_back_by_idle_v2g_trucks_that_may() -> None:
    layer = RealTimeLayer(deadband_w=0)
    told(layer, [outlet(name, -50_000) for name in ("idle", "may_not", "fcr")], now=-600)  # they ran discharging
    outlets = [
        outlet("charging", 50_000, min_power_w=50_000),  # at its minimum: nothing to cut
        outlet("idle", 0.0, may_give_w=300_000, min_power_w=20_000),
        outlet("may_not", 0.0),  # may_give_w 0: not asked
        outlet("fcr", 0.0, may_give_w=300_000, fcr=True),  # its FCR headroom stays
    ]
    power = told(layer, outlets, base_load_w=200_000, demand_limit_w=150_000)
    assert power == pytest.approx({"charging": 50_000, "idle": -100_000, "may_not": 0.0, "fcr": 0.0})
    assert told(layer, outlets, now=60, base_load_w=200_000, demand_limit_w=200_000)["idle"] == pytest.approx(-50_000)


def test_a_truck_gives_back_for_the_peak_only_after_a_discharge_and_by_at_least_its_minimum() -> None:
    layer = RealTimeLayer(deadband_w=0)
    told(layer, [outlet("a", 100_000), outlet("b", -100_000)], now=0)  # a ran charging last, b discharging
    idle = outlet("a", 0.0, may_give_w=300_000)
    assert told(layer, [idle], now=60, base_load_w=200_000, demand_limit_w=100_000)["a"] == 0.0
    assert told(RealTimeLayer(deadband_w=0), [idle], base_load_w=200_000, demand_limit_w=100_000)["a"] == 0.0  # none
    small = outlet("b", 0.0, may_give_w=300_000, min_power_w=50_000)
    kept = layer.dispatch(60, [small], 200_000, 10e6, 10e6, demand_limit_w=180_000)["b"]
    assert kept.power_w == 0.0 and not kept.paused  # 20 kW is below its minimum: it stays idle, not paused
    assert told(layer, [small], now=120, base_load_w=200_000, demand_limit_w=100_000)["b"] == -100_000
    layer.forget("b")  # a new truck at b: it has run no direction
    assert told(layer, [small], now=180, base_load_w=200_000, demand_limit_w=100_000)["b"] == 0.0


def test_a_truck_discharging_already_gives_at_most_what_it_may_in_all() -> None:
    layer = RealTimeLayer(deadband_w=0)
    told(layer, [outlet("a", -100_000)], now=-600)
    giving = outlet("a", -100_000, may_give_w=150_000)
    assert told(layer, [giving], base_load_w=200_000, demand_limit_w=0.0)["a"] == pytest.approx(-150_000)


def test_limits_of_the_truck_and_the_charger_bound_the_setpoint() -> None:
    layer = RealTimeLayer(deadband_w=0)
    one_way = outlet("one_way", -200_000, max_discharge_w=0.0)
    assert told(layer, [one_way, outlet("big", 2e6)]) == {"one_way": 0.0, "big": 750_000}
