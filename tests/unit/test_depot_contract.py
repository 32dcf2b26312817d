"""The depot's data contract (issue 12): the scenario TOML at the door, the report's JSON, the judge that recomputes
every figure of a report from its steps and the scenario (mcs_v2g/depot)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mcs_v2g.depot import DepotReport, DepotScenario, DepotScenarioError, judge, load
from mcs_v2g.depot.judge import figures
from mcs_v2g.depot.report import ChargerStep, CostBreakdown, FcrReport, StepReport, TruckReport
from mcs_v2g.depot.scenario import series_at

TINY = """\
name = "tiny"
horizon_s = 180
step_s = 60
loop_interval_s = 5

[site]
grid_import_limit_w = 100_000
grid_export_limit_w = 50_000
base_load_w = [[0, 10_000]]

[tariff]
import_eur_per_kwh = [[0, 1.2], [120, 3.0]]
export_eur_per_kwh = [[0, 1.2]]
demand_eur_per_kw = 10.0
unserved_eur_per_kwh = 2.0

[fcr]
capacity_w = 20_000
windows = [[60, 180]]
frequency_hz = [[0, 50.0], [60, 49.9], [120, 50.1]]
deadband_hz = 0.0
energy_reserve_s = 60
penalty_eur_per_kwh = 100.0

[[charger]]
id = "c1"
max_power_w = 200_000
max_current_a = 400
max_voltage_v = 800
bidirectional = true
efficiency = 0.8

