"""The charger's I/O board over CAN: contactors, insulation monitor, DC meter (our own profile, `io_board.dbc`).

Real boards differ; this profile is documented in the DBC. The controller sends IO_Command on every change and
every 100 ms (the board's watchdog heartbeat); the board reports IO_Status and IO_Meter every 100 ms and
IO_Energy every second. If IO_Command is missing for `WATCHDOG_S`, the board trips: it cuts the power modules'
enable (the hardware interlock), opens the contactors and reports WatchdogTripped (the plant emulator does that).

Sans-I/O: `IoBoardDriver` (the controller's side) sends through a callback and is fed received frames;
`IoBoardCodec` (the plant's side) decodes commands and builds the board's frames.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import can
from cantools.database.can import Database
from cantools.database.can.message import Message as DbcMessage

from ..interfaces import ContactorState, DcReading, FaultKind, ImdStatus, MeterSnapshot, PlantFault
from . import memo
from .family import load_dbc

DBC = "io_board.dbc"
COMMAND_ID, STATUS_ID, METER_ID, ENERGY_ID = 0x18F00100, 0x18F00200, 0x18F00300, 0x18F00400
COMMAND_PERIOD_S = 0.1  # IO_Command heartbeat
STATUS_PERIOD_S = 0.1  # IO_Status and IO_Meter
ENERGY_PERIOD_S = 1.0  # IO_Energy
WATCHDOG_S = 0.5  # the board trips when IO_Command is missing this long
NOT_MEASURED = 0xFFFF  # InsulationResistance

# value-table names of the fault signals <-> the HAL's fault kinds
CONTACTOR_FAULTS: Mapping[str, FaultKind] = {
    "welded": FaultKind.CONTACTOR_WELDED,
    "failed_to_close": FaultKind.CONTACTOR_FAILED_TO_CLOSE,
}
EMERGENCY_TRIPS: Mapping[str, FaultKind] = {
    "over_voltage": FaultKind.OVER_VOLTAGE,
    "over_current": FaultKind.OVER_CURRENT,
}
IMD_FAULTS: Mapping[str, FaultKind] = {
    "insulation_fault": FaultKind.INSULATION_FAULT,
    "imd_self_test_failed": FaultKind.IMD_SELF_TEST_FAILED,
}


@dataclass(frozen=True, slots=True)
class IoCommand:
    """What the controller asks of the board (IO_Command)."""

    contactor_close: bool
    imd_run: bool
    imd_test_voltage_v: float
    mcs: bool  # insulation fault threshold 125 kOhm (MCS) instead of 100 kOhm (CCS)
    counter: int
    negotiated_max_voltage_v: float = 0.0  # arms the over-voltage monitor (0: from the rating)
    negotiated_max_current_a: float = 0.0  # arms the over-current monitor (0: from the rating)


@dataclass(frozen=True, slots=True)
class IoStatus:
    """The board's IO_Status, decoded."""

    contactor_state: ContactorState
    contactor_fault: FaultKind | None
    imd_status: ImdStatus
    imd_fault: FaultKind | None
    watchdog_tripped: bool
    resistance_ohm: float | None
    emergency: FaultKind | None = None  # the board's protection tripped (over-voltage, over-current)


def _frame(definition: DbcMessage, signals: Mapping[str, float | str]) -> can.Message:
    return can.Message(arbitration_id=definition.frame_id, is_extended_id=True, data=memo.encode(definition, signals))


def _decode(definition: DbcMessage, message: can.Message) -> Mapping[str, object] | None:
    """The signals of `message` if it is `definition`'s frame (value-table signals by name); None otherwise."""
    if not message.is_extended_id or message.arbitration_id != definition.frame_id or len(message.data) != 8:
        return None
    return memo.decode(definition, message.data)


def _number(value: object) -> float:
    if not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _decode_status(signals: Mapping[str, object]) -> IoStatus:
    resistance = signals["InsulationResistance"]
    return IoStatus(
        contactor_state=ContactorState(str(signals["ContactorState"])),
        contactor_fault=CONTACTOR_FAULTS.get(str(signals["ContactorFault"])),
        imd_status=ImdStatus(str(signals["ImdStatus"])),
        imd_fault=IMD_FAULTS.get(str(signals["ImdFault"])),
        watchdog_tripped=str(signals["WatchdogTripped"]) == "tripped",
        resistance_ohm=_number(resistance) * 1000.0 if isinstance(resistance, int | float) else None,
        emergency=EMERGENCY_TRIPS.get(str(signals["EmergencyTrip"])),
    )


