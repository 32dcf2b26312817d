"""Charger under test, the tester as the EV: the flow around the main line. Pause and resume over two connections,
service renegotiation, standby, the sequence timeout (the charger closes after 60 s of silence, not before), and
each request sent twice (accepted or a sequence error, as the flow table says)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from stack.messages import iso20_common as cm
from stack.messages import iso20_types as ct
from stack.session import conduct
from stack.session.config import DEFAULT_RESUME_WITHIN
from stack.session.controller import ChargeLoopFeedback, EvLoopStep, StopReason
from stack.session.evcc import EvccConfig, EvccSession, ResumeInfo
from stack.session.exchanges import power_delivery, session_stop
from stack.session.reference import MinimalEv
from stack.session.rulebook import BY_NAME, allowed, message_name
from stack.session.rules import SEQUENCE
from stack.session.state import Outcome
from stack.session.timers import SeccTimers, TimerId

from ..bench import Bench
from ..case import Breaker, Case, Needs
from ..driver import Fault, Script, play
from ..judges import CLOSE_WITHIN_S, answered_with, clean_session, closed_after, first_then, not_closed_before
from ..trace import Kind, Trace
from ..verdict import Verdict, failed, inconclusive, passed
from .common import CHARGE_LOOPS, FLOW, continue_with, response_name, run_ev, short, with_code
from .secc_rules import ev_for, last_received
from .secc_session import accepting, refused_then_closed

RESUME = conduct.SECC_RESUMES_PAUSED.id
SEQUENCE_CLOSE = conduct.SECC_CLOSES_ON_SEQUENCE_TIMEOUT.id
SEQUENCE_S = SeccTimers().sequence  # V2G_SECC_Sequence_Timeout, 60 s
OTHER_EVCCID = "WMA06XZZ1MP999999"
JOINED, NEW = ct.ResponseCode.OK_OldSessionJoined, ct.ResponseCode.OK_NewSessionEstablished


# -- pause and resume --------------------------------------------------------------------------------------------


def _ev(bench: Bench, stop_with: StopReason = StopReason.TERMINATE, **ev: Any) -> MinimalEv:
    chosen = ev_for(bench, Needs())
    return MinimalEv(chosen["service"], chosen["mode"], CHARGE_LOOPS, stop_with=stop_with, **ev)


async def _pause_and_rejoin(bench: Bench, wait_s: float, **ev: Any) -> ResumeInfo | None:
    """A session paused after its charge loop, then (`wait_s` later) a new connection with the old SessionID."""
    first = EvccSession(_ev(bench, StopReason.PAUSE))
    await play(first, await bench.open(), Script())
    paused = first.resume_info
    if paused is None:
        return None
    if wait_s > 0:
        await bench.clock.sleep_until(bench.clock.now() + wait_s)
    second = EvccSession(_ev(bench, **ev), EvccConfig(resume=paused))
    await play(second, await bench.open(), Script())
    return paused


def _setup_answer(trace: Trace, paused: ResumeInfo | None, joined: bool) -> Verdict:
    """The second SessionSetupRes joins the paused session (`joined`) or opens a new one under a new SessionID."""
    if paused is None:
        stop: Any = last_received(trace, "SessionStopRes")
        seen = "no SessionStopRes" if stop is None else str(stop.response_code)
        return failed(session_stop.PAUSE_NOT_ALLOWED.id, "SessionStop(Pause) answered OK", seen)
    setups = trace.received("SessionSetupRes")
    if len(setups) < 2:
        return failed(RESUME, "a SessionSetupRes on the second connection", "none")
    answer = setups[1]
    message: Any = answer.message
    code, session_id = message.response_code, message.header.session_id
    if joined and (code != JOINED or session_id != paused.session_id):
        seen = f"{code} SessionID {session_id.hex().upper()}"
        return failed(RESUME, f"OK_OldSessionJoined SessionID {paused.session_id.hex().upper()}", seen, answer.name)
    if not joined and (code != NEW or session_id == paused.session_id):
        return failed(RESUME, "OK_NewSessionEstablished under a new SessionID", f"{code}", answer.name, answer.t)
    return passed()


def _rejoins_anyone() -> Breaker:
    """Our charger rejoins the last paused session whoever asks, whenever (it remembers it across connections)."""
    paused: list[bytes] = []

    def remember(res: cm.SessionStopRes) -> cm.SessionStopRes:
        paused.append(res.header.session_id)
        return res

    def rejoin(res: cm.SessionSetupRes) -> cm.SessionSetupRes:
        if not paused:
            return res
        head = dataclasses.replace(res.header, session_id=paused.pop())
        return dataclasses.replace(res, header=head, response_code=JOINED)

    faults = (continue_with("SessionStopRes", mutate=remember), continue_with("SessionSetupRes", mutate=rejoin))
    return Breaker(lambda: Script(faults), RESUME)


@dataclass(frozen=True)
class Rejoin:
    """A pause and a rejoin: whether the charger must join the paused session, after how long, from which EVCCID."""

    tail: str
    title: str
    joined: bool
    wait_s: float = 0.0
    evccid: str | None = None
    tags: tuple[str, ...] = ("pause",)


def _rejoin_case(spec: Rejoin) -> Case:
    async def run(bench: Bench) -> Verdict:
        if spec.evccid is not None and bench.profile.tls:
            return inconclusive("over TLS the vehicle is told by its certificate, not its EVCCID: run over TCP")
        ev = {} if spec.evccid is None else {"evcc_identifier": spec.evccid}
        paused = await _pause_and_rejoin(bench, spec.wait_s, **ev)
        verdict = _setup_answer(bench.trace, paused, spec.joined)
        return verdict if not verdict.ok else clean_session(bench.trace)

    breaker = Breaker(Script, RESUME) if spec.joined else _rejoins_anyone()
    return Case(
        f"SECC-PAUSE-{spec.tail}",
        spec.title,
        "secc",
        (RESUME, session_stop.PAUSE_NOT_ALLOWED.id, conduct.ACCEPTS_VALID.id),
        run,
        breaker,
        Needs(features=("pause",)),
        spec.tags,
    )


def pause_cases() -> Iterator[Case]:
    yield _rejoin_case(
        Rejoin(
            "RESUME",
            "SessionStop(Pause), then a new connection with the old SessionID: OK_OldSessionJoined, and the session "
            "goes on at ChargeParameterDiscovery with the service it had selected",
            joined=True,
        )
    )
    yield _rejoin_case(
        Rejoin(
            "OTHER-EVCCID",
            "A paused SessionID sent by another EVCCID opens a new session, not the paused one (over TCP: over TLS "
            "the certificate tells the vehicle)",
            joined=False,
            evccid=OTHER_EVCCID,
        )
    )
    yield _rejoin_case(
        Rejoin(
            "EXPIRED",
            f"A paused SessionID sent after the resume window ({DEFAULT_RESUME_WITHIN / 3600:g} h, this project's "
            "default: the standard gives none) opens a new session",
            joined=False,
            wait_s=DEFAULT_RESUME_WITHIN + SEQUENCE_S,
            tags=("pause", "timing", "slow"),
        )
    )


# -- service renegotiation and standby ---------------------------------------------------------------------------


@dataclass
class RenegotiatingEv(MinimalEv):
    """Ends its first charge loop with a service renegotiation, the next one with a Terminate."""

    stop_with: StopReason = StopReason.SERVICE_RENEGOTIATION

    def charge_loop(self, feedback: ChargeLoopFeedback | None, now: float) -> EvLoopStep:
        step = super().charge_loop(feedback, now)
        if step.stop is StopReason.SERVICE_RENEGOTIATION:
            self.stop_with, self.loops = StopReason.TERMINATE, 0
        return step


def service_renegotiation_case() -> Case:
    rule = session_stop.renegotiation_offered.id

    async def run(bench: Bench) -> Verdict:
        chosen = ev_for(bench, Needs())
        ev = RenegotiatingEv(chosen["service"], chosen["mode"], CHARGE_LOOPS)
        await play(EvccSession(ev), await bench.open(), Script())
        if len(bench.trace.sent("ServiceDiscoveryReq")) < 2:
            ended = bench.trace.ended()
            return failed(
                rule, "ServiceDiscovery again after SessionStop(ServiceRenegotiation)", ended.detail if ended else ""
            )
        return clean_session(bench.trace)

    again = continue_with("ServiceDiscoveryRes", nth=2, mutate=lambda m: with_code(m, "FAILED_SequenceError"))
    return Case(
        "SECC-RENEG-SERVICE",
        "SessionStop(ServiceRenegotiation) after the charge loop: OK, then ServiceDiscovery and a whole second "
        "pass of the session in the same connection",
        "secc",
        (rule, conduct.ACCEPTS_VALID.id),
        run,
        Breaker(lambda: Script((again,)), conduct.ACCEPTS_VALID.id),
        Needs(features=("service_renegotiation",)),
        ("renegotiation",),
    )


def renegotiation_as_offered_case() -> Case:
    """SessionStop(ServiceRenegotiation) at the end of a session: OK when ServiceDiscoveryRes said the charger
    supports it, else FAILED_NoServiceRenegotiationSupported [V2G20-1477]."""
    rule = session_stop.renegotiation_offered
    code = str(rule.rc.value)

    def faults() -> Script:
        kind = cm.ChargingSession.ServiceRenegotiation
        return Script((Fault("SessionStopReq", mutate=lambda m: dataclasses.replace(m, charging_session=kind)),))

    async def run(bench: Bench) -> Verdict:
        await run_ev_with(bench, faults())
        discovery = last_received(bench.trace, "ServiceDiscoveryRes")
        if discovery is not None and not discovery.service_renegotiation_supported:
            return refused_then_closed(bench.trace, "SessionStopReq", code, rule.id)
        return answered_with(bench.trace, "SessionStopReq", ("OK",), rule.id)

    broken = accepting(code, rule.id)
    return Case(
        "SECC-RENEG-AS-OFFERED",
        "SessionStop(ServiceRenegotiation) is answered as ServiceDiscoveryRes announced: OK when supported, "
        f"else {code} and the session ends",
        "secc",
        (rule.id, conduct.ENDS_AFTER_FAILED.id),
        run,
        Breaker(broken.script, rule.id, {"service_renegotiation": False}),
        tags=("failed-codes", "request-rules", "renegotiation"),
    )


def standby_case(tail: str, where: str, at: str, nth: int) -> Case:
    rule = power_delivery.STANDBY_NOT_ALLOWED

    def standby(req: Any) -> cm.PowerDeliveryReq:
        progress = cm.ChargeProgress.Standby
        return cm.PowerDeliveryReq(header=req.header, ev_processing=power_delivery.FINISHED, charge_progress=progress)

    async def run(bench: Bench) -> Verdict:
        await run_ev_with(bench, Script((Fault(at, nth=nth, replace=standby),)))
        code = "OK" if bench.profile.standby else str(rule.rc.value)
        return answered_with(bench.trace, "PowerDeliveryReq", (code,), rule.id)

    return Case(
        f"SECC-STANDBY-{tail}",
        f"PowerDelivery(Standby) {where}: OK when the profile says the charger supports standby, else {rule.rc.value}",
        "secc",
        (rule.id,),
        run,
        Breaker(Script, rule.id, {"standby_allowed": True}),
        tags=("standby", "warning-codes"),
    )


async def run_ev_with(bench: Bench, script: Script) -> None:
    """Our EV on a new connection, with the profile's first service and last control mode."""
    await run_ev(bench, script, **ev_for(bench, Needs()))