[[truck]]
id = "t1"
charger = "c1"
arrival_s = 0
departure_s = 180
announced_s = 0
booked = true
battery_kwh = 100
initial_soc = 0.5
target_soc = 0.9
min_soc = 0.2
max_charge_w = 200_000
max_discharge_w = 200_000
min_power_w = 0
max_contactor_cycles = 4
"""

SECOND_TRUCK = TINY[TINY.index("[[truck]]") :].replace('"t1"', '"t2"')


def write(tmp_path: Path, text: str, name: str = "depot.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def tiny(tmp_path: Path) -> DepotScenario:
    return load(write(tmp_path, TINY))


# ------------------------------------------------------------------------------------------- the default


def test_default_scenario_has_what_the_issue_asks() -> None:
    s = load(None)
    assert (s.horizon_s, s.step_s, s.loop_interval_s) == (86_400, 60, 5.0)
    assert len(s.trucks) >= 8 and len(s.chargers) >= 4
    per_charger = {c.id: [t for t in s.trucks if t.charger == c.id] for c in s.chargers}
    assert any(len(trucks) >= 2 for trucks in per_charger.values())  # shared in sequence (the load checked overlaps)
    demand = max(
        series_at(s.site.base_load_w, t)
        + sum(
            min(tr.max_charge_w, s.charger_of(tr).max_power_w) for tr in s.trucks if tr.arrival_s <= t < tr.departure_s
        )
        for t in s.step_starts()
    )
    assert demand > s.site.grid_import_limit_w
    evening = series_at(s.tariff.import_eur_per_kwh, 68_400)  # 19:00
    assert evening == max(p for _, p in s.tariff.import_eur_per_kwh) > series_at(s.tariff.import_eur_per_kwh, 3_600)
    assert s.fcr is not None and s.fcr.windows
    assert any(t.announced_s == t.arrival_s for t in s.trucks)  # a walk-in
    assert any(t.announced_s < t.arrival_s for t in s.trucks)
    assert [t.id for t in s.trucks if not s.feasible(t)] == ["t5"]
    assert any(t.max_discharge_w > 0 for t in s.trucks)


def test_feasibility_and_energy_needed(tmp_path: Path) -> None:
    s = tiny(tmp_path)
    (t1,) = s.trucks
    assert t1.energy_needed_wh == pytest.approx(40_000.0)  # (0.9 - 0.5) x 100 kWh
    assert not s.feasible(t1)  # 200 kW x 180 s = 10 kWh
    assert s.feasible(replace(t1, departure_s=720.0))  # 200 kW x 720 s = 40 kWh
    assert list(s.step_starts()) == [0, 60, 120]
    assert series_at(s.tariff.import_eur_per_kwh, 119.9) == 1.2 and series_at(s.tariff.import_eur_per_kwh, 120) == 3.0


def test_frequency_from_a_csv_next_to_the_toml(tmp_path: Path) -> None:
    (tmp_path / "hz.csv").write_text("t_s,hz\n0,50.0\n1,49.95\n\n2,50.02\n", encoding="utf-8")
    s = load(
        write(tmp_path, TINY.replace("frequency_hz = [[0, 50.0], [60, 49.9], [120, 50.1]]", 'frequency_hz = "hz.csv"'))
    )
    assert s.fcr is not None and s.fcr.frequency_hz == ((0.0, 50.0), (1.0, 49.95), (2.0, 50.02))


# ------------------------------------------------------------------------------------------- bad inputs

HZ = "frequency_hz = [[0, 50.0], [60, 49.9], [120, 50.1]]"
BAD: list[tuple[str, Any, str]] = [
    ("unknown top-level key", lambda t: 'colour = "red"\n' + t, "colour: unknown key"),
    ("unknown section", lambda t: t + "\n[extra]\nx = 1\n", "[extra]: unknown section"),
    ("unknown key in a section", lambda t: t.replace("[site]\n", "[site]\ncolour = 1\n"), "site.colour: unknown key"),
    ("unknown key in a truck", lambda t: t + "colour = 1\n", "truck[0].colour: unknown key"),
    ("key in the wrong place", lambda t: "base_load_w = 1\n" + t, "base_load_w: belongs in [site]"),
    ("string for a number", lambda t: t.replace("horizon_s = 180", 'horizon_s = "180"'), "horizon_s: must be a whole"),
    ("boolean for a number", lambda t: t.replace("battery_kwh = 100", "battery_kwh = true"), "truck[0].battery_kwh"),
    ("missing key", lambda t: t.replace("battery_kwh = 100\n", ""), "truck[0].battery_kwh: missing"),
    ("SoC out of range", lambda t: t.replace("initial_soc = 0.5", "initial_soc = 1.2"), "truck[0].initial_soc"),
    ("negative power", lambda t: t.replace("max_charge_w = 200_000", "max_charge_w = -1"), "truck[0].max_charge_w"),
    ("efficiency above 1", lambda t: t.replace("efficiency = 0.8", "efficiency = 1.1"), "charger[0].efficiency"),
    ("bad id", lambda t: t.replace('id = "c1"', 'id = "c/1"'), "charger[0].id: must be 1 to 64"),
    (
        "series not at 0",
        lambda t: t.replace("[[0, 10_000]]", "[[10, 10_000]]"),
        "site.base_load_w: must start at t = 0",
    ),
    (
        "series unsorted",
        lambda t: t.replace("[[0, 1.2], [120, 3.0]]", "[[0, 1.2], [120, 3.0], [60, 1.0]]"),
        "tariff.import_eur_per_kwh: times must increase",
    ),
    ("series empty", lambda t: t.replace("[[0, 10_000]]", "[]"), "site.base_load_w"),
    ("negative base load", lambda t: t.replace("[[0, 10_000]]", "[[0, -1]]"), "site.base_load_w[0][1]"),
    ("frequency beyond the grid", lambda t: t.replace("49.9]", "44.0]"), "fcr.frequency_hz[1][1]"),
    ("deadband beyond full droop", lambda t: t.replace("deadband_hz = 0.0", "deadband_hz = 0.2"), "fcr.deadband_hz"),
    ("FCR windows overlap", lambda t: t.replace("[[60, 180]]", "[[0, 120], [60, 180]]"), "fcr.windows: windows must"),
    ("FCR window past the horizon", lambda t: t.replace("[[60, 180]]", "[[60, 240]]"), "fcr.windows: must end by"),
    ("FCR CSV missing", lambda t: t.replace(HZ, 'frequency_hz = "none.csv"'), "fcr.frequency_hz: cannot read"),
    (
        "step does not divide horizon",
        lambda t: t.replace("step_s = 60", "step_s = 70"),
        "step_s: must divide horizon_s",
    ),
    ("loop longer than a step", lambda t: t.replace("step_s = 60", "step_s = 4"), "loop_interval_s: must not exceed"),
    ("no trucks", lambda t: t[: t.index("[[truck]]")], "truck: must be one or more [[truck]] tables"),
    ("a [charger] table", lambda t: t.replace("[[charger]]", "[charger]"), "charger: must be one or more"),
    (
        "unknown charger",
        lambda t: t.replace('charger = "c1"', 'charger = "c9"'),
        "truck[0].charger: must name a [[charger]]",
    ),
    (
        "charger id twice",
        lambda t: t.replace("[[truck]]", TINY[TINY.index("[[charger]]") : TINY.index("[[truck]]")] + "[[truck]]"),
        "charger[1].id: repeats charger[0]",
    ),
    (
        "truck id twice",
        lambda t: (
            t.replace("departure_s = 180", "departure_s = 60")
            + SECOND_TRUCK.replace('"t2"', '"t1"').replace("_s = 0", "_s = 120")
        ),
        "truck[1].id: repeats truck[0]",
    ),
    (
        "arrival not before departure",
        lambda t: t.replace("arrival_s = 0", "arrival_s = 180"),
        "truck[0].departure_s: must be after arrival_s",
    ),
    (
        "departure after the horizon",
        lambda t: t.replace("departure_s = 180", "departure_s = 240"),
        "truck[0].departure_s: must not be after horizon_s",
    ),
    (
        "announced after arrival",
        lambda t: t.replace("arrival_s = 0", "arrival_s = 60").replace("announced_s = 0", "announced_s = 90"),
        "truck[0].announced_s: must not be after arrival_s",
    ),
    (
        "min SoC above target",
        lambda t: t.replace("min_soc = 0.2", "min_soc = 0.95"),
        "truck[0].min_soc: must not be above target_soc",
    ),
    ("min power above max", lambda t: t.replace("min_power_w = 0", "min_power_w = 300_000"), "truck[0].min_power_w"),
    (
        "V2G on a one-way charger",
        lambda t: t.replace("bidirectional = true", "bidirectional = false"),
        "truck[0].max_discharge_w: must be 0",
    ),
    (
        "windows overlap on a charger",
        lambda t: (
            t.replace("departure_s = 180", "departure_s = 100")
            + SECOND_TRUCK.replace("arrival_s = 0", "arrival_s = 90")
        ),
        "truck[1].arrival_s: overlaps truck[0]",
    ),
    (
        "two trucks in one step",
        lambda t: (
            t.replace("departure_s = 180", "departure_s = 90")
            + SECOND_TRUCK.replace("arrival_s = 0", "arrival_s = 100").replace("announced_s = 0", "announced_s = 100")
        ),
        "truck[1].arrival_s: shares a 60 s step",
    ),
    (
        "charger voltage below its lowest output",
        lambda t: t.replace("max_voltage_v = 800", "max_voltage_v = 10"),
        "charger[0].max_voltage_v: must be above 200 V",
    ),
    (
        "charger current that cannot give its power",
        lambda t: t.replace("max_current_a = 400", "max_current_a = 1"),
        "charger[0].max_current_a: cannot give max_power_w (200000 W) at max_voltage_v (800 V): needs at least 250 A",
    ),
    ("not TOML", lambda t: t + "\n= oops\n", "not a TOML file"),
    (
        "export paid above the import price",  # the LP would import and export at once for a profit
        lambda t: t.replace("export_eur_per_kwh = [[0, 1.2]]", "export_eur_per_kwh = [[0, 1.2], [60, 2.0]]"),
        "tariff.export_eur_per_kwh: must not be above the import price at any step (the plan would import and "
        "export at once for a profit), got 2 > 1.2 EUR/kWh at t = 60 s",
    ),
    ("NUL in the CSV path", lambda t: t.replace(HZ, 'frequency_hz = "a\\u0000b"'), "fcr.frequency_hz: cannot read"),
    (
        "contactor budget beyond any contactor",
        lambda t: t.replace("max_contactor_cycles = 4", "max_contactor_cycles = 1000000000000000000000000000000"),
        "truck[0].max_contactor_cycles",
    ),
]


@pytest.mark.parametrize(("rule", "edit", "says"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_scenario_is_refused_naming_the_file_and_key(tmp_path: Path, rule: str, edit: Any, says: str) -> None:
    path = write(tmp_path, edit(TINY))
    with pytest.raises(DepotScenarioError) as caught:
        load(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert says in message, message


def test_a_bad_series_item_is_the_one_problem_named(tmp_path: Path) -> None:
    """Not also 'at least 1 item': the series is too short only because its one item is refused."""
    with pytest.raises(DepotScenarioError) as caught:
        load(write(tmp_path, TINY.replace("[[0, 10_000]]", "[[0, -5]]")))
    assert str(caught.value).endswith("site.base_load_w[0][1]: must be greater than or equal to 0, got -5")


def test_an_export_price_above_import_inside_a_step_is_never_read(tmp_path: Path) -> None:
    """Prices are read at each step's start: a stretch that no step starts in does not count."""
    text = TINY.replace("export_eur_per_kwh = [[0, 1.2]]", "export_eur_per_kwh = [[0, 1.2], [20, 9.0], [50, 1.0]]")
    assert load(write(tmp_path, text)).tariff.export_eur_per_kwh[1] == (20.0, 9.0)


