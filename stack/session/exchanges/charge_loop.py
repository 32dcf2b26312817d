"""DC_ChargeLoopReq/Res: the control loop of energy transfer (PROTOCOL.md 4.3), and its conversions."""

from __future__ import annotations

from typing import Any

from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct

from ..actions import Event
from ..controller import (
    ChargeLoopFeedback,
    ChargeLoopInput,
    ChargeLoopOutput,
    EnergyRequest,
    EvLoopStep,
    StopReason,
)
from ..errors import LocalProtocolError
from ..exchange import Answer, EvccContext, Handlers, SeccContext, SendNext, Step
from ..rules import request_rule, response_rule
from ..services import ControlMode
from ..state import Outcome, SessionState
from ..units import fl, non_negative, rn
from .common import code_outcome, header
from .limits import from_wire, to_wire
from .metering_confirmation import NOTIFICATION as METERING
from .metering_confirmation import secc_may_ask

RC = ct.ResponseCode

RequestMode = (
    dc.ScheduledDcClReqControlMode
    | dc.BptScheduledDcClReqControlMode
    | dc.DynamicDcClReqControlMode
    | dc.BptDynamicDcClReqControlMode
)
ResponseMode = (
    dc.ScheduledDcClResControlMode
    | dc.BptScheduledDcClResControlMode
    | dc.DynamicDcClResControlMode
    | dc.BptDynamicDcClResControlMode
)
REQUEST_MODES: dict[tuple[ControlMode, bool], type[RequestMode]] = {
    (ControlMode.SCHEDULED, False): dc.ScheduledDcClReqControlMode,
    (ControlMode.SCHEDULED, True): dc.BptScheduledDcClReqControlMode,
    (ControlMode.DYNAMIC, False): dc.DynamicDcClReqControlMode,
    (ControlMode.DYNAMIC, True): dc.BptDynamicDcClReqControlMode,
}
RESPONSE_MODES: dict[tuple[ControlMode, bool], type[ResponseMode]] = {
    (ControlMode.SCHEDULED, False): dc.ScheduledDcClResControlMode,
    (ControlMode.SCHEDULED, True): dc.BptScheduledDcClResControlMode,
    (ControlMode.DYNAMIC, False): dc.DynamicDcClResControlMode,
    (ControlMode.DYNAMIC, True): dc.BptDynamicDcClResControlMode,
}
# the limit elements of each CLReqControlMode / CLResControlMode, without and with BPT (XSD)
_EV_LOOP = ("max_charge_power", "min_charge_power", "max_charge_current", "max_voltage", "min_voltage")
_BPT_LOOP = ("max_discharge_power", "min_discharge_power", "max_discharge_current")
EV_LOOP_LIMITS = {False: _EV_LOOP, True: (*_EV_LOOP, *_BPT_LOOP)}
_EVSE_LOOP = ("max_charge_power", "min_charge_power", "max_charge_current", "max_voltage")
EVSE_LOOP_LIMITS = {False: _EVSE_LOOP, True: (*_EVSE_LOOP, *_BPT_LOOP, "min_voltage")}
# EVSENotification values that make the EV leave the charge loop at once, and how
STOP_NOTIFICATIONS = {
    "Terminate": StopReason.TERMINATE,
    "Pause": StopReason.PAUSE,
    "ServiceRenegotiation": StopReason.SERVICE_RENEGOTIATION,
    "ScheduleRenegotiation": StopReason.SCHEDULE_RENEGOTIATION,
}


@request_rule("MV-CL-CONTROL-MODE", RC.FAILED, "PROTOCOL.md 4.3 and 7 (control-mode mismatch: FAILED, LIB15118)")
def control_mode_fits(state: SessionState, req: dc.DcChargeLoopReq) -> bool:
    """The request carries the CLReqControlMode of the session's control mode and BPT choice."""
    return type(req.cl_req_control_mode) is REQUEST_MODES[state.control_mode, state.bpt]


@request_rule("MV-CL-LIMITS", RC.FAILED, "PROTOCOL.md 4.3 (limits are magnitudes; ours)")
def limits_are_magnitudes(state: SessionState, req: dc.DcChargeLoopReq) -> bool:
    """The EV's charge limits in the loop are finite and not negative."""
    m = req.cl_req_control_mode
    names = ("ev_maximum_charge_power", "ev_maximum_charge_current", "ev_maximum_voltage")
    return non_negative(*(fl(getattr(m, name, None)) for name in names))


