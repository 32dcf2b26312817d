"""SessionStopReq/Res: terminate, pause (rejoin later with the SessionID) or renegotiate the service
(PROTOCOL.md 4.3 and 4.5)."""

from __future__ import annotations

from stack.messages import iso20_common as cm
from stack.messages import iso20_types as ct

from ..config import ResumeInfo
from ..controller import StopReason
from ..exchange import Answer, EvccContext, Finish, Handlers, SeccContext, SendNext, Step
from ..rules import decision, request_rule
from ..state import Outcome, SessionState
from .common import code_outcome, header

RC = ct.ResponseCode
CS = cm.ChargingSession
KIND_OF_STOP = {
    StopReason.TERMINATE: CS.Terminate,
    StopReason.PAUSE: CS.Pause,
    StopReason.SERVICE_RENEGOTIATION: CS.ServiceRenegotiation,
}
EXPLANATION_LENGTH = 160  # XSD descriptionType


@request_rule(
    "V2G20-1477",
    RC.FAILED_NoServiceRenegotiationSupported,
    "PROTOCOL.md 4.3 (JOSEV SessionStop cites [V2G20-1477]; LIB15118 session_stop.cpp)",
)
def renegotiation_offered(state: SessionState, req: cm.SessionStopReq) -> bool:
    """SessionStop(ServiceRenegotiation) only when ServiceDiscoveryRes said ServiceRenegotiationSupported."""
    return req.charging_session != CS.ServiceRenegotiation or state.renegotiation_supported


@request_rule(
    "MV-RENEGOTIATION-AUTHORIZED", RC.FAILED_SequenceError, "ours: renegotiation is no way around authorization"
)
def renegotiation_after_authorization(state: SessionState, req: cm.SessionStopReq) -> bool:
    """SessionStop(ServiceRenegotiation) only in an authorized session."""
    return req.charging_session != CS.ServiceRenegotiation or state.authorized


PAUSE_NOT_ALLOWED = decision(
    "MV-PAUSE",
    RC.FAILED_PauseNotAllowed,
    "The SECC refuses a pause when configured so, or before a service was selected (nothing to resume).",
    "PROTOCOL.md 4.5 and 7",
)


def answer(secc: SeccContext, req: cm.SessionStopReq, now: float) -> Answer:
    state = secc.state

    def res(code: RC) -> cm.SessionStopRes:
        return cm.SessionStopRes(header=header(state.session_id, now), response_code=code)

    if state.energized:  # a SessionStop while energy flows: switch off before answering
        secc.controller.power_delivery(False, False, now)
    if req.charging_session == CS.Pause:
        if not secc.config.pause_allowed or state.service is None:
            return Answer(res(PAUSE_NOT_ALLOWED.rc), PAUSE_NOT_ALLOWED)
        secc.store.pause(ResumeInfo(state.session_id, *state.selected))
    return Answer(res(RC.OK))


_KINDS = {
    CS.Terminate: Outcome.TERMINATE,
    CS.Pause: Outcome.PAUSE,
    CS.ServiceRenegotiation: Outcome.SERVICE_RENEGOTIATION,
}


def outcome(req: cm.SessionStopReq, res: cm.SessionStopRes) -> Outcome:
    return code_outcome(res.response_code) or _KINDS[req.charging_session]


def apply(state: SessionState, req: cm.SessionStopReq, res: cm.SessionStopRes, result: Outcome) -> SessionState:
    if result is Outcome.SERVICE_RENEGOTIATION:  # back to ServiceDiscovery in the same connection [V2G20-1477]
        return state.to(
            state.phase,
            service=None,
            parameter_set=None,
            schedule_ids=frozenset(),
            energized=False,
            cable_checked=False,
            renegotiating=False,
        )
    return state.to(state.phase, energized=False)


def build(ev: EvccContext, now: float, explanation: str | None = None) -> cm.SessionStopReq:
    kind = KIND_OF_STOP.get(ev.stop_reason or StopReason.TERMINATE, CS.Terminate)
    if kind == CS.ServiceRenegotiation and not ev.state.renegotiation_supported:
        # the EV wanted another service, but ServiceDiscoveryRes said this SECC cannot renegotiate: end instead
        kind, ev.stop_reason = CS.Terminate, StopReason.TERMINATE
        explanation = explanation or "service renegotiation not supported by the charger"
    return cm.SessionStopReq(
        header=header(ev.state.session_id, now),
        charging_session=kind,
        ev_termination_explanation=None if explanation is None else explanation[:EXPLANATION_LENGTH],
    )


def react(ev: EvccContext, req: cm.SessionStopReq, res: cm.SessionStopRes, result: Outcome, now: float) -> Step:
    if result is Outcome.SERVICE_RENEGOTIATION:
        ev.stop_reason = None
        return SendNext(cm.ServiceDiscoveryReq)
    if result is Outcome.PAUSE:
        state = ev.state
        ev.resume_info = ResumeInfo(state.session_id, *state.selected)
        return Finish("session paused", paused=True)
    return Finish("session terminated")


SESSION_STOP = Handlers(answer=answer, outcome=outcome, build=build, react=react, apply=apply)
