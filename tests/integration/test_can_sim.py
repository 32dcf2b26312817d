"""The charger driving its power electronics only through CAN frames (`sim --hal can:<family>`): the real drivers
of every family against the plant that answers their protocol, on python-can's `virtual` bus, in simulated time.

Short scenarios keep the suite fast (a CAN session costs ~10 ms of wall time per simulated second: every module
is polled every second); the default scenario's comparison with the mock runs once per family at the end.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from evse_emulator.hal.can.family import family, family_names
from evse_emulator.hal.can.io_board import ENERGY_PERIOD_S
from mcs_v2g.sim.run import SimResult, simulate
from mcs_v2g.sim.scenario import Scenario

FAMILIES = family_names()
BIDIRECTIONAL = [name for name in FAMILIES if family(name).rating.bidirectional]

# 400 kW for 5 min, then (BPT) 300 kW back: 11-20 modules, about 10 s of wall time per session
SHORT = replace(
    Scenario(),
    departure_s=600.0,
    initial_soc=0.45,
    target_soc=0.55,
    v2g_reserve_soc=0.40,
    steps=((0.0, 400_000.0), (300.0, -300_000.0)),
)


def run(scenario: Scenario) -> tuple[SimResult, dict]:
    result = simulate(scenario, tls=False)
    return result, result.summary()


def can(name: str, **changes: object) -> Scenario:
    return replace(SHORT, hal=f"can:{name}", **changes)


@pytest.mark.parametrize("name", FAMILIES)
def test_a_session_charges_through_the_bus_and_matches_the_mock(name: str) -> None:
    service = "mcs-bpt" if name in BIDIRECTIONAL else "mcs"
    result, s = run(can(name, service=service))
    _, mock = run(replace(SHORT, service=service))
    assert s["result"] == "ok", s["reasons"]
    assert s["energy_charged_kwh"] == pytest.approx(mock["energy_charged_kwh"], rel=0.01)
    assert s["peak_charge_kw"] == pytest.approx(mock["peak_charge_kw"], rel=0.02)
    if name in BIDIRECTIONAL:
        assert s["energy_discharged_kwh"] > 5.0
        assert s["energy_discharged_kwh"] == pytest.approx(mock["energy_discharged_kwh"], rel=0.01)
        assert s["peak_discharge_kw"] == pytest.approx(mock["peak_discharge_kw"], rel=0.02)
    port = result.charger.hal.power_stage
    assert port.refusals == 0
    assert {m.address for m in port.modules.values()} == set(range(len(port.modules)))
    assert not result.faults


@pytest.mark.parametrize("name", FAMILIES)
def test_a_lost_module_is_dropped_after_the_family_timeout_and_the_truck_is_told_less(name: str) -> None:
    result, s = run(can(name, service="mcs", plant_faults=("module_loss:1@60",)))
    assert s["result"] == "ok", s["reasons"]
    (record,) = s["reactions"]
    limit = family(name).drop_after_s
    assert limit <= record["dropped_after_s"] <= limit + family(name).poll_interval_s
    assert record["advertised_after_kw"] < record["advertised_before_kw"]
    rating_kw = family(name).rating.rated_power_w / 1000
    assert record["advertised_before_kw"] - record["advertised_after_kw"] == pytest.approx(rating_kw, rel=0.01)
    # told in the next DC_ChargeLoopRes after the drop (one loop interval later at most)
    assert record["advertised_after_s"] - record["dropped_after_s"] <= SHORT.loop_interval + 0.01


def faulted(name: str, fault: str, **changes: object) -> dict:
    result, s = run(can(name, service="mcs", plant_faults=(fault,), **changes))
    if not fault.startswith("can_silence"):  # a silent bus freezes what the charger reads, not the meter
        assert_meter_consistent(result)
    return s


def assert_meter_consistent(result: SimResult) -> None:
    """The charger's meter (the board's IO_Energy, every second, 0.1 Wh) never runs ahead of the plant's and lags it
    by at most one period of flow at the session's 750 kW."""
    told, truth = result.charger.hal.meter.read(), result.plant.meter.read()
    one_period_wh = 750_000.0 * ENERGY_PERIOD_S / 3600
    assert truth.imported_wh - one_period_wh - 0.1 <= told.imported_wh <= truth.imported_wh + 0.1
    assert truth.exported_wh - one_period_wh - 0.1 <= told.exported_wh <= truth.exported_wh + 0.1


def test_over_voltage_is_an_emergency_shutdown_within_9_ms_of_the_limit() -> None:
    s = faulted("infypower", "over_voltage@120")
    assert s["result"] == "fault:overvoltage"
    (record,) = s["reactions"]
    assert record["protection_took_s"] == pytest.approx(0.009, abs=0.0015)
    assert record["contactors_end"] == "open" and abs(record["opened_at_a"]) < 5.0
    assert s["charger_reactions"][0]["shutdown"] == "emergency"


