"""InfyPower V1.13: the DBC against CAN.md section 1, and round trips driver -> emulated modules -> driver."""

from __future__ import annotations

import can
import pytest

from evse_emulator.hal.can.family import family
from evse_emulator.hal.can.infy_id import InfyId
from evse_emulator.hal.can.infypower import FAMILY, InfyPowerDriver, InfyPowerModule
from evse_emulator.hal.can.model import Direction, EmulatedModule, ModuleCommand, ModuleReport

DB = FAMILY.database()


def make_modules(count: int = 2) -> list[EmulatedModule]:
    return [EmulatedModule(address=a, rating=FAMILY.rating) for a in range(count)]


def exchange(frames: list[can.Message], modules: list[EmulatedModule], now: float = 5.0) -> list[ModuleReport | None]:
    plant, driver = InfyPowerModule(DB), InfyPowerDriver(DB)
    return [driver.decode(reply) for request in frames for reply in plant.answer(request, modules, now)]


def canonical(message: can.Message) -> int:
    """The ID our DBC holds the frame at: module 0 / controller 0xF0, error 0."""
    fields = InfyId.parse(message.arbitration_id)
    to_controller = fields.destination == 0xF0
    return InfyId(fields.command, 0xF0 if to_controller else 0, 0 if to_controller else 0xF0, fields.device).frame_id


def dbc(frame: can.Message, scaling: bool = True, choices: bool = True) -> dict[str, object]:
    """The frame decoded by the DBC alone, at its canonical ID."""
    decoded = DB.decode_message(canonical(frame), bytes(frame.data), decode_choices=choices, scaling=scaling)
    assert isinstance(decoded, dict)
    return dict(decoded)


def test_family_is_registered_and_dbc_is_extended_and_cited() -> None:
    assert family("infypower") is FAMILY
    assert (FAMILY.bitrate, FAMILY.poll_interval_s, FAMILY.drop_after_s, FAMILY.module_silence_off_s) == (
        125_000,
        1.0,
        15.0,
        10.0,
    )
    for message in DB.messages:
        assert message.is_extended_frame and message.length == 8
        assert message.comment


def test_set_vi_on_module_1_is_the_can_md_example_and_decodes_with_the_dbc_alone() -> None:
    frame = InfyPowerDriver(DB).command(1, ModuleCommand(on=False, voltage_v=750.0, current_a=50.0), None)[0]
    assert frame.arbitration_id == 0x029C01F0 and frame.is_extended_id
    assert bytes(frame.data) == bytes.fromhex("000B71B0 0000C350")  # 750000 mV, 50000 mA, uint32 BE
    assert dbc(frame, scaling=False) == {"Voltage": 750_000, "Current": 50_000}
    assert dbc(frame) == {"Voltage": 750.0, "Current": 50.0}


def test_on_off_codes_and_reads_are_zero_filled() -> None:
    driver = InfyPowerDriver(DB)
    on = driver.command(3, ModuleCommand(on=True, voltage_v=500.0, current_a=10.0), None)[1]
    assert on.arbitration_id == 0x029A03F0 and bytes(on.data) == bytes(8)  # 0x00 = on
    assert dbc(on) == {"OnOff": "on"}
    reads = driver.poll(3, rating_known=False)
    assert [InfyId.parse(f.arbitration_id).command for f in reads] == [0x03, 0x04, 0x0C, 0x0A, 0x0B]
    assert all(bytes(f.data) == bytes(8) for f in reads)
    assert len(driver.poll(3, rating_known=True)) == 3


def test_setpoints_are_applied_and_acknowledged() -> None:
    modules = make_modules()
    command = ModuleCommand(on=True, voltage_v=750.0, current_a=50.0)
    reports = exchange(InfyPowerDriver(DB).command(1, command, None), modules)
    assert reports == [
        ModuleReport(1, acknowledged="voltage/current"),
        ModuleReport(1, acknowledged="on/off"),
    ]
    assert (modules[1].voltage_v, modules[1].current_a, modules[1].on) == (750.0, 50.0, True)
    assert modules[0].on is False and modules[1].last_heard_s == 5.0 and modules[0].last_heard_s == 0.0


def test_only_changes_are_sent() -> None:
    driver = InfyPowerDriver(DB)
    before = ModuleCommand(on=False, voltage_v=500.0, current_a=20.0)
    frames = driver.command(0, ModuleCommand(on=True, voltage_v=500.0, current_a=20.0), before)
    assert [InfyId.parse(f.arbitration_id).command for f in frames] == [0x1A]
    assert driver.command(0, before, before) == []
    with pytest.raises(ValueError):
        driver.command(0, ModuleCommand(on=True, voltage_v=500.0, current_a=1.0, direction=Direction.IMPORT), None)


@pytest.mark.parametrize(("voltage_v", "current_a"), [(1200.0, 10.0), (500.0, 200.0)])
def test_out_of_range_is_refused_with_error_code_and_setting_unchanged(voltage_v: float, current_a: float) -> None:
    modules = make_modules()
    modules[0].voltage_v, modules[0].current_a = 400.0, 5.0
    frames = InfyPowerDriver(DB).command(0, ModuleCommand(on=False, voltage_v=voltage_v, current_a=current_a), None)
    plant = InfyPowerModule(DB)
    reply = plant.answer(frames[0], modules, 1.0)[0]
    assert InfyId.parse(reply.arbitration_id) == InfyId(0x1C, 0xF0, 0, error=3)
    assert InfyPowerDriver(DB).decode(reply) == ModuleReport(0, refused="error code 3: data invalid")
    assert (modules[0].voltage_v, modules[0].current_a) == (400.0, 5.0)