def test_a_scenario_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + TINY.encode())
    assert load(path).name == "tiny"


def test_a_bad_frequency_csv_row_is_named_by_its_line(tmp_path: Path) -> None:
    (tmp_path / "hz.csv").write_text("t_s,hz\n0,50.0\n1;49.9\n", encoding="utf-8")
    with pytest.raises(DepotScenarioError, match=r"fcr\.frequency_hz: .*hz\.csv line 3: must be t_s,hz"):
        load(write(tmp_path, TINY.replace(HZ, 'frequency_hz = "hz.csv"')))


def test_fcr_is_optional(tmp_path: Path) -> None:
    text = TINY[: TINY.index("[fcr]")] + TINY[TINY.index("[[charger]]") :]
    assert load(write(tmp_path, text)).fcr is None


# ------------------------------------------------------------------------------- a hand-computed report

H = 1 / 60  # hours in a 60 s step
SOC = (0.52, 0.52 - 100 * H / 100, 0.52 - 100 * H / 100 + 60 * H / 100)  # +120 kW, -100 kW, +60 kW on 100 kWh
IMPORT_EUR = (160 * 1.2 + 85 * 3.0) * H  # kW x EUR/kWh x h: steps 0 and 2 import
EXPORT_EUR = 70 * 1.2 * H  # step 1 exports 70 kW
DEMAND_EUR = 10.0 * (160 + 0 + 85) / 3  # the 15-min window holds the 180 s horizon
UNSERVED_KWH = (0.9 - SOC[-1]) * 100
FCR_REQUIRED_KWH = (10 + 10) * H  # 50 Hz -/+ 0.1 Hz without deadband: half of 20 kW, in steps 1 and 2
FCR_DELIVERED_KWH = (10 + 5) * H
PENALTY_EUR = 100.0 * (FCR_REQUIRED_KWH - FCR_DELIVERED_KWH)


