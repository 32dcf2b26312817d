"""The SECC's response-code rules, driven request by request (PROTOCOL.md sections 3, 4 and 7).

Every test feeds hand-built requests to a `SeccSession` and checks the response code, that the response
encodes with the EXI codec of its schema, and that a FAILED code ends the session (a `Close` action, phase
ENDED) while OK and WARNING codes let it go on.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import pytest

from examples.minimal_controllers import MCS_TRUCK, MinimalEvse
from stack import exi
from stack.messages import app_protocol as ap
from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct
from stack.messages.minimal import minimal
from stack.session.actions import Close, Event, LocalProtocolError, Send, Violation
from stack.session.controller import (
    AuthorizationStatus,
    EnergyRequest,
    EvLoopStep,
    ScheduleAnswer,
)
from stack.session.errors import RemoteProtocolError
from stack.session.exchanges.charge_loop import RESPONSE_MODES, loop_request
from stack.session.exchanges.charge_parameters import request_mode
from stack.session.exchanges.schedule_exchange import dynamic_request, scheduled_request
from stack.session.rulebook import BY_NAME, EXCHANGES, exchange_of
from stack.session.secc import SeccConfig, SeccSession, SessionStore
from stack.session.services import BPT_SERVICES, ControlMode, ServiceId, dc_offer
from stack.session.state import Phase
from stack.session.units import rn

RC = ct.ResponseCode
T0 = 1_795_000_000.0
DC_NS = "urn:iso:std:iso:15118:-20:DC"
ISO2_NS = "urn:iso:15118:2:2013:MsgDef"
DIN_NS = "urn:din:70121:2012:MsgDef"
NEW = bytes(8)
FOREIGN = bytes.fromhex("0123456789abcdef")
DC_FAMILY = (ServiceId.DC, ServiceId.DC_BPT, ServiceId.MCS, ServiceId.MCS_BPT)
PARAMETER_SET = {ControlMode.SCHEDULED: 1, ControlMode.DYNAMIC: 2}  # dc_offer numbers its sets in this order
ENERGY = EnergyRequest(target_energy=196_000, max_energy=252_000, min_energy=0, departure_time=7200)
# the rulebook's phases per request (services and modes aside): the old flow table's ALLOWED
ALLOWED = {phase: {x.name for x in EXCHANGES if phase in x.allowed_in} for phase in Phase}


# -- an EVSE controller stub -------------------------------------------------------------------------
@dataclass
class StubEvse(MinimalEvse):
    """`MinimalEvse` with knobs for the rules: fixed authorization, failing contactors, Ongoing schedules."""

    cable_check_steps: int = 0
    auth: AuthorizationStatus | None = None  # None: MinimalEvse's behaviour
    contactor_fails_on: str | None = None  # "start" / "stop"
    schedule_ongoing: bool = False
    contactor_calls: tuple = ()

    def authorize(self, now: float, emaid: str | None = None) -> AuthorizationStatus:
        return super().authorize(now) if self.auth is None else self.auth

    def power_delivery(self, start: bool, discharge: bool, now: float) -> bool:
        self.contactor_calls += ((start, discharge),)
        return self.contactor_fails_on != ("start" if start else "stop")

    def schedule(self, service, mode, request, max_entries, now) -> ScheduleAnswer:
        if self.schedule_ongoing:
            return ScheduleAnswer(finished=False)
        return super().schedule(service, mode, request, max_entries, now)


# -- a driver that plays the EV by hand --------------------------------------------------------------
@dataclass
class Reply:
    message: object
    actions: list

    @property
    def code(self) -> str:
        return str(self.message.response_code)

    @property
    def close(self) -> Close | None:
        return next((a for a in self.actions if isinstance(a, Close)), None)

    def events(self, kind: str) -> list[Event]:
        return [a for a in self.actions if isinstance(a, Event) and a.kind == kind]

    @property
    def violations(self) -> list[str]:
        """Rule ids of the EV's violations the SECC reported with this reply."""
        return [a.rule_id for a in self.actions if isinstance(a, Violation)]


