"""A bus log read back with our DBC files: each frame named, its direction and module, its signals scaled.

Our DBC files hold each frame once, at a canonical ID (module 0, controller 0xF0); a frame on the bus carries
real addresses in its ID, so it is looked up at the canonical ID of its layout (InfyPower's or Winline's) and
its payload decoded by cantools. The I/O board's frames have fixed IDs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import can
from cantools.database.can import Database, Message

from .family import Family, load_dbc
from .infy_id import CONTROLLERS, DEVICE_GROUP, DEVICE_MODULE, InfyId
from .io_board import DBC as IO_BOARD_DBC
from .winline import PROTNO, WinlineId, can_id


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    time_s: float
    frame_id: int
    name: str  # the DBC message, or "unknown"
    sender: str  # controller, module N, io-board, ?
    signals: dict[str, float | str]
    data: bytes
    units: dict[str, str] = field(default_factory=dict)  # the DBC's unit of each scaled signal

    def _unit(self, signal: str) -> str:
        unit = self.units.get(signal)
        return f" {unit}" if unit else ""

    def line(self) -> str:
        values = "  ".join(
            f"{k}={_fmt(v)}{' ' + self.units[k] if k in self.units else ''}" for k, v in self.signals.items()
        )
        return (
            f"{self.time_s:17.6f}  {self.frame_id:08X}  {self.sender:10s} {self.name:24s} {values or self.data.hex()}"
        )


def _value(value: object) -> float | str:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def _fmt(value: float | str) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class FrameDecoder:
    """Decodes frames of one module family and of our I/O board."""

    def __init__(self, family: Family) -> None:
        self.family = family
        self.db = family.database()
        self.board = load_dbc(IO_BOARD_DBC)

    def decode(self, frame: can.Message) -> DecodedFrame:
        data = bytes(frame.data)
        found = self._board(frame) or self._module(frame)
        if found is None:
            return DecodedFrame(frame.timestamp, frame.arbitration_id, "unknown", "?", {}, data)
        message, sender = found
        try:
            raw = message.decode(data, decode_choices=True)
        except Exception as exc:  # cantools raises several types for a payload that does not fit
            return DecodedFrame(frame.timestamp, frame.arbitration_id, message.name, sender, {"error": str(exc)}, data)
        signals = {str(k): _value(v) for k, v in dict(raw).items()}
        units = {k: unit for k in signals if (unit := message.get_signal_by_name(k).unit)}
        return DecodedFrame(frame.timestamp, frame.arbitration_id, message.name, sender, signals, data, units)

    def _board(self, frame: can.Message) -> tuple[Message, str] | None:
        try:
            message = self.board.get_message_by_frame_id(frame.arbitration_id)
        except KeyError:
            return None
        return message, "controller" if message.name == "IO_Command" else "io-board"

    def _module(self, frame: can.Message) -> tuple[Message, str] | None:
        frame_id = frame.arbitration_id
        if frame_id >> 20 & 0x1FF == PROTNO:
            ident = WinlineId.parse(frame_id)
            if ident.source in CONTROLLERS:
                canonical, sender = can_id(0xF0, 0, 0, True), "controller"
            else:
                canonical, sender = can_id(0, 0xF0, 0, True), f"module {ident.source}"
            found = _lookup(self.db, canonical)
            return None if found is None else (found, sender)
        infy = InfyId.parse(frame_id)
        if infy.source in CONTROLLERS:
            at, sender = InfyId(infy.command, 0, 0xF0, infy.device), "controller"
        else:
            at, sender = InfyId(infy.command, 0xF0, 0, infy.device), f"module {infy.source}"
        message = _lookup(self.db, at.frame_id)
        if message is None and infy.device == DEVICE_GROUP:  # a group-addressed frame: the module's layout
            message = _lookup(self.db, replace(at, device=DEVICE_MODULE).frame_id)
        return None if message is None else (message, sender)


def _lookup(db: Database, frame_id: int) -> Message | None:
    try:
        return db.get_message_by_frame_id(frame_id)
    except KeyError:
        return None


def read_log(path: Path, decoder: FrameDecoder) -> Iterator[DecodedFrame]:
    """Every frame of a candump log, ASC or BLF file, decoded."""
    with can.LogReader(str(path)) as reader:
        for frame in reader:
            yield decoder.decode(frame)
