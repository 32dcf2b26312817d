"""The rules of the -20 rulebook as small named functions, each with an id and its source.

Four kinds:

* request rules: what a request must satisfy, given the session state. The SECC answers the rule's code when
  one is broken (a `RemoteProtocolError` with the rule); our EVCC checks the same rules before it sends and
  refuses with a `LocalProtocolError`, so it never sends what the SECC would refuse.
* response rules: what a response must satisfy. The EVCC closes the session on a broken one (a
  `RemoteProtocolError`); our SECC checks its own responses the same way before it sends them.
* decisions: codes the SECC answers for reasons of its own (authorization refused, contactor error, a setting);
  nobody broke a rule, but the code has an id and a source like every other.
* timer rules: one per `TimerId`; the side whose peer let it run out reports a `PeerTimeout`.

Ids are [V2G20-n] where PROTOCOL.md or the XSD documentation gives one, otherwise a stable id of ours
(`MV-...`) whose source says where the rule comes from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from stack.messages import app_protocol as ap
from stack.messages import iso20_types as ct

from .state import SessionState
from .timers import TimerId

RC = ct.ResponseCode


class RuleKind(StrEnum):
    REQUEST = "request"
    RESPONSE = "response"
    DECISION = "decision"
    TIMER = "timer"
    CONDUCT = "conduct"  # around the exchanges: ending, transport, TLS (stack/session/conduct.py)


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """One rule: its id, what must hold, where it comes from, the code the SECC answers, and its check."""

    id: str
    text: str
    source: str
    kind: RuleKind
    code: RC | ap.ResponseCode | None = None
    check: Callable[..., bool] | None = None

    @property
    def rc(self) -> RC:
        """The -20 ResponseCode this rule answers with (TypeError for an AppProtocol code or none)."""
        if not isinstance(self.code, RC):
            raise TypeError(f"{self.id} answers no -20 ResponseCode: {self.code!r}")
        return self.code

    def holds(self, *args: Any) -> bool:
        if self.check is None:
            raise TypeError(f"{self.id} is a decision: it has no check")
        return self.check(*args)

    def __repr__(self) -> str:
        return f"Rule({self.id})"


def request_rule(rule_id: str, code: RC | ap.ResponseCode, source: str) -> Callable[[Callable[..., bool]], Rule]:
    """Declare `check(state, request) -> bool` (True: the request may be sent) as a request rule."""

    def declare(check: Callable[..., bool]) -> Rule:
        return Rule(rule_id, _text(check), source, RuleKind.REQUEST, code, check)

    return declare


def response_rule(rule_id: str, source: str) -> Callable[[Callable[..., bool]], Rule]:
    """Declare `check(state, request, response) -> bool` (True: the response is acceptable)."""

    def declare(check: Callable[..., bool]) -> Rule:
        return Rule(rule_id, _text(check), source, RuleKind.RESPONSE, None, check)

    return declare


def decision(rule_id: str, code: RC | ap.ResponseCode, text: str, source: str) -> Rule:
    return Rule(rule_id, text, source, RuleKind.DECISION, code)


def _text(check: Callable[..., bool]) -> str:
    doc = (check.__doc__ or check.__name__.replace("_", " ")).strip()
    return " ".join(doc.split())


# -- rules every exchange shares ------------------------------------------------------------------------------


@request_rule("MV-SESSION-ID", RC.FAILED_UnknownSession, "PROTOCOL.md 4.1; JOSEV check_msg; LIB15118 context_helper")
def same_session(state: SessionState, request: Any) -> bool:
    """A request after SessionSetup carries the SessionID the SECC assigned."""
    return bool(request.header.session_id == state.session_id)


@response_rule("MV-RESPONSE-SESSION", "PROTOCOL.md 4.1; LIB15118 validate_and_setup_header (mirror of MV-SESSION-ID)")
def response_in_session(state: SessionState, request: Any, response: Any) -> bool:
    """A response after SessionSetup carries the session's SessionID."""
    header = getattr(response, "header", None)
    return header is None or header.session_id == state.session_id


NOT_A_REQUEST = Rule(
    "MV-NOT-A-REQUEST",
    "The EV sends only -20 requests of the negotiated protocol (a response or another message ends the session).",
    "PROTOCOL.md 2 and 4.2",
    RuleKind.REQUEST,
)
SEQUENCE = Rule(
    "MV-SEQUENCE",
    "A request is one the flow table allows in the session's phase, service and control mode.",
    "PROTOCOL.md 4.2 (table of valid next requests); JOSEV secc_state.py; LIB15118 send_sequence_error",
    RuleKind.REQUEST,
    RC.FAILED_SequenceError,
)
ANSWERS_THE_REQUEST = Rule(
    "MV-RESPONSE-TYPE",
    "The SECC answers each request with the response of its exchange.",
    "PROTOCOL.md 4.2",
    RuleKind.RESPONSE,
)


def timer_rule(timer: TimerId, source: str, text: str) -> Rule:
    return Rule(timer.value, text, source, RuleKind.TIMER)


TIMER_RULES = {
    rule.id: rule
    for rule in (
        timer_rule(
            TimerId.SECC_SEQUENCE,
            "PROTOCOL.md 6.2 (60 s; JOSEV, LIB15118 TIMEOUT_SEQUENCE)",
            "The EV sends its next request within V2G_SECC_Sequence_Timeout of the last response.",
        ),
        timer_rule(
            TimerId.SECC_ONGOING,
            "PROTOCOL.md 4.6 and 6.2 (55 s, LIB15118 timeout.hpp)",
            "An Ongoing loop (schedule exchange, cable check) ends within the SECC's ongoing guard; then FAILED.",
        ),
        timer_rule(
            TimerId.SECC_EIM_ONGOING,
            "PROTOCOL.md 4.6 and 6.2 (180 s, LIB15118 authorization.cpp)",
            "EIM authorization ends within the SECC's EIM guard; then FAILED.",
        ),
        timer_rule(
            TimerId.EVCC_MESSAGE,
            "PROTOCOL.md 6.1 (JOSEV -20 timeouts.py, EVerest EV timeouts.hpp)",
            "The SECC answers every request within V2G_EVCC_Msg_Timeout of that request.",
        ),
        timer_rule(
            TimerId.EVCC_COMMUNICATION_SETUP,
            "PROTOCOL.md 6.2 (20 s; JOSEV, Josev issue #105)",
            "SessionSetupRes arrives within V2G_EVCC_CommunicationSetup_Timeout of the link coming up.",
        ),
        timer_rule(
            TimerId.EVCC_ONGOING,
            "PROTOCOL.md 6.2 (60 s, JOSEV)",
            "An Ongoing loop of authorization or schedule exchange finishes within V2G_EVCC_Ongoing_Timeout.",
        ),
        timer_rule(
            TimerId.EVCC_CABLE_CHECK,
            "PROTOCOL.md 6.2 (40 s, JOSEV -20, EVerest EV)",
            "The cable check finishes within V2G_EVCC_CableCheck_Timeout.",
        ),
        timer_rule(
            TimerId.EVCC_PRE_CHARGE,
            "PROTOCOL.md 6.2 (10 s in JOSEV and EVerest; a Josev issue claims 60 s: a setting)",
            "Pre-charge reaches the EV's voltage within V2G_EVCC_PreCharge_Timeout.",
        ),
        timer_rule(
            TimerId.EVCC_WELDING_DETECTION,
            "PROTOCOL.md 6.2 (60 s, EVerest EV TIMEOUT_WELDING_DETECTION_MS)",
            "Welding detection finishes within the EV's welding detection guard.",
        ),
    )
}