class Ev:
    """Builds requests with the SECC's current SessionID and feeds them, checking every response."""

    def __init__(self, evse: StubEvse | None = None, config: SeccConfig | None = None, **kw) -> None:
        self.evse = evse or StubEvse()
        self.secc = SeccSession(self.evse, config, **kw)
        self.now = T0
        self.secc.start(self.now)
        self.service = ServiceId.DC
        self.mode = ControlMode.SCHEDULED
        self.sid: bytes | None = None  # None: use the SECC's SessionID

    # plumbing
    def header(self) -> ct.MessageHeader:
        return ct.MessageHeader(
            session_id=self.secc.session_id if self.sid is None else self.sid, time_stamp=int(self.now)
        )

    def send(self, request: object, dt: float = 0.1) -> Reply:
        self.now += dt
        actions = self.secc.receive(request, self.now)
        sends = [a for a in actions if isinstance(a, Send)]
        assert len(sends) == 1, actions
        exchange = exchange_of(request)
        sent = sends[0]
        assert type(sent.message) is exchange.response
        assert sent.schema == exchange.schema
        exi.encode(sent.message, schema=sent.schema)  # every response must encode
        reply = Reply(sent.message, actions)
        for violation in (a for a in actions if isinstance(a, Violation)):  # a broken request rule: typed, with its id
            assert isinstance(violation.error, RemoteProtocolError) and violation.rule_id
            assert violation.rule_id in [e.detail["rule"] for e in reply.events("rule")]
        code = str(getattr(sent.message, "response_code", ""))
        if code.startswith(("FAILED", "Failed")):
            assert reply.close is not None and not reply.close.ok
            assert self.secc.phase is Phase.ENDED and self.secc.closed is reply.close
            assert self.secc.deadline is None
            assert self.evse.ended is not None  # the controller learns the session ended
        return reply

    @property
    def bpt(self) -> bool:
        return self.service in BPT_SERVICES

    # requests
    def sap(self, *entries: tuple[str, int, int, int, int]) -> ap.SupportedAppProtocolReq:
        entries = entries or ((DC_NS, 1, 0, 1, 1),)
        return ap.SupportedAppProtocolReq(
            app_protocol=[
                ap.AppProtocol(
                    protocol_namespace=ns, version_number_major=ma, version_number_minor=mi, schema_id=s, priority=p
                )
                for ns, ma, mi, s, p in entries
            ]
        )

    def session_setup(self, session_id: bytes = NEW) -> cm.SessionSetupReq:
        return cm.SessionSetupReq(
            header=ct.MessageHeader(session_id=session_id, time_stamp=int(self.now)), evccid="WMA06XZZ1MP123456"
        )

    def authorization_setup(self) -> cm.AuthorizationSetupReq:
        return cm.AuthorizationSetupReq(header=self.header())

    def authorization(self, pnc: bool = False) -> cm.AuthorizationReq:
        if pnc:
            return cm.AuthorizationReq(
                header=self.header(),
                selected_authorization_service=cm.Authorization.PnC,
                pnc_a_req_authorization_mode=minimal(cm.PncAReqAuthorizationMode, gen_challenge=bytes(16)),
            )
        return cm.AuthorizationReq(
            header=self.header(),
            selected_authorization_service=cm.Authorization.EIM,
            eim_a_req_authorization_mode=cm.EimAReqAuthorizationMode(),
        )

    def service_discovery(self, ids: list[int] | None = None) -> cm.ServiceDiscoveryReq:
        supported = None if ids is None else cm.ServiceIdList(service_id=ids)
        return cm.ServiceDiscoveryReq(header=self.header(), supported_service_ids=supported)

    def service_detail(self, service_id: int | None = None) -> cm.ServiceDetailReq:
        return cm.ServiceDetailReq(header=self.header(), service_id=int(service_id or self.service))

    def service_selection(self, service_id: int | None = None, parameter_set: int | None = None, vas=None):
        selected = cm.SelectedService(
            service_id=int(service_id or self.service),
            parameter_set_id=PARAMETER_SET[self.mode] if parameter_set is None else parameter_set,
        )
        vas_list = None if vas is None else cm.SelectedServiceList(selected_service=vas)
        return cm.ServiceSelectionReq(
            header=self.header(), selected_energy_transfer_service=selected, selected_vas_list=vas_list
        )

    def cpd(self, bpt: bool | None = None) -> dc.DcChargeParameterDiscoveryReq:
        bpt = self.bpt if bpt is None else bpt
        limits = MCS_TRUCK if bpt else MCS_TRUCK.unidirectional()
        mode = request_mode(limits, bpt, 90, negative=False)
        return dc.DcChargeParameterDiscoveryReq(header=self.header(), dc_cpd_req_energy_transfer_mode=mode)

    def schedule_exchange(self, mode: ControlMode | None = None) -> cm.ScheduleExchangeReq:
        req = cm.ScheduleExchangeReq(header=self.header(), maximum_supporting_points=1024)
        if (mode or self.mode) is ControlMode.DYNAMIC:
            req.dynamic_se_req_control_mode = dynamic_request(ENERGY)
        else:
            req.scheduled_se_req_control_mode = scheduled_request(ENERGY)
        return req

    def cable_check(self) -> dc.DcCableCheckReq:
        return dc.DcCableCheckReq(header=self.header())

    def pre_charge(self, processing: ct.Processing = ct.Processing.Finished) -> dc.DcPreChargeReq:
        return dc.DcPreChargeReq(
            header=self.header(),
            ev_processing=processing,
            ev_present_voltage=rn(768),
            ev_target_voltage=rn(768),
        )

    def power_delivery(
        self,
        progress: cm.ChargeProgress = cm.ChargeProgress.Start,
        tuple_id: int | None = 1,
        processing: ct.Processing = ct.Processing.Finished,
    ) -> cm.PowerDeliveryReq:
        req = cm.PowerDeliveryReq(header=self.header(), ev_processing=processing, charge_progress=progress)
        if progress == cm.ChargeProgress.Start and self.mode is ControlMode.SCHEDULED and tuple_id is not None:
            req.ev_power_profile = cm.EvPowerProfile(
                time_anchor=int(self.now),
                scheduled_evppt_control_mode=cm.ScheduledEvpptControlMode(selected_schedule_tuple_id=tuple_id),
                ev_power_profile_entries=cm.EvPowerProfileEntryList(
                    ev_power_profile_entry=[cm.PowerScheduleEntry(duration=3600, power=rn(750_000))]
                ),
            )
        if progress == cm.ChargeProgress.Start and self.bpt:
            req.bpt_channel_selection = cm.ChannelSelection.Charge
        return req

    def charge_loop(self, mode: ControlMode | None = None, bpt: bool | None = None) -> dc.DcChargeLoopReq:
        mode = mode or self.mode
        bpt = self.bpt if bpt is None else bpt
        limits = MCS_TRUCK if bpt else MCS_TRUCK.unidirectional()
        step = EvLoopStep(
            present_voltage=768, target_current=500, target_voltage=800, soc=55, energy=ENERGY, limits=limits
        )
        return dc.DcChargeLoopReq(
            header=self.header(),
            meter_info_requested=False,
            ev_present_voltage=rn(768),
            cl_req_control_mode=loop_request(mode, bpt, step),
        )

    def welding_detection(self) -> dc.DcWeldingDetectionReq:
        return dc.DcWeldingDetectionReq(header=self.header(), ev_processing=ct.Processing.Ongoing)

    def session_stop(self, kind: cm.ChargingSession = cm.ChargingSession.Terminate) -> cm.SessionStopReq:
        return cm.SessionStopReq(header=self.header(), charging_session=kind)

    def metering_confirmation(self) -> cm.MeteringConfirmationReq:
        head = self.header()
        data = cm.SignedMeteringData(
            id="id1",
            session_id=head.session_id,
            meter_info=ct.MeterInfo(meter_id="SIMPLE-METER", charged_energy_reading_wh=0),
            dynamic_smdt_control_mode=cm.DynamicSmdtControlMode(),
        )
        return cm.MeteringConfirmationReq(header=head, signed_metering_data=data)

    def request(self, name: str) -> object:
        """A valid request of exchange `name` for the current session."""
        return {
            "supportedAppProtocolReq": self.sap,
            "SessionSetupReq": self.session_setup,
            "AuthorizationSetupReq": self.authorization_setup,
            "AuthorizationReq": self.authorization,
            "ServiceDiscoveryReq": self.service_discovery,
            "ServiceDetailReq": self.service_detail,
            "ServiceSelectionReq": self.service_selection,
            "DC_ChargeParameterDiscoveryReq": self.cpd,
            "ScheduleExchangeReq": self.schedule_exchange,
            "DC_CableCheckReq": self.cable_check,
            "DC_PreChargeReq": self.pre_charge,
            "PowerDeliveryReq": self.power_delivery,
            "DC_ChargeLoopReq": self.charge_loop,
            "DC_WeldingDetectionReq": self.welding_detection,
            "MeteringConfirmationReq": self.metering_confirmation,
            "CertificateInstallationReq": lambda: minimal(cm.CertificateInstallationReq, header=self.header()),
            "SessionStopReq": self.session_stop,
        }[name]()

    # the happy path, step by step
    MAIN_LINE = (
        ("supportedAppProtocolReq", Phase.SAP_DONE),
        ("SessionSetupReq", Phase.SESSION),
        ("AuthorizationSetupReq", Phase.AUTHORIZATION_SETUP),
        ("AuthorizationReq", Phase.AUTHORIZED),
        ("ServiceDiscoveryReq", Phase.DISCOVERED),
        ("ServiceDetailReq", Phase.DETAILED),
        ("ServiceSelectionReq", Phase.SELECTED),
        ("DC_ChargeParameterDiscoveryReq", Phase.CHARGE_PARAMETERS),
        ("ScheduleExchangeReq", Phase.SCHEDULED),
        ("DC_CableCheckReq", Phase.CABLE_CHECKED),
        ("DC_PreChargeReq", Phase.PRE_CHARGE),
        ("PowerDeliveryReq", Phase.POWER_ON),
        ("DC_ChargeLoopReq", Phase.CHARGE_LOOP),
        ("PowerDeliveryStop", Phase.POWER_OFF),
        ("DC_WeldingDetectionReq", Phase.WELDING_DETECTION),
    )

    def advance(self, until: Phase, service: ServiceId = ServiceId.DC, mode: ControlMode = ControlMode.SCHEDULED):
        """Walk the happy path until the SECC is in phase `until`."""
        self.service, self.mode = service, mode
        phases = [Phase.START] + [p for _, p in self.MAIN_LINE]
        for name, phase in self.MAIN_LINE[phases.index(self.secc.phase) :]:
            if self.secc.phase is until:
                return self
            stop = name == "PowerDeliveryStop"
            reply = self.send(self.power_delivery(cm.ChargeProgress.Stop) if stop else self.request(name))
            assert reply.code.startswith("OK"), (name, reply.code)
            assert reply.close is None
            assert self.secc.phase is phase, (name, self.secc.phase)
        assert self.secc.phase is until
        return self


