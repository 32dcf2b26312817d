"""DC_WeldingDetectionReq/Res: after the output is off, the EV checks that its contactors opened."""

from __future__ import annotations

from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct

from ..exchange import Answer, EvccContext, Handlers, SeccContext, SendNext, Step
from ..state import Outcome
from ..units import fl, rn
from .common import code_outcome, header

RC = ct.ResponseCode


def answer(secc: SeccContext, req: dc.DcWeldingDetectionReq, now: float) -> Answer:
    voltage = secc.controller.welding_detection(now)
    head = header(secc.state.session_id, now)
    return Answer(dc.DcWeldingDetectionRes(header=head, response_code=RC.OK, evse_present_voltage=rn(voltage)))


def outcome(req: dc.DcWeldingDetectionReq, res: dc.DcWeldingDetectionRes) -> Outcome:
    return code_outcome(res.response_code) or Outcome.OK


def build(ev: EvccContext, now: float, evse_present_voltage: float | None = None) -> dc.DcWeldingDetectionReq | Step:
    """The EV opens its contactors at the first call, then judges each EVSEPresentVoltage; done: SessionStop."""
    done = ev.controller.welding_detection(evse_present_voltage, now)
    ev.ev_contactors_closed = False
    if done:
        return SendNext(cm.SessionStopReq)
    return dc.DcWeldingDetectionReq(header=header(ev.state.session_id, now), ev_processing=ct.Processing.Ongoing)


def react(
    ev: EvccContext, req: dc.DcWeldingDetectionReq, res: dc.DcWeldingDetectionRes, result: Outcome, now: float
) -> Step:
    voltage = fl(res.evse_present_voltage)
    return SendNext(
        dc.DcWeldingDetectionReq, after=ev.config.timers.loop_interval, options={"evse_present_voltage": voltage}
    )


WELDING_DETECTION = Handlers(answer=answer, outcome=outcome, build=build, react=react)
