"""Truck under test, the tester as the charger: whole sessions per service and control mode, every request rule
the charger checks (our SeccSession finds the broken one), and the EV's supportedAppProtocol offer.

Each case plays a normal session with our SeccSession as the charger; its Violations in the trace are the truck's
faults. The breakers are our EV played by the driver, one request changed (`mutate`/`replace` on the EV side).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from stack.messages import app_protocol as ap
from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct
from stack.messages._schema import XsdType
from stack.messages.minimal import minimal
from stack.session import conduct
from stack.session.config import DC_NAMESPACE, SeccConfig
from stack.session.exchanges import (
    authorization,
    charge_loop,
    charge_parameters,
    power_delivery,
    pre_charge,
    schedule_exchange,
    service_selection,
    session_stop,
)
from stack.session.exchanges.common import header
from stack.session.reference import MinimalEvse
from stack.session.rules import NOT_A_REQUEST, SEQUENCE, TIMER_RULES, Rule, same_session
from stack.session.secc import SeccSession
from stack.session.services import ControlMode, ServiceId, ServiceOffer, dc_offer
from stack.session.timers import TimerId

from ..bench import Bench
from ..case import Breaker, Case, Needs
from ..driver import Fault, Script, play
from ..judges import code_of, no_violation
from ..trace import Trace
from ..verdict import Verdict, failed, passed
from .common import FOREIGN_SESSION_ID, MODES, SERVICES, continue_with, request_like, with_session

SEQUENCE_TIMEOUT = TIMER_RULES[TimerId.SECC_SEQUENCE].id
SESSION_STOP = conduct.EV_ENDS_WITH_SESSION_STOP.id
EV_USES_OFFER = conduct.EV_USES_OFFER.id
SAP_OFFER = conduct.EV_SAP_OFFER.id
BROKEN_LIMIT = ct.RationalNumber(exponent=0, value=-100)  # a limit that is not a magnitude
PRIORITIES = range(1, 21)


# -- what the EVCC families share ----------------------------------------------------------------------------


def only(service: ServiceId, mode: ControlMode) -> dict[str, Any]:
    """SeccConfig settings that offer one service with one parameter set of `mode`."""
    offers: tuple[ServiceOffer, ...] = (dc_offer(service, (mode,)),)
    return {"offers": offers}


async def serve(bench: Bench, script: Script | None = None, evse: MinimalEvse | None = None, **settings: Any) -> None:
    """Take the truck's connection and play our charger (`evse`, default the reference one) with `script`."""
    conversation = await bench.open()
    machine = SeccSession(evse or MinimalEvse(), SeccConfig(**settings))
    await play(machine, conversation, script or Script())


def whole_session(trace: Trace, charged: tuple[ServiceId, ...] = ()) -> Verdict:
    """Every request kept its rules and came in time, the EV charged with one of the `charged` services (when
    given), and it ended the session with SessionStop."""
    broken = no_violation(trace) or (_charged(trace, charged) if charged else None)
    if broken is not None:
        return broken
    stopped = any(code_of(e).startswith("OK") for e in trace.sent("SessionStopRes"))
    if not trace.received("SessionStopReq") or not stopped:
        ended = trace.ended()
        received = trace.received()
        last = received[-1].name if received else "no request"
        seen = f"{ended.detail if ended else 'no end'} after {last}"
        return failed(SESSION_STOP, "SessionStopReq answered OK at the end", seen, last, ended.t if ended else None)
    return passed()


def breaking(rule: str, *faults: Fault, **settings: Any) -> Breaker:
    """Our EV with these faults (the flow goes on after each) and tester_ev settings."""
    return Breaker(lambda: Script(faults), rule, dict(settings))


def is_start(message: object) -> bool:
    return isinstance(message, cm.PowerDeliveryReq) and message.charge_progress == cm.ChargeProgress.Start


# -- whole sessions -------------------------------------------------------------------------------------------