def ended(ev: Ev, reply: Reply, code: str) -> None:
    assert reply.code == code
    assert reply.close is not None and not reply.close.ok and not reply.close.paused
    assert ev.secc.phase is Phase.ENDED
    assert any(e.detail.get("code") == code for e in reply.events("failed"))
    with pytest.raises(LocalProtocolError):  # nothing more is accepted
        ev.secc.receive(ev.session_stop(), ev.now + 1)


def goes_on(ev: Ev, reply: Reply, code: str) -> None:
    assert reply.code == code
    assert reply.close is None
    assert ev.secc.closed is None and ev.secc.phase is not Phase.ENDED
    assert ev.secc.deadline == pytest.approx(ev.now + ev.secc.config.timers.sequence)


# -- SupportedAppProtocol ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "entries",
    [
        ((ISO2_NS, 2, 0, 1, 1), (DIN_NS, 2, 0, 2, 2)),
        ((DC_NS, 2, 0, 1, 1),),  # right namespace, wrong major version
        (("urn:iso:std:iso:15118:-20:AC", 1, 0, 3, 1),),  # a -20 namespace this DC charger does not speak
    ],
    ids=["-2_and_din", "dc_major_2", "ac_only"],
)
def test_sap_without_supported_namespace_fails(entries) -> None:
    ev = Ev()
    reply = ev.send(ev.sap(*entries))
    assert reply.code == "Failed_NoNegotiation"
    assert reply.message.schema_id is None
    assert reply.close is not None and ev.secc.phase is Phase.ENDED
    with pytest.raises(LocalProtocolError):
        ev.secc.receive(ev.session_setup(), ev.now)


@pytest.mark.parametrize(
    ("entries", "schema_id"),
    [
        # [V2G20-167]: the highest-priority (lowest number) supported entry wins, whatever the list order
        (((DC_NS, 1, 0, 5, 3), (DC_NS, 1, 0, 7, 2), (ISO2_NS, 2, 0, 9, 1)), 7),
        (((ISO2_NS, 2, 0, 1, 1), (DC_NS, 1, 0, 2, 2)), 2),
        (((DC_NS, 1, 0, 4, 20), (DIN_NS, 2, 0, 3, 1)), 4),
        (((DC_NS, 2, 0, 11, 1), (DC_NS, 1, 0, 12, 2)), 12),  # same namespace, unsupported major first
    ],
)
def test_sap_selects_highest_priority_supported_entry(entries, schema_id: int) -> None:
    ev = Ev()
    reply = ev.send(ev.sap(*entries))
    goes_on(ev, reply, "OK_SuccessfulNegotiation")
    assert reply.message.schema_id == schema_id
    assert ev.secc.phase is Phase.SAP_DONE


@pytest.mark.parametrize("minor", [1, 7])
def test_sap_minor_version_deviation(minor: int) -> None:
    ev = Ev()
    reply = ev.send(ev.sap((DC_NS, 1, minor, 3, 1)))
    goes_on(ev, reply, "OK_SuccessfulNegotiationWithMinorDeviation")
    assert reply.message.schema_id == 3
    goes_on(ev, ev.send(ev.session_setup()), "OK_NewSessionEstablished")


def test_sap_picks_minor_deviation_of_the_chosen_entry_only() -> None:
    ev = Ev()
    reply = ev.send(ev.sap((DC_NS, 1, 0, 1, 2), (DC_NS, 1, 4, 2, 1)))
    assert reply.code == "OK_SuccessfulNegotiationWithMinorDeviation" and reply.message.schema_id == 2


@pytest.mark.parametrize("phase", [Phase.SAP_DONE, Phase.AUTHORIZED, Phase.CHARGE_LOOP])
def test_sap_out_of_sequence_ends_session(phase: Phase) -> None:
    # the SAP response has no header and no FAILED_SequenceError: the negotiation is refused instead
    ev = Ev().advance(phase)
    reply = ev.send(ev.sap())
    assert reply.code == "Failed_NoNegotiation" and reply.message.schema_id is None
    # the rule behind it is the sequence (its code, FAILED_SequenceError, does not exist in the SAP schema)
    assert reply.events("rule")[0].detail["rule"] == "MV-SEQUENCE" and reply.violations == ["MV-SEQUENCE"]
    assert reply.close is not None and ev.secc.phase is Phase.ENDED


