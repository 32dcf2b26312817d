"""The verdict on a session (`mcs_v2g.verdict.judge`), on constructed endings, faults and goals, and the
feasibility of a departure target (`ev_emulator.needs.assess_departure`) it judges infeasible goals by."""

from __future__ import annotations

import math

import pytest

from ev_emulator.battery import TruckBattery
from ev_emulator.needs import (
    SETUP_ALLOWANCE_S,
    ChargingNeeds,
    DepartureFeasibility,
    assess_departure,
    charge_time,
    reachable_soc,
)
from mcs_v2g.verdict import (
    EXIT_STATUS,
    SOC_TOLERANCE_PCT,
    USAGE_EXIT,
    Ending,
    Fault,
    LoopGoal,
    Outcome,
    SocGoal,
    judge,
    worst,
)

CLEAN = Ending(True, "session terminated")
FEASIBLE = DepartureFeasibility(0.30, 0.90, 3600.0, 1771.0, 1.0, "750 kW, 1000 A")
INFEASIBLE = DepartureFeasibility(0.30, 0.90, 900.0, 1771.0, 0.60, "750 kW, 1000 A")
BLOCKED = DepartureFeasibility(0.25, 0.90, 600.0, math.inf, 0.25, "750 kW, 1000 A", "budget of 0 closings")
TOLERANCE = SOC_TOLERANCE_PCT / 100


def test_exit_statuses_are_distinct_and_keep_2_for_bad_input() -> None:
    assert EXIT_STATUS[Outcome.OK] == 0
    codes = list(EXIT_STATUS.values())
    assert len(set(codes)) == len(codes) == len(Outcome)
    assert USAGE_EXIT not in codes


def test_a_clean_end_without_goals_is_ok() -> None:
    verdict = judge(CLEAN)
    assert (verdict.result, verdict.exit_status, verdict.reasons) == ("ok", 0, ("session terminated",))
    assert verdict.json() == {"result": "ok", "reasons": ["session terminated"], "goals": {}, "exit_status": 0}


@pytest.mark.parametrize(
    ("reached", "result"),
    [(0.90, "ok"), (0.90 - TOLERANCE * 0.9, "ok"), (0.90 - TOLERANCE * 1.1, "target_missed"), (0.475, "target_missed")],
)
def test_a_feasible_target_is_met_or_missed(reached: float, result: str) -> None:
    verdict = judge(CLEAN, soc=SocGoal(FEASIBLE, reached))
    assert verdict.result == result
    goal = verdict.goals["departure_soc"]
    assert goal["feasible"] is True and goal["met"] is (result == "ok")
    assert (
        goal["target_soc"] == 90.0 and goal["required_soc"] == 90.0 and goal["reached_soc"] == round(reached * 100, 2)
    )
    if result != "ok":
        assert verdict.exit_status == 1 and "missed at departure" in verdict.reasons[0]


def test_an_infeasible_target_is_judged_against_the_best_reachable() -> None:
    did_its_best = judge(CLEAN, soc=SocGoal(INFEASIBLE, 0.603))
    assert (did_its_best.result, did_its_best.exit_status) == ("infeasible", 3)
    assert "infeasible" in did_its_best.reasons[0] and "best reachable 60.0 %" in did_its_best.reasons[0]
    goal = did_its_best.goals["departure_soc"]
    assert goal["feasible"] is False and goal["required_soc"] == 60.0 and goal["met"] is False
    assert goal["required_met"] is True
    fell_short = judge(CLEAN, soc=SocGoal(INFEASIBLE, 0.50))
    assert fell_short.result == "target_missed" and "missed too" in fell_short.reasons[0]
    assert fell_short.goals["departure_soc"]["required_met"] is False


def test_a_target_met_despite_the_prediction_is_ok() -> None:
    """The feasibility check is conservative (rated limits, a setup allowance): reaching the target wins."""
    assert judge(CLEAN, soc=SocGoal(INFEASIBLE, 0.90)).result == "ok"


def test_a_blocked_goal_is_infeasible_and_says_why() -> None:
    verdict = judge(CLEAN, soc=SocGoal(BLOCKED, 0.25))
    assert verdict.result == "infeasible" and "budget of 0 closings" in verdict.reasons[0]
    assert verdict.goals["departure_soc"]["needed_s"] is None  # inf is no JSON number
    assert verdict.goals["departure_soc"]["blocked"] == "budget of 0 closings"


def test_a_fault_names_the_outcome_whatever_else_happened() -> None:
    faults = [Fault("charger", "over_current", "inrush 5 A"), Fault("truck", "overvoltage", "1 time(s)")]
    verdict = judge(Ending(False, "CableCheck FAILED"), faults, soc=SocGoal(FEASIBLE, 0.30))
    assert (verdict.result, verdict.exit_status, verdict.fault_kind) == ("fault:overcurrent", 5, "overcurrent")
    assert verdict.reasons[:2] == ("charger fault over_current: inrush 5 A", "truck fault overvoltage: 1 time(s)")
    assert "CableCheck FAILED" in verdict.reasons and any("missed" in r for r in verdict.reasons)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("over_current", "overcurrent"),
        ("overcurrent_charge", "overcurrent"),
        ("over_voltage", "overvoltage"),
        ("insulation_fault", "insulation"),
        ("contactor_welded", "contactor_welded"),
        ("soc_high", "soc_limit"),
        ("something_new", "something_new"),
    ],
)
def test_fault_kinds_have_one_name_per_protection(name: str, kind: str) -> None:
    assert judge(CLEAN, [Fault("charger", name)]).result == f"fault:{kind}"