class IoBoardCodec:
    """The board's side (used by the plant emulator): decode IO_Command, build IO_Status/IO_Meter/IO_Energy."""

    def __init__(self, db: Database | None = None) -> None:
        self.db = db or load_dbc(DBC)
        self._command = self.db.get_message_by_name("IO_Command")
        self._status = self.db.get_message_by_name("IO_Status")
        self._meter = self.db.get_message_by_name("IO_Meter")
        self._energy = self.db.get_message_by_name("IO_Energy")

    def command_frame(self, signals: Mapping[str, float | str]) -> can.Message:
        """IO_Command (the controller's side builds it)."""
        return _frame(self._command, signals)

    def decode_command(self, message: can.Message) -> IoCommand | None:
        signals = _decode(self._command, message)
        if signals is None:
            return None
        return IoCommand(
            contactor_close=str(signals["ContactorRequest"]) == "close",
            imd_run=str(signals["ImdRun"]) == "start",
            imd_test_voltage_v=_number(signals["ImdTestVoltage"]),
            mcs=str(signals["Mcs"]) == "mcs_125k",
            counter=int(_number(signals["Counter"])),
            negotiated_max_voltage_v=_number(signals["NegotiatedMaxVoltage"]),
            negotiated_max_current_a=_number(signals["NegotiatedMaxCurrent"]),
        )

    def decode_status(self, message: can.Message) -> IoStatus | None:
        """IO_Status, or None for another frame or one whose states are outside the profile's value tables."""
        signals = _decode(self._status, message)
        if signals is None:
            return None
        try:
            return _decode_status(signals)
        except ValueError:  # a raw state the profile does not define: not a frame of a board that follows it
            return None

    def decode_meter(self, message: can.Message) -> tuple[float, float] | None:
        """(voltage V, current A) of IO_Meter."""
        signals = _decode(self._meter, message)
        return None if signals is None else (_number(signals["Voltage"]), _number(signals["Current"]))

    def decode_energy(self, message: can.Message) -> tuple[float, float] | None:
        """(imported Wh, exported Wh) of IO_Energy."""
        signals = _decode(self._energy, message)
        return None if signals is None else (_number(signals["Imported"]), _number(signals["Exported"]))

    def status_frames(
        self,
        contactor_state: ContactorState,
        contactor_fault_kind: FaultKind | None,
        imd_status: ImdStatus,
        imd_fault_kind: FaultKind | None,
        watchdog_tripped: bool,
        resistance_ohm: float | None,
        emergency_kind: FaultKind | None = None,
    ) -> can.Message:
        """IO_Status; a fault kind that does not belong to the device raises ValueError."""
        kohm = NOT_MEASURED if resistance_ohm is None else min(max(round(resistance_ohm / 1000.0), 0), NOT_MEASURED - 1)
        return _frame(
            self._status,
            {
                "ContactorState": contactor_state.value,
                "ContactorFault": _fault_name(CONTACTOR_FAULTS, contactor_fault_kind),
                "ImdStatus": imd_status.value,
                "ImdFault": _fault_name(IMD_FAULTS, imd_fault_kind),
                "WatchdogTripped": int(watchdog_tripped),
                "EmergencyTrip": _fault_name(EMERGENCY_TRIPS, emergency_kind),
                "InsulationResistance": kohm,
            },
        )

    def meter_frame(self, voltage_v: float, current_a: float) -> can.Message:
        return _frame(self._meter, {"Voltage": max(voltage_v, 0.0), "Current": current_a})

    def energy_frame(self, imported_wh: float, exported_wh: float) -> can.Message:
        return _frame(self._energy, {"Imported": imported_wh, "Exported": exported_wh})


def _fault_name(table: Mapping[str, FaultKind], kind: FaultKind | None) -> str:
    if kind is None:
        return "none"
    for name, known in table.items():
        if known is kind:
            return name
    raise ValueError(f"{kind} is not one of {', '.join(k.value for k in table.values())}")


@dataclass
class _Pending:
    """What the controller asked for and the board has not confirmed yet: shown instead of the stale reports."""

    shown: str
    stale: frozenset[str]


