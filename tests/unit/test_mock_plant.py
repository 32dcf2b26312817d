"""Physics of the mock charger plant against a stiff truck battery, in simulated time."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import pytest

from evse_emulator.hal import (
    ContactorState,
    FaultKind,
    Hal,
    ImdStatus,
    cable_check_test_voltage,
    emergency_over_voltage_limit,
    insulation_fault_threshold_ohm,
    make_hal,
    register_driver,
)
from evse_emulator.hal.mock import MockPlant, PlantConfig

DT = 0.01
MCS_POWER = 3_750_000.0


@dataclasses.dataclass
class Battery:
    """A stiff truck pack: OCV linear in SoC (650-850 V), 640 Ah, 30 mOhm (a VehicleTerminal)."""

    soc: float = 0.3
    capacity_ah: float = 640.0
    resistance_ohm: float = 0.03
    closed: bool = False

    def open_circuit_voltage(self) -> float:
        return 650.0 + 200.0 * self.soc

    def internal_resistance(self) -> float:
        return self.resistance_ohm

    def contactors_closed(self) -> bool:
        return self.closed

    def apply_current(self, amps: float, dt: float) -> None:
        self.soc += amps * dt / (self.capacity_ah * 3600.0)


def make(battery: Battery | None = None, **settings: object) -> tuple[MockPlant, Battery]:
    battery = battery or Battery()
    return MockPlant(battery, PlantConfig(**settings)), battery  # type: ignore[arg-type]


def run(plant: MockPlant, seconds: float, dt: float = DT, probe: Callable[[], None] | None = None) -> None:
    for _ in range(round(seconds / dt)):
        plant.step(dt)
        if probe is not None:
            probe()


def run_until(plant: MockPlant, done: Callable[[], bool], limit_s: float, dt: float = DT) -> float:
    """Step until `done()`; returns the simulated time it took."""
    start = plant.terminal.time_s
    while not done():
        assert plant.terminal.time_s - start < limit_s, "condition not reached in time"
        plant.step(dt)
    return plant.terminal.time_s - start


def precharge_and_connect(plant: MockPlant, battery: Battery, negotiated_v: float = 1000.0) -> None:
    """Cable check skipped: close, pre-charge to the battery voltage at 2 A, then the EV closes."""
    hal = plant.hal()
    hal.contactors.close()
    hal.power_stage.set_limits(battery.open_circuit_voltage(), 2.0, MCS_POWER)
    hal.power_stage.enable(negotiated_v)
    run_until(plant, lambda: abs(plant.inlet_voltage() - battery.open_circuit_voltage()) < 5.0, 5.0)
    battery.closed = True
    plant.step(DT)
    assert hal.faults() == []


# --- pre-charge and current control -----------------------------------------------------------------------


def test_precharge_rises_with_a_time_constant_and_reaches_target() -> None:
    plant, battery = make()
    hal = plant.hal()
    hal.contactors.close()
    hal.power_stage.set_limits(800.0, 2.0, MCS_POWER)
    hal.power_stage.enable(1000.0)
    run(plant, 0.2)
    assert 0 < hal.power_stage.present().voltage_v < 400.0  # not instantly
    took = run_until(plant, lambda: abs(hal.power_stage.present().voltage_v - 800.0) < 8.0, 5.0)
    assert 0.5 < 0.2 + took < 1.5
    run(plant, 0.5)
    reading = hal.power_stage.present()
    assert reading.voltage_v == pytest.approx(800.0, abs=0.5)
    assert reading.current_a == 0.0
    assert plant.inlet_voltage() == reading.voltage_v  # the EV sees it through the open-ended cable
    assert battery.soc == 0.3


def test_contactors_take_their_operate_time() -> None:
    plant, _ = make(contactor_close_s=0.03)
    plant.contactors.close()
    plant.step(0.01)
    plant.step(0.01)
    assert plant.contactors.state() is ContactorState.CLOSING
    plant.step(0.01)
    assert plant.contactors.state() is ContactorState.CLOSED


@pytest.mark.parametrize("ramp", [500.0, 1000.0])
def test_current_ramps_at_configured_rate(ramp: float) -> None:
    plant, battery = make(current_ramp_a_per_s=ramp)
    precharge_and_connect(plant, battery)
    stage = plant.power_stage
    stage.set_limits(1000.0, 1500.0, MCS_POWER)
    samples: list[float] = []
    run(plant, 2.0, probe=lambda: samples.append(stage.present().current_a))
    slopes = [(b - a) / DT for a, b in zip(samples, samples[1:], strict=False) if 0 < b < 1500.0]
    assert slopes and all(s == pytest.approx(ramp, rel=1e-6) for s in slopes)
    assert samples[-1] == pytest.approx(min(1500.0, ramp * 2.0), abs=ramp * DT)
    # voltage follows OCV + I (R_batt + R_cable)
    reading = stage.present()
    expected = battery.open_circuit_voltage() + reading.current_a * (0.03 + plant.config.cable_ohm)
    assert reading.voltage_v == pytest.approx(expected, rel=1e-9)
    assert plant.inlet_voltage() == pytest.approx(expected - reading.current_a * plant.config.cable_ohm)


@pytest.mark.parametrize(
    ("voltage_v", "current_a", "power_w"),
    [
        (1000.0, 2500.0, MCS_POWER),  # current-limited by the request
        (1000.0, 5000.0, 5e6),  # by the rating (3 000 A)
        (1000.0, 3000.0, 600_000.0),  # by power: I = P / V
        (725.0, 3000.0, MCS_POWER),  # by voltage: tapers to (V - OCV) / R
    ],
)
def test_current_never_exceeds_limits(voltage_v: float, current_a: float, power_w: float) -> None:
    plant, battery = make(current_ramp_a_per_s=2000.0)
    precharge_and_connect(plant, battery)
    stage = plant.power_stage
    stage.set_limits(voltage_v, current_a, power_w)
    by_voltage = (voltage_v - battery.open_circuit_voltage()) / (0.03 + plant.config.cable_ohm)
    peak = {"i": 0.0}

    def check() -> None:
        r = stage.present()
        peak["i"] = max(peak["i"], r.current_a)
        assert r.current_a <= min(current_a, 3000.0)
        assert r.voltage_v * r.current_a <= power_w * (1 + 1e-6)
        assert r.voltage_v <= voltage_v + 0.01

    run(plant, 3.0, probe=check)
    assert peak["i"] > 0.5 * min(current_a, 3000.0, power_w / voltage_v, by_voltage)
    # lowering a limit applies at once, not along the ramp
    stage.set_limits(voltage_v, 100.0, power_w)
    plant.step(DT)
    assert stage.present().current_a <= 100.0
    assert plant.hal().faults() == []


def test_voltage_limit_makes_current_taper() -> None:
    plant, battery = make(battery=Battery(soc=0.95), current_ramp_a_per_s=5000.0)
    precharge_and_connect(plant, battery)
    plant.power_stage.set_limits(848.0, 1000.0, MCS_POWER)
    run(plant, 1.0)
    first = plant.power_stage.present().current_a
    run(plant, 30.0, dt=0.1)
    assert 0 < plant.power_stage.present().current_a < first  # CV: OCV rises, current falls
    assert plant.power_stage.present().voltage_v == pytest.approx(848.0, abs=0.1)


# --- energy ----------------------------------------------------------------------------------------------


def test_meter_equals_integral_of_v_times_i() -> None:
    plant, battery = make()
    precharge_and_connect(plant, battery)
    stage, meter = plant.power_stage, plant.meter
    start_import, start_export = meter.imported_wh(), meter.exported_wh()
    imported = exported = 0.0
    last = stage.present()
    dt = 0.001
    for current, seconds in ((1200.0, 3.0), (400.0, 1.0), (-800.0, 2.0), (0.0, 0.5)):
        stage.set_limits(1000.0, current, MCS_POWER)
        for _ in range(round(seconds / dt)):
            plant.step(dt)
            now = stage.present()
            energy = (last.power_w + now.power_w) / 2 * dt / 3600.0
            if last.current_a >= 0 and now.current_a >= 0:
                imported += energy
            else:
                exported -= energy
            last = now
    assert meter.imported_wh() - start_import == pytest.approx(imported, rel=0.005)
    assert meter.exported_wh() - start_export == pytest.approx(exported, rel=0.005)
    assert meter.read().timestamp_s == pytest.approx(plant.terminal.time_s)


def test_discharge_counts_as_export() -> None:
    plant, battery = make()
    precharge_and_connect(plant, battery)
    soc = battery.soc
    plant.power_stage.set_limits(1000.0, -1000.0, 750_000.0)
    run(plant, 4.0)
    reading = plant.power_stage.present()
    assert reading.current_a < 0 and plant.meter.power_w() < 0
    assert reading.voltage_v < battery.open_circuit_voltage()  # the cable and the pack drop voltage
    assert -reading.current_a * reading.voltage_v <= 750_000.0 * (1 + 1e-6)
    assert plant.meter.imported_wh() == 0.0
    assert plant.meter.exported_wh() > 500.0
    assert battery.soc < soc


# --- cable check ------------------------------------------------------------------------------------------


def cable_check(plant: MockPlant, ev_max_v: float = 1000.0) -> float:
    """Drive the output to the test voltage at 2 A and run the IMD; returns how long it took."""
    hal = plant.hal()
    test_v = cable_check_test_voltage(ev_max_v, plant.config.rated_voltage_v)
    hal.contactors.close()
    hal.power_stage.set_limits(test_v, 2.0, MCS_POWER)
    hal.power_stage.enable(ev_max_v)
    hal.imd.start(test_v)
    return run_until(plant, lambda: hal.imd.status() is not ImdStatus.ONGOING, 10.0)


@pytest.mark.parametrize(
    ("mcs", "fault_ohm", "expected"),
    [
        (True, None, ImdStatus.OK),
        (False, None, ImdStatus.OK),
        (True, 110e3, ImdStatus.FAULT),  # below 125 kOhm
        (False, 110e3, ImdStatus.OK),  # above 100 kOhm
        (True, 130e3, ImdStatus.OK),
        (False, 90e3, ImdStatus.FAULT),
        (True, 50e3, ImdStatus.FAULT),
    ],
)
def test_insulation_fault_threshold(mcs: bool, fault_ohm: float | None, expected: ImdStatus) -> None:
    plant, _ = make(mcs=mcs)
    if fault_ohm is not None:
        plant.inject_insulation_fault(fault_ohm, "DC-")
    took = cable_check(plant)
    assert plant.imd.status() is expected
    measured = plant.imd.resistance_ohm()
    assert measured is not None
    assert (measured < insulation_fault_threshold_ohm(mcs)) == (expected is ImdStatus.FAULT)
    assert took >= plant.config.imd_self_test_s + plant.config.imd_measure_s
    fault = plant.hal().faults()
    assert [f.kind for f in fault] == ([FaultKind.INSULATION_FAULT] if expected is ImdStatus.FAULT else [])


def test_imd_measures_only_at_the_test_voltage() -> None:
    plant, _ = make(insulation_pos_ohm=50e3)
    plant.imd.start(1100.0)
    run(plant, 5.0)  # output never driven
    assert plant.imd.status() is ImdStatus.ONGOING and plant.imd.resistance_ohm() is None
    took = cable_check(plant)
    assert plant.imd.status() is ImdStatus.FAULT
    # the 0.5 s self-test runs while the output rises at 1 000 V/s (20 ms lag) to 95 % of 1 100 V; then 2 s
    assert took == pytest.approx(1.045 + 0.02 + 2.0, abs=0.02)


def test_imd_keeps_monitoring_while_charging() -> None:
    plant, battery = make()
    cable_check(plant)
    assert plant.imd.status() is ImdStatus.OK
    precharge_and_connect(plant, battery)
    plant.inject_insulation_fault(100e3)
    plant.step(DT)
    assert plant.imd.status() is ImdStatus.FAULT
    assert plant.imd.fault() is not None and plant.imd.fault().kind is FaultKind.INSULATION_FAULT


def test_imd_self_test_failure() -> None:
    plant, _ = make()
    plant.inject_imd_self_test_failure()
    cable_check(plant)
    assert plant.imd.status() is ImdStatus.FAULT
    assert [f.kind for f in plant.hal().faults()] == [FaultKind.IMD_SELF_TEST_FAILED]


@pytest.mark.parametrize(
    ("ev_max", "evse_max", "expected"),
    [
        (400.0, 1250.0, 450.0),  # EVmax + 50 V
        (480.0, 1250.0, 500.0),  # capped at 500 V
        (500.0, 1250.0, 500.0),
        (450.0, 480.0, 480.0),  # capped by the EVSE
        (800.0, 1250.0, 880.0),  # 1.1 x EVmax
        (1000.0, 1250.0, 1100.0),
        (1200.0, 1250.0, 1250.0),
    ],
)
def test_cable_check_test_voltage(ev_max: float, evse_max: float, expected: float) -> None:
    assert cable_check_test_voltage(ev_max, evse_max) == pytest.approx(expected)


# --- contactors and welding -------------------------------------------------------------------------------


def stop_charging(plant: MockPlant) -> None:
    plant.power_stage.set_limits(1000.0, 0.0, MCS_POWER)
    plant.step(DT)
    plant.power_stage.disable()
    plant.contactors.open()


def test_open_contactor_lets_output_decay_below_60v() -> None:
    plant, battery = make()
    precharge_and_connect(plant, battery)
    plant.power_stage.set_limits(1000.0, 500.0, MCS_POWER)
    run(plant, 1.0)
    stop_charging(plant)
    run(plant, 0.05)
    assert plant.contactors.state() is ContactorState.OPEN
    assert plant.power_stage.present().voltage_v > 60.0  # decays, does not vanish
    took = run_until(plant, lambda: plant.power_stage.present().voltage_v < 60.0, 3.0)
    assert took < 1.0
    assert plant.hal().faults() == []


def test_contactor_opened_under_load_welds_and_keeps_battery_voltage() -> None:
    plant, battery = make(weld_current_a=300.0)
    precharge_and_connect(plant, battery)
    plant.power_stage.set_limits(1000.0, 500.0, MCS_POWER)
    run(plant, 1.5)
    plant.contactors.open()  # under 500 A
    run(plant, 0.05)
    plant.power_stage.disable()
    run(plant, 3.0)
    assert plant.contactors.state() is ContactorState.WELDED
    assert plant.power_stage.present().voltage_v == pytest.approx(battery.open_circuit_voltage())
    assert [f.kind for f in plant.hal().faults()] == [FaultKind.CONTACTOR_WELDED]


def test_injected_weld_at_zero_current() -> None:
    plant, battery = make()
    precharge_and_connect(plant, battery)
    plant.inject_contactor_weld()
    stop_charging(plant)
    run(plant, 3.0)
    assert plant.contactors.state() is ContactorState.WELDED
    assert plant.power_stage.present().voltage_v > 700.0


def test_contactor_close_failure_is_reported() -> None:
    plant, _ = make()
    plant.inject_contactor_close_failure()
    plant.contactors.close()
    run(plant, 0.1)
    assert plant.contactors.state() is ContactorState.OPEN
    fault = plant.contactors.fault()
    assert fault is not None and fault.kind is FaultKind.CONTACTOR_FAILED_TO_CLOSE


# --- protection -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("negotiated", "limit"), [(400.0, 550.0), (750.0, 825.0), (800.0, 935.0), (1000.0, 1100.0), (1250.0, 1375.0)]
)
def test_emergency_over_voltage_table(negotiated: float, limit: float) -> None:
    assert emergency_over_voltage_limit(negotiated) == limit


def test_over_voltage_trips_output_and_contactors() -> None:
    plant, _ = make()
    hal = plant.hal()
    hal.contactors.close()
    hal.power_stage.set_limits(800.0, 2.0, MCS_POWER)  # a controller bug: above the 500 V session
    hal.power_stage.enable(500.0)
    peak = {"v": 0.0}
    run_until(plant, lambda: hal.power_stage.fault() is not None, 2.0)
    fault = hal.power_stage.fault()
    assert fault is not None and fault.kind is FaultKind.OVER_VOLTAGE
    assert 550.0 < hal.power_stage.present().voltage_v < 550.0 + 1000.0 * 0.02
    run(plant, 0.1, probe=lambda: peak.update(v=max(peak["v"], hal.power_stage.present().voltage_v)))
    assert hal.contactors.state() is ContactorState.OPEN
    assert peak["v"] < 580.0 and hal.power_stage.present().voltage_v < 550.0  # output off, discharging
    hal.power_stage.enable(1000.0)  # re-arming clears the trip
    assert hal.faults() == []


def test_runaway_above_1000v_session_trips_at_1375v() -> None:
    plant, _ = make()
    hal = plant.hal()
    hal.contactors.close()
    hal.power_stage.set_limits(1100.0, 2.0, MCS_POWER)
    hal.power_stage.enable(1100.0)
    run(plant, 2.0)
    assert hal.faults() == [] and hal.power_stage.present().voltage_v == pytest.approx(1100.0, abs=1.0)
    plant.inject_regulation_fault()
    run_until(plant, lambda: hal.power_stage.fault() is not None, 2.0, dt=0.001)
    assert 1375.0 < hal.power_stage.present().voltage_v < 1375.0 + 1000.0 * 0.011
    assert hal.power_stage.fault().kind is FaultKind.OVER_VOLTAGE  # type: ignore[union-attr]


def test_closing_onto_battery_without_precharge_is_over_current() -> None:
    plant, battery = make()
    battery.closed = True
    plant.power_stage.enable(1000.0)
    plant.contactors.close()
    run(plant, 0.1)
    fault = plant.power_stage.fault()
    assert fault is not None and fault.kind is FaultKind.OVER_CURRENT
    assert "inrush" in fault.detail
    assert plant.contactors.state() is ContactorState.OPEN  # no current flowed when it broke


# --- the registry -----------------------------------------------------------------------------------------


def test_make_hal_picks_drivers_by_name() -> None:
    hal = make_hal("mock", vehicle=Battery(), mcs=False, cable_ohm=1e-3)
    assert isinstance(hal.plant, MockPlant)
    assert hal.plant.config.mcs is False and hal.plant.config.cable_ohm == 1e-3
    with pytest.raises(ValueError, match="unknown HAL driver 'serial:x'; known: can, mock"):
        make_hal("serial:x")
    with pytest.raises(ValueError, match="unknown CAN module family 'acme'; known: infypower, infypower-beg, winline"):
        make_hal("can:acme")
    seen: dict[str, object] = {}

    def fake_can(**kwargs: object) -> Hal:
        seen.update(kwargs)
        return hal

    register_driver("fakecan", fake_can)
    assert make_hal("fakecan:infypower", channel="vcan0") is hal
    assert seen == {"family": "infypower", "channel": "vcan0"}


def test_step_is_exact_across_dt() -> None:
    """Coarse and fine steps give the same pre-charge and ramp (the solutions are closed-form)."""
    results = []
    for dt in (0.001, 0.01):
        plant, battery = make()
        plant.contactors.close()
        plant.power_stage.set_limits(800.0, 2.0, MCS_POWER)
        plant.power_stage.enable(1000.0)
        run(plant, 0.5, dt=dt)
        results.append(plant.power_stage.present().voltage_v)
    assert math.isclose(results[0], results[1], rel_tol=1e-3)
