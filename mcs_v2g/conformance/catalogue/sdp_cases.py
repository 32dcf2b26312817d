"""SDP, both roles (tag "sdp"): a charger answers valid requests with a 20-byte response naming a TCP port and the
security asked for (MV-SDP-ANSWER) and stays silent on malformed datagrams while it keeps answering valid ones
(MV-SDP-IGNORE-BAD); a truck sends valid requests, resends them every 250 ms while unanswered, at most 50 times,
and stops once answered (MV-SDP-EV-REQUEST). Over UDP: a bench without an SDP path makes them inconclusive."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv6Address

from stack.sdp import (
    MAX_REQUESTS,
    REQUEST_PAYLOAD_TYPE,
    RESPONSE_PAYLOAD_TYPE,
    RESPONSE_TIMEOUT,
    SdpError,
    SdpRequest,
    SdpResponse,
    Security,
    TransportProtocol,
)
from stack.session import conduct
from stack.v2gtp import HEADER, build

from ..bench import Address, Bench, NoSdp, SdpSocket, udp_socket
from ..case import Breaker, Case, Needs
from ..driver import Script
from ..profile import DeviceProfile
from ..verdict import Verdict, failed, inconclusive, passed

SDP_SIDE = "sdp_side"  # ours.SDP_SIDE (ours imports the catalogue: no import back)
ANSWER = conduct.SDP_ANSWER.id
IGNORE = conduct.SDP_IGNORES_BAD.id
EV_RULE = conduct.SDP_EV_REQUESTS.id
# valid requests the tester EV sends (250 ms apart) before it judges the charger silent: a whole discovery cycle of
# an EV (PROTOCOL.md 1: at most 50), so a charger that is slow to answer (e.g. restarting its TCP server) is not
# failed for what no EV would notice
ATTEMPTS = MAX_REQUESTS
SILENT_S = 2 * RESPONSE_TIMEOUT  # how long the charger must stay silent after a bad datagram
RESEND_SLACK_S = 0.025  # a truck's resend may come this much sooner than 250 ms (its clock, our timestamps)
RESEND_LATE_S = 0.25  # ... and this much later
FIRST_REQUEST_S = 20.0  # how long the tester waits for the truck's first request (V2G_EVCC_CommunicationSetup)
QUIET_S = 2.0  # after this long without a request the truck's discovery cycle is over
Answer = Callable[[bytes], bytes | None]


# -- a charger under test -----------------------------------------------------------------------------------------
async def _ask(sdp: SdpSocket, clock_now: Callable[[], float], request: bytes) -> bytes | None:
    """Send a valid request up to ATTEMPTS times, 250 ms apart, as an EV does; the first answer, or None."""
    for attempt in range(1, ATTEMPTS + 1):
        sdp.send(request, detail=f"request {attempt}")
        got = await sdp.receive(clock_now() + RESPONSE_TIMEOUT)
        if got is not None:
            return got[0]
    return None


def judge_answer(data: bytes | None, asked: Security, profile: DeviceProfile, rule: str = ANSWER) -> Verdict:
    """The answer to a valid request: a 20-byte 0x9001 response with a TCP port and the security asked for when
    the device offers it."""
    if data is None:
        return failed(rule, "an SDP response", f"no answer to {ATTEMPTS} requests {RESPONSE_TIMEOUT:g} s apart")
    try:
        response = SdpResponse.from_frame(data)
    except SdpError as exc:
        return failed(rule, "a 20-byte SDP response (0x9001)", str(exc))
    if response.transport is not TransportProtocol.TCP or response.port == 0:
        return failed(rule, "a TCP port", f"{response.transport.name} port {response.port}")
    offered = profile.tls if asked is Security.TLS else profile.tcp
    if offered and response.security is not asked:
        return failed(rule, f"security {asked.name} (asked, offered)", response.security.name)
    return passed()


def _security(profile: DeviceProfile) -> Security:
    return Security.TLS if profile.tls else Security.NO_TLS


def answer_case(detail: str, asked: Security, title: str, breaker: Callable[[], Answer], needs: Needs) -> Case:
    async def run(bench: Bench) -> Verdict:
        sdp = await _socket(bench)
        if sdp is None:
            return inconclusive("the bench has no SDP path to the charger")
        data = await _ask(sdp, bench.clock.now, SdpRequest(asked).to_frame())
        return judge_answer(data, asked, bench.profile)

    tags = ("sdp", "tls") if asked is Security.TLS else ("sdp",)
    return Case(f"SECC-SDP-{detail}", title, "secc", (ANSWER,), run, _breaks(breaker, ANSWER), needs, tags)


def resend_case() -> Case:
    async def run(bench: Bench) -> Verdict:
        sdp = await _socket(bench)
        if sdp is None:
            return inconclusive("the bench has no SDP path to the charger")
        request = SdpRequest(_security(bench.profile)).to_frame()
        first = judge_answer(await _ask(sdp, bench.clock.now, request), _security(bench.profile), bench.profile)
        if not first.ok:
            return first
        await bench.clock.sleep_until(bench.clock.now() + RESPONSE_TIMEOUT)  # as if the answer had been lost
        return judge_answer(await _ask(sdp, bench.clock.now, request), _security(bench.profile), bench.profile)

    return Case(
        "SECC-SDP-RESEND",
        "An EV resends its request 250 ms later (as if the answer was lost): the charger answers it again",
        "secc",
        (ANSWER,),
        run,
        _breaks(lambda: _once(_echo), ANSWER),
        tags=("sdp",),
    )


@dataclass(frozen=True)
class BadDatagram:
    detail: str
    title: str
    datagram: bytes


def _header(version: int, inverse: int, payload_type: int, payload: bytes) -> bytes:
    return HEADER.pack(version, inverse, payload_type, len(payload)) + payload


TLS_TCP = bytes((Security.TLS, TransportProtocol.TCP))
BAD_DATAGRAMS = (
    BadDatagram("BAD-VERSION", "V2GTP version 0x02", _header(0x02, 0xFD, REQUEST_PAYLOAD_TYPE, TLS_TCP)),
    BadDatagram("BAD-INVERSE", "inverse version 0x00", _header(0x01, 0x00, REQUEST_PAYLOAD_TYPE, TLS_TCP)),
    BadDatagram("BAD-TYPE", "payload type 0x9001 (a response)", build(RESPONSE_PAYLOAD_TYPE, TLS_TCP)),
    BadDatagram("BAD-LENGTH-FIELD", "a header length of 3 for 2 bytes", HEADER.pack(1, 0xFE, 0x9000, 3) + TLS_TCP),
    BadDatagram("LENGTH-1", "a 1-byte payload", build(REQUEST_PAYLOAD_TYPE, TLS_TCP[:1])),
    BadDatagram("LENGTH-3", "a 3-byte payload", build(REQUEST_PAYLOAD_TYPE, TLS_TCP + b"\x00")),
    BadDatagram(
        "UDP", "transport UDP (0x10)", build(REQUEST_PAYLOAD_TYPE, bytes((Security.TLS, TransportProtocol.UDP)))
    ),
    BadDatagram("UNKNOWN-SECURITY", "security 0x20", build(REQUEST_PAYLOAD_TYPE, bytes((0x20, TransportProtocol.TCP)))),
)


def ignore_case(bad: BadDatagram, breaker: Callable[[], Answer] | None = None, detail: str = "") -> Case:
    async def run(bench: Bench) -> Verdict:
        sdp = await _socket(bench)
        if sdp is None:
            return inconclusive("the bench has no SDP path to the charger")
        sdp.send(bad.datagram, detail=bad.title)
        got = await sdp.receive(bench.clock.now() + SILENT_S)
        if got is not None:
            return failed(IGNORE, f"no answer to {bad.title}", f"{len(got[0])} bytes answered", "SDP")
        asked = _security(bench.profile)
        return judge_answer(
            await _ask(sdp, bench.clock.now, SdpRequest(asked).to_frame()), asked, bench.profile, IGNORE
        )

    return Case(
        f"SECC-SDP-{detail or bad.detail}",
        f"An SDP request with {bad.title}: no answer, and the next valid request is answered",
        "secc",
        (IGNORE,),
        run,
        _breaks(breaker or (lambda: _echo), IGNORE),
        tags=("sdp",),
    )


def _breaks(answer: Callable[[], Answer], rule: str) -> Breaker:
    return Breaker(Script, rule, {SDP_SIDE: answer})


async def _socket(bench: Bench) -> SdpSocket | None:
    try:
        return await bench.sdp()
    except (NoSdp, OSError):
        return None


# our broken chargers' SDP answers
BROKEN_ADDRESS = IPv6Address("::1")


def _echo(data: bytes) -> bytes | None:
    """Answers whatever comes, with the security byte it finds (a charger that checks nothing)."""
    security = data[8] if len(data) > 8 and data[8] in (0x00, 0x10) else Security.TLS
    return SdpResponse(BROKEN_ADDRESS, 50001, Security(security)).to_frame()


def _always(security: Security) -> Answer:
    return lambda data: SdpResponse(BROKEN_ADDRESS, 50001, security).to_frame()


def _with_type(payload_type: int) -> Answer:
    return lambda data: build(payload_type, SdpResponse(BROKEN_ADDRESS, 50001, Security.TLS).to_frame()[8:])


def _once(answer: Answer) -> Answer:
    """Answers the first datagram only."""
    answered: list[bytes] = []

    def once(data: bytes) -> bytes | None:
        if answered:
            return None
        answered.append(data)
        return answer(data)

    return once


def _silent_after_bad() -> Answer:
    """Answers valid requests until the first malformed datagram, then nothing (a responder that broke)."""
    broken: list[bytes] = []

    def answer(data: bytes) -> bytes | None:
        try:
            SdpRequest.from_frame(data)
        except SdpError:
            broken.append(data)
        return None if broken else _echo(data)

    return answer


def charger_cases() -> Iterator[Case]:
    yield answer_case(
        "TLS",
        Security.TLS,
        "A valid SDP request for TLS: a 20-byte response with a TCP port and security TLS",
        lambda: _always(Security.NO_TLS),
        Needs(features=("tls",)),
    )
    yield answer_case(
        "TCP",
        Security.NO_TLS,
        "A valid SDP request without TLS: a response with a TCP port and no TLS",
        lambda: _always(Security.TLS),
        Needs(features=("tcp",)),
    )
    yield answer_case(
        "FORMAT",
        Security.TLS,
        "The SDP response is a V2GTP frame 0x9001 with 20 payload bytes",
        lambda: _with_type(REQUEST_PAYLOAD_TYPE),
        Needs(),
    )
    yield resend_case()
    for bad in BAD_DATAGRAMS:
        yield ignore_case(bad)
    yield ignore_case(BAD_DATAGRAMS[5], _silent_after_bad, "ANSWERS-AFTER-BAD")


# -- a truck under test ---------------------------------------------------------------------------------------------
async def _requests(bench: Bench, sdp: SdpSocket, answer_nth: int | None) -> list[tuple[float, bytes]]:
    """The truck's requests until its cycle is over (QUIET_S without one), answering the `answer_nth` one."""
    got: list[tuple[float, bytes]] = []
    deadline = bench.clock.now() + FIRST_REQUEST_S
    while len(got) <= 2 * MAX_REQUESTS:
        datagram = await sdp.receive(deadline)
        if datagram is None:
            break
        got.append((bench.clock.now(), datagram[0]))
        if answer_nth == len(got):
            sdp.send(_tester_answer(bench), to=datagram[1], detail="the tester's SDP response")
        deadline = bench.clock.now() + QUIET_S
    return got