def test_poll_reports_readings_status_rating_and_serial() -> None:
    modules = make_modules()
    module = modules[1]
    module.on, module.output_v, module.output_a, module.serial = True, 401.5, 30.25, "0123456789ABCDEF"
    module.temperature_c = 41.0
    reports = exchange(InfyPowerDriver(DB).poll(1, rating_known=False), modules)
    assert all(r is not None and r.address == 1 for r in reports)
    vi, status, output, rating, serial = reports
    assert vi == ModuleReport(1, voltage_v=401.5, current_a=30.25)
    assert status is not None and status.status is not None
    assert (status.status.off, status.status.fault, status.status.derated, status.status.temperature_c) == (
        False,
        None,
        False,
        41.0,
    )
    assert output is not None and output.voltage_v == pytest.approx(401.5)
    assert rating == ModuleReport(1, rating=FAMILY.rating)
    assert serial is not None and serial.serial is not None and serial.serial.startswith("C")


def test_replies_swap_addresses() -> None:
    modules = make_modules(3)
    request = InfyPowerDriver(DB).poll(2, rating_known=True)[0]
    (reply,) = InfyPowerModule(DB).answer(request, modules, 1.0)
    assert reply.arbitration_id == 0x0283F002  # command 0x03, destination 0xF0, source 2


def test_fault_and_derating_round_trip_through_the_status_bits() -> None:
    modules = make_modules()
    modules[0].fault, modules[0].derate = "output over-voltage", 0.5
    status_read = InfyPowerDriver(DB).poll(0, rating_known=True)[1]
    (reply,) = InfyPowerModule(DB).answer(status_read, modules, 1.0)
    bits = dbc(reply)
    assert (bits["OutputOverVoltage"], bits["FaultAlarm"], bits["DcSideOff"], bits["PowerLimit"]) == (1, 1, 1, 1)
    report = InfyPowerDriver(DB).decode(reply)
    assert report is not None and report.status is not None
    assert (report.status.fault, report.status.off, report.status.derated) == ("output over-voltage", True, True)
    modules[0].fault = "something the table does not name"
    (reply,) = InfyPowerModule(DB).answer(status_read, modules, 1.0)
    report = InfyPowerDriver(DB).decode(reply)
    assert report is not None and report.status is not None and report.status.fault == "fault alarm"


def test_a_latched_fault_refuses_switching_on() -> None:
    modules = make_modules(1)
    modules[0].fault = "over-temperature"
    command = ModuleCommand(on=True, voltage_v=500.0, current_a=10.0)
    reports = exchange(InfyPowerDriver(DB).command(0, command, None), modules)
    assert reports[1] == ModuleReport(0, refused="error code 3: data invalid") and modules[0].on is False


def test_discovery_counts_the_live_modules_of_group_0() -> None:
    modules = make_modules(4)
    modules[2].alive = False
    modules[3].group = 1
    (query,) = InfyPowerDriver(DB).discovery()
    assert query.arbitration_id == 0x02C200F0
    assert exchange([query], modules) == [ModuleReport(0, module_count=2)]


def test_frames_for_others_and_lost_modules_are_ignored() -> None:
    modules = make_modules()
    driver, plant = InfyPowerDriver(DB), InfyPowerModule(DB)
    (read,) = driver.poll(0, rating_known=True)[:1]
    (reply,) = plant.answer(read, modules, 1.0)
    other = can.Message(arbitration_id=reply.arbitration_id + 0x0100, data=reply.data, is_extended_id=True)  # to 0xF1
    assert InfyId.parse(other.arbitration_id).destination == 0xF1 and driver.decode(other) is None
    assert driver.decode(can.Message(arbitration_id=0x123, data=reply.data, is_extended_id=False)) is None
    assert driver.decode(can.Message(arbitration_id=reply.arbitration_id, data=reply.data[:7])) is None
    assert plant.answer(reply, modules, 2.0) == []  # a module's reply is no request
    modules[0].alive = False
    assert plant.answer(read, modules, 3.0) == [] and modules[0].last_heard_s == 1.0


def test_rating_and_output_replies_use_the_documented_scaling() -> None:
    modules = make_modules(1)
    modules[0].output_v, modules[0].derate = 800.0, 0.5
    rating_read, output_read = (InfyPowerDriver(DB).poll(0, rating_known=False)[i] for i in (3, 2))
    (rating,) = InfyPowerModule(DB).answer(rating_read, modules, 1.0)
    assert bytes(rating.data) == bytes.fromhex("03E8 0096 0535 0FA0")  # 1000 V, 150 V, 133.3 A x0.1, 40 kW x10 W
    (output,) = InfyPowerModule(DB).answer(output_read, modules, 1.0)
    assert dbc(output, scaling=False) == {"DiodeVoltage": 8000, "AvailableCurrent": 250}  # 20 kW at 800 V: 25.0 A
