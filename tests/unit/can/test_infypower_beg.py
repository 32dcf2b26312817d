"""InfyPower BEG1K075G (BEC/BEG V1.04): the DBC against CAN.md section 2, and round trips through both codecs."""

from __future__ import annotations

from dataclasses import replace

import can
import pytest

from evse_emulator.hal.can.family import family
from evse_emulator.hal.can.infy_id import InfyId
from evse_emulator.hal.can.infypower_beg import FAMILY, InfyPowerBegDriver, InfyPowerBegModule
from evse_emulator.hal.can.model import Direction, EmulatedModule, ModuleCommand, ModuleReport

DB = FAMILY.database()
EXPORT = ModuleCommand(on=True, voltage_v=750.0, current_a=50.0)


def make_modules(count: int = 2) -> list[EmulatedModule]:
    return [EmulatedModule(address=a, rating=FAMILY.rating) for a in range(count)]


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


def registers(frames: list[can.Message]) -> list[str]:
    return [str(dbc(f)["Register"]) for f in frames]


class Link:
    """A driver and a plant of modules on one bus."""

    def __init__(self, modules: list[EmulatedModule]) -> None:
        self.modules, self.driver, self.plant = modules, InfyPowerBegDriver(DB), InfyPowerBegModule(DB)

    def exchange(self, frames: list[can.Message], now: float = 5.0) -> list[ModuleReport | None]:
        return [self.driver.decode(r) for f in frames for r in self.plant.answer(f, self.modules, now)]


def test_family_is_registered_with_the_b_rating() -> None:
    assert family("infypower-beg") is FAMILY
    assert (FAMILY.bitrate, FAMILY.poll_interval_s, FAMILY.drop_after_s) == (125_000, 1.0, 3.0)
    rating = FAMILY.rating
    assert (rating.min_voltage_v, rating.max_voltage_v, rating.max_current_a, rating.rated_power_w) == (
        200.0,
        1000.0,
        73.3,
        22_000.0,
    )
    assert rating.bidirectional
    assert all(m.is_extended_frame and m.comment for m in DB.messages)


def test_voltage_write_to_module_1_decodes_with_the_dbc_alone() -> None:
    frames = InfyPowerBegDriver(DB).command(1, EXPORT, None)
    voltage = frames[registers(frames).index("DcVoltage")]
    assert voltage.arbitration_id == 0x02A401F0  # write, device 0x0A, module 1, controller 0xF0
    assert bytes(voltage.data) == bytes.fromhex("1001 0000 000B71B0")  # register 0x1001, 750000 mV
    raw = dbc(voltage, scaling=False, choices=False)
    assert raw == {"Register": 0x1001, "Voltage": 750_000}
    on = frames[-1]
    assert bytes(on.data) == bytes.fromhex("1110 0000 000000A0")
    assert dbc(on) == {"Register": "OnOff", "OnOff": "on"}


def test_switching_on_writes_the_working_mode_first_and_setpoints_apply() -> None:
    link = Link(make_modules())
    frames = link.driver.command(1, EXPORT, None)
    assert registers(frames) == ["OnOff", "WorkingMode", "DcVoltage", "DcCurrent", "OnOff"]
    reports = link.exchange(frames)
    assert [r.acknowledged if r else None for r in reports] == registers(frames)
    module = link.modules[1]
    assert (module.on, module.direction, module.voltage_v, module.current_a) == (True, Direction.EXPORT, 750.0, 50.0)
    assert module.last_heard_s == 5.0 and link.modules[0].last_heard_s == 0.0
    assert link.driver.command(1, EXPORT, EXPORT) == []


def test_import_switches_off_then_inverter_and_current_reads_negative() -> None:
    link = Link(make_modules())
    link.exchange(link.driver.command(0, EXPORT, None))
    importing = ModuleCommand(on=True, voltage_v=300.0, current_a=20.0, direction=Direction.IMPORT)
    frames = link.driver.command(0, importing, EXPORT)
    assert registers(frames) == ["OnOff", "WorkingMode", "DcVoltage", "DcCurrent", "OnOff"]
    assert all(r is not None and r.refused is None for r in link.exchange(frames))
    module = link.modules[0]
    assert (module.on, module.direction, module.voltage_v, module.current_a) == (True, Direction.IMPORT, 300.0, 20.0)
    module.output_v, module.output_a = 310.0, -19.5
    status, inverter, voltage, current = link.exchange(link.driver.poll(0, rating_known=True))
    assert inverter is not None and inverter.status is not None and inverter.status.inverter
    assert voltage == ModuleReport(0, voltage_v=310.0)
    assert current == ModuleReport(0, current_a=-19.5)


def test_unidirectional_module_refuses_inverter_mode() -> None:
    link = Link([EmulatedModule(address=0, rating=replace(FAMILY.rating, bidirectional=False))])
    importing = ModuleCommand(on=False, voltage_v=300.0, current_a=20.0, direction=Direction.IMPORT)
    frames = link.driver.command(0, importing, ModuleCommand(on=False, voltage_v=300.0, current_a=20.0))
    assert link.exchange(frames) == [ModuleReport(0, refused="WorkingMode: error code 3: data invalid")]
    assert link.modules[0].direction is Direction.EXPORT