# -- the sequence timeout ----------------------------------------------------------------------------------------


def sequence_case(tail: str, where: str, at: str, nth: int, early: bool) -> Case:
    """The tester goes silent instead of sending `at`: the charger closes after 60 s (and not before)."""

    async def run(bench: Bench) -> Verdict:
        script = Script((Fault(at, nth=nth, replace=lambda m: None),), observe_s=SEQUENCE_S + CLOSE_WITHIN_S + 10)
        await run_ev_with(bench, script)
        trace = bench.trace
        withheld = next((e for e in trace.entries if e.kind is Kind.NOTE and e.detail == "withheld"), None)
        if withheld is None:
            return failed(SEQUENCE_CLOSE, f"the session reaches {at}", "it did not")
        before = trace.entries[: trace.entries.index(withheld)]
        last = next((e for e in reversed(before) if e.kind is Kind.RECEIVED), None)  # the timer starts here
        return first_then(
            not_closed_before(trace, last, SEQUENCE_S, SEQUENCE_CLOSE),
            closed_after(trace, withheld, SEQUENCE_S + CLOSE_WITHIN_S, SEQUENCE_CLOSE, "after the sequence timeout"),
        )

    timers = SeccTimers(sequence=SEQUENCE_S / 3) if early else SeccTimers(sequence=SEQUENCE_S * 100)
    kind = "NOT-EARLY" if early else "CLOSE"
    return Case(
        f"SECC-TIMER-SEQUENCE-{kind}-{tail}",
        f"Silence {where}: the charger closes the connection after V2G_SECC_Sequence_Timeout ({SEQUENCE_S:g} s)"
        + (", not before" if early else f", within {CLOSE_WITHIN_S:g} s after it"),
        "secc",
        (SEQUENCE_CLOSE, TimerId.SECC_SEQUENCE.value),
        run,
        Breaker(Script, SEQUENCE_CLOSE, {"timers": timers}),
        tags=("timing",),
    )


