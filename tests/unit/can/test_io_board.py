"""The I/O board profile: the controller's driver against the board's codec."""

from __future__ import annotations

import can
import pytest

from evse_emulator.hal.can.family import load_dbc
from evse_emulator.hal.can.io_board import DBC, IoBoardCodec, IoBoardDriver, IoCommand
from evse_emulator.hal.interfaces import (
    Contactors,
    ContactorState,
    FaultKind,
    ImdStatus,
    IsolationMonitor,
    Meter,
    MeterSnapshot,
)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sent() -> list[can.Message]:
    return []


@pytest.fixture
def driver(sent: list[can.Message], clock: Clock) -> IoBoardDriver:
    return IoBoardDriver(send=sent.extend, now=clock, mcs=True)


@pytest.fixture
def board() -> IoBoardCodec:
    return IoBoardCodec()


def status(
    board: IoBoardCodec,
    contactor: ContactorState = ContactorState.OPEN,
    contactor_fault: FaultKind | None = None,
    imd: ImdStatus = ImdStatus.IDLE,
    imd_fault: FaultKind | None = None,
    watchdog: bool = False,
    resistance_ohm: float | None = None,
) -> can.Message:
    return board.status_frames(contactor, contactor_fault, imd, imd_fault, watchdog, resistance_ohm)


def test_the_devices_implement_the_hal(driver: IoBoardDriver) -> None:
    contactors: Contactors = driver.contactors
    imd: IsolationMonitor = driver.imd
    meter: Meter = driver.meter
    assert contactors.state() is ContactorState.OPEN and imd.status() is ImdStatus.IDLE and meter.imported_wh() == 0


def test_commands_are_sent_at_once_and_decode_on_the_board(driver, board, sent) -> None:
    driver.contactors.close()
    driver.imd.start(test_voltage_v=1100.0)
    assert [board.decode_command(m) for m in sent] == [
        IoCommand(contactor_close=True, imd_run=False, imd_test_voltage_v=0.0, mcs=True, counter=0),
        IoCommand(contactor_close=True, imd_run=True, imd_test_voltage_v=1100.0, mcs=True, counter=1),
    ]
    assert sent[0].arbitration_id == 0x18F00100 and sent[0].is_extended_id


def test_the_heartbeat_repeats_the_command_with_a_rolling_counter(driver, board, sent) -> None:
    for _ in range(300):
        driver.heartbeat()
    commands = [board.decode_command(m) for m in sent]
    assert [c.counter for c in commands if c][254:258] == [254, 255, 0, 1]
    assert board.decode_command(can.Message(arbitration_id=0x18F00200, is_extended_id=True, data=bytes(8))) is None


def test_closing_until_the_board_reports(driver, board) -> None:
    driver.on_frame(status(board))
    driver.contactors.close()
    assert driver.contactors.state() is ContactorState.CLOSING
    driver.on_frame(status(board, ContactorState.OPEN))  # in flight from before the command
    assert driver.contactors.state() is ContactorState.CLOSING
    driver.on_frame(status(board, ContactorState.CLOSED))
    assert driver.contactors.state() is ContactorState.CLOSED
    driver.contactors.close()  # repeated: nothing to wait for
    assert driver.contactors.state() is ContactorState.CLOSED
    driver.contactors.open()
    assert driver.contactors.state() is ContactorState.OPENING
    driver.on_frame(status(board, ContactorState.OPEN))
    assert driver.contactors.state() is ContactorState.OPEN and driver.contactors.fault() is None


@pytest.mark.parametrize(
    ("state", "kind", "name"),
    [
        (ContactorState.WELDED, FaultKind.CONTACTOR_WELDED, "welded"),
        (ContactorState.OPEN, FaultKind.CONTACTOR_FAILED_TO_CLOSE, "failed_to_close"),
    ],
)
def test_contactor_faults_latch(driver, board, clock, state, kind, name) -> None:
    driver.contactors.close()
    clock.t = 101.5
    driver.on_frame(status(board, state, kind))
    driver.on_frame(status(board, state))
    fault = driver.contactors.fault()
    assert fault is not None and fault.kind is kind and fault.time_s == 101.5
    assert fault.detail == f"ContactorFault {name}, ContactorState {state.value}"
    assert driver.contactors.state() is state


