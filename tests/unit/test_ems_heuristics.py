"""The benchmark's heuristic planners on hand-solvable cases (1 h steps, efficiency 1 unless named), and the seeded
depot generator (determinism, the TOML round trip, the scenario checks, no shared charger step)."""

from __future__ import annotations

import itertools
import math

import pytest

from evse_emulator.energy.ems import Charger, Plan, SitePlan, Truck
from evse_emulator.energy.ems import fallback as fallback_plan
from evse_emulator.energy.ems.heuristics import (
    HEURISTICS,
    edf,
    equal_share,
    llf,
    price_threshold_v2g,
    price_thresholds,
    uncontrolled,
)
from mcs_v2g.depot import load
from mcs_v2g.depot.generate import generate, to_toml

KW = 1000.0
KWH = 1000.0
H = 3600.0
CHARGERS = (Charger("c1", 100 * KW, bidirectional=True), Charger("c2", 100 * KW))


def site(
    trucks: list[Truck],
    *,
    prices: list[float] | None = None,
    export: list[float] | None = None,
    n: int = 3,
    limit_w: float = 1e6,
    export_limit_w: float = 1e6,
    chargers: tuple[Charger, ...] = CHARGERS,
    **kw: object,
) -> SitePlan:
    return SitePlan(
        step_s=H,
        t_s=tuple(k * H for k in range(n)),
        import_eur_per_kwh=tuple(prices or [0.2] * n),
        export_eur_per_kwh=tuple(export or [0.0] * n),
        base_load_w=(0.0,) * n,
        import_limit_w=(limit_w,) * n,
        export_limit_w=(export_limit_w,) * n,
        chargers=chargers,
        trucks=tuple(trucks),
        unserved_eur_per_kwh=2.0,
        **kw,  # type: ignore[arg-type]
    )


def truck(tid: str = "t1", charger: str = "c1", /, **kw: object) -> Truck:
    base: dict[str, object] = dict(
        arrival_s=0, departure_s=1e9, battery_wh=100 * KWH, soc=0.5, target_soc=0.8, max_charge_w=50 * KW
    )
    return Truck(tid, charger, **(base | kw))  # type: ignore[arg-type]


def powers(plan: Plan, *ids: str) -> list[float]:
    """The trucks' setpoints, one after the other (pytest.approx compares flat sequences only)."""
    return [pk for i in ids for pk in plan.truck(i).power_w]


def test_uncontrolled_ignores_the_limit_and_stops_at_the_target() -> None:
    p = uncontrolled(site([truck("a"), truck("b", "c2", soc=0.7)], limit_w=40 * KW))
    assert powers(p, "a", "b") == pytest.approx([30 * KW, 0, 0, 10 * KW, 0, 0])
    assert p.grid_w[0] == pytest.approx(40 * KW / 1)
    p = uncontrolled(site([truck("a"), truck("b", "c2")], limit_w=40 * KW))
    assert p.grid_w[0] == pytest.approx(60 * KW) and p.grid_w[0] > 40 * KW  # the limit does not hold it back
    assert p.truck("a").soc[-1] == pytest.approx(0.8) and p.status == "uncontrolled" and not p.fallback


def test_equal_share_splits_the_headroom_and_water_fills() -> None:
    p = equal_share(site([truck("a"), truck("b", "c2")], limit_w=40 * KW))
    assert powers(p, "a", "b") == pytest.approx([20 * KW, 10 * KW, 0, 20 * KW, 10 * KW, 0])
    p = equal_share(site([truck("a", soc=0.75), truck("b", "c2", soc=0.0)], limit_w=40 * KW))
    assert p.truck("a").power_w[0] == pytest.approx(5 * KW)  # needs less than its share: b takes the rest
    assert p.truck("b").power_w[0] == pytest.approx(35 * KW)
    assert p.status == "equal-share" and not p.fallback


def test_equal_share_respects_a_shared_charger_and_efficiency() -> None:
    chargers = (Charger("c1", 60 * KW, efficiency=0.5), Charger("c2", 100 * KW))
    trucks = [truck("a", soc=0.0), truck("b", soc=0.0), truck("c", "c2", soc=0.0, max_charge_w=100 * KW)]
    p = equal_share(site(trucks, limit_w=190 * KW, chargers=chargers))
    a, b, c = (p.truck(i).power_w[0] for i in "abc")
    assert a + b == pytest.approx(60 * KW)  # c1's rating, shared: 60 kW grid side each at 50 %
    assert a == pytest.approx(b) and c == pytest.approx(70 * KW)  # c gets the rest of the 190 kW
    assert p.grid_w[0] == pytest.approx(190 * KW)