def timer_cases() -> Iterator[Case]:
    points = (
        ("SAP", "after the SAP answer", "SessionSetupReq", 1),
        ("AUTHORIZED", "after authorization", "ServiceDiscoveryReq", 1),
        ("CHARGE-LOOP", "in the charge loop", "DC_ChargeLoopReq", 2),
    )
    for tail, where, at, nth in points:
        for early in (True, False):
            yield sequence_case(tail, where, at, nth, early)


# -- requests sent twice -----------------------------------------------------------------------------------------

FINAL = {"SessionSetupReq": Outcome.NEW_SESSION, "PowerDeliveryReq": Outcome.START}  # the outcome before the copy
TIMES_SENT = {"DC_CableCheckReq": 2, "DC_PreChargeReq": 2}  # how often our EV sends them (Ongoing, pre-charge)
# not sent twice: SAP (another payload type), the charge loop and SessionStop (repeated anyway), and PowerDelivery:
# after PowerDeliveryRes(Start) PROTOCOL.md 4.2's table allows only DC_ChargeLoopReq, where the rulebook also
# lets the EV stop at once (a second Start is then neither clearly allowed nor clearly refused)
TWICE = tuple(
    r for r in FLOW if r not in ("supportedAppProtocolReq", "DC_ChargeLoopReq", "SessionStopReq", "PowerDeliveryReq")
)


