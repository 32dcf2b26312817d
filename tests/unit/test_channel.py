"""The sans-I/O V2G channel (stack/channel.py): framing, the schema chosen by SAP, and its errors.

Frames fed to a channel are built here with `v2gtp.build` and `exi.encode`, not with the channel itself, so a
test of the receiving side does not lean on the sending side it checks elsewhere.
"""

from __future__ import annotations

import pytest

from stack import exi, schemas, v2gtp
from stack.channel import (
    ChannelError,
    FramingError,
    LocalChannelError,
    PayloadError,
    Received,
    V2gChannel,
    decode_frame,
)
from stack.messages import app_protocol as ap
from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct
from stack.messages.minimal import minimal

DC_NS = "urn:iso:std:iso:15118:-20:DC"
AC_NS = "urn:iso:std:iso:15118:-20:AC"
ISO2_NS = "urn:iso:15118:2:2013:MsgDef"
SESSION = bytes.fromhex("5a233ebfa4fef99d")
OK = ap.ResponseCode.OK_SuccessfulNegotiation


# -- messages and frames ---------------------------------------------------------------------------------------
def header(session_id: bytes = SESSION) -> ct.MessageHeader:
    return ct.MessageHeader(session_id=session_id, time_stamp=1_795_000_000)


def sap_req(*entries: tuple[str, int]) -> ap.SupportedAppProtocolReq:
    """A SAP request offering (namespace, SchemaID) pairs, by priority; -20 DC as SchemaID 1 by default."""
    offered = entries or ((DC_NS, 1),)
    return ap.SupportedAppProtocolReq(
        app_protocol=[
            ap.AppProtocol(
                protocol_namespace=ns, version_number_major=1, version_number_minor=0, schema_id=sid, priority=i + 1
            )
            for i, (ns, sid) in enumerate(offered)
        ]
    )


def sap_res(code: ap.ResponseCode = OK, schema_id: int | None = 1) -> ap.SupportedAppProtocolRes:
    return ap.SupportedAppProtocolRes(response_code=code, schema_id=schema_id)


def session_setup_req() -> cm.SessionSetupReq:
    return cm.SessionSetupReq(header=header(bytes(8)), evccid="WMA06XZZ1MP123456")


def cable_check_req() -> dc.DcCableCheckReq:
    return dc.DcCableCheckReq(header=header())


def frame(message: object, payload_type: int, schema: str) -> bytes:
    return v2gtp.build(payload_type, exi.encode(message, schema=schema))


def sap_frame(message: object) -> bytes:
    return frame(message, 0x8001, "appProtocol")


def dc_channel() -> V2gChannel:
    """A SECC-side channel that has completed SAP for -20 DC."""
    channel = V2gChannel()
    channel.receive_data(sap_frame(sap_req()))
    channel.send(sap_res())
    assert channel.protocol is schemas.DC_PROTOCOL
    return channel


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert text and "\n" not in text
    return text


# -- SAP, learnt in both directions ----------------------------------------------------------------------------
def test_secc_side_receives_the_request_and_sends_the_response() -> None:
    channel = V2gChannel()
    assert channel.protocol is None
    data = sap_frame(sap_req())
    [got] = channel.receive_data(data)
    assert got == Received(sap_req(), "appProtocol", 0x8001, len(data) - v2gtp.HEADER_SIZE)
    assert channel.protocol is None  # a request alone decides nothing
    out = channel.send(sap_res())
    assert out == sap_frame(sap_res())  # the response still travels as SAP, on 0x8001
    assert channel.protocol is schemas.DC_PROTOCOL


def test_evcc_side_sends_the_request_and_receives_the_response() -> None:
    channel = V2gChannel()
    assert channel.send(sap_req((AC_NS, 3), (DC_NS, 7))) == sap_frame(sap_req((AC_NS, 3), (DC_NS, 7)))
    assert channel.protocol is None
    [got] = channel.receive_data(sap_frame(sap_res(schema_id=7)))
    assert got.message == sap_res(schema_id=7)
    assert channel.protocol is schemas.DC_PROTOCOL


