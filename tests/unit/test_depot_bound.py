"""The perfect-foresight bound of a depot scenario (`mcs_v2g.depot.bound`)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from evse_emulator.energy.ems.lp import plan
from evse_emulator.energy.ems.site import PACK_LOSS_H, TAPER, TARGET_MARGIN
from mcs_v2g.depot.bound import fcr_shortfall_kwh, foresight_plan, lower_bound_eur, physical_bound_eur
from mcs_v2g.depot.scenario import load

TINY = """
name = "tiny"
horizon_s = 7200
step_s = 60
loop_interval_s = 5

[site]
grid_import_limit_w = 1_000_000
grid_export_limit_w = 0
base_load_w = [[0, 0]]

[tariff]
import_eur_per_kwh = [[0, 0.30], [3600, 0.10]]
export_eur_per_kwh = [[0, 0.0]]
demand_eur_per_kw = 0.0
unserved_eur_per_kwh = 2.0

[[charger]]
id = "c1"
max_power_w = 500_000
max_current_a = 1_000
max_voltage_v = 1_000
bidirectional = false
efficiency = 0.95

[[truck]]
id = "t1"
charger = "c1"
arrival_s = 0
departure_s = 7200
announced_s = 0
booked = true
battery_kwh = 500
initial_soc = 0.2
target_soc = 0.8
min_soc = 0.2
max_charge_w = 200_000
min_power_w = 20_000
max_contactor_cycles = 4
"""


def test_foresight_plan_holds_the_default_scenario_as_announced() -> None:
    scenario = load(None)
    x = foresight_plan(scenario)
    assert x.n == 1440 and x.t_s[0] == 0.0 and x.t_s[-1] == scenario.horizon_s - scenario.step_s
    assert [t.id for t in x.trucks] == [t.id for t in scenario.trucks]
    for truck, spec in zip(x.trucks, scenario.trucks, strict=True):
        assert (truck.taper_knee_soc, truck.taper_end, truck.loss_h) == (1.0, 1.0, 0.0)
        assert truck.target_soc == spec.target_soc  # no target margin
        assert (truck.arrival_s, truck.departure_s) == (spec.arrival_s, spec.departure_s)  # no departure lead
        assert truck.soc == spec.initial_soc and truck.booked == spec.booked
    assert set(x.import_limit_w) == {scenario.site.grid_import_limit_w}  # no guard margin
    assert set(x.export_limit_w) == {scenario.site.grid_export_limit_w}
    assert scenario.fcr is not None
    held = [k for k, w in enumerate(x.fcr_w) if w > 0]
    assert held == list(range(240)) and x.fcr_w[0] == scenario.fcr.capacity_w  # the window 0-4 h, 60 s steps


def test_bound_is_below_the_lps_own_foresight_plan_with_taper_and_losses() -> None:
    scenario = load(None)
    x = foresight_plan(scenario)
    real = [
        replace(
            t,
            taper_knee_soc=TAPER[0],
            taper_end=TAPER[1],
            loss_h=PACK_LOSS_H,
            target_soc=min(t.target_soc + TARGET_MARGIN, 1.0),
        )
        for t in x.trucks
    ]
    with_taper = plan(replace(x, trucks=tuple(real)), time_limit=120.0)
    assert not with_taper.fallback
    bound = lower_bound_eur(scenario)
    assert 0 < bound < with_taper.costs.total_eur


def test_bound_of_a_tiny_scenario_is_the_hand_computed_optimum(tmp_path: Path) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY, encoding="utf-8")
    scenario = load(path)
    # 300 kWh into the pack (lossless); 200 kWh fit in the cheap hour at 200 kW, the other 100 kWh in the dear one;
    # the grid pays DC / 0.95
    expected = (200 * 0.10 + 100 * 0.30) / 0.95
    assert lower_bound_eur(scenario) == pytest.approx(expected, rel=1e-6)
    assert fcr_shortfall_kwh(scenario) == 0.0


def _one_hour(tmp_path: Path, demand_eur_per_kw: float, limit_w: int) -> object:
    """TINY cut to one hour at a flat 0.10 EUR/kWh: the truck wants 100 kWh (20 % to 40 % of 500), at <= 200 kW."""
    text = (
        TINY.replace("horizon_s = 7200", "horizon_s = 3600")
        .replace("departure_s = 7200", "departure_s = 3600")
        .replace("[[0, 0.30], [3600, 0.10]]", "[[0, 0.10]]")
        .replace("demand_eur_per_kw = 0.0", f"demand_eur_per_kw = {demand_eur_per_kw}")
        .replace("grid_import_limit_w = 1_000_000", f"grid_import_limit_w = {limit_w}")
        .replace("target_soc = 0.8", "target_soc = 0.4")
    )
    path = tmp_path / "hour.toml"
    path.write_text(text, encoding="utf-8")
    return load(path)


def test_the_bound_meets_every_feasible_target_unless_asked_not_to(tmp_path: Path) -> None:
    """At 50 EUR/kW of demand charge, leaving the 100 kWh short at 2 EUR/kWh is cheaper than meeting the target: the
    relaxed bound does so, the default bound (the EMS's problem: every feasible target met) pays the peak."""
    scenario = _one_hour(tmp_path, 50.0, 1_000_000)
    grid_kw = 100 / 0.95  # 100 kWh into the pack over the hour: a flat 105 kW at the grid, every window
    assert lower_bound_eur(scenario, targets_met=False) == pytest.approx(100 * 2.0, rel=1e-6)
    assert lower_bound_eur(scenario) == pytest.approx(grid_kw * 0.10 + grid_kw * 50.0, rel=1e-6)


def test_targets_that_cannot_all_be_met_together_give_no_targets_met_bound(tmp_path: Path) -> None:
    scenario = _one_hour(tmp_path, 0.0, 50_000)  # feasible at the truck's rate, not within a 50 kW connection
    with pytest.raises(RuntimeError, match="the targets of t1 cannot all be met together"):
        lower_bound_eur(scenario)
    assert lower_bound_eur(scenario, targets_met=False) > 0


def test_the_bound_with_the_ems_truck_model_lies_between_the_bound_and_what_the_ems_plans(tmp_path: Path) -> None:
    """The physical bound (taper, losses) of the tiny scenario: 300 kWh into the pack, 200 kWh DC at 200 kW in the
    cheap hour (the taper does not bind below 80 %) less its I^2 R loss, the rest in the dear hour at the power P
    whose P - loss(P) is what is left (the LP's loss within a 64th of the top's loss of the curve)."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY, encoding="utf-8")
    scenario = load(path)
    k = PACK_LOSS_H / 500e3  # per W, on the 500 kWh pack
    left_wh = 300e3 - (200e3 - k * 200e3**2)
    dear_w = (1 - math.sqrt(1 - 4 * k * left_wh)) / (2 * k)  # P - k P^2 = left
    expected = (200 * 0.10 + dear_w / 1000 * 0.30) / 0.95
    assert physical_bound_eur(scenario) == pytest.approx(expected, rel=1e-3)
    assert physical_bound_eur(scenario) > lower_bound_eur(scenario)
