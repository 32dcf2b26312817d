"""The walk of the rulebook: every rule id of `rulebook.all_rules()` broken on purpose, and seen with its id.

The issue's proof: "A test walks the rulebook: every rule id has at least one test that violates it and sees the
typed error with that id (SECC side) or the refusal to send (EVCC side)." `SCENARIOS` maps every id to the
scenario that breaks it, and `test_every_rule_has_a_scenario` fails the suite when a rule has none:

* request rules: the SECC, fed the violating request where the request is otherwise allowed, answers the rule's
  code and reports a `Violation` (a `RemoteProtocolError` with the id); our EVCC, standing in the same state,
  refuses to send it (a `LocalProtocolError` with the id), through its controller where one can make it;
* response rules: our EVCC, fed the violating response, reports a `Violation` with the id and closes; our SECC
  refuses to send one (a `LocalProtocolError` with the id) where a controller or a setting can provoke it;
* decisions: the SECC puts the rule's code on the wire and says so with `Event("rule", {"rule": id, ...})`;
* timer rules: the side that waited reports a `Violation(PeerTimeout)` with the id (the SECC's own Ongoing
  guards: it answers FAILED and says which rule, nobody else is at fault).

The machines are driven directly (`Pair`: no codec, no link) where a state has to be reached exactly, and
through `VirtualLink` (V2GTP, EXI, virtual time) for the long timer runs. A hypothesis property closes the file:
random request sequences fed to the SECC follow the table or are refused, and the EVCC refuses exactly those.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from examples.minimal_controllers import MCS_TRUCK, MinimalEv, MinimalEvse
from stack import exi
from stack.messages import app_protocol as ap
from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct
from stack.messages.minimal import minimal
from stack.security import xmldsig
from stack.session.actions import Action, Close, Event, Send, Violation
from stack.session.config import DC_NAMESPACE, EvccConfig, SeccConfig
from stack.session.controller import (
    AuthorizationStatus,
    EnergyRequest,
    EvLoopStep,
    ScheduleAnswer,
)
from stack.session.errors import LocalProtocolError, PeerTimeout, RemoteProtocolError
from stack.session.evcc import EvccSession
from stack.session.exchanges import certificate_installation
from stack.session.exchanges.charge_loop import loop_request
from stack.session.exchanges.charge_parameters import request_mode
from stack.session.exchanges.schedule_exchange import dynamic_request, scheduled_request
from stack.session.rulebook import BY_REQUEST, EXCHANGES, all_rules
from stack.session.rules import NOT_A_REQUEST, TIMER_RULES, Rule, RuleKind
from stack.session.secc import SeccSession
from stack.session.services import ControlMode, ParameterSet, ServiceId, ServiceOffer
from stack.session.state import NEW_SESSION, Outcome, Phase
from stack.session.timers import EvccTimers, SeccTimers
from stack.session.units import rn
from stack.transport.link import VirtualLink
from tests import pnc_fixtures as pf

RC = ct.ResponseCode
CP = cm.ChargeProgress
CS = cm.ChargingSession
T0 = 1_795_000_000.0
FOREIGN = bytes.fromhex("0123456789abcdef")
ISO2_NS = "urn:iso:15118:2:2013:MsgDef"
ENERGY = EnergyRequest(target_energy=196_000, max_energy=252_000, min_energy=0, departure_time=7200)
RULES = {rule.id: rule for rule in all_rules()}


def sends(actions: list[Action]) -> list[Any]:
    return [a.message for a in actions if isinstance(a, Send)]


def violations(actions: list[Action]) -> list[Violation]:
    return [a for a in actions if isinstance(a, Violation)]


def rule_events(actions: list[Action]) -> list[Event]:
    return [a for a in actions if isinstance(a, Event) and a.kind == "rule"]


def _ev(**kw: Any) -> MinimalEv:
    """The walk's usual EV: plain DC, Scheduled, two charge loops."""
    return MinimalEv(**{"service": ServiceId.DC, "control_mode": ControlMode.SCHEDULED, "charge_loops": 2, **kw})


# -- the two machines in lockstep ---------------------------------------------------------------------------
class Pair:
    """An `EvccSession` and a `SeccSession` joined directly (no codec, no link), in virtual time.

    `at(cls)` runs both until the EV is about to send a request of `cls` (built, not delivered): there both stand
    in the same state, so the test may hand either of them something else.
    """

    def __init__(
        self,
        ev: MinimalEv | None = None,
        evse: MinimalEvse | None = None,
        *,
        evcc: EvccConfig | None = None,
        secc: SeccConfig | None = None,
        **secc_options: Any,
    ) -> None:
        self.ev = ev or _ev()
        self.evse = evse or MinimalEvse()
        self.evcc = EvccSession(self.ev, evcc)
        self.secc = SeccSession(self.evse, secc, **secc_options)
        self.now = T0
        self.ev_actions: list[Action] = []
        self.secc_actions: list[Action] = [*self.secc.start(self.now)]
        self.outbox = self._from_ev(self.evcc.start(self.now))

    def at(self, cls: type, n: int = 1) -> Any:
        """The n-th request of `cls` from here on, built by the EVCC and not delivered yet."""
        seen = 0
        for _ in range(100_000):
            if not self.outbox:
                self._wait()
                continue
            request = self.outbox[0]
            if isinstance(request, cls):
                seen += 1
                if seen == n:
                    return request
            self._exchange(self.outbox.pop(0))
        raise AssertionError(f"never reached {cls.__name__}")

    def run(self) -> None:
        """Until the EVCC closes."""
        for _ in range(100_000):
            if self.evcc.closed is not None:
                return
            if not self.outbox:
                self._wait()
                continue
            self._exchange(self.outbox.pop(0))
        raise AssertionError("the session never ended")

    def to_secc(self, request: Any) -> list[Action]:
        actions = self.secc.receive(request, self.now)
        self.secc_actions += actions
        return actions

    def answer(self, request: Any) -> Any:
        """Deliver `request` to the SECC and return its response (the EVCC is not fed)."""
        (response,) = sends(self.to_secc(request))
        return response

    def _exchange(self, request: Any) -> None:
        self.outbox = self._from_ev(self.evcc.receive(self.answer(request), self.now))

    def _wait(self) -> None:
        deadline = self.evcc.deadline
        assert deadline is not None and self.evcc.closed is None, "the EVCC waits for nothing"
        self.now = max(self.now, deadline)
        self.outbox = self._from_ev(self.evcc.expire(self.now))

    def _from_ev(self, actions: list[Action]) -> list[Any]:
        self.ev_actions += actions
        return sends(actions)


# -- controllers that make our own side build what a rule forbids ---------------------------------------------
@dataclass
class WrongServiceEv(MinimalEv):
    """Asks for the details of AC, which no DC charger offers."""

    def choose_service(self, offered, now):
        return ServiceId.AC


