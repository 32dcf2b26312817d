"""SDP payloads, malformed datagrams and the SECC's negotiation policy (PROTOCOL.md section 1)."""

from __future__ import annotations

import asyncio
import contextlib
from ipaddress import IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stack import v2gtp
from stack.sdp import (
    REQUEST_PAYLOAD_TYPE,
    RESPONSE_PAYLOAD_TYPE,
    Endpoint,
    Offers,
    SdpError,
    SdpRequest,
    SdpResponse,
    Security,
    TransportProtocol,
    negotiate,
)
from stack.transport import sdp as transport_sdp

SECC = IPv6Address("fe80::1")
TLS = Endpoint(SECC, 50000)
TCP = Endpoint(SECC, 50001)

responses = st.builds(
    SdpResponse,
    address=st.ip_addresses(v=6),
    port=st.integers(0, 0xFFFF),
    security=st.sampled_from(Security),
    transport=st.sampled_from(TransportProtocol),
)


def test_request_bytes() -> None:
    assert SdpRequest(Security.TLS, TransportProtocol.TCP).to_frame() == bytes.fromhex("01fe9000000000020000")
    assert SdpRequest(Security.NO_TLS).to_frame() == bytes.fromhex("01fe9000000000021000")


def test_response_bytes() -> None:
    frame = SdpResponse(IPv6Address("fe80::1"), 50000, Security.TLS).to_frame()
    assert frame == bytes.fromhex("01fe900100000014" + "fe80" + "00" * 13 + "01" + "c350" + "0000")


@given(st.sampled_from(Security), st.sampled_from(TransportProtocol))
def test_request_round_trip(security: Security, transport: TransportProtocol) -> None:
    request = SdpRequest(security, transport)
    decoded = SdpRequest.from_frame(request.to_frame())
    assert decoded == request
    assert type(decoded.security) is Security and type(decoded.transport) is TransportProtocol


@given(responses)
def test_response_round_trip(response: SdpResponse) -> None:
    assert SdpResponse.from_frame(response.to_frame()) == response


@given(st.integers(0, 255), st.integers(0, 255))
def test_request_keeps_unknown_bytes_for_the_policy(security: int, transport: int) -> None:
    decoded = SdpRequest.from_frame(v2gtp.build(REQUEST_PAYLOAD_TYPE, bytes((security, transport))))
    assert (decoded.security, decoded.transport) == (security, transport)


GOOD_RESPONSE = SdpResponse(SECC, 50000, Security.TLS).to_frame()
MALFORMED_REQUESTS = {
    "empty": b"",
    "short header": b"\x01\xfe\x90\x00",
    "bad version": b"\x02\xfd\x90\x00\x00\x00\x00\x02\x00\x00",
    "bad inverse version": b"\x01\xff\x90\x00\x00\x00\x00\x02\x00\x00",
    "unknown payload type": v2gtp.build(0x1234, b"\x00\x00"),
    "EXI payload type": v2gtp.build(0x8002, b"\x00\x00"),
    "response payload type": v2gtp.build(RESPONSE_PAYLOAD_TYPE, b"\x00\x00"),
    "wireless request": v2gtp.build(0x9002, b"\x00\x00"),
    "payload too short": v2gtp.build(REQUEST_PAYLOAD_TYPE, b"\x00"),
    "payload too long": v2gtp.build(REQUEST_PAYLOAD_TYPE, b"\x00\x00\x00"),
    "truncated payload": v2gtp.build(REQUEST_PAYLOAD_TYPE, b"\x00\x00")[:-1],
    "trailing byte": v2gtp.build(REQUEST_PAYLOAD_TYPE, b"\x00\x00") + b"\x00",
    "length field lies": b"\x01\xfe\x90\x00\xff\xff\xff\xff\x00\x00",
}
MALFORMED_RESPONSES = {
    "empty": b"",
    "bad version": b"\x00" + GOOD_RESPONSE[1:],
    "request payload type": v2gtp.build(REQUEST_PAYLOAD_TYPE, GOOD_RESPONSE[8:]),
    "payload too short": v2gtp.build(RESPONSE_PAYLOAD_TYPE, GOOD_RESPONSE[8:-1]),
    "payload too long": v2gtp.build(RESPONSE_PAYLOAD_TYPE, GOOD_RESPONSE[8:] + b"\x00"),
    "truncated payload": GOOD_RESPONSE[:-1],
    "trailing byte": GOOD_RESPONSE + b"\x00",
    "unknown security": GOOD_RESPONSE[:-2] + b"\x20\x00",
    "unknown transport": GOOD_RESPONSE[:-1] + b"\x01",
}


