"""V2GTP framing (ISO 15118-20 / -2 header): the 8-byte header and an incremental frame reader."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from stack import schemas

VERSION = 0x01
HEADER = struct.Struct(">BBHI")
HEADER_SIZE = HEADER.size
DEFAULT_MAX_PAYLOAD = 64 * 1024

# Compatibility views of the registry (stack/schemas.py). A connection must not use PAYLOAD_SCHEMAS, which
# ignores the SAP outcome: stack.channel maps payload types through the negotiated protocol.
PAYLOAD_SCHEMAS = schemas.PAYLOAD_SCHEMAS
SDP_PAYLOAD_TYPES = schemas.SDP_PAYLOAD_TYPES
# schema id -> the main-stream payload type that carries its documents
SCHEMA_PAYLOAD_TYPES = {s.id: s.payload_type for s in schemas.SCHEMA_SETS.values() if s.payload_type is not None}


class V2gtpError(ValueError):
    """A V2GTP header is malformed: wrong version, unknown payload type, bad or excessive length."""


@dataclass(frozen=True, slots=True)
class Frame:
    payload_type: int
    payload: bytes


def build(payload_type: int, payload: bytes) -> bytes:
    return HEADER.pack(VERSION, VERSION ^ 0xFF, payload_type, len(payload)) + payload


def parse_header(data: bytes, max_payload: int = DEFAULT_MAX_PAYLOAD) -> tuple[int, int]:
    """(payload type, payload length) of the 8-byte header at the start of `data`."""
    if len(data) < HEADER_SIZE:
        raise V2gtpError(f"header needs {HEADER_SIZE} bytes, got {len(data)}")
    version, inverse, payload_type, length = HEADER.unpack_from(data)
    if version != VERSION or inverse != version ^ 0xFF:
        raise V2gtpError(f"bad protocol version {version:#04x}/{inverse:#04x}")
    if payload_type not in schemas.PAYLOAD_TYPES:
        raise V2gtpError(f"unknown payload type {payload_type:#06x}")
    if length > max_payload:
        raise V2gtpError(f"payload length {length} above the maximum {max_payload}")
    return payload_type, length


def parse_frame(data: bytes, max_payload: int = DEFAULT_MAX_PAYLOAD) -> Frame:
    """One whole frame; trailing bytes after the payload are an error."""
    payload_type, length = parse_header(data, max_payload)
    if len(data) != HEADER_SIZE + length:
        raise V2gtpError(f"frame of {len(data)} bytes, header says {HEADER_SIZE + length}")
    return Frame(payload_type, bytes(data[HEADER_SIZE:]))


def looks_like_frame(data: bytes) -> bool:
    return len(data) >= HEADER_SIZE and data[0] == VERSION and data[1] == VERSION ^ 0xFF


class FrameReader:
    """Incremental V2GTP parser: bytes in, whole frames out. Buffers at most one frame (header + max payload)."""

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self._buffer = bytearray()
        self._need: int | None = None  # payload length of the frame being read

    def feed(self, data: bytes) -> list[Frame]:
        """Frames completed by `data`; raises V2gtpError on a bad header (the connection must then close)."""
        self._buffer += data
        frames = []
        while True:
            if self._need is None:
                if len(self._buffer) < HEADER_SIZE:
                    break
                _, self._need = parse_header(bytes(self._buffer[:HEADER_SIZE]), self.max_payload)
            end = HEADER_SIZE + self._need
            if len(self._buffer) < end:
                break
            payload_type = int.from_bytes(self._buffer[2:4], "big")
            frames.append(Frame(payload_type, bytes(self._buffer[HEADER_SIZE:end])))
            del self._buffer[:end]
            self._need = None
        return frames

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a whole frame."""
        return len(self._buffer)