def test_the_chosen_schema_id_picks_the_protocol() -> None:
    channel = V2gChannel()
    channel.send(sap_req((DC_NS, 1), (AC_NS, 2)))
    channel.receive_data(sap_frame(sap_res(ap.ResponseCode.OK_SuccessfulNegotiationWithMinorDeviation, 2)))
    assert channel.protocol is schemas.AC_PROTOCOL
    assert channel.send(cm.SessionStopReq(header=header(), charging_session=cm.ChargingSession.Terminate))[2:4] == (
        b"\x80\x02"
    )
    with pytest.raises(LocalChannelError, match="iso20-dc"):
        channel.send(cable_check_req())


def test_failed_sap_keeps_the_channel_on_sap() -> None:
    channel = V2gChannel()
    channel.receive_data(sap_frame(sap_req()))
    channel.send(sap_res(ap.ResponseCode.Failed_NoNegotiation, None))
    assert channel.protocol is None
    [again] = channel.receive_data(sap_frame(sap_req()))  # SAP is still what the channel carries
    assert again.schema == "appProtocol"
    with pytest.raises(PayloadError, match="0x8002"):
        channel.receive_data(frame(session_setup_req(), 0x8002, "iso20-common"))


@pytest.mark.parametrize(
    ("offered", "schema_id", "fragment"),
    [((DC_NS, 1), 2, "SchemaID 2, not offered"), ((ISO2_NS, 1), 1, ISO2_NS)],
    ids=["not offered", "ISO 15118-2"],
)
def test_sap_choosing_what_the_channel_cannot_carry_is_an_error(offered, schema_id: int, fragment: str) -> None:
    evcc = V2gChannel()
    evcc.send(sap_req(offered))
    with pytest.raises(PayloadError) as caught:
        evcc.receive_data(sap_frame(sap_res(schema_id=schema_id)))
    assert fragment in one_line(caught)
    secc = V2gChannel()
    secc.receive_data(sap_frame(sap_req(offered)))
    with pytest.raises(LocalChannelError, match="not a protocol this channel carries"):
        secc.send(sap_res(schema_id=schema_id))


# -- round trips after SAP -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("message", "payload_type", "schema"),
    [
        (session_setup_req(), 0x8002, "iso20-common"),
        (cm.SessionStopReq(header=header(), charging_session=cm.ChargingSession.Terminate), 0x8002, "iso20-common"),
        (cable_check_req(), 0x8004, "iso20-dc"),
        (minimal(dc.DcChargeLoopReq, header=header()), 0x8004, "iso20-dc"),
        (minimal(dc.DcChargeLoopRes, header=header()), 0x8004, "iso20-dc"),
    ],
    ids=lambda x: type(x).__name__ if not isinstance(x, int | str) else None,
)
def test_round_trip_after_sap(message: object, payload_type: int, schema: str) -> None:
    sender, receiver = dc_channel(), dc_channel()
    data = sender.send(message)
    assert data == frame(message, payload_type, schema)
    [got] = receiver.receive_data(data)
    assert got == Received(message, schema, payload_type, len(data) - v2gtp.HEADER_SIZE)


def test_byte_at_a_time() -> None:
    channel = dc_channel()
    data = frame(session_setup_req(), 0x8002, "iso20-common")
    for i, byte in enumerate(data[:-1]):
        assert channel.receive_data(bytes([byte])) == []
        assert channel.pending == i + 1
    [got] = channel.receive_data(data[-1:])
    assert got.message == session_setup_req()
    assert channel.pending == 0


def test_two_frames_in_one_chunk_and_a_partial_third() -> None:
    channel = dc_channel()
    first = frame(session_setup_req(), 0x8002, "iso20-common")
    second = frame(cable_check_req(), 0x8004, "iso20-dc")
    got = channel.receive_data(first + second + second[:5])
    assert [r.message for r in got] == [session_setup_req(), cable_check_req()]
    assert [r.payload_type for r in got] == [0x8002, 0x8004]
    assert channel.pending == 5


