"""SECC Discovery Protocol (SDP) messages and the SECC's answer policy, sans-I/O (PROTOCOL.md section 1).

An SDP datagram is a whole V2GTP frame: request 0x9000 with 2 payload bytes `[Security][TransportProtocol]`,
response 0x9001 with 20 bytes `[SECC IPv6 address 16][port 2, big-endian][Security][TransportProtocol]`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv6Address
from typing import TypeVar

from stack import v2gtp

SDP_PORT = 15118
MULTICAST_GROUP = IPv6Address("ff02::1")  # link-local all-nodes
RESPONSE_TIMEOUT = 0.25  # seconds the EVCC waits before it resends [V2G2-159]
MAX_REQUESTS = 50  # requests per discovery cycle, then SDP has failed [V2G2-161]
MULTICAST_HOPS = 1

REQUEST_PAYLOAD_TYPE = 0x9000
RESPONSE_PAYLOAD_TYPE = 0x9001
REQUEST_SIZE = 2
_RESPONSE = struct.Struct(">16sHBB")
RESPONSE_SIZE = _RESPONSE.size

_E = TypeVar("_E", bound=IntEnum)


class Security(IntEnum):
    TLS = 0x00
    NO_TLS = 0x10


class TransportProtocol(IntEnum):
    TCP = 0x00
    UDP = 0x10  # reserved: only SDP itself runs over UDP


class SdpError(ValueError):
    """An SDP datagram is malformed: bad V2GTP header, wrong payload type or length, unknown field values."""


@dataclass(frozen=True, slots=True)
class SdpRequest:
    """What the EVCC asks for. Decoded fields keep unknown byte values as plain ints so the SECC's policy,
    not the parser, decides to stay silent (EvseV2G does)."""

    security: Security | int = Security.TLS
    transport: TransportProtocol | int = TransportProtocol.TCP

    def to_frame(self) -> bytes:
        return v2gtp.build(REQUEST_PAYLOAD_TYPE, bytes((self.security, self.transport)))

    @classmethod
    def from_frame(cls, data: bytes) -> SdpRequest:
        payload = _payload(data, REQUEST_PAYLOAD_TYPE, REQUEST_SIZE)
        return cls(_known(Security, payload[0]), _known(TransportProtocol, payload[1]))


@dataclass(frozen=True, slots=True)
class SdpResponse:
    """Where the SECC listens: its (link-local) address and TCP port, and whether that port speaks TLS."""

    address: IPv6Address
    port: int
    security: Security
    transport: TransportProtocol = TransportProtocol.TCP

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 0xFFFF:
            raise ValueError(f"port {self.port} outside 0..65535")

    def to_frame(self) -> bytes:
        payload = _RESPONSE.pack(self.address.packed, self.port, self.security, self.transport)
        return v2gtp.build(RESPONSE_PAYLOAD_TYPE, payload)

    @classmethod
    def from_frame(cls, data: bytes) -> SdpResponse:
        raw_address, port, security, transport = _RESPONSE.unpack(_payload(data, RESPONSE_PAYLOAD_TYPE, RESPONSE_SIZE))
        try:
            return cls(IPv6Address(raw_address), port, Security(security), TransportProtocol(transport))
        except ValueError as exc:
            raise SdpError(f"SDP response: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: IPv6Address
    port: int


@dataclass(frozen=True, slots=True)
class Offers:
    """The SECC's listening endpoints: a TLS one, a plain TCP one, or both (EvseV2G's local_tls/tcp_addr)."""

    tls: Endpoint | None = None
    tcp: Endpoint | None = None

    def endpoint(self, security: Security) -> Endpoint | None:
        return self.tls if security is Security.TLS else self.tcp


# requested security -> the SECC's choices, best first: EvseV2G `sdp_send_response` falls back to the other
# endpoint rather than stay silent; the EV decides whether it accepts the downgrade (Josev `enforce_tls`).
PREFERENCE: dict[Security, tuple[Security, ...]] = {
    Security.TLS: (Security.TLS, Security.NO_TLS),
    Security.NO_TLS: (Security.NO_TLS, Security.TLS),
}


def negotiate(request: SdpRequest, offers: Offers) -> SdpResponse | None:
    """The SECC's answer to `request`, or None for no answer at all.

    No answer when the security byte is unknown, when the EV asks for a transport other than TCP (EvseV2G
    "announcing nothing"; -20 sessions only run over TCP) or when nothing is offered.
    """
    if request.transport != TransportProtocol.TCP or request.security not in PREFERENCE:
        return None
    for security in PREFERENCE[Security(request.security)]:
        endpoint = offers.endpoint(security)
        if endpoint is not None:
            return SdpResponse(endpoint.address, endpoint.port, security, TransportProtocol.TCP)
    return None


def _payload(data: bytes, payload_type: int, size: int) -> bytes:
    try:
        frame = v2gtp.parse_frame(data)
    except v2gtp.V2gtpError as exc:
        raise SdpError(f"SDP datagram: {exc}") from exc
    if frame.payload_type != payload_type:
        raise SdpError(f"payload type {frame.payload_type:#06x}, expected {payload_type:#06x}")
    if len(frame.payload) != size:
        raise SdpError(f"payload of {len(frame.payload)} bytes, expected {size}")
    return frame.payload


def _known(enum: type[_E], value: int) -> _E | int:
    try:
        return enum(value)
    except ValueError:
        return value