def test_edf_serves_the_earliest_departure_first_booked_or_not() -> None:
    trucks = [
        truck("a", soc=0.0, target_soc=0.5, booked=True),
        truck("b", "c2", soc=0.0, target_soc=0.5, departure_s=H),
    ]
    p = edf(site(trucks, limit_w=50 * KW))
    assert powers(p, "a", "b") == pytest.approx([0, 50 * KW, 0, 50 * KW, 0, 0])
    assert all(t.unserved_wh == pytest.approx(0) for t in p.trucks) and p.status == "edf"


def test_llf_orders_by_laxity_not_by_booking() -> None:
    trucks = [
        truck("a", soc=0.0, target_soc=1.0, departure_s=3 * H),  # laxity 1 h at t = 0
        truck("b", "c2", soc=0.5, target_soc=0.75, departure_s=2 * H, booked=True),  # laxity 1.5 h at t = 0
    ]
    x = site(trucks, limit_w=50 * KW)
    p = llf(x)
    assert powers(p, "a", "b") == pytest.approx([50 * KW, 25 * KW, 25 * KW, 0, 25 * KW, 0])
    assert p.status == "llf" and not p.fallback
    assert edf(x).truck("a").power_w[0] == pytest.approx(25 * KW)  # EDF serves b first: the two differ
    assert fallback_plan.plan(x).truck("b").power_w[0] == pytest.approx(25 * KW)  # the fallback: booked first


V2G: dict[str, object] = dict(min_soc=0.4, max_discharge_w=50 * KW)


def test_price_threshold_charges_cheap_and_sells_dear() -> None:
    x = site([truck(soc=0.5, target_soc=0.6, **V2G)], prices=[0.10, 0.20, 0.40], export=[0.05, 0.10, 0.35])
    p = price_threshold_v2g(x)
    assert p.truck("t1").power_w == pytest.approx((50 * KW, 0, -40 * KW))  # full when cheap, back to target when dear
    assert p.truck("t1").soc == pytest.approx((1.0, 1.0, 0.6)) and p.status == "price-threshold-v2g"


def test_price_threshold_never_discharges_below_the_floor() -> None:
    x = site([truck(soc=0.45, target_soc=0.45, **V2G)], prices=[0.40, 0.20, 0.10], export=[0.35, 0.10, 0.05])
    p = price_threshold_v2g(x)
    assert p.truck("t1").power_w == pytest.approx((-5 * KW, 0, 50 * KW))
    assert min(p.truck("t1").soc) == pytest.approx(0.4)


def test_price_threshold_sells_only_what_it_can_charge_back_by_departure() -> None:
    t = truck(arrival_s=H, departure_s=3 * H, soc=0.6, target_soc=0.9, min_soc=0.3, max_discharge_w=50 * KW)
    p = price_threshold_v2g(site([t], prices=[0.2, 0.4, 0.3], export=[0.1, 0.35, 0.1]))
    assert p.truck("t1").power_w == pytest.approx((0, -20 * KW, 50 * KW))  # laxity 0 after the dear step
    assert p.truck("t1").unserved_wh == pytest.approx(0)


def test_price_threshold_without_v2g_charges_at_laxity_zero_and_when_cheap() -> None:
    t = truck("t1", "c2", soc=0.0, departure_s=3 * H, max_discharge_w=50 * KW)  # c2 is not bidirectional
    p = price_threshold_v2g(site([t], prices=[0.3, 0.4, 0.2], export=[0.1, 0.35, 0.1]))
    assert p.truck("t1").power_w == pytest.approx((0, 30 * KW, 50 * KW))


