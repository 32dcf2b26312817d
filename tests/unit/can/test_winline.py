"""Winline V1.50: the driver codec and the emulated modules' codec, round trips through both."""

from __future__ import annotations

import can
import pytest

from evse_emulator.hal.can.family import family
from evse_emulator.hal.can.model import Direction, EmulatedModule, ModuleCommand, ModuleReport
from evse_emulator.hal.can.winline import FAMILY, WinlineDriver, WinlineModules, can_id


@pytest.fixture
def driver() -> WinlineDriver:
    return WinlineDriver(FAMILY.database())


@pytest.fixture
def codec() -> WinlineModules:
    return WinlineModules(FAMILY.database())


@pytest.fixture
def modules() -> list[EmulatedModule]:
    return [
        EmulatedModule(address=0, rating=FAMILY.rating, serial="SN_00000001deadbeef"),
        EmulatedModule(address=1, rating=FAMILY.rating),
        EmulatedModule(address=2, rating=FAMILY.rating, group=3),
    ]


def exchange(
    driver: WinlineDriver, codec: WinlineModules, frames: list[can.Message], modules: list[EmulatedModule], now: float
) -> list[ModuleReport]:
    reports = []
    for frame in frames:
        for reply in codec.answer(frame, modules, now):
            report = driver.decode(reply)
            assert report is not None
            reports.append(report)
    return reports


def test_family_is_registered() -> None:
    found = family("winline")
    assert found is FAMILY
    assert (found.bitrate, found.poll_interval_s, found.drop_after_s, found.module_silence_off_s) == (
        125_000,
        1.0,
        15.0,
        10.0,
    )
    assert (found.rating.max_voltage_v, found.rating.min_voltage_v, found.rating.max_current_a) == (1000, 50, 133.3)
    assert found.rating.rated_power_w == 40_000 and not found.rating.bidirectional


def test_ids_match_the_source() -> None:
    assert can_id(0xF0, 0x00, 0, point_to_point=True) == 0x06080780  # module 0 (CAN.md 3)
    assert can_id(0xF0, 0xFE, 2, point_to_point=False) == 0x0607F780 + 2  # the group-2 query


def test_discovery_finds_the_modules_of_our_group(driver, codec, modules) -> None:
    frames = driver.discovery()
    assert [f.arbitration_id for f in frames] == [0x0607F780]
    reports = exchange(driver, codec, frames, modules, now=1.0)
    assert sorted(r.address for r in reports) == [0, 1]  # module 2 sits in group 3
    assert all(m.last_heard_s == 1.0 for m in modules[:2]) and modules[2].last_heard_s == 0.0


def test_commands_reach_the_module_and_are_acknowledged(driver, codec, modules) -> None:
    command = ModuleCommand(on=True, voltage_v=700.0, current_a=10.0)
    frames = driver.command(1, command, None)
    assert [f.arbitration_id for f in frames] == [0x06080780 + (1 << 11)] * 3
    reports = exchange(driver, codec, frames, modules, now=2.0)
    assert [r.acknowledged for r in reports] == ["SetVoltage", "SetCurrent", "PowerControl"]
    module = modules[1]
    assert (module.voltage_v, module.current_a, module.on, module.last_heard_s) == (700.0, 10.0, True, 2.0)
    assert not modules[0].on  # only module 1 was addressed


def test_only_changes_are_sent(driver, codec, modules) -> None:
    first = ModuleCommand(on=True, voltage_v=700.0, current_a=10.0)
    assert driver.command(0, first, first) == []
    lower = ModuleCommand(on=True, voltage_v=700.0, current_a=5.5)
    frames = driver.command(0, lower, first)
    assert len(frames) == 1
    exchange(driver, codec, frames, modules, now=3.0)
    assert modules[0].current_a == pytest.approx(5.5, abs=1 / 1024)
    off = driver.command(0, ModuleCommand(on=False, voltage_v=700.0, current_a=5.5), lower)
    exchange(driver, codec, off, modules, now=3.0)
    assert len(off) == 1 and not modules[0].on


def test_refusals_leave_the_settings_unchanged(driver, codec, modules) -> None:
    module = modules[0]
    exchange(driver, codec, driver.command(0, ModuleCommand(True, 500.0, 20.0), None), modules, now=1.0)
    reports = exchange(driver, codec, driver.command(0, ModuleCommand(True, 1100.0, 200.0), None), modules, now=2.0)
    refused = [r.refused for r in reports if r.refused]
    assert len(refused) == 2 and "0x0021" in refused[0] and "0xF2" in refused[0] and "0x001B" in refused[1]
    assert (module.voltage_v, module.current_a) == (500.0, 20.0)
    module.on, module.fault = False, "output over-voltage"
    reports = exchange(driver, codec, driver.command(0, ModuleCommand(True, 500.0, 20.0), None), modules, now=3.0)
    assert reports[-1].refused is not None and not module.on


