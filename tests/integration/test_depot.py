"""The depot on one virtual clock (issue 12): every session a full -20 exchange, the site EMS steering them.

The scenario (tests/data/depot_small.toml) is small enough to run in seconds and has what the EMS must handle:
a connection below what the trucks could draw, a walk-in, an infeasible target, an FCR window, V2G at a price
peak, minimum powers and contactor-cycle budgets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from evse_emulator.energy.ems.site import SiteEms
from mcs_v2g.cli import main
from mcs_v2g.depot.judge import judge
from mcs_v2g.depot.parallel import WorkerFailed, run_parallel, split_chargers
from mcs_v2g.depot.report import DepotReport
from mcs_v2g.depot.run import DepotRun, run_depot
from mcs_v2g.depot.scenario import DepotScenario, load

SMALL = Path(__file__).parents[1] / "data" / "depot_small.toml"


@pytest.fixture(scope="module")
def scenario() -> DepotScenario:
    return load(SMALL)


@pytest.fixture(scope="module")
def run(scenario: DepotScenario) -> DepotRun:
    return run_depot(scenario)


@pytest.fixture(scope="module")
def report(run: DepotRun) -> DepotReport:
    return run.report()


def test_the_report_agrees_with_its_steps_and_reads_back(scenario: DepotScenario, report: DepotReport) -> None:
    assert judge(scenario, report) == []
    assert DepotReport.from_json(report.to_json()) == report
    assert len(report.steps) == scenario.horizon_s // scenario.step_s


def test_every_feasible_target_is_met_and_the_run_says_ok(scenario: DepotScenario, report: DepotReport) -> None:
    assert report.result == "ok"
    for truck in report.trucks:
        spec = next(t for t in scenario.trucks if t.id == truck.id)
        assert truck.target_met == scenario.feasible(spec), truck


def test_an_infeasible_target_is_known_when_the_truck_is_announced(run: DepotRun) -> None:
    assert run.ems is not None
    assert set(run.ems.infeasible) == {"t4"}
    said = [t for t, text in run.ems.events if text.startswith("t4: target")]
    assert said == [3600]  # t4's announced_s, long before it arrives at 9600 s


def test_a_walk_in_is_known_only_from_its_arrival(run: DepotRun) -> None:
    assert run.ems is not None
    first = min(t for t, text in run.ems.events if "t2" in text)
    assert first == 600
    planned_before = [text for t, text in run.ems.events if t < 600 and "2 trucks" in text]
    assert planned_before == []


def test_the_grid_limit_holds_and_binds(scenario: DepotScenario, report: DepotReport) -> None:
    limit = scenario.site.grid_import_limit_w
    assert report.grid_import_violation_s == 0 and report.grid_export_violation_s == 0
    assert max(s.grid_w for s in report.steps) <= limit
    assert report.peak_import_w > 0.95 * limit  # the trucks together would draw more: the EMS held them


def test_every_truck_ran_full_sessions_within_its_contactor_budget(
    scenario: DepotScenario, report: DepotReport
) -> None:
    for truck in report.trucks:
        spec = next(t for t in scenario.trucks if t.id == truck.id)
        assert truck.session_result == "ok"
        assert truck.messages > 50  # SessionSetup .. charge loops .. SessionStop, V2GTP and EXI each
        assert 1 <= truck.contactor_cycles <= spec.max_contactor_cycles


def test_a_paused_session_is_rejoined(run: DepotRun, report: DepotReport) -> None:
    paused = [stay for stay in run.stays.values() if any(c.paused for c in stay.closes)]
    assert paused, "no session paused: the scenario's minimum powers should make the EMS pause one"
    for stay in paused:
        assert len(stay.closes) >= 2 and stay.closes[-1].ok  # it came back and ended cleanly
        assert stay.truck is not None and stay.truck.battery.contactors.session_cycles >= 2


def test_fcr_is_delivered_inside_its_window_only(scenario: DepotScenario, report: DepotReport) -> None:
    """The droop that lowers the import (49.9 Hz, 600-1200 s) is delivered in full; the one that raises it as far as
    the 15-min peak allows (`test_the_droop_raises_the_import_only_as_far_as_each_windows_peak_allows`); none
    outside the window."""
    assert scenario.fcr is not None and report.fcr.required_kwh > 0
    asked = [(s.fcr_w, scenario.fcr.required_mean_w(s.t_s, s.t_s + scenario.step_s)) for s in report.steps]
    lowering = [(-w, -a) for w, a in asked if a < 0]
    assert sum(min(max(w, 0.0), a) for w, a in lowering) >= 0.9 * sum(a for _, a in lowering) > 0
    assert all(abs(s.fcr_w) <= 1.0 for s in report.steps if s.t_s >= 3600)


def test_direction_changes_are_bounded_by_the_dwell(scenario: DepotScenario, report: DepotReport) -> None:
    for truck in report.trucks:
        spec = next(t for t in scenario.trucks if t.id == truck.id)
        assert truck.direction_changes <= (spec.departure_s - spec.arrival_s) / 300 + 1


def test_no_energy_flows_without_a_truck(report: DepotReport) -> None:
    idle = [c.power_w for s in report.steps for c in s.chargers.values() if c.truck is None]
    assert idle and max(abs(p) for p in idle) <= 1.0


def test_the_command_writes_the_report_and_the_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, png = tmp_path / "r.json", tmp_path / "p.png"
    assert main(["depot", "--scenario", str(SMALL), "--json", str(out), "--plot", str(png)]) == 0
    text = capsys.readouterr()
    assert "result: ok" in text.out and "t4" in text.out and "infeasible" in text.out
    assert "t4: target 90% cannot be met" in text.err  # said at announcement, while the run goes on
    assert json.loads(out.read_text())["result"] == "ok"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_summary_is_all_the_command_prints_on_stdout() -> None:
    """Nothing from a library below (HiGHS prints a banner from C++ on its first instance) precedes the table."""
    done = subprocess.run(
        [sys.executable, "-m", "mcs_v2g", "depot", "--scenario", str(SMALL)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("truck charger booked"), done.stdout[:300]
    assert "HiGHS" not in done.stdout + done.stderr


PLAN_ONE_TRUCK = """
import sys
from evse_emulator.energy.ems import Charger, SitePlan, Truck, plan
x = SitePlan(
    step_s=60, t_s=(0.0, 60.0), import_eur_per_kwh=(0.2, 0.1), export_eur_per_kwh=(0.0, 0.0), base_load_w=(0.0, 0.0),
    import_limit_w=(1e6, 1e6), export_limit_w=(1e6, 1e6), chargers=(Charger("c1", 1e5),),
    trucks=(Truck("t1", "c1", 0, 1e9, 1e5, 0.5, 0.51, max_charge_w=1e5),), unserved_eur_per_kwh=2.0,
)
sys.stderr.write(plan(x).status)
"""


def test_a_process_without_stdout_still_plans() -> None:
    """Keeping HiGHS's banner off stdout is best effort: a daemon started with stdout closed gets its plans."""
    done = subprocess.run(
        [sys.executable, "-c", PLAN_ONE_TRUCK],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=lambda: os.close(1),  # the child starts with no stdout
    )
    assert done.returncode == 0 and done.stderr == "optimal", done.stderr