@response_rule("MV-CL-RESPONSE-MODE", "PROTOCOL.md 4.3 (the response mirrors the control mode)")
def response_control_mode_fits(state: SessionState, req: dc.DcChargeLoopReq, res: dc.DcChargeLoopRes) -> bool:
    """The response carries the CLResControlMode of the session's control mode and BPT choice."""
    return type(res.cl_res_control_mode) is RESPONSE_MODES[state.control_mode, state.bpt]


# -- conversions ------------------------------------------------------------------------------------------------


def loop_request(mode: ControlMode, bpt: bool, step: EvLoopStep, negative: bool = False) -> RequestMode:
    """The CLReqControlMode element of the agreed mode (PROTOCOL.md 4.3, DC_ChargeLoopReq)."""
    energy = step.energy
    if step.limits is None:
        raise LocalProtocolError("a charge loop step without the EV's limits: DC_ChargeLoopReq needs them")
    fields: dict[str, Any] = to_wire("ev", step.limits, EV_LOOP_LIMITS[bpt], negative)
    if mode is ControlMode.SCHEDULED:
        fields.update(
            ev_target_current=rn(step.target_current or 0.0), ev_target_voltage=rn(step.target_voltage or 0.0)
        )
        if energy is not None:
            fields.update(
                ev_target_energy_request=rn(energy.target_energy),
                ev_maximum_energy_request=rn(energy.max_energy),
                ev_minimum_energy_request=rn(energy.min_energy),
            )
        return REQUEST_MODES[mode, bpt](**fields)
    energy = energy or EnergyRequest(0.0, 0.0, 0.0)
    fields.update(
        departure_time=energy.departure_time,
        ev_target_energy_request=rn(energy.target_energy),
        ev_maximum_energy_request=rn(energy.max_energy),
        ev_minimum_energy_request=rn(energy.min_energy),
    )
    if bpt:
        fields.update(
            ev_maximum_v2x_energy_request=None if energy.max_v2x_energy is None else rn(energy.max_v2x_energy),
            ev_minimum_v2x_energy_request=None if energy.min_v2x_energy is None else rn(energy.min_v2x_energy),
        )
    return REQUEST_MODES[mode, bpt](**fields)


def loop_input(req: dc.DcChargeLoopReq, mode: ControlMode) -> ChargeLoopInput:
    m = req.cl_req_control_mode
    limits = from_wire("ev", m) if getattr(m, "ev_maximum_charge_power", None) is not None else None
    energy = None
    if (target_energy := getattr(m, "ev_target_energy_request", None)) is not None:
        energy = EnergyRequest(
            target_energy=fl(target_energy),
            max_energy=fl(getattr(m, "ev_maximum_energy_request", None)) or 0.0,
            min_energy=fl(getattr(m, "ev_minimum_energy_request", None)) or 0.0,
            departure_time=getattr(m, "departure_time", None),
            max_v2x_energy=fl(getattr(m, "ev_maximum_v2x_energy_request", None)),
            min_v2x_energy=fl(getattr(m, "ev_minimum_v2x_energy_request", None)),
        )
    display = req.display_parameters
    return ChargeLoopInput(
        control_mode=mode,
        ev_present_voltage=fl(req.ev_present_voltage),
        target_current=fl(getattr(m, "ev_target_current", None)),
        target_voltage=fl(getattr(m, "ev_target_voltage", None)),
        ev_limits=limits,
        energy=energy,
        soc=None if display is None else display.present_soc,
        meter_info_requested=req.meter_info_requested,
    )


def response_mode(mode: ControlMode, bpt: bool, out: ChargeLoopOutput, negative: bool = False) -> ResponseMode:
    fields: dict[str, Any] = to_wire("evse", out.limits, EVSE_LOOP_LIMITS[bpt], negative)
    if mode is ControlMode.DYNAMIC:
        fields.update(
            departure_time=out.departure_time,
            minimum_soc=out.min_soc,
            target_soc=out.target_soc,
            ack_max_delay=out.ack_max_delay,
        )
    return RESPONSE_MODES[mode, bpt](**fields)


def feedback_of_response(res: dc.DcChargeLoopRes, received_at: float | None = None) -> ChargeLoopFeedback:
    m = res.cl_res_control_mode
    limits = from_wire("evse", m) if getattr(m, "evse_maximum_charge_power", None) is not None else None
    status = res.evse_status
    return ChargeLoopFeedback(
        present_voltage=fl(res.evse_present_voltage),
        present_current=fl(res.evse_present_current),
        notification=None if status is None else str(status.evse_notification),
        limits=limits,
        received_at=received_at,
    )