def test_an_unclean_end_is_aborted_with_its_reason() -> None:
    verdict = judge(Ending(False, "V2G_EVCC_Msg_Timeout"), soc=SocGoal(FEASIBLE, 0.95))
    assert (verdict.result, verdict.exit_status, verdict.reasons) == ("aborted", 4, ("V2G_EVCC_Msg_Timeout",))
    assert verdict.because("V2G_EVCC_Msg_Timeout") == ""  # a line that already says it does not repeat it
    missed = judge(Ending(False, "lost"), soc=SocGoal(FEASIBLE, 0.5))
    assert missed.because("lost") == "; because target SoC 90.0 % missed at departure: reached 50.0 %"
    assert judge(CLEAN).because("something else") == ""


@pytest.mark.parametrize(("done", "result"), [(5, "ok"), (6, "ok"), (4, "target_missed")])
def test_a_bench_limit_of_charge_loops_is_a_goal(done: int, result: str) -> None:
    verdict = judge(CLEAN, loops=LoopGoal(5, done))
    assert verdict.result == result
    assert verdict.goals == {"charge_loops": {"requested": 5, "done": done, "met": done >= 5}}


def test_the_worst_session_names_a_run() -> None:
    ok, missed, aborted = judge(CLEAN), judge(CLEAN, loops=LoopGoal(2, 1)), judge(Ending(False, "lost"))
    fault = judge(CLEAN, [Fault("charger", "over_voltage")])
    infeasible = judge(CLEAN, soc=SocGoal(BLOCKED, 0.25))
    assert worst([]) is None
    assert worst([ok, ok]) is ok
    assert worst([ok, infeasible]) is infeasible
    assert worst([infeasible, missed, ok]) is missed
    assert worst([ok, aborted, missed]) is aborted
    assert worst([aborted, fault, ok]).result == "fault:overvoltage"


# ------------------------------------------------------------------------------------------- feasibility


def _truck(soc: float, target: float, stay: float, cycles: int | None = 10) -> tuple[TruckBattery, ChargingNeeds]:
    battery = TruckBattery(soc=soc)
    needs = ChargingNeeds(departure_time=stay, target_soc=target, min_soc=0.2, max_contactor_cycles=cycles)
    battery.contactors.start_session(cycles)
    return battery, needs


def test_reachable_soc_inverts_charge_time() -> None:
    battery = TruckBattery(soc=0.3)
    for to_soc in (0.5, 0.85, 0.97):
        seconds = charge_time(battery, to_soc, max_power=600_000, max_current=900)
        assert reachable_soc(battery, seconds, max_power=600_000, max_current=900) == pytest.approx(to_soc, abs=0.002)
    assert reachable_soc(battery, 0.0) == 0.3
    assert reachable_soc(battery, 1e9) == pytest.approx(1.0)


def test_the_charger_voltage_rating_caps_the_reachable_soc() -> None:
    battery = TruckBattery(soc=0.3)
    low = 0.5 * (battery.open_circuit_voltage(0.5) + battery.open_circuit_voltage(0.6))  # between 50 and 60 %
    assert 0.5 < reachable_soc(battery, 1e6, max_voltage=low) < 0.6
    assert charge_time(battery, 0.9, max_voltage=low) == math.inf


def test_a_target_that_fits_the_stay_is_feasible() -> None:
    battery, needs = _truck(0.30, 0.90, 3600.0)
    f = assess_departure(battery, needs, 0.0, max_power=3.75e6, max_current=3000)
    assert f.feasible and f.needed_s == pytest.approx(charge_time(battery, 0.9))
    assert f.best_soc > 0.9 and "is feasible" in f.describe()


def test_energy_that_cannot_fit_the_stay_is_infeasible_with_the_best_reachable() -> None:
    battery, needs = _truck(0.30, 0.90, 900.0)
    f = assess_departure(battery, needs, 0.0, max_power=3.75e6, max_current=3000)
    assert not f.feasible and f.needed_s > 900.0
    assert f.best_soc == pytest.approx(reachable_soc(battery, 900.0 - SETUP_ALLOWANCE_S), abs=1e-9)
    assert 0.3 < f.best_soc < 0.9 and "infeasible" in f.describe() and "best reachable" in f.describe()
    tiny = assess_departure(*_truck(0.25, 0.90, 600.0), 0.0, max_current=2)
    assert not tiny.feasible and tiny.best_soc < 0.2505  # 2 A for 9 minutes


def test_a_contactor_budget_of_zero_blocks_any_charging() -> None:
    battery, needs = _truck(0.25, 0.90, 600.0, cycles=0)
    f = assess_departure(battery, needs, 0.0)
    assert not f.feasible and f.best_soc == 0.25 and "contactor-cycle budget of 0" in f.blocked
    already_there = assess_departure(*_truck(0.95, 0.90, 600.0, cycles=0), 0.0)
    assert already_there.feasible


def test_no_departure_time_is_no_goal() -> None:
    assert assess_departure(TruckBattery(soc=0.3), ChargingNeeds(), 0.0) is None
