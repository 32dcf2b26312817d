"""Charger under test, the tester as the EV: whole sessions per service and control mode, the response time of
every request type, and the refusals of out-of-sequence requests and foreign SessionIDs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from stack.session import conduct
from stack.session.rulebook import BY_NAME, SEQUENCE, allowed
from stack.session.rules import same_session
from stack.session.services import ControlMode, ServiceId
from stack.session.state import Phase
from stack.session.timers import TimerId

from ..bench import Bench
from ..case import Breaker, Case, Needs
from ..driver import Fault, Script
from ..judges import CLOSE_WITHIN_S, answered_with, clean_session, closed_after, first_then, no_violation
from ..trace import Kind, Trace
from ..verdict import Verdict, failed
from .common import (
    FLOW,
    FOREIGN_SESSION_ID,
    IN_SESSION,
    MODES,
    SERVICES,
    code_is,
    continue_with,
    request_like,
    response_name,
    run_ev,
    short,
    with_code,
    with_session,
)

MSG_TIMEOUT = TimerId.EVCC_MESSAGE.value
SLOW_BY_S = 0.5  # how much later than the EV's timeout our broken charger answers


def _late(request: str) -> Breaker:
    """Our charger answers `request` later than the EV waits for it."""
    delay = BY_NAME[request].evcc_timeout + SLOW_BY_S
    return Breaker(lambda: Script((continue_with(response_name(request), delay=delay),)), MSG_TIMEOUT)


def accepting(code: str, rule: str) -> Breaker:
    """Our charger answers OK where it refuses with `code`."""
    return Breaker(lambda: Script((continue_with(code_is(code), mutate=lambda m: with_code(m, "OK")),)), rule)


def session_cases() -> Iterator[Case]:
    for service in SERVICES:
        for mode in MODES:
            yield _session_case(service, mode)


def _session_case(service: ServiceId, mode: ControlMode) -> Case:
    async def run(bench: Bench) -> Verdict:
        await run_ev(bench, service=service, mode=mode)
        return first_then(_selected(bench.trace, service), clean_session(bench.trace))

    name = f"{service.name.replace('_', '-')}-{mode.name}"
    return Case(
        f"SECC-SESSION-{name}",
        f"A whole {service.name} session in {mode.name.lower()} control with EIM: every request accepted and "
        "answered in time, every response keeps its rules",
        "secc",
        ("MV-ACCEPT-VALID", SEQUENCE.id, "MV-RESPONSE-TYPE", MSG_TIMEOUT),
        run,
        _late("DC_ChargeLoopReq"),
        Needs(service=service, control_mode=mode),
        ("session", service.name.lower(), mode.name.lower()),
    )


def _selected(trace: Trace, service: ServiceId) -> Verdict | None:
    """A fail when the charger did not offer `service` although its profile says it does."""
    for entry in trace.sent("ServiceSelectionReq"):
        chosen = entry.message.selected_energy_transfer_service.service_id  # type: ignore[attr-defined]
        if chosen != service.value:
            return failed("MV-ACCEPT-VALID", f"{service.name} offered (the profile says so)", f"service {chosen}")
    return None


def response_time_cases() -> Iterator[Case]:
    for request in FLOW:
        yield _response_time_case(request)


def _response_time_case(request: str) -> Case:
    limit = BY_NAME[request].evcc_timeout

    async def run(bench: Bench) -> Verdict:
        await run_ev(bench, service=bench.profile.services[0], mode=bench.profile.control_modes[-1])
        return _answered_in_time(bench.trace, request, limit)

    return Case(
        f"SECC-TIME-{short(request)}",
        f"The charger answers every {request} within V2G_EVCC_Msg_Timeout ({limit:g} s)",
        "secc",
        (MSG_TIMEOUT,),
        run,
        _late(request),
        tags=("timing",),
    )


def _answered_in_time(trace: Trace, request: str, limit: float) -> Verdict:
    sent = trace.sent(request)
    if not sent:
        ended = trace.ended()
        return failed(MSG_TIMEOUT, f"the session reaches {request}", ended.detail if ended else "it did not")
    for entry in sent:
        answer = next((e for e in trace.after(entry) if e.kind is not Kind.EVENT), None)
        if answer is None or answer.kind is not Kind.RECEIVED:
            return failed(MSG_TIMEOUT, f"an answer within {limit:g} s", answer.detail if answer else "none", request)
        took = answer.t - entry.t
        if took > limit:
            return failed(MSG_TIMEOUT, f"within {limit:g} s", f"{took:.3f} s", answer.name, answer.t)
    broken = no_violation(trace)
    return broken if broken is not None and broken.rule == MSG_TIMEOUT else first_then()


def sequence_cases() -> Iterator[Case]:
    for request in FLOW:
        if request != "supportedAppProtocolReq" and not allowed(Phase.SESSION, request):
            yield _sequence_case(request)


def _sequence_case(request: str) -> Case:
    def inject(message: Any) -> Any:  # instead of AuthorizationSetupReq, right after SessionSetup
        return request_like(request, message.header.session_id)

    async def run(bench: Bench) -> Verdict:
        await run_ev(bench, Script((Fault("AuthorizationSetupReq", replace=inject),)))
        return refused_then_closed(bench.trace, request, "FAILED_SequenceError", SEQUENCE.id)

    return Case(
        f"SECC-SEQ-{short(request)}",
        f"{request} right after SessionSetup is out of sequence: FAILED_SequenceError, then the session ends",
        "secc",
        (SEQUENCE.id, conduct.ENDS_AFTER_FAILED.id),
        run,
        accepting("FAILED_SequenceError", SEQUENCE.id),
        tags=("sequence", "failed-codes"),
    )


def refused_then_closed(trace: Trace, request: str, code: str, rule: str) -> Verdict:
    answer = answered_with(trace, request, (code,), rule)
    if not answer.ok:
        return answer
    sent = trace.sent(request)[-1]
    response = next(e for e in trace.after(sent) if e.kind is Kind.RECEIVED)
    return closed_after(trace, response, CLOSE_WITHIN_S, conduct.ENDS_AFTER_FAILED.id, f"after {code}")


def session_id_cases() -> Iterator[Case]:
    for request in IN_SESSION:
        yield _session_id_case(request)


def _session_id_case(request: str) -> Case:
    async def run(bench: Bench) -> Verdict:
        fault = Fault(request, mutate=lambda m: with_session(m, FOREIGN_SESSION_ID))
        await run_ev(bench, Script((fault,)), service=bench.profile.services[0])
        return refused_then_closed(bench.trace, request, "FAILED_UnknownSession", same_session.id)

    return Case(
        f"SECC-SID-{short(request)}",
        f"{request} with a SessionID the charger did not assign: FAILED_UnknownSession, then the session ends",
        "secc",
        (same_session.id, conduct.ENDS_AFTER_FAILED.id),
        run,
        accepting("FAILED_UnknownSession", same_session.id),
        tags=("session-id", "failed-codes"),
    )


def end_after_failed_case() -> Case:
    """One case for the close itself: our broken charger refuses correctly but keeps the connection open."""

    def inject(message: Any) -> Any:
        return request_like("DC_PreChargeReq", message.header.session_id)

    async def run(bench: Bench) -> Verdict:
        await run_ev(bench, Script((Fault("AuthorizationSetupReq", replace=inject),)))
        return refused_then_closed(bench.trace, "DC_PreChargeReq", "FAILED_SequenceError", SEQUENCE.id)

    return Case(
        "SECC-END-AFTER-FAILED",
        "After a FAILED_* response the charger closes the connection within 5 s and answers nothing more",
        "secc",
        (conduct.ENDS_AFTER_FAILED.id,),
        run,
        Breaker(lambda: Script(linger_s=CLOSE_WITHIN_S + 4.0), conduct.ENDS_AFTER_FAILED.id),
        tags=("failed-codes", "timing"),
    )


def cases() -> Iterator[Case]:
    yield from session_cases()
    yield from response_time_cases()
    yield from sequence_cases()
    yield from session_id_cases()
    yield end_after_failed_case()
