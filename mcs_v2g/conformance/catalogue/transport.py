"""V2GTP framing, both roles: a frame with a bad header (version, inverse version, payload type, length), a payload
that is not EXI or a truncated frame makes the device close the connection without an answer; two frames in one
segment and a frame dripped byte by byte are answered; a charger that closed a bad connection serves the next.
(TLS and SDP cases: tls_cases.py and sdp_cases.py.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from stack import exi, schemas
from stack.channel import FramingError, Received, V2gChannel
from stack.messages import iso20_types as ct
from stack.messages.iso20_common import SessionSetupRes
from stack.session import conduct
from stack.session.exchanges.common import header
from stack.session.rulebook import BY_NAME
from stack.session.timers import EvccTimers, SeccTimers
from stack.v2gtp import HEADER, HEADER_SIZE, build

from ..bench import Bench
from ..case import Breaker, Case
from ..driver import Conversation, Fault, Script, Then, frame_of, play
from ..judges import CLOSE_WITHIN_S, answered_with, clean_session, closed_after, first_then, no_violation
from ..trace import Entry, Kind, Trace
from ..verdict import Verdict, failed
from .common import continue_with, request_like, run_ev, run_evse, tester_ev, tester_evse

HEADER_RULE = conduct.V2GTP_HEADER.id
STREAM_RULE = conduct.V2GTP_STREAM.id
SEQUENCE_TIMEOUT_S = SeccTimers().sequence  # the longest a charger may wait for the rest of a frame
NOT_EXI = b"NOT EXI: plain text"  # 'N' = 0b01001110: no EXI header starts so
DRIP_GAP_S = 0.01  # between the bytes of a dripped frame, so that each is its own segment
CHANNEL = "channel"  # ours.CHANNEL (ours imports the catalogue: no import back)
PATIENT_SECC: dict[str, object] = {"timers": SeccTimers(sequence=10 * SEQUENCE_TIMEOUT_S)}
PATIENT_EVCC: dict[str, object] = {"timers": EvccTimers(communication_setup=1000.0, message_scale=100.0)}


# -- our broken peers' channels ------------------------------------------------------------------------------------
class HeaderBlindChannel(V2gChannel):
    """A peer that ignores the V2GTP header (version, payload type, length) of each read: it decodes the payload
    with the first schema of the connection's protocol that decodes it."""

    def receive_data(self, data: bytes) -> list[Received]:
        payload = data[HEADER_SIZE:]
        for payload_type, schema in schemas.payload_schemas(self.protocol).items():
            try:
                exi.decode(payload, schema)
            except exi.ExiError:
                continue
            return super().receive_data(build(payload_type, payload))
        return super().receive_data(data)


class OneFramePerReadChannel(V2gChannel):
    """A peer that takes each read for exactly one frame: the frames after the first of a read are lost, a frame
    over several reads fails."""

    def receive_data(self, data: bytes) -> list[Received]:
        if len(data) < HEADER_SIZE:
            raise FramingError(f"a read of {len(data)} bytes is no frame")
        length = HEADER.unpack_from(data)[3]
        return super().receive_data(data[: HEADER_SIZE + length])


def _header_blind() -> Breaker:
    return Breaker(Script, HEADER_RULE, {CHANNEL: HeaderBlindChannel})


def _one_frame_per_read() -> Breaker:
    return Breaker(Script, STREAM_RULE, {CHANNEL: OneFramePerReadChannel})


# -- frames ------------------------------------------------------------------------------------------------------
def reframed(
    message: object,
    *,
    version: int = 0x01,
    inverse: int | None = None,
    payload_type: int | None = None,
    length: int | None = None,
    payload: bytes | None = None,
) -> bytes:
    """The V2GTP frame of `message` with header fields (or the payload) changed."""
    frame = frame_of(message)
    body = frame[HEADER_SIZE:] if payload is None else payload
    kind = HEADER.unpack_from(frame)[2] if payload_type is None else payload_type
    ones = version ^ 0xFF if inverse is None else inverse
    return HEADER.pack(version, ones, kind, len(body) if length is None else length) + body