def test_price_threshold_with_the_days_thresholds_sells_in_the_dear_hours_left() -> None:
    """A plan made inside the evening peak sees only dear hours: by its own horizon's thirds they are the cheap
    ones (it charges to full at the dearest price and sells nothing); by the day's thresholds they are dear."""
    x = site([truck(soc=0.9, target_soc=0.6, **V2G)], prices=[0.40] * 3, export=[0.35] * 3)
    assert price_threshold_v2g(x).truck("t1").power_w == pytest.approx((10 * KW, 0, 0))
    day = price_thresholds([0.12] * 14 + [0.22] * 6 + [0.40] * 4, [0.05] * 14 + [0.10] * 6 + [0.35] * 4)
    assert day[0] == 0.12 and 0.12 < day[1] < 0.35  # cheap at 0.12, dear above it (the third: 0.10)
    assert price_threshold_v2g(x, day).truck("t1").power_w == pytest.approx((-50 * KW, 0, 20 * KW))  # to its floor


def test_price_threshold_with_a_reserve_keeps_the_target_reachable_without_the_stays_end() -> None:
    t = truck("t1", "c2", soc=0.5, target_soc=1.0, departure_s=3 * H)  # 50 kWh at 50 kW: the last hour, at laxity 0
    x = site([t], prices=[0.2] * 3, export=[0.1] * 3)
    neither = (0.1, 0.5)  # no step cheap, none dear
    assert price_threshold_v2g(x, neither).truck("t1").power_w == pytest.approx((0, 0, 50 * KW))
    assert price_threshold_v2g(x, neither, reserve_s=900).truck("t1").power_w == pytest.approx(
        (0, 12.5 * KW, 37.5 * KW)
    )


def test_the_depots_price_threshold_planner_has_the_scenarios_thresholds_and_the_reserve() -> None:
    from mcs_v2g.depot.planners import LAXITY_RESERVE_S, planner

    chosen = planner("price-threshold-v2g", load(None))  # import 0.12 until 07:00, 0.14 from 21:00: a third cheap
    assert chosen.keywords == {"thresholds": (0.14, pytest.approx(0.14)), "reserve_s": LAXITY_RESERVE_S}
    assert chosen.keywords["thresholds"][1] > 0.14 and LAXITY_RESERVE_S == 900.0  # dear: above the cheap price


def test_price_threshold_keeps_the_export_limit() -> None:
    x = site([truck(soc=1.0, target_soc=0.6, **V2G)], prices=[0.2, 0.4], export=[0.1, 0.35], n=2, export_limit_w=10e3)
    p = price_threshold_v2g(x)
    assert p.truck("t1").power_w == pytest.approx((0, -10 * KW))
    assert min(p.grid_w) == pytest.approx(-10 * KW)


def busy_site() -> SitePlan:
    """Partial steps, shared chargers, V2G, efficiency, a tight limit, an FCR window: the common rules."""
    chargers = (Charger("c1", 80 * KW, bidirectional=True, efficiency=0.9), Charger("c2", 60 * KW, efficiency=0.95))
    trucks = [
        truck("a", arrival_s=0.5 * H, departure_s=2.5 * H, soc=0.2, target_soc=0.9, **V2G),
        truck("b", arrival_s=2.6 * H, departure_s=5.5 * H, soc=0.9, target_soc=0.95, **V2G),
        truck("c", "c2", arrival_s=0, departure_s=4 * H, soc=0.1, target_soc=1.0, max_charge_w=70 * KW),
        truck("d", "c2", arrival_s=3.5 * H, departure_s=6 * H, soc=0.3, target_soc=0.6, booked=True),
        truck("e", "c1", arrival_s=5.5 * H, departure_s=6 * H, soc=0.95, target_soc=0.95, **V2G),
    ]
    prices = [0.1, 0.1, 0.2, 0.4, 0.4, 0.2]
    return site(
        trucks,
        prices=prices,
        export=[p * 0.8 for p in prices],
        n=6,
        limit_w=70 * KW,
        chargers=chargers,
        fcr_w=(5e3,) * 6,
    )


