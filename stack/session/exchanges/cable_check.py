"""DC_CableCheckReq/Res: the insulation test before any energy flows (PROTOCOL.md 4.3, 9, 10)."""

from __future__ import annotations

from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct

from ..controller import CableCheckStatus
from ..exchange import Answer, EvccContext, Handlers, Repeat, SeccContext, SendNext, Step
from ..rules import decision
from ..state import Outcome, SessionState
from .common import header, processing_outcome

RC = ct.ResponseCode

INSULATION_FAULT = decision(
    "MV-CABLE-CHECK-FAULT",
    RC.FAILED,
    "An isolation fault (or a plant fault) during the cable check ends the session: -20 DC has no isolation field.",
    "PROTOCOL.md 7 (isolation fault -> FAILED, LIB15118, JOSEV) and 9 (IEC 61851-23 thresholds)",
)


def answer(secc: SeccContext, req: dc.DcCableCheckReq, now: float) -> Answer:
    head = header(secc.state.session_id, now)
    status = secc.controller.cable_check(now)
    if status is CableCheckStatus.ONGOING:
        return Answer(dc.DcCableCheckRes(header=head, response_code=RC.OK, evse_processing=ct.Processing.Ongoing))
    if status is CableCheckStatus.FAULT:
        res = dc.DcCableCheckRes(header=head, response_code=RC.FAILED, evse_processing=ct.Processing.Finished)
        return Answer(res, INSULATION_FAULT)
    return Answer(dc.DcCableCheckRes(header=head, response_code=RC.OK, evse_processing=ct.Processing.Finished))


def outcome(req: dc.DcCableCheckReq, res: dc.DcCableCheckRes) -> Outcome:
    return processing_outcome(res.response_code, res.evse_processing)


def apply(state: SessionState, req: dc.DcCableCheckReq, res: dc.DcCableCheckRes, result: Outcome) -> SessionState:
    return state.to(state.phase, cable_checked=True) if result is Outcome.OK else state


def build(ev: EvccContext, now: float) -> dc.DcCableCheckReq:
    return dc.DcCableCheckReq(header=header(ev.state.session_id, now))


def react(ev: EvccContext, req: dc.DcCableCheckReq, res: dc.DcCableCheckRes, result: Outcome, now: float) -> Step:
    if result is Outcome.ONGOING:
        return Repeat(ev.config.timers.loop_interval)
    return SendNext(dc.DcPreChargeReq)


CABLE_CHECK = Handlers(answer=answer, outcome=outcome, build=build, react=react, apply=apply)
