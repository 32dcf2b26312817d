"""ScheduleExchangeReq/Res: the EV's energy needs, the SECC's schedules (Scheduled) or targets (Dynamic)
(PROTOCOL.md 4.3 and 4.5), and their conversions."""

from __future__ import annotations

from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct
from stack.messages.minimal import minimal

from ..controller import EnergyRequest, PriceLevel, Schedule, ScheduleEntry, StopReason
from ..exchange import Answer, EvccContext, Handlers, Repeat, SeccContext, SendNext, Step, StopSession
from ..rules import request_rule, response_rule
from ..services import ControlMode
from ..state import Outcome, SessionState
from ..units import fl, rn
from .common import header, processing_outcome

RC = ct.ResponseCode
MAX_SCHEDULE_TUPLES = 3  # XSD: ScheduledSEResControlMode holds 1..3 ScheduleTuple


@request_rule("MV-SE-CONTROL-MODE", RC.FAILED, "PROTOCOL.md 4.3 and 7 (control-mode mismatch: FAILED, LIB15118)")
def control_mode_fits(state: SessionState, req: cm.ScheduleExchangeReq) -> bool:
    """The request carries the element of the session's control mode (Dynamic_ or Scheduled_SEReqControlMode)."""
    if state.control_mode is ControlMode.DYNAMIC:
        return req.dynamic_se_req_control_mode is not None
    return req.scheduled_se_req_control_mode is not None


@response_rule("MV-SE-RESPONSE-MODE", "PROTOCOL.md 4.3 (the response mirrors the control mode; XSD choice)")
def response_control_mode_fits(state: SessionState, req: cm.ScheduleExchangeReq, res: cm.ScheduleExchangeRes) -> bool:
    """The response carries the element of the session's control mode; Scheduled and Finished: 1..3 tuples."""
    if state.control_mode is ControlMode.DYNAMIC:
        return res.dynamic_se_res_control_mode is not None
    scheduled = res.scheduled_se_res_control_mode
    if scheduled is None:
        return False
    return res.evse_processing != ct.Processing.Finished or 1 <= len(scheduled.schedule_tuple) <= MAX_SCHEDULE_TUPLES


# -- conversions ------------------------------------------------------------------------------------------------


def dynamic_request(e: EnergyRequest) -> cm.DynamicSeReqControlMode:
    return cm.DynamicSeReqControlMode(
        departure_time=e.departure_time or 0,
        minimum_soc=e.min_soc,
        target_soc=e.target_soc,
        ev_target_energy_request=rn(e.target_energy),
        ev_maximum_energy_request=rn(e.max_energy),
        ev_minimum_energy_request=rn(e.min_energy),
        ev_maximum_v2x_energy_request=None if e.max_v2x_energy is None else rn(e.max_v2x_energy),
        ev_minimum_v2x_energy_request=None if e.min_v2x_energy is None else rn(e.min_v2x_energy),
    )


def scheduled_request(e: EnergyRequest) -> cm.ScheduledSeReqControlMode:
    return cm.ScheduledSeReqControlMode(
        departure_time=e.departure_time,
        ev_target_energy_request=rn(e.target_energy),
        ev_maximum_energy_request=rn(e.max_energy),
        ev_minimum_energy_request=rn(e.min_energy),
    )


def energy_of_request(req: cm.ScheduleExchangeReq) -> EnergyRequest | None:
    d, s = req.dynamic_se_req_control_mode, req.scheduled_se_req_control_mode
    if d is not None:
        return EnergyRequest(
            target_energy=fl(d.ev_target_energy_request),
            max_energy=fl(d.ev_maximum_energy_request),
            min_energy=fl(d.ev_minimum_energy_request),
            departure_time=d.departure_time,
            min_soc=d.minimum_soc,
            target_soc=d.target_soc,
            max_v2x_energy=fl(d.ev_maximum_v2x_energy_request),
            min_v2x_energy=fl(d.ev_minimum_v2x_energy_request),
        )
    if s is not None and s.ev_target_energy_request is not None:
        return EnergyRequest(
            target_energy=fl(s.ev_target_energy_request),
            max_energy=fl(s.ev_maximum_energy_request) or 0.0,
            min_energy=fl(s.ev_minimum_energy_request) or 0.0,
            departure_time=s.departure_time,
        )
    return None


def _power_schedule(entries: tuple[ScheduleEntry, ...], anchor: int) -> cm.ChargingSchedule:
    items = [cm.PowerScheduleEntry(duration=e.duration, power=rn(e.power)) for e in entries]
    power = cm.PowerSchedule(
        time_anchor=anchor, power_schedule_entries=cm.PowerScheduleEntryList(power_schedule_entry=items)
    )
    return cm.ChargingSchedule(power_schedule=power)


def _price_levels(s: Schedule, anchor: int) -> cm.PriceLevelSchedule:
    items = [cm.PriceLevelScheduleEntry(duration=p.duration, price_level=p.level) for p in s.prices]
    return cm.PriceLevelSchedule(
        time_anchor=anchor,
        price_schedule_id=s.tuple_id,
        number_of_price_levels=s.price_levels,
        price_level_schedule_entries=cm.PriceLevelScheduleEntryList(price_level_schedule_entry=items),
    )