@pytest.mark.parametrize("name", list(HEURISTICS))
def test_every_heuristic_keeps_presence_batteries_chargers_and_limits(name: str) -> None:
    x = busy_site()
    p = HEURISTICS[name](x)
    assert p.status == name and not p.fallback and p.fcr_shortfall_w == x.fcr_w
    for t, tp in zip(x.trucks, p.trucks, strict=True):
        rate = min(t.max_charge_w, x.charger(t.charger).max_power_w)
        floor = min(t.min_soc, t.soc)
        assert all(floor - 1e-9 <= s <= 1 + 1e-9 for s in tp.soc)
        for k, pk in enumerate(tp.power_w):
            assert -1e-6 <= pk <= rate * x.presence(t, k) + 1e-6 or (
                name == "price-threshold-v2g" and -t.max_discharge_w * x.presence(t, k) - 1e-6 <= pk < 0
            )
    for k in range(x.n):
        for c in x.chargers:
            used = sum(abs(tp.power_w[k]) for t, tp in zip(x.trucks, p.trucks, strict=True) if t.charger == c.id)
            assert used <= c.max_power_w + 1e-6
        assert p.grid_w[k] >= -x.export_limit_w[k] - 1e-6
        if name != "uncontrolled":
            assert p.grid_w[k] <= x.import_limit_w[k] + 1e-6


def test_only_price_threshold_discharges_and_only_where_export_is_dear() -> None:
    x = busy_site()
    for name, planner in HEURISTICS.items():
        sold = {k for tp in planner(x).trucks for k, pk in enumerate(tp.power_w) if pk < -1e-6}
        assert sold <= ({3, 4} if name == "price-threshold-v2g" else set()), name
    assert any(pk < 0 for tp in price_threshold_v2g(x).trucks for pk in tp.power_w)


def test_uncontrolled_breaks_the_limit_where_the_others_hold_it() -> None:
    x = busy_site()
    assert max(uncontrolled(x).grid_w) > x.import_limit_w[0] * 1.1


# ---------------------------------------------------------------- the depot generator


def test_generate_is_deterministic_per_seed_and_differs_across_seeds() -> None:
    assert generate(7) == generate(7)
    assert to_toml(generate(7)) == to_toml(generate(7))
    assert generate(7) != generate(8)
    assert to_toml(generate(7)) != to_toml(generate(8))


@pytest.mark.parametrize(("seed", "chargers", "trucks"), [(s, 6, 16) for s in range(10)] + [(0, 20, 50), (1, 20, 50)])
def test_generated_scenarios_pass_the_checks_and_round_trip(seed: int, chargers: int, trucks: int, tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = generate(seed, chargers=chargers, trucks=trucks)
    path = tmp_path / "depot.toml"
    path.write_text(to_toml(s), encoding="utf-8")
    assert load(path) == s
    assert len(s.chargers) == chargers and len(s.trucks) == trucks and s.horizon_s == 86_400 and s.step_s == 60
    assert s.site.grid_import_limit_w < sum(c.max_power_w for c in s.chargers)
    assert max(v for _, v in s.site.base_load_w) < s.site.grid_import_limit_w
    assert all(750e3 <= c.max_power_w <= 1e6 and 0.95 <= c.efficiency <= 0.97 for c in s.chargers)
    assert all(400 <= t.battery_kwh <= 800 and t.departure_s - t.arrival_s >= 3600 for t in s.trucks)
    infeasible = sum(not s.feasible(t) for t in s.trucks)
    assert 1 <= infeasible <= math.ceil(0.15 * trucks)
    assert any(t.announced_s == t.arrival_s for t in s.trucks) and any(t.announced_s < t.arrival_s for t in s.trucks)
    for (_, buy), (_, sell) in zip(s.tariff.import_eur_per_kwh, s.tariff.export_eur_per_kwh, strict=True):
        assert sell <= buy  # the EMS refuses an export price above the import price


def test_generated_trucks_never_share_a_charger_step() -> None:
    for seed in range(10):
        s = generate(seed, chargers=20, trucks=50)
        for cid in (c.id for c in s.chargers):
            on = sorted((t for t in s.trucks if t.charger == cid), key=lambda t: t.arrival_s)
            for before, after in itertools.pairwise(on):
                assert s.steps_of(after).start >= s.steps_of(before).stop + 1  # a full free step between them


def test_generated_fleet_mixes_v2g_bidirectional_and_an_fcr_window_for_some_seeds() -> None:
    scenarios = [generate(seed) for seed in range(10)]
    assert any(s.fcr is not None for s in scenarios) and any(s.fcr is None for s in scenarios)
    for s in scenarios:
        assert any(t.max_discharge_w > 0 for t in s.trucks)
        assert all(s.charger_of(t).bidirectional for t in s.trucks if t.max_discharge_w > 0)