def test_imd_run_and_insulation_fault(driver, board, clock) -> None:
    driver.imd.start(1100.0)
    assert driver.imd.status() is ImdStatus.ONGOING and driver.imd.resistance_ohm() is None
    driver.on_frame(status(board, imd=ImdStatus.OK, resistance_ohm=2_000_000.0))
    assert driver.imd.status() is ImdStatus.OK and driver.imd.resistance_ohm() == 2_000_000.0
    clock.t = 102.0
    driver.on_frame(status(board, imd=ImdStatus.FAULT, imd_fault=FaultKind.INSULATION_FAULT, resistance_ohm=80_000.0))
    fault = driver.imd.fault()
    assert fault is not None and fault.kind is FaultKind.INSULATION_FAULT and fault.time_s == 102.0
    assert "InsulationResistance 80 kΩ" in fault.detail
    driver.imd.stop()
    assert driver.imd.status() is ImdStatus.IDLE


def test_imd_self_test_failure(driver, board) -> None:
    driver.imd.start(500.0)
    driver.on_frame(status(board, imd=ImdStatus.FAULT, imd_fault=FaultKind.IMD_SELF_TEST_FAILED))
    fault = driver.imd.fault()
    assert fault is not None and fault.kind is FaultKind.IMD_SELF_TEST_FAILED and "not measured" in fault.detail
    assert driver.imd.status() is ImdStatus.FAULT


def test_a_fault_kind_of_another_device_is_refused(board) -> None:
    with pytest.raises(ValueError):
        status(board, contactor_fault=FaultKind.INSULATION_FAULT)


def test_watchdog_trip_is_reported(driver, board) -> None:
    driver.contactors.close()
    driver.on_frame(status(board, ContactorState.OPEN, watchdog=True))
    assert driver.watchdog_tripped and driver.contactors.state() is ContactorState.OPEN


def test_meter_and_energy(driver, board, clock) -> None:
    clock.t = 105.0
    driver.on_frame(board.meter_frame(800.0, -250.5))
    clock.t = 105.3
    driver.on_frame(board.energy_frame(12_345.6, 789.1))
    reading = driver.meter.read()
    assert isinstance(reading, MeterSnapshot)
    assert (reading.imported_wh, reading.exported_wh) == (pytest.approx(12_345.6), pytest.approx(789.1))
    assert (reading.power_w, reading.timestamp_s) == (-200_400.0, 105.3)
    assert driver.meter.power_w() == -200_400.0 and driver.meter.timestamp_s() == 105.3
    assert driver.silent_for(106.0) == pytest.approx(0.7)


def test_silence_counts_from_the_start(driver) -> None:
    driver.on_frame(can.Message(arbitration_id=0x06080780, is_extended_id=True, data=bytes(8)))  # not the board's
    assert driver.silent_for(103.0) == pytest.approx(3.0)


def decoded(frame: can.Message) -> dict[str, float | str]:
    """A frame decoded with the DBC alone (no codec)."""
    signals = load_dbc(DBC).decode_message(frame.arbitration_id, bytes(frame.data))
    assert isinstance(signals, dict)
    return {key: value if isinstance(value, int | float) else str(value) for key, value in signals.items()}


def test_frames_decode_with_the_dbc_alone(board) -> None:
    welded = decoded(status(board, ContactorState.WELDED, FaultKind.CONTACTOR_WELDED, resistance_ohm=None))
    assert welded["ContactorState"] == "welded" and welded["ContactorFault"] == "welded"
    assert welded["InsulationResistance"] == "not_measured"
    assert decoded(board.meter_frame(1250.0, 3000.0)) == {"Voltage": 1250.0, "Current": 3000.0}
    assert decoded(board.energy_frame(10.5, 0.0)) == {"Imported": 10.5, "Exported": 0.0}