def step(t_s: int, price: float, grid_w: float, fcr_w: float, power_w: float, soc: float) -> StepReport:
    return StepReport(t_s, price, 1.2, 10_000.0, grid_w, fcr_w, {"c1": ChargerStep("t1", power_w, soc, power_w)})


def hand_report() -> DepotReport:
    return DepotReport(
        result="violations",
        scenario="tiny",
        cost_eur=CostBreakdown(
            total=IMPORT_EUR - EXPORT_EUR + DEMAND_EUR + UNSERVED_KWH * 2.0 + PENALTY_EUR,
            import_=IMPORT_EUR,
            export_revenue=EXPORT_EUR,
            demand=DEMAND_EUR,
            unserved=UNSERVED_KWH * 2.0,
            fcr_penalty=PENALTY_EUR,
        ),
        peak_import_w=160_000.0,
        peak_15min_import_w=(160_000 + 85_000) / 3,
        grid_import_violation_s=60.0,  # step 0: 160 kW over the 100 kW limit
        grid_export_violation_s=60.0,  # step 1: 70 kW out over the 50 kW limit
        trucks=(
            TruckReport(
                id="t1",
                charger="c1",
                energy_in_kwh=(120 + 60) * H,
                energy_out_kwh=100 * H,
                soc_at_departure=SOC[-1],
                target_met=False,
                unserved_kwh=UNSERVED_KWH,
                min_soc_seen=0.5,
                contactor_cycles=1,
                direction_changes=2,
                session_result="ok",
                messages=40,
            ),
        ),
        fcr=FcrReport(FCR_REQUIRED_KWH, FCR_DELIVERED_KWH, FCR_DELIVERED_KWH / FCR_REQUIRED_KWH),
        wall_s=0.01,
        simulated_s=180.0,
        steps=(
            # grid = base load + DC / 0.8 charging, DC x 0.8 discharging
            step(0, 1.2, 10_000 + 120_000 / 0.8, 0.0, 120_000.0, SOC[0]),
            step(60, 1.2, 10_000 - 100_000 * 0.8, -10_000.0, -100_000.0, SOC[1]),
            step(120, 3.0, 10_000 + 60_000 / 0.8, 5_000.0, 60_000.0, SOC[2]),
        ),
    )


