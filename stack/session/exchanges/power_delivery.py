"""PowerDeliveryReq/Res: start, stop, renegotiate or stand by (PROTOCOL.md 4.2, 4.3 and 4.5)."""

from __future__ import annotations

from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct

from ..controller import PowerDeliveryStep
from ..exchange import Answer, EvccContext, Handlers, SeccContext, SendNext, Step, StopSession
from ..rules import decision, request_rule
from ..services import ControlMode
from ..state import Outcome, Phase, SessionState
from ..units import rn
from .common import code_outcome, header

RC = ct.ResponseCode
CP = cm.ChargeProgress
FINISHED = ct.Processing.Finished
PROFILE_SPAN = 86_400  # s: the Dynamic-mode EV power profile is one entry of a day at the EV's maximum


def _starting(req: cm.PowerDeliveryReq) -> bool:
    return req.ev_processing == FINISHED and req.charge_progress == CP.Start


@request_rule(
    "MV-POWER-DELIVERY-START",
    RC.FAILED_SequenceError,
    "PROTOCOL.md 4.2 ([V2G20-2122] lets the EV skip cable check and pre-charge only for pause or standby)",
)
def start_after_cable_check_and_pre_charge(state: SessionState, req: cm.PowerDeliveryReq) -> bool:
    """PowerDelivery(Start) follows a passed cable check and pre-charge, or a schedule renegotiation with the
    output still on."""
    if not _starting(req):
        return True
    return state.energized or (state.phase is Phase.PRE_CHARGE and state.cable_checked)


@request_rule("MV-SCHEDULE-SELECTION", RC.FAILED_ScheduleSelectionInvalid, "PROTOCOL.md 7 (JOSEV PowerDelivery)")
def selected_schedule_offered(state: SessionState, req: cm.PowerDeliveryReq) -> bool:
    """In Scheduled mode, PowerDelivery(Start) names a ScheduleTupleID of the last ScheduleExchangeRes."""
    if not _starting(req) or state.control_mode is not ControlMode.SCHEDULED:
        return True
    profile = req.ev_power_profile
    chosen = None if profile is None else profile.scheduled_evppt_control_mode
    return chosen is not None and chosen.selected_schedule_tuple_id in state.schedule_ids


@request_rule(
    "MV-SCHEDULE-RENEGOTIATION", RC.FAILED_SequenceError, "PROTOCOL.md 4.5 (renegotiation from the charge loop)"
)
def renegotiation_from_the_charge_loop(state: SessionState, req: cm.PowerDeliveryReq) -> bool:
    """PowerDelivery(ScheduleRenegotiation) comes from the charge loop, with the output on."""
    if req.ev_processing != FINISHED or req.charge_progress != CP.ScheduleRenegotiation:
        return True
    return state.phase in (Phase.POWER_ON, Phase.CHARGE_LOOP)


CONTACTOR_ERROR = decision(
    "MV-CONTACTOR-ERROR",
    RC.FAILED_ContactorError,
    "The charger's contactors did not close (or open) as PowerDelivery asked.",
    "PROTOCOL.md 7 (JOSEV, LIB15118)",
)
STANDBY_NOT_ALLOWED = decision(
    "MV-STANDBY",
    RC.WARNING_StandbyNotAllowed,
    "The SECC refuses standby unless configured to allow it (Josev and LIB15118 implement no standby).",
    "PROTOCOL.md 4.5 and 7",
)


def answer(secc: SeccContext, req: cm.PowerDeliveryReq, now: float) -> Answer:
    def res(code: RC) -> cm.PowerDeliveryRes:
        return cm.PowerDeliveryRes(header=header(secc.state.session_id, now), response_code=code)

    if req.ev_processing != FINISHED:
        return Answer(res(RC.OK))  # the EV is still computing its profile: it asks again
    progress = req.charge_progress
    if progress == CP.Start:
        discharge = req.bpt_channel_selection == cm.ChannelSelection.Discharge
        if not secc.controller.power_delivery(True, discharge, now):
            return Answer(res(CONTACTOR_ERROR.rc), CONTACTOR_ERROR)
    elif progress == CP.Stop:
        if not secc.controller.power_delivery(False, False, now):
            return Answer(res(CONTACTOR_ERROR.rc), CONTACTOR_ERROR)
    elif progress == CP.Standby and not secc.config.standby_allowed:
        return Answer(res(STANDBY_NOT_ALLOWED.rc), STANDBY_NOT_ALLOWED)
    return Answer(res(RC.OK))


