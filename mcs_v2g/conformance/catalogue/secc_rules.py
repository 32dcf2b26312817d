"""Charger under test, the tester as the EV: every request rule and decision of the rulebook that the SECC answers
with a code. Each case breaks exactly one rule in an otherwise valid session and expects that rule's code; after a
FAILED_* code the session must end, after a WARNING_* code it goes on."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages.minimal import minimal
from stack.session import conduct
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
from stack.session.rules import Rule
from stack.session.services import BPT_SERVICES, ControlMode, ServiceId
from stack.session.units import rn

from ..bench import Bench
from ..case import Case, Needs
from ..driver import Fault, Script, Then
from ..judges import answered_with, first_then
from ..trace import Trace
from ..verdict import Verdict, inconclusive
from .common import MODES, SERVICES, run_ev
from .secc_session import accepting, refused_then_closed

CS, STOP = cm.ChargeProgress, cm.ChargingSession
Faults = Callable[[Trace], tuple[Fault, ...]]
NOT_DC = (1, 3, 5)  # AC, WPT, AC_BPT: energy services no DC or MCS charger offers
UNOFFERED_IDS = (3, 1, 4, 5, 7)  # ServiceIDs to try where one the charger did not offer is needed
UNOFFERED_VAS = cm.SelectedService(service_id=65_000, parameter_set_id=1)  # a value-added service nobody offers
FINISHED = power_delivery.FINISHED


@dataclass(frozen=True)
class Broken:
    """One rule broken on purpose: the case id's tail, the title, the rule, the faults (they may read what the
    charger said so far), what the case needs, where the charger's answer is (default: the rule's request), and
    when the device cannot be judged (an inconclusive verdict, else None)."""

    tail: str
    title: str
    rule: Rule
    faults: Faults
    needs: Needs = Needs()
    request: str = ""
    precondition: Callable[[Trace], Verdict | None] | None = None


def ev_for(bench: Bench, needs: Needs) -> dict[str, Any]:
    """The tester EV's service and control mode: what the case needs, else the first the profile names."""
    service = needs.service or bench.profile.services[0]
    return {"service": service, "mode": needs.control_mode or bench.profile.control_modes[-1]}


def last_received(trace: Trace, name: str) -> Any:
    """The message of the device's last `name`, or None."""
    entries = trace.received(name)
    return entries[-1].message if entries else None


def rule_case(broken: Broken) -> Case:
    rule, code = broken.rule.id, str(broken.rule.rc.value)
    request = broken.request or _request_of(broken)
    warning = code.startswith("WARNING")

    async def run(bench: Bench) -> Verdict:
        await run_ev(bench, Script(broken.faults(bench.trace)), **ev_for(bench, broken.needs))
        if not warning:
            return refused_then_closed(bench.trace, request, code, rule)
        unfit = broken.precondition(bench.trace) if broken.precondition else None
        answer = answered_with(bench.trace, request, (code,), rule)
        # the session goes on: our EV ends it with SessionStop, which the charger answers OK
        went_on = answered_with(bench.trace, "SessionStopReq", ("OK",), conduct.ACCEPTS_VALID.id)
        return first_then(unfit, None if answer.ok else answer, went_on)

    then = "the session goes on" if warning else "then the session ends"
    rules = (rule, conduct.ACCEPTS_VALID.id) if warning else (rule, conduct.ENDS_AFTER_FAILED.id)
    return Case(
        f"SECC-RULE-{broken.tail}",
        f"{broken.title}: {code}, {then}",
        "secc",
        rules,
        run,
        accepting(code, rule),
        broken.needs,
        ("warning-codes" if warning else "failed-codes", "request-rules"),
    )


def _pnc_offered(trace: Trace) -> Verdict | None:
    """Inconclusive when the charger offers PnC too: selecting it would be valid."""
    setup = last_received(trace, "AuthorizationSetupRes")
    if setup is not None and cm.Authorization.PnC in setup.authorization_services:
        return inconclusive("the charger offers PnC: no authorization service is left to select un-offered")
    return None


def _request_of(broken: Broken) -> str:
    faults = broken.faults(Trace())
    at = faults[-1].at
    assert isinstance(at, str), broken.tail
    return at


# -- how each rule is broken -------------------------------------------------------------------------------------


def _swap(cls: type, element: Any) -> Any:
    """An element of class `cls` with the values `element` shares with it (the rest at their simplest)."""
    names = {spec.name for spec in cls.XSD_FIELDS}  # type: ignore[attr-defined]
    shared = {n: getattr(element, n) for n in names if getattr(element, n, None) is not None}
    return minimal(cls, **shared)