# -- FAILED_SequenceError ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("phase", "request_name"),
    [
        (Phase.PRE_CHARGE, "DC_ChargeLoopReq"),  # charge loop before PowerDelivery
        (Phase.SCHEDULED, "DC_ChargeLoopReq"),
        (Phase.AUTHORIZED, "ServiceSelectionReq"),  # selection before discovery
        (Phase.SESSION, "DC_CableCheckReq"),  # cable check right after SessionSetup
        (Phase.SESSION, "ServiceDiscoveryReq"),  # skipping authorization
        (Phase.AUTHORIZATION_SETUP, "ServiceDiscoveryReq"),
        (Phase.SAP_DONE, "AuthorizationSetupReq"),  # before SessionSetup (all-zero SessionID)
        (Phase.AUTHORIZED, "SessionSetupReq"),
        (Phase.DISCOVERED, "DC_ChargeParameterDiscoveryReq"),
        (Phase.SELECTED, "ScheduleExchangeReq"),
        (Phase.SCHEDULED, "DC_PreChargeReq"),  # pre-charge before cable check
        (Phase.CABLE_CHECKED, "PowerDeliveryReq"),  # power before pre-charge
        (Phase.CHARGE_LOOP, "ScheduleExchangeReq"),  # without PowerDelivery(ScheduleRenegotiation)
        (Phase.CHARGE_LOOP, "DC_WeldingDetectionReq"),
        (Phase.POWER_OFF, "DC_ChargeLoopReq"),
        (Phase.WELDING_DETECTION, "PowerDeliveryReq"),
    ],
)
def test_sequence_error(phase: Phase, request_name: str) -> None:
    ev = Ev().advance(phase, ServiceId.MCS, ControlMode.DYNAMIC)
    reply = ev.send(ev.request(request_name))
    assert type(reply.message) is BY_NAME[request_name].response  # the response type of the received request
    ended(ev, reply, "FAILED_SequenceError")
    assert reply.events("rule")[0].detail == {"rule": "MV-SEQUENCE", "code": "FAILED_SequenceError"}
    assert reply.violations == ["MV-SEQUENCE"]


def test_request_before_sap_is_a_sequence_error() -> None:
    ev = Ev()
    reply = ev.send(ev.session_setup())
    ended(ev, reply, "FAILED_SequenceError")


_SNAPSHOTS: dict[Phase, Ev] = {}
_TABLE_PHASES = [p for _, p in Ev.MAIN_LINE]
_REQUESTS = [x.name for x in EXCHANGES]


def _snapshot(phase: Phase) -> Ev:
    if phase not in _SNAPSHOTS:
        _SNAPSHOTS[phase] = Ev().advance(phase, ServiceId.DC_BPT, ControlMode.SCHEDULED)
    return copy.deepcopy(_SNAPSHOTS[phase])


@pytest.mark.parametrize("phase", _TABLE_PHASES)
def test_every_forbidden_request_is_a_sequence_error(phase: Phase) -> None:
    """The whole ALLOWED table along the main line: every request it forbids gets FAILED_SequenceError."""
    forbidden = [n for n in _REQUESTS if n not in ALLOWED[phase]]
    assert forbidden
    for name in forbidden:
        ev = _snapshot(phase)
        reply = ev.send(ev.request(name))
        expected = "Failed_NoNegotiation" if name == "supportedAppProtocolReq" else "FAILED_SequenceError"
        assert reply.code == expected, (phase, name)
        assert ev.secc.phase is Phase.ENDED


@pytest.mark.parametrize("phase", _TABLE_PHASES)
def test_session_stop_in_every_main_line_phase(phase: Phase) -> None:
    ev = _snapshot(phase)
    reply = ev.send(ev.session_stop())
    if phase is Phase.SAP_DONE:
        ended(ev, reply, "FAILED_SequenceError")
        return
    assert reply.code == "OK"
    assert reply.close == Close("session terminated", ok=True, linger=5.0)
    assert ev.secc.phase is Phase.ENDED and ev.evse.ended == "session terminated"


# -- FAILED_UnknownSession --------------------------------------------------------------------------
@pytest.mark.parametrize("phase", [Phase.SESSION, Phase.DETAILED, Phase.SCHEDULED, Phase.CHARGE_LOOP])
@pytest.mark.parametrize("foreign", [FOREIGN, NEW], ids=["foreign", "all_zero"])
def test_unknown_session(phase: Phase, foreign: bytes) -> None:
    ev = Ev().advance(phase, ServiceId.MCS_BPT, ControlMode.DYNAMIC)
    own = ev.secc.session_id
    ev.sid = foreign
    # a request that would be allowed in this phase: the SessionID check comes first
    name = next(n for n, _ in Ev.MAIN_LINE if n in ALLOWED[phase] and n != "SessionStopReq")
    reply = ev.send(ev.request(name))
    ended(ev, reply, "FAILED_UnknownSession")
    assert reply.message.header.session_id == own


def test_unknown_session_wins_over_sequence_error() -> None:
    ev = Ev().advance(Phase.SESSION)
    ev.sid = FOREIGN
    ended(ev, ev.send(ev.charge_loop()), "FAILED_UnknownSession")


# -- services -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("ids", "service_id"), [(None, 1), (None, 65), (None, 3), ([2, 6], 8)])
def test_service_detail_for_unoffered_service(ids, service_id: int) -> None:
    ev = Ev().advance(Phase.AUTHORIZED)
    goes_on(ev, ev.send(ev.service_discovery(ids)), "OK")
    reply = ev.send(ev.service_detail(service_id))
    ended(ev, reply, "FAILED_ServiceIDInvalid")  # [V2G20-464]
    assert reply.message.service_id == service_id


def test_service_discovery_honours_supported_service_ids() -> None:
    ev = Ev().advance(Phase.AUTHORIZED)
    reply = ev.send(ev.service_discovery([8, 9, 1]))
    goes_on(ev, reply, "OK")
    assert [s.service_id for s in reply.message.energy_transfer_service_list.service] == [8, 9]
    assert reply.message.service_renegotiation_supported is True


def test_service_discovery_with_only_unsupported_services() -> None:
    ev = Ev().advance(Phase.AUTHORIZED)
    ended(ev, ev.send(ev.service_discovery([1, 5])), "FAILED_NoEnergyTransferServiceSelected")


@pytest.mark.parametrize(("ids", "service_id"), [(None, 1), (None, 5), ([2], 9), (None, 65)])
def test_selection_of_unoffered_energy_service(ids, service_id: int) -> None:
    ev = Ev().advance(Phase.AUTHORIZED)
    goes_on(ev, ev.send(ev.service_discovery(ids)), "OK")
    goes_on(ev, ev.send(ev.service_detail(2)), "OK")
    ended(ev, ev.send(ev.service_selection(service_id, 1)), "FAILED_NoEnergyTransferServiceSelected")


@pytest.mark.parametrize(
    ("parameter_set", "vas"),
    [(3, None), (0, None), (1, [cm.SelectedService(service_id=65, parameter_set_id=3)])],
    ids=["unknown_set_3", "unknown_set_0", "vas_selected"],
)
def test_service_selection_invalid(parameter_set: int, vas) -> None:
    ev = Ev().advance(Phase.DETAILED, ServiceId.MCS)
    ended(ev, ev.send(ev.service_selection(parameter_set=parameter_set, vas=vas)), "FAILED_ServiceSelectionInvalid")


