"""An offline check of a timeline against the -20 rulebook: the runner's verdicts, from a capture.

A passive observer replays each connection's requests and responses through the rulebook the SECC and EVCC
obey (stack/session/rulebook.py): the request rules (session, sequence, the exchange's own) the SECC checks,
the response rules the EVCC checks, the state both sides derive (each exchange's `outcome`, `apply` and next
phase, as `SeccSession._respond` and `EvccSession.receive` do), the EV's V2G_EVCC_Msg_Timeout per request and
the SECC's sequence timeout, both on the capture's timestamps. Each broken rule is a `Finding`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from stack.messages import app_protocol as ap
from stack.session.exchange import Exchange
from stack.session.rulebook import BY_REQUEST, EXCHANGES, broken_request_rule, broken_response_rule
from stack.session.rules import ANSWERS_THE_REQUEST, NOT_A_REQUEST, SEQUENCE, TIMER_RULES, Rule, same_session
from stack.session.state import Outcome, Phase, SessionState
from stack.session.timers import SeccTimers, TimerId

from .decode import EV_TO_EVSE, Event, Timeline

RULEBOOK_SCHEMAS = frozenset(x.schema for x in EXCHANGES)  # SAP and -20 DC today


@dataclass(frozen=True, slots=True)
class Finding:
    """A broken rule: its id, when and where, the message, what the rule expects and what the capture shows."""

    rule_id: str
    t: float
    conn: int | None
    message: str
    expected: str
    seen: str


@dataclass(slots=True)
class CheckResult:
    findings: list[Finding] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # connections or parts the observer could not follow


def check(timeline: Timeline, sequence_timeout: float = SeccTimers().sequence) -> CheckResult:
    """Every broken rule of every connection of the timeline."""
    result = CheckResult()
    for connection in timeline.connections:
        events = [e for e in timeline.events if e.conn == connection.id]
        _Observer(connection.id, sequence_timeout, result).run(events)
    return result


@dataclass(slots=True)
class _Observer:
    """Follows one connection as both machines would, reporting instead of refusing."""

    conn: int
    sequence_timeout: float
    result: CheckResult
    state: SessionState = field(default_factory=SessionState)
    request: Event | None = None
    exchange: Exchange | None = None
    broken: Rule | None = None  # the rule the pending request broke
    last_response: float | None = None

    def run(self, events: list[Event]) -> None:
        unknown = Counter(event.reason for event in events if not event.known)
        for event in (e for e in events if e.known):
            if event.schema not in RULEBOOK_SCHEMAS:
                why = f"the rulebook has no rules for {event.schema} messages ({event.message})"
                self.result.unchecked.append(f"connection {self.conn}: not checked from t={event.t:.6f} on: {why}")
                break
            try:
                findings = list(self._request(event) if event.direction == EV_TO_EVSE else self._response(event))
            except Exception as exc:  # noqa: BLE001 - a message the rulebook's functions cannot follow
                self.result.unchecked.append(
                    f"connection {self.conn}: stopped at {event.message} (t={event.t:.6f}): {type(exc).__name__}"
                )
                break
            self.result.findings += findings
        for reason, count in unknown.items():
            self.result.unchecked.append(f"connection {self.conn}: {count} message(s) not checked: {reason}")

    def _finding(self, rule: Rule, event: Event, expected: str, seen: str) -> Finding:
        return Finding(rule.id, event.t, self.conn, event.message, expected, seen)

    def _request(self, event: Event) -> Iterator[Finding]:
        if self.request is not None:
            name = self.exchange.response_name if self.exchange else "a response"
            yield self._finding(ANSWERS_THE_REQUEST, event, f"{name} before the next request", "no response")
        if self.last_response is not None and event.t - self.last_response > self.sequence_timeout:
            gap = event.t - self.last_response
            rule = TIMER_RULES[TimerId.SECC_SEQUENCE]
            yield self._finding(rule, event, f"within {self.sequence_timeout:g} s", f"{gap:.3f} s after the response")
        message = event.decoded
        exchange = BY_REQUEST.get(type(message))
        self.request, self.exchange, self.broken = event, exchange, None
        if exchange is None:
            yield self._finding(NOT_A_REQUEST, event, "a -20 request", event.message)
            return
        broken = broken_request_rule(exchange, self.state, message)
        if broken is None:
            return
        self.broken = broken
        if broken is same_session:
            seen = getattr(getattr(message, "header", None), "session_id", b"").hex().upper()
            yield self._finding(broken, event, f"SessionID {self.state.session_id.hex().upper()}", f"SessionID {seen}")
        elif broken is SEQUENCE:
            allowed = sorted(x.name for x in BY_REQUEST.values() if x.allowed(self.state))
            expected = f"in phase {self.state.phase}: {', '.join(allowed) or 'no request'}"
            yield self._finding(broken, event, expected, event.message)
        else:
            yield self._finding(broken, event, broken.text, event.message)

    def _response(self, event: Event) -> Iterator[Finding]:
        request, exchange, broken = self.request, self.exchange, self.broken
        self.request = self.exchange = self.broken = None
        self.last_response = event.t
        if request is None or exchange is None:
            yield self._finding(ANSWERS_THE_REQUEST, event, "a response to a request", f"{event.message} unasked")
            return
        if type(event.decoded) is not exchange.response:
            yield self._finding(ANSWERS_THE_REQUEST, event, exchange.response_name, event.message)
            return
        delay = event.t - request.t
        if delay > exchange.evcc_timeout:
            rule = TIMER_RULES[TimerId.EVCC_MESSAGE]
            yield self._finding(rule, event, f"within {exchange.evcc_timeout:g} s", f"after {delay:.3f} s")
        response = event.decoded
        outcome = exchange.handlers.outcome(request.decoded, response)
        if broken is not None:
            # the request broke a rule: a conforming SECC answers that rule's code and the session ends; one that
            # answers otherwise is reported too, and followed as it went on
            code = _refusal(exchange, broken)
            if code is None or getattr(response, "response_code", None) == code:
                self.state = self.state.to(Phase.ENDED)
                return
            yield self._finding(broken, event, f"ResponseCode {code}", f"ResponseCode {event.response_code}")
        if outcome is not Outcome.FAILED:
            bad = broken_response_rule(exchange, self.state, request.decoded, response)
            if bad is not None:
                yield self._finding(bad, event, bad.text, event.message)
        state = exchange.handlers.apply(self.state, request.decoded, response, outcome)
        self.state = state.to(exchange.next(state, outcome))


def _refusal(exchange: Exchange, rule: Rule) -> object:
    """The code a conforming SECC answers a request that breaks `rule` with (as `SeccSession._refuse`)."""
    if exchange.response is ap.SupportedAppProtocolRes:
        return ap.ResponseCode.Failed_NoNegotiation
    return rule.code