def truncated(message: object) -> bytes:
    frame = frame_of(message)
    return frame[: HEADER_SIZE + (len(frame) - HEADER_SIZE) // 2]


@dataclass(frozen=True)
class Bad:
    """One malformed frame: what to send instead of the tester's message, and the broken peer that answers it."""

    detail: str
    title: str
    frame: Callable[[Any], bytes]
    secc_at: str = "SessionSetupReq"  # the tester EV's message it replaces
    evcc_at: str = "SessionSetupRes"  # the tester charger's message it replaces
    within_s: float = CLOSE_WITHIN_S


BAD_FRAMES = (
    Bad("VERSION", "protocol version 0x02 (inverse 0xFD)", lambda m: reframed(m, version=0x02)),
    Bad("INVERSE", "inverse protocol version 0x00 for version 0x01", lambda m: reframed(m, inverse=0x00)),
    Bad("UNKNOWN-TYPE", "reserved payload type 0x8FFF", lambda m: reframed(m, payload_type=0x8FFF)),
    Bad("SDP-TYPE", "payload type 0x9000 (SDP) on TCP", lambda m: reframed(m, payload_type=0x9000)),
    Bad(
        "DC-BEFORE-SAP",
        "payload type 0x8004 (DC) before SAP completed",
        lambda m: reframed(m, payload_type=0x8004),
        "supportedAppProtocolReq",
        "supportedAppProtocolRes",
    ),
    Bad("SAP-AFTER-SAP", "payload type 0x8001 (SAP) after SAP", lambda m: reframed(m, payload_type=0x8001)),
    Bad("LENGTH-MAX", "payload length 0xFFFFFFFF", lambda m: reframed(m, length=0xFFFFFFFF)),
    Bad("NOT-EXI", "a payload that is not EXI", lambda m: reframed(m, payload=NOT_EXI)),
    Bad("TRUNCATED", "half a frame, then silence", truncated, within_s=SEQUENCE_TIMEOUT_S),
)


def _answer_anyway(role: str) -> Breaker:
    """Our peer sends the message that would answer the tester's next one right after its own: the tester reads
    an answer after its bad frame (a peer that answers what it cannot decode instead of closing)."""
    if role == "secc":

        def setup_res(_: Any) -> Any:
            code = ct.ResponseCode.OK_NewSessionEstablished
            return SessionSetupRes(header=header(bytes(8), 0), response_code=code, evseid="DE*MCS*E1")

        return Breaker(lambda: Script((continue_with("supportedAppProtocolRes", extra=setup_res),)), HEADER_RULE)
    extra = continue_with("SessionSetupReq", extra=lambda m: request_like("AuthorizationSetupReq", bytes(8)))
    return Breaker(lambda: Script((extra,)), HEADER_RULE)


def _breaker(bad: Bad, role: str) -> Breaker:
    if bad.detail == "NOT-EXI":
        return _answer_anyway(role)
    if bad.detail == "TRUNCATED":
        return Breaker(Script, HEADER_RULE, PATIENT_SECC if role == "secc" else PATIENT_EVCC)
    return _header_blind()


def bad_frame_case(bad: Bad, role: str) -> Case:
    at = bad.secc_at if role == "secc" else bad.evcc_at
    within = bad.within_s
    if role == "evcc" and bad.detail == "TRUNCATED":
        within = BY_NAME["SessionSetupReq"].evcc_timeout + CLOSE_WITHIN_S
    fault = Fault(at, replace=bad.frame, note=bad.title)

    async def run(bench: Bench) -> Verdict:
        await (run_ev if role == "secc" else run_evse)(bench, Script((fault,), observe_s=within + 10.0))
        return closed_silently(bench.trace, within, f"after {bad.title}")

    who, what = ("charger", "request") if role == "secc" else ("truck", "response")
    return Case(
        f"{role.upper()}-V2GTP-{bad.detail}",
        f"A {what} framed with {bad.title}: the {who} answers nothing and closes the connection (within {within:g} s)",
        role,
        (HEADER_RULE,),
        run,
        _breaker(bad, role),
        tags=("v2gtp",),
    )


def closed_silently(trace: Trace, within: float, what: str) -> Verdict:
    """After the tester's bad frame the device sent nothing (not even bytes the tester cannot decode) and closed."""
    sent = _sent_raw(trace)
    garbled = next((e for e in trace.after(sent) if e.kind is Kind.MALFORMED), None) if sent else None
    if garbled is not None:
        seen = f"{len(garbled.data)} bytes ({garbled.detail})"
        return failed(HEADER_RULE, f"no answer, the connection closed ({what})", seen, t=garbled.t)
    return closed_after(trace, sent, within, HEADER_RULE, what)


def _sent_raw(trace: Trace) -> Entry | None:
    return next((e for e in reversed(trace.entries) if e.kind is Kind.SENT_RAW), None)


# -- segmentation --------------------------------------------------------------------------------------------------
class Dripping(Conversation):
    """The tester's conversation whose raw bytes go out one byte per segment."""

    async def send_raw(self, data: bytes, detail: str = "") -> None:
        self.trace.add(Entry(self.clock.now(), Kind.SENT_RAW, "", None, data, detail or "one byte per segment"))
        for i in range(len(data)):
            await self.stream.write(data[i : i + 1])
            await self.clock.sleep_until(self.clock.now() + DRIP_GAP_S)


def two_frames_case() -> Case:
    async def run(bench: Bench) -> Verdict:
        conversation = await bench.open()

        def both(sap: Any) -> bytes:  # the channel learns what SAP offered, as if sent alone
            return conversation.channel.send(sap) + frame_of(request_like("SessionSetupReq", bytes(8)))

        script = Script((Fault("supportedAppProtocolReq", replace=both, note="SAP and SessionSetup"),), observe_s=5)
        await play(tester_ev(), conversation, script)
        return _answered_each(bench.trace, ("supportedAppProtocolRes", "SessionSetupRes"))

    return Case(
        "SECC-V2GTP-TWO-FRAMES",
        "supportedAppProtocolReq and SessionSetupReq in one TCP segment: the charger answers both, in order",
        "secc",
        (STREAM_RULE,),
        run,
        _one_frame_per_read(),
        tags=("v2gtp",),
    )


def _answered_each(trace: Trace, names: tuple[str, ...]) -> Verdict:
    sent = _sent_raw(trace)
    got = [e.name for e in trace.after(sent)] if sent is not None else []
    seen = [name for name in got if name in names]
    if seen != list(names):
        ended = trace.ended()
        why = ", ".join(seen) or (ended.detail if ended else "nothing")
        return failed(STREAM_RULE, " then ".join(names), why)
    return first_then(no_violation(trace))


def drip_case(role: str) -> Case:
    at = "SessionSetupReq" if role == "secc" else "SessionSetupRes"
    answer = "SessionSetupRes" if role == "secc" else "AuthorizationSetupReq"
    fault = Fault(at, replace=frame_of, then=Then.CONTINUE, note="dripped byte by byte")

    async def run(bench: Bench) -> Verdict:
        opened = await bench.open()
        conversation = Dripping(opened.stream, opened.clock, opened.trace)
        machine = tester_ev() if role == "secc" else tester_evse()
        await play(machine, conversation, Script((fault,)))
        got = answered_with(bench.trace, "", (answer,), STREAM_RULE)
        return first_then(got if not got.ok else None, _whole(bench.trace, role))

    who = "charger" if role == "secc" else "truck"
    return Case(
        f"{role.upper()}-V2GTP-BYTE-BY-BYTE",
        f"{at} sent one byte per TCP segment: the {who} takes the whole frame and the session goes on",
        role,
        (STREAM_RULE,),
        run,
        _one_frame_per_read(),
        tags=("v2gtp",),
    )


def _whole(trace: Trace, role: str) -> Verdict:
    if role == "secc":
        return clean_session(trace)
    broken = no_violation(trace)
    if broken is not None:
        return broken
    if not trace.received("SessionStopReq"):
        ended = trace.ended()
        return failed(STREAM_RULE, "the session goes on to SessionStopReq", ended.detail if ended else "it did not")
    return first_then()


# -- a charger serves the next connection ---------------------------------------------------------------------------
def serves_after_case(bad: Bad) -> Case:
    first = Fault("supportedAppProtocolReq", replace=bad.frame, note=bad.title)  # the abuse opens the connection

    async def run(bench: Bench) -> Verdict:
        await run_ev(bench, Script((first,), observe_s=bad.within_s + 10.0))
        abused = closed_silently(bench.trace, bad.within_s, bad.title)
        if not abused.ok:
            return abused
        start = len(bench.trace.entries)
        await run_ev(bench)
        second = clean_session(Trace(bench.trace.entries[start:]))
        if second.ok:
            return second
        seen = f"{second.rule}: {second.seen}"
        return failed(conduct.SERVES_AFTER_ABUSE.id, "a clean session", seen, second.message, second.t)

    return Case(
        f"SECC-V2GTP-SERVES-AFTER-{bad.detail}",
        f"After a connection closed for {bad.title}, the charger serves a whole session on a new connection",
        "secc",
        (HEADER_RULE, conduct.SERVES_AFTER_ABUSE.id),
        run,
        Breaker(lambda: Script((Fault("supportedAppProtocolRes", drop=True),)), conduct.SERVES_AFTER_ABUSE.id),
        tags=("v2gtp",),
    )


def cases() -> Iterator[Case]:
    for role in ("secc", "evcc"):
        for bad in BAD_FRAMES:
            yield bad_frame_case(bad, role)
        yield drip_case(role)
    yield two_frames_case()
    for bad in BAD_FRAMES:
        if bad.detail in ("VERSION", "LENGTH-MAX", "NOT-EXI", "TRUNCATED"):
            yield serves_after_case(bad)
