"""Conversions between the controllers' SI values and the -20 message elements, shared by SECC and EVCC.

`negative_discharge` selects the sign of discharge limits on the wire (PROTOCOL.md section 5: EVerest makes it
a setting because cars differ). Default False: discharge limits are sent as positive magnitudes, as the XSD
element names (EVMaximumDischargePower, ...) suggest and as Josev and EVerest's default do.
"""

from __future__ import annotations

from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct
from stack.messages.rational import from_float, to_float

from .controller import (
    ChargeLoopFeedback,
    ChargeLoopInput,
    ChargeLoopOutput,
    EnergyRequest,
    EvLoopStep,
    PowerLimits,
    Schedule,
    ScheduleEntry,
)
from .services import ControlMode


def rn(value: float) -> ct.RationalNumber:
    return from_float(value)


def fl(value: ct.RationalNumber | None) -> float | None:
    return None if value is None else to_float(value)


def _out(value: float | None, negative: bool) -> ct.RationalNumber:
    value = value or 0.0
    return rn(-abs(value) if negative else abs(value))


def _in(value: ct.RationalNumber | None) -> float | None:
    return None if value is None else abs(to_float(value))


# -- ChargeParameterDiscovery --------------------------------------------------------------------------
def cpd_request(limits: PowerLimits, bpt: bool, target_soc: int | None = None, negative_discharge: bool = False):
    common = dict(
        ev_maximum_charge_power=rn(limits.max_charge_power),
        ev_minimum_charge_power=rn(limits.min_charge_power),
        ev_maximum_charge_current=rn(limits.max_charge_current),
        ev_minimum_charge_current=rn(limits.min_charge_current),
        ev_maximum_voltage=rn(limits.max_voltage),
        ev_minimum_voltage=rn(limits.min_voltage),
        target_soc=target_soc,
    )
    if not bpt:
        return dc.DcCpdReqEnergyTransferMode(**common)
    return dc.BptDcCpdReqEnergyTransferMode(
        **common,
        ev_maximum_discharge_power=_out(limits.max_discharge_power, negative_discharge),
        ev_minimum_discharge_power=_out(limits.min_discharge_power, negative_discharge),
        ev_maximum_discharge_current=_out(limits.max_discharge_current, negative_discharge),
        ev_minimum_discharge_current=_out(limits.min_discharge_current, negative_discharge),
    )


def limits_of_cpd_request(mode) -> PowerLimits:
    bpt = isinstance(mode, dc.BptDcCpdReqEnergyTransferMode)
    return PowerLimits(
        max_charge_power=to_float(mode.ev_maximum_charge_power),
        min_charge_power=to_float(mode.ev_minimum_charge_power),
        max_charge_current=to_float(mode.ev_maximum_charge_current),
        min_charge_current=to_float(mode.ev_minimum_charge_current),
        max_voltage=to_float(mode.ev_maximum_voltage),
        min_voltage=to_float(mode.ev_minimum_voltage),
        max_discharge_power=_in(mode.ev_maximum_discharge_power) if bpt else None,
        min_discharge_power=_in(mode.ev_minimum_discharge_power) if bpt else None,
        max_discharge_current=_in(mode.ev_maximum_discharge_current) if bpt else None,
        min_discharge_current=_in(mode.ev_minimum_discharge_current) if bpt else None,
    )


def cpd_response(limits: PowerLimits, bpt: bool, negative_discharge: bool = False):
    common = dict(
        evse_maximum_charge_power=rn(limits.max_charge_power),
        evse_minimum_charge_power=rn(limits.min_charge_power),
        evse_maximum_charge_current=rn(limits.max_charge_current),
        evse_minimum_charge_current=rn(limits.min_charge_current),
        evse_maximum_voltage=rn(limits.max_voltage),
        evse_minimum_voltage=rn(limits.min_voltage),
    )
    if not bpt:
        return dc.DcCpdResEnergyTransferMode(**common)
    return dc.BptDcCpdResEnergyTransferMode(
        **common,
        evse_maximum_discharge_power=_out(limits.max_discharge_power, negative_discharge),
        evse_minimum_discharge_power=_out(limits.min_discharge_power, negative_discharge),
        evse_maximum_discharge_current=_out(limits.max_discharge_current, negative_discharge),
        evse_minimum_discharge_current=_out(limits.min_discharge_current, negative_discharge),
    )