def _session_breakers() -> tuple[Breaker, ...]:
    """A different broken EV for each session case: the sequence, the SessionID, a limit, the pace, the end."""
    return (
        breaking(SEQUENCE.id, Fault("AuthorizationSetupReq", replace=_instead("ServiceDiscoveryReq"))),
        breaking(same_session.id, continue_with("ServiceDiscoveryReq", mutate=_foreign)),
        breaking("MV-CPD-LIMITS", continue_with("DC_ChargeParameterDiscoveryReq", mutate=_negative_cpd_limit)),
        breaking("MV-CL-LIMITS", continue_with("DC_ChargeLoopReq", nth=2, mutate=_negative_loop_limit)),
        breaking(SEQUENCE_TIMEOUT, continue_with("DC_PreChargeReq", delay=61.0)),
        breaking(SESSION_STOP, Fault("DC_ChargeLoopReq", nth=2, drop=True)),
        breaking(SEQUENCE.id, Fault("DC_CableCheckReq", replace=_instead("DC_PreChargeReq"))),
        breaking(same_session.id, continue_with("DC_ChargeLoopReq", mutate=_foreign)),
    )


def session_cases() -> Iterator[Case]:
    breakers = iter(_session_breakers())
    for service in SERVICES:
        for mode in MODES:
            yield _session_case(service, mode, next(breakers))
    yield _all_offers_case()
    yield _ongoing_case()


def _charged(trace: Trace, services: tuple[ServiceId, ...]) -> Verdict | None:
    """A fail when the truck did not select one of `services` (offered, and in its profile) and charge."""
    chosen = [e.message.selected_energy_transfer_service.service_id for e in trace.received("ServiceSelectionReq")]  # type: ignore[attr-defined]
    if not chosen or chosen[-1] not in {s.value for s in services} or not trace.received("DC_ChargeLoopReq"):
        names = " or ".join(s.name for s in services)
        seen = f"service {chosen[-1]}" if chosen else "no ServiceSelectionReq"
        seen += "" if trace.received("DC_ChargeLoopReq") else ", no charge loop"
        return failed(EV_USES_OFFER, f"{names} selected and the charge loop reached", seen)
    return None


def _leave(message: Any) -> Any:
    """Instead of going on with the services offered: SessionStop Terminate (a truck that leaves)."""
    stop = request_like("SessionStopReq", message.header.session_id)
    return dataclasses.replace(stop, charging_session=cm.ChargingSession.Terminate)


def _all_offers_case() -> Case:
    async def run(bench: Bench) -> Verdict:
        await serve(bench, offers=tuple(dc_offer(s) for s in bench.profile.services))
        return whole_session(bench.trace, charged=bench.profile.services)

    return Case(
        "EVCC-SESSION-ALL-OFFERS",
        "The charger offers every service of the truck's profile in both control modes: the truck picks one and "
        "completes the session, every request keeping its rules and in time, ended with SessionStop",
        "evcc",
        (same_session.id, SEQUENCE.id, SEQUENCE_TIMEOUT, SESSION_STOP, EV_USES_OFFER),
        run,
        breaking(EV_USES_OFFER, Fault("ServiceDetailReq", replace=_leave)),
        tags=("session",),
    )


def _ongoing_case() -> Case:
    async def run(bench: Bench) -> Verdict:
        await serve(bench, evse=MinimalEvse(authorization_steps=3, cable_check_steps=3))
        return whole_session(bench.trace)

    return Case(
        "EVCC-SESSION-ONGOING",
        "The charger answers authorization and cable check Ongoing three times each: the truck repeats the same "
        "request until Finished, then completes the session with SessionStop",
        "evcc",
        (SEQUENCE.id, same_session.id, SEQUENCE_TIMEOUT, SESSION_STOP),
        run,
        breaking(SEQUENCE.id, Fault("AuthorizationReq", nth=2, replace=_instead("ServiceDiscoveryReq"))),
        tags=("session", "ongoing"),
    )


