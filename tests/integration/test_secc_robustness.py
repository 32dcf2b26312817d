"""A real SeccServer on loopback TCP against a hostile raw-socket client.

Every case sends bad input (broken V2GTP headers, garbage EXI, messages out of sequence, foreign SessionIDs,
stalls, resets, floods) and checks that the SECC answers as PROTOCOL.md sections 2, 4.2 and 7 say or closes the
connection; that it never crashes (no ERROR record in the logs), never hangs (every read is bounded); and that a
normal `run_evcc` session against the same server still completes afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from examples.minimal_controllers import MinimalEv, MinimalEvse
from stack import exi, schemas
from stack.messages import app_protocol as ap
from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct
from stack.messages.minimal import minimal
from stack.session.actions import Close
from stack.session.config import DC_NAMESPACE, SeccConfig
from stack.session.evcc import EvccConfig
from stack.session.timers import EvccTimers, SeccTimers
from stack.transport.evcc_client import run_evcc
from stack.transport.limits import Limits
from stack.transport.secc_server import SeccServer
from stack.v2gtp import DEFAULT_MAX_PAYLOAD, HEADER, HEADER_SIZE, SCHEMA_PAYLOAD_TYPES, build, parse_header

HOST = "127.0.0.1"
READ_TIMEOUT = 5.0  # every read is bounded: a hanging server fails the test instead of blocking it
FAST = EvccConfig(timers=EvccTimers(loop_interval=0.0, charge_loop_interval=0.0))
SHORT_SEQUENCE = SeccConfig(timers=SeccTimers(sequence=0.3))
SMALL_MAX_PAYLOAD = 128  # above every request of a normal session (the largest, DC_ChargeLoopReq, is ~70 B)
RC = ct.ResponseCode
RNG_SEED = 15118


# -- messages and frames ---------------------------------------------------------------------------------------
def header(session_id: bytes = bytes(8)) -> ct.MessageHeader:
    return ct.MessageHeader(session_id=session_id, time_stamp=int(time.time()))


def sap_req(namespace: str = DC_NAMESPACE, major: int = 1) -> ap.SupportedAppProtocolReq:
    entry = ap.AppProtocol(
        protocol_namespace=namespace, version_number_major=major, version_number_minor=0, schema_id=1, priority=1
    )
    return ap.SupportedAppProtocolReq(app_protocol=[entry])


def session_setup_req() -> cm.SessionSetupReq:
    return cm.SessionSetupReq(header=header(), evccid="WMIV1234567890ABCDEX")


def charge_loop_req(session_id: bytes) -> dc.DcChargeLoopReq:
    return minimal(dc.DcChargeLoopReq, header=header(session_id))


def raw_header(version: int = 0x01, inverse: int = 0xFE, payload_type: int = 0x8002, length: int = 0) -> bytes:
    return HEADER.pack(version, inverse, payload_type, length)


def frame(message: object, schema: str) -> bytes:
    """`message` EXI-encoded with `schema` in a V2GTP frame of the matching payload type."""
    return build(SCHEMA_PAYLOAD_TYPES[schema], exi.encode(message, schema=schema))


def random_bytes(rng: random.Random, n: int) -> bytes:
    return bytes(rng.randrange(256) for _ in range(n))


def undecodable(rng: random.Random, schema: str, n: int = 40) -> bytes:
    """Random bytes our codec rejects with `schema` (checked here, so the case stays meaningful)."""
    data = random_bytes(rng, n)
    with pytest.raises(exi.ExiError):
        exi.decode(data, schema)
    return data


# -- the raw client ------------------------------------------------------------------------------------------
class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, message: object, schema: str) -> None:
        await self.send_raw(frame(message, schema))

    async def receive(self, schema: str) -> object:
        """The next answer, decoded with `schema`; its payload type must match the schema."""
        head = await self._bounded(self.reader.readexactly(HEADER_SIZE), "a response header")
        payload_type, length = parse_header(head)
        assert payload_type == SCHEMA_PAYLOAD_TYPES[schema], f"payload type {payload_type:#06x} for {schema}"
        return exi.decode(await self._bounded(self.reader.readexactly(length), "a response payload"), schema)

    async def expect_closed(self, timeout: float = READ_TIMEOUT) -> bytes:
        """Wait until the SECC closes the connection; returns what it sent before closing."""
        try:
            return await self._bounded(self.reader.read(), "the SECC to close the connection", timeout)
        except ConnectionResetError:  # closing with unread bytes in its buffer makes the kernel send RST
            return b""

    async def _bounded(self, read: Awaitable[bytes], what: str, timeout: float = READ_TIMEOUT) -> bytes:
        try:
            return await asyncio.wait_for(read, timeout)
        except TimeoutError:
            raise AssertionError(f"waited {timeout} s for {what}: the SECC hangs") from None

    async def sap(self) -> None:
        await self.send(sap_req(), "appProtocol")
        res = await self.receive("appProtocol")
        assert res.response_code == ap.ResponseCode.OK_SuccessfulNegotiation

    async def sap_and_session_setup(self) -> bytes:
        """Do SAP and SessionSetup; returns the SessionID the SECC assigned."""
        await self.sap()
        await self.send(session_setup_req(), "iso20-common")
        res = await self.receive("iso20-common")
        assert isinstance(res, cm.SessionSetupRes) and res.response_code == RC.OK_NewSessionEstablished
        return res.header.session_id

    def abort(self, *, rst: bool) -> None:
        """Drop the connection at once; with `rst` the kernel sends a TCP RST instead of a FIN."""
        if rst:
            sock = self.writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    def close(self) -> None:
        self.writer.close()


@contextlib.asynccontextmanager
async def connect(port: int) -> AsyncIterator[RawClient]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), READ_TIMEOUT)
    client = RawClient(reader, writer)
    try:
        yield client
    finally:
        client.close()


# -- the server side -----------------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def serving(config: SeccConfig | None = None, **kwargs) -> AsyncIterator[tuple[SeccServer, int]]:
    async with SeccServer(MinimalEvse, config, **kwargs) as server:
        _, port = await server.start(HOST, 0)
        yield server, port


async def next_result(server: SeccServer, index: int, timeout: float = READ_TIMEOUT) -> Close:
    """The Close of the `index`-th finished connection, once the server recorded it."""
    deadline = time.monotonic() + timeout
    while len(server.results) <= index:
        assert time.monotonic() < deadline, f"the server recorded no end of connection {index + 1}: {server.results}"
        await asyncio.sleep(0.01)
    return server.results[index]


async def assert_serves(server: SeccServer, port: int) -> None:
    """A normal EVCC session against the same server completes, on both sides."""
    before = len(server.results)
    close, session = await asyncio.wait_for(run_evcc(HOST, port, MinimalEv(), FAST), 10)
    assert close.ok, close
    assert session.charge_loops > 0
    deadline = time.monotonic() + READ_TIMEOUT
    while not any(r.ok for r in list(server.results)[before:]):
        assert time.monotonic() < deadline, f"the SECC did not record the good session: {list(server.results)[before:]}"
        await asyncio.sleep(0.01)


@pytest.fixture
def run(caplog: pytest.LogCaptureFixture) -> Callable[[Awaitable], object]:
    """asyncio.run with an overall bound, then: nothing was logged at ERROR (a crash logs a traceback)."""
    caplog.set_level(logging.INFO, logger="mcs_v2g")

    def _run(coro: Awaitable, timeout: float = 20.0) -> object:
        result = asyncio.run(asyncio.wait_for(coro, timeout))
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not errors, "logged at ERROR:\n" + "\n".join(
            f"{r.name}: {r.getMessage()}\n{r.exc_text or ''}" for r in errors
        )
        return result

    return _run


# -- malformed V2GTP -----------------------------------------------------------------------------------------
def _truncated_session_setup() -> bytes:
    whole = frame(session_setup_req(), "iso20-common")
    return whole[: HEADER_SIZE + 10]  # the header promises the whole payload, 10 bytes of it come


HEADER_CASES = {
    # name: (bytes sent, half-close after sending, expected words of the Close reason)
    "wrong version": (raw_header(version=0x02, inverse=0xFD, length=4) + bytes(4), False, "bad protocol version"),
    "wrong inverse version": (raw_header(inverse=0x01, length=4) + bytes(4), False, "bad protocol version"),
    "zero version bytes": (bytes(16), False, "bad protocol version"),
    "reserved payload type": (raw_header(payload_type=0x8007, length=4) + bytes(4), False, "unknown payload type"),
    "manufacturer payload type": (raw_header(payload_type=0xA000, length=4) + bytes(4), False, "unknown payload"),
    "SDP payload type over TCP": (build(0x9000, b"\x10\x00"), False, "payload type 0x9000 is not valid"),
    "length max + 1": (raw_header(length=DEFAULT_MAX_PAYLOAD + 1), False, "above the maximum"),
    "length 2**32 - 1": (raw_header(length=2**32 - 1), False, "above the maximum"),
    "header then EOF": (raw_header(length=36), True, "connection lost"),
    "partial header then EOF": (b"\x01\xfe\x80", True, "connection lost"),
    "truncated payload then EOF": (_truncated_session_setup(), True, "connection lost"),
}


@pytest.mark.parametrize(("data", "eof", "reason"), list(HEADER_CASES.values()), ids=list(HEADER_CASES))
def test_malformed_v2gtp_closes_the_connection(run, data: bytes, eof: bool, reason: str) -> None:
    async def main() -> None:
        async with serving() as (server, port):
            async with connect(port) as client:
                await client.send_raw(data)
                if eof:
                    client.writer.write_eof()
                assert await client.expect_closed() == b"", "the SECC answered a malformed frame"
            result = await next_result(server, 0)
            assert not result.ok and reason in result.reason, result
            await assert_serves(server, port)

    run(main())


def test_payload_limit_of_a_small_server(run) -> None:
    """`max_payload` is enforced from the header: max + 1 is refused as V2GTP, max itself reaches the EXI decoder."""

    async def main() -> None:
        async with serving(limits=Limits(max_payload=SMALL_MAX_PAYLOAD)) as (server, port):
            async with connect(port) as client:
                await client.send_raw(raw_header(length=SMALL_MAX_PAYLOAD + 1))
                assert await client.expect_closed() == b""
            result = await next_result(server, 0)
            assert f"above the maximum {SMALL_MAX_PAYLOAD}" in result.reason, result

            rng = random.Random(RNG_SEED)
            async with connect(port) as client:
                await client.sap()  # 0x8002 is only carried once SAP chose -20
                await client.send_raw(build(0x8002, undecodable(rng, "iso20-common", SMALL_MAX_PAYLOAD)))
                assert await client.expect_closed() == b""
            result = await next_result(server, 1)
            assert result.reason.startswith("malformed message: payload type 0x8002 (iso20-common): EXI"), result
            await assert_serves(server, port)

    run(main())


# -- garbage EXI in valid frames -----------------------------------------------------------------------------
def _garbage_cases() -> dict[str, bytes]:
    rng = random.Random(RNG_SEED)
    whole = exi.encode(session_setup_req(), schema="iso20-common")
    return {
        "random bytes as CommonMessages": build(0x8002, undecodable(rng, "iso20-common")),
        "random bytes as DC": build(0x8004, undecodable(rng, "iso20-dc")),
        "random bytes as SAP": build(0x8001, undecodable(rng, "appProtocol")),
        "empty payload": build(0x8002, b""),
        "truncated SessionSetupReq": build(0x8002, whole[: len(whole) // 2]),
        "DC_ChargeLoopReq under 0x8002": build(0x8002, exi.encode(charge_loop_req(bytes(8)), schema="iso20-dc")),
        "supportedAppProtocolReq under 0x8002": build(0x8002, exi.encode(sap_req(), schema="appProtocol")),
        "SessionSetupReq under 0x8004": build(0x8004, whole),
    }


GARBAGE_CASES = _garbage_cases()


@pytest.mark.parametrize("after_sap", [False, True], ids=["first frame", "after SAP"])
@pytest.mark.parametrize("data", list(GARBAGE_CASES.values()), ids=list(GARBAGE_CASES))
def test_garbage_exi_closes_the_connection(run, data: bytes, after_sap: bool) -> None:
    """Undecodable EXI closes the connection; so does a payload type the connection does not carry yet (0x8002
    and 0x8004 before SAP) or any more (0x8001 after a -20 SAP), before its EXI is even looked at."""
    payload_type, _ = parse_header(data)
    carried = schemas.payload_schemas(schemas.DC_PROTOCOL if after_sap else None)
    if payload_type in carried:
        expected = f"payload type {payload_type:#06x} ({carried[payload_type]}): EXI"
    else:
        expected = f"payload type {payload_type:#06x} is not valid"

    async def main() -> None:
        async with serving() as (server, port):
            async with connect(port) as client:
                if after_sap:
                    await client.sap()
                await client.send_raw(data)
                assert await client.expect_closed() == b"", "the SECC answered undecodable EXI"
            result = await next_result(server, 0)
            assert not result.ok and result.reason.startswith(f"malformed message: {expected}"), result
            await assert_serves(server, port)

    run(main())


# -- sequence, session and negotiation errors ---------------------------------------------------------------
def test_charge_loop_after_session_setup_is_a_sequence_error(run) -> None:
    async def main() -> None:
        async with serving() as (server, port):
            async with connect(port) as client:
                session_id = await client.sap_and_session_setup()
                await client.send(charge_loop_req(session_id), "iso20-dc")
                res = await client.receive("iso20-dc")
                assert isinstance(res, dc.DcChargeLoopRes), res
                assert res.response_code == RC.FAILED_SequenceError
                assert res.header.session_id == session_id
                assert await client.expect_closed() == b""
            result = await next_result(server, 0)
            assert not result.ok and "FAILED_SequenceError" in result.reason, result
            await assert_serves(server, port)

    run(main())


@pytest.mark.parametrize("foreign", [bytes.fromhex("0102030405060708"), bytes(8)], ids=["other ID", "zero ID"])
def test_foreign_session_id_is_an_unknown_session(run, foreign: bytes) -> None:
    async def main() -> None:
        async with serving() as (server, port):
            async with connect(port) as client:
                session_id = await client.sap_and_session_setup()
                assert foreign != session_id
                await client.send(cm.AuthorizationSetupReq(header=header(foreign)), "iso20-common")
                res = await client.receive("iso20-common")
                assert isinstance(res, cm.AuthorizationSetupRes), res
                assert res.response_code == RC.FAILED_UnknownSession
                assert await client.expect_closed() == b""
            result = await next_result(server, 0)
            assert not result.ok and "FAILED_UnknownSession" in result.reason, result
            await assert_serves(server, port)

    run(main())


def test_session_setup_before_sap_closes_the_connection(run) -> None:
    """Before SAP the connection carries only SAP (0x8001): a -20 request on 0x8002 is a malformed message, closed
    without an answer (PROTOCOL.md section 2: a payload type the negotiated protocol does not support)."""

    async def main() -> None:
        async with serving() as (server, port):
            async with connect(port) as client:
                await client.send(session_setup_req(), "iso20-common")
                assert await client.expect_closed() == b"", "the SECC answered a -20 request before SAP"
            result = await next_result(server, 0)
            assert not result.ok and "payload type 0x8002 is not valid: before SAP" in result.reason, result
            await assert_serves(server, port)

    run(main())


@pytest.mark.parametrize(
    ("namespace", "major"),
    [("urn:example:unknown:protocol", 1), ("urn:iso:15118:2:2013:MsgDef", 2), (DC_NAMESPACE, 2)],
    ids=["unknown namespace", "ISO 15118-2", "DC with major 2"],
)
def test_sap_without_a_common_protocol_is_no_negotiation(run, namespace: str, major: int) -> None:
    async def main() -> None:
        async with serving() as (server, port):
            async with connect(port) as client:
                await client.send(sap_req(namespace, major), "appProtocol")
                res = await client.receive("appProtocol")
                assert res == ap.SupportedAppProtocolRes(response_code=ap.ResponseCode.Failed_NoNegotiation)
                assert await client.expect_closed() == b""
            result = await next_result(server, 0)
            assert not result.ok and "Failed_NoNegotiation" in result.reason, result
            await assert_serves(server, port)

    run(main())


def test_second_sap_is_refused_without_a_crash(run) -> None:
    """After a -20 SAP, 0x8001 is no longer carried: a second SAP request is a malformed message, no answer."""

    async def main() -> None:
        async with serving() as (server, port):
            async with connect(port) as client:
                await client.sap()
                await client.send(sap_req(), "appProtocol")
                assert await client.expect_closed() == b"", "the SECC answered a second SAP request"
            result = await next_result(server, 0)
            await assert_serves(server, port)  # first: even a crashed session must not stop the server
            assert not result.ok and result.reason != "internal error", result
            assert "payload type 0x8001 is not valid" in result.reason, result

    run(main())


def test_a_response_sent_to_the_secc_closes_the_connection(run) -> None:
    async def main() -> None:
        async with serving() as (server, port):
            async with connect(port) as client:
                await client.sap()
                res = cm.SessionSetupRes(header=header(), response_code=RC.OK, evseid="DE*X*E1")
                await client.send(res, "iso20-common")
                assert await client.expect_closed() == b""
            result = await next_result(server, 0)
            assert not result.ok and "unexpected message" in result.reason, result
            await assert_serves(server, port)

    run(main())


def test_requests_pipelined_behind_sap_are_answered_in_order(run) -> None:
    """SessionSetupReq in the same segment as the SAP request: it waits for the SAP answer (which makes 0x8002
    valid) instead of being refused as a payload type not carried before SAP."""

    async def main() -> None:
        async with serving() as (server, port):
            async with connect(port) as client:
                await client.send_raw(frame(sap_req(), "appProtocol") + frame(session_setup_req(), "iso20-common"))
                sap = await client.receive("appProtocol")
                assert sap.response_code == ap.ResponseCode.OK_SuccessfulNegotiation, sap
                res = await client.receive("iso20-common")
                assert isinstance(res, cm.SessionSetupRes) and res.response_code == RC.OK_NewSessionEstablished, res
            result = await next_result(server, 0)
            assert not result.ok and result.reason == "connection lost", result
            await assert_serves(server, port)

    run(main())


# -- stalls ---------------------------------------------------------------------------------------------------
async def _silent(client: RawClient) -> None:
    pass


async def _partial_header(client: RawClient) -> None:
    await client.send_raw(b"\x01\xfe\x80\x02")


async def _header_only(client: RawClient) -> None:
    await client.send_raw(raw_header(length=36))


async def _after_session_setup(client: RawClient) -> None:
    await client.sap_and_session_setup()


STALLS: dict[str, Callable[[RawClient], Awaitable[None]]] = {
    "silent": _silent,
    "partial header": _partial_header,
    "header without payload": _header_only,
    "after SAP": RawClient.sap,
    "after SessionSetup": _after_session_setup,
}


@pytest.mark.parametrize("prologue", list(STALLS.values()), ids=list(STALLS))
def test_stalled_client_is_closed_after_the_sequence_timeout(run, prologue) -> None:
    async def main() -> None:
        async with serving(SHORT_SEQUENCE) as (server, port):
            async with connect(port) as client:
                await prologue(client)
                started = time.monotonic()
                assert await client.expect_closed() == b""
                waited = time.monotonic() - started
            assert 0.2 <= waited <= 2.0, f"closed after {waited:.2f} s, the sequence timeout is 0.3 s"
            result = await next_result(server, 0)
            assert not result.ok and "Sequence_Timeout" in result.reason, result
            await assert_serves(server, port)

    run(main())


def test_trickling_client_is_closed_after_the_sequence_timeout(run) -> None:
    """One byte of a frame every 0.05 s: the sequence timeout (0.3 s) must still end the session."""

    async def main() -> None:
        async with serving(SHORT_SEQUENCE) as (server, port):
            async with connect(port) as client:

                async def trickle() -> None:
                    with contextlib.suppress(ConnectionError):
                        await client.send_raw(raw_header(length=100))
                        for _ in range(60):  # 3 s: ten times the timeout, a byte every 0.05 s
                            await asyncio.sleep(0.05)
                            await client.send_raw(b"\x00")

                trickler = asyncio.create_task(trickle())
                try:
                    await client.expect_closed(timeout=1.5)
                finally:
                    trickler.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await trickler
            result = await next_result(server, 0)
            assert "Sequence_Timeout" in result.reason, result
            await assert_serves(server, port)

    run(main())


# -- floods and resets ----------------------------------------------------------------------------------------
def _flood_payloads(n: int) -> list[tuple[bytes, bool]]:
    """n bad inputs of several kinds: (bytes, half-close after sending)."""
    rng = random.Random(RNG_SEED)
    kinds = [
        lambda: (random_bytes(rng, 64), False),  # not V2GTP at all
        lambda: (build(0x8002, undecodable(rng, "iso20-common")), False),
        lambda: (raw_header(inverse=0x00, length=8) + bytes(8), False),
        lambda: (raw_header(length=DEFAULT_MAX_PAYLOAD + 1), False),
        lambda: (raw_header(length=36) + bytes(5), True),
    ]
    return [kinds[i % len(kinds)]() for i in range(n)]


def test_many_bad_clients_at_once(run) -> None:
    async def bad_client(port: int, data: bytes, eof: bool) -> None:
        async with connect(port) as client:
            with contextlib.suppress(ConnectionError):  # the SECC may already have closed on the first bytes
                await client.send_raw(data)
                if eof:
                    client.writer.write_eof()
            await client.expect_closed()

    async def main() -> None:
        flood = _flood_payloads(50)
        async with serving() as (server, port):
            # a good session runs in the middle of the flood, another one after it
            await asyncio.gather(assert_serves(server, port), *(bad_client(port, d, e) for d, e in flood))
            await next_result(server, len(flood))  # 50 bad + 1 good recorded
            assert sum(not r.ok for r in server.results) == len(flood), server.results
            assert "internal error" not in {r.reason for r in server.results}
            await assert_serves(server, port)

    run(main())


async def _reset_idle(client: RawClient) -> None:
    await client.sap_and_session_setup()


async def _reset_mid_frame(client: RawClient) -> None:
    await client.sap_and_session_setup()
    await client.send_raw(frame(cm.AuthorizationSetupReq(header=header()), "iso20-common")[:11])


async def _reset_before_answer(client: RawClient) -> None:
    # two requests in one segment, then the reset: the SECC's second answer goes to a dead socket
    await client.send_raw(frame(sap_req(), "appProtocol") + frame(session_setup_req(), "iso20-common"))


RESETS = [
    pytest.param(_reset_idle, id="idle after SessionSetup"),
    pytest.param(_reset_mid_frame, id="mid-frame"),
    pytest.param(_reset_before_answer, id="before answer"),
]


@pytest.mark.parametrize("rst", [True, False], ids=["RST", "abort"])
@pytest.mark.parametrize("prologue", RESETS)
def test_client_reset_mid_session(run, prologue, rst: bool) -> None:
    async def main() -> None:
        async with serving() as (server, port):
            async with connect(port) as client:
                await prologue(client)
                client.abort(rst=rst)
            result = await next_result(server, 0)
            await assert_serves(server, port)  # first: even a crashed session must not stop the server
            assert not result.ok and result.reason == "connection lost", result

    run(main())
