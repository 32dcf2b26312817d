"""The least worst ratio to the bound that an EMS learning of trucks as announced can reach
(`mcs_v2g.depot.online_bound`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from mcs_v2g.depot.bound import lower_bound_eur
from mcs_v2g.depot.online_bound import online_bound, twins
from mcs_v2g.depot.run import run_depot
from mcs_v2g.depot.scenario import DepotScenario, load

# Two hours, energy free, 10 EUR/kW on the 15-min peak. t1 (known at t = 0) wants 100 kWh in the two hours at up to
# 200 kW; the walk-in t2 wants 100 kWh in the second hour, and is announced when it arrives.
WALK_IN = """
name = "walk-in"
horizon_s = 7200
step_s = 60
loop_interval_s = 5

[site]
grid_import_limit_w = 1_000_000
grid_export_limit_w = 0
base_load_w = [[0, 0]]

[tariff]
import_eur_per_kwh = [[0, 0.0]]
export_eur_per_kwh = [[0, 0.0]]
demand_eur_per_kw = 10.0
unserved_eur_per_kwh = 2.0

[[charger]]
id = "c1"
max_power_w = 500_000
max_current_a = 1_000
max_voltage_v = 1_000
bidirectional = false
efficiency = 1.0

[[charger]]
id = "c2"
max_power_w = 500_000
max_current_a = 1_000
max_voltage_v = 1_000
bidirectional = false
efficiency = 1.0

[[truck]]
id = "t1"
charger = "c1"
arrival_s = 0
departure_s = 7200
announced_s = 0
booked = true
battery_kwh = 500
initial_soc = 0.2
target_soc = 0.4
min_soc = 0.2
max_charge_w = 200_000
min_power_w = 20_000
max_contactor_cycles = 4

