"""Truck under test, the tester as the charger: how the truck ends a session the charger spoils. A FAILED code to
each request type, a withheld answer (the EV's V2G_EVCC_Msg_Timeout), a response of another session, a response
that breaks a response rule, and the SAP answers it must refuse: after each the truck sends nothing more and
closes the connection (in time, and after a withheld answer not before its timeout).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from stack.messages import app_protocol as ap
from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages.minimal import minimal
from stack.session import conduct
from stack.session.exchanges import charge_loop, charge_parameters, schedule_exchange, service_selection
from stack.session.exchanges.common import header
from stack.session.exchanges.session_setup import session_id_allocated
from stack.session.rulebook import BY_NAME
from stack.session.rules import ANSWERS_THE_REQUEST, Rule, response_in_session
from stack.session.services import BPT_SERVICES, ControlMode, ServiceId, dc_offer
from stack.session.state import NEW_SESSION
from stack.session.timers import EvccTimers

from ..bench import Bench
from ..case import Breaker, Case
from ..driver import Fault, Script, Then
from ..judges import CLOSE_SLACK_S, CLOSE_WITHIN_S, closed_after, first_then, not_closed_before
from ..profile import DeviceProfile
from ..trace import Entry, Kind, Trace
from ..verdict import Verdict, inconclusive
from .common import FLOW, FOREIGN_SESSION_ID, IN_SESSION, response_name, short, with_code, with_session
from .evcc_session import as_class, serve

STOPS = conduct.EV_STOPS_AFTER_FAILED.id
CLOSES = conduct.EV_CLOSES_ON_TIMEOUT.id
OBSERVE_S = 10.0  # how long the tester watches the truck after its fault
LINGER_S = OBSERVE_S + 5.0  # our broken EV keeps the connection open longer than the tester watches
SHORT = 0.25  # message_scale of our broken EV that gives up too early
LATE_BY_S = 3.0  # how much later than the allowed close our broken EV that waits too long gives up
# the FAILED code each response carries in its case (PROTOCOL.md 7: the code the condition calls for)
FAILED_CODES = {
    "SessionSetupReq": "FAILED",
    "AuthorizationSetupReq": "FAILED",
    "AuthorizationReq": "FAILED",
    "ServiceDiscoveryReq": "FAILED_NoEnergyTransferServiceSelected",
    "ServiceDetailReq": "FAILED_ServiceIDInvalid",
    "ServiceSelectionReq": "FAILED_ServiceSelectionInvalid",
    "DC_ChargeParameterDiscoveryReq": "FAILED_WrongChargeParameter",
    "ScheduleExchangeReq": "FAILED",
    "DC_CableCheckReq": "FAILED",
    "DC_PreChargeReq": "FAILED",
    "PowerDeliveryReq": "FAILED_ContactorError",
    "DC_ChargeLoopReq": "FAILED",
    "DC_WeldingDetectionReq": "FAILED",
    "SessionStopReq": "FAILED",
}


def lingering(rule: str) -> Breaker:
    """Our EV ends its session as it should, but keeps the connection open after it."""
    return Breaker(lambda: Script(linger_s=LINGER_S), rule)


def twice(request: str, rule: str) -> Breaker:
    """Our EV sends `request` twice, the second without waiting for the answer to the first (our driver cannot make
    it ignore an answer it received): the charger sees a request after its FAILED answer."""
    return Breaker(lambda: Script((Fault(request, extra=lambda m: m, then=Then.CONTINUE),)), rule)


def spoiled(trace: Trace) -> Entry | None:
    """The tester's response its fault changed (the first sent after the fault's note)."""
    note = next((e for e in trace.entries if e.kind is Kind.NOTE), None)
    return None if note is None else next((e for e in trace.after(note) if e.kind is Kind.SENT), None)


Settings = dict[str, Any] | Callable[[DeviceProfile], dict[str, Any] | None]


def closes_after_fault(
    rule: str, fault: Fault, what: str, settings: Settings | None = None
) -> Callable[[Bench], Awaitable[Verdict]]:
    """Play a session with the tester's `fault` (the tester's SeccConfig `settings`, or a function of the device
    profile giving them, None when the truck cannot take part); the truck must send nothing more and close within
    5 s."""

    async def run(bench: Bench) -> Verdict:
        chosen = settings(bench.profile) if callable(settings) else (settings or {})
        if chosen is None:
            return inconclusive("the truck's profile has no bidirectional service in dynamic control")
        await serve(bench, Script((fault,), observe_s=OBSERVE_S), **chosen)
        return closed_after(bench.trace, spoiled(bench.trace), CLOSE_WITHIN_S, rule, what)

    return run


def bpt_dynamic(profile: DeviceProfile) -> dict[str, Any] | None:
    """Offers of every bidirectional service of the truck's profile, dynamic control only (None: it has none)."""
    services = [s for s in profile.services if s in BPT_SERVICES]
    if not services or ControlMode.DYNAMIC not in profile.control_modes:
        return None
    return {"offers": tuple(dc_offer(s, (ControlMode.DYNAMIC,)) for s in services)}


