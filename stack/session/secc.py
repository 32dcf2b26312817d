"""The SECC (charger) side of an ISO 15118-20 DC session, sans-I/O.

Feed it decoded requests with the current time; it returns actions (send this response, a violation, close)
and keeps one deadline for its driver. Everything it decides comes from the rulebook: whether the request is
allowed and keeps its rules, the exchange's answer (the charger's decisions come from an `EvseController`),
the next phase per outcome, and the timers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from stack.messages import app_protocol as ap
from stack.messages import iso20_common as cm
from stack.messages import iso20_types as ct
from stack.messages._schema import XsdType
from stack.messages.minimal import minimal

from .actions import Action, Close, Event, Send, Violation
from .config import DC_NAMESPACE, ResumeInfo, SeccConfig, SessionStore, Vehicle
from .controller import EvseController
from .errors import LocalProtocolError, PeerTimeout, RemoteProtocolError
from .exchange import Answer, Exchange, SeccContext
from .exchanges.common import header
from .exchanges.session_setup import new_session_id
from .rulebook import BY_REQUEST, broken_request_rule, broken_response_rule
from .rules import NOT_A_REQUEST, TIMER_RULES, Rule
from .services import ServiceOffer
from .state import NEW_SESSION, Outcome, Phase, SessionState, SessionView
from .timers import TimerId

__all__ = ["DC_NAMESPACE", "ResumeInfo", "SeccConfig", "SeccSession", "SessionStore"]

RC = ct.ResponseCode


class SeccSession(SessionView):
    """One V2G communication session seen from the charger.

    `vehicle_certificate` (SHA-256 of the EV's TLS client certificate, if it sent one) binds a pause of this
    session to the vehicle: only the same certificate, or without one the same EVCCID, may resume it.
    """

    def __init__(
        self,
        controller: EvseController,
        config: SeccConfig | None = None,
        store: SessionStore | None = None,
        new_session_id: Callable[[], bytes] = new_session_id,
        *,
        vehicle_certificate: bytes | None = None,
    ) -> None:
        self.controller = controller
        self.config = config or SeccConfig()
        self.ctx: SeccContext = SeccContext(
            controller=controller,
            config=self.config,
            store=store if store is not None else SessionStore(),
            state=SessionState(),
            new_session_id=new_session_id,
        )
        self.deadline: float | None = None
        self.closed: Close | None = None
        self.vehicle_certificate = vehicle_certificate
        self.vehicle: Vehicle | None = None  # known from the SessionSetupReq
        self._guard: tuple[TimerId, float] | None = None  # the SECC's Ongoing guard and when it started

    # -- what the session knows (read-only views of the shared state) ------------------------------------
    @property
    def offered(self) -> tuple[ServiceOffer, ...]:
        return tuple(o for o in self.config.offers if o.service_id in self.ctx.state.offered_services)

    @property
    def store(self) -> SessionStore:
        return self.ctx.store

    # -- driver interface ------------------------------------------------------------------------------
    def start(self, now: float) -> list[Action]:
        """The connection is up: the first request must arrive within the sequence timeout."""
        self.deadline = now + self.config.timers.sequence
        return [Event("secc_started")]

    def receive(self, message: object, now: float) -> list[Action]:
        if self.closed is not None:
            raise LocalProtocolError("the session is closed: no more requests")
        exchange = BY_REQUEST.get(type(message))
        if exchange is None:
            error = RemoteProtocolError(f"unexpected message {type(message).__name__}", NOT_A_REQUEST)
            return [Violation(error), *self._close(f"unexpected message {type(message).__name__}", now, error=error)]
        broken = broken_request_rule(exchange, self.ctx.state, message)
        if broken is not None:
            return self._refuse(exchange, broken, message, now)
        if isinstance(message, cm.SessionSetupReq):
            self.vehicle = Vehicle(message.evccid, self.vehicle_certificate)
        try:
            with self.store.acting_for(self.vehicle, now, self.config.resume_within):
                answer = exchange.handlers.answer(self.ctx, message, now)
            return [*self._refused_resume(message, answer), *self._respond(exchange, message, answer, now)]
        except Exception as exc:
            # a controller failed, or our own response would break a response rule (a LocalProtocolError): the
            # EV gets no answer either way, so end the session here (output off, controller told), then re-raise
            why = "refused to send our response" if isinstance(exc, LocalProtocolError) else "internal error"
            with contextlib.suppress(Exception):
                self._close(f"{why} while handling {exchange.name}", now)
            raise

    def expire(self, now: float) -> list[Action]:
        """Call when `now` reached `deadline`: the EV sent nothing in time."""
        if self.deadline is None or now < self.deadline or self.closed is not None:
            return []
        self.deadline = None
        rule = TIMER_RULES[TimerId.SECC_SEQUENCE]
        error = PeerTimeout("no request in time", rule)
        events: list[Action] = [Violation(error), Event("timeout", {"timer": rule.id})]
        return [*events, *self._close(f"{rule.id}: no request in time", now, error=error)]

    def connection_lost(self, now: float) -> list[Action]:
        if self.closed is not None:
            return []
        return self._close("connection lost", now)

    # -- plumbing --------------------------------------------------------------------------------------
    def _refused_resume(self, request: object, answer: Answer) -> list[Action]:
        """An Event when a SessionSetupReq named an old SessionID and gets a new session (PROTOCOL.md 4.3)."""
        if not isinstance(request, cm.SessionSetupReq) or answer.resume is not None:
            return []
        if request.header.session_id == NEW_SESSION:
            return []
        detail = {"session_id": request.header.session_id.hex().upper(), "why": self.store.refusal}
        return [Event("resume_refused", detail)]

    def _refuse(self, exchange: Exchange, rule: Rule, request: Any, now: float) -> list[Action]:
        """Answer a request that breaks `rule` with the rule's code (only mandatory fields)."""
        error = RemoteProtocolError(f"{exchange.name} in phase {self.phase}: {rule.text}", rule)
        response: XsdType
        if exchange.response is ap.SupportedAppProtocolRes:  # no header, no FAILED_* codes: refuse the negotiation
            response = ap.SupportedAppProtocolRes(response_code=ap.ResponseCode.Failed_NoNegotiation)
        else:
            # echo what the response shares with the request: ServiceDetailRes names the ServiceID asked for
            # (JOSEV and LIB15118 answer FAILED_ServiceIDInvalid so), not the minimal 0
            asked = {f.name for f in exchange.request.XSD_FIELDS} - {"header"}
            echo = {f.name: getattr(request, f.name) for f in exchange.response.XSD_FIELDS if f.name in asked}
            head = header(self.session_id, now)
            response = minimal(exchange.response, header=head, response_code=rule.code, **echo)
        return [Violation(error), *self._respond(exchange, request, Answer(response, rule), now, error=error)]

    def _respond(
        self, exchange: Exchange, request: Any, answer: Answer, now: float, error: RemoteProtocolError | None = None
    ) -> list[Action]:
        answer = self._guarded(exchange, request, answer, now)
        state = self.ctx.state
        response = answer.response
        outcome = exchange.handlers.outcome(request, response)
        # our own answer must keep the response rules the EV checks; a FAILED answer carries only mandatory
        # fields and the EV reads no further than its code (EvccSession.receive), so neither do we
        if error is None and outcome is not Outcome.FAILED:
            broken = broken_response_rule(exchange, state, request, response)
            if broken is not None:
                raise LocalProtocolError(f"our {exchange.response_name} would break: {broken.text}", broken)
        if answer.resume is not None:
            state = state.to(state.phase, resume=answer.resume)
        state = exchange.handlers.apply(state, request, response, outcome)
        self.ctx.state = state.to(exchange.next(state, outcome))
        actions: list[Action] = [Send(response, exchange.schema)]
        if answer.rule is not None:
            code = getattr(response, "response_code", None)
            actions.append(Event("rule", {"rule": answer.rule.id, "code": str(code)}))
        if outcome is Outcome.FAILED:
            code = str(getattr(response, "response_code", ""))
            actions.append(Event("failed", {"request": exchange.name, "code": code}))
            return [*actions, *self._close(f"{exchange.name} answered {code}", now, error=error)]
        if outcome in (Outcome.TERMINATE, Outcome.PAUSE):
            paused = outcome is Outcome.PAUSE
            reason = "session paused" if paused else "session terminated"
            return [*actions, *self._close(reason, now, ok=True, paused=paused)]
        self.deadline = now + self.config.timers.sequence
        return actions

    def _guarded(self, exchange: Exchange, request: Any, answer: Answer, now: float) -> Answer:
        """The SECC's Ongoing guard (LIB15118): an Ongoing loop that lasts too long is answered FAILED."""
        guard = exchange.secc_guard
        if guard is None:
            self._guard = None
            return answer
        if self._guard is None or self._guard[0] is not guard:
            self._guard = (guard, now)
        if exchange.handlers.outcome(request, answer.response) is not Outcome.ONGOING:
            self._guard = None
            return answer
        if now - self._guard[1] <= self.config.timers.limit(guard):
            return answer
        rule = TIMER_RULES[guard]
        failed = minimal(
            exchange.response,
            header=header(self.session_id, now),
            response_code=RC.FAILED,
            evse_processing=ct.Processing.Finished,
        )
        return Answer(failed, rule)

    def _close(
        self,
        reason: str,
        now: float,
        *,
        ok: bool = False,
        paused: bool = False,
        error: RemoteProtocolError | None = None,
    ) -> list[Action]:
        """End the session; the charger is told, and an energized output is switched off first."""
        state = self.ctx.state
        if state.energized:
            self.controller.power_delivery(False, False, now)
        if self.closed is None:
            self.controller.session_ended(reason, now)
        self.ctx.state = state.to(Phase.ENDED, energized=False)
        self.deadline = None
        linger = self.config.timers.close_linger if ok else 0.0
        self.closed = Close(reason, ok=ok, paused=paused, linger=linger, error=error)
        return [self.closed]
