"""A Recording as a timeline of decoded messages: SDP, SAP and ISO 15118-20, per connection and direction.

The schema follows the SAP exchange of each connection as the sans-I/O channel does (stack/channel.py), from
the same registry (`schemas.payload_schemas`, `schemas.find_protocol`), but a dissector must go on where a
connection would close: a payload it does not know (a -2/DIN session, an unknown payload type, EXI that does
not decode) is listed with the reason and the next frame is read, as long as the V2GTP headers stay readable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from stack import exi, schemas, sdp, v2gtp
from stack.messages import app_protocol as ap

from .tls13 import TlsDecryptError, decrypt
from .values import key_values, message_name, plain
from .wire import Connection, Recording, Segment

EV_TO_EVSE, EVSE_TO_EV = "EV->EVSE", "EVSE->EV"
MAX_FRAME = 16 * 1024 * 1024  # a header announcing more is taken for garbage: the stream is not read further
_SAP_OK = (ap.ResponseCode.OK_SuccessfulNegotiation, ap.ResponseCode.OK_SuccessfulNegotiationWithMinorDeviation)


@dataclass(frozen=True, slots=True)
class Event:
    """One message on the timeline, decoded (`known`) or not (with the `reason`)."""

    t: float  # seconds since the epoch
    conn: int | None  # None for SDP over UDP
    direction: str  # EV->EVSE or EVSE->EV
    message: str  # XSD element name, or what the payload is when unknown
    schema: str | None = None
    response_code: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    known: bool = True
    reason: str = ""
    payload_type: int | None = None
    size: int = 0  # bytes of the payload
    decoded: object = field(default=None, compare=False, repr=False)  # the message object, when known

    def json(self, start: float) -> dict[str, Any]:
        out: dict[str, Any] = {
            "t": round(self.t, 6),
            "dt": round(self.t - start, 6),
            "conn": self.conn,
            "direction": self.direction,
            "message": self.message,
            "schema": self.schema,
            "payload_type": None if self.payload_type is None else f"{self.payload_type:#06x}",
            "response_code": self.response_code,
            "values": self.values,
            "known": self.known,
        }
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True, slots=True)
class Timeline:
    """Every message of a recording in time order, the connections, and what could not be decoded at all."""

    events: tuple[Event, ...]
    connections: tuple[Connection, ...]
    start: float
    notes: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "start": self.start,
                "connections": [
                    {
                        "id": c.id,
                        "ev": f"[{c.ev.ip}]:{c.ev.port}",
                        "evse": f"[{c.evse.ip}]:{c.evse.port}",
                        "tls": c.tls,
                    }
                    for c in self.connections
                ],
                "events": [e.json(self.start) for e in self.events],
                "notes": list(self.notes),
            },
            indent=1,
        )


def decode(recording: Recording) -> Timeline:
    """The timeline of a recording; TLS connections are decrypted with its key log when it has their keys."""
    events: list[Event] = [_sdp(d.t, d.data) for d in recording.datagrams]
    notes = list(recording.notes)
    by_connection: dict[int, list[tuple[int, Segment]]] = {}
    for i, segment in enumerate(recording.segments):
        by_connection.setdefault(segment.conn, []).append((i, segment))
    for connection in recording.connections:
        streams = _plaintext(connection, by_connection.get(connection.id, []), recording.keylog, notes)
        if streams is not None:
            events += _connection_events(connection.id, *streams)
    times = [s.t for s in recording.segments] + [d.t for d in recording.datagrams]
    events.sort(key=lambda e: e.t)  # stable: the order within a connection and direction is kept
    return Timeline(tuple(events), tuple(recording.connections), min(times, default=0.0), tuple(notes))


Chunks = Sequence[tuple[int, float, bytes]]  # (order in the recording, time, bytes)


def _plaintext(
    connection: Connection, mine: list[tuple[int, Segment]], keylog: str, notes: list[str]
) -> tuple[Chunks, Chunks] | None:
    """Both directions' V2GTP bytes (decrypted for TLS), or None with a note when they cannot be had. Each
    chunk keeps the order of the segment that completed it: equal timestamps keep the recorded order."""
    to_evse = [(i, s.t, s.data) for i, s in mine if s.to_evse]
    to_ev = [(i, s.t, s.data) for i, s in mine if not s.to_evse]
    if not connection.tls:
        return to_evse, to_ev
    if not keylog:
        notes.append(f"connection {connection.id}: TLS, and no key log (embedded or --keylog): not decrypted")
        return None
    try:
        decrypted = decrypt([(t, d) for _, t, d in to_evse], [(t, d) for _, t, d in to_ev], keylog)
    except TlsDecryptError as exc:
        notes.append(f"connection {connection.id}: TLS not decrypted: {exc}")
        return None
    notes += [f"connection {connection.id}: {note}" for note in decrypted.notes]
    return _restamp(decrypted.to_evse, to_evse), _restamp(decrypted.to_ev, to_ev)


def _restamp(decrypted: list[tuple[int, bytes]], chunks: Chunks) -> Chunks:
    """Plaintext chunks with the order and time of the ciphertext chunk that completed their record."""
    return [(chunks[i][0], chunks[i][1], data) for i, data in decrypted]


@dataclass(slots=True)
class _Sap:
    """The SAP state of one connection, learnt from both directions as the channel learns it."""

    protocol: schemas.ProtocolSpec | None = None
    offered: dict[int, str] = field(default_factory=dict)
    foreign: str = ""  # why later payloads are not decoded: SAP chose a protocol we do not speak

    def learn(self, message: object) -> None:
        if isinstance(message, ap.SupportedAppProtocolReq):
            self.offered = {p.schema_id: p.protocol_namespace for p in message.app_protocol}
        elif isinstance(message, ap.SupportedAppProtocolRes) and message.response_code in _SAP_OK:
            namespace = None if message.schema_id is None else self.offered.get(message.schema_id)
            self.protocol = schemas.find_protocol(namespace) if namespace else None
            if self.protocol is None:
                chosen = namespace or f"SchemaID {message.schema_id}, not offered"
                self.foreign = f"SAP chose {chosen}: not decoded (only SAP and ISO 15118-20 are known)"


def _connection_events(conn: int, to_evse: Chunks, to_ev: Chunks) -> list[Event]:
    """Frames of both directions in time order, decoded with the connection's SAP state."""
    frames = sorted([*_frames(to_evse, EV_TO_EVSE), *_frames(to_ev, EVSE_TO_EV)], key=lambda f: f[0])
    sap = _Sap()
    events = []
    for _, t, direction, payload_type, payload, problem in frames:
        if problem:
            events.append(Event(t, conn, direction, "(undecodable stream)", known=False, reason=problem))
            continue
        event = _message(t, conn, direction, payload_type, payload, sap)
        if event.decoded is not None:
            sap.learn(event.decoded)
        events.append(event)
    return events