def test_protocol_switch_inside_one_chunk() -> None:
    """The SAP response and the first -20 message can arrive together: the second frame uses the new protocol."""
    channel = V2gChannel()
    channel.send(sap_req())
    got = channel.receive_data(sap_frame(sap_res()) + frame(session_setup_req(), 0x8002, "iso20-common"))
    assert [r.schema for r in got] == ["appProtocol", "iso20-common"]


def test_frames_after_a_sap_request_wait_for_the_answer() -> None:
    """A request pipelined behind the SAP request decodes by the protocol our answer picks, not before it: the
    same bytes must not be refused in one read and carried in two."""
    channel = V2gChannel()
    [got] = channel.receive_data(sap_frame(sap_req()) + frame(session_setup_req(), 0x8002, "iso20-common"))
    assert got.message == sap_req() and channel.held == 1
    channel.send(sap_res())
    [after] = channel.receive_data(b"")
    assert (after.message, after.schema) == (session_setup_req(), "iso20-common") and channel.held == 0
    refused = V2gChannel()
    refused.receive_data(sap_frame(sap_req()) + frame(session_setup_req(), 0x8002, "iso20-common"))
    refused.send(sap_res(ap.ResponseCode.Failed_NoNegotiation, None))
    with pytest.raises(PayloadError, match="0x8002 is not valid: before SAP"):
        refused.receive_data(b"")


def test_side_stream() -> None:
    channel = dc_channel()
    message = minimal(cm.MeteringConfirmationReq, header=header())
    data = channel.send(message, payload_type=0x8102)
    assert data == frame(message, 0x8102, "iso20-common")
    [got] = dc_channel().receive_data(data)
    assert (got.message, got.schema, got.payload_type) == (message, "iso20-common", 0x8102)
    with pytest.raises(LocalChannelError, match="0x8102"):
        dc_channel().send(cable_check_req(), payload_type=0x8102)


# -- what the current protocol does not carry ------------------------------------------------------------------
def test_dc_message_before_sap_is_refused_both_ways() -> None:
    with pytest.raises(LocalChannelError) as caught:
        V2gChannel().send(cable_check_req())
    assert "DcCableCheckReq (iso20-dc)" in one_line(caught) and "before SAP" in one_line(caught)
    with pytest.raises(PayloadError) as caught:
        V2gChannel().receive_data(frame(cable_check_req(), 0x8004, "iso20-dc"))
    assert "0x8004" in one_line(caught) and "0x8001 (appProtocol)" in one_line(caught)


def test_sap_payload_type_after_a_20_negotiation_is_refused() -> None:
    """0x8001 after -20 SAP is not SAP again (after -2/DIN it would carry that protocol's messages)."""
    with pytest.raises(PayloadError) as caught:
        dc_channel().receive_data(sap_frame(sap_req()))
    assert "0x8001" in one_line(caught) and schemas.DC_PROTOCOL.name in one_line(caught)
    with pytest.raises(LocalChannelError, match="appProtocol"):
        dc_channel().send(sap_req())


def test_sdp_payload_type_is_not_carried() -> None:
    with pytest.raises(PayloadError, match="0x9000"):
        dc_channel().receive_data(v2gtp.build(0x9000, b"\x10\x00"))


def test_a_class_that_is_not_a_message_is_refused() -> None:
    with pytest.raises(LocalChannelError, match="not a generated message class"):
        dc_channel().send(object())


# -- malformed input -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\x02\xfd\x80\x01\x00\x00\x00\x00", "version"),
        (b"GET / HTTP/1.1\r\n", "version"),
        (v2gtp.HEADER.pack(1, 0xFE, 0x8007, 0), "0x8007"),
        (v2gtp.HEADER.pack(1, 0xFE, 0x8001, 64 * 1024 + 1), "maximum"),
    ],
    ids=["version", "http", "reserved payload type", "too long"],
)
def test_garbage_header(data: bytes, fragment: str) -> None:
    channel = V2gChannel()
    with pytest.raises(FramingError) as caught:
        channel.receive_data(data)
    assert fragment in one_line(caught)


def test_max_payload_is_the_channels() -> None:
    data = sap_frame(sap_req())
    with pytest.raises(FramingError, match="maximum 8"):
        V2gChannel(max_payload=8).receive_data(data)
    assert len(V2gChannel(max_payload=len(data) - v2gtp.HEADER_SIZE).receive_data(data)) == 1


