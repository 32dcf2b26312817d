"""PowerLimits through the limit elements of every DC message and back: the one conversion table."""

from __future__ import annotations

import pytest

from examples.minimal_controllers import MCS_CHARGER, MCS_TRUCK
from stack import exi
from stack.messages import iso20_dc as dc
from stack.session.controller import ChargeLoopOutput, EvLoopStep
from stack.session.exchanges import charge_loop, charge_parameters
from stack.session.services import ControlMode


@pytest.mark.parametrize("negative", [False, True], ids=["positive discharge", "negative discharge"])
@pytest.mark.parametrize("bpt", [False, True], ids=["DC", "BPT"])
def test_charge_parameter_limits_round_trip(bpt: bool, negative: bool) -> None:
    request = charge_parameters.request_mode(MCS_TRUCK, bpt, 90, negative)
    response = charge_parameters.response_mode(MCS_CHARGER, bpt, negative)
    if negative and bpt:
        assert request.ev_maximum_discharge_power.value < 0 and response.evse_minimum_discharge_power.value < 0
    expected_ev = MCS_TRUCK if bpt else MCS_TRUCK.unidirectional()
    expected_evse = MCS_CHARGER if bpt else MCS_CHARGER.unidirectional()
    assert charge_parameters.limits_of_request(request) == expected_ev
    assert charge_parameters.limits_of_response(response) == expected_evse


@pytest.mark.parametrize("mode", list(ControlMode), ids=lambda m: m.name.lower())
@pytest.mark.parametrize("bpt", [False, True], ids=["DC", "BPT"])
def test_charge_loop_limits_round_trip_through_exi(mode: ControlMode, bpt: bool) -> None:
    step = EvLoopStep(present_voltage=760.0, target_current=500.0, target_voltage=870.0, limits=MCS_TRUCK)
    header = charge_parameters.header(bytes(8), 0)
    req = dc.DcChargeLoopReq(
        header=header,
        meter_info_requested=False,
        ev_present_voltage=charge_loop.rn(760.0),
        cl_req_control_mode=charge_loop.loop_request(mode, bpt, step),
    )
    req = exi.decode(exi.encode(req), "iso20-dc")
    got = charge_loop.loop_input(req, mode).ev_limits
    # the loop request carries no minimum charge current nor minimum discharge current (XSD)
    assert got.max_charge_power == MCS_TRUCK.max_charge_power and got.min_charge_current == 0.0
    assert got.max_discharge_current == (MCS_TRUCK.max_discharge_current if bpt else None)
    assert got.min_discharge_current is None
    out = ChargeLoopOutput(present_voltage=760.0, present_current=500.0, limits=MCS_CHARGER)
    mode_element = charge_loop.response_mode(mode, bpt, out)
    feedback = charge_loop.feedback_of_response(
        dc.DcChargeLoopRes(
            header=header,
            response_code="OK",
            evse_present_current=charge_loop.rn(500.0),
            evse_present_voltage=charge_loop.rn(760.0),
            evse_power_limit_achieved=False,
            evse_current_limit_achieved=False,
            evse_voltage_limit_achieved=False,
            cl_res_control_mode=mode_element,
        )
    )
    assert feedback.limits.max_charge_current == MCS_CHARGER.max_charge_current
    assert feedback.limits.max_discharge_power == (MCS_CHARGER.max_discharge_power if bpt else None)
    assert feedback.limits.min_voltage == (MCS_CHARGER.min_voltage if bpt else 0.0)