@dataclass
class WrongParameterSetEv(MinimalEv):
    def choose_parameter_set(self, service, sets, now):
        return ParameterSet(id=7, control_mode=ControlMode.SCHEDULED)


@dataclass
class WrongScheduleEv(MinimalEv):
    def choose_schedule(self, schedules, now):
        return replace(schedules[0], tuple_id=2)


@dataclass
class NegativeLoopLimitsEv(MinimalEv):
    def charge_loop(self, feedback, now) -> EvLoopStep:
        step = super().charge_loop(feedback, now)
        return step if step.stop is not None else replace(step, limits=replace(step.limits, max_charge_current=-1.0))


@dataclass
class StallingEvse(MinimalEvse):
    """A charger that hangs in one place."""

    auth: AuthorizationStatus | None = None  # None: MinimalEvse's answer
    schedule_forever: bool = False
    no_schedules: bool = False
    pre_charge_voltage: float | None = None
    welding_voltage: float = 0.0
    contactors_fail: bool = False

    def authorize(self, now: float, emaid: str | None = None) -> AuthorizationStatus:
        return super().authorize(now) if self.auth is None else self.auth

    def schedule(self, service, mode, request, max_entries, now) -> ScheduleAnswer:
        if self.schedule_forever:
            return ScheduleAnswer(finished=False)
        if self.no_schedules:
            return ScheduleAnswer(schedules=())  # Scheduled mode needs 1..3 tuples
        return super().schedule(service, mode, request, max_entries, now)

    def pre_charge(self, target_voltage: float, now: float) -> float:
        return target_voltage if self.pre_charge_voltage is None else self.pre_charge_voltage

    def power_delivery(self, start: bool, discharge: bool, now: float) -> bool:
        return not self.contactors_fail

    def welding_detection(self, now: float) -> float:
        return self.welding_voltage


# -- scenarios ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RequestCase:
    """Both sides stand where the EV is about to send the n-th `at`; `bad` makes the violating request of it."""

    at: type
    bad: Callable[[Pair, Any], Any]
    pair: Callable[[], Pair] = Pair
    n: int = 1
    ev_builds_it: Callable[[], Pair] | None = None  # a session whose EV controller makes our EVCC build one


@dataclass(frozen=True)
class ResponseCase:
    """The EV sends `at` (or `send` of it); the SECC's valid response, made bad by `bad`, reaches the EV.

    Our SECC is made to build such a response by `secc_sends_it`; where nothing can make it (the response is
    built from the session's state, not from a controller), `unprovokable` says why.
    """

    at: type
    bad: Callable[[Pair, Any, Any], Any]
    pair: Callable[[], Pair] = Pair
    send: Callable[[Pair, Any], Any] | None = None
    secc_sends_it: Callable[[], Pair] | None = None  # a session whose charger makes our SECC build one
    unprovokable: str = ""  # why no controller or setting can make our SECC build one


@dataclass(frozen=True)
class DecisionCase:
    at: type
    pair: Callable[[], Pair]
    request: Callable[[Pair, Any], Any] = lambda pair, request: request
    n: int = 1


@dataclass(frozen=True)
class TimerCase:
    """`run` returns (violations of the waiting side, rule events of the SECC)."""

    run: Callable[[], tuple[list[Violation], list[Event]]]
    peer_at_fault: bool = True  # False: the SECC's own Ongoing guard, applied as a FAILED answer


def _pd_start(head: ct.MessageHeader) -> cm.PowerDeliveryReq:
    """A PowerDelivery(Start) that would be fine after pre-charge (Scheduled mode, tuple 1)."""
    return cm.PowerDeliveryReq(
        header=head,
        ev_processing=ct.Processing.Finished,
        charge_progress=CP.Start,
        ev_power_profile=cm.EvPowerProfile(
            time_anchor=head.time_stamp,
            scheduled_evppt_control_mode=cm.ScheduledEvpptControlMode(selected_schedule_tuple_id=1),
            ev_power_profile_entries=cm.EvPowerProfileEntryList(
                ev_power_profile_entry=[cm.PowerScheduleEntry(duration=3600, power=rn(750_000))]
            ),
        ),
    )


def _loop_step(**changes: Any) -> EvLoopStep:
    limits = MCS_TRUCK.unidirectional()
    step = EvLoopStep(present_voltage=768, target_current=500, target_voltage=800, energy=ENERGY, limits=limits)
    return replace(step, **changes)


def _with_tuple(request: cm.PowerDeliveryReq, tuple_id: int) -> cm.PowerDeliveryReq:
    profile = request.ev_power_profile
    selection = replace(profile.scheduled_evppt_control_mode, selected_schedule_tuple_id=tuple_id)
    return replace(request, ev_power_profile=replace(profile, scheduled_evppt_control_mode=selection))


def _offer_more(pair: Pair, request: Any, response: cm.ServiceDiscoveryRes) -> cm.ServiceDiscoveryRes:
    services = [*response.energy_transfer_service_list.service, cm.Service(service_id=8, free_service=True)]
    return replace(response, energy_transfer_service_list=cm.ServiceList(service=services))


def _bad_offer_pair() -> Pair:
    # ControlMode 7 does not exist: the parameter set cannot be read back (PROTOCOL.md 5)
    offer = ServiceOffer(ServiceId.DC, (ParameterSet(id=1, control_mode=7),))  # type: ignore[arg-type]
    return Pair(secc=SeccConfig(offers=(offer,)))


def _ev_timer(evse: Callable[[], MinimalEvse], timers: EvccTimers | None = None, **link: Any) -> Callable[[], Any]:
    """A whole session over VirtualLink; the EV's violations."""

    def run() -> tuple[list[Violation], list[Event]]:
        evcc = EvccSession(_ev(), EvccConfig(timers=timers or EvccTimers()))
        transcript = VirtualLink(evcc, SeccSession(evse()), now=T0, **link).run()
        assert transcript.ev_close is not None and transcript.ev_close.error is not None
        assert not transcript.violations("evse")
        return transcript.violations("ev"), []

    return run


def _secc_sequence() -> tuple[list[Violation], list[Event]]:
    pair = Pair()
    pair.at(dc.DcChargeLoopReq, 2)  # the EV stops talking in the charge loop
    assert pair.secc.deadline == pytest.approx(pair.now + 60.0)
    assert pair.secc.expire(pair.secc.deadline - 0.1) == []
    actions = pair.secc.expire(pair.secc.deadline)
    assert pair.secc.closed is not None and pair.secc.closed.error is violations(actions)[0].error
    return violations(actions), []


