"""The ISO 15118-20 DC message flow, as tables shared by the SECC and the EVCC machines.

One table says which request may follow in which phase (PROTOCOL.md 4.2); both machines use it, so the EVCC
never sends what the SECC would reject. Another lists each request with its response class, its schema set
(which picks the V2GTP payload type) and the EVCC's response timeout (PROTOCOL.md 6.1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from stack.messages import app_protocol as ap
from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc

DC_NAMESPACE = "urn:iso:std:iso:15118:-20:DC"  # SAP namespace of -20 DC; MCS negotiates its service later
NEW_SESSION = bytes(8)  # the SessionID of a SessionSetupReq that asks for a new session


def ends_session(code: object) -> bool:
    """A FAILED response code ends the session (LIB15118: codes >= FAILED); SAP's Failed_NoNegotiation too."""
    return code is not None and str(code).lower().startswith("failed")


class Phase(StrEnum):
    """Where a session stands: named after the last exchange and its outcome."""

    START = "start"
    SAP_DONE = "sap_done"
    SESSION = "session"
    AUTHORIZATION_SETUP = "authorization_setup"
    AUTHORIZATION_ONGOING = "authorization_ongoing"
    AUTHORIZED = "authorized"
    DISCOVERED = "discovered"
    DETAILED = "detailed"
    SELECTED = "selected"
    CHARGE_PARAMETERS = "charge_parameters"
    SCHEDULE_ONGOING = "schedule_ongoing"
    SCHEDULED = "scheduled"
    CABLE_CHECK_ONGOING = "cable_check_ongoing"
    CABLE_CHECKED = "cable_checked"
    PRE_CHARGE = "pre_charge"
    POWER_ON = "power_on"
    CHARGE_LOOP = "charge_loop"
    RENEGOTIATION = "renegotiation"
    POWER_OFF = "power_off"
    WELDING_DETECTION = "welding_detection"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Exchange:
    """A request/response pair of the -20 DC flow."""

    name: str  # XSD element name of the request
    request: type
    response: type
    schema: str
    evcc_timeout: float  # V2G_EVCC_Msg_Timeout in seconds (PROTOCOL.md 6.1)

    @property
    def key(self) -> str:
        """Python-style name of the exchange: `DC_ChargeLoopReq` -> `dc_charge_loop`."""
        name = self.name[: -len("Req")]
        words = re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+", name.replace("_", " "))
        return "_".join(w.lower() for w in words)


EXCHANGES = (
    Exchange("supportedAppProtocolReq", ap.SupportedAppProtocolReq, ap.SupportedAppProtocolRes, "appProtocol", 2.0),
    Exchange("SessionSetupReq", cm.SessionSetupReq, cm.SessionSetupRes, "iso20-common", 2.0),
    Exchange("AuthorizationSetupReq", cm.AuthorizationSetupReq, cm.AuthorizationSetupRes, "iso20-common", 2.0),
    Exchange("AuthorizationReq", cm.AuthorizationReq, cm.AuthorizationRes, "iso20-common", 2.0),
    Exchange("ServiceDiscoveryReq", cm.ServiceDiscoveryReq, cm.ServiceDiscoveryRes, "iso20-common", 2.0),
    Exchange("ServiceDetailReq", cm.ServiceDetailReq, cm.ServiceDetailRes, "iso20-common", 5.0),
    Exchange("ServiceSelectionReq", cm.ServiceSelectionReq, cm.ServiceSelectionRes, "iso20-common", 2.0),
    Exchange(
        "DC_ChargeParameterDiscoveryReq",
        dc.DcChargeParameterDiscoveryReq,
        dc.DcChargeParameterDiscoveryRes,
        "iso20-dc",
        2.0,
    ),
    Exchange("ScheduleExchangeReq", cm.ScheduleExchangeReq, cm.ScheduleExchangeRes, "iso20-common", 2.0),
    Exchange("DC_CableCheckReq", dc.DcCableCheckReq, dc.DcCableCheckRes, "iso20-dc", 2.0),
    Exchange("DC_PreChargeReq", dc.DcPreChargeReq, dc.DcPreChargeRes, "iso20-dc", 2.0),
    Exchange("PowerDeliveryReq", cm.PowerDeliveryReq, cm.PowerDeliveryRes, "iso20-common", 2.0),
    Exchange("DC_ChargeLoopReq", dc.DcChargeLoopReq, dc.DcChargeLoopRes, "iso20-dc", 0.5),
    Exchange("DC_WeldingDetectionReq", dc.DcWeldingDetectionReq, dc.DcWeldingDetectionRes, "iso20-dc", 2.0),
    Exchange("SessionStopReq", cm.SessionStopReq, cm.SessionStopRes, "iso20-common", 2.0),
)
BY_NAME = {x.name: x for x in EXCHANGES}
BY_REQUEST = {x.request: x for x in EXCHANGES}
BY_RESPONSE = {x.response: x for x in EXCHANGES}