@pytest.mark.parametrize("data", MALFORMED_REQUESTS.values(), ids=MALFORMED_REQUESTS.keys())
def test_malformed_request(data: bytes) -> None:
    with pytest.raises(SdpError):
        SdpRequest.from_frame(data)


@pytest.mark.parametrize("data", MALFORMED_RESPONSES.values(), ids=MALFORMED_RESPONSES.keys())
def test_malformed_response(data: bytes) -> None:
    with pytest.raises(SdpError):
        SdpResponse.from_frame(data)


@given(st.binary(max_size=40))
def test_arbitrary_bytes_decode_or_raise_sdp_error(data: bytes) -> None:
    for decode in (SdpRequest.from_frame, SdpResponse.from_frame):
        with contextlib.suppress(SdpError):
            decode(data)


def test_response_port_range() -> None:
    with pytest.raises(ValueError):
        SdpResponse(SECC, 0x10000, Security.TLS)


NEGOTIATION = [
    # requested security, offers -> answered endpoint and security (None: no answer)
    (Security.TLS, Offers(tls=TLS, tcp=TCP), (TLS, Security.TLS)),
    (Security.TLS, Offers(tls=TLS), (TLS, Security.TLS)),
    (Security.TLS, Offers(tcp=TCP), (TCP, Security.NO_TLS)),
    (Security.NO_TLS, Offers(tls=TLS, tcp=TCP), (TCP, Security.NO_TLS)),
    (Security.NO_TLS, Offers(tcp=TCP), (TCP, Security.NO_TLS)),
    (Security.NO_TLS, Offers(tls=TLS), (TLS, Security.TLS)),
    (Security.TLS, Offers(), None),
    (Security.NO_TLS, Offers(), None),
    (0x01, Offers(tls=TLS, tcp=TCP), None),
    (0x20, Offers(tls=TLS, tcp=TCP), None),
    (0xFF, Offers(tls=TLS, tcp=TCP), None),
]


@pytest.mark.parametrize(("security", "offers", "expected"), NEGOTIATION)
def test_negotiate(security: int, offers: Offers, expected: tuple[Endpoint, Security] | None) -> None:
    answer = negotiate(SdpRequest(security, TransportProtocol.TCP), offers)
    if expected is None:
        assert answer is None
    else:
        endpoint, answered_security = expected
        assert answer == SdpResponse(endpoint.address, endpoint.port, answered_security, TransportProtocol.TCP)


@pytest.mark.parametrize("transport", [TransportProtocol.UDP, 0x01, 0xFF])
def test_negotiate_no_answer_to_non_tcp_transport(transport: int) -> None:
    assert negotiate(SdpRequest(Security.TLS, transport), Offers(tls=TLS, tcp=TCP)) is None


def test_negotiate_decoded_request() -> None:
    request = SdpRequest.from_frame(bytes.fromhex("01fe9000000000021000"))
    assert negotiate(request, Offers(tls=TLS, tcp=TCP)) == SdpResponse(SECC, 50001, Security.NO_TLS)


IF_INET6 = """\
00000000000000000000000000000001 01 80 10 80       lo
fe800000000000000000000000000001 02 40 20 c0       va
fe800000000000000000000000000002 02 40 20 88       va
20010db8000000000000000000000001 02 40 00 80       va
fe800000000000000000000000000003 02 40 20 80       va
fe800000000000000000000000000004 03 40 20 80       vb
"""


def test_link_local_address_skips_tentative_and_dad_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport_sdp, "_read_if_inet6", lambda: IF_INET6)
    assert transport_sdp.link_local_address("va") == IPv6Address("fe80::3")
    assert transport_sdp.link_local_address("vb") == IPv6Address("fe80::4")
    with pytest.raises(LookupError):
        transport_sdp.link_local_address("lo")


def test_wait_link_local_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    tentative_only = IF_INET6.splitlines()[1]
    monkeypatch.setattr(transport_sdp, "_read_if_inet6", lambda: tentative_only)
    with pytest.raises(TimeoutError, match="va"):
        asyncio.run(transport_sdp.wait_link_local("va", timeout=0.05, poll=0.01))