def test_reads_report_output_status_rating_and_serial(driver, codec, modules) -> None:
    module = modules[0]
    module.on, module.output_v, module.output_a, module.derate = True, 650.0, 42.5, 0.8
    reports = exchange(driver, codec, driver.poll(0, rating_known=False), modules, now=1.0)
    assert reports[0].voltage_v == 650.0 and reports[1].current_a == 42.5
    status = reports[2].status
    assert status is not None and not status.off and status.fault is None and status.derated
    rating = next(r.rating for r in reports if r.rating)
    assert rating.rated_power_w == 40_000 and rating.max_current_a == pytest.approx(133.3, rel=1e-6)
    assert (rating.max_voltage_v, rating.min_voltage_v) == (1000.0, 50.0)
    assert reports[-1].serial == "SN_00000001deadbeef"
    assert len(driver.poll(0, rating_known=True)) == 3


@pytest.mark.parametrize(
    "fault", ["output over-voltage", "output short circuit", "DC/DC over-temperature", "module fault, fan fault"]
)
def test_faults_travel_through_the_status_bits(driver, codec, modules, fault) -> None:
    modules[0].fault = fault
    (report,) = exchange(driver, codec, driver.poll(0, rating_known=True)[2:], modules, now=1.0)
    assert report.status is not None and report.status.fault == fault and report.status.off


def test_an_unknown_fault_phrase_sets_the_module_fault_bit(driver, codec, modules) -> None:
    modules[0].fault = "something odd"
    (report,) = exchange(driver, codec, driver.poll(0, rating_known=True)[2:], modules, now=1.0)
    assert report.status is not None and report.status.fault == "module fault"


def test_frames_of_other_controllers_and_other_modules_are_ignored(driver, codec, modules) -> None:
    reply = codec.answer(driver.poll(0, rating_known=True)[0], modules, 1.0)[0]
    other = can.Message(arbitration_id=reply.arbitration_id + (1 << 11), is_extended_id=True, data=reply.data)
    assert driver.decode(other) is None  # addressed to controller 0xF1
    assert driver.decode(driver.poll(0, True)[0]) is None  # our own request
    assert codec.answer(driver.poll(5, True)[0], modules, 1.0) == []  # no module 5
    assert codec.answer(reply, modules, 1.0) == []  # a module's reply addresses no module
    standard = can.Message(arbitration_id=0x123, is_extended_id=False, data=bytes(8))
    assert driver.decode(standard) is None and codec.answer(standard, modules, 1.0) == []


def test_a_lost_module_stays_silent(driver, codec, modules) -> None:
    modules[0].alive = False
    assert codec.answer(driver.poll(0, rating_known=True)[0], modules, 5.0) == []
    assert modules[0].last_heard_s == 0.0


def test_broadcast_reaches_every_live_module(driver, codec, modules) -> None:
    request = driver.command(0, ModuleCommand(False, 400.0, 1.0), None)[0]  # power off
    broadcast = can.Message(
        arbitration_id=can_id(0xF0, 0xFF, 0, point_to_point=False), is_extended_id=True, data=request.data
    )
    assert len(codec.answer(broadcast, modules, 1.0)) == 3


def test_not_bidirectional(driver) -> None:
    with pytest.raises(ValueError):
        driver.command(0, ModuleCommand(True, 400.0, 10.0, Direction.IMPORT), None)


def decoded(name: str, payload: str, choices: bool = False) -> dict[str, float | str]:
    """A payload decoded with the DBC alone (no codec)."""
    signals = FAMILY.database().get_message_by_name(name).decode(bytes.fromhex(payload), decode_choices=choices)
    assert isinstance(signals, dict)
    return {key: value if isinstance(value, int | float) else str(value) for key, value in signals.items()}


def test_frames_decode_with_the_dbc_alone() -> None:
    """The documented scaling: V float32 (0x442F0000 = 700.0), I x 1024, status bits (Chart 2)."""
    assert decoded("WL_Request", "03000021442F0000")["SetVoltage"] == 700.0
    assert decoded("WL_Request", "0300001B00002800")["SetCurrent"] == 10.0  # 10240 = 10 A x 1024
    assert decoded("WL_Request", "0300003000010000", choices=True)["PowerControl"] == "off"
    assert decoded("WL_Reply", "41F00001442F0000")["OutputVoltage"] == 700.0
    status = decoded("WL_Reply", "42F0004080400100")
    assert status["PfcVoltageAbnormal"] == 1 and status["DcdcOff"] == 1 and status["OutputOverVoltage"] == 1
    bits = [value for key, value in status.items() if key not in ("DataType", "ErrorCode", "Register")]
    assert sum(int(bit) for bit in bits) == 3