@pytest.mark.parametrize("mode", list(ControlMode), ids=lambda m: m.name.lower())
@pytest.mark.parametrize("service", DC_FAMILY, ids=lambda s: s.name)
def test_service_selection_fixes_service_and_control_mode(service: ServiceId, mode: ControlMode) -> None:
    ev = Ev().advance(Phase.SELECTED, service, mode)
    assert ev.secc.service is service and ev.secc.parameter_set.control_mode is mode


def test_selection_from_an_offer_restricted_by_config() -> None:
    ev = Ev(config=SeccConfig(offers=(dc_offer(ServiceId.MCS, (ControlMode.DYNAMIC,)),)))
    ev.advance(Phase.DISCOVERED, ServiceId.MCS, ControlMode.DYNAMIC)
    goes_on(ev, ev.send(ev.service_detail()), "OK")
    ended(ev, ev.send(ev.service_selection(parameter_set=2)), "FAILED_ServiceSelectionInvalid")


# -- FAILED_WrongChargeParameter ----------------------------------------------------------------------
@pytest.mark.parametrize("mode", list(ControlMode), ids=lambda m: m.name.lower())
@pytest.mark.parametrize("service", DC_FAMILY, ids=lambda s: s.name)
def test_wrong_charge_parameter(service: ServiceId, mode: ControlMode) -> None:
    ev = Ev().advance(Phase.SELECTED, service, mode)
    # BPT parameters for DC/MCS, plain ones for DC_BPT/MCS_BPT
    ended(ev, ev.send(ev.cpd(bpt=service not in BPT_SERVICES)), "FAILED_WrongChargeParameter")


@pytest.mark.parametrize("service", DC_FAMILY, ids=lambda s: s.name)
def test_matching_charge_parameter_mode(service: ServiceId) -> None:
    ev = Ev().advance(Phase.SELECTED, service)
    reply = ev.send(ev.cpd())
    goes_on(ev, reply, "OK")
    bpt_res = isinstance(reply.message.dc_cpd_res_energy_transfer_mode, dc.BptDcCpdResEnergyTransferMode)
    assert bpt_res is (service in BPT_SERVICES)


# -- FAILED: control-mode mismatch, cable check, ongoing guards ---------------------------------------
@pytest.mark.parametrize("mode", list(ControlMode), ids=lambda m: m.name.lower())
def test_schedule_exchange_control_mode_mismatch(mode: ControlMode) -> None:
    ev = Ev().advance(Phase.CHARGE_PARAMETERS, ServiceId.MCS_BPT, mode)
    other = ControlMode.DYNAMIC if mode is ControlMode.SCHEDULED else ControlMode.SCHEDULED
    ended(ev, ev.send(ev.schedule_exchange(other)), "FAILED")


def _loop_variants():
    for service in DC_FAMILY:
        for mode in ControlMode:
            for wrong_mode in ControlMode:
                for wrong_bpt in (False, True):
                    if (wrong_mode, wrong_bpt) != (mode, service in BPT_SERVICES):
                        yield pytest.param(
                            service,
                            mode,
                            wrong_mode,
                            wrong_bpt,
                            id=f"{service.name}-{mode.name}-sent-{wrong_mode.name}{'-BPT' if wrong_bpt else ''}",
                        )


@pytest.mark.parametrize(("service", "mode", "sent_mode", "sent_bpt"), list(_loop_variants()))
def test_charge_loop_control_mode_mismatch(service, mode, sent_mode, sent_bpt) -> None:
    ev = Ev().advance(Phase.CHARGE_LOOP, service, mode)
    ended(ev, ev.send(ev.charge_loop(sent_mode, sent_bpt)), "FAILED")


@pytest.mark.parametrize("mode", list(ControlMode), ids=lambda m: m.name.lower())
@pytest.mark.parametrize("service", DC_FAMILY, ids=lambda s: s.name)
def test_charge_loop_response_mode_matches(service: ServiceId, mode: ControlMode) -> None:
    ev = Ev().advance(Phase.CHARGE_LOOP, service, mode)
    reply = ev.send(ev.charge_loop())
    goes_on(ev, reply, "OK")
    expected = RESPONSE_MODES[mode, service in BPT_SERVICES]
    assert type(reply.message.cl_res_control_mode) is expected


def test_cable_check_isolation_fault() -> None:
    ev = Ev(StubEvse(cable_check_steps=2, cable_check_fault=True)).advance(Phase.SCHEDULED)
    for _ in range(2):
        reply = ev.send(ev.cable_check())
        goes_on(ev, reply, "OK")
        assert reply.message.evse_processing == ct.Processing.Ongoing
    reply = ev.send(ev.cable_check())
    ended(ev, reply, "FAILED")
    assert reply.message.evse_processing == ct.Processing.Finished


def _ongoing_guard(ev: Ev, request, limit: float) -> None:
    """Ongoing answers until `limit` seconds after the first one (inclusive), FAILED after."""
    first = ev.send(request())
    goes_on(ev, first, "OK")
    assert first.message.evse_processing in (ct.Processing.Ongoing, ct.Processing.Ongoing_WaitingForCustomerInteraction)
    start = ev.now
    while ev.now + 30 < start + limit:  # keep well inside the 60 s sequence timeout
        goes_on(ev, ev.send(request(), dt=30), "OK")
    goes_on(ev, ev.send(request(), dt=start + limit - ev.now), "OK")  # exactly at the limit: still Ongoing
    ended(ev, ev.send(request(), dt=0.5), "FAILED")


def test_schedule_exchange_ongoing_guard_55s() -> None:
    ev = Ev(StubEvse(schedule_ongoing=True)).advance(Phase.CHARGE_PARAMETERS, ServiceId.MCS, ControlMode.DYNAMIC)
    _ongoing_guard(ev, ev.schedule_exchange, 55.0)


def test_schedule_exchange_ongoing_scheduled_mode_keeps_xsd_valid_element() -> None:
    ev = Ev(StubEvse(schedule_ongoing=True)).advance(Phase.CHARGE_PARAMETERS, ServiceId.DC, ControlMode.SCHEDULED)
    reply = ev.send(ev.schedule_exchange())
    goes_on(ev, reply, "OK")
    assert reply.message.evse_processing == ct.Processing.Ongoing
    assert reply.message.scheduled_se_res_control_mode is not None
    assert ev.secc.phase is Phase.SCHEDULE_ONGOING


def test_cable_check_ongoing_guard_55s() -> None:
    ev = Ev(StubEvse(cable_check_steps=10**6)).advance(Phase.SCHEDULED)
    _ongoing_guard(ev, ev.cable_check, 55.0)


def test_eim_authorization_ongoing_guard_180s() -> None:
    ev = Ev(StubEvse(auth=AuthorizationStatus.ONGOING)).advance(Phase.AUTHORIZATION_SETUP)
    _ongoing_guard(ev, ev.authorization, 180.0)