def _tester_answer(bench: Bench) -> bytes:
    target = bench.sdp_target
    where = target.answer if target is not None and target.answer is not None else (IPv6Address("::1"), 50001)
    return SdpResponse(where[0], where[1], _security(bench.profile)).to_frame()


def _valid(request: bytes) -> str | None:
    """Why the request is not a valid SDP request for TCP, or None."""
    try:
        parsed = SdpRequest.from_frame(request)
    except SdpError as exc:
        return str(exc)
    if not isinstance(parsed.security, Security) or parsed.transport is not TransportProtocol.TCP:
        return f"security {int(parsed.security):#04x}, transport {int(parsed.transport):#04x}"
    return None


TruckJudge = Callable[[list[tuple[float, bytes]]], Verdict]


def truck_case(
    detail: str, title: str, answer_nth: int | None, judge: TruckJudge, side: Callable[..., Awaitable[None]]
) -> Case:
    async def run(bench: Bench) -> Verdict:
        sdp = await _socket(bench)
        if sdp is None:
            return inconclusive("the bench has no SDP path to the truck")
        got = await _requests(bench, sdp, answer_nth)
        if not got:
            return failed(EV_RULE, "an SDP request", f"none in {FIRST_REQUEST_S:g} s")
        return judge(got)

    return Case(
        f"EVCC-SDP-{detail}", title, "evcc", (EV_RULE,), run, Breaker(Script, EV_RULE, {SDP_SIDE: side}), tags=("sdp",)
    )