def _session_case(service: ServiceId, mode: ControlMode, breaker: Breaker) -> Case:
    async def run(bench: Bench) -> Verdict:
        await serve(bench, **only(service, mode))
        return whole_session(bench.trace, charged=(service,))

    name = f"{service.name.replace('_', '-')}-{mode.name}"
    rules: tuple[str, ...] = (SEQUENCE.id, same_session.id, SEQUENCE_TIMEOUT, SESSION_STOP, EV_USES_OFFER)
    rules += ("MV-CPD-LIMITS", "MV-CL-LIMITS")
    return Case(
        f"EVCC-SESSION-{name}",
        f"The charger offers only {service.name} in {mode.name.lower()} control: the truck completes a session, "
        "every request in sequence, in its session, keeping its rules and in time, and ends it with SessionStop",
        "evcc",
        rules,
        run,
        breaker,
        Needs(service=service, control_mode=mode),
        ("session", service.name.lower(), mode.name.lower()),
    )


# -- one case per request rule ----------------------------------------------------------------------------------


def _foreign(message: Any) -> Any:
    return with_session(message, FOREIGN_SESSION_ID)


def _instead(name: str) -> Callable[[Any], Any]:
    """A replacement: a schema-valid request of exchange `name` in the same session."""
    return lambda message: request_like(name, message.header.session_id)


def _negative_cpd_limit(message: dc.DcChargeParameterDiscoveryReq) -> Any:
    mode = dataclasses.replace(message.dc_cpd_req_energy_transfer_mode, ev_maximum_charge_current=BROKEN_LIMIT)
    return dataclasses.replace(message, dc_cpd_req_energy_transfer_mode=mode)


def _negative_loop_limit(message: Any) -> Any:
    mode = dataclasses.replace(message.cl_req_control_mode, ev_maximum_charge_current=BROKEN_LIMIT)
    return dataclasses.replace(message, cl_req_control_mode=mode)


def as_class(cls: type[XsdType], element: Any) -> Any:
    """`element` as another class of the same family (shared fields kept, missing mandatory ones minimal)."""
    shared = {f.name: getattr(element, f.name) for f in cls.XSD_FIELDS if hasattr(element, f.name)}
    return minimal(cls, **shared)


def _bpt_parameters(message: dc.DcChargeParameterDiscoveryReq) -> Any:
    mode = as_class(dc.BptDcCpdReqEnergyTransferMode, message.dc_cpd_req_energy_transfer_mode)
    return dataclasses.replace(message, dc_cpd_req_energy_transfer_mode=mode)


def _scheduled_exchange(message: cm.ScheduleExchangeReq) -> Any:
    scheduled = minimal(cm.ScheduledSeReqControlMode)
    return dataclasses.replace(message, dynamic_se_req_control_mode=None, scheduled_se_req_control_mode=scheduled)


def _scheduled_loop(message: dc.DcChargeLoopReq) -> Any:
    return dataclasses.replace(
        message, cl_req_control_mode=as_class(dc.ScheduledDcClReqControlMode, message.cl_req_control_mode)
    )


def _unknown_schedule(message: cm.PowerDeliveryReq) -> Any:
    profile = message.ev_power_profile
    assert profile is not None and profile.scheduled_evppt_control_mode is not None
    chosen = dataclasses.replace(profile.scheduled_evppt_control_mode, selected_schedule_tuple_id=99)
    return dataclasses.replace(
        message, ev_power_profile=dataclasses.replace(profile, scheduled_evppt_control_mode=chosen)
    )


def _start_power(message: Any) -> Any:
    return cm.PowerDeliveryReq(
        header=message.header, ev_processing=ct.Processing.Finished, charge_progress=cm.ChargeProgress.Start
    )


def _renegotiate_service(message: Any) -> Any:
    return cm.SessionStopReq(header=message.header, charging_session=cm.ChargingSession.ServiceRenegotiation)


def _a_response(message: Any) -> Any:
    return minimal(cm.ServiceDiscoveryRes, header=header(message.header.session_id, 0))


def _pnc_element(message: cm.AuthorizationReq) -> Any:
    """EIM selected, the PnC element sent (the XSD choice needs one of the two)."""
    pnc = minimal(cm.PncAReqAuthorizationMode)
    return dataclasses.replace(message, eim_a_req_authorization_mode=None, pnc_a_req_authorization_mode=pnc)


def _set(**fields: Any) -> Callable[[Any], Any]:
    return lambda message: dataclasses.replace(message, **fields)