def test_ongoing_guard_is_configurable() -> None:
    from stack.session.timers import SeccTimers

    config = SeccConfig(timers=SeccTimers(ongoing=5.0, eim_ongoing=8.0))
    ev = Ev(StubEvse(schedule_ongoing=True), config).advance(Phase.CHARGE_PARAMETERS)
    _ongoing_guard(ev, ev.schedule_exchange, 5.0)
    ev = Ev(StubEvse(auth=AuthorizationStatus.ONGOING), config).advance(Phase.AUTHORIZATION_SETUP)
    _ongoing_guard(ev, ev.authorization, 8.0)


def test_ongoing_guard_restarts_after_service_renegotiation() -> None:
    evse = StubEvse(schedule_ongoing=True)
    ev = Ev(evse).advance(Phase.CHARGE_PARAMETERS, ServiceId.MCS, ControlMode.DYNAMIC)
    goes_on(ev, ev.send(ev.schedule_exchange()), "OK")  # Ongoing, guard starts
    goes_on(ev, ev.send(ev.session_stop(cm.ChargingSession.ServiceRenegotiation), dt=1), "OK")
    for name in ("ServiceDiscoveryReq", "ServiceDetailReq", "ServiceSelectionReq", "DC_ChargeParameterDiscoveryReq"):
        goes_on(ev, ev.send(ev.request(name), dt=15), "OK")
    goes_on(ev, ev.send(ev.schedule_exchange(), dt=1), "OK")  # a fresh Ongoing phase


# -- PowerDelivery rules -------------------------------------------------------------------------------
@pytest.mark.parametrize("tuple_id", [2, 0, None], ids=["unknown_2", "unknown_0", "no_profile"])
def test_schedule_selection_invalid(tuple_id) -> None:
    ev = Ev().advance(Phase.PRE_CHARGE, ServiceId.MCS, ControlMode.SCHEDULED)
    ended(ev, ev.send(ev.power_delivery(tuple_id=tuple_id)), "FAILED_ScheduleSelectionInvalid")
    assert ev.evse.contactor_calls == ()  # contactors stay open


def test_dynamic_mode_needs_no_schedule_selection() -> None:
    ev = Ev().advance(Phase.PRE_CHARGE, ServiceId.MCS, ControlMode.DYNAMIC)
    goes_on(ev, ev.send(ev.power_delivery(tuple_id=None)), "OK")
    assert ev.secc.phase is Phase.POWER_ON


@pytest.mark.parametrize("mode", list(ControlMode), ids=lambda m: m.name.lower())
def test_contactor_error_on_start(mode: ControlMode) -> None:
    ev = Ev(StubEvse(contactor_fails_on="start")).advance(Phase.PRE_CHARGE, ServiceId.DC_BPT, mode)
    ended(ev, ev.send(ev.power_delivery()), "FAILED_ContactorError")
    assert ev.evse.contactor_calls == ((True, False),)


def test_contactor_error_on_stop() -> None:
    ev = Ev(StubEvse(contactor_fails_on="stop")).advance(Phase.CHARGE_LOOP, ServiceId.MCS)
    ended(ev, ev.send(ev.power_delivery(cm.ChargeProgress.Stop)), "FAILED_ContactorError")


def test_discharge_channel_reaches_the_controller() -> None:
    ev = Ev().advance(Phase.PRE_CHARGE, ServiceId.MCS_BPT, ControlMode.DYNAMIC)
    req = ev.power_delivery()
    req.bpt_channel_selection = cm.ChannelSelection.Discharge
    goes_on(ev, ev.send(req), "OK")
    assert ev.evse.contactor_calls == ((True, True),)


def test_power_delivery_ongoing_is_answered_ok_and_waits() -> None:
    ev = Ev().advance(Phase.PRE_CHARGE, ServiceId.MCS)
    goes_on(ev, ev.send(ev.power_delivery(processing=ct.Processing.Ongoing)), "OK")
    assert ev.secc.phase is Phase.PRE_CHARGE and ev.evse.contactor_calls == ()
    goes_on(ev, ev.send(ev.power_delivery()), "OK")
    assert ev.secc.phase is Phase.POWER_ON


@pytest.mark.parametrize("phase", [Phase.POWER_ON, Phase.CHARGE_LOOP])
def test_standby_not_allowed(phase: Phase) -> None:
    ev = Ev().advance(phase, ServiceId.MCS)
    goes_on(ev, ev.send(ev.power_delivery(cm.ChargeProgress.Standby)), "WARNING_StandbyNotAllowed")
    assert ev.secc.phase is phase
    goes_on(ev, ev.send(ev.charge_loop()), "OK")  # the session goes on


def test_standby_allowed_by_config() -> None:
    ev = Ev(config=SeccConfig(standby_allowed=True)).advance(Phase.CHARGE_LOOP)
    goes_on(ev, ev.send(ev.power_delivery(cm.ChargeProgress.Standby)), "OK")


def test_schedule_renegotiation_from_the_charge_loop() -> None:
    ev = Ev().advance(Phase.CHARGE_LOOP, ServiceId.MCS, ControlMode.SCHEDULED)
    goes_on(ev, ev.send(ev.power_delivery(cm.ChargeProgress.ScheduleRenegotiation)), "OK")
    assert ev.secc.phase is Phase.RENEGOTIATION
    ended(ev, ev.send(ev.charge_loop()), "FAILED_SequenceError")


def test_schedule_renegotiation_round_trip() -> None:
    ev = Ev().advance(Phase.CHARGE_LOOP, ServiceId.MCS, ControlMode.SCHEDULED)
    goes_on(ev, ev.send(ev.power_delivery(cm.ChargeProgress.ScheduleRenegotiation)), "OK")
    goes_on(ev, ev.send(ev.schedule_exchange()), "OK")
    assert ev.secc.phase is Phase.SCHEDULED
    goes_on(ev, ev.send(ev.power_delivery()), "OK")
    goes_on(ev, ev.send(ev.charge_loop()), "OK")


@pytest.mark.parametrize("mode", list(ControlMode), ids=lambda m: m.name.lower())
def test_power_delivery_start_without_cable_check_is_refused(mode: ControlMode) -> None:
    ev = Ev().advance(Phase.SCHEDULED, ServiceId.MCS, mode)
    reply = ev.send(ev.power_delivery())
    assert reply.code.startswith("FAILED")
    assert ev.evse.contactor_calls == ()


def test_power_delivery_stop_right_after_schedule_exchange_is_allowed() -> None:
    # [V2G20-2122]: the EV may go from ScheduleExchange to PowerDelivery to pause, then stop the session
    ev = Ev().advance(Phase.SCHEDULED, ServiceId.MCS, ControlMode.DYNAMIC)
    goes_on(ev, ev.send(ev.power_delivery(cm.ChargeProgress.Stop)), "OK")
    assert ev.secc.phase is Phase.POWER_OFF
    reply = ev.send(ev.session_stop(cm.ChargingSession.Pause))
    assert reply.code == "OK" and reply.close.paused