def _with(message: Any, **changes: Any) -> Any:
    return dataclasses.replace(message, **changes)


def _changing(at: str, then: Then = Then.OBSERVE, **changes: Any) -> Faults:
    """Our `at` sent with `changes` to its fields."""
    return lambda trace: (Fault(at, mutate=lambda m: _with(m, **changes), then=then),)


def _instead_of(at: str, cls: type, **fields: Any) -> Faults:
    """A `cls` request with `fields` (and our header) sent instead of our `at`."""
    return lambda trace: (Fault(at, replace=lambda m: cls(header=m.header, **fields)),)


def _detail_unoffered(trace: Trace) -> tuple[Fault, ...]:
    def mutate(req: cm.ServiceDetailReq) -> cm.ServiceDetailReq:
        discovery = last_received(trace, "ServiceDiscoveryRes")
        offered = {s.service_id for s in discovery.energy_transfer_service_list.service} if discovery else set()
        return _with(req, service_id=next(i for i in UNOFFERED_IDS if i not in offered))

    return (Fault("ServiceDetailReq", mutate=mutate),)


def _selection_unoffered(service: ServiceId, other: ServiceId) -> Faults:
    def faults(trace: Trace) -> tuple[Fault, ...]:
        only = cm.ServiceIdList(service_id=[int(other)])
        selected = cm.SelectedService(service_id=int(service), parameter_set_id=1)
        return (
            Fault("ServiceDiscoveryReq", mutate=lambda m: _with(m, supported_service_ids=only), then=Then.CONTINUE),
            Fault("ServiceSelectionReq", mutate=lambda m: _with(m, selected_energy_transfer_service=selected)),
        )

    return faults


def _parameter_set_unoffered(trace: Trace) -> tuple[Fault, ...]:
    def mutate(req: cm.ServiceSelectionReq) -> cm.ServiceSelectionReq:
        detail = last_received(trace, "ServiceDetailRes")
        ids = [p.parameter_set_id for p in detail.service_parameter_list.parameter_set] if detail else [0]
        chosen = _with(req.selected_energy_transfer_service, parameter_set_id=max(ids) + 1)
        return _with(req, selected_energy_transfer_service=chosen)

    return (Fault("ServiceSelectionReq", mutate=mutate),)


def _cpd_other_mode(trace: Trace) -> tuple[Fault, ...]:
    def mutate(req: dc.DcChargeParameterDiscoveryReq) -> dc.DcChargeParameterDiscoveryReq:
        mode = req.dc_cpd_req_energy_transfer_mode
        bpt = isinstance(mode, dc.BptDcCpdReqEnergyTransferMode)
        other = dc.DcCpdReqEnergyTransferMode if bpt else dc.BptDcCpdReqEnergyTransferMode
        return _with(req, dc_cpd_req_energy_transfer_mode=_swap(other, mode))

    return (Fault("DC_ChargeParameterDiscoveryReq", mutate=mutate),)


def _cpd_negative(trace: Trace) -> tuple[Fault, ...]:
    def mutate(req: dc.DcChargeParameterDiscoveryReq) -> dc.DcChargeParameterDiscoveryReq:
        mode = _with(req.dc_cpd_req_energy_transfer_mode, ev_maximum_charge_current=rn(-500.0))
        return _with(req, dc_cpd_req_energy_transfer_mode=mode)

    return (Fault("DC_ChargeParameterDiscoveryReq", mutate=mutate),)


def _schedule_other_mode(trace: Trace) -> tuple[Fault, ...]:
    def mutate(req: cm.ScheduleExchangeReq) -> cm.ScheduleExchangeReq:
        if req.dynamic_se_req_control_mode is not None:
            scheduled = minimal(cm.ScheduledSeReqControlMode)
            return _with(req, dynamic_se_req_control_mode=None, scheduled_se_req_control_mode=scheduled)
        dynamic = minimal(cm.DynamicSeReqControlMode)
        return _with(req, scheduled_se_req_control_mode=None, dynamic_se_req_control_mode=dynamic)

    return (Fault("ScheduleExchangeReq", mutate=mutate),)