def limits_of_cpd_response(mode) -> PowerLimits:
    bpt = isinstance(mode, dc.BptDcCpdResEnergyTransferMode)
    return PowerLimits(
        max_charge_power=to_float(mode.evse_maximum_charge_power),
        min_charge_power=to_float(mode.evse_minimum_charge_power),
        max_charge_current=to_float(mode.evse_maximum_charge_current),
        min_charge_current=to_float(mode.evse_minimum_charge_current),
        max_voltage=to_float(mode.evse_maximum_voltage),
        min_voltage=to_float(mode.evse_minimum_voltage),
        max_discharge_power=_in(mode.evse_maximum_discharge_power) if bpt else None,
        min_discharge_power=_in(mode.evse_minimum_discharge_power) if bpt else None,
        max_discharge_current=_in(mode.evse_maximum_discharge_current) if bpt else None,
        min_discharge_current=_in(mode.evse_minimum_discharge_current) if bpt else None,
    )


# -- ScheduleExchange ----------------------------------------------------------------------------------
def dynamic_se_request(e: EnergyRequest) -> cm.DynamicSeReqControlMode:
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


def scheduled_se_request(e: EnergyRequest) -> cm.ScheduledSeReqControlMode:
    return cm.ScheduledSeReqControlMode(
        departure_time=e.departure_time,
        ev_target_energy_request=rn(e.target_energy),
        ev_maximum_energy_request=rn(e.max_energy),
        ev_minimum_energy_request=rn(e.min_energy),
    )