# -- Authorization ---------------------------------------------------------------------------------
def test_authorization_setup_offers_eim_only() -> None:
    ev = Ev().advance(Phase.SESSION)
    reply = ev.send(ev.authorization_setup())
    goes_on(ev, reply, "OK")
    assert reply.message.authorization_services == [cm.Authorization.EIM]
    assert reply.message.eim_as_res_authorization_mode is not None
    assert reply.message.pnc_as_res_authorization_mode is None


def test_pnc_selection_is_a_warning() -> None:
    ev = Ev().advance(Phase.AUTHORIZATION_SETUP)
    reply = ev.send(ev.authorization(pnc=True))
    goes_on(ev, reply, "WARNING_AuthorizationSelectionInvalid")  # [V2G20-2209/2226]
    assert reply.message.evse_processing == ct.Processing.Finished
    assert ev.secc.phase is Phase.AUTHORIZATION_SETUP
    ended(ev, ev.send(ev.service_discovery()), "FAILED_SequenceError")  # not authorized


def test_pnc_selection_then_eim_is_accepted() -> None:
    ev = Ev().advance(Phase.AUTHORIZATION_SETUP)
    goes_on(ev, ev.send(ev.authorization(pnc=True)), "WARNING_AuthorizationSelectionInvalid")
    goes_on(ev, ev.send(ev.authorization()), "OK")
    assert ev.secc.phase is Phase.AUTHORIZED


def test_eim_selected_without_eim_element_is_a_warning() -> None:
    ev = Ev().advance(Phase.AUTHORIZATION_SETUP)
    req = ev.authorization()
    req.eim_a_req_authorization_mode = None
    req.pnc_a_req_authorization_mode = minimal(cm.PncAReqAuthorizationMode, gen_challenge=bytes(16))
    goes_on(ev, ev.send(req), "WARNING_AuthorizationSelectionInvalid")


def test_eim_authorization_failure() -> None:
    evse = StubEvse(auth=AuthorizationStatus.REJECTED)
    ev = Ev(evse).advance(Phase.AUTHORIZATION_SETUP)
    reply = ev.send(ev.authorization())
    goes_on(ev, reply, "WARNING_EIMAuthorizationFailure")  # [V2G20-2230]
    assert reply.message.evse_processing == ct.Processing.Finished
    assert ev.secc.phase is Phase.AUTHORIZATION_SETUP
    evse.auth = AuthorizationStatus.ACCEPTED  # e.g. the driver tried another card
    goes_on(ev, ev.send(ev.authorization()), "OK")
    goes_on(ev, ev.send(ev.service_discovery()), "OK")


def test_eim_rejected_session_may_not_discover_services() -> None:
    ev = Ev(StubEvse(auth=AuthorizationStatus.REJECTED)).advance(Phase.AUTHORIZATION_SETUP)
    goes_on(ev, ev.send(ev.authorization()), "WARNING_EIMAuthorizationFailure")
    ended(ev, ev.send(ev.service_discovery()), "FAILED_SequenceError")


def test_eim_ongoing_then_accepted() -> None:
    ev = Ev(StubEvse(authorization_steps=2)).advance(Phase.AUTHORIZATION_SETUP)
    for _ in range(2):
        reply = ev.send(ev.authorization())
        goes_on(ev, reply, "OK")
        assert reply.message.evse_processing == ct.Processing.Ongoing_WaitingForCustomerInteraction
        assert ev.secc.phase is Phase.AUTHORIZATION_ONGOING
    reply = ev.send(ev.authorization())
    assert reply.message.evse_processing == ct.Processing.Finished
    assert ev.secc.phase is Phase.AUTHORIZED


@pytest.mark.parametrize("phase", [Phase.SESSION, Phase.AUTHORIZATION_SETUP])
def test_service_renegotiation_does_not_bypass_authorization(phase: Phase) -> None:
    ev = Ev(StubEvse(auth=AuthorizationStatus.REJECTED)).advance(Phase.SESSION)
    if phase is Phase.AUTHORIZATION_SETUP:
        ev.send(ev.authorization_setup())
        goes_on(ev, ev.send(ev.authorization()), "WARNING_EIMAuthorizationFailure")
    reply = ev.send(ev.session_stop(cm.ChargingSession.ServiceRenegotiation))
    assert not reply.code.startswith("OK") or ev.secc.phase is not Phase.AUTHORIZED


# -- SessionStop: renegotiation, pause, terminate ------------------------------------------------------
def test_no_service_renegotiation_supported() -> None:
    ev = Ev(config=SeccConfig(service_renegotiation=False)).advance(Phase.AUTHORIZED)
    reply = ev.send(ev.service_discovery())
    assert reply.message.service_renegotiation_supported is False
    ev.advance(Phase.WELDING_DETECTION)
    ended(
        ev, ev.send(ev.session_stop(cm.ChargingSession.ServiceRenegotiation)), "FAILED_NoServiceRenegotiationSupported"
    )


@pytest.mark.parametrize("phase", [Phase.POWER_OFF, Phase.WELDING_DETECTION])
def test_service_renegotiation_returns_to_service_discovery(phase: Phase) -> None:
    ev = Ev().advance(phase, ServiceId.MCS, ControlMode.DYNAMIC)
    own = ev.secc.session_id
    goes_on(ev, ev.send(ev.session_stop(cm.ChargingSession.ServiceRenegotiation)), "OK")
    assert ev.secc.phase is Phase.AUTHORIZED
    ev.service, ev.mode = ServiceId.MCS_BPT, ControlMode.SCHEDULED
    for name in ("ServiceDiscoveryReq", "ServiceDetailReq", "ServiceSelectionReq"):
        goes_on(ev, ev.send(ev.request(name)), "OK")
    assert ev.secc.session_id == own
    assert ev.secc.service is ServiceId.MCS_BPT and ev.secc.control_mode is ControlMode.SCHEDULED


def test_pause_not_allowed_by_config() -> None:
    ev = Ev(config=SeccConfig(pause_allowed=False)).advance(Phase.WELDING_DETECTION, ServiceId.MCS)
    ended(ev, ev.send(ev.session_stop(cm.ChargingSession.Pause)), "FAILED_PauseNotAllowed")


@pytest.mark.parametrize("phase", [Phase.SESSION, Phase.AUTHORIZED, Phase.DETAILED])
def test_pause_before_service_selection_is_not_allowed(phase: Phase) -> None:
    store = SessionStore()
    ev = Ev(store=store).advance(phase)
    sid = ev.secc.session_id
    ended(ev, ev.send(ev.session_stop(cm.ChargingSession.Pause)), "FAILED_PauseNotAllowed")
    assert store.resume(sid) is None