def schedule_tuples(schedules: tuple[Schedule, ...], anchor: int) -> list[cm.ScheduleTuple]:
    tuples = []
    for s in schedules:
        charging = _power_schedule(s.charge, anchor)
        if s.prices:
            charging.price_level_schedule = _price_levels(s, anchor)
        discharging = None if s.discharge is None else _power_schedule(s.discharge, anchor)
        tuples.append(
            cm.ScheduleTuple(schedule_tuple_id=s.tuple_id, charging_schedule=charging, discharging_schedule=discharging)
        )
    return tuples


def schedules_of_tuples(tuples: list[cm.ScheduleTuple]) -> list[Schedule]:
    def entries(cs: cm.ChargingSchedule) -> tuple[ScheduleEntry, ...]:
        items = cs.power_schedule.power_schedule_entries.power_schedule_entry
        return tuple(ScheduleEntry(duration=e.duration, power=fl(e.power)) for e in items)

    def prices(cs: cm.ChargingSchedule) -> tuple[tuple[PriceLevel, ...], int]:
        levels = cs.price_level_schedule
        if levels is None:
            return (), 0
        items = levels.price_level_schedule_entries.price_level_schedule_entry
        return tuple(PriceLevel(e.duration, e.price_level) for e in items), levels.number_of_price_levels

    return [
        Schedule(
            tuple_id=t.schedule_tuple_id,
            charge=entries(t.charging_schedule),
            discharge=None if t.discharging_schedule is None else entries(t.discharging_schedule),
            prices=prices(t.charging_schedule)[0],
            price_levels=prices(t.charging_schedule)[1],
        )
        for t in tuples
    ]


# -- handlers ---------------------------------------------------------------------------------------------------


def answer(secc: SeccContext, req: cm.ScheduleExchangeReq, now: float) -> Answer:
    state = secc.state
    dynamic = state.control_mode is ControlMode.DYNAMIC
    decided = secc.controller.schedule(
        state.selected[0], state.control_mode, energy_of_request(req), req.maximum_supporting_points, now
    )
    res = cm.ScheduleExchangeRes(
        header=header(state.session_id, now),
        response_code=RC.OK,
        evse_processing=ct.Processing.Finished if decided.finished else ct.Processing.Ongoing,
        go_to_pause=decided.go_to_pause,
    )
    if not decided.finished:  # the XSD needs the control-mode element even while Ongoing (PROTOCOL.md 4.3)
        if dynamic:
            res.dynamic_se_res_control_mode = cm.DynamicSeResControlMode()
        else:
            res.scheduled_se_res_control_mode = minimal(cm.ScheduledSeResControlMode)
    elif dynamic:
        res.dynamic_se_res_control_mode = cm.DynamicSeResControlMode(
            departure_time=decided.departure_time, minimum_soc=decided.min_soc, target_soc=decided.target_soc
        )
    else:
        schedules = decided.schedules[:MAX_SCHEDULE_TUPLES]
        res.scheduled_se_res_control_mode = cm.ScheduledSeResControlMode(
            schedule_tuple=schedule_tuples(schedules, int(now))
        )
    return Answer(res)


def outcome(req: cm.ScheduleExchangeReq, res: cm.ScheduleExchangeRes) -> Outcome:
    return processing_outcome(res.response_code, res.evse_processing)


def apply(
    state: SessionState, req: cm.ScheduleExchangeReq, res: cm.ScheduleExchangeRes, result: Outcome
) -> SessionState:
    if result is not Outcome.OK or res.scheduled_se_res_control_mode is None:
        return state
    ids = frozenset(t.schedule_tuple_id for t in res.scheduled_se_res_control_mode.schedule_tuple)
    return state.to(state.phase, schedule_ids=ids)


def build(ev: EvccContext, now: float) -> cm.ScheduleExchangeReq:
    state = ev.state
    energy = ev.controller.energy_request(state.selected[0], state.control_mode, now)
    req = cm.ScheduleExchangeReq(
        header=header(state.session_id, now), maximum_supporting_points=ev.config.max_supporting_points
    )
    if state.control_mode is ControlMode.DYNAMIC:
        req.dynamic_se_req_control_mode = dynamic_request(energy)
    else:
        req.scheduled_se_req_control_mode = scheduled_request(energy)
    return req


def react(
    ev: EvccContext, req: cm.ScheduleExchangeReq, res: cm.ScheduleExchangeRes, result: Outcome, now: float
) -> Step:
    if result is Outcome.ONGOING:
        return Repeat(ev.config.timers.loop_interval)
    state = ev.state
    if state.control_mode is ControlMode.SCHEDULED:
        scheduled = res.scheduled_se_res_control_mode
        if scheduled is None:  # MV-SE-RESPONSE-MODE refuses such a response before
            return StopSession("ScheduleExchangeRes without ScheduledSEResControlMode")
        schedules = schedules_of_tuples(scheduled.schedule_tuple)
        ev.schedule = ev.controller.choose_schedule(schedules, now)
        if ev.schedule is None:
            return StopSession("no acceptable schedule")
    if res.go_to_pause:  # the SECC asks for a pause: no energy now, rejoin later with this SessionID
        ev.stop_reason = StopReason.PAUSE
        return SendNext(cm.PowerDeliveryReq, options={"progress": cm.ChargeProgress.Stop})
    if state.renegotiating and state.energized:  # back from a renegotiation: the output is on, go on charging
        return SendNext(cm.PowerDeliveryReq, options={"progress": cm.ChargeProgress.Start})
    return SendNext(dc.DcCableCheckReq)


SCHEDULE_EXCHANGE = Handlers(answer=answer, outcome=outcome, build=build, react=react, apply=apply)