def _frames(chunks: Chunks, direction: str) -> Iterator[tuple[int, float, str, int, bytes, str]]:
    """(order, t, direction, payload type, payload, problem) per V2GTP frame; a bad header ends the stream."""
    buffer, offset = b"", 0
    for order, t, data in chunks:
        buffer += data
        while len(buffer) >= v2gtp.HEADER_SIZE:
            version, inverse, payload_type, length = v2gtp.HEADER.unpack_from(buffer)
            if version != v2gtp.VERSION or inverse != version ^ 0xFF or length > MAX_FRAME:
                yield (
                    order,
                    t,
                    direction,
                    0,
                    b"",
                    f"no V2GTP header at byte {offset} of {direction}: {buffer[:8].hex()}",
                )
                return
            end = v2gtp.HEADER_SIZE + length
            if len(buffer) < end:
                break
            yield order, t, direction, payload_type, buffer[v2gtp.HEADER_SIZE : end], ""
            buffer, offset = buffer[end:], offset + end
    if buffer:
        yield (
            chunks[-1][0],
            chunks[-1][1],
            direction,
            0,
            b"",
            f"{len(buffer)} bytes of an incomplete V2GTP frame at the end",
        )


def _message(t: float, conn: int, direction: str, payload_type: int, payload: bytes, sap: _Sap) -> Event:
    def unknown(message: str, reason: str, schema: str | None = None) -> Event:
        return Event(
            t,
            conn,
            direction,
            message,
            schema,
            known=False,
            reason=reason,
            payload_type=payload_type,
            size=len(payload),
        )

    if sap.foreign and payload_type not in schemas.SDP_PAYLOAD_TYPES:
        return unknown(f"payload {payload_type:#06x}", sap.foreign)
    if sap.protocol is None:
        # before SAP completes only SAP is valid; a capture that starts mid-session still gets the -20 ones
        schema = schemas.PAYLOAD_SCHEMAS.get(payload_type)
    else:
        schema = schemas.payload_schemas(sap.protocol).get(payload_type)
    if schema is None:
        where = "before SAP" if sap.protocol is None else f"on {sap.protocol.name}"
        why = f"payload type {payload_type:#06x} carries nothing known {where}"
        return unknown(f"payload {payload_type:#06x}", why)
    try:
        message = exi.decode(payload, schema)
    except exi.ExiError as exc:
        why = f"EXI of {schema} does not decode: {exc}"
        if payload_type == schemas.SAP_PAYLOAD_TYPE and sap.protocol is None:
            why += " (ISO 15118-2 or DIN without its SAP in the capture?)"
        return unknown(f"payload {payload_type:#06x}", why, schema)
    return Event(
        t,
        conn,
        direction,
        message_name(message),
        schema,
        _code(message),
        key_values(message),
        payload_type=payload_type,
        size=len(payload),
        decoded=message,
    )


def _sdp(t: float, data: bytes) -> Event:
    payload_type = int.from_bytes(data[2:4], "big")
    try:
        if payload_type == sdp.REQUEST_PAYLOAD_TYPE:
            request = sdp.SdpRequest.from_frame(data)
            values = {"Security": plain(request.security), "TransportProtocol": plain(request.transport)}
            return Event(t, None, EV_TO_EVSE, "SDP request", "sdp", None, values, payload_type=payload_type, size=2)
        if payload_type == sdp.RESPONSE_PAYLOAD_TYPE:
            response = sdp.SdpResponse.from_frame(data)
            values = {
                "address": str(response.address),
                "port": response.port,
                "Security": response.security.name,
                "TransportProtocol": response.transport.name,
            }
            return Event(t, None, EVSE_TO_EV, "SDP response", "sdp", None, values, payload_type=payload_type, size=20)
    except sdp.SdpError as exc:
        return Event(t, None, "?", "SDP", known=False, reason=str(exc), payload_type=payload_type)
    why = f"SDP payload type {payload_type:#06x} (wireless SDP) is not decoded"
    return Event(t, None, "?", "SDP", known=False, reason=why, payload_type=payload_type)


def _code(message: object) -> str | None:
    code = getattr(message, "response_code", None)
    return None if code is None else str(plain(code))