def _evcc_message() -> tuple[list[Violation], list[Event]]:
    pair = Pair()
    pair.at(cm.ServiceDetailReq)  # sent, never answered: 5 s (PROTOCOL.md 6.1)
    assert pair.evcc.deadline == pytest.approx(pair.now + 5.0)
    assert pair.evcc.expire(pair.now + 4.9) == []
    return violations(pair.evcc.expire(pair.now + 5.0)), []


def _secc_guard(evse: Callable[[], MinimalEvse], secc: SeccConfig | None = None) -> Callable[[], Any]:
    def run() -> tuple[list[Violation], list[Event]]:
        pair = Pair(evse=evse(), secc=secc)
        pair.run()
        assert pair.evcc.closed.reason.endswith("with FAILED")  # the EV learns it from the code
        assert not violations(pair.ev_actions)
        return violations(pair.secc_actions), rule_events(pair.secc_actions)

    return run


# -- Plug & Charge (tests/pnc_fixtures.py) ----------------------------------------------------------------------
def _pnc_pair(contract: pf.Contract | None = None, evse: MinimalEvse | None = None, *, revocation: Any = None) -> Pair:
    """The EV authorizes by PnC with `contract` (default: a valid one) at a charger trusting the home MO root."""
    return Pair(
        evse=evse,
        evcc=EvccConfig(pnc=pf.ev_pnc(contract or pf.good_contract())),
        secc=SeccConfig(pnc=pf.secc_pnc(revocation=revocation)),
    )


def _installing_pair(backend: Any = None) -> Pair:
    """An EV without a contract at a charger that offers CertificateInstallation (default: the local CPS/MO)."""
    return Pair(
        evcc=EvccConfig(pnc=pf.ev_pnc(provisioning=pf.home().provisioning())),
        secc=SeccConfig(pnc=pf.secc_pnc(backend=backend or pf.local_backend())),
    )


def _signed_by(request: Any, part: Any, element: str, key: Any) -> Any:
    signature = xmldsig.sign([xmldsig.SignedPart(part, element)], key)
    return replace(request, header=replace(request.header, signature=signature))


def _unsigned(pair: Pair, request: Any) -> Any:
    return replace(request, header=replace(request.header, signature=None))


def _other_challenge(pair: Pair, request: cm.AuthorizationReq) -> cm.AuthorizationReq:
    mode = request.pnc_a_req_authorization_mode
    assert mode is not None
    other = bytes(b ^ 0xFF for b in mode.gen_challenge)
    return replace(request, pnc_a_req_authorization_mode=replace(mode, gen_challenge=other))


def _backend_refusals() -> dict[str, DecisionCase]:
    """A decision per code a contract-certificate backend may refuse with."""

    def refusing(code: RC) -> Callable[[], Pair]:
        return lambda: _installing_pair(pf.RefusingBackend(code))

    return {
        rule.id: DecisionCase(cm.CertificateInstallationReq, refusing(code))
        for code, rule in certificate_installation.BACKEND_REFUSED.items()
    }


# -- metering confirmation (stack/session/exchanges/metering_confirmation.py) ---------------------------------------
def _metering_pair() -> Pair:
    """A PnC session whose charger asks for a metering confirmation in the first charge loop."""
    return _pnc_pair(evse=MinimalEvse(notifications={1: "MeteringConfirmation"}))


def _metering_request(head: ct.MessageHeader) -> cm.MeteringConfirmationReq:
    """An unsigned MeteringConfirmationReq of the header's session (Dynamic mode)."""
    data = cm.SignedMeteringData(
        id="id1",
        session_id=head.session_id,
        meter_info=ct.MeterInfo(meter_id="SIMPLE-METER", charged_energy_reading_wh=0),
        dynamic_smdt_control_mode=cm.DynamicSmdtControlMode(),
    )
    return cm.MeteringConfirmationReq(header=head, signed_metering_data=data)


def _resigned_metering(request: cm.MeteringConfirmationReq, key: Any, **changes: Any) -> cm.MeteringConfirmationReq:
    """The EV's request with SignedMeteringData changed by `changes`, signed with `key`."""
    data = replace(request.signed_metering_data, **changes)
    return replace(_signed_by(request, data, "SignedMeteringData", key), signed_metering_data=data)