def test_the_judge_accepts_the_hand_computed_report(tmp_path: Path) -> None:
    assert judge(tiny(tmp_path), hand_report()) == []


def test_the_report_round_trips_through_json_with_the_issues_keys() -> None:
    report = hand_report()
    data = json.loads(report.to_json())
    assert list(data) == [
        "result", "scenario", "cost_eur", "peak_import_w", "peak_15min_import_w", "grid_import_violation_s",
        "grid_export_violation_s", "trucks", "fcr", "wall_s", "simulated_s", "steps",
    ]  # fmt: skip
    assert list(data["cost_eur"]) == ["total", "import", "export_revenue", "demand", "unserved", "fcr_penalty"]
    assert list(data["steps"][0]) == [
        "t_s", "price_import", "price_export", "base_load_w", "grid_w", "fcr_w", "chargers",
    ]  # fmt: skip
    assert list(data["steps"][0]["chargers"]["c1"]) == ["truck", "power_w", "soc", "setpoint_w"]
    assert DepotReport.from_json(report.to_json()) == report


@pytest.mark.parametrize(
    "bad",
    [
        lambda d: d.update(extra=1),
        lambda d: d["cost_eur"].pop("import"),
        lambda d: d["trucks"][0].update(messages=1.5),
        lambda d: d.update(peak_import_w="1"),
        lambda d: d["steps"][0]["chargers"]["c1"].update(power_w=True),
    ],
)
def test_a_malformed_report_is_refused(bad: Any) -> None:
    data = json.loads(hand_report().to_json())
    bad(data)
    with pytest.raises(ValidationError):
        DepotReport.from_json(json.dumps(data))


FIGURES = [
    (("cost_eur", "total"), "cost_eur.total:"),
    (("cost_eur", "import"), "cost_eur.import:"),
    (("cost_eur", "export_revenue"), "cost_eur.export_revenue:"),
    (("cost_eur", "demand"), "cost_eur.demand:"),
    (("cost_eur", "unserved"), "cost_eur.unserved:"),
    (("cost_eur", "fcr_penalty"), "cost_eur.fcr_penalty:"),
    (("peak_import_w",), "peak_import_w:"),
    (("peak_15min_import_w",), "peak_15min_import_w:"),
    (("grid_import_violation_s",), "grid_import_violation_s:"),
    (("grid_export_violation_s",), "grid_export_violation_s:"),
    (("trucks", 0, "energy_in_kwh"), "trucks[t1].energy_in_kwh:"),
    (("trucks", 0, "energy_out_kwh"), "trucks[t1].energy_out_kwh:"),
    (("trucks", 0, "soc_at_departure"), "trucks[t1].soc_at_departure:"),
    (("trucks", 0, "unserved_kwh"), "trucks[t1].unserved_kwh:"),
    (("trucks", 0, "min_soc_seen"), "trucks[t1].min_soc_seen:"),
    (("fcr", "required_kwh"), "fcr.required_kwh:"),
    (("fcr", "delivered_kwh"), "fcr.delivered_kwh:"),
    (("fcr", "availability"), "fcr.availability:"),
    (("simulated_s",), "simulated_s:"),
]


@pytest.mark.parametrize(("where", "line"), FIGURES, ids=[w[1] for w in FIGURES])
def test_a_figure_off_by_one_percent_is_named(tmp_path: Path, where: tuple[Any, ...], line: str) -> None:
    data = json.loads(hand_report().to_json())
    parent = data
    for key in where[:-1]:
        parent = parent[key]
    parent[where[-1]] *= 1.01
    lines = judge(tiny(tmp_path), DepotReport.from_json(json.dumps(data)))
    assert [x for x in lines if x.startswith(line)], lines
    assert all(x.startswith(line) for x in lines), lines  # only that figure disagrees