def _start_with_tuple(tuple_id: int | None) -> Faults:
    """PowerDelivery(Start) naming a ScheduleTupleID the charger did not offer (None: no EV power profile)."""

    def faults(trace: Trace) -> tuple[Fault, ...]:
        def mutate(req: cm.PowerDeliveryReq) -> cm.PowerDeliveryReq:
            profile = req.ev_power_profile
            if tuple_id is None or profile is None or profile.scheduled_evppt_control_mode is None:
                return _with(req, ev_power_profile=None)
            exchange = last_received(trace, "ScheduleExchangeRes")
            scheduled = exchange.scheduled_se_res_control_mode if exchange else None
            offered = [t.schedule_tuple_id for t in scheduled.schedule_tuple] if scheduled else []
            chosen = _with(
                profile.scheduled_evppt_control_mode, selected_schedule_tuple_id=max([tuple_id, *offered]) + 1
            )
            return _with(req, ev_power_profile=_with(profile, scheduled_evppt_control_mode=chosen))

        return (Fault("PowerDeliveryReq", mutate=mutate),)

    return faults


def _loop_mode(flip_bpt: bool) -> Faults:
    """DC_ChargeLoopReq with the CLReqControlMode of the other BPT choice (or of the other control mode)."""

    def faults(trace: Trace) -> tuple[Fault, ...]:
        def mutate(req: dc.DcChargeLoopReq) -> dc.DcChargeLoopReq:
            modes = charge_loop.REQUEST_MODES
            mode, bpt = next(key for key, cls in modes.items() if type(req.cl_req_control_mode) is cls)
            if flip_bpt:
                bpt = not bpt
            else:
                mode = ControlMode.SCHEDULED if mode is ControlMode.DYNAMIC else ControlMode.DYNAMIC
            return _with(req, cl_req_control_mode=_swap(modes[mode, bpt], req.cl_req_control_mode))

        return (Fault("DC_ChargeLoopReq", mutate=mutate),)

    return faults


def _loop_negative(trace: Trace) -> tuple[Fault, ...]:
    def mutate(req: dc.DcChargeLoopReq) -> dc.DcChargeLoopReq:
        return _with(req, cl_req_control_mode=_with(req.cl_req_control_mode, ev_maximum_charge_current=rn(-500.0)))

    return (Fault("DC_ChargeLoopReq", mutate=mutate),)


# -- the cases ---------------------------------------------------------------------------------------------------


def _name(value: ServiceId | ControlMode) -> str:
    return value.name.replace("_", "-")


def _other_service(service: ServiceId) -> ServiceId:
    return ServiceId.DC_BPT if service is ServiceId.DC else ServiceId.DC


def _per_service() -> Iterator[Broken]:
    for service in SERVICES:
        name, other = _name(service), _other_service(service)
        yield Broken(
            f"SELECT-UNOFFERED-{name}",
            f"ServiceSelection of {service.name} after a ServiceDiscovery that offered {other.name} only",
            service_selection.selected_service_offered,
            _selection_unoffered(service, other),
            Needs(service=other),
        )
        yield Broken(
            f"PARAMETER-SET-{name}",
            f"ServiceSelection of {service.name} with a parameter set ServiceDetailRes did not list",
            service_selection.selected_parameter_set_offered,
            _parameter_set_unoffered,
            Needs(service=service),
        )
        plain = "the BPT" if service not in BPT_SERVICES else "the plain (not BPT)"
        yield Broken(
            f"CPD-MODE-{name}",
            f"DC_ChargeParameterDiscovery of a {service.name} session with {plain} energy-transfer mode",
            charge_parameters.mode_fits_the_service,
            _cpd_other_mode,
            Needs(service=service),
        )
        yield Broken(
            f"CL-BPT-{name}",
            f"DC_ChargeLoop of a {service.name} session with the CLReqControlMode of the other BPT choice",
            charge_loop.control_mode_fits,
            _loop_mode(flip_bpt=True),
            Needs(service=service),
        )


def _per_mode() -> Iterator[Broken]:
    for mode in MODES:
        name = _name(mode)
        yield Broken(
            f"SE-MODE-{name}",
            f"ScheduleExchange of a {mode.name.lower()} session with the other control mode's element",
            schedule_exchange.control_mode_fits,
            _schedule_other_mode,
            Needs(control_mode=mode),
        )
        yield Broken(
            f"CL-MODE-{name}",
            f"DC_ChargeLoop of a {mode.name.lower()} session with the other control mode's CLReqControlMode",
            charge_loop.control_mode_fits,
            _loop_mode(flip_bpt=False),
            Needs(control_mode=mode),
        )