SCENARIOS: dict[str, RequestCase | ResponseCase | DecisionCase | TimerCase] = {
    # -- request rules every exchange shares
    "MV-NOT-A-REQUEST": RequestCase(
        cm.AuthorizationSetupReq, lambda p, r: minimal(cm.AuthorizationSetupRes, header=r.header, response_code=RC.OK)
    ),
    "MV-SESSION-ID": RequestCase(
        cm.AuthorizationSetupReq, lambda p, r: replace(r, header=replace(r.header, session_id=FOREIGN))
    ),
    "MV-SEQUENCE": RequestCase(cm.AuthorizationSetupReq, lambda p, r: dc.DcCableCheckReq(header=r.header)),
    # -- authorization
    "V2G20-2209": RequestCase(
        cm.AuthorizationReq,
        lambda p, r: replace(
            r,
            selected_authorization_service=cm.Authorization.PnC,
            eim_a_req_authorization_mode=None,
            pnc_a_req_authorization_mode=minimal(cm.PncAReqAuthorizationMode, gen_challenge=bytes(16)),
        ),
    ),
    "MV-AUTHORIZATION-MODE": RequestCase(
        cm.AuthorizationReq, lambda p, r: replace(r, eim_a_req_authorization_mode=None)
    ),
    # -- services
    "V2G20-464": RequestCase(
        cm.ServiceDetailReq,
        lambda p, r: replace(r, service_id=int(ServiceId.AC)),
        ev_builds_it=lambda: Pair(WrongServiceEv()),
    ),
    "MV-SELECTION-OFFERED": RequestCase(
        cm.ServiceSelectionReq,
        lambda p, r: replace(r, selected_energy_transfer_service=cm.SelectedService(service_id=1, parameter_set_id=1)),
    ),
    "MV-PARAMETER-SET-OFFERED": RequestCase(
        cm.ServiceSelectionReq,
        lambda p, r: replace(r, selected_energy_transfer_service=cm.SelectedService(service_id=2, parameter_set_id=7)),
        ev_builds_it=lambda: Pair(WrongParameterSetEv(service=ServiceId.DC)),
    ),
    "MV-NO-VAS": RequestCase(
        cm.ServiceSelectionReq,
        lambda p, r: replace(
            r,
            selected_vas_list=cm.SelectedServiceList(
                selected_service=[cm.SelectedService(service_id=65, parameter_set_id=1)]
            ),
        ),
    ),
    # -- charge parameters, schedule
    "V2G20-2272": RequestCase(  # BPT parameters for plain DC
        dc.DcChargeParameterDiscoveryReq,
        lambda p, r: replace(r, dc_cpd_req_energy_transfer_mode=request_mode(MCS_TRUCK, True, None, False)),
    ),
    "MV-CPD-LIMITS": RequestCase(
        dc.DcChargeParameterDiscoveryReq,
        lambda p, r: replace(
            r,
            dc_cpd_req_energy_transfer_mode=request_mode(
                replace(MCS_TRUCK.unidirectional(), max_charge_power=-1.0), False, None, False
            ),
        ),
        ev_builds_it=lambda: Pair(_ev(limits=replace(MCS_TRUCK, max_charge_power=-750_000.0))),
    ),
    "MV-SE-CONTROL-MODE": RequestCase(  # Dynamic needs in a Scheduled session
        cm.ScheduleExchangeReq,
        lambda p, r: replace(
            r, scheduled_se_req_control_mode=None, dynamic_se_req_control_mode=dynamic_request(ENERGY)
        ),
    ),
    # -- pre-charge, power delivery
    "MV-PRE-CHARGE-TARGET": RequestCase(
        dc.DcPreChargeReq,
        lambda p, r: replace(r, ev_target_voltage=rn(-5.0)),
        ev_builds_it=lambda: Pair(_ev(battery_voltage=-5.0)),
    ),
    "MV-POWER-DELIVERY-START": RequestCase(dc.DcCableCheckReq, lambda p, r: _pd_start(r.header)),  # before cable check
    "MV-SCHEDULE-SELECTION": RequestCase(
        cm.PowerDeliveryReq,
        lambda p, r: _with_tuple(r, 2),
        ev_builds_it=lambda: Pair(WrongScheduleEv(service=ServiceId.DC, control_mode=ControlMode.SCHEDULED)),
    ),
    "MV-SCHEDULE-RENEGOTIATION": RequestCase(  # from pre-charge, not from the charge loop
        cm.PowerDeliveryReq, lambda p, r: replace(r, charge_progress=CP.ScheduleRenegotiation, ev_power_profile=None)
    ),
    # -- charge loop
    "MV-CL-CONTROL-MODE": RequestCase(
        dc.DcChargeLoopReq,
        lambda p, r: replace(r, cl_req_control_mode=loop_request(ControlMode.DYNAMIC, False, _loop_step())),
    ),
    "MV-CL-LIMITS": RequestCase(
        dc.DcChargeLoopReq,
        lambda p, r: replace(
            r,
            cl_req_control_mode=loop_request(
                ControlMode.SCHEDULED,
                False,
                _loop_step(limits=replace(MCS_TRUCK.unidirectional(), max_charge_current=-1.0)),
            ),
        ),
        ev_builds_it=lambda: Pair(NegativeLoopLimitsEv(service=ServiceId.DC, control_mode=ControlMode.SCHEDULED)),
    ),
    # -- session stop
    "MV-RENEGOTIATION-AUTHORIZED": RequestCase(
        cm.AuthorizationSetupReq,
        lambda p, r: cm.SessionStopReq(header=r.header, charging_session=CS.ServiceRenegotiation),
    ),
    "V2G20-1477": RequestCase(
        cm.SessionStopReq,
        lambda p, r: replace(r, charging_session=CS.ServiceRenegotiation),
        # no `ev_builds_it`: an EV that wants another service from a charger that cannot renegotiate terminates
        # instead (test_session_flows.test_no_service_renegotiation_supported); a hand-built request is refused
        pair=lambda: Pair(secc=SeccConfig(service_renegotiation=False)),
    ),
    # -- response rules
    "MV-RESPONSE-TYPE": ResponseCase(
        cm.AuthorizationSetupReq,
        lambda p, req, res: cm.SessionStopRes(header=res.header, response_code=RC.OK),
        unprovokable="each exchange module builds its own response class; no controller picks it",
    ),
    "MV-RESPONSE-SESSION": ResponseCase(
        cm.AuthorizationSetupReq,
        lambda p, req, res: replace(res, header=replace(res.header, session_id=FOREIGN)),
        unprovokable="the SECC's headers carry the SessionID of its state, which no controller sets",
    ),
    "MV-SAP-SCHEMA-ID": ResponseCase(
        ap.SupportedAppProtocolReq,
        lambda p, req, res: replace(res, schema_id=99),
        unprovokable="the SECC answers the SchemaID of the entry it chose from the EV's list",
    ),
    "MV-SESSION-ID-ALLOCATED": ResponseCase(
        cm.SessionSetupReq,
        lambda p, req, res: replace(res, header=replace(res.header, session_id=NEW_SESSION)),
        secc_sends_it=lambda: Pair(new_session_id=lambda: NEW_SESSION),
    ),
    "MV-SERVICE-FILTER": ResponseCase(
        cm.ServiceDiscoveryReq,
        _offer_more,
        send=lambda p, r: replace(r, supported_service_ids=cm.ServiceIdList(service_id=[2])),
        unprovokable="the SECC filters its offer by the EV's SupportedServiceIDs before answering",
    ),
    "MV-SERVICE-DETAIL": ResponseCase(
        cm.ServiceDetailReq, lambda p, req, res: replace(res, service_id=9), secc_sends_it=_bad_offer_pair
    ),
    "MV-CPD-RESPONSE-MODE": ResponseCase(
        dc.DcChargeParameterDiscoveryReq,
        lambda p, req, res: replace(
            res,
            dc_cpd_res_energy_transfer_mode=minimal(dc.BptDcCpdResEnergyTransferMode),
        ),
        unprovokable="the SECC picks the BPT or plain element from the selected service, not from its controller",
    ),
    "MV-SE-RESPONSE-MODE": ResponseCase(
        cm.ScheduleExchangeReq,
        lambda p, req, res: replace(
            res, scheduled_se_res_control_mode=None, dynamic_se_res_control_mode=cm.DynamicSeResControlMode()
        ),
        secc_sends_it=lambda: Pair(evse=StallingEvse(no_schedules=True)),
    ),
    "MV-CL-RESPONSE-MODE": ResponseCase(
        dc.DcChargeLoopReq,
        lambda p, req, res: replace(res, cl_res_control_mode=minimal(dc.DynamicDcClResControlMode)),
        unprovokable="the SECC picks the CLResControlMode from the session's mode and service",
    ),
    # -- decisions
    "V2G20-167": DecisionCase(
        ap.SupportedAppProtocolReq,
        Pair,
        lambda p, r: ap.SupportedAppProtocolReq(
            app_protocol=[
                ap.AppProtocol(
                    protocol_namespace=ISO2_NS, version_number_major=2, version_number_minor=0, schema_id=1, priority=1
                )
            ]
        ),
    ),
    "V2G20-2230": DecisionCase(cm.AuthorizationReq, lambda: Pair(evse=StallingEvse(auth=AuthorizationStatus.REJECTED))),
    "MV-NO-COMMON-SERVICE": DecisionCase(
        cm.ServiceDiscoveryReq, Pair, lambda p, r: replace(r, supported_service_ids=cm.ServiceIdList(service_id=[1]))
    ),
    "MV-CABLE-CHECK-FAULT": DecisionCase(
        dc.DcCableCheckReq, lambda: Pair(evse=MinimalEvse(cable_check_steps=0, cable_check_fault=True))
    ),
    "MV-CONTACTOR-ERROR": DecisionCase(cm.PowerDeliveryReq, lambda: Pair(evse=StallingEvse(contactors_fail=True))),
    "MV-STANDBY": DecisionCase(
        dc.DcChargeLoopReq,
        Pair,
        lambda p, r: cm.PowerDeliveryReq(
            header=r.header, ev_processing=ct.Processing.Finished, charge_progress=CP.Standby
        ),
        n=2,
    ),
    "MV-PAUSE": DecisionCase(
        cm.SessionStopReq,
        lambda: Pair(secc=SeccConfig(pause_allowed=False)),
        lambda p, r: replace(r, charging_session=CS.Pause),
    ),
    # -- metering confirmation
    "MV-METERING-PNC": RequestCase(  # the walk's usual session is EIM: a request in its charge loop
        dc.DcChargeLoopReq, lambda p, r: _metering_request(r.header), n=2
    ),
    "MV-METERING-SIGNED": RequestCase(cm.MeteringConfirmationReq, _unsigned, pair=_metering_pair),
    "MV-METERING-SESSION": RequestCase(
        cm.MeteringConfirmationReq,
        lambda p, r: _resigned_metering(r, p.evcc.ctx.contract.private_key, session_id=FOREIGN),
        pair=_metering_pair,
    ),
    "MV-METERING-CONTROL-MODE": RequestCase(  # Dynamic in a Scheduled session
        cm.MeteringConfirmationReq,
        lambda p, r: _resigned_metering(
            r,
            p.evcc.ctx.contract.private_key,
            scheduled_smdt_control_mode=None,
            dynamic_smdt_control_mode=cm.DynamicSmdtControlMode(),
        ),
        pair=_metering_pair,
    ),
    "MV-METERING-SIGNATURE": DecisionCase(  # signed by another contract's key
        cm.MeteringConfirmationReq,
        _metering_pair,
        lambda p, r: _resigned_metering(r, pf.foreign_contract().private_key),
    ),
    "MV-METERING-METER-INFO": DecisionCase(  # a reading the charger never sent, signed with the right key
        cm.MeteringConfirmationReq,
        _metering_pair,
        lambda p, r: _resigned_metering(
            r,
            p.evcc.ctx.contract.private_key,
            meter_info=replace(r.signed_metering_data.meter_info, charged_energy_reading_wh=10**6),
        ),
    ),
    # -- timers
    "V2G_SECC_Sequence_Timeout": TimerCase(_secc_sequence),
    "V2G_SECC_Ongoing_Timeout": TimerCase(
        _secc_guard(lambda: StallingEvse(schedule_forever=True)), peer_at_fault=False
    ),
    "V2G_SECC_EIM_Ongoing_Timeout": TimerCase(
        # shorter than the EV's 60 s ongoing timeout, or the EV gives up first
        _secc_guard(
            lambda: StallingEvse(auth=AuthorizationStatus.ONGOING), SeccConfig(timers=SeccTimers(eim_ongoing=30.0))
        ),
        peer_at_fault=False,
    ),
    "V2G_EVCC_Msg_Timeout": TimerCase(_evcc_message),
    "V2G_EVCC_CommunicationSetup_Timeout": TimerCase(
        _ev_timer(
            MinimalEvse,
            EvccTimers(message_scale=20),  # 2 s x 20 is longer than the 20 s limit
            drop=lambda m: isinstance(m, cm.SessionSetupRes),
        )
    ),
    "V2G_EVCC_Ongoing_Timeout": TimerCase(_ev_timer(lambda: StallingEvse(auth=AuthorizationStatus.ONGOING))),
    "V2G_EVCC_CableCheck_Timeout": TimerCase(_ev_timer(lambda: MinimalEvse(cable_check_steps=10**6))),
    "V2G_EVCC_PreCharge_Timeout": TimerCase(_ev_timer(lambda: StallingEvse(pre_charge_voltage=0.0))),
    "WeldingDetection_Timeout": TimerCase(_ev_timer(lambda: StallingEvse(welding_voltage=400.0))),
    # -- Plug & Charge: authorization
    "V2G20-2565": RequestCase(cm.AuthorizationReq, _other_challenge, pair=_pnc_pair),
    "MV-PNC-SIGNED": RequestCase(cm.AuthorizationReq, _unsigned, pair=_pnc_pair),
    "V2G20-461": DecisionCase(  # signed by another key than the contract's
        cm.AuthorizationReq,
        _pnc_pair,
        lambda p, r: _signed_by(
            r, r.pnc_a_req_authorization_mode, "PnC_AReqAuthorizationMode", pf.expired_contract().private_key
        ),
    ),
    "MV-PNC-REFUSED": DecisionCase(
        cm.AuthorizationReq, lambda: _pnc_pair(evse=StallingEvse(auth=AuthorizationStatus.REJECTED))
    ),
    "MV-PNC-CONTRACT-EXPIRED": DecisionCase(cm.AuthorizationReq, lambda: _pnc_pair(pf.expired_contract())),
    "MV-PNC-CONTRACT-NOT-YET-VALID": DecisionCase(cm.AuthorizationReq, lambda: _pnc_pair(pf.not_yet_valid_contract())),
    "MV-PNC-CONTRACT-REVOKED": DecisionCase(
        cm.AuthorizationReq, lambda: _pnc_pair(revocation=pf.revocation_of(pf.good_contract()))
    ),
    "MV-PNC-CONTRACT-INVALID": DecisionCase(cm.AuthorizationReq, lambda: _pnc_pair(pf.broken_chain_contract())),
    "MV-PNC-CONTRACT-EMSP-UNKNOWN": DecisionCase(cm.AuthorizationReq, lambda: _pnc_pair(pf.foreign_contract())),
    # -- Plug & Charge: certificate installation
    "MV-INSTALLATION-OFFERED": RequestCase(  # the charger has no contract-certificate backend
        cm.AuthorizationReq, lambda p, r: minimal(cm.CertificateInstallationReq, header=r.header), pair=_pnc_pair
    ),
    "MV-INSTALLATION-SIGNED": RequestCase(cm.CertificateInstallationReq, _unsigned, pair=_installing_pair),
    "MV-INSTALLATION-KEY": ResponseCase(
        cm.CertificateInstallationReq,
        lambda p, req, res: replace(res, signed_installation_data=pf.with_two_keys(res.signed_installation_data)),
        pair=_installing_pair,
        secc_sends_it=lambda: _installing_pair(pf.Doctored(pf.local_backend(), change=pf.with_two_keys)),
    ),
    "MV-INSTALLATION-SIGNATURE": DecisionCase(  # signed by another key than the provisioning leaf's
        cm.CertificateInstallationReq,
        _installing_pair,
        lambda p, r: _signed_by(
            r, r.oem_provisioning_certificate_chain, "OEMProvisioningCertificateChain", pf.good_contract().private_key
        ),
    ),
    **_backend_refusals(),
}


