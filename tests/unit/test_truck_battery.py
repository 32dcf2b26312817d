"""The truck's pack/BMS model and its charging needs (ev_emulator.battery, ev_emulator.needs)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ev_emulator.battery import (
    BatteryError,
    CloseResult,
    Contactors,
    PackSpec,
    TruckBattery,
    VehicleTerminal,
    WeldingStatus,
)
from ev_emulator.needs import (
    ChargingNeeds,
    can_make_departure,
    charge_time,
    departure_slack,
    discharge_current_limit,
    energy_request,
    maximum_energy_request,
    maximum_v2x_energy_request,
    may_discharge,
    minimum_energy_request,
    minimum_v2x_energy_request,
    remaining_time,
    reserve_soc,
    target_energy_request,
)

SOCS = [i / 100 for i in range(101)]


def closed(soc: float = 0.5, **kw) -> TruckBattery:
    battery = TruckBattery(soc=soc, **kw)
    assert battery.close_contactors(battery.open_circuit_voltage()) is CloseResult.CLOSED
    return battery


# --- pack figures -------------------------------------------------------------------------------------------


def test_default_pack_derivation():
    spec = PackSpec()
    assert spec.cells_series == 208
    assert spec.nominal_voltage == pytest.approx(748.8)
    assert spec.usable_energy_wh == pytest.approx(560_000, rel=0.01)
    assert spec.capacity_ah == pytest.approx(5 * 157 * 0.91)
    assert spec.max_voltage == pytest.approx(873.6)
    assert spec.min_voltage == pytest.approx(582.4)


def test_is_a_vehicle_terminal():
    terminal: VehicleTerminal = TruckBattery()
    assert terminal.open_circuit_voltage() > 0
    assert 0.030 < terminal.internal_resistance() < 0.060
    assert terminal.contactors_closed() is False


def test_ocv_monotonic_and_within_cell_limits():
    battery = TruckBattery()
    spec = battery.spec
    ocvs = [battery.open_circuit_voltage(s) for s in SOCS]
    assert all(b > a for a, b in zip(ocvs, ocvs[1:], strict=False))
    assert ocvs[0] == pytest.approx(3.0 * 208)
    assert ocvs[-1] == pytest.approx(4.15 * 208)
    assert all(spec.min_voltage <= v <= spec.max_voltage for v in ocvs)


def test_resistance_higher_when_empty_and_cold():
    battery = TruckBattery()
    assert all(0.030 <= battery.internal_resistance(s) <= 0.070 for s in SOCS)
    assert battery.internal_resistance(0.0) > 1.5 * battery.internal_resistance(0.5)
    cold = TruckBattery(temperature_c=-5.0)
    assert cold.internal_resistance(0.5) == pytest.approx(4 * battery.internal_resistance(0.5))


def test_750_kw_at_1000_a_near_nominal():
    battery = TruckBattery()
    spec = battery.spec
    assert spec.nominal_voltage * spec.max_charge_current == pytest.approx(750_000, rel=0.01)
    nominal_soc = 0.2  # the OCV curve's 3.6 V point
    assert battery.open_circuit_voltage(nominal_soc) == pytest.approx(spec.nominal_voltage)
    battery.soc = nominal_soc
    assert battery.terminal_voltage(1000.0) * 1000.0 == pytest.approx(750_000, rel=0.07)
    assert battery.charge_power_limit() == pytest.approx(750_000)
    assert battery.charge_current_limit() > 940
    assert battery.discharge_current_limit() == pytest.approx(1000.0)


def test_terminal_voltage_sign():
    battery = TruckBattery(soc=0.5)
    ocv, r = battery.open_circuit_voltage(), battery.internal_resistance()
    assert battery.terminal_voltage(100.0) == pytest.approx(ocv + 100 * r)
    assert battery.terminal_voltage(-100.0) == pytest.approx(ocv - 100 * r)


# --- SoC and energy -----------------------------------------------------------------------------------------


def test_soc_moves_by_charge_over_capacity():
    battery = closed(0.5)
    capacity_as = battery.spec.capacity_ah * 3600
    battery.apply_current(600.0, 60.0)
    assert battery.soc == pytest.approx(0.5 + 600 * 60 / capacity_as, abs=1e-12)
    battery.apply_current(-300.0, 30.0)
    assert battery.soc == pytest.approx(0.5 + (600 * 60 - 300 * 30) / capacity_as, abs=1e-12)
    assert battery.elapsed_s == 90.0


def test_terminal_energy_matches_v_times_i():
    battery = closed(0.5)
    v = battery.terminal_voltage(500.0)
    battery.apply_current(500.0, 1.0)
    assert battery.energy_in_wh == pytest.approx(v * 500.0 / 3600, rel=1e-4)
    assert battery.loss_wh == pytest.approx(500.0**2 * battery.internal_resistance() / 3600, rel=1e-3)
    v = battery.terminal_voltage(-500.0)
    battery.apply_current(-500.0, 1.0)
    assert battery.energy_out_wh == pytest.approx(v * 500.0 / 3600, rel=1e-4)


def test_current_through_open_contactors_is_an_error():
    battery = TruckBattery()
    battery.apply_current(0.0, 1.0)
    with pytest.raises(BatteryError):
        battery.apply_current(10.0, 1.0)


def test_bms_trips_at_full():
    battery = closed(0.999)
    battery.apply_current(30.0, 3600.0)
    assert battery.soc == 1.0
    assert not battery.contactors_closed()
    assert battery.faults["soc_high"] == 1


def test_soc_for_energy_inverts_stored_energy():
    battery = TruckBattery()
    for soc in (0.0, 0.13, 0.5, 0.97, 1.0):
        assert battery.soc_for_energy(battery.stored_wh(soc)) == pytest.approx(soc, abs=1e-9)


# --- BMS limits ---------------------------------------------------------------------------------------------


def test_charge_limit_tapers_above_80_percent():
    battery = TruckBattery()
    spec = battery.spec
    limits = [battery.charge_current_limit(s) for s in SOCS]
    assert all(0 <= i <= spec.max_charge_current for i in limits)
    high = limits[80:]
    assert all(b <= a for a, b in zip(high, high[1:], strict=False))
    assert limits[90] < 0.6 * spec.max_charge_current
    assert 0 < limits[99] < 0.1 * spec.max_charge_current
    assert limits[100] == 0.0


def test_discharge_limit_derated_below_20_percent():
    battery = TruckBattery()
    spec = battery.spec
    limits = [battery.discharge_current_limit(s) for s in SOCS]
    assert all(0 <= i <= spec.max_discharge_current for i in limits)
    low = limits[:21]
    assert all(b >= a for a, b in zip(low, low[1:], strict=False))
    assert limits[0] == 0.0
    assert limits[10] < 0.6 * spec.max_discharge_current


def test_limits_respect_power_and_voltage():
    battery = TruckBattery()
    spec = battery.spec
    for soc in SOCS:
        assert battery.charge_power_limit(soc) <= spec.max_power * (1 + 1e-9)
        assert battery.discharge_power_limit(soc) <= spec.max_power * (1 + 1e-9)
        battery.soc = soc
        assert battery.terminal_voltage(battery.charge_current_limit()) <= spec.max_voltage + 1e-6
        assert battery.terminal_voltage(-battery.discharge_current_limit()) >= spec.min_voltage - 1e-6


def test_over_limit_current_is_flagged():
    battery = closed(0.95)
    battery.apply_current(900.0, 1.0)
    assert battery.faults["overcurrent_charge"] == 1
    battery.apply_current(200.0, 1.0)
    assert battery.faults["overcurrent_charge"] == 1


# --- contactors ---------------------------------------------------------------------------------------------


def test_precharge_check():
    battery = TruckBattery(soc=0.5)
    pack = battery.open_circuit_voltage()
    assert battery.close_contactors(pack - 25.0) is CloseResult.PRECHARGE_MISMATCH
    assert battery.close_contactors(0.0) is CloseResult.PRECHARGE_MISMATCH
    assert not battery.contactors_closed()
    assert battery.contactors.cycles == 0
    assert battery.close_contactors(pack + 15.0) is CloseResult.CLOSED
    assert battery.close_contactors(pack) is CloseResult.ALREADY_CLOSED
    assert battery.contactors.cycles == 1


def test_contactor_cycle_limit():
    battery = TruckBattery(contactors=Contactors(max_cycles=3))
    pack = battery.open_circuit_voltage()
    for n in range(3):
        assert battery.close_contactors(pack) is CloseResult.CLOSED
        battery.open_contactors(float(n))
    assert battery.close_contactors(pack) is CloseResult.CYCLE_LIMIT
    assert battery.contactors.cycles == 3


def test_session_cycle_budget():
    contactors = Contactors(cycles=10)
    needs = ChargingNeeds(max_contactor_cycles=2)
    contactors.start_session(needs.max_contactor_cycles)
    assert contactors.cycles_left() == 2
    for n in range(2):
        assert contactors.close(700.0, 700.0) is CloseResult.CLOSED
        contactors.open(float(n))
    assert contactors.close(700.0, 700.0) is CloseResult.CYCLE_LIMIT
    contactors.start_session(None)
    assert contactors.close(700.0, 700.0) is CloseResult.CLOSED


def test_welding_check_ok_pending_and_suspected():
    battery = closed(0.5)
    battery.open_contactors(100.0)
    assert not battery.contactors_closed()
    assert battery.welding_check(700.0, 101.0) is WeldingStatus.PENDING
    assert battery.welding_check(59.0, 102.0) is WeldingStatus.OK
    assert battery.welding_check(700.0, 105.0) is WeldingStatus.SUSPECTED
    assert battery.contactors.weld_suspected


def test_welded_contactor_stays_closed_and_is_detected():
    battery = closed(0.5)
    battery.contactors.welded = True
    battery.open_contactors(0.0)
    assert battery.contactors_closed()  # the plant still sees the pack at the inlet
    inlet = battery.open_circuit_voltage()
    assert battery.welding_check(inlet, 1.0) is WeldingStatus.PENDING
    assert battery.welding_check(inlet, 5.0) is WeldingStatus.SUSPECTED


def test_welding_check_needs_an_open_command():
    with pytest.raises(BatteryError):
        TruckBattery().welding_check(0.0, 0.0)


# --- needs and energy requests ------------------------------------------------------------------------------


def test_energy_requests_at_a_few_socs():
    needs = ChargingNeeds(target_soc=0.8, min_soc=0.2, max_soc=1.0)
    usable = PackSpec().usable_energy_wh
    low, mid, high = TruckBattery(soc=0.1), TruckBattery(soc=0.5), TruckBattery(soc=0.9)
    for battery in (low, mid, high):
        assert target_energy_request(battery, needs) == pytest.approx(battery.stored_wh(0.8) - battery.stored_wh())
        assert maximum_energy_request(battery, needs) >= target_energy_request(battery, needs)
        assert maximum_energy_request(battery, needs) >= minimum_energy_request(battery, needs)
    assert target_energy_request(low, needs) > 0 and target_energy_request(high, needs) < 0
    assert minimum_energy_request(low, needs) > 0 and minimum_energy_request(mid, needs) < 0
    assert maximum_energy_request(TruckBattery(soc=0.0), needs) == pytest.approx(usable)
    assert maximum_energy_request(TruckBattery(soc=1.0), needs) == 0.0
    # from 50 % to 80 % of a ~560 kWh pack: ~30 % of it, a bit more since the OCV rises with SoC
    assert 0.30 * usable < target_energy_request(mid, needs) < 0.34 * usable


def test_v2x_requests_signs():
    needs = ChargingNeeds(offers_v2g=True, v2g_reserve_soc=0.4, min_soc=0.2, target_soc=0.8, v2x_max_soc=0.9)
    above, below = TruckBattery(soc=0.6), TruckBattery(soc=0.3)
    assert minimum_v2x_energy_request(above, needs) == pytest.approx(above.energy_to(0.4))
    assert minimum_v2x_energy_request(above, needs) < 0  # may discharge that much
    assert minimum_v2x_energy_request(below, needs) > 0  # must charge first
    assert maximum_v2x_energy_request(above, needs) == pytest.approx(above.energy_to(0.9))
    assert maximum_v2x_energy_request(TruckBattery(soc=0.95), needs) < 0
    assert minimum_v2x_energy_request(above, ChargingNeeds()) is None
    assert maximum_v2x_energy_request(above, ChargingNeeds()) is None


def test_energy_request_message_form():
    battery = TruckBattery(soc=0.3)
    needs = ChargingNeeds(departure_time=5000.0, target_soc=0.85, min_soc=0.25, offers_v2g=True)
    request = energy_request(battery, needs, now=1000.5)
    assert request.departure_time == 3999
    assert (request.target_soc, request.min_soc) == (85, 25)
    assert request.target_energy == pytest.approx(target_energy_request(battery, needs))
    assert request.min_v2x_energy is not None and request.max_v2x_energy is not None
    assert energy_request(battery, ChargingNeeds(), 0.0).departure_time is None
    assert remaining_time(needs, 6000.0) == 0.0


def test_reserve_from_energy():
    battery = TruckBattery(soc=0.6)
    needs = ChargingNeeds(offers_v2g=True, v2g_reserve_soc=0.3, v2g_reserve_wh=battery.stored_wh(0.45))
    assert reserve_soc(battery, needs) == pytest.approx(0.45, abs=1e-6)


def test_discharge_refused_at_or_below_reserve():
    needs = ChargingNeeds(offers_v2g=True, v2g_reserve_soc=0.5, min_soc=0.2, target_soc=0.5)
    assert may_discharge(TruckBattery(soc=0.6), needs, 0.0)
    above = TruckBattery(soc=0.6)
    assert discharge_current_limit(above, needs, 0.0) == above.discharge_current_limit() > 900
    for soc in (0.5, 0.4, 0.1):
        assert not may_discharge(TruckBattery(soc=soc), needs, 0.0)
        assert discharge_current_limit(TruckBattery(soc=soc), needs, 0.0) == 0.0
    assert not may_discharge(TruckBattery(soc=0.9), ChargingNeeds(offers_v2g=False), 0.0)


def test_departure_check_at_max_power():
    battery = TruckBattery(soc=0.2)
    full_power = charge_time(battery, 0.8)
    # 60 % of ~560 kWh at 750 kW: about 27 minutes
    assert 25 * 60 < full_power < 30 * 60
    assert charge_time(battery, 0.8, max_power=375_000) == pytest.approx(2 * full_power, rel=0.05)
    assert charge_time(battery, 0.1) == 0.0
    assert charge_time(battery, 1.0) > charge_time(battery, 0.95) > full_power
    needs = ChargingNeeds(departure_time=full_power + 60, offers_v2g=True, v2g_reserve_soc=0.1, min_soc=0.1)
    assert can_make_departure(battery, needs, 0.0)
    assert departure_slack(battery, needs, 0.0) == pytest.approx(60.0)
    assert not can_make_departure(battery, needs, 120.0)
    assert not can_make_departure(battery, needs, 0.0, max_power=375_000)
    assert not may_discharge(battery, needs, 120.0)  # above its reserve, but no time to spare
    assert can_make_departure(battery, ChargingNeeds(), 1e9)


# --- properties ---------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    soc=st.floats(0.0, 1.0),
    steps=st.lists(st.tuples(st.floats(-1.0, 1.0), st.floats(0.0, 120.0)), min_size=1, max_size=40),
)
def test_soc_bounded_and_energy_balanced(soc, steps):
    battery = TruckBattery(soc=soc)
    battery.close_contactors(battery.open_circuit_voltage())
    start_wh = battery.stored_wh()
    for fraction, dt in steps:
        if not battery.contactors_closed():
            battery.close_contactors(battery.open_circuit_voltage())
        limit = battery.charge_current_limit() if fraction >= 0 else battery.discharge_current_limit()
        battery.apply_current(fraction * limit, dt)
        assert 0.0 <= battery.soc <= 1.0
    assert battery.faults["overcurrent_charge"] == battery.faults["overcurrent_discharge"] == 0
    stored = battery.stored_wh() - start_wh
    balance = battery.energy_in_wh - battery.energy_out_wh - stored - battery.loss_wh
    assert balance == pytest.approx(0.0, abs=1e-6 * (1 + battery.energy_in_wh + battery.energy_out_wh))
    assert battery.loss_wh >= 0
