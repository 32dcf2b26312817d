"""DC_ChargeParameterDiscoveryReq/Res: both sides' limits (PROTOCOL.md 4.3), and their conversions."""

from __future__ import annotations

from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct

from ..controller import PowerLimits
from ..exchange import Answer, EvccContext, Handlers, SeccContext, SendNext, Step
from ..rules import request_rule, response_rule
from ..state import Outcome, SessionState
from ..units import non_negative
from .common import code_outcome, header
from .limits import CHARGE_PARAMETERS, DISCHARGE_PARAMETERS, VOLTAGES, from_wire, to_wire

RC = ct.ResponseCode


@request_rule(
    "V2G20-2272", RC.FAILED_WrongChargeParameter, "PROTOCOL.md 4.3 and 7 (LIB15118 dc_charge_parameter_discovery)"
)
def mode_fits_the_service(state: SessionState, req: dc.DcChargeParameterDiscoveryReq) -> bool:
    """The EV sends the BPT energy-transfer mode for a BPT service and the plain one otherwise."""
    return isinstance(req.dc_cpd_req_energy_transfer_mode, dc.BptDcCpdReqEnergyTransferMode) == state.bpt


@request_rule("MV-CPD-LIMITS", RC.FAILED_WrongChargeParameter, "PROTOCOL.md 4.3 (limits are magnitudes; ours)")
def limits_are_magnitudes(state: SessionState, req: dc.DcChargeParameterDiscoveryReq) -> bool:
    """The EV's charge limits are finite and not negative (a negative limit is refused, not guessed at)."""
    ev = limits_of_request(req.dc_cpd_req_energy_transfer_mode)
    return non_negative(ev.max_charge_power, ev.max_charge_current, ev.max_voltage, ev.min_voltage)


@response_rule("MV-CPD-RESPONSE-MODE", "PROTOCOL.md 4.3 (the SECC's mode mirrors the service, LIB15118)")
def response_mode_fits_the_service(
    state: SessionState, req: dc.DcChargeParameterDiscoveryReq, res: dc.DcChargeParameterDiscoveryRes
) -> bool:
    """The SECC answers with the BPT energy-transfer mode for a BPT service and the plain one otherwise."""
    return isinstance(res.dc_cpd_res_energy_transfer_mode, dc.BptDcCpdResEnergyTransferMode) == state.bpt


# -- conversions ------------------------------------------------------------------------------------------------


CPD_LIMITS = (*CHARGE_PARAMETERS, *VOLTAGES)


def request_mode(
    limits: PowerLimits, bpt: bool, target_soc: int | None, negative: bool
) -> dc.DcCpdReqEnergyTransferMode | dc.BptDcCpdReqEnergyTransferMode:
    if not bpt:
        return dc.DcCpdReqEnergyTransferMode(**to_wire("ev", limits, CPD_LIMITS, negative), target_soc=target_soc)
    names = (*CPD_LIMITS, *DISCHARGE_PARAMETERS)
    return dc.BptDcCpdReqEnergyTransferMode(**to_wire("ev", limits, names, negative), target_soc=target_soc)


def limits_of_request(mode: dc.DcCpdReqEnergyTransferMode | dc.BptDcCpdReqEnergyTransferMode) -> PowerLimits:
    return from_wire("ev", mode)


def response_mode(
    limits: PowerLimits, bpt: bool, negative: bool
) -> dc.DcCpdResEnergyTransferMode | dc.BptDcCpdResEnergyTransferMode:
    if not bpt:
        return dc.DcCpdResEnergyTransferMode(**to_wire("evse", limits, CPD_LIMITS, negative))
    return dc.BptDcCpdResEnergyTransferMode(**to_wire("evse", limits, (*CPD_LIMITS, *DISCHARGE_PARAMETERS), negative))


def limits_of_response(mode: dc.DcCpdResEnergyTransferMode | dc.BptDcCpdResEnergyTransferMode) -> PowerLimits:
    return from_wire("evse", mode)


# -- handlers ---------------------------------------------------------------------------------------------------


def answer(secc: SeccContext, req: dc.DcChargeParameterDiscoveryReq, now: float) -> Answer:
    state = secc.state
    ev = limits_of_request(req.dc_cpd_req_energy_transfer_mode)
    evse = secc.controller.charge_parameters(state.selected[0], ev, now)
    secc.evse_limits = evse
    return Answer(
        dc.DcChargeParameterDiscoveryRes(
            header=header(state.session_id, now),
            response_code=RC.OK,
            dc_cpd_res_energy_transfer_mode=response_mode(evse, state.bpt, secc.config.negative_discharge),
        )
    )


def outcome(req: dc.DcChargeParameterDiscoveryReq, res: dc.DcChargeParameterDiscoveryRes) -> Outcome:
    return code_outcome(res.response_code) or Outcome.OK


def build(ev: EvccContext, now: float) -> dc.DcChargeParameterDiscoveryReq:
    state = ev.state
    asked = ev.controller.charge_parameters(state.selected[0], now)
    mode = request_mode(asked.limits, state.bpt, asked.target_soc, ev.config.negative_discharge)
    return dc.DcChargeParameterDiscoveryReq(header=header(state.session_id, now), dc_cpd_req_energy_transfer_mode=mode)


def react(
    ev: EvccContext,
    req: dc.DcChargeParameterDiscoveryReq,
    res: dc.DcChargeParameterDiscoveryRes,
    result: Outcome,
    now: float,
) -> Step:
    ev.evse_limits = limits_of_response(res.dc_cpd_res_energy_transfer_mode)
    return SendNext(cm.ScheduleExchangeReq)


CHARGE_PARAMETER_DISCOVERY = Handlers(answer=answer, outcome=outcome, build=build, react=react)