KIND_OF_CASE = {
    RequestCase: RuleKind.REQUEST,
    ResponseCase: RuleKind.RESPONSE,
    DecisionCase: RuleKind.DECISION,
    TimerCase: RuleKind.TIMER,
}


def _ids(kind: type) -> list[str]:
    return [rule_id for rule_id, case in SCENARIOS.items() if isinstance(case, kind)]


# -- the map is complete -----------------------------------------------------------------------------------
def test_every_rule_has_a_scenario() -> None:
    """A new rule without a scenario (or a scenario of a rule that is gone) fails the suite. Rules of conduct
    (transport, TLS, how sessions end) are judged on the wire: the conformance catalogue's tests cover them."""
    assert set(SCENARIOS) == {rule_id for rule_id, rule in RULES.items() if rule.kind is not RuleKind.CONDUCT}


def test_every_scenario_breaks_a_rule_of_its_kind() -> None:
    assert {rule_id: KIND_OF_CASE[type(case)] for rule_id, case in SCENARIOS.items()} == {
        rule_id: RULES[rule_id].kind for rule_id in SCENARIOS
    }
    assert set(_ids(TimerCase)) == set(TIMER_RULES)


def test_rule_ids_are_unique_and_sourced() -> None:
    rules = list(all_rules())
    assert len({r.id for r in rules}) == len(rules)
    for rule in rules:
        assert rule.text and rule.source, rule
        # a code to answer: request rules (but a message that is no request gets no answer) and decisions
        answered = rule.kind is RuleKind.DECISION or (rule.kind is RuleKind.REQUEST and rule is not NOT_A_REQUEST)
        assert (rule.code is not None) is answered, rule