@pytest.mark.parametrize(
    "payload", [b"\x00\x01\x02\x03", b"\x80", bytes(range(0x80, 0xC0))], ids=["not exi", "truncated", "garbage"]
)
def test_garbage_exi(payload: bytes) -> None:
    with pytest.raises(PayloadError) as caught:
        V2gChannel().receive_data(v2gtp.build(0x8001, payload))
    assert "0x8001 (appProtocol): EXI:" in one_line(caught)


def test_an_unencodable_message_is_refused() -> None:
    with pytest.raises(LocalChannelError, match="EXI"):
        dc_channel().send(cm.SessionSetupReq(header=header(), evccid=None))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "break_it",
    [
        lambda c: c.receive_data(b"\x02\xfd\x80\x01\x00\x00\x00\x00"),
        lambda c: c.receive_data(v2gtp.build(0x8004, b"\x80")),
        lambda c: c.send(sap_req()),
    ],
    ids=["framing", "payload", "local"],
)
def test_the_channel_is_unusable_after_an_error(break_it) -> None:
    channel = dc_channel()
    with pytest.raises(ChannelError) as first:
        break_it(channel)
    with pytest.raises(ChannelError, match="failed earlier") as again:
        channel.receive_data(frame(session_setup_req(), 0x8002, "iso20-common"))
    assert str(first.value) in str(again.value)
    with pytest.raises(ChannelError, match="failed earlier"):
        channel.send(session_setup_req())


# -- one-off decoding ------------------------------------------------------------------------------------------
def test_decode_frame_from_the_readme() -> None:
    data = bytes.fromhex("01fe800200000024808c0400000000000000000c08df6d706209aba6a0981b2c2d2d18a6a81899199a1a9b00")
    got = decode_frame(data)
    assert isinstance(got.message, cm.SessionSetupReq)
    assert got.message.evccid == "WMA06XZZ1MP123456"
    assert (got.schema, got.payload_type, got.size) == ("iso20-common", 0x8002, 0x24)


@pytest.mark.parametrize(
    ("message", "payload_type", "schema"),
    [
        (sap_req(), 0x8001, "appProtocol"),
        (session_setup_req(), 0x8002, "iso20-common"),
        (cable_check_req(), 0x8004, "iso20-dc"),
        (minimal(cm.MeteringConfirmationReq, header=header()), 0x8102, "iso20-common"),
    ],
    ids=["0x8001", "0x8002", "0x8004", "0x8102"],
)
def test_decode_frame_picks_the_schema_from_the_payload_type(message, payload_type: int, schema: str) -> None:
    got = decode_frame(frame(message, payload_type, schema))
    assert (got.message, got.schema, got.payload_type) == (message, schema, payload_type)


def test_decode_frame_with_an_explicit_schema() -> None:
    data = frame(cable_check_req(), 0x8002, "iso20-dc")  # the wrong payload type: the caller knows better
    assert decode_frame(data, "iso20-dc").message == cable_check_req()
    with pytest.raises(PayloadError, match="0x8002 \\(iso20-common\\): EXI"):
        decode_frame(data)
    with pytest.raises(PayloadError, match="unknown schema id 'iso2'; known: appProtocol"):
        decode_frame(data, "iso2")


@pytest.mark.parametrize(
    ("data", "error", "fragment"),
    [
        (v2gtp.build(0x9001, bytes(20)), PayloadError, "0x9001 does not carry EXI"),
        (b"\x01\xfe\x80", FramingError, "header needs 8 bytes"),
        (sap_frame(sap_req()) + b"\x00", FramingError, "header says"),
        (sap_frame(sap_req())[:-1], FramingError, "header says"),
        (v2gtp.build(0x8001, b""), PayloadError, "empty stream"),
    ],
    ids=["sdp", "short header", "trailing byte", "short payload", "empty payload"],
)
def test_decode_frame_errors(data: bytes, error: type[ChannelError], fragment: str) -> None:
    with pytest.raises(error) as caught:
        decode_frame(data)
    assert fragment in one_line(caught)
