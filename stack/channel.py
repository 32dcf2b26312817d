"""A sans-I/O V2G channel: bytes <-> V2GTP frames <-> messages for one connection, the schema chosen by SAP.

No sockets, asyncio or clock: the asyncio connection, the in-memory link, the CLI decoder and the capture
dissector feed it bytes and write out what it returns (DESIGN.md "Time and channels"). The payload type alone
does not name a schema (0x8001 is SAP before the handshake, -2/DIN after such a negotiation), so the channel
watches the SAP exchange that passes through it, in either direction, and maps payload types through the
negotiated protocol of the registry (stack/schemas.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from stack import exi, schemas
from stack.messages import app_protocol as ap
from stack.v2gtp import DEFAULT_MAX_PAYLOAD, Frame, FrameReader, V2gtpError, build, parse_frame

_SAP_OK = (ap.ResponseCode.OK_SuccessfulNegotiation, ap.ResponseCode.OK_SuccessfulNegotiationWithMinorDeviation)


class ChannelError(Exception):
    """The channel cannot go on: bad input from the peer, or a message we may not send. Closes the channel."""


class FramingError(ChannelError):
    """The peer sent a malformed V2GTP header (version, unknown payload type, length)."""


class PayloadError(ChannelError):
    """The peer sent a payload type the current protocol does not carry, or EXI that does not decode."""


class LocalChannelError(ChannelError):
    """We asked the channel to send what the current protocol does not carry, or what does not encode."""


@dataclass(frozen=True, slots=True)
class Received:
    """One decoded message and how it travelled."""

    message: object
    schema: str
    payload_type: int
    size: int  # bytes of the EXI payload


class V2gChannel:
    """Frames and EXI for one V2G connection, with the SAP outcome learnt from the messages that pass.

    Any error leaves the channel unusable: a V2G connection is closed on a bad message (PROTOCOL.md section 2),
    and after a refused send the session cannot know what the peer expects next.
    """

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self._reader = FrameReader(max_payload)
        self._protocol: schemas.ProtocolSpec | None = None
        self._offered: dict[int, str] = {}  # SAP SchemaID -> ProtocolNamespace of the last request
        self._held: list[Frame] = []  # whole frames that came after a SAP request (see `held`)
        self._error: ChannelError | None = None

    @property
    def protocol(self) -> schemas.ProtocolSpec | None:
        """The protocol SAP negotiated; None while only SAP itself may pass."""
        return self._protocol

    def receive_data(self, data: bytes) -> list[Received]:
        """The messages completed by `data` (possibly none, possibly several), in order.

        A bad frame raises at once, even when messages before it in the same chunk decoded: the connection closes.
        Frames after a SAP request are held, undecoded, until the next call (`receive_data(b"")` releases them).
        """
        self._check_usable()
        try:
            frames = self._held + self._reader.feed(data)
        except V2gtpError as exc:
            raise self._fail(FramingError(f"V2GTP: {exc}")) from None
        self._held = []
        received = []
        for i, frame in enumerate(frames):
            schema = schemas.payload_schemas(self._protocol).get(frame.payload_type)
            if schema is None:
                raise self._fail(
                    PayloadError(f"payload type {frame.payload_type:#06x} is not valid: {self._carried()}")
                )
            try:
                message = exi.decode(frame.payload, schema)
            except exi.ExiError as exc:
                raise self._fail(
                    PayloadError(f"payload type {frame.payload_type:#06x} ({schema}): EXI: {exc}")
                ) from None
            self._learn(message, PayloadError)  # the next frame of this chunk may already be of the new protocol
            received.append(Received(message, schema, frame.payload_type, len(frame.payload)))
            if isinstance(message, ap.SupportedAppProtocolReq):
                # Our answer, not sent yet, decides the schema of what follows: decoding a frame that came in
                # the same read now would refuse a -20 message that the same bytes in two reads would carry.
                self._held = frames[i + 1 :]
                break
        return received

    def send(self, message: object, *, payload_type: int | None = None, element: str | None = None) -> bytes:
        """The whole V2GTP frame of `message`; its class picks the schema.

        `payload_type` picks a side stream (0x8101, 0x8102) instead of the schema's main one; `element` names the
        global element when the message's type serves several (ACDP_ConnectReq and ACDP_DisconnectReq).
        """
        self._check_usable()
        try:
            schema = schemas.default_schema_id(type(message))
        except schemas.UnknownSchemaError as exc:
            raise self._fail(LocalChannelError(str(exc))) from None
        carried = schemas.payload_schemas(self._protocol)
        if payload_type is None:
            payload_type = schemas.schema_set(schema).payload_type
        if payload_type is None or carried.get(payload_type) != schema:
            on = "" if payload_type is None else f" on payload type {payload_type:#06x}"
            what = f"cannot send {type(message).__name__} ({schema}){on}"
            raise self._fail(LocalChannelError(f"{what}: {self._carried()}"))
        try:
            payload = exi.encode(message, schema=schema, element=element)
        except exi.ExiError as exc:
            raise self._fail(LocalChannelError(f"{type(message).__name__} ({schema}): EXI: {exc}")) from None
        self._learn(message, LocalChannelError)
        return build(payload_type, payload)

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a whole frame."""
        return self._reader.pending

    @property
    def held(self) -> int:
        """Whole frames received after a SAP request, decoded by the next `receive_data` (after our answer)."""
        return len(self._held)

    def _learn(self, message: object, error: type[ChannelError]) -> None:
        """Follow SAP: remember what the request offered, switch when a positive response names one of them."""
        if isinstance(message, ap.SupportedAppProtocolReq):
            self._offered = {p.schema_id: p.protocol_namespace for p in message.app_protocol}
        elif isinstance(message, ap.SupportedAppProtocolRes) and message.response_code in _SAP_OK:
            namespace = None if message.schema_id is None else self._offered.get(message.schema_id)
            protocol = schemas.find_protocol(namespace) if namespace is not None else None
            if protocol is None:
                chosen = f"SchemaID {message.schema_id}" + (f" ({namespace})" if namespace else ", not offered")
                raise self._fail(error(f"SAP chose {chosen}: not a protocol this channel carries"))
            self._protocol = protocol

    def _carried(self) -> str:
        table = schemas.payload_schemas(self._protocol)
        carried = ", ".join(f"{pt:#06x} ({sid})" for pt, sid in table.items())
        state = "before SAP" if self._protocol is None else f"on {self._protocol.name}"
        return f"{state} the channel carries {carried}"

    def _check_usable(self) -> None:
        if self._error is not None:
            raise ChannelError(f"the channel failed earlier: {self._error}")

    def _fail(self, error: ChannelError) -> ChannelError:
        self._error = error
        return error


def decode_frame(data: bytes, schema: str | None = None) -> Received:
    """One whole V2GTP frame decoded without connection state: the payload type picks the schema among all
    protocols (SAP's on 0x8001) unless `schema` is given. Raises ChannelError (FramingError, PayloadError)."""
    try:
        frame = parse_frame(data, max_payload=2**32 - 1)
    except V2gtpError as exc:
        raise FramingError(f"V2GTP: {exc}") from None
    if schema is None:
        schema = schemas.PAYLOAD_SCHEMAS.get(frame.payload_type)
        if schema is None:
            raise PayloadError(f"payload type {frame.payload_type:#06x} does not carry EXI")
    elif schema not in schemas.SCHEMA_SETS:
        raise PayloadError(f"unknown schema id {schema!r}; known: {', '.join(schemas.SCHEMA_IDS)}")
    try:
        message = exi.decode(frame.payload, schema)
    except exi.ExiError as exc:
        raise PayloadError(f"payload type {frame.payload_type:#06x} ({schema}): EXI: {exc}") from None
    return Received(message, schema, frame.payload_type, len(frame.payload))
