"""Representative MCS / DC_BPT messages used by the benchmarks, the CLI examples and the tests."""

from __future__ import annotations

from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct
from stack.messages.rational import from_decimal as rn

SESSION_ID = bytes.fromhex("4F2A0B9C11D3E8A7")
TIMESTAMP = 1_795_000_000


def header() -> ct.MessageHeader:
    return ct.MessageHeader(session_id=SESSION_ID, time_stamp=TIMESTAMP)


def session_setup_req() -> cm.SessionSetupReq:
    return cm.SessionSetupReq(
        header=ct.MessageHeader(session_id=bytes(8), time_stamp=TIMESTAMP), evccid="WMA06XZZ1MP123456"
    )


def dc_charge_parameter_discovery_req() -> dc.DcChargeParameterDiscoveryReq:
    """A heavy truck asking for MCS_BPT: 1000 A / 750 kW charge, 750 kW discharge, 650-1000 V pack."""
    mode = dc.BptDcCpdReqEnergyTransferMode(
        ev_maximum_charge_power=rn(750_000),
        ev_minimum_charge_power=rn(10_000),
        ev_maximum_charge_current=rn(1000),
        ev_minimum_charge_current=rn(10),
        ev_maximum_voltage=rn(1000),
        ev_minimum_voltage=rn(650),
        target_soc=90,
        ev_maximum_discharge_power=rn(750_000),
        ev_minimum_discharge_power=rn(10_000),
        ev_maximum_discharge_current=rn(1000),
        ev_minimum_discharge_current=rn(10),
    )
    return dc.DcChargeParameterDiscoveryReq(header=header(), dc_cpd_req_energy_transfer_mode=mode)


def dc_charge_loop_req() -> dc.DcChargeLoopReq:
    """BPT Dynamic charge loop request of a truck at 55 % SoC, 768 V."""
    mode = dc.BptDynamicDcClReqControlMode(
        departure_time=7200,
        ev_target_energy_request=rn(196_000),
        ev_maximum_energy_request=rn(252_000),
        ev_minimum_energy_request=rn(-84_000),
        ev_maximum_charge_power=rn(750_000),
        ev_minimum_charge_power=rn(10_000),
        ev_maximum_charge_current=rn(1000),
        ev_maximum_voltage=rn(1000),
        ev_minimum_voltage=rn(650),
        ev_maximum_discharge_power=rn(750_000),
        ev_minimum_discharge_power=rn(10_000),
        ev_maximum_discharge_current=rn(1000),
        ev_maximum_v2x_energy_request=rn(84_000),
        ev_minimum_v2x_energy_request=rn(-84_000),
    )
    return dc.DcChargeLoopReq(
        header=header(),
        display_parameters=ct.DisplayParameters(present_soc=55, charging_complete=False),
        meter_info_requested=False,
        ev_present_voltage=rn(768.4),
        cl_req_control_mode=mode,
    )


def dc_charge_loop_res() -> dc.DcChargeLoopRes:
    mode = dc.BptDynamicDcClResControlMode(
        evse_maximum_charge_power=rn(3_750_000),
        evse_minimum_charge_power=rn(5_000),
        evse_maximum_charge_current=rn(3000),
        evse_maximum_voltage=rn(1250),
        evse_maximum_discharge_power=rn(3_750_000),
        evse_minimum_discharge_power=rn(5_000),
        evse_maximum_discharge_current=rn(3000),
        evse_minimum_voltage=rn(200),
    )
    return dc.DcChargeLoopRes(
        header=header(),
        response_code=ct.ResponseCode.OK,
        evse_status=ct.EvseStatus(notification_max_delay=0, evse_notification=ct.EvseNotification.ExitStandby),
        meter_info=ct.MeterInfo(
            meter_id="MCS-DEPOT-7", charged_energy_reading_wh=123_456_789, bpt_discharged_energy_reading_wh=2_345_678
        ),
        evse_present_current=rn(976.5),
        evse_present_voltage=rn(768.4),
        evse_power_limit_achieved=False,
        evse_current_limit_achieved=False,
        evse_voltage_limit_achieved=False,
        cl_res_control_mode=mode,
    )


def _schedule(anchor: int, kw: list[int]) -> cm.ChargingSchedule:
    entries = [cm.PowerScheduleEntry(duration=1800, power=rn(p * 1000)) for p in kw]
    power = cm.PowerSchedule(
        time_anchor=anchor, power_schedule_entries=cm.PowerScheduleEntryList(power_schedule_entry=entries)
    )
    return cm.ChargingSchedule(power_schedule=power)


def schedule_exchange_res() -> cm.ScheduleExchangeRes:
    """Scheduled control: 2 schedule tuples of 12 half-hour entries (charge and discharge)."""
    charge = [750, 750, 600, 400, 400, 0, 0, 300, 750, 750, 500, 200]
    discharge = [0, 0, 0, 0, 250, 750, 750, 0, 0, 0, 0, 0]
    tuples = [
        cm.ScheduleTuple(
            schedule_tuple_id=1,
            charging_schedule=_schedule(TIMESTAMP, charge),
            discharging_schedule=_schedule(TIMESTAMP, discharge),
        ),
        cm.ScheduleTuple(schedule_tuple_id=2, charging_schedule=_schedule(TIMESTAMP, list(reversed(charge)))),
    ]
    return cm.ScheduleExchangeRes(
        header=header(),
        response_code=ct.ResponseCode.OK,
        evse_processing=ct.Processing.Finished,
        scheduled_se_res_control_mode=cm.ScheduledSeResControlMode(schedule_tuple=tuples),
    )


BENCH_MESSAGES = {
    "SessionSetupReq": session_setup_req,
    "DC_ChargeParameterDiscoveryReq (BPT)": dc_charge_parameter_discovery_req,
    "DC_ChargeLoopReq (BPT dynamic)": dc_charge_loop_req,
    "DC_ChargeLoopRes": dc_charge_loop_res,
    "ScheduleExchangeRes (2x12)": schedule_exchange_res,
}


def grown_schedule_exchange_res(entries: int) -> cm.ScheduleExchangeRes:
    """ScheduleExchangeRes of 2 schedule tuples of `entries` power entries each (at most 1,024): a big message
    of many small elements. Durations and powers need two octets, as real schedules do."""
    res = schedule_exchange_res()
    for n, tup in enumerate(res.scheduled_se_res_control_mode.schedule_tuple):
        power = [
            cm.PowerScheduleEntry(duration=900 + (i * 97) % 22000, power=rn((i * 37 + n) % 750)) for i in range(entries)
        ]
        tup.charging_schedule.power_schedule.power_schedule_entries.power_schedule_entry = power
        tup.discharging_schedule = None
    return res


def string_table_frame(references: int) -> cm.SessionSetupReq:
    """SessionSetupReq signed over `references` identical references: with the string table on, a frame of
    string-table hits (the URI and the algorithm of every reference after the first)."""
    from stack.messages import xmldsig as ds

    refs = [
        ds.Reference(
            uri="#id1",
            digest_method=ds.DigestMethod(algorithm="http://www.w3.org/2001/04/xmlenc#sha256"),
            digest_value=bytes([i & 0xFF]),
        )
        for i in range(references)
    ]
    signed = ds.SignedInfo(
        canonicalization_method=ds.CanonicalizationMethod(algorithm="http://www.w3.org/TR/canonical-exi/"),
        signature_method=ds.SignatureMethod(algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"),
        reference=refs,
    )
    signature = ds.Signature(signed_info=signed, signature_value=ds.SignatureValue(value=bytes(64)))
    req = session_setup_req()
    req.header.signature = signature
    return req
