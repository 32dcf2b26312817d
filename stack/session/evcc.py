"""The EVCC (vehicle) side of an ISO 15118-20 DC session, sans-I/O.

`start` yields the first request; every response fed to `receive` yields the next request (or a close).
Repeated requests (Ongoing, pre-charge, charge loop, welding detection) are paced: the machine holds them and
sets `deadline`; the driver calls `expire` when that time has come, and the request is built then, from the
EV's state at that moment. The rulebook decides everything else: the EVCC checks each request it is about to
send against the same rules as the SECC (and refuses with a `LocalProtocolError`), checks each response
against the response rules (a `RemoteProtocolError` ends the session), and runs the timers of PROTOCOL.md 6.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from stack.messages import app_protocol as ap
from stack.messages import iso20_common as cm

from .actions import Action, Close, Event, Send, Violation
from .config import DC_NAMESPACE, EvccConfig, ResumeInfo
from .controller import EvController, PowerLimits, Schedule, StopReason
from .errors import LocalProtocolError, PeerTimeout, RemoteProtocolError
from .exchange import EvccContext, Exchange, Finish, Repeat, SendNext, Step, StopSession
from .exchanges.common import header
from .rulebook import BY_REQUEST, BY_RESPONSE, broken_request_rule, broken_response_rule
from .rules import ANSWERS_THE_REQUEST, NOT_A_REQUEST, TIMER_RULES
from .state import Outcome, Phase, SessionState, SessionView
from .timers import TimerId

__all__ = ["DC_NAMESPACE", "EvccConfig", "EvccSession", "ResumeInfo"]

Pending = tuple[Callable[[float], list[Action]], float]  # (what to send, when)


def repeated(request: Any, now: float) -> Any:
    """`request` sent again: only its timestamp changes ([V2G20-1582]); a header signature stays (it signs a body
    element, not the header)."""
    head = request.header
    return replace(request, header=replace(head, time_stamp=header(head.session_id, now).time_stamp))


class EvccSession(SessionView):
    """One V2G communication session seen from the vehicle."""

    def __init__(self, controller: EvController, config: EvccConfig | None = None) -> None:
        self.controller = controller
        self.config = config or EvccConfig()
        self.ctx: EvccContext = EvccContext(
            controller=controller,
            config=self.config,
            state=SessionState(resume=self.config.resume),
            contract=None if self.config.pnc is None else self.config.pnc.contract,
        )
        self.closed: Close | None = None
        self._awaiting: Exchange | None = None
        self._response_due: float | None = None
        self._pending: Pending | None = None
        self._guard: tuple[TimerId, float] | None = None  # the running EVCC guard and its deadline

    # -- what the session knows ------------------------------------------------------------------------------
    @property
    def evse_limits(self) -> PowerLimits | None:
        return self.ctx.evse_limits

    @property
    def schedule(self) -> Schedule | None:
        return self.ctx.schedule

    @property
    def stop_reason(self) -> StopReason | None:
        return self.ctx.stop_reason

    @property
    def charge_loops(self) -> int:
        return self.ctx.charge_loops

    @property
    def resume_info(self) -> ResumeInfo | None:
        return self.ctx.resume_info

    @property
    def awaiting_response(self) -> bool:
        """True while a request is out; False while the machine only waits to send its next one."""
        return self._awaiting is not None

    @property
    def deadline(self) -> float | None:
        if self.closed is not None:
            return None
        pending = self._pending[1] if self._pending else None
        guard = self._guard[1] if self._guard else None
        times = [t for t in (self._response_due, pending, guard) if t is not None]
        return min(times) if times else None

    # -- driver interface ------------------------------------------------------------------------------
    def start(self, now: float) -> list[Action]:
        return self._send_new(ap.SupportedAppProtocolReq, {}, now)

    def receive(self, message: object, now: float) -> list[Action]:
        if self.closed is not None:
            raise LocalProtocolError("the session is closed: no more responses")
        exchange = BY_RESPONSE.get(type(message))
        if exchange is None or exchange is not self._awaiting:
            expected = self._awaiting.response_name if self._awaiting else "nothing"
            error = RemoteProtocolError(
                f"unexpected {type(message).__name__}, expected {expected}", ANSWERS_THE_REQUEST
            )
            return self._violated(error, now)
        if self._response_due is not None and now > self._response_due:  # too late: the timer fired first
            return self._timed_out(TimerId.EVCC_MESSAGE, f"the answer to {exchange.name} came too late", now)
        request = self.ctx.last_request
        self._awaiting = self._response_due = None
        outcome = exchange.handlers.outcome(request, message)
        if outcome is Outcome.FAILED:
            code = str(getattr(message, "response_code", "?"))
            return [Event("failed", {"code": code}), *self._close(f"SECC answered {exchange.name} with {code}", now)]
        broken = broken_response_rule(exchange, self.ctx.state, request, message)
        if broken is not None:
            return self._violated(RemoteProtocolError(f"{exchange.response_name}: {broken.text}", broken), now)
        state = exchange.handlers.apply(self.ctx.state, request, message, outcome)
        self.ctx.state = state.to(exchange.next(state, outcome))
        react = exchange.handlers.react
        return self._guarded(lambda: self._follow(react(self.ctx, request, message, outcome, now), now), now)

    def expire(self, now: float) -> list[Action]:
        if self.closed is not None:
            return []
        if self._pending is not None and now >= self._pending[1]:
            send, _ = self._pending
            self._pending = None
            return self._guarded(lambda: send(now), now)
        if self._response_due is not None and now >= self._response_due:
            name = self._awaiting.name if self._awaiting else "?"
            return self._timed_out(TimerId.EVCC_MESSAGE, f"no answer to {name} in time", now)
        if self._guard is not None and now >= self._guard[1]:
            return self._timed_out(self._guard[0], "expired", now)
        return []

    def connection_lost(self, now: float) -> list[Action]:
        return [] if self.closed is not None else self._close("connection lost", now)

    # -- sending ---------------------------------------------------------------------------------------------
    def _follow(self, step: Step, now: float) -> list[Action]:
        """Carry out what an exchange module decided after a response."""
        if isinstance(step, SendNext):
            events: list[Action] = list(step.events)
            if step.after <= 0:
                return [*events, *self._send_new(step.request, step.options, now)]
            self._pending = (lambda t: self._send_new(step.request, step.options, t), now + step.after)
            return events
        if isinstance(step, Repeat):
            last = self.ctx.last_request
            self._pending = (lambda t: self._send(repeated(last, t), t), now + step.after)
            return []
        if isinstance(step, StopSession):
            self.ctx.stop_reason = StopReason.TERMINATE
            stopping = Event("stopping", {"why": step.why})
            return [stopping, *self._send_new(cm.SessionStopReq, {"explanation": step.why}, now)]
        if isinstance(step, Finish):
            return self._close(step.reason, now, ok=True, paused=step.paused)
        raise LocalProtocolError(f"unknown step {step!r}")

    def _send_new(self, request_class: type, options: Mapping[str, Any], now: float) -> list[Action]:
        """Build a request of `request_class`'s exchange now; its builder may decide on another step instead."""
        built = BY_REQUEST[request_class].handlers.build(self.ctx, now, **options)
        if isinstance(built, SendNext | Repeat | StopSession | Finish):
            return self._follow(built, now)
        return self._send(built, now)

    def _send(self, request: Any, now: float) -> list[Action]:
        exchange = BY_REQUEST.get(type(request))
        if exchange is None:  # the rule the SECC applies to what it receives, as a refusal rather than a KeyError
            raise LocalProtocolError(f"{type(request).__name__} is not a request", NOT_A_REQUEST)
        broken = broken_request_rule(exchange, self.ctx.state, request)
        if broken is not None:  # never send what the SECC would refuse
            raise LocalProtocolError(f"{exchange.name} in phase {self.phase}: {broken.text}", broken)
        guard = exchange.evcc_guard
        if guard is None:
            self._guard = None
        elif self._guard is None or self._guard[0] is not guard:
            self._guard = (guard, now + self.config.timers.limit(guard))
        self._awaiting = exchange
        self._response_due = now + exchange.evcc_timeout * self.config.timers.message_scale
        self.ctx.last_request = request
        return [Send(request, exchange.schema)]

    # -- ending ----------------------------------------------------------------------------------------------
    def _guarded(self, step: Callable[[], list[Action]], now: float) -> list[Action]:
        """Run a controller-driven step; if it fails or is refused, end the session safely, then re-raise."""
        try:
            return step()
        except Exception as exc:
            # a refused request (LocalProtocolError) ends the session too, as h11's ERROR state: nothing was
            # sent, so nothing would ever come back; the controller must learn it (its contactors, its plans)
            if self.closed is None:
                refused = isinstance(exc, LocalProtocolError)
                why = f"refused to send: {exc}" if refused else "internal error in the EV controller"
                with contextlib.suppress(Exception):
                    self._close(why, now)
            raise

    def _violated(self, error: RemoteProtocolError, now: float) -> list[Action]:
        return [Violation(error), *self._close(str(error), now, error=error)]

    def _timed_out(self, timer: TimerId, what: str, now: float) -> list[Action]:
        rule = TIMER_RULES[timer]
        error = PeerTimeout(what, rule)
        timeout = Event("timeout", {"timer": rule.id})
        return [Violation(error), timeout, *self._close(f"{rule.id}: {what}", now, error=error)]

    def _close(
        self,
        reason: str,
        now: float,
        *,
        ok: bool = False,
        paused: bool = False,
        error: RemoteProtocolError | None = None,
    ) -> list[Action]:
        self.ctx.state = self.ctx.state.to(Phase.ENDED)
        self._pending = None
        self._awaiting = self._response_due = None
        self._guard = None
        self.closed = Close(reason, ok=ok, paused=paused, error=error)
        self.controller.session_ended(reason, ok, now)
        return [self.closed]