def test_terminate_ends_cleanly() -> None:
    ev = Ev().advance(Phase.WELDING_DETECTION, ServiceId.MCS)
    reply = ev.send(ev.session_stop())
    assert reply.code == "OK" and reply.close == Close("session terminated", ok=True, linger=5.0)
    assert ev.secc.phase is Phase.ENDED and ev.evse.ended == "session terminated"


# -- resume: OK_OldSessionJoined ----------------------------------------------------------------------
def _paused(store: SessionStore, service=ServiceId.MCS_BPT, mode=ControlMode.DYNAMIC) -> bytes:
    ev = Ev(store=store).advance(Phase.WELDING_DETECTION, service, mode)
    reply = ev.send(ev.session_stop(cm.ChargingSession.Pause))
    assert reply.code == "OK"
    assert reply.close == Close("session paused", ok=True, paused=True, linger=5.0)
    assert ev.evse.ended == "session paused"
    return ev.secc.session_id


@pytest.mark.parametrize("mode", list(ControlMode), ids=lambda m: m.name.lower())
@pytest.mark.parametrize("service", DC_FAMILY, ids=lambda s: s.name)
def test_resume_with_old_session_id(service: ServiceId, mode: ControlMode) -> None:
    store = SessionStore()
    old = _paused(store, service, mode)
    ev = Ev(store=store)
    ev.service, ev.mode = service, mode
    goes_on(ev, ev.send(ev.sap()), "OK_SuccessfulNegotiation")
    reply = ev.send(ev.session_setup(old))
    goes_on(ev, reply, "OK_OldSessionJoined")
    assert reply.message.header.session_id == old == ev.secc.session_id
    assert ev.secc.phase is Phase.SELECTED  # continues at ChargeParameterDiscovery (LIB15118)
    assert ev.secc.service is service and ev.secc.control_mode is mode
    goes_on(ev, ev.send(ev.cpd()), "OK")
    goes_on(ev, ev.send(ev.schedule_exchange()), "OK")


def test_resumed_session_skips_authorization() -> None:
    store = SessionStore()
    old = _paused(store)
    ev = Ev(store=store)
    ev.send(ev.sap())
    goes_on(ev, ev.send(ev.session_setup(old)), "OK_OldSessionJoined")
    ended(ev, ev.send(ev.authorization_setup()), "FAILED_SequenceError")


def test_resume_with_unknown_session_id_starts_a_new_session() -> None:
    store = SessionStore()
    old = _paused(store)
    ev = Ev(store=store)
    ev.send(ev.sap())
    reply = ev.send(ev.session_setup(FOREIGN))
    goes_on(ev, reply, "OK_NewSessionEstablished")
    assert ev.secc.session_id not in (FOREIGN, old, NEW)
    assert ev.secc.phase is Phase.SESSION
    assert store.resume(old) is not None  # the paused session is still there


def test_a_paused_session_is_joined_once() -> None:
    store = SessionStore()
    old = _paused(store)
    first = Ev(store=store)
    first.send(first.sap())
    goes_on(first, first.send(first.session_setup(old)), "OK_OldSessionJoined")
    second = Ev(store=store)
    second.send(second.sap())
    goes_on(second, second.send(second.session_setup(old)), "OK_NewSessionEstablished")
    assert second.secc.session_id != old


def test_a_terminated_session_cannot_be_joined() -> None:
    store = SessionStore()
    ev = Ev(store=store).advance(Phase.WELDING_DETECTION)
    old = ev.secc.session_id
    ev.send(ev.session_stop())
    again = Ev(store=store)
    again.send(again.sap())
    goes_on(again, again.send(again.session_setup(old)), "OK_NewSessionEstablished")
    assert again.secc.session_id != old


def test_resume_without_store_entry_after_failed_session() -> None:
    store = SessionStore()
    ev = Ev(store=store).advance(Phase.CHARGE_LOOP, ServiceId.MCS)
    old = ev.secc.session_id
    ended(ev, ev.send(ev.welding_detection()), "FAILED_SequenceError")
    again = Ev(store=store)
    again.send(again.sap())
    goes_on(again, again.send(again.session_setup(old)), "OK_NewSessionEstablished")


# -- SessionIDs ---------------------------------------------------------------------------------------
def test_session_ids_are_eight_random_bytes() -> None:
    seen = set()
    for _ in range(64):
        ev = Ev().advance(Phase.SESSION)
        sid = ev.secc.session_id
        assert isinstance(sid, bytes) and len(sid) == 8 and sid != NEW
        seen.add(sid)
    assert len(seen) == 64


def test_session_id_generator_is_injectable() -> None:
    ids = iter([bytes.fromhex("1111111111111111")])
    ev = Ev(new_session_id=lambda: next(ids)).advance(Phase.SESSION)
    assert ev.secc.session_id == bytes.fromhex("1111111111111111")


def test_session_id_is_never_all_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    import stack.session.exchanges.session_setup as session_setup

    draws = iter([bytes(8), bytes.fromhex("2222222222222222")])
    monkeypatch.setattr(session_setup.secrets, "token_bytes", lambda n: next(draws))
    ev = Ev().advance(Phase.SESSION)
    assert ev.secc.session_id != NEW


# -- the machine's contract ------------------------------------------------------------------------
def test_receive_after_close_raises() -> None:
    ev = Ev().advance(Phase.WELDING_DETECTION)
    ev.send(ev.session_stop())
    with pytest.raises(LocalProtocolError):
        ev.secc.receive(ev.session_stop(), ev.now + 1)


def test_a_response_is_not_a_request() -> None:
    ev = Ev().advance(Phase.SESSION)
    actions = ev.secc.receive(cm.SessionStopRes(header=ev.header(), response_code=RC.OK), ev.now + 1)
    assert [type(a) for a in actions] == [Violation, Close]
    assert actions[0].rule_id == "MV-NOT-A-REQUEST" and actions[1].error is actions[0].error
    assert ev.secc.phase is Phase.ENDED


def test_warning_and_ok_responses_keep_the_sequence_timer_running() -> None:
    ev = Ev().advance(Phase.CHARGE_LOOP)
    reply = ev.send(ev.power_delivery(cm.ChargeProgress.Standby), dt=3.0)
    goes_on(ev, reply, "WARNING_StandbyNotAllowed")
    assert ev.secc.deadline == pytest.approx(ev.now + 60.0)


def test_replace_on_the_stub_controller() -> None:
    evse = replace(StubEvse(), cable_check_fault=True, cable_check_steps=0)
    ev = Ev(evse).advance(Phase.SCHEDULED)
    ended(ev, ev.send(ev.cable_check()), "FAILED")
