"""The walk-in forecast: expected trucks on the chargers' free time, and a plan that leaves room for them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from evse_emulator.energy.ems import Charger, SitePlan, Truck, fallback, forecast, plan
from evse_emulator.energy.ems.forecast import WalkInForecast, plan_with_forecast

KW = 1000.0
KWH = 1000.0
HOUR = 3600.0
STEP = 900.0
C1 = Charger("c1", 400 * KW, bidirectional=True)
C2 = Charger("c2", 400 * KW, bidirectional=True)


def site(trucks: list[Truck], hours: float = 8, **kw: object) -> SitePlan:
    n = round(hours * HOUR / STEP)
    settings: dict = dict(
        step_s=STEP,
        t_s=tuple(k * STEP for k in range(n)),
        import_eur_per_kwh=(0.20,) * n,
        export_eur_per_kwh=(0.0,) * n,
        base_load_w=(0.0,) * n,
        import_limit_w=(2e6,) * n,
        export_limit_w=(1e6,) * n,
        chargers=(C1, C2),
        trucks=tuple(trucks),
        unserved_eur_per_kwh=2.0,
    )
    return SitePlan(**(settings | kw))


def known(**kw: object) -> Truck:
    base: dict = dict(arrival_s=0.0, departure_s=6 * HOUR, battery_wh=600 * KWH, soc=0.2, target_soc=0.7)
    return Truck("T1", "c1", **(base | {"max_charge_w": 400 * KW} | kw))


def test_the_expected_energy_is_the_density_over_the_free_hours() -> None:
    forecast = WalkInForecast()
    # 10 + 2.5 kWh/h per hour ahead, from 1 h to 2 h ahead: 13.75 kWh; far ahead, the cap
    assert forecast.energy_wh(0.0, HOUR, 2 * HOUR) == pytest.approx(13.75 * KWH)
    assert forecast.energy_wh(0.0, 20 * HOUR, 21 * HOUR) == pytest.approx(40 * KWH)
    assert forecast.energy_wh(5 * HOUR, 6 * HOUR, 7 * HOUR) == forecast.energy_wh(0.0, HOUR, 2 * HOUR)


def test_expected_trucks_hold_each_chargers_free_time_after_the_lead_and_none_of_a_short_gap() -> None:
    t1 = known(arrival_s=1.5 * HOUR, departure_s=3 * HOUR)
    t2 = Truck("T2", "c1", 3.5 * HOUR, 5 * HOUR, 500 * KWH, 0.2, 0.8)  # 30 min after T1: no room for a walk-in
    expected = WalkInForecast().trucks(site([t1, t2]))
    assert [(t.charger, t.arrival_s / HOUR, t.departure_s / HOUR) for t in expected] == [
        ("c1", 5.0, 8.0),  # 1 h to T1's arrival is only 30 min from the lead's end; 3 h to 3.5 h is short
        ("c2", 1.0, 8.0),
    ]
    for t in expected:
        assert t.expected and not t.firm_target and t.max_discharge_w == 0.0
        assert t.target_soc * t.battery_wh == pytest.approx(WalkInForecast().energy_wh(0.0, t.arrival_s, t.departure_s))


def test_the_plan_leaves_room_for_trucks_not_known_yet_and_holds_only_the_known_ones() -> None:
    """Alone, the known truck is spread over its stay to the lowest peak; with the forecast it charges earlier,
    before the walk-ins the free charger will see, and the plan's grid holds their expected energy."""
    x = site([known()], demand_eur_per_kw=3.0)
    alone = plan(x)
    with_room = plan_with_forecast(x)
    assert [t.id for t in with_room.trucks] == ["T1"]
    first_hour = slice(0, 4)
    assert sum(with_room.truck("T1").power_w[first_hour]) > 1.2 * sum(alone.truck("T1").power_w[first_hour])
    late = slice(8, 24)
    assert sum(with_room.grid_w[late]) > sum(with_room.truck("T1").power_w[late]) + 50 * KW
    assert with_room.truck("T1").unserved_wh == pytest.approx(0.0, abs=1.0)


def test_when_the_lp_fails_the_safe_plan_serves_the_known_trucks_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Expected trucks take no power from real ones in the safe plan (least laxity first would serve them too)."""
    monkeypatch.setattr(forecast, "plan", lambda x: fallback.plan(x, reason="HiGHS: time limit"))
    x = site([known(target_soc=1.0)], import_limit_w=(300 * KW,) * 32)
    with_expected = fallback.plan(replace(x, trucks=x.trucks + WalkInForecast().trucks(x)))
    safe = plan_with_forecast(x)
    assert safe.fallback and safe.status == "HiGHS: time limit"
    assert safe.grid_w == fallback.plan(x).grid_w != with_expected.grid_w
    assert [t.id for t in safe.trucks] == ["T1"]


def test_an_expected_truck_holds_no_fcr_headroom() -> None:
    """FCR is sold on trucks that are there: an expected one on a bidirectional charger does not count."""
    n = round(8 * HOUR / STEP)
    fcr = dict(fcr_w=(100 * KW,) * n, fcr_reserve_s=0.0)
    plugged = Truck("T2", "c2", 0.0, 8 * HOUR, 600 * KWH, 0.5, 0.5, max_charge_w=400 * KW, max_discharge_w=400 * KW)
    expected = Truck("~expected c2 0", "c2", 0.0, 8 * HOUR, 600 * KWH, 0.5, 0.5, max_charge_w=400 * KW, expected=True)
    assert max(plan(site([plugged], **fcr)).fcr_shortfall_w) == pytest.approx(0.0, abs=1.0)
    assert min(plan(site([expected], **fcr)).fcr_shortfall_w) == pytest.approx(100 * KW)
