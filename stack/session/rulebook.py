"""The -20 DC rulebook: one row per exchange, read by the SECC, the EVCC and the conformance runner.

Each row says in which phases (and services, control modes, authorization modes) a request is allowed, which
phase each outcome leads to, which timers run, how long the EV waits for the response, and which rules the
request and the response must keep. The code of each exchange is in its module under `exchanges/`.

    phase ──request allowed?──► SECC answers ──outcome──► next phase (the same on both sides)

Sources: PROTOCOL.md 4.2 (sequence table), 6.1 (V2G_EVCC_Msg_Timeout per request), 6.2 (other timers).
"""

from __future__ import annotations

from collections.abc import Iterator

from stack.messages import app_protocol as ap
from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc

from .conduct import CONDUCT_RULES
from .exchange import Exchange
from .exchanges import (
    authorization,
    cable_check,
    certificate_installation,
    charge_loop,
    charge_parameters,
    metering_confirmation,
    power_delivery,
    pre_charge,
    sap,
    schedule_exchange,
    service_selection,
    session_setup,
    session_stop,
    welding_detection,
)
from .rules import ANSWERS_THE_REQUEST, NOT_A_REQUEST, SEQUENCE, TIMER_RULES, Rule, response_in_session, same_session
from .state import Outcome, Phase, SessionState
from .timers import TimerId

P = Phase
O = Outcome  # noqa: E741
COMMON, DC = "iso20-common", "iso20-dc"

# SessionStopReq is accepted in every phase after SessionSetup (PROTOCOL.md 4.2)
IN_SESSION = frozenset(set(Phase) - {P.START, P.SAP_DONE, P.ENDED})