def _meter_info(secc: SeccContext, out: ChargeLoopOutput) -> ct.MeterInfo | None:
    meter = out.meter
    if meter is None:
        return None
    info = ct.MeterInfo(
        meter_id=meter.meter_id, charged_energy_reading_wh=meter.imported_wh, meter_timestamp=meter.timestamp
    )
    if secc.state.bpt and secc.config.send_discharged_energy and meter.exported_wh is not None:
        info.bpt_discharged_energy_reading_wh = meter.exported_wh
    return info


# -- handlers ---------------------------------------------------------------------------------------------------


def answer(secc: SeccContext, req: dc.DcChargeLoopReq, now: float) -> Answer:
    state = secc.state
    out = secc.controller.charge_loop(loop_input(req, state.control_mode), now)
    meter_info = _meter_info(secc, out) if (req.meter_info_requested or out.meter) else None
    if meter_info is not None:
        secc.meter_info = meter_info
    status = None
    # MeteringConfirmation only where the EV can sign and the SECC can verify (metering_confirmation.py)
    if out.notification is not None and (out.notification != METERING or secc_may_ask(secc)):
        notification = ct.EvseNotification(out.notification)
        status = ct.EvseStatus(notification_max_delay=out.notification_max_delay, evse_notification=notification)
    return Answer(
        dc.DcChargeLoopRes(
            header=header(state.session_id, now),
            response_code=RC.OK,
            evse_status=status,
            meter_info=meter_info,
            evse_present_current=rn(out.present_current),
            evse_present_voltage=rn(out.present_voltage),
            evse_power_limit_achieved=out.power_limit_achieved,
            evse_current_limit_achieved=out.current_limit_achieved,
            evse_voltage_limit_achieved=out.voltage_limit_achieved,
            cl_res_control_mode=response_mode(state.control_mode, state.bpt, out, secc.config.negative_discharge),
        )
    )


def outcome(req: dc.DcChargeLoopReq, res: dc.DcChargeLoopRes) -> Outcome:
    return code_outcome(res.response_code) or Outcome.OK


def _stop(ev: EvccContext, reason: StopReason) -> SendNext:
    ev.stop_reason = reason
    progress = cm.ChargeProgress.ScheduleRenegotiation
    if reason is not StopReason.SCHEDULE_RENEGOTIATION:
        progress = cm.ChargeProgress.Stop
    return SendNext(cm.PowerDeliveryReq, options={"progress": progress})


def build(ev: EvccContext, now: float, feedback: ChargeLoopFeedback | None = None) -> dc.DcChargeLoopReq | Step:
    """Decide and build the next DC_ChargeLoopReq when it is sent, from the EV's state at that time."""
    state = ev.state
    step = ev.controller.charge_loop(feedback, now)
    if step.stop is not None:
        return _stop(ev, step.stop)
    ev.charge_loops += 1
    return dc.DcChargeLoopReq(
        header=header(state.session_id, now),
        # ChargingComplete is optional, but Josev's SECC rejects DisplayParameters without it
        display_parameters=None
        if step.soc is None
        else ct.DisplayParameters(present_soc=step.soc, charging_complete=step.charging_complete),
        meter_info_requested=ev.config.request_meter_info,
        ev_present_voltage=rn(step.present_voltage),
        cl_req_control_mode=loop_request(state.control_mode, state.bpt, step, ev.config.negative_discharge),
    )


def react(ev: EvccContext, req: dc.DcChargeLoopReq, res: dc.DcChargeLoopRes, result: Outcome, now: float) -> Step:
    feedback = feedback_of_response(res, received_at=now)
    events = () if feedback.notification is None else (Event("notification", {"notification": feedback.notification}),)
    stop = None if feedback.notification is None else STOP_NOTIFICATIONS.get(feedback.notification)
    if res.meter_info is not None:
        ev.meter_info = res.meter_info
    if stop is not None:  # the SECC asks to stop: react at once
        step = _stop(ev, stop)
        return SendNext(step.request, options=step.options, events=events)
    if feedback.notification == METERING:  # sign the reading, then the loop goes on (or it goes on at once)
        return SendNext(cm.MeteringConfirmationReq, options={"feedback": feedback}, events=events)
    interval = ev.config.timers.charge_loop_interval
    return SendNext(dc.DcChargeLoopReq, after=interval, options={"feedback": feedback}, events=events)


CHARGE_LOOP = Handlers(answer=answer, outcome=outcome, build=build, react=react)