SCHEDULED_ONLY = only(ServiceId.MCS, ControlMode.SCHEDULED)
DYNAMIC_ONLY = only(ServiceId.MCS, ControlMode.DYNAMIC)
ANY_TRUCK = Needs()
SCHEDULED, DYNAMIC = Needs(control_mode=ControlMode.SCHEDULED), Needs(control_mode=ControlMode.DYNAMIC)
VAS = cm.SelectedServiceList(selected_service=[cm.SelectedService(service_id=65, parameter_set_id=1)])
ZERO = ct.RationalNumber(exponent=0, value=0)


def _other_parameter_set(message: cm.ServiceSelectionReq) -> Any:
    chosen = dataclasses.replace(message.selected_energy_transfer_service, parameter_set_id=99)
    return dataclasses.replace(message, selected_energy_transfer_service=chosen)


def request_rule_cases() -> Iterator[Case]:
    """One case per request rule the charger checks, broken by our EV in one request of a normal session."""
    yield _rule_case(NOT_A_REQUEST, Fault("AuthorizationSetupReq", replace=_a_response))
    yield _rule_case(same_session, continue_with("ScheduleExchangeReq", mutate=_foreign))
    yield _rule_case(SEQUENCE, Fault("ServiceDetailReq", replace=_instead("DC_ChargeParameterDiscoveryReq")))
    pnc = _set(selected_authorization_service=cm.Authorization.PnC)
    yield _rule_case(authorization.selected_authorization_offered, continue_with("AuthorizationReq", mutate=pnc))
    yield _rule_case(
        authorization.mode_element_of_the_selection, continue_with("AuthorizationReq", mutate=_pnc_element)
    )
    ac = _set(service_id=int(ServiceId.AC))
    yield _rule_case(service_selection.detail_of_an_offered_service, continue_with("ServiceDetailReq", mutate=ac))
    ac_selected = _set(selected_energy_transfer_service=cm.SelectedService(service_id=1, parameter_set_id=1))
    selection = "ServiceSelectionReq"
    yield _rule_case(service_selection.selected_service_offered, continue_with(selection, mutate=ac_selected))
    other_set = continue_with(selection, mutate=_other_parameter_set)
    yield _rule_case(service_selection.selected_parameter_set_offered, other_set)
    yield _rule_case(
        service_selection.no_value_added_service, continue_with(selection, mutate=_set(selected_vas_list=VAS))
    )
    cpd = "DC_ChargeParameterDiscoveryReq"
    bpt = continue_with(cpd, mutate=_bpt_parameters)
    yield _rule_case(charge_parameters.mode_fits_the_service, bpt, DYNAMIC_ONLY, Needs(service=ServiceId.MCS))
    yield _rule_case(charge_parameters.limits_are_magnitudes, continue_with(cpd, mutate=_negative_cpd_limit))
    scheduled = continue_with("ScheduleExchangeReq", mutate=_scheduled_exchange)
    yield _rule_case(schedule_exchange.control_mode_fits, scheduled, DYNAMIC_ONLY, DYNAMIC)
    zero = continue_with("DC_PreChargeReq", mutate=_set(ev_target_voltage=ZERO))
    yield _rule_case(pre_charge.sane_target_voltage, zero)
    early = Fault("DC_CableCheckReq", replace=_start_power)
    yield _rule_case(power_delivery.start_after_cable_check_and_pre_charge, early, DYNAMIC_ONLY, DYNAMIC)
    unknown = continue_with(is_start, mutate=_unknown_schedule)
    broken_scheduled = {"mode": ControlMode.SCHEDULED}
    yield _rule_case(power_delivery.selected_schedule_offered, unknown, SCHEDULED_ONLY, SCHEDULED, broken_scheduled)
    renegotiate = continue_with(is_start, mutate=_set(charge_progress=cm.ChargeProgress.ScheduleRenegotiation))
    yield _rule_case(power_delivery.renegotiation_from_the_charge_loop, renegotiate)
    loop = "DC_ChargeLoopReq"
    yield _rule_case(charge_loop.control_mode_fits, continue_with(loop, mutate=_scheduled_loop), DYNAMIC_ONLY, DYNAMIC)
    yield _rule_case(charge_loop.limits_are_magnitudes, continue_with(loop, mutate=_negative_loop_limit))
    stop = Fault("AuthorizationReq", replace=_renegotiate_service)
    yield _rule_case(session_stop.renegotiation_after_authorization, stop)
    other_stop = continue_with("SessionStopReq", mutate=_set(charging_session=cm.ChargingSession.ServiceRenegotiation))
    yield _rule_case(session_stop.renegotiation_offered, other_stop, {"service_renegotiation": False})