def _pending(shown: str, stale: set[str], current: str) -> _Pending | None:
    """A pending state, unless what is shown now already answers the request (a repeated close while closed)."""
    return _Pending(shown, frozenset(stale)) if current in stale else None


class _BoardContactors:
    """`Contactors` over the board."""

    def __init__(self, board: IoBoardDriver) -> None:
        self._board = board

    def close(self) -> None:
        self._board.request_contactors(close=True)

    def open(self) -> None:
        self._board.request_contactors(close=False)

    def state(self) -> ContactorState:
        return self._board.contactor_state()

    def fault(self) -> PlantFault | None:
        return self._board.contactor_fault


class _BoardImd:
    """`IsolationMonitor` over the board."""

    def __init__(self, board: IoBoardDriver) -> None:
        self._board = board

    def start(self, test_voltage_v: float) -> None:
        self._board.request_imd(run=True, test_voltage_v=test_voltage_v)

    def stop(self) -> None:
        self._board.request_imd(run=False, test_voltage_v=0.0)

    def status(self) -> ImdStatus:
        return self._board.imd_status()

    def resistance_ohm(self) -> float | None:
        return self._board.last_status.resistance_ohm if self._board.last_status else None

    def fault(self) -> PlantFault | None:
        return self._board.imd_fault


class _BoardMeter:
    """`Meter` over the board."""

    def __init__(self, board: IoBoardDriver) -> None:
        self._board = board

    def imported_wh(self) -> float:
        return self._board.reading.imported_wh

    def exported_wh(self) -> float:
        return self._board.reading.exported_wh

    def power_w(self) -> float:
        return self._board.reading.power_w

    def timestamp_s(self) -> float:
        return self._board.reading.timestamp_s

    def read(self) -> MeterSnapshot:
        return self._board.reading