# -- FAILED codes ---------------------------------------------------------------------------------------------


def failed_code_cases() -> Iterator[Case]:
    for i, (request, code) in enumerate(FAILED_CODES.items()):
        breaker = lingering(STOPS) if i % 2 else twice(request, STOPS)
        yield _failed_case(request, code, breaker)


def _failed_case(request: str, code: str, breaker: Breaker) -> Case:
    response = response_name(request)
    fault = Fault(response, mutate=lambda m: with_code(m, code), note=f"{response} answers {code}")
    return Case(
        f"EVCC-FAILED-{short(request)}",
        f"The charger answers {request} with {code}: the truck sends no further request and closes within 5 s",
        "evcc",
        (STOPS,),
        closes_after_fault(STOPS, fault, f"after {response} {code}"),
        breaker,
        tags=("failed-codes",),
    )


# -- the EV's response timeouts --------------------------------------------------------------------------------


def timeout_cases() -> Iterator[Case]:
    for i, request in enumerate(FLOW):
        limit = BY_NAME[request].evcc_timeout
        too_early = limit * SHORT < limit - CLOSE_SLACK_S
        # the broken truck gives up too early, or so late that even the 5 s before its TCP close are past
        scale = SHORT if too_early and i % 2 == 0 else (limit + CLOSE_WITHIN_S + LATE_BY_S) / limit
        yield _timeout_case(request, limit, scale)


def _timeout_case(request: str, limit: float, scale: float) -> Case:
    response = response_name(request)
    # after its timeout the truck stops the session and closes the TCP connection within 5 s ([V2G20-1633]; Josev
    # ends the data link at 2 s and closes at 5 s, PROTOCOL.md 6.2)
    window = limit + CLOSE_WITHIN_S

    async def run(bench: Bench) -> Verdict:
        withhold = Fault(response, replace=lambda m: None, note=f"{response} withheld")
        await serve(bench, Script((withhold,), observe_s=window + LATE_BY_S + 2))
        start = _unanswered(bench.trace)
        what = f"V2G_EVCC_Msg_Timeout of {request} ({limit:g} s) and the 5 s before the close"
        return first_then(
            not_closed_before(bench.trace, start, limit, CLOSES), closed_after(bench.trace, start, window, CLOSES, what)
        )

    settings: dict[str, object] = {"timers": EvccTimers(message_scale=scale)}
    return Case(
        f"EVCC-TIMEOUT-{short(request)}",
        f"The charger never answers {request}: the truck closes the connection within 5 s after its "
        f"V2G_EVCC_Msg_Timeout ({limit:g} s), not before, and sends nothing more",
        "evcc",
        (CLOSES,),
        run,
        Breaker(Script, CLOSES, settings),
        tags=("timing",),
    )


def _unanswered(trace: Trace) -> Entry | None:
    """The truck's request whose answer the tester withheld (the last received before the fault's note)."""
    note = next((e for e in trace.entries if e.kind is Kind.NOTE), None)
    if note is None:
        return None
    earlier = trace.entries[: trace.entries.index(note)]
    return next((e for e in reversed(earlier) if e.kind is Kind.RECEIVED), None)


# -- responses of another session, responses that break a response rule --------------------------------------


