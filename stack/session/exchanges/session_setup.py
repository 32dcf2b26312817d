"""SessionSetupReq/Res: a new SessionID, or the old one of a paused session (PROTOCOL.md 4.1, 4.3, 4.5)."""

from __future__ import annotations

import secrets

from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct

from ..exchange import Answer, EvccContext, Handlers, SeccContext, SendNext, Step
from ..rules import response_rule
from ..state import NEW_SESSION, Outcome, SessionState

RC = ct.ResponseCode


def new_session_id() -> bytes:
    """A random 8-byte SessionID, never all zeros (that means "new session")."""
    while (session_id := secrets.token_bytes(8)) == NEW_SESSION:
        pass
    return session_id


@response_rule("MV-SESSION-ID-ALLOCATED", "PROTOCOL.md 4.1 (JOSEV, LIB15118 session_setup.cpp)")
def session_id_allocated(state: SessionState, request: cm.SessionSetupReq, response: cm.SessionSetupRes) -> bool:
    """A new session gets a SessionID other than all zeros; an old one is joined only under the ID the EV sent."""
    session_id = response.header.session_id
    if response.response_code == RC.OK_OldSessionJoined:
        return request.header.session_id != NEW_SESSION and session_id == request.header.session_id
    return not str(response.response_code).startswith("OK") or session_id != NEW_SESSION


def answer(secc: SeccContext, req: cm.SessionSetupReq, now: float) -> Answer:
    requested = req.header.session_id
    paused = secc.store.resume(requested) if requested != NEW_SESSION else None
    if paused is not None:
        # OK_OldSessionJoined: continue at ChargeParameterDiscovery with the selected service (LIB15118)
        session_id, code = paused.session_id, RC.OK_OldSessionJoined
    else:
        session_id, code = secc.new_session_id(), RC.OK_NewSessionEstablished
    header = ct.MessageHeader(session_id=session_id, time_stamp=int(now))
    response = cm.SessionSetupRes(header=header, response_code=code, evseid=secc.controller.evse_id(now))
    return Answer(response, resume=paused)


def outcome(req: cm.SessionSetupReq, res: cm.SessionSetupRes) -> Outcome:
    if res.response_code == RC.OK_OldSessionJoined:
        return Outcome.RESUMED
    return Outcome.NEW_SESSION if str(res.response_code).startswith("OK") else Outcome.FAILED


def apply(state: SessionState, req: cm.SessionSetupReq, res: cm.SessionSetupRes, result: Outcome) -> SessionState:
    state = state.to(state.phase, session_id=res.header.session_id)
    resume = state.resume
    if result is not Outcome.RESUMED or resume is None:
        return state
    return state.to(
        state.phase,
        authorized=True,
        offered_services=(int(resume.service),),
        parameter_sets={int(resume.service): (resume.parameter_set,)},
        service=resume.service,
        parameter_set=resume.parameter_set,
    )


def build(ev: EvccContext, now: float) -> cm.SessionSetupReq:
    resume = ev.state.resume
    session_id = resume.session_id if resume is not None else NEW_SESSION
    header = ct.MessageHeader(session_id=session_id, time_stamp=int(now))
    return cm.SessionSetupReq(header=header, evccid=ev.controller.evcc_id(now))


def react(ev: EvccContext, req: cm.SessionSetupReq, res: cm.SessionSetupRes, result: Outcome, now: float) -> Step:
    if result is Outcome.RESUMED:
        return SendNext(dc.DcChargeParameterDiscoveryReq)
    return SendNext(cm.AuthorizationSetupReq)


SESSION_SETUP = Handlers(answer=answer, outcome=outcome, build=build, react=react, apply=apply)