def perturbed_step(change: Any) -> DepotReport:
    data = json.loads(hand_report().to_json())
    change(data)
    return DepotReport.from_json(json.dumps(data))


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            lambda d: d["steps"][2].update(grid_w=d["steps"][2]["grid_w"] * 0.99),
            "steps t_s=120: grid_w 84150, base load and chargers",
        ),
        (lambda d: d["steps"][0].update(price_import=0.12), "steps t_s=0: price_import 0.12, the scenario says 1.2"),
        (lambda d: d["steps"][1].update(base_load_w=0), "steps t_s=60: base_load_w"),
        (lambda d: d["steps"][0].update(fcr_w=1000), "steps t_s=0: fcr_w 1000 outside the FCR windows"),
        (lambda d: d["steps"][0]["chargers"]["c1"].update(soc=0.6), "steps t_s=0 c1: SoC gained 10 kWh"),
        (lambda d: d["steps"][1]["chargers"]["c1"].update(truck=None), "steps t_s=60 c1: truck None"),
        (lambda d: d.update(steps=d["steps"][:2]), "steps: 2 steps at 0 .. 60; the scenario needs 3"),
        (lambda d: d["steps"][1]["chargers"].update(c2=d["steps"][1]["chargers"]["c1"]), "unknown ['c2']"),
        (lambda d: d["steps"][1].update(chargers={}), "chargers missing ['c1']"),
        (lambda d: d["trucks"][0].update(target_met=True), "trucks[t1].target_met: report true"),
        (lambda d: d.update(scenario="other"), "scenario: report 'other'"),
        (lambda d: d.update(trucks=[]), "trucks: report []"),
        (lambda d: d.update(result="ok"), "result: report ok, but the steps violate a grid limit"),
    ],
)
def test_steps_that_disagree_with_the_scenario_are_named(tmp_path: Path, change: Any, says: str) -> None:
    lines = judge(tiny(tmp_path), perturbed_step(change))
    assert any(says in x for x in lines), lines


def test_ok_is_refused_while_a_feasible_target_is_missed(tmp_path: Path) -> None:
    s = tiny(tmp_path)
    report = replace(hand_report(), result="ok")
    assert not any("feasible targets" in x for x in judge(s, report))  # t1's 40 kWh in 180 s: infeasible
    feasible = replace(s, trucks=(replace(s.trucks[0], target_soc=0.52),))  # 2 kWh: feasible, and 0.513 misses it
    assert any("feasible targets are missed (t1)" in x for x in judge(feasible, report))


def test_the_judge_runs_on_the_default_scenario() -> None:
    """An idle day of the default depot (nobody charges): its own figures agree, across 1 440 steps."""
    s = load(None)
    steps = tuple(
        StepReport(
            t,
            series_at(s.tariff.import_eur_per_kwh, t),
            series_at(s.tariff.export_eur_per_kwh, t),
            series_at(s.site.base_load_w, t),
            series_at(s.site.base_load_w, t),
            0.0,
            {
                c.id: ChargerStep(tr.id, 0.0, tr.initial_soc, 0.0)
                if (tr := s.occupancy[c.id].get(k))
                else ChargerStep(None, 0.0, None, 0.0)
                for c in s.chargers
            },
        )
        for k, t in enumerate(s.step_starts())
    )
    f = figures(s, steps)
    trucks = tuple(
        TruckReport(
            t.id, t.charger, 0.0, 0.0, t.initial_soc, False, f.trucks[t.id].unserved_kwh, t.initial_soc, 0, 0, "ok", 0
        )
        for t in s.trucks
    )
    report = DepotReport(
        "targets missed",
        s.name,
        f.cost,
        f.peak_import_w,
        f.peak_15min_import_w,
        0.0,
        0.0,
        trucks,
        f.fcr,
        0.0,
        86_400.0,
        steps,
    )
    assert judge(s, report) == []
    assert f.fcr.availability == 0.0 and f.fcr.required_kwh > 0
    assert f.peak_import_w == 300_000.0