def accepted_twice(request: str) -> bool:
    """The flow table allows `request` again in the phase its (final) answer led to."""
    exchange = BY_NAME[request]
    return allowed(exchange.next_phase[FINAL.get(request, Outcome.OK)], request)


def duplicate_case(request: str) -> Case:
    accepted = accepted_twice(request)

    async def run(bench: Bench) -> Verdict:
        trace = bench.trace

        def copy(next_request: Any) -> Any:  # our last `request` again, only its timestamp later ([V2G20-1582])
            last: Any = trace.sent(request)[-1].message
            stamp = max(next_request.header.time_stamp, last.header.time_stamp + 1)
            return dataclasses.replace(last, header=dataclasses.replace(last.header, time_stamp=stamp))

        def after_it(message: object) -> bool:
            return message_name(message) != request and bool(trace.sent(request))

        await run_ev_with(bench, Script((Fault(after_it, replace=copy),)))
        if accepted:
            return answered_with(trace, request, ("OK",), conduct.ACCEPTS_VALID.id)
        return refused_then_closed(trace, request, "FAILED_SequenceError", SEQUENCE.id)

    if accepted:
        nth = TIMES_SENT.get(request, 1) + 1
        refuse = continue_with(response_name(request), nth=nth, mutate=lambda m: with_code(m, "FAILED_SequenceError"))
        breaker = Breaker(lambda: Script((refuse,)), conduct.ACCEPTS_VALID.id)
        rules: tuple[str, ...] = (conduct.ACCEPTS_VALID.id, SEQUENCE.id)
        outcome = "accepted (the flow table allows it again)"
    else:
        breaker = accepting("FAILED_SequenceError", SEQUENCE.id)
        rules = (SEQUENCE.id, conduct.ENDS_AFTER_FAILED.id)
        outcome = "FAILED_SequenceError, then the session ends"
    return Case(
        f"SECC-DUP-{short(request)}",
        f"{request} sent again right after its answer: {outcome}",
        "secc",
        rules,
        run,
        breaker,
        tags=("duplicates", "sequence"),
    )


def cases() -> Iterator[Case]:
    yield from pause_cases()
    yield service_renegotiation_case()
    yield renegotiation_as_offered_case()
    yield standby_case("LOOP", "in the charge loop", "DC_ChargeLoopReq", 2)
    yield standby_case("SCHEDULED", "right after ScheduleExchange", "DC_CableCheckReq", 1)
    yield from timer_cases()
    for request in TWICE:
        yield duplicate_case(request)