# -- request rules ------------------------------------------------------------------------------------------
def _refusal(rule: Rule, actions: list[Action]) -> None:
    (violation,) = violations(actions)
    assert isinstance(violation.error, RemoteProtocolError) and not isinstance(violation.error, PeerTimeout)
    assert violation.rule_id == rule.id and violation.error.rule is rule


@pytest.mark.parametrize("rule_id", _ids(RequestCase))
def test_request_rule_secc_answers_its_code(rule_id: str) -> None:
    rule, case = RULES[rule_id], SCENARIOS[rule_id]
    pair = case.pair()
    assert not violations(pair.to_secc(pair.at(case.at, case.n)))  # the request as the EV built it is fine here
    pair = case.pair()
    bad = case.bad(pair, pair.at(case.at, case.n))
    actions = pair.to_secc(bad)
    _refusal(rule, actions)
    if rule.code is None:  # not a request at all: nothing to answer
        assert [type(a) for a in actions] == [Violation, Close]
    else:
        (send,) = [a for a in actions if isinstance(a, Send)]
        assert type(send.message) is BY_REQUEST[type(bad)].response
        assert send.message.response_code == rule.code
        exi.encode(send.message, schema=send.schema)  # the refusal goes on the wire as it is
        assert Event("rule", {"rule": rule.id, "code": str(rule.code)}) in actions
    failed = str(rule.code).startswith("FAILED") or rule.code is None
    assert (pair.secc.closed is not None) is failed
    if failed:
        assert pair.secc.closed.error is violations(actions)[0].error and pair.secc.phase is Phase.ENDED


@pytest.mark.parametrize("rule_id", _ids(RequestCase))
def test_request_rule_evcc_refuses_to_send(rule_id: str) -> None:
    rule, case = RULES[rule_id], SCENARIOS[rule_id]
    pair = case.pair()
    bad = case.bad(pair, pair.at(case.at, case.n))
    state = pair.evcc.state
    assert state == pair.secc.state  # the same state on both sides
    with pytest.raises(LocalProtocolError) as refused:
        pair.evcc._send(bad, pair.now)
    assert refused.value.rule_id == rule.id and refused.value.rule is rule
    assert pair.evcc.state is state


@pytest.mark.parametrize("rule_id", [i for i in _ids(RequestCase) if SCENARIOS[i].ev_builds_it])
def test_request_rule_evcc_refuses_what_its_controller_asks(rule_id: str) -> None:
    """The public path: the EV's controller makes the EVCC build the request; the EVCC refuses and closes."""
    pair = SCENARIOS[rule_id].ev_builds_it()
    with pytest.raises(LocalProtocolError) as refused:
        pair.run()
    assert refused.value.rule_id == rule_id
    assert pair.evcc.closed is not None and not pair.evcc.closed.ok and pair.evcc.phase is Phase.ENDED
    assert rule_id in pair.evcc.closed.reason and pair.ev.ended == (pair.evcc.closed.reason, False)
    assert not violations(pair.secc_actions)  # it never went out


# -- response rules -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("rule_id", _ids(ResponseCase))
def test_response_rule_evcc_closes(rule_id: str) -> None:
    rule, case = RULES[rule_id], SCENARIOS[rule_id]
    pair = case.pair()
    request = pair.at(case.at)
    if case.send is not None:  # the EV sends another request of the exchange (our EVCC accepts to)
        request = case.send(pair, request)
        pair.evcc._send(request, pair.now)
    response = pair.answer(request)
    actions = pair.evcc.receive(case.bad(pair, request, response), pair.now)
    assert [type(a) for a in actions] == [Violation, Close]
    _refusal(rule, actions)
    close = pair.evcc.closed
    assert close is actions[1] and not close.ok and close.error is actions[0].error
    assert pair.evcc.phase is Phase.ENDED and pair.ev.ended == (close.reason, False)


@pytest.mark.parametrize("rule_id", [i for i in _ids(ResponseCase) if SCENARIOS[i].secc_sends_it])
def test_response_rule_secc_refuses_to_send(rule_id: str) -> None:
    pair = SCENARIOS[rule_id].secc_sends_it()
    with pytest.raises(LocalProtocolError) as refused:
        pair.run()
    assert refused.value.rule_id == rule_id and refused.value.rule is RULES[rule_id]
    # nothing goes out, and the session is over (the charger is told)
    (exchange,) = [x for x in EXCHANGES if RULES[rule_id] in x.response_rules]
    assert not [m for m in sends(pair.secc_actions) if isinstance(m, exchange.response)]
    assert pair.secc.closed is not None and not pair.secc.closed.ok and pair.evse.ended == pair.secc.closed.reason