EXCHANGES: tuple[Exchange, ...] = (
    Exchange(
        "supportedAppProtocolReq",
        ap.SupportedAppProtocolReq,
        ap.SupportedAppProtocolRes,
        "appProtocol",
        allowed_in=frozenset({P.START}),
        next_phase={O.OK: P.SAP_DONE},
        evcc_timeout=2.0,
        handlers=sap.SUPPORTED_APP_PROTOCOL,
        response_rules=(sap.schema_id_offered,),
        decisions=(sap.NO_COMMON_PROTOCOL,),
        evcc_guard=TimerId.EVCC_COMMUNICATION_SETUP,
        in_session=False,
    ),
    Exchange(
        "SessionSetupReq",
        cm.SessionSetupReq,
        cm.SessionSetupRes,
        COMMON,
        allowed_in=frozenset({P.SAP_DONE}),
        next_phase={O.NEW_SESSION: P.SESSION, O.RESUMED: P.SELECTED},
        evcc_timeout=2.0,
        handlers=session_setup.SESSION_SETUP,
        response_rules=(session_setup.session_id_allocated,),
        evcc_guard=TimerId.EVCC_COMMUNICATION_SETUP,
        in_session=False,
    ),
    Exchange(
        "AuthorizationSetupReq",
        cm.AuthorizationSetupReq,
        cm.AuthorizationSetupRes,
        COMMON,
        allowed_in=frozenset({P.SESSION}),
        next_phase={O.OK: P.AUTHORIZATION_SETUP},
        evcc_timeout=2.0,
        handlers=authorization.AUTHORIZATION_SETUP,
    ),
    Exchange(
        "AuthorizationReq",
        cm.AuthorizationReq,
        cm.AuthorizationRes,
        COMMON,
        allowed_in=frozenset({P.AUTHORIZATION_SETUP, P.AUTHORIZATION_ONGOING}),
        next_phase={O.ONGOING: P.AUTHORIZATION_ONGOING, O.OK: P.AUTHORIZED, O.REFUSED: P.AUTHORIZATION_SETUP},
        evcc_timeout=2.0,
        handlers=authorization.AUTHORIZATION,
        request_rules=(
            authorization.selected_authorization_offered,
            authorization.mode_element_of_the_selection,
            authorization.challenge_answered,
            authorization.pnc_request_signed,
        ),
        decisions=(
            authorization.EIM_REFUSED,
            authorization.PNC_SIGNATURE_INVALID,
            authorization.PNC_REFUSED,
            *authorization.CONTRACT_REFUSED.values(),
        ),
        evcc_guard=TimerId.EVCC_ONGOING,
        secc_guard=TimerId.SECC_EIM_ONGOING,
    ),
    Exchange(
        "CertificateInstallationReq",
        cm.CertificateInstallationReq,
        cm.CertificateInstallationRes,
        COMMON,
        allowed_in=frozenset({P.AUTHORIZATION_SETUP}),
        next_phase={},
        evcc_timeout=5.0,
        handlers=certificate_installation.CERTIFICATE_INSTALLATION,
        request_rules=(
            certificate_installation.installation_offered,
            certificate_installation.installation_request_signed,
        ),
        response_rules=(certificate_installation.one_key_of_the_curve,),
        decisions=(certificate_installation.OEM_SIGNATURE_INVALID, *certificate_installation.BACKEND_REFUSED.values()),
        evcc_guard=TimerId.EVCC_ONGOING,
        secc_guard=TimerId.SECC_ONGOING,
    ),
    Exchange(
        "ServiceDiscoveryReq",
        cm.ServiceDiscoveryReq,
        cm.ServiceDiscoveryRes,
        COMMON,
        allowed_in=frozenset({P.AUTHORIZED}),
        next_phase={O.OK: P.DISCOVERED},
        evcc_timeout=2.0,
        handlers=service_selection.SERVICE_DISCOVERY,
        response_rules=(service_selection.offer_within_supported_ids,),
        decisions=(service_selection.NO_COMMON_SERVICE,),
    ),
    Exchange(
        "ServiceDetailReq",
        cm.ServiceDetailReq,
        cm.ServiceDetailRes,
        COMMON,
        allowed_in=frozenset({P.DISCOVERED, P.DETAILED}),
        next_phase={O.OK: P.DETAILED},
        evcc_timeout=5.0,
        handlers=service_selection.SERVICE_DETAIL,
        request_rules=(service_selection.detail_of_an_offered_service,),
        response_rules=(service_selection.detail_of_the_requested_service,),
    ),
    Exchange(
        "ServiceSelectionReq",
        cm.ServiceSelectionReq,
        cm.ServiceSelectionRes,
        COMMON,
        allowed_in=frozenset({P.DETAILED}),
        next_phase={O.OK: P.SELECTED},
        evcc_timeout=2.0,
        handlers=service_selection.SERVICE_SELECTION,
        request_rules=(
            service_selection.selected_service_offered,
            service_selection.selected_parameter_set_offered,
            service_selection.no_value_added_service,
        ),
    ),
    Exchange(
        "DC_ChargeParameterDiscoveryReq",
        dc.DcChargeParameterDiscoveryReq,
        dc.DcChargeParameterDiscoveryRes,
        DC,
        allowed_in=frozenset({P.SELECTED}),
        next_phase={O.OK: P.CHARGE_PARAMETERS},
        evcc_timeout=2.0,
        handlers=charge_parameters.CHARGE_PARAMETER_DISCOVERY,
        request_rules=(charge_parameters.mode_fits_the_service, charge_parameters.limits_are_magnitudes),
        response_rules=(charge_parameters.response_mode_fits_the_service,),
    ),
    Exchange(
        "ScheduleExchangeReq",
        cm.ScheduleExchangeReq,
        cm.ScheduleExchangeRes,
        COMMON,
        allowed_in=frozenset({P.CHARGE_PARAMETERS, P.SCHEDULE_ONGOING, P.RENEGOTIATION}),
        next_phase={O.ONGOING: P.SCHEDULE_ONGOING, O.OK: P.SCHEDULED},
        evcc_timeout=2.0,
        handlers=schedule_exchange.SCHEDULE_EXCHANGE,
        request_rules=(schedule_exchange.control_mode_fits,),
        response_rules=(schedule_exchange.response_control_mode_fits,),
        evcc_guard=TimerId.EVCC_ONGOING,
        secc_guard=TimerId.SECC_ONGOING,
    ),
    Exchange(
        "DC_CableCheckReq",
        dc.DcCableCheckReq,
        dc.DcCableCheckRes,
        DC,
        allowed_in=frozenset({P.SCHEDULED, P.CABLE_CHECK_ONGOING}),
        next_phase={O.ONGOING: P.CABLE_CHECK_ONGOING, O.OK: P.CABLE_CHECKED},
        evcc_timeout=2.0,
        handlers=cable_check.CABLE_CHECK,
        decisions=(cable_check.INSULATION_FAULT,),
        evcc_guard=TimerId.EVCC_CABLE_CHECK,
        secc_guard=TimerId.SECC_ONGOING,
    ),
    Exchange(
        "DC_PreChargeReq",
        dc.DcPreChargeReq,
        dc.DcPreChargeRes,
        DC,
        allowed_in=frozenset({P.CABLE_CHECKED, P.PRE_CHARGE}),
        next_phase={O.OK: P.PRE_CHARGE},
        evcc_timeout=2.0,
        handlers=pre_charge.PRE_CHARGE,
        request_rules=(pre_charge.sane_target_voltage,),
        evcc_guard=TimerId.EVCC_PRE_CHARGE,
    ),
    Exchange(
        "PowerDeliveryReq",
        cm.PowerDeliveryReq,
        cm.PowerDeliveryRes,
        COMMON,
        # [V2G20-2122]: after ScheduleExchange the EV may go straight to PowerDelivery (pause, standby)
        allowed_in=frozenset({P.SCHEDULED, P.PRE_CHARGE, P.POWER_ON, P.CHARGE_LOOP}),
        next_phase={O.START: P.POWER_ON, O.STOP: P.POWER_OFF, O.RENEGOTIATE: P.RENEGOTIATION},
        evcc_timeout=2.0,
        handlers=power_delivery.POWER_DELIVERY,
        request_rules=(
            power_delivery.start_after_cable_check_and_pre_charge,
            power_delivery.selected_schedule_offered,
            power_delivery.renegotiation_from_the_charge_loop,
        ),
        decisions=(power_delivery.CONTACTOR_ERROR, power_delivery.STANDBY_NOT_ALLOWED),
    ),
    Exchange(
        "DC_ChargeLoopReq",
        dc.DcChargeLoopReq,
        dc.DcChargeLoopRes,
        DC,
        allowed_in=frozenset({P.POWER_ON, P.CHARGE_LOOP}),
        next_phase={O.OK: P.CHARGE_LOOP},
        evcc_timeout=0.5,
        handlers=charge_loop.CHARGE_LOOP,
        request_rules=(charge_loop.control_mode_fits, charge_loop.limits_are_magnitudes),
        response_rules=(charge_loop.response_control_mode_fits,),
    ),
    Exchange(
        "MeteringConfirmationReq",
        cm.MeteringConfirmationReq,
        cm.MeteringConfirmationRes,
        COMMON,  # on the main stream: see metering_confirmation.py for 0x8102
        allowed_in=frozenset({P.CHARGE_LOOP}),  # asked for in DC_ChargeLoopRes
        next_phase={},
        evcc_timeout=2.0,
        handlers=metering_confirmation.METERING_CONFIRMATION,
        request_rules=(
            metering_confirmation.in_a_pnc_session,
            metering_confirmation.metering_signed,
            metering_confirmation.signed_for_this_session,
            metering_confirmation.control_mode_fits,
        ),
        decisions=(metering_confirmation.SIGNATURE_INVALID, metering_confirmation.METER_INFO_MISMATCH),
    ),
    Exchange(
        "DC_WeldingDetectionReq",
        dc.DcWeldingDetectionReq,
        dc.DcWeldingDetectionRes,
        DC,
        allowed_in=frozenset({P.POWER_OFF, P.WELDING_DETECTION}),
        next_phase={O.OK: P.WELDING_DETECTION},
        evcc_timeout=2.0,
        handlers=welding_detection.WELDING_DETECTION,
        evcc_guard=TimerId.EVCC_WELDING_DETECTION,
    ),
    Exchange(
        "SessionStopReq",
        cm.SessionStopReq,
        cm.SessionStopRes,
        COMMON,
        allowed_in=IN_SESSION,
        next_phase={O.TERMINATE: P.ENDED, O.PAUSE: P.ENDED, O.SERVICE_RENEGOTIATION: P.AUTHORIZED},
        evcc_timeout=2.0,
        handlers=session_stop.SESSION_STOP,
        request_rules=(session_stop.renegotiation_after_authorization, session_stop.renegotiation_offered),
        decisions=(session_stop.PAUSE_NOT_ALLOWED,),
    ),
)

