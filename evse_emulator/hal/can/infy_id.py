"""The 29-bit CAN ID shared by InfyPower's V1.13 and BEC/BEG protocols, and their reply error codes.

Bits 28-26 error code | 25-22 device number | 21-16 command | 15-8 destination | 7-0 source
[I:can_driver_acdc/CanPackets.cpp encode_can_id; B:can_driver_acdc/CanPackets.cpp; C:InfypowerCANID.hpp].
Our DBC files hold each frame once, at a canonical ID (module 0, controller 0xF0, error 0); the codecs put the
real fields in with `InfyId.frame_id` and take them out with `InfyId.parse`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import can
from cantools.database.can import Database, Message
from cantools.database.namedsignalvalue import NamedSignalValue

from . import memo

DEVICE_MODULE = 0x0A  # the destination is one module's address
DEVICE_GROUP = 0x0B  # the destination is a group number
CONTROLLERS = range(0xF0, 0xF9)  # the controller addresses [B, C]

# [B:can_driver_acdc/CanPackets.cpp, C:InfypowerCANID.hpp] (BEC/BEG); the V1.13 sources name no codes.
ERROR_CODES = {0: "normal", 2: "command invalid", 3: "data invalid", 7: "in start processing"}
DATA_INVALID = 3

Signals = Mapping[str, float | str]  # a payload's signals: numbers, enumerations by their DBC name


@dataclass(frozen=True, slots=True)
class InfyId:
    command: int
    destination: int
    source: int
    device: int = DEVICE_MODULE
    error: int = 0

    @property
    def frame_id(self) -> int:
        return (
            (self.error & 0x7) << 26
            | (self.device & 0xF) << 22
            | (self.command & 0x3F) << 16
            | (self.destination & 0xFF) << 8
            | (self.source & 0xFF)
        )

    @classmethod
    def parse(cls, frame_id: int) -> InfyId:
        return cls(
            command=frame_id >> 16 & 0x3F,
            destination=frame_id >> 8 & 0xFF,
            source=frame_id & 0xFF,
            device=frame_id >> 22 & 0xF,
            error=frame_id >> 26 & 0x7,
        )

    def reply(self, source: int, error: int = 0) -> InfyId:
        """The ID of a module's answer to this request: addresses swapped, the device number echoed."""
        return InfyId(self.command, self.source, source, self.device, error)


def error_text(code: int) -> str:
    return f"error code {code}: {ERROR_CODES.get(code, 'unknown')}"


def by_command(db: Database) -> tuple[dict[int, Message], dict[int, Message]]:
    """A family's DBC messages by command: (the controller's requests, the modules' replies).

    A canonical reply is addressed to a controller; a canonical request comes from one."""
    requests: dict[int, Message] = {}
    replies: dict[int, Message] = {}
    for message in db.messages:
        fields = InfyId.parse(message.frame_id)
        (replies if fields.destination in CONTROLLERS else requests)[fields.command] = message
    return requests, replies


def decode(message: Message, data: bytes | bytearray, choices: bool = True) -> dict[str, float | str]:
    """`message`'s signals in `data`, enumerations by name unless not `choices` (cantools raises DecodeError
    for a foreign layout)."""
    decoded = memo.decode(message, data[:8], choices)
    return {name: str(value) if isinstance(value, NamedSignalValue) else value for name, value in decoded.items()}


def frame(message: Message, fields: InfyId, signals: Signals) -> can.Message:
    """`message`'s payload with `signals`, sent at the ID `fields` make."""
    return can.Message(arbitration_id=fields.frame_id, data=memo.encode(message, signals), is_extended_id=True)
