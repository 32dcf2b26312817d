"""Judges: read a case's trace and give the verdict. Pure functions; each failure names a rule of the rulebook."""

from __future__ import annotations

from stack.session import conduct
from stack.session.rules import ANSWERS_THE_REQUEST

from .trace import Entry, Kind, Trace
from .verdict import Verdict, failed, passed

FAILED_PREFIX = "FAILED"
CLOSE_WITHIN_S = 5.0  # [V2G20-1643]: the TCP connection is closed at most 5 s after the last response
CLOSE_SLACK_S = 1.0  # measurement slack on top of a limit the device must keep


def code_of(entry: Entry) -> str:
    code = getattr(entry.message, "response_code", None)
    return "" if code is None else str(getattr(code, "value", code))


def no_violation(trace: Trace) -> Verdict | None:
    """A fail for the first rule our machine found broken, else None."""
    for entry in trace.violations():
        return failed(entry.name, "no broken rule", entry.detail, t=entry.t)
    return None


def first_then(*verdicts: Verdict | None) -> Verdict:
    """The first verdict that is not None, else pass."""
    return next((v for v in verdicts if v is not None), passed())


def clean_session(trace: Trace) -> Verdict:
    """A whole session: no broken rule, every request answered and accepted, SessionStop answered OK."""
    broken = no_violation(trace)
    if broken is not None:
        return broken
    for entry in trace.received():
        if code_of(entry).startswith(FAILED_PREFIX):
            request = _request_before(trace, entry)
            return failed(conduct.ACCEPTS_VALID.id, "OK", code_of(entry), f"{entry.name} to a valid {request}", entry.t)
    if not any(code_of(e).startswith("OK") for e in trace.received("SessionStopRes")):
        last = trace.sent()[-1] if trace.sent() else None
        ended = trace.ended()
        seen = ended.detail if ended is not None else "the session did not end"
        return failed(ANSWERS_THE_REQUEST.id, f"an answer to {last.name if last else 'the request'}", seen)
    return passed()


def answered_with(trace: Trace, request: str, codes: tuple[str, ...], rule: str) -> Verdict:
    """The device answered the injected `request` with one of `codes` (the first answer after it)."""
    sent = [e for e in trace.sent() if e.name == request or (not e.name and request == "")]
    if not sent:
        return failed(rule, f"{request} sent", "the case never got to send it")
    answer = next((e for e in trace.after(sent[-1]) if e.kind is Kind.RECEIVED), None)
    if answer is None:
        ended = trace.ended()
        return failed(rule, f"an answer {' or '.join(codes)}", ended.detail if ended else "nothing", request)
    if code_of(answer) not in codes and answer.name not in codes:
        return failed(rule, " or ".join(codes), f"{answer.name} {code_of(answer)}".strip(), answer.name, answer.t)
    return passed()


def closed_after(trace: Trace, entry: Entry | None, within: float, rule: str, what: str) -> Verdict:
    """After `entry`, the device sent no request or response that goes on with the session and closed the
    connection within `within` seconds (the tester waited longer than that)."""
    if entry is None:
        return failed(rule, what, "the case never got there")
    later = trace.after(entry)
    more = next((e for e in later if e.kind is Kind.RECEIVED), None)
    if more is not None:
        return failed(rule, f"no further message, the connection closed ({what})", more.name, more.name, more.t)
    end = next((e for e in later if e.kind in (Kind.PEER_CLOSED, Kind.SILENCE, Kind.WE_CLOSED)), None)
    if end is None or end.kind is not Kind.PEER_CLOSED:
        return failed(rule, f"the device closes within {within:g} s ({what})", "the connection stayed open")
    if end.t - entry.t > within + CLOSE_SLACK_S:
        took = end.t - entry.t
        return failed(rule, f"closed within {within:g} s ({what})", f"closed after {took:.1f} s", t=end.t)
    return passed()


def not_closed_before(trace: Trace, start: Entry | None, limit: float, rule: str) -> Verdict | None:
    """A fail when the device closed (or gave up) sooner than `limit` seconds after `start`."""
    if start is None:
        return None
    end = next((e for e in trace.after(start) if e.kind is Kind.PEER_CLOSED), None)
    if end is not None and end.t - start.t < limit - min(CLOSE_SLACK_S, limit / 4):
        took = end.t - start.t
        return failed(rule, f"no close before {limit:g} s", f"closed after {took:.1f} s", t=end.t)
    return None


def _request_before(trace: Trace, response: Entry) -> str:
    earlier = trace.entries[: trace.entries.index(response)]
    return next((e.name for e in reversed(earlier) if e.kind in (Kind.SENT, Kind.SENT_RAW)), "request")