@pytest.mark.parametrize(
    ("voltage_v", "current_a", "register"), [(1200.0, 10.0, "DcVoltage"), (500.0, 80.0, "DcCurrent")]
)
def test_out_of_range_is_refused_with_code_3_and_setting_unchanged(
    voltage_v: float, current_a: float, register: str
) -> None:
    link = Link(make_modules())
    link.modules[0].voltage_v, link.modules[0].current_a = 400.0, 5.0
    frames = link.driver.command(0, ModuleCommand(on=False, voltage_v=voltage_v, current_a=current_a), None)
    refusals = [r for r in link.exchange(frames) if r is not None and r.refused]
    assert refusals == [ModuleReport(0, refused=f"{register}: error code 3: data invalid")]
    module = link.modules[0]
    assert (module.voltage_v, module.current_a) == ((400.0, 10.0) if register == "DcVoltage" else (500.0, 5.0))


def test_poll_reads_status_and_capabilities_into_a_rating() -> None:
    link = Link(make_modules())
    link.modules[1].fault, link.modules[1].derate = "output short circuit", 0.8
    frames = link.driver.poll(1, rating_known=False)
    assert registers(frames) == [
        "ModuleStatus",
        "InverterStatus",
        "DcVoltage",
        "DcCurrent",
        "MaxVoltage",
        "MinVoltage",
        "MaxCurrent",
        "RatedPower",
    ]
    reports = link.exchange(frames)
    status = reports[0]
    assert status is not None and status.status is not None
    assert (status.status.fault, status.status.off, status.status.derated, status.status.inverter) == (
        "output short circuit",
        True,
        True,
        False,
    )
    rating = reports[-1]
    assert rating is not None and rating.rating is not None
    assert rating.rating.max_current_a == pytest.approx(73.3) and rating.rating.bidirectional
    assert (rating.rating.max_voltage_v, rating.rating.min_voltage_v, rating.rating.rated_power_w) == (
        1000.0,
        200.0,
        22_000.0,
    )
    assert all(r is not None and r.rating is None for r in reports[4:-1])  # not until all four are in
    assert len(link.driver.poll(1, rating_known=True)) == 4


def test_read_replies_reuse_the_register_with_command_0x23() -> None:
    link = Link(make_modules())
    link.modules[0].output_v = 500.0
    read = link.driver.poll(0, rating_known=True)[2]
    (reply,) = link.plant.answer(read, link.modules, 1.0)
    assert reply.arbitration_id == 0x02A3F000
    assert dbc(reply, scaling=False, choices=False) == {
        "Register": 0x1001,
        "Voltage": 500_000,
    }


def test_discovery_counts_the_live_modules_of_group_0() -> None:
    link = Link(make_modules(4))
    link.modules[3].alive = False
    (query,) = link.driver.discovery()
    assert query.arbitration_id == 0x02E300F0  # as C reads its group
    assert link.exchange([query]) == [ModuleReport(0, module_count=3)]


def test_broadcast_and_group_writes_as_b_and_c_send_them() -> None:
    link = Link(make_modules(3))
    one = link.driver.command(0, EXPORT, None)
    for frame in one:  # resend module 0's frames as B does (broadcast 0x3F) and check every module follows
        fields = InfyId.parse(frame.arbitration_id)
        frame.arbitration_id = InfyId(fields.command, 0x3F, 0xF0).frame_id
    reports = link.exchange(one)
    assert all(m.on and m.voltage_v == 750.0 for m in link.modules)
    assert [m.current_a for m in link.modules] == pytest.approx([50.0 / 3] * 3)  # whole-group current, split
    assert sum(1 for r in reports if r and r.acknowledged == "DcCurrent") == 1  # the group master answers 0x10xx
    assert sum(1 for r in reports if r and r.acknowledged == "OnOff") == 6  # every module answers on/off


def test_unknown_register_is_answered_with_code_2() -> None:
    link = Link(make_modules(1))
    read = link.driver.poll(0, rating_known=True)[0]
    read.data = bytearray(bytes.fromhex("4101000000000000"))  # DC high side voltage: not emulated (raw input)
    assert link.exchange([read]) == [ModuleReport(0, refused="register 0x4101: error code 2: command invalid")]


def test_frames_for_others_and_lost_modules_are_ignored() -> None:
    link = Link(make_modules())
    read = link.driver.poll(0, rating_known=True)[0]
    (reply,) = link.plant.answer(read, link.modules, 1.0)
    fields = InfyId.parse(reply.arbitration_id)
    other = can.Message(arbitration_id=InfyId(fields.command, 0xF1, fields.source).frame_id, data=reply.data)
    assert link.driver.decode(other) is None
    assert link.driver.decode(can.Message(arbitration_id=0x123, data=reply.data, is_extended_id=False)) is None
    assert link.driver.decode(can.Message(arbitration_id=reply.arbitration_id, data=reply.data[:7])) is None
    assert link.plant.answer(reply, link.modules, 2.0) == []
    link.modules[0].alive = False
    assert link.plant.answer(read, link.modules, 3.0) == [] and link.modules[0].last_heard_s == 1.0