_STOP = "SessionStopReq"

# phase -> requests the SECC accepts next (PROTOCOL.md 4.2); anything else is FAILED_SequenceError
ALLOWED: dict[Phase, frozenset[str]] = {
    Phase.START: frozenset({"supportedAppProtocolReq"}),
    Phase.SAP_DONE: frozenset({"SessionSetupReq"}),
    Phase.SESSION: frozenset({"AuthorizationSetupReq", _STOP}),
    Phase.AUTHORIZATION_SETUP: frozenset({"AuthorizationReq", _STOP}),
    Phase.AUTHORIZATION_ONGOING: frozenset({"AuthorizationReq", _STOP}),
    Phase.AUTHORIZED: frozenset({"ServiceDiscoveryReq", _STOP}),
    Phase.DISCOVERED: frozenset({"ServiceDetailReq", _STOP}),
    Phase.DETAILED: frozenset({"ServiceDetailReq", "ServiceSelectionReq", _STOP}),
    Phase.SELECTED: frozenset({"DC_ChargeParameterDiscoveryReq", _STOP}),
    Phase.CHARGE_PARAMETERS: frozenset({"ScheduleExchangeReq", _STOP}),
    Phase.SCHEDULE_ONGOING: frozenset({"ScheduleExchangeReq", _STOP}),
    # [V2G20-2122]: after ScheduleExchange the EV may go straight to PowerDelivery (pause, standby)
    Phase.SCHEDULED: frozenset({"DC_CableCheckReq", "PowerDeliveryReq", _STOP}),
    Phase.CABLE_CHECK_ONGOING: frozenset({"DC_CableCheckReq", _STOP}),
    Phase.CABLE_CHECKED: frozenset({"DC_PreChargeReq", _STOP}),
    Phase.PRE_CHARGE: frozenset({"DC_PreChargeReq", "PowerDeliveryReq", _STOP}),
    Phase.POWER_ON: frozenset({"DC_ChargeLoopReq", "PowerDeliveryReq", _STOP}),
    Phase.CHARGE_LOOP: frozenset({"DC_ChargeLoopReq", "PowerDeliveryReq", _STOP}),
    Phase.RENEGOTIATION: frozenset({"ScheduleExchangeReq", _STOP}),
    Phase.POWER_OFF: frozenset({"DC_WeldingDetectionReq", _STOP}),
    Phase.WELDING_DETECTION: frozenset({"DC_WeldingDetectionReq", _STOP}),
    Phase.ENDED: frozenset(),
}


def allowed(phase: Phase, request_name: str) -> bool:
    return request_name in ALLOWED[phase]


def exchange_of(message: object) -> Exchange:
    """The exchange a request or response belongs to."""
    cls = type(message)
    found = BY_REQUEST.get(cls) or BY_RESPONSE.get(cls)
    if found is None:
        raise KeyError(f"{cls.__name__} is not part of the -20 DC flow")
    return found


def message_name(message: object) -> str:
    """The XSD element name of a -20 message (`DC_ChargeLoopRes`), or its class name."""
    cls = type(message)
    if cls in BY_REQUEST:
        return BY_REQUEST[cls].name
    if cls in BY_RESPONSE:
        return BY_RESPONSE[cls].name[:-3] + "Res"
    return cls.__name__