def test_every_unprovokable_response_rule_says_why() -> None:
    for rule_id in _ids(ResponseCase):
        case = SCENARIOS[rule_id]
        assert bool(case.secc_sends_it) != bool(case.unprovokable), rule_id


# -- decisions ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rule_id", _ids(DecisionCase))
def test_decision_is_applied(rule_id: str) -> None:
    rule, case = RULES[rule_id], SCENARIOS[rule_id]
    pair = case.pair()
    request = case.request(pair, pair.at(case.at, case.n))
    actions = pair.to_secc(request)
    (send,) = [a for a in actions if isinstance(a, Send)]
    assert send.message.response_code == rule.code
    exi.encode(send.message, schema=send.schema)  # the code goes on the wire as it is
    assert rule_events(actions) == [Event("rule", {"rule": rule.id, "code": str(rule.code)})]
    assert not violations(actions)  # the EV broke nothing
    assert (pair.secc.closed is not None) is str(rule.code).lower().startswith("failed")


# -- timers -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rule_id", _ids(TimerCase))
def test_timer_rule(rule_id: str) -> None:
    case = SCENARIOS[rule_id]
    seen, events = case.run()
    if case.peer_at_fault:
        (violation,) = seen
        assert isinstance(violation.error, PeerTimeout) and violation.rule_id == rule_id
    else:
        assert seen == [] and [e.detail for e in events] == [{"rule": rule_id, "code": "FAILED"}]


# -- both machines read the same table ----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", list(ControlMode), ids=lambda m: m.name.lower())
@pytest.mark.parametrize("service", [ServiceId.DC, ServiceId.DC_BPT, ServiceId.MCS, ServiceId.MCS_BPT], ids=str)
def test_both_sides_derive_the_same_state(service: ServiceId, mode: ControlMode) -> None:
    pair = Pair(MinimalEv(service=service, control_mode=mode, charge_loops=3))
    for _ in range(200):
        if pair.evcc.closed is not None:
            break
        if not pair.outbox:
            pair._wait()
            continue
        pair._exchange(pair.outbox.pop(0))
        assert pair.evcc.state == pair.secc.state
    assert pair.evcc.closed.ok and pair.secc.closed.ok


NAMES = [x.name for x in EXCHANGES]
# the walk's usual step per phase (request name, variant of `_request`): a plain session that stops charging
# after one loop and renegotiates its service after welding detection, round and round
MAIN_LINE = {
    Phase.START: ("supportedAppProtocolReq", 0),
    Phase.SAP_DONE: ("SessionSetupReq", 0),
    Phase.SESSION: ("AuthorizationSetupReq", 0),
    Phase.AUTHORIZATION_SETUP: ("AuthorizationReq", 0),
    Phase.AUTHORIZATION_ONGOING: ("AuthorizationReq", 0),
    Phase.AUTHORIZED: ("ServiceDiscoveryReq", 0),
    Phase.DISCOVERED: ("ServiceDetailReq", 0),
    Phase.DETAILED: ("ServiceSelectionReq", 0),
    Phase.SELECTED: ("DC_ChargeParameterDiscoveryReq", 0),
    Phase.CHARGE_PARAMETERS: ("ScheduleExchangeReq", 0),
    Phase.SCHEDULE_ONGOING: ("ScheduleExchangeReq", 0),
    Phase.RENEGOTIATION: ("ScheduleExchangeReq", 0),
    Phase.SCHEDULED: ("DC_CableCheckReq", 0),
    Phase.CABLE_CHECK_ONGOING: ("DC_CableCheckReq", 0),
    Phase.CABLE_CHECKED: ("DC_PreChargeReq", 0),
    Phase.PRE_CHARGE: ("PowerDeliveryReq", 0),
    Phase.POWER_ON: ("DC_ChargeLoopReq", 0),
    Phase.CHARGE_LOOP: ("PowerDeliveryReq", 1),
    Phase.POWER_OFF: ("DC_WeldingDetectionReq", 0),
    Phase.WELDING_DETECTION: ("SessionStopReq", 2),
}