def test_over_current_trips_at_once_and_opens_at_no_load() -> None:
    s = faulted("infypower", "over_current@120")
    assert s["result"] == "fault:overcurrent"
    (record,) = s["reactions"]
    assert record["protection_took_s"] <= 0.002
    assert record["current_below_5a_after_s"] - record["tripped_after_s"] <= 0.002
    assert record["contactors_end"] == "open" and abs(record["opened_at_a"]) < 5.0


@pytest.mark.parametrize("name", FAMILIES)
def test_an_insulation_fault_while_charging_is_an_error_shutdown(name: str) -> None:
    s = faulted(name, "insulation@120")
    assert s["result"] == "fault:insulation"
    (record,) = s["reactions"]
    assert record["current_before_a"] > 100
    assert record["current_below_5a_after_s"] <= 0.3  # one board period to report, one to act
    assert record["contactors_end"] == "open" and abs(record["opened_at_a"]) < 5.0
    (reaction,) = s["charger_reactions"]
    assert reaction["shutdown"] == "error" and reaction["fault"] == "insulation_fault"


def test_bus_silence_trips_the_board_watchdog_and_the_charger_reports_the_lost_board() -> None:
    s = faulted("infypower", "can_silence@120")
    assert s["result"] == "fault:communication_lost"
    (record,) = s["reactions"]
    assert record["current_below_5a_after_s"] <= 0.5 + 0.011  # the watchdog, then the modules' enable cut
    assert record["contactors_end"] == "open" and abs(record["opened_at_a"]) < 5.0
    assert any("I/O board silent" in f for f in s["faults"])


def test_a_welded_contactor_is_reported_at_the_opening() -> None:
    s = faulted("winline", "contactor_weld@120")
    assert s["result"] == "fault:contactor_welded"
    assert s["charger_reactions"][0]["fault"] == "contactor_welded"


def test_a_failed_pre_charge_is_given_up_before_the_truck_times_out() -> None:
    s = faulted("infypower-beg", "pre_charge@0")
    assert s["result"] == "fault:pre_charge_failed"
    (reaction,) = s["charger_reactions"]
    assert reaction["fault"] == "pre_charge_failed" and reaction["shutdown"] == "error"
    assert "DC_ChargeLoopReq" not in s["messages"]  # no energy was ever transferred


def test_a_silent_truck_is_ended_by_the_sequence_timeout_and_the_output_made_safe() -> None:
    _, s = run(can("winline", service="mcs", ev_stops_answering_s=120.0))
    (record,) = s["reactions"]
    assert record["fault"] == "ev_silence"
    assert record["current_below_5a_after_s"] <= 60.0 + SHORT.loop_interval
    assert record["contactors_end"] == "open" and abs(record["opened_at_a"]) < 5.0


@pytest.mark.parametrize("name", FAMILIES)
def test_the_default_scenario_matches_the_mock_within_1_and_2_percent(name: str) -> None:
    """The issue's proof: energy within 1 %, peak power within 2 % of `--hal mock`. The default scenario feeds
    the evening peak back (MCS_BPT); a unidirectional family plays it as MCS, and so does its mock reference."""
    service = "mcs-bpt" if name in BIDIRECTIONAL else "mcs"
    _, s = run(replace(Scenario(), hal=f"can:{name}", service=service))
    _, mock = run(replace(Scenario(), service=service))
    assert s["result"] == "ok", s["reasons"]
    for key in ("energy_charged_kwh", "energy_discharged_kwh"):
        assert s[key] == pytest.approx(mock[key], rel=0.01, abs=0.01)
    for key in ("peak_charge_kw", "peak_discharge_kw"):
        assert s[key] == pytest.approx(mock[key], rel=0.02, abs=0.1)


def test_a_derating_module_is_helped_out_by_the_others() -> None:
    """Over-temperature halves one module's power: the stack holds it at what it gives and the rest take over."""
    result, s = run(can("infypower", service="mcs", steps=((0.0, 600_000.0),), plant_faults=("derate:3@100",)))
    assert any("module 3 derating" in text for _, text in result.events)
    before = [x.power_kw for x in result.samples if 80 <= x.t < 100]
    after = [x.power_kw for x in result.samples if 104 <= x.t < 140]
    assert min(before) == pytest.approx(600.0, rel=0.005)
    assert min(after) == pytest.approx(600.0, rel=0.005)
    module = result.rig.can_plant.rack.modules[3]
    assert module.output_a <= module.rating.current_at(module.output_v) * module.derate + 1e-6
    # the truck is told the smaller maximum: the derating module counts with the 20 kW it gives
    (before_kw, after_kw) = [kw for t, kw in s["evse_max_charge_power_kw"] if t < 140][-2:]
    assert before_kw - after_kw == pytest.approx(20.0, abs=0.5)