BY_NAME = {x.name: x for x in EXCHANGES}
BY_REQUEST: dict[type, Exchange] = {x.request: x for x in EXCHANGES}
BY_RESPONSE: dict[type, Exchange] = {x.response: x for x in EXCHANGES}
REQUESTS_BEFORE_SESSION = frozenset({ap.SupportedAppProtocolReq, cm.SessionSetupReq})


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
        return BY_RESPONSE[cls].response_name
    return cls.__name__


def allowed(phase: Phase, request_name: str) -> bool:
    """Whether the flow table allows this request in this phase (services and modes aside)."""
    return phase in BY_NAME[request_name].allowed_in


def broken_request_rule(exchange: Exchange, state: SessionState, request: object) -> Rule | None:
    """The first rule a request breaks, in the order the SECC checks them: the session first (an unknown
    session wins over a sequence error, as in JOSEV and LIB15118), then the sequence, then the exchange's own."""
    if exchange.in_session and not same_session.holds(state, request):
        return same_session
    if not exchange.allowed(state):
        return SEQUENCE
    return next((rule for rule in exchange.request_rules if not rule.holds(state, request)), None)


def broken_response_rule(exchange: Exchange, state: SessionState, request: object, response: object) -> Rule | None:
    """The first rule a response breaks (the EVCC checks; our SECC checks its own before sending)."""
    rules = (response_in_session, *exchange.response_rules) if exchange.in_session else exchange.response_rules
    return next((rule for rule in rules if not rule.holds(state, request, response)), None)


def all_rules() -> Iterator[Rule]:
    """Every rule of the rulebook, once."""
    seen: set[str] = set()
    generic = (NOT_A_REQUEST, same_session, SEQUENCE, ANSWERS_THE_REQUEST, response_in_session)
    rows = (r for x in EXCHANGES for r in (*x.request_rules, *x.response_rules, *x.decisions))
    for rule in (*generic, *rows, *TIMER_RULES.values(), *CONDUCT_RULES):
        if rule.id not in seen:
            seen.add(rule.id)
            yield rule