def _request(name: str, variant: int, secc: SeccSession, now: float) -> Any:
    """A request of exchange `name` for the SECC's session: variant 0 is the one a good EV sends, others differ."""
    state = secc.state
    head = ct.MessageHeader(session_id=state.session_id, time_stamp=int(now))
    mode = state.control_mode
    other = ControlMode.DYNAMIC if mode is ControlMode.SCHEDULED else ControlMode.SCHEDULED
    if name == "supportedAppProtocolReq":
        namespace = ISO2_NS if variant == 1 else DC_NAMESPACE
        entry = ap.AppProtocol(
            protocol_namespace=namespace, version_number_major=1, version_number_minor=0, schema_id=1, priority=1
        )
        return ap.SupportedAppProtocolReq(app_protocol=[entry])
    if name == "SessionSetupReq":
        return cm.SessionSetupReq(header=replace(head, session_id=NEW_SESSION), evccid="WMA06XZZ1MP123456")
    if name == "AuthorizationSetupReq":
        return cm.AuthorizationSetupReq(header=head)
    if name == "AuthorizationReq":
        if variant == 1:
            pnc = minimal(cm.PncAReqAuthorizationMode, gen_challenge=bytes(16))
            return cm.AuthorizationReq(
                header=head, selected_authorization_service=cm.Authorization.PnC, pnc_a_req_authorization_mode=pnc
            )
        eim = None if variant == 2 else cm.EimAReqAuthorizationMode()
        return cm.AuthorizationReq(
            header=head, selected_authorization_service=cm.Authorization.EIM, eim_a_req_authorization_mode=eim
        )
    if name == "MeteringConfirmationReq":  # the walk's sessions are EIM: refused in the charge loop (MV-METERING-PNC)
        return _metering_request(head)
    if name == "CertificateInstallationReq":  # never offered by the walk's charger (no PnC settings)
        return minimal(cm.CertificateInstallationReq, header=head)
    if name == "ServiceDiscoveryReq":
        ids = {1: [8, 9], 2: [1], 3: [2]}.get(variant)
        return cm.ServiceDiscoveryReq(
            header=head, supported_service_ids=None if ids is None else cm.ServiceIdList(service_id=ids)
        )
    if name == "ServiceDetailReq":
        return cm.ServiceDetailReq(header=head, service_id=[2, 6, 8, 9, 1, 65][variant])
    if name == "ServiceSelectionReq":
        detailed = sorted(state.parameter_sets) or [2]
        service = 1 if variant == 5 else detailed[variant % len(detailed)]
        selected = cm.SelectedService(service_id=service, parameter_set_id=[1, 2, 1, 2, 3, 1][variant])
        vas = None
        if variant == 4:
            vas = cm.SelectedServiceList(selected_service=[cm.SelectedService(service_id=65, parameter_set_id=1)])
        return cm.ServiceSelectionReq(header=head, selected_energy_transfer_service=selected, selected_vas_list=vas)
    if name == "DC_ChargeParameterDiscoveryReq":
        bpt = state.bpt if variant != 1 else not state.bpt
        limits = MCS_TRUCK if bpt else MCS_TRUCK.unidirectional()
        if variant == 2:
            limits = replace(limits, max_voltage=-1.0)
        return dc.DcChargeParameterDiscoveryReq(
            header=head, dc_cpd_req_energy_transfer_mode=request_mode(limits, bpt, None, False)
        )
    if name == "ScheduleExchangeReq":
        req = cm.ScheduleExchangeReq(header=head, maximum_supporting_points=1024)
        if (other if variant == 1 else mode) is ControlMode.DYNAMIC:
            req.dynamic_se_req_control_mode = dynamic_request(ENERGY)
        else:
            req.scheduled_se_req_control_mode = scheduled_request(ENERGY)
        return req
    if name == "DC_CableCheckReq":
        return dc.DcCableCheckReq(header=head)
    if name == "DC_PreChargeReq":
        processing = ct.Processing.Ongoing if variant == 1 else ct.Processing.Finished
        target = -5.0 if variant == 2 else 768.0
        return dc.DcPreChargeReq(
            header=head, ev_processing=processing, ev_present_voltage=rn(768.0), ev_target_voltage=rn(target)
        )
    if name == "PowerDeliveryReq":
        progress = [CP.Start, CP.Stop, CP.ScheduleRenegotiation, CP.Standby, CP.Start, CP.Start][variant]
        processing = ct.Processing.Ongoing if variant == 5 else ct.Processing.Finished
        req = cm.PowerDeliveryReq(header=head, ev_processing=processing, charge_progress=progress)
        if progress == CP.Start:
            if mode is ControlMode.SCHEDULED:
                req = _with_tuple(_pd_start(head), 2 if variant == 4 else 1)
                req.ev_processing = processing
            if state.bpt:
                req.bpt_channel_selection = cm.ChannelSelection.Charge
        return req
    if name == "DC_ChargeLoopReq":
        loop_mode = other if variant == 1 else mode
        bpt = (not state.bpt) if variant == 2 else state.bpt
        limits = MCS_TRUCK if bpt else MCS_TRUCK.unidirectional()
        if variant == 3:
            limits = replace(limits, max_charge_current=-1.0)
        return dc.DcChargeLoopReq(
            header=head,
            meter_info_requested=False,
            ev_present_voltage=rn(768.0),
            cl_req_control_mode=loop_request(loop_mode, bpt, _loop_step(limits=limits)),
        )
    if name == "DC_WeldingDetectionReq":
        return dc.DcWeldingDetectionReq(header=head, ev_processing=ct.Processing.Ongoing)
    if name == "SessionStopReq":
        kind = [CS.Terminate, CS.Pause, CS.ServiceRenegotiation, CS.Terminate, CS.Pause, CS.ServiceRenegotiation]
        return cm.SessionStopReq(header=head, charging_session=kind[variant])
    raise AssertionError(name)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), cable_check_steps=st.integers(0, 2), authorization_steps=st.integers(0, 2))
def test_random_requests_follow_the_table_or_are_refused(data, cable_check_steps: int, authorization_steps: int):
    """Random request sequences (mostly what the table allows next): the SECC never crashes; a request the table
    does not allow in the phase is answered FAILED_SequenceError (Failed_NoNegotiation for SAP) and ends the
    session; an allowed one is answered OK, or with the code of a rule it breaks or of a decision; the phase
    afterwards is the row's `next_phase` of the outcome. An EVCC in the same state refuses to send exactly the
    requests the SECC reported as violations, with the same rule id: one table decides for both."""
    evse = MinimalEvse(cable_check_steps=cable_check_steps, authorization_steps=authorization_steps)
    secc = SeccSession(evse)
    mirror = EvccSession(MinimalEv())
    now = T0
    secc.start(now)
    walk: list[tuple[str, int, str, str]] = []  # (phase, variant, request, code): the assertion messages
    for _ in range(80):
        if secc.closed is not None:
            break
        now += 0.1
        before = secc.state
        # mostly the main line's next step (hypothesis shrinks towards 0), sometimes another request the table
        # allows here (any variant), SessionStop, or any request at all
        choice = data.draw(st.integers(0, 15))
        allowed_here = [x.name for x in EXCHANGES if before.phase in x.allowed_in]
        if choice < 10 and before.phase in MAIN_LINE:
            name, variant = MAIN_LINE[before.phase]
        else:
            names = NAMES if choice == 10 else ["SessionStopReq"] if choice == 11 else allowed_here or NAMES
            name, variant = data.draw(st.sampled_from(names)), data.draw(st.integers(0, 5))
        request = _request(name, variant, secc, now)
        exchange = BY_REQUEST[type(request)]

        mirror.ctx.state = before
        try:
            mirror._send(request, now)
            refused = None
        except LocalProtocolError as exc:
            refused = exc.rule_id

        actions = secc.receive(request, now)  # never raises
        (response,) = sends(actions)
        code = str(response.response_code)
        walk.append((str(before.phase), variant, name, code))
        assert type(response) is exchange.response, walk
        reported = [v.rule_id for v in violations(actions)]
        assert reported == ([] if refused is None else [refused]), walk

        if before.phase not in exchange.allowed_in:
            assert code == ("Failed_NoNegotiation" if name == "supportedAppProtocolReq" else "FAILED_SequenceError")
            assert reported == ["MV-SEQUENCE"] and secc.phase is Phase.ENDED, walk
            continue
        if reported:
            (rule,) = [r for r in exchange.request_rules if r.id == reported[0]]
            assert code == str(rule.code), walk
        elif not code.startswith("OK"):  # a decision of the row (or the SECC's Ongoing guard)
            (event,) = rule_events(actions)
            applied = {r.id for r in exchange.decisions} | {exchange.secc_guard}
            assert event.detail == {"rule": event.detail["rule"], "code": code} and event.detail["rule"] in applied
        outcome = exchange.handlers.outcome(request, response)
        expected = Phase.ENDED if outcome is Outcome.FAILED else exchange.next_phase.get(outcome, before.phase)
        assert secc.phase is expected, walk
        assert (secc.closed is not None) is (expected is Phase.ENDED), walk