_PROGRESS = {CP.Start: Outcome.START, CP.Stop: Outcome.STOP, CP.Standby: Outcome.STANDBY}


def outcome(req: cm.PowerDeliveryReq, res: cm.PowerDeliveryRes) -> Outcome:
    by_code = code_outcome(res.response_code)
    if by_code is not None:
        return by_code
    if req.ev_processing != FINISHED:
        return Outcome.EV_ONGOING
    return _PROGRESS.get(req.charge_progress, Outcome.RENEGOTIATE)


def apply(state: SessionState, req: cm.PowerDeliveryReq, res: cm.PowerDeliveryRes, result: Outcome) -> SessionState:
    if result is Outcome.START:
        return state.to(state.phase, energized=True, renegotiating=False)
    if result is Outcome.STOP:  # a new energy transfer needs a new cable check
        return state.to(state.phase, energized=False, cable_checked=False, renegotiating=False)
    if result is Outcome.RENEGOTIATE:
        return state.to(state.phase, renegotiating=True)
    return state


def build(ev: EvccContext, now: float, progress: CP) -> cm.PowerDeliveryReq | Step:
    state = ev.state
    step: PowerDeliveryStep = ev.controller.power_delivery(progress, now)
    if not step.ready:
        return StopSession("the EV's contactors refused to close")
    if progress == CP.Start:
        ev.ev_contactors_closed = True
    req = cm.PowerDeliveryReq(header=header(state.session_id, now), ev_processing=FINISHED, charge_progress=progress)
    if progress == CP.Start:
        # Optional in the XSD, but Josev's SECC (and some chargers) require the EV power profile at Start
        # and the power tolerance acceptance in Scheduled mode: send them, they cost a few bytes.
        if state.control_mode is ControlMode.SCHEDULED and ev.schedule is not None:
            entries = [cm.PowerScheduleEntry(duration=e.duration, power=rn(e.power)) for e in ev.schedule.charge]
            req.ev_power_profile = cm.EvPowerProfile(
                time_anchor=int(now),
                scheduled_evppt_control_mode=cm.ScheduledEvpptControlMode(
                    selected_schedule_tuple_id=ev.schedule.tuple_id,
                    power_tolerance_acceptance=cm.PowerToleranceAcceptance.PowerToleranceConfirmed,
                ),
                ev_power_profile_entries=cm.EvPowerProfileEntryList(ev_power_profile_entry=entries),
            )
        elif state.control_mode is ControlMode.DYNAMIC:
            entry = cm.PowerScheduleEntry(duration=PROFILE_SPAN, power=rn(step.max_charge_power))
            req.ev_power_profile = cm.EvPowerProfile(
                time_anchor=int(now),
                dynamic_evppt_control_mode=cm.DynamicEvpptControlMode(),
                ev_power_profile_entries=cm.EvPowerProfileEntryList(ev_power_profile_entry=[entry]),
            )
        if state.bpt:
            req.bpt_channel_selection = cm.ChannelSelection.Discharge if step.discharge else cm.ChannelSelection.Charge
    return req


def react(ev: EvccContext, req: cm.PowerDeliveryReq, res: cm.PowerDeliveryRes, result: Outcome, now: float) -> Step:
    if result is Outcome.START:
        return SendNext(dc.DcChargeLoopReq)
    if result is Outcome.RENEGOTIATE:
        return SendNext(cm.ScheduleExchangeReq)
    if result is Outcome.STOP:
        if not ev.ev_contactors_closed:  # they never closed (e.g. GoToPause): nothing can be welded
            return SendNext(cm.SessionStopReq)
        return SendNext(dc.DcWeldingDetectionReq)
    return SendNext(dc.DcChargeLoopReq, after=ev.config.timers.charge_loop_interval)


POWER_DELIVERY = Handlers(answer=answer, outcome=outcome, build=build, react=react, apply=apply)