class IoBoardDriver:
    """The controller's side: sends IO_Command, keeps the board's last reports, latches its faults.

    After `close()` the contactors read CLOSING until the board reports anything but OPEN/OPENING (or a fault,
    or a tripped watchdog); after `open()` OPENING until it reports anything but CLOSED/CLOSING. The IMD reads
    ONGOING after `start()` until the board leaves IDLE, and IDLE after `stop()` until it reports IDLE.
    A frame still in flight from before the command therefore cannot undo it.
    """

    def __init__(
        self,
        send: Callable[[list[can.Message]], None],
        now: Callable[[], float],
        mcs: bool = False,
        db: Database | None = None,
    ) -> None:
        self._send = send
        self._now = now
        self.mcs = mcs
        self._codec = IoBoardCodec(db)
        self._close = False
        self._imd_run = False
        self._test_voltage_v = 0.0
        self._negotiated_max_v = 0.0
        self._negotiated_max_a = 0.0
        self._counter = 0
        self._last_frame_s = now()
        self._contactor_pending: _Pending | None = None
        self._imd_pending: _Pending | None = None
        self.last_status: IoStatus | None = None
        self.contactor_fault: PlantFault | None = None
        self.imd_fault: PlantFault | None = None
        self.emergency_fault: PlantFault | None = None
        self.dc: DcReading | None = None  # IO_Meter: the terminals' voltage and current
        self.reading = MeterSnapshot(imported_wh=0.0, exported_wh=0.0, power_w=0.0, timestamp_s=self._last_frame_s)
        self.contactors = _BoardContactors(self)
        self.imd = _BoardImd(self)
        self.meter = _BoardMeter(self)

    # commands

    def request_contactors(self, close: bool) -> None:
        self._close = close
        if close:
            self._contactor_pending = _pending(ContactorState.CLOSING, {"open", "opening"}, self.contactor_state())
        else:
            self._contactor_pending = _pending(ContactorState.OPENING, {"closed", "closing"}, self.contactor_state())
        self.heartbeat()

    def arm(self, negotiated_max_voltage_v: float | None, negotiated_max_current_a: float | None = None) -> None:
        """Arm the over-voltage and over-current monitor for the negotiated maxima (None: the charger's rating)."""
        self._negotiated_max_v = negotiated_max_voltage_v or 0.0
        self._negotiated_max_a = negotiated_max_current_a or 0.0
        self.emergency_fault = None  # re-armed (a board still tripped reports it again)
        self.heartbeat()

    def request_imd(self, run: bool, test_voltage_v: float) -> None:
        if run:
            self.imd_fault = None  # a new measurement: the board restarts its IMD
        self._imd_run = run
        self._test_voltage_v = test_voltage_v
        if run:
            self._imd_pending = _pending(ImdStatus.ONGOING, {"idle"}, self.imd_status())
        else:
            self._imd_pending = _pending(ImdStatus.IDLE, {"ongoing", "ok", "fault"}, self.imd_status())
        self.heartbeat()

    def heartbeat(self) -> can.Message:
        """Send IO_Command now (call every `COMMAND_PERIOD_S`; commands call it too) and return it."""
        message = self._codec.command_frame(
            {
                "ContactorRequest": int(self._close),
                "ImdRun": int(self._imd_run),
                "ImdTestVoltage": min(max(self._test_voltage_v, 0.0), 1600.0),
                "Mcs": int(self.mcs),
                "Counter": self._counter,
                "NegotiatedMaxVoltage": min(max(self._negotiated_max_v, 0.0), 1600.0),
                "NegotiatedMaxCurrent": min(max(self._negotiated_max_a, 0.0), 6553.5),
            },
        )
        self._counter = (self._counter + 1) % 256
        self._send([message])
        return message

    # reports

    def on_frame(self, message: can.Message) -> None:
        """Take in a board frame; other frames are ignored."""
        if (status := self._codec.decode_status(message)) is not None:
            self._on_status(status)
        elif (dc := self._codec.decode_meter(message)) is not None:
            reading = self.reading
            self.dc = DcReading(dc[0], dc[1])
            self.reading = MeterSnapshot(reading.imported_wh, reading.exported_wh, dc[0] * dc[1], self._now())
        elif (energy := self._codec.decode_energy(message)) is not None:
            self.reading = MeterSnapshot(energy[0], energy[1], self.reading.power_w, self._now())
        else:
            return
        self._last_frame_s = self._now()

    def _on_status(self, status: IoStatus) -> None:
        self.last_status = status
        confirmed = status.watchdog_tripped
        if status.contactor_fault is not None:
            self.contactor_fault = self.contactor_fault or PlantFault(
                status.contactor_fault,
                f"ContactorFault {_fault_name(CONTACTOR_FAULTS, status.contactor_fault)}, "
                f"ContactorState {status.contactor_state.value}",
                self._now(),
            )
        if status.emergency is not None:
            self.emergency_fault = self.emergency_fault or PlantFault(
                status.emergency,
                f"EmergencyTrip {_fault_name(EMERGENCY_TRIPS, status.emergency)}"
                + (f", output {self.dc.voltage_v:.0f} V {self.dc.current_a:.0f} A" if self.dc else ""),
                self._now(),
            )
        if status.imd_fault is not None:
            self.imd_fault = self.imd_fault or PlantFault(
                status.imd_fault,
                f"ImdFault {_fault_name(IMD_FAULTS, status.imd_fault)}, "
                f"InsulationResistance {_kohm(status.resistance_ohm)}",
                self._now(),
            )
        if confirmed or status.contactor_fault or self._left(self._contactor_pending, status.contactor_state):
            self._contactor_pending = None
        if confirmed or status.imd_fault or self._left(self._imd_pending, status.imd_status):
            self._imd_pending = None

    @staticmethod
    def _left(pending: _Pending | None, reported: str) -> bool:
        return pending is not None and reported not in pending.stale

    def contactor_state(self) -> ContactorState:
        if self._contactor_pending is not None:
            return ContactorState(self._contactor_pending.shown)
        return self.last_status.contactor_state if self.last_status else ContactorState.OPEN

    def imd_status(self) -> ImdStatus:
        if self._imd_pending is not None:
            return ImdStatus(self._imd_pending.shown)
        return self.last_status.imd_status if self.last_status else ImdStatus.IDLE

    @property
    def watchdog_tripped(self) -> bool:
        return self.last_status is not None and self.last_status.watchdog_tripped

    def silent_for(self, now: float) -> float:
        """Seconds since the last board frame (since construction before the first one)."""
        return now - self._last_frame_s


def _kohm(resistance_ohm: float | None) -> str:
    return "not measured" if resistance_ohm is None else f"{resistance_ohm / 1000.0:g} kΩ"