def session_id_cases() -> Iterator[Case]:
    rule = response_in_session.id
    for request in IN_SESSION:
        response = response_name(request)
        fault = Fault(response, mutate=lambda m: with_session(m, FOREIGN_SESSION_ID), note=f"{response} foreign")
        yield Case(
            f"EVCC-RSID-{short(request)}",
            f"The charger answers {request} with a {response} of another session: the truck closes within 5 s and "
            "sends nothing more",
            "evcc",
            (rule,),
            closes_after_fault(rule, fault, "after a response of another session"),
            lingering(rule),
            tags=("session-id", "response-rules"),
        )


def _plain_parameters(message: dc.DcChargeParameterDiscoveryRes) -> Any:
    mode = as_class(dc.DcCpdResEnergyTransferMode, message.dc_cpd_res_energy_transfer_mode)
    return dataclasses.replace(message, dc_cpd_res_energy_transfer_mode=mode)


def _plain_loop(message: dc.DcChargeLoopRes) -> Any:
    mode = as_class(dc.DynamicDcClResControlMode, message.cl_res_control_mode)
    return dataclasses.replace(message, cl_res_control_mode=mode)


def _scheduled_answer(message: cm.ScheduleExchangeRes) -> Any:
    scheduled = minimal(cm.ScheduledSeResControlMode)
    return dataclasses.replace(message, dynamic_se_res_control_mode=None, scheduled_se_res_control_mode=scheduled)


def _other_detail(message: cm.ServiceDetailRes) -> Any:
    return dataclasses.replace(message, service_id=int(ServiceId.DC) if message.service_id != ServiceId.DC else 8)


def _detail_instead(message: Any) -> Any:
    return minimal(cm.ServiceDetailRes, header=header(message.header.session_id, message.header.time_stamp))


# (rule, the response the tester spoils, how, tester settings)
CPD_RES = "DC_ChargeParameterDiscoveryRes"
RESPONSE_RULES: tuple[tuple[Rule, str, Callable[[Any], Any], Settings], ...] = (
    (session_id_allocated, "SessionSetupRes", lambda m: with_session(m, NEW_SESSION), {}),
    (ANSWERS_THE_REQUEST, "ServiceDiscoveryRes", _detail_instead, {}),
    (service_selection.detail_of_the_requested_service, "ServiceDetailRes", _other_detail, {}),
    (
        charge_parameters.response_mode_fits_the_service,
        "DC_ChargeParameterDiscoveryRes",
        _plain_parameters,
        bpt_dynamic,
    ),
    (schedule_exchange.response_control_mode_fits, "ScheduleExchangeRes", _scheduled_answer, bpt_dynamic),
    (charge_loop.response_control_mode_fits, "DC_ChargeLoopRes", _plain_loop, bpt_dynamic),
)


def response_rule_cases() -> Iterator[Case]:
    for rule, response, change, settings in RESPONSE_RULES:
        fault = Fault(response, replace=change, note=f"{response} breaks {rule.id}")
        yield Case(
            f"EVCC-RESPONSE-{rule.id.removeprefix('MV-').removeprefix('RESPONSE-')}",
            f"The charger's {response} breaks {rule.id} ({rule.text}): the truck closes within 5 s and sends nothing "
            "more",
            "evcc",
            (rule.id,),
            closes_after_fault(rule.id, fault, f"after a {response} that breaks {rule.id}", settings),
            lingering(rule.id),
            tags=("response-rules",),
        )


def no_negotiation_case() -> Case:
    code = ap.ResponseCode.Failed_NoNegotiation
    refuse = ap.SupportedAppProtocolRes(response_code=code)
    fault = Fault("supportedAppProtocolRes", replace=lambda m: refuse, note="supportedAppProtocolRes refuses")
    return Case(
        "EVCC-SAP-NO-NEGOTIATION",
        "The charger answers the truck's supportedAppProtocolReq with Failed_NoNegotiation: the truck sends no "
        "SessionSetupReq and closes within 5 s",
        "evcc",
        (STOPS,),
        closes_after_fault(STOPS, fault, "after Failed_NoNegotiation"),
        lingering(STOPS),
        tags=("sap", "failed-codes"),
    )


def cases() -> Iterator[Case]:
    yield from failed_code_cases()
    yield from timeout_cases()
    yield from session_id_cases()
    yield from response_rule_cases()
    yield no_negotiation_case()