[[truck]]
id = "t2"
charger = "c2"
arrival_s = 3600
departure_s = 7200
announced_s = ANNOUNCED
booked = false
battery_kwh = 500
initial_soc = 0.2
target_soc = 0.4
min_soc = 0.2
max_charge_w = 125_000
min_power_w = 20_000
max_contactor_cycles = 4
"""


def _walk_in(tmp_path: Path, announced_s: int) -> DepotScenario:
    path = tmp_path / "walk-in.toml"
    path.write_text(WALK_IN.replace("ANNOUNCED", str(announced_s)), encoding="utf-8")
    return load(path)


def test_the_twins_are_the_day_without_each_late_truck_and_the_day_as_known_at_each_announcement() -> None:
    scenario = load(None)
    cases = dict(twins(scenario))
    late = {t.id: t.announced_s for t in scenario.trucks if t.announced_s > 0}
    alone = {frozenset({truck}) for truck in late}
    as_known = {frozenset(t for t, when in late.items() if when >= told) for told in late.values()}
    assert set(cases) == {frozenset()} | alone | as_known
    assert cases[frozenset()] == float("inf")
    for missing in alone | as_known:  # told apart from the day by the first announcement of a missing truck
        assert cases[missing] == min(late[t] for t in missing)


def test_a_walk_in_costs_any_ems_a_third_more_than_foresight_on_the_day_or_its_twin(tmp_path: Path) -> None:
    """By hand: t1 gets a kWh in the first hour, the same on both days. With t2 the second hour needs 200 - a kWh
    (peak max(a, 200 - a) kW against the bound's 100); without it 100 - a (peak max(a, 100 - a) against 50). The
    least worst ratio is at a = 200/3: 4/3 on both."""
    scenario = _walk_in(tmp_path, 3600)
    assert lower_bound_eur(scenario) == pytest.approx(100 * 10.0, rel=1e-6)
    result = online_bound(scenario)
    assert result.ratio == pytest.approx(4 / 3, rel=1e-5)
    assert result.minmax == pytest.approx(result.ratio, rel=1e-6)  # the mix's own optimum is the min-max's
    day, twin = result.twins
    assert (day.missing, twin.missing, twin.told_s) == (frozenset(), frozenset({"t2"}), 3600)
    assert (day.bound_eur, twin.bound_eur) == (pytest.approx(1000.0, rel=1e-6), pytest.approx(500.0, rel=1e-6))
    assert day.ratio <= result.ratio + 1e-6 and twin.ratio <= result.ratio + 1e-6
    # the worst mixture of the two days: a in [50, 100] is best at 200/3 only for 2/3 on the day, 1/3 on its twin
    assert (day.weight, twin.weight) == (pytest.approx(2 / 3, abs=1e-6), pytest.approx(1 / 3, abs=1e-6))


def test_a_truck_announced_a_step_earlier_is_known_in_time_and_one_announced_at_the_start_leaves_no_twin(
    tmp_path: Path,
) -> None:
    # announced at 0: nothing to tell apart, the ratio is the bound's own
    assert online_bound(_walk_in(tmp_path, 0)).ratio == pytest.approx(1.0, rel=1e-5)  # the judge's 1 W margin
    # announced during the first hour's last step: that step may already change, and only it
    late_by_a_step = online_bound(_walk_in(tmp_path, 3590)).ratio
    assert 1.0 < late_by_a_step < 4 / 3 - 1e-3
    # announced half-way: only t1's first half hour (h kWh) is shared. With t2, t1 takes (200 - h) / 3 kWh in the
    # next half hour and the rest in the second, at the peak 2 (200 - h) / 3 kW against 100; without it the peak is
    # 2 h against 50 (h >= 25). Equal at h = 200/7: 8/7
    assert online_bound(_walk_in(tmp_path, 1800)).ratio == pytest.approx(8 / 7, rel=1e-5)


def test_the_ems_run_on_the_day_and_its_twin_is_above_the_online_bound_on_one_of_them(tmp_path: Path) -> None:
    """The claim itself, on the real EMS: its report's cost over the bound, on the walk-in day and on the same day
    without the walk-in, is at least 4/3 on one of them (every feasible target met, no grid violation)."""
    day = _walk_in(tmp_path, 3600)
    twin = replace(day, trucks=day.trucks[:1])
    ratios = []
    for scenario in (day, twin):
        report = run_depot(scenario).report()
        assert report.result == "ok" and report.grid_import_violation_s == 0
        ratios.append(report.cost_eur.total / lower_bound_eur(scenario))
    assert max(ratios) >= online_bound(day).ratio - 1e-6


def test_a_twin_whose_bound_is_not_above_zero_is_left_out(tmp_path: Path) -> None:
    """Energy at 0.50 EUR/kWh, V2G paid 0.40. t1 may sell 100 kWh of its pack; the walk-in t2 wants 200 kWh. Without
    the walk-in the day earns money (its bound is below 0), so only the day itself is left."""
    text = (
        WALK_IN.replace("ANNOUNCED", "1800")
        .replace("bidirectional = false", "bidirectional = true", 1)
        .replace("grid_export_limit_w = 0", "grid_export_limit_w = 1_000_000")
        .replace("import_eur_per_kwh = [[0, 0.0]]", "import_eur_per_kwh = [[0, 0.50]]")
        .replace("export_eur_per_kwh = [[0, 0.0]]", "export_eur_per_kwh = [[0, 0.40]]")
        .replace("initial_soc = 0.2\ntarget_soc = 0.4", "initial_soc = 0.6\ntarget_soc = 0.4", 1)
        .replace("max_charge_w = 200_000", "max_charge_w = 200_000\nmax_discharge_w = 200_000")
        .replace("initial_soc = 0.2\ntarget_soc = 0.4", "initial_soc = 0.2\ntarget_soc = 0.6")
        .replace("max_charge_w = 125_000", "max_charge_w = 250_000")
    )
    path = tmp_path / "v2g.toml"
    path.write_text(text, encoding="utf-8")
    day = load(path)
    assert lower_bound_eur(replace(day, trucks=day.trucks[:1])) < 0 < lower_bound_eur(day)
    result = online_bound(day)
    assert [t.missing for t in result.twins] == [frozenset()]
    assert result.ratio <= 1.0


def test_two_walk_ins_announced_together_give_four_days_and_the_same_third(tmp_path: Path) -> None:
    """t3, a copy of t2 on a third charger: with a kWh in t1's first hour the days cost max(a, 300 - a) against 200,
    max(a, 200 - a) against 100 with one walk-in, max(a, 100 - a) against 50 with none; the worst two meet at
    a = 200/3, at 4/3 again, and the day with both walk-ins does not bind."""
    text = WALK_IN.replace("ANNOUNCED", "3600")
    third = text[text.index("[[charger]]") : text.index("[[truck]]")].split("[[charger]]")[1].replace('"c1"', '"c3"')
    t3 = text[text.rindex("[[truck]]") :].replace('"t2"', '"t3"').replace('"c2"', '"c3"')
    path = tmp_path / "two.toml"
    path.write_text(text.replace("[[truck]]", "[[charger]]" + third + "[[truck]]", 1) + t3, encoding="utf-8")
    scenario = load(path)
    assert [t.id for t in scenario.trucks] == ["t1", "t2", "t3"] and len(scenario.chargers) == 3
    result = online_bound(scenario)
    assert {t.missing for t in result.twins} == {
        frozenset(),
        frozenset({"t2"}),
        frozenset({"t3"}),
        frozenset({"t2", "t3"}),
    }
    assert result.ratio == pytest.approx(4 / 3, rel=1e-5)
    weight = {t.missing: t.weight for t in result.twins}
    assert weight[frozenset()] == pytest.approx(0.0, abs=1e-6)
    assert weight[frozenset({"t2", "t3"})] > 0 and weight[frozenset({"t2"})] + weight[frozenset({"t3"})] > 0


def test_a_day_whose_own_bound_is_not_above_zero_has_no_ratio_to_bound(tmp_path: Path) -> None:
    """Energy free and no demand charge: the day's bound is 0, and a ratio to it is refused with a typed error."""
    path = tmp_path / "free.toml"
    path.write_text(WALK_IN.replace("ANNOUNCED", "3600").replace("demand_eur_per_kw = 10.0", "demand_eur_per_kw = 0.0"))
    day = load(path)
    assert lower_bound_eur(day) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="the scenario's bound is 0.00 EUR, a ratio to it means nothing"):
        online_bound(day)