def test_the_command_with_two_workers_writes_the_same_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], report: DepotReport
) -> None:
    out = tmp_path / "r.json"
    assert main(["depot", "--scenario", str(SMALL), "--workers", "2", "--json", str(out)]) == 0
    assert "t4: target 90% cannot be met" in capsys.readouterr().err  # the EMS's events still reach the display
    assert replace(DepotReport.from_json(out.read_text()), wall_s=0.0) == replace(report, wall_s=0.0)


def test_a_bad_number_of_workers_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["depot", "--scenario", str(SMALL), "--workers", "0"])
    assert exit_.value.code == 2
    assert "--workers: a number of processes >= 1, not '0'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--speed", "nan"], "--speed: speed must be a positive number (or 'max')"),
        (["--speed", "inf"], "--speed: speed must be a positive number (or 'max')"),
        (["--chargers", ","], "--chargers: one or more charger ids, comma-separated"),
        (["--chargers", ""], "--chargers: one or more charger ids, comma-separated"),
        (
            ["--ems", "external", "--speed", "max", "--mqtt", "mqtt://127.0.0.1:1"],
            "--ems external: the other EMS answers in wall time",
        ),
        (
            ["--ems", "external", "--fcr-strict", "--mqtt", "mqtt://127.0.0.1:1"],
            "--fcr-strict: only with the EMS in this process",
        ),
        (["--json", "/proc/depot.json"], "--json /proc/depot.json: "),  # refused before the run, not after it
    ],
)
def test_a_bad_depot_option_is_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    try:
        status = main(["depot", "--scenario", str(SMALL), *args])
    except SystemExit as exit_:  # argparse's own usage errors
        status = exit_.code  # type: ignore[assignment]
    assert status == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--speed", "100"], "--workers plays as fast as it computes: not with --speed"),
        (["--mqtt", "mqtt://127.0.0.1:1"], "--workers is for one process's depot"),
    ],
)
def test_workers_with_what_they_cannot_do_is_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    assert main(["depot", "--scenario", str(SMALL), "--workers", "2", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0]


def test_a_small_pack_behind_a_megawatt_charger_meets_its_target() -> None:
    """A review's reproducer: it ended 0.5 kWh short, below the drift that re-plans. Whether a run reaches the rule
    that catches it (a truck below its target where the plan has it there) depends on the plan's route (the loss
    model, the FCR droop); the rule itself has its unit test in `test_ems_site.py`."""
    scenario = load(Path(__file__).parents[1] / "data" / "depot_small_pack.toml")
    report = run_depot(scenario).report()
    assert report.result == "ok" and all(t.target_met for t in report.trucks), report.trucks
    assert judge(scenario, report) == []


def test_a_truck_below_its_target_that_cannot_take_more_is_not_replanned_every_step(tmp_path: Path) -> None:
    """The small pack with a 300 kW minimum power: near full its BMS takes less than that, so it stays paused a
    few kWh short; the EMS says so once per shortfall, not at every step until it leaves (a review: 10 re-plans)."""
    text = (Path(__file__).parents[1] / "data" / "depot_small_pack.toml").read_text()
    first = text.index("[[truck]]")
    truck = text[first:].replace("departure_s = 3000", "departure_s = 3600", 1)
    truck = truck.replace("min_power_w = 30_000", "min_power_w = 300_000", 1)
    truck = truck.replace("max_contactor_cycles = 4", "max_contactor_cycles = 40", 1)
    path = tmp_path / "min_power.toml"
    path.write_text(text[:first] + truck)
    run = run_depot(load(path))
    below = [t for t, event in run.ems.events if "t1" in event and "below its target" in event]
    assert 1 <= len(below) <= 3, below
    assert judge(run.scenario, run.report()) == []


def test_an_uncontrolled_depot_exceeds_the_limit_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["depot", "--scenario", str(SMALL), "--ems", "uncontrolled"]) == 1
    assert "grid import limit exceeded" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name = 1\n", "name"),
        ('name = "x"\nhorizon_s = 600\nstep_s = 60\nloop_interval_s = 5\nsurprise = 1\n', "surprise"),
    ],
)
def test_a_bad_scenario_is_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    assert main(["depot", "--scenario", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and expected in err[0]


def test_scheduled_mode_sends_the_plan_with_price_levels_and_renegotiates(scenario: DepotScenario) -> None:
    run = run_depot(scenario, control="scheduled")
    report = run.report()
    assert judge(scenario, report) == []
    assert report.grid_import_violation_s == 0
    visits = [v for o in run.outlets.values() for v in o.visits]
    assert all(v.priced_schedules >= 1 for v in visits)  # every ScheduleExchangeRes carried price levels
    assert sum(v.renegotiations for v in visits) >= 1  # a changed plan reached a truck by renegotiation
    for truck in report.trucks:
        spec = next(t for t in scenario.trucks if t.id == truck.id)
        assert truck.session_result == "ok"
        assert truck.target_met or not scenario.feasible(spec), truck
    assert report.fcr.delivered_kwh == 0  # the EV drives a Scheduled session: no droop at the charger


def test_a_silent_truck_is_cut_at_departure_in_virtual_time(
    scenario: DepotScenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t2's EVCC never says a word: the charger gives up on it, the truck leaves at departure, the depot goes on
    (no wall-clock wait: the timers are the virtual clock's) and the run is not ok because of it."""
    import asyncio

    import mcs_v2g.depot.run as depot_run

    real = depot_run.run_evcc_on

    async def silent_for_t2(reader, writer, controller, config, *, clock):  # type: ignore[no-untyped-def]
        if controller.vin == "t2":
            await asyncio.Event().wait()  # hangs: never sends, never closes
        return await real(reader, writer, controller, config, clock=clock)

    monkeypatch.setattr(depot_run, "run_evcc_on", silent_for_t2)
    report = run_depot(scenario).report()
    assert judge(scenario, report) == []
    t2 = next(t for t in report.trucks if t.id == "t2")
    assert "had not ended" in t2.session_result and t2.energy_in_kwh == 0
    assert report.result != "ok" and "t2:" in report.result
    others = [t for t in report.trucks if t.id != "t2"]
    assert all(t.session_result == "ok" for t in others)


def test_the_droop_raises_the_import_only_as_far_as_each_windows_peak_allows(
    scenario: DepotScenario, run: DepotRun, report: DepotReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 50.12 Hz (1800-2400 s) the droop asks mcs1 for 58 % of its 150 kW share; the window has room for the
    plan's tenth of the capacity only, so the FCR delivered there stays at what each step's setpoint allows (the
    judge counts the rest as not delivered, at the scenario's penalty), the window 1800-2700 s imports less than
    with the whole droop, and the run is still ok. (On this day the peak comes later, from trucks the EMS learns of
    later, so the cap saves nothing here: the README's figures are over 46 days.)"""
    decisions = run.backend.decisions  # type: ignore[attr-defined]
    capped = 0
    for records, decision in zip(run.records, decisions, strict=True):
        for r in records:
            sp = decision.setpoints.get(r.charger)
            if sp is None or sp.fcr_up_w is None:
                continue
            assert r.fcr_w <= sp.fcr_up_w + 1.0
            capped += int(1800 <= r.t_s < 2400 and sp.fcr_up_w < 0.5 * sp.fcr_w)
    assert capped >= 5 and report.result == "ok"
    monkeypatch.setattr(SiteEms, "_droop_up_w", lambda *_: {})
    whole = run_depot(scenario).report()

    def window_kw(r: DepotReport) -> float:
        return sum(max(s.grid_w, 0.0) for s in r.steps if 1800 <= s.t_s < 2700) / 15 / 1000

    assert window_kw(report) < window_kw(whole) - 5
    assert report.fcr.availability < whole.fcr.availability


def test_fcr_strict_counts_each_window_with_the_droop_at_its_room_and_still_meets_every_target(
    scenario: DepotScenario,
) -> None:
    """With --fcr-strict the EMS's windows hold the metered import less what each charger's droop moved at the grid
    (the rest of its DC power through its efficiency instead of its grid power) plus, in a step where the EMS gave
    a charger an FCR share, the room the plan keeps for it; its FCR steps at 49.9 and 50.12 Hz differ from the
    meter, and the run is still ok."""
    strict = run_depot(scenario, fcr_strict=True)
    ems, done = strict.ems, strict.report()
    assert ems is not None and ems.fcr_strict and done.result == "ok"
    assert scenario.fcr is not None
    decisions = strict.backend.decisions  # type: ignore[attr-defined]
    assert len(decisions) == len(done.steps) == len(strict.records)
    charger = {c.id: c for c in scenario.chargers}
    counted: dict[int, float] = {}
    metered: dict[int, float] = {}
    for s, records, decision in zip(done.steps, strict.records, decisions, strict=True):
        rest_w = sum(charger[r.charger].grid_w(r.power_w - r.fcr_w) for r in records)
        held = any(sp.fcr_w or sp.fcr_down_w for sp in decision.setpoints.values())
        room_w = ems.fcr_peak_share * scenario.fcr.capacity_w if held else 0.0
        window = int(s.t_s // 900)
        counted[window] = counted.get(window, 0.0) + (max(s.base_load_w + rest_w, 0.0) + room_w) / 60
        metered[window] = metered.get(window, 0.0) + max(s.grid_w, 0.0) / 60
    assert ems._imports == pytest.approx(counted, rel=1e-9, abs=1e-6)
    assert all(sp.fcr_up_w is None for d in decisions for sp in d.setpoints.values())  # the whole droop always
    assert done.fcr.availability >= 0.9
    assert any(abs(counted[w] - metered[w]) > 1000 for w in counted)  # the droop moved > 1 kWh in some window


def test_two_worker_processes_give_the_one_process_report(scenario: DepotScenario, report: DepotReport) -> None:
    """`--workers 2`: the chargers over two processes in lockstep with the EMS here; every step and figure equal."""
    split = run_parallel(scenario, 2)
    assert len(split_chargers(scenario, 2)) == 2
    assert replace(split.report(), wall_s=0.0) == replace(report, wall_s=0.0)
    assert split.ems.plans == run_depot(scenario).ems.plans  # type: ignore[union-attr]


def test_a_failing_worker_stops_the_run_with_a_clear_error(scenario: DepotScenario) -> None:
    broken = replace(scenario, loop_interval_s=-1.0)  # the trucks' configs refuse it inside the workers
    with pytest.raises(WorkerFailed, match="a depot worker failed"):
        run_parallel(broken, 2)


def test_an_ems_failure_here_ends_the_workers_quietly(
    scenario: DepotScenario, capfd: pytest.CaptureFixture[str]
) -> None:
    """The EMS's own error reaches the caller; the workers, waiting for setpoints, see their pipe end and stop
    without a traceback of their own (and nothing hangs)."""

    def broken(x: object) -> object:
        raise ValueError("the planner broke")

    with pytest.raises(ValueError, match="the planner broke"):
        run_parallel(scenario, 2, planner=broken)  # type: ignore[arg-type]
    assert "Traceback" not in capfd.readouterr().err
