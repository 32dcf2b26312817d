"""SECC and EVCC machines against each other in virtual time: every DC-family service and control mode."""

from __future__ import annotations

import pytest

from examples.minimal_controllers import MinimalEv, MinimalEvse
from stack.session.evcc import EvccSession
from stack.session.secc import SeccSession
from stack.session.services import ControlMode, ServiceId
from stack.transport.link import VirtualLink

FLOW = [
    "SupportedAppProtocolReq",
    "SessionSetupReq",
    "AuthorizationSetupReq",
    "AuthorizationReq",
    "ServiceDiscoveryReq",
    "ServiceDetailReq",
    "ServiceSelectionReq",
    "DcChargeParameterDiscoveryReq",
    "ScheduleExchangeReq",
    "DcCableCheckReq",
    "DcCableCheckReq",
    "DcPreChargeReq",
    "DcPreChargeReq",
    "PowerDeliveryReq",
    *["DcChargeLoopReq"] * 10,
    "PowerDeliveryReq",
    "DcWeldingDetectionReq",
    "SessionStopReq",
]


@pytest.mark.parametrize("mode", list(ControlMode), ids=lambda m: m.name.lower())
@pytest.mark.parametrize(
    "service", [ServiceId.DC, ServiceId.DC_BPT, ServiceId.MCS, ServiceId.MCS_BPT], ids=lambda s: s.name
)
def test_full_session(service: ServiceId, mode: ControlMode) -> None:
    ev = MinimalEv(service=service, control_mode=mode)
    evse = MinimalEvse()
    evcc, secc = EvccSession(ev), SeccSession(evse)
    transcript = VirtualLink(evcc, secc).run()
    assert transcript.names("ev->evse") == FLOW
    assert transcript.ev_close.ok and transcript.evse_close.ok
    assert not transcript.violations()
    assert evcc.service is service and secc.service is service
    assert secc.parameter_set.control_mode is mode
    assert len(secc.session_id) == 8 and secc.session_id != bytes(8)
    assert evse.loops == 10