def energy_of_se_request(req: cm.ScheduleExchangeReq) -> EnergyRequest | None:
    d, s = req.dynamic_se_req_control_mode, req.scheduled_se_req_control_mode
    if d is not None:
        return EnergyRequest(
            target_energy=to_float(d.ev_target_energy_request),
            max_energy=to_float(d.ev_maximum_energy_request),
            min_energy=to_float(d.ev_minimum_energy_request),
            departure_time=d.departure_time,
            min_soc=d.minimum_soc,
            target_soc=d.target_soc,
            max_v2x_energy=fl(d.ev_maximum_v2x_energy_request),
            min_v2x_energy=fl(d.ev_minimum_v2x_energy_request),
        )
    if s is not None and s.ev_target_energy_request is not None:
        return EnergyRequest(
            target_energy=to_float(s.ev_target_energy_request),
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


def schedule_tuples(schedules: tuple[Schedule, ...], anchor: int) -> list[cm.ScheduleTuple]:
    return [
        cm.ScheduleTuple(
            schedule_tuple_id=s.tuple_id,
            charging_schedule=_power_schedule(s.charge, anchor),
            discharging_schedule=None if s.discharge is None else _power_schedule(s.discharge, anchor),
        )
        for s in schedules
    ]


def schedules_of_tuples(tuples: list[cm.ScheduleTuple]) -> list[Schedule]:
    def entries(cs: cm.ChargingSchedule) -> tuple[ScheduleEntry, ...]:
        items = cs.power_schedule.power_schedule_entries.power_schedule_entry
        return tuple(ScheduleEntry(duration=e.duration, power=to_float(e.power)) for e in items)

    return [
        Schedule(
            tuple_id=t.schedule_tuple_id,
            charge=entries(t.charging_schedule),
            discharge=None if t.discharging_schedule is None else entries(t.discharging_schedule),
        )
        for t in tuples
    ]


# -- DC_ChargeLoop -----------------------------------------------------------------------------------
LOOP_REQUEST_MODES = {
    (ControlMode.SCHEDULED, False): dc.ScheduledDcClReqControlMode,
    (ControlMode.SCHEDULED, True): dc.BptScheduledDcClReqControlMode,
    (ControlMode.DYNAMIC, False): dc.DynamicDcClReqControlMode,
    (ControlMode.DYNAMIC, True): dc.BptDynamicDcClReqControlMode,
}
LOOP_RESPONSE_MODES = {
    (ControlMode.SCHEDULED, False): dc.ScheduledDcClResControlMode,
    (ControlMode.SCHEDULED, True): dc.BptScheduledDcClResControlMode,
    (ControlMode.DYNAMIC, False): dc.DynamicDcClResControlMode,
    (ControlMode.DYNAMIC, True): dc.BptDynamicDcClResControlMode,
}


def loop_request(mode: ControlMode, bpt: bool, step: EvLoopStep, limits: PowerLimits, negative: bool = False):
    """The CLReqControlMode element of the agreed mode (PROTOCOL.md 4.3, DC_ChargeLoopReq)."""
    lim = step.limits or limits
    energy = step.energy
    if mode is ControlMode.SCHEDULED:
        fields = dict(
            ev_target_current=rn(step.target_current or 0.0), ev_target_voltage=rn(step.target_voltage or 0.0)
        )
        fields.update(
            ev_maximum_charge_power=rn(lim.max_charge_power),
            ev_minimum_charge_power=rn(lim.min_charge_power),
            ev_maximum_charge_current=rn(lim.max_charge_current),
            ev_maximum_voltage=rn(lim.max_voltage),
            ev_minimum_voltage=rn(lim.min_voltage),
        )
        if energy is not None:
            fields.update(
                ev_target_energy_request=rn(energy.target_energy),
                ev_maximum_energy_request=rn(energy.max_energy),
                ev_minimum_energy_request=rn(energy.min_energy),
            )
        if bpt:
            fields.update(
                ev_maximum_discharge_power=_out(lim.max_discharge_power, negative),
                ev_minimum_discharge_power=_out(lim.min_discharge_power, negative),
                ev_maximum_discharge_current=_out(lim.max_discharge_current, negative),
            )
        return LOOP_REQUEST_MODES[mode, bpt](**fields)
    energy = energy or EnergyRequest(0.0, 0.0, 0.0)
    fields = dict(
        departure_time=energy.departure_time,
        ev_target_energy_request=rn(energy.target_energy),
        ev_maximum_energy_request=rn(energy.max_energy),
        ev_minimum_energy_request=rn(energy.min_energy),
        ev_maximum_charge_power=rn(lim.max_charge_power),
        ev_minimum_charge_power=rn(lim.min_charge_power),
        ev_maximum_charge_current=rn(lim.max_charge_current),
        ev_maximum_voltage=rn(lim.max_voltage),
        ev_minimum_voltage=rn(lim.min_voltage),
    )
    if bpt:
        fields.update(
            ev_maximum_discharge_power=_out(lim.max_discharge_power, negative),
            ev_minimum_discharge_power=_out(lim.min_discharge_power, negative),
            ev_maximum_discharge_current=_out(lim.max_discharge_current, negative),
            ev_maximum_v2x_energy_request=None if energy.max_v2x_energy is None else rn(energy.max_v2x_energy),
            ev_minimum_v2x_energy_request=None if energy.min_v2x_energy is None else rn(energy.min_v2x_energy),
        )
    return LOOP_REQUEST_MODES[mode, bpt](**fields)


def loop_input(req: dc.DcChargeLoopReq, mode: ControlMode) -> ChargeLoopInput:
    m = req.cl_req_control_mode
    bpt = isinstance(m, dc.BptScheduledDcClReqControlMode | dc.BptDynamicDcClReqControlMode)
    limits = None
    if getattr(m, "ev_maximum_charge_power", None) is not None:
        limits = PowerLimits(
            max_charge_power=fl(m.ev_maximum_charge_power) or 0.0,
            min_charge_power=fl(m.ev_minimum_charge_power) or 0.0,
            max_charge_current=fl(m.ev_maximum_charge_current) or 0.0,
            min_charge_current=0.0,
            max_voltage=fl(m.ev_maximum_voltage) or 0.0,
            min_voltage=fl(m.ev_minimum_voltage) or 0.0,
            max_discharge_power=_in(m.ev_maximum_discharge_power) if bpt else None,
            min_discharge_power=_in(m.ev_minimum_discharge_power) if bpt else None,
            max_discharge_current=_in(m.ev_maximum_discharge_current) if bpt else None,
        )
    energy = None
    if getattr(m, "ev_target_energy_request", None) is not None:
        energy = EnergyRequest(
            target_energy=to_float(m.ev_target_energy_request),
            max_energy=fl(m.ev_maximum_energy_request) or 0.0,
            min_energy=fl(m.ev_minimum_energy_request) or 0.0,
            departure_time=getattr(m, "departure_time", None),
            max_v2x_energy=fl(getattr(m, "ev_maximum_v2x_energy_request", None)),
            min_v2x_energy=fl(getattr(m, "ev_minimum_v2x_energy_request", None)),
        )
    display = req.display_parameters
    return ChargeLoopInput(
        control_mode=mode,
        ev_present_voltage=to_float(req.ev_present_voltage),
        target_current=fl(getattr(m, "ev_target_current", None)),
        target_voltage=fl(getattr(m, "ev_target_voltage", None)),
        ev_limits=limits,
        energy=energy,
        soc=None if display is None else display.present_soc,
        meter_info_requested=req.meter_info_requested,
    )


def loop_response_mode(mode: ControlMode, bpt: bool, out: ChargeLoopOutput, negative: bool = False):
    lim = out.limits
    fields = dict(
        evse_maximum_charge_power=rn(lim.max_charge_power),
        evse_minimum_charge_power=rn(lim.min_charge_power),
        evse_maximum_charge_current=rn(lim.max_charge_current),
        evse_maximum_voltage=rn(lim.max_voltage),
    )
    if mode is ControlMode.DYNAMIC:
        fields.update(
            departure_time=out.departure_time,
            minimum_soc=out.min_soc,
            target_soc=out.target_soc,
            ack_max_delay=out.ack_max_delay,
        )
    if bpt:
        fields.update(
            evse_maximum_discharge_power=_out(lim.max_discharge_power, negative),
            evse_minimum_discharge_power=_out(lim.min_discharge_power, negative),
            evse_maximum_discharge_current=_out(lim.max_discharge_current, negative),
            evse_minimum_voltage=rn(lim.min_voltage),
        )
    return LOOP_RESPONSE_MODES[mode, bpt](**fields)


def feedback_of_response(res: dc.DcChargeLoopRes) -> ChargeLoopFeedback:
    m = res.cl_res_control_mode
    limits = None
    if getattr(m, "evse_maximum_charge_power", None) is not None:
        bpt = getattr(m, "evse_maximum_discharge_power", None) is not None
        limits = PowerLimits(
            max_charge_power=fl(m.evse_maximum_charge_power) or 0.0,
            min_charge_power=fl(m.evse_minimum_charge_power) or 0.0,
            max_charge_current=fl(m.evse_maximum_charge_current) or 0.0,
            min_charge_current=0.0,
            max_voltage=fl(m.evse_maximum_voltage) or 0.0,
            min_voltage=fl(getattr(m, "evse_minimum_voltage", None)) or 0.0,
            max_discharge_power=_in(m.evse_maximum_discharge_power) if bpt else None,
            min_discharge_power=_in(m.evse_minimum_discharge_power) if bpt else None,
            max_discharge_current=_in(m.evse_maximum_discharge_current) if bpt else None,
        )
    status = res.evse_status
    return ChargeLoopFeedback(
        present_voltage=to_float(res.evse_present_voltage),
        present_current=to_float(res.evse_present_current),
        notification=None if status is None else str(status.evse_notification),
        limits=limits,
    )