def _all_valid(got: list[tuple[float, bytes]]) -> Verdict:
    for t, request in got:
        why = _valid(request)
        if why is not None:
            return failed(EV_RULE, "0x9000 with 2 bytes: a known security, transport TCP", why, "SDP", t)
    return passed()


def _spaced(got: list[tuple[float, bytes]]) -> Verdict:
    for (before, _), (t, _) in zip(got, got[1:], strict=False):
        gap = t - before
        if not RESPONSE_TIMEOUT - RESEND_SLACK_S <= gap <= RESPONSE_TIMEOUT + RESEND_LATE_S:
            return failed(
                EV_RULE, f"a resend after {RESPONSE_TIMEOUT * 1000:g} ms", f"after {gap * 1000:.0f} ms", "SDP", t
            )
    if len(got) < 2:
        return failed(EV_RULE, "a resend of the unanswered request", "none")
    return passed()


def _at_most(got: list[tuple[float, bytes]]) -> Verdict:
    if len(got) > MAX_REQUESTS:
        return failed(EV_RULE, f"at most {MAX_REQUESTS} requests", f"{len(got)}", "SDP", got[MAX_REQUESTS][0])
    return passed()


def _stops(got: list[tuple[float, bytes]]) -> Verdict:
    if len(got) > 1:
        return failed(EV_RULE, "no request after the answer", f"{len(got) - 1} more", "SDP", got[1][0])
    return passed()


