"""DC_PreChargeReq/Res: the charger raises its output to the EV's voltage before the contactors close."""

from __future__ import annotations

from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct

from ..exchange import Answer, EvccContext, Handlers, SeccContext, SendNext, Step
from ..rules import request_rule
from ..state import Outcome, SessionState
from ..units import fl, non_negative, rn
from .common import code_outcome, header

RC = ct.ResponseCode


@request_rule("MV-PRE-CHARGE-TARGET", RC.FAILED, "ours: never drive the output to a nonsense voltage (PROTOCOL.md 10)")
def sane_target_voltage(state: SessionState, req: dc.DcPreChargeReq) -> bool:
    """EVTargetVoltage is a finite voltage above zero."""
    target = fl(req.ev_target_voltage)
    return non_negative(target) and target > 0


def answer(secc: SeccContext, req: dc.DcPreChargeReq, now: float) -> Answer:
    # above the rating the output is clamped, not refused: the EV judges the voltage it gets
    # (Josev's simulated EV asks for 20 kV and still expects a session)
    target = fl(req.ev_target_voltage)
    if secc.evse_limits is not None:
        target = min(target, secc.evse_limits.max_voltage)
    voltage = secc.controller.pre_charge(target, now)
    return Answer(
        dc.DcPreChargeRes(
            header=header(secc.state.session_id, now), response_code=RC.OK, evse_present_voltage=rn(voltage)
        )
    )


def outcome(req: dc.DcPreChargeReq, res: dc.DcPreChargeRes) -> Outcome:
    return code_outcome(res.response_code) or Outcome.OK


def build(ev: EvccContext, now: float, evse_present_voltage: float | None = None) -> dc.DcPreChargeReq:
    """The EV asks its controller at send time; once the EVSE's voltage matched it says Finished."""
    step = ev.controller.pre_charge(evse_present_voltage, now)
    return dc.DcPreChargeReq(
        header=header(ev.state.session_id, now),
        ev_processing=ct.Processing.Finished if step.matched else ct.Processing.Ongoing,
        ev_present_voltage=rn(step.present_voltage),
        ev_target_voltage=rn(step.target_voltage),
    )


def react(ev: EvccContext, req: dc.DcPreChargeReq, res: dc.DcPreChargeRes, result: Outcome, now: float) -> Step:
    if req.ev_processing == ct.Processing.Finished:
        return SendNext(cm.PowerDeliveryReq, options={"progress": cm.ChargeProgress.Start})
    voltage = fl(res.evse_present_voltage)
    return SendNext(dc.DcPreChargeReq, after=ev.config.timers.loop_interval, options={"evse_present_voltage": voltage})


PRE_CHARGE = Handlers(answer=answer, outcome=outcome, build=build, react=react)