def _rule_case(
    rule: Rule,
    fault: Fault,
    settings: dict[str, Any] | None = None,
    needs: Needs = ANY_TRUCK,
    broken_settings: dict[str, Any] | None = None,
) -> Case:
    """A normal session (the charger with `settings`) judged whole; our EV with `fault` breaks `rule`."""

    async def run(bench: Bench) -> Verdict:
        await serve(bench, **(settings or {}))
        return whole_session(bench.trace)

    return Case(
        f"EVCC-REQ-{rule.id.removeprefix('MV-')}",
        f"A whole session in which every request keeps {rule.id}: {rule.text}",
        "evcc",
        (rule.id, SESSION_STOP),
        run,
        breaking(rule.id, fault, **(broken_settings or {})),
        needs,
        ("request-rules", "session"),
    )


# -- supportedAppProtocol -------------------------------------------------------------------------------------


def sap_offer(trace: Trace) -> Verdict:
    """The EV offered -20 DC with major version 1, with distinct priorities (1..20) and SchemaIDs."""
    requests = trace.received("supportedAppProtocolReq")
    if not requests:
        return failed(SAP_OFFER, "a supportedAppProtocolReq", "none")
    entry = requests[0]
    offer: list[ap.AppProtocol] = getattr(entry.message, "app_protocol", [])
    seen = ", ".join(f"{p.protocol_namespace} v{p.version_number_major} prio {p.priority}" for p in offer)
    if not any(p.protocol_namespace == DC_NAMESPACE and p.version_number_major == 1 for p in offer):
        return failed(SAP_OFFER, f"{DC_NAMESPACE} with major version 1", seen, entry.name, entry.t)
    priorities, schema_ids = [p.priority for p in offer], [p.schema_id for p in offer]
    if len(set(priorities)) != len(offer) or not all(p in PRIORITIES for p in priorities):
        return failed(SAP_OFFER, "distinct priorities in 1..20", seen, entry.name, entry.t)
    if len(set(schema_ids)) != len(offer):
        return failed(SAP_OFFER, "distinct SchemaIDs", f"SchemaIDs {schema_ids}", entry.name, entry.t)
    return passed()


def _old_major(message: ap.SupportedAppProtocolReq) -> Any:
    entries = [dataclasses.replace(p, version_number_major=2) for p in message.app_protocol]
    return dataclasses.replace(message, app_protocol=entries)


def _twin_entry(message: ap.SupportedAppProtocolReq) -> Any:
    first = message.app_protocol[0]
    twin = dataclasses.replace(first, protocol_namespace="urn:iso:std:iso:15118:-20:AC", schema_id=first.schema_id + 1)
    return dataclasses.replace(message, app_protocol=[first, twin])


def sap_cases() -> Iterator[Case]:
    async def run(bench: Bench) -> Verdict:
        await serve(bench)
        return sap_offer(bench.trace)

    for detail, title, mutate in (
        ("VERSION", "offers ISO 15118-20 DC with major version 1", _old_major),
        ("PRIORITIES", "gives each entry its own priority (1..20) and SchemaID", _twin_entry),
    ):
        yield Case(
            f"EVCC-SAP-{detail}",
            f"The truck's supportedAppProtocolReq {title}",
            "evcc",
            (SAP_OFFER,),
            run,
            breaking(SAP_OFFER, continue_with("supportedAppProtocolReq", mutate=mutate)),
            tags=("sap",),
        )


def cases() -> Iterator[Case]:
    yield from session_cases()
    yield from request_rule_cases()
    yield from sap_cases()