# our broken trucks' SDP sides
def _sender(
    count: int, gap: float, payload: bytes = TLS_TCP, until_answered: bool = True
) -> Callable[[Address], Awaitable[None]]:
    async def send(tester: Address) -> None:
        transport, queue = await udp_socket(("::1", 0, 0, 0))
        try:
            for _ in range(count):
                transport.sendto(build(REQUEST_PAYLOAD_TYPE, payload), tester)
                try:
                    async with asyncio.timeout(gap):
                        await queue.get()
                    if until_answered:
                        return
                except TimeoutError:
                    continue
        finally:
            transport.close()

    return send


def truck_cases() -> Iterator[Case]:
    yield truck_case(
        "REQUEST",
        "The truck's SDP requests are 0x9000 frames of 2 bytes: a known security, transport TCP",
        3,
        _all_valid,
        _sender(MAX_REQUESTS, RESPONSE_TIMEOUT, TLS_TCP + b"\x00"),
    )
    yield truck_case(
        "RESEND",
        "Unanswered, the truck resends its SDP request every 250 ms",
        5,
        _spaced,
        _sender(MAX_REQUESTS, RESPONSE_TIMEOUT / 2.5),
    )
    yield truck_case(
        "AT-MOST-50",
        "Never answered, the truck sends at most 50 SDP requests in a cycle",
        None,
        _at_most,
        _sender(MAX_REQUESTS + 10, RESPONSE_TIMEOUT),
    )
    yield truck_case(
        "STOPS-WHEN-ANSWERED",
        "Answered, the truck sends no further SDP request",
        1,
        _stops,
        _sender(MAX_REQUESTS, RESPONSE_TIMEOUT, until_answered=False),
    )


def cases() -> Iterator[Case]:
    yield from charger_cases()
    yield from truck_cases()