def _single() -> Iterator[Broken]:
    yield Broken(
        "AUTH-NOT-OFFERED",
        "AuthorizationReq selecting PnC, which AuthorizationSetupRes did not offer",
        authorization.selected_authorization_offered,
        _changing("AuthorizationReq", Then.CONTINUE, selected_authorization_service=cm.Authorization.PnC),
        precondition=_pnc_offered,
    )
    yield Broken(
        "AUTH-MODE-ELEMENT",
        "AuthorizationReq selecting EIM but carrying the PnC element",
        authorization.mode_element_of_the_selection,
        _changing(
            "AuthorizationReq",
            Then.CONTINUE,
            eim_a_req_authorization_mode=None,
            pnc_a_req_authorization_mode=minimal(cm.PncAReqAuthorizationMode, id="id1", gen_challenge=bytes(16)),
        ),
    )
    yield Broken(
        "DETAIL-UNOFFERED",
        "ServiceDetailReq for a ServiceID ServiceDiscoveryRes did not offer",
        service_selection.detail_of_an_offered_service,
        _detail_unoffered,
    )
    yield Broken(
        "NO-COMMON-SERVICE",
        "ServiceDiscoveryReq whose SupportedServiceIDs name AC and WPT services only",
        service_selection.NO_COMMON_SERVICE,
        _changing("ServiceDiscoveryReq", supported_service_ids=cm.ServiceIdList(service_id=list(NOT_DC))),
    )
    yield Broken(
        "VAS",
        f"ServiceSelection with a value-added service ({UNOFFERED_VAS.service_id}) the charger did not offer",
        service_selection.no_value_added_service,
        _changing("ServiceSelectionReq", selected_vas_list=cm.SelectedServiceList(selected_service=[UNOFFERED_VAS])),
    )
    yield Broken(
        "CPD-NEGATIVE",
        "DC_ChargeParameterDiscovery with a negative EVMaximumChargeCurrent",
        charge_parameters.limits_are_magnitudes,
        _cpd_negative,
    )
    yield Broken(
        "PRECHARGE-ZERO",
        "DC_PreChargeReq with EVTargetVoltage 0 V",
        pre_charge.sane_target_voltage,
        _changing("DC_PreChargeReq", ev_target_voltage=rn(0.0)),
    )
    yield Broken(
        "PD-START-EARLY",
        "PowerDelivery(Start) right after ScheduleExchange, without cable check and pre-charge",
        power_delivery.start_after_cable_check_and_pre_charge,
        _instead_of("DC_CableCheckReq", cm.PowerDeliveryReq, ev_processing=FINISHED, charge_progress=CS.Start),
        request="PowerDeliveryReq",
    )
    yield Broken(
        "SCHEDULE-TUPLE",
        "PowerDelivery(Start) selecting a ScheduleTupleID that ScheduleExchangeRes did not offer",
        power_delivery.selected_schedule_offered,
        _start_with_tuple(1),
        Needs(control_mode=ControlMode.SCHEDULED),
    )
    yield Broken(
        "SCHEDULE-TUPLE-MISSING",
        "PowerDelivery(Start) in scheduled control without an EV power profile (no ScheduleTupleID)",
        power_delivery.selected_schedule_offered,
        _start_with_tuple(None),
        Needs(control_mode=ControlMode.SCHEDULED),
    )
    yield Broken(
        "RENEGOTIATION-EARLY",
        "PowerDelivery(ScheduleRenegotiation) from pre-charge, before the charge loop",
        power_delivery.renegotiation_from_the_charge_loop,
        _changing("PowerDeliveryReq", charge_progress=CS.ScheduleRenegotiation),
    )
    yield Broken(
        "CL-NEGATIVE",
        "DC_ChargeLoopReq with a negative EVMaximumChargeCurrent",
        charge_loop.limits_are_magnitudes,
        _loop_negative,
    )
    yield Broken(
        "SERVICE-RENEG-EARLY",
        "SessionStop(ServiceRenegotiation) right after SessionSetup, before authorization",
        session_stop.renegotiation_after_authorization,
        _instead_of(
            "AuthorizationSetupReq", cm.SessionStopReq, charging_session=cm.ChargingSession.ServiceRenegotiation
        ),
        request="SessionStopReq",
    )
    yield Broken(
        "PAUSE-EARLY",
        "SessionStop(Pause) right after SessionSetup, before a service was selected",
        session_stop.PAUSE_NOT_ALLOWED,
        _instead_of("AuthorizationSetupReq", cm.SessionStopReq, charging_session=STOP.Pause),
        request="SessionStopReq",
    )


def cases() -> Iterator[Case]:
    for broken in (*_single(), *_per_service(), *_per_mode()):
        yield rule_case(broken)
