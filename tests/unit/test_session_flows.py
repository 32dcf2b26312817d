"""EVCC and SECC together through `VirtualLink`: whole sessions, Ongoing loops, pause/resume, notifications.

Every transcript goes through V2GTP framing and the EXI codec (VirtualLink's in-memory byte link), the SECC
checks every request it gets against the rulebook (`CheckedSecc`), and the EVCC would raise `LocalProtocolError`
before sending a request the rulebook forbids: a run that returns proves neither happened.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from examples.minimal_controllers import MinimalEv, MinimalEvse
from stack.messages import app_protocol as ap
from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct
from stack.session.actions import Close, Event
from stack.session.controller import EvLoopStep, ScheduleAnswer, StopReason
from stack.session.evcc import EvccConfig, EvccSession, ResumeInfo
from stack.session.exchanges.charge_loop import REQUEST_MODES, RESPONSE_MODES
from stack.session.rulebook import BY_REQUEST, allowed, broken_request_rule, exchange_of
from stack.session.secc import SeccConfig, SeccSession, SessionStore
from stack.session.services import BPT_SERVICES, ControlMode, ServiceId, dc_offer
from stack.session.state import Phase
from stack.session.timers import EvccTimers
from stack.session.units import fl
from stack.transport.link import Transcript, VirtualLink

T0 = 1_795_000_000.0
DC_FAMILY = (ServiceId.DC, ServiceId.DC_BPT, ServiceId.MCS, ServiceId.MCS_BPT)
MODES = pytest.mark.parametrize("mode", list(ControlMode), ids=lambda m: m.name.lower())
SERVICES = pytest.mark.parametrize("service", DC_FAMILY, ids=lambda s: s.name)

HEAD = [
    "SupportedAppProtocol",
    "SessionSetup",
    "AuthorizationSetup",
    "Authorization",
    "ServiceDiscovery",
    "ServiceDetail",
    "ServiceSelection",
]
SERVICES_AGAIN = ["ServiceDiscovery", "ServiceDetail", "ServiceSelection"]
# MinimalEvse: one Ongoing cable check; MinimalEv: pre-charge Ongoing, then Finished
CHARGE = [
    "DcChargeParameterDiscovery",
    "ScheduleExchange",
    "DcCableCheck",
    "DcCableCheck",
    "DcPreCharge",
    "DcPreCharge",
    "PowerDelivery(Start)",
]


def loops(n: int) -> list[str]:
    return ["DcChargeLoop"] * n


def tail(kind: str = "Terminate") -> list[str]:
    return ["PowerDelivery(Stop)", "DcWeldingDetection", f"SessionStop({kind})"]


FULL = HEAD + CHARGE + loops(10) + tail()


class CheckedSecc(SeccSession):
    """An SECC that asserts every request it receives is allowed by the rulebook in its current phase and keeps
    every rule of its exchange."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.seen: list[tuple[Phase, str]] = []

    def receive(self, message: object, now: float):
        exchange = BY_REQUEST[type(message)]
        name = exchange.name
        assert allowed(self.phase, name), f"the EVCC sent {name} in SECC phase {self.phase}"
        broken = broken_request_rule(exchange, self.state, message)
        assert broken is None, f"the EVCC sent {name} breaking {broken}"
        self.seen.append((self.phase, name))
        return super().receive(message, now)


@dataclass
class Run:
    evcc: EvccSession
    secc: CheckedSecc
    ev: MinimalEv
    evse: MinimalEvse
    t: Transcript

    def labels(self, direction: str = "ev->evse") -> list[str]:
        return [label(m) for _, d, m in self.t.messages if d == direction]

    def responses(self, cls: type) -> list:
        return [m for _, d, m in self.t.messages if d == "evse->ev" and isinstance(m, cls)]

    def requests(self, cls: type) -> list:
        return [m for _, d, m in self.t.messages if d == "ev->evse" and isinstance(m, cls)]

    def times(self, cls: type, direction: str = "ev->evse") -> list[float]:
        return [t for t, d, m in self.t.messages if d == direction and isinstance(m, cls)]

    def events(self, side: str, kind: str) -> list[Event]:
        return [e for _, s, e in self.t.events if s == side and isinstance(e, Event) and e.kind == kind]

    def codes(self) -> list[str]:
        return [str(m.response_code) for _, d, m in self.t.messages if d == "evse->ev"]


def label(message: object) -> str:
    name = type(message).__name__.removesuffix("Req").removesuffix("Res")
    if isinstance(message, cm.PowerDeliveryReq):
        return f"{name}({message.charge_progress})"
    if isinstance(message, cm.SessionStopReq):
        return f"{name}({message.charging_session})"
    return name


def run(
    ev: MinimalEv | None = None,
    evse: MinimalEvse | None = None,
    *,
    evcc_config: EvccConfig | None = None,
    secc_config: SeccConfig | None = None,
    store: SessionStore | None = None,
    **link,
) -> Run:
    ev = ev or MinimalEv()
    evse = evse or MinimalEvse()
    evcc = EvccSession(ev, evcc_config)
    secc = CheckedSecc(evse, secc_config, store)
    transcript = VirtualLink(evcc, secc, **link).run()  # raises if the EVCC broke the rulebook
    return Run(evcc, secc, ev, evse, transcript)


def clean_end(r: Run, *, paused: bool = False) -> None:
    assert r.t.ev_close is not None and r.t.evse_close is not None
    assert r.t.ev_close.ok and r.t.evse_close.ok
    assert r.t.ev_close.paused is paused and r.t.evse_close.paused is paused
    assert r.evcc.phase is Phase.ENDED and r.secc.phase is Phase.ENDED
    assert all(c.startswith("OK") for c in r.codes()), r.codes()
    assert not r.events("ev", "timeout") and not r.events("evse", "timeout")
    assert not r.t.violations()


# -- every service and control mode -------------------------------------------------------------------
@MODES
@SERVICES
def test_full_session(service: ServiceId, mode: ControlMode) -> None:
    r = run(MinimalEv(service=service, control_mode=mode))
    assert r.labels() == FULL
    exchanges = [exchange_of(m).name for _, _, m in r.t.messages]
    assert exchanges[0::2] == exchanges[1::2]  # one response per request, in order
    clean_end(r)
    bpt = service in BPT_SERVICES
    assert r.evcc.service is service and r.secc.service is service
    assert r.evcc.parameter_set == r.secc.parameter_set and r.secc.parameter_set.control_mode is mode
    assert r.evse.loops == 10 and r.ev.loops == 10

    (sap,) = r.responses(ap.SupportedAppProtocolRes)
    assert sap.response_code == ap.ResponseCode.OK_SuccessfulNegotiation
    (setup,) = r.responses(cm.SessionSetupRes)
    assert setup.response_code == ct.ResponseCode.OK_NewSessionEstablished
    sid = setup.header.session_id
    assert len(sid) == 8 and sid != bytes(8) and sid == r.secc.session_id == r.evcc.session_id
    for _, _, m in r.t.messages[3:]:  # everything after SessionSetupReq carries the new SessionID
        assert m.header.session_id == sid

    (cpd,) = r.responses(dc.DcChargeParameterDiscoveryRes)
    assert isinstance(cpd.dc_cpd_res_energy_transfer_mode, dc.BptDcCpdResEnergyTransferMode) is bpt
    (se,) = r.responses(cm.ScheduleExchangeRes)
    assert se.evse_processing == ct.Processing.Finished
    assert (se.scheduled_se_res_control_mode is not None) is (mode is ControlMode.SCHEDULED)
    assert (se.dynamic_se_res_control_mode is not None) is (mode is ControlMode.DYNAMIC)
    start = r.requests(cm.PowerDeliveryReq)[0]
    if mode is ControlMode.SCHEDULED:
        tuple_id = start.ev_power_profile.scheduled_evppt_control_mode.selected_schedule_tuple_id
        assert tuple_id in {t.schedule_tuple_id for t in se.scheduled_se_res_control_mode.schedule_tuple}
    else:
        assert start.ev_power_profile.dynamic_evppt_control_mode is not None  # sent for Josev's SECC
    assert (start.bpt_channel_selection is not None) is bpt

    for req in r.requests(dc.DcChargeLoopReq):
        assert type(req.cl_req_control_mode) is REQUEST_MODES[mode, bpt]
    for res in r.responses(dc.DcChargeLoopRes):
        assert type(res.cl_res_control_mode) is RESPONSE_MODES[mode, bpt]
        assert res.evse_status is None

    stamps = [t for t, _, _ in r.t.messages]
    assert stamps == sorted(stamps)
    spacing = [b - a for a, b in zip(r.times(dc.DcChargeLoopReq), r.times(dc.DcChargeLoopReq)[1:], strict=False)]
    assert spacing == pytest.approx([0.25] * 9, abs=1e-6)  # EvccTimers.charge_loop_interval


def test_secc_saw_the_flow_table_phases() -> None:
    r = run(MinimalEv(service=ServiceId.MCS, control_mode=ControlMode.SCHEDULED))
    phases = [p for p, _ in r.secc.seen]
    assert phases[:9] == [
        Phase.START,
        Phase.SAP_DONE,
        Phase.SESSION,
        Phase.AUTHORIZATION_SETUP,
        Phase.AUTHORIZED,
        Phase.DISCOVERED,
        Phase.DETAILED,
        Phase.SELECTED,
        Phase.CHARGE_PARAMETERS,
    ]
    assert phases[-3:] == [Phase.CHARGE_LOOP, Phase.POWER_OFF, Phase.WELDING_DETECTION]


def test_full_session_with_latency_meter_info_and_negative_discharge() -> None:
    r = run(
        MinimalEv(service=ServiceId.MCS_BPT, control_mode=ControlMode.DYNAMIC),
        evcc_config=EvccConfig(request_meter_info=True, negative_discharge=True),
        secc_config=SeccConfig(negative_discharge=True),
        latency=0.03,
    )
    assert r.labels() == FULL
    clean_end(r)
    assert all(res.meter_info is not None for res in r.responses(dc.DcChargeLoopRes))
    mode = r.requests(dc.DcChargeLoopReq)[0].cl_req_control_mode
    assert fl(mode.ev_maximum_discharge_power) < 0
    assert r.ev.feedback[-1].limits.max_discharge_power > 0  # read back as a magnitude


# -- Ongoing loops -----------------------------------------------------------------------------------
@pytest.mark.parametrize("steps", [1, 3, 7])
def test_authorization_ongoing_loop(steps: int) -> None:
    r = run(evse=MinimalEvse(authorization_steps=steps))
    assert r.labels() == HEAD[:3] + ["Authorization"] * (steps + 1) + HEAD[4:] + CHARGE + loops(10) + tail()
    clean_end(r)
    processing = [m.evse_processing for m in r.responses(cm.AuthorizationRes)]
    assert processing == [ct.Processing.Ongoing_WaitingForCustomerInteraction] * steps + [ct.Processing.Finished]
    reqs = r.requests(cm.AuthorizationReq)
    # [V2G20-1582]: repeated unaltered, only the timestamp may change
    for req in reqs[1:]:
        assert req.selected_authorization_service == reqs[0].selected_authorization_service
        assert req.eim_a_req_authorization_mode == reqs[0].eim_a_req_authorization_mode
        assert req.header.session_id == reqs[0].header.session_id
    times = r.times(cm.AuthorizationReq)
    assert [b - a for a, b in zip(times, times[1:], strict=False)] == pytest.approx([0.1] * steps, abs=1e-6)


@pytest.mark.parametrize("steps", [0, 1, 5])
def test_cable_check_ongoing_loop(steps: int) -> None:
    r = run(evse=MinimalEvse(cable_check_steps=steps))
    check = ["DcCableCheck"] * (steps + 1)
    assert r.labels() == HEAD + CHARGE[:2] + check + CHARGE[4:] + loops(10) + tail()
    clean_end(r)
    processing = [m.evse_processing for m in r.responses(dc.DcCableCheckRes)]
    assert processing == [ct.Processing.Ongoing] * steps + [ct.Processing.Finished]


def test_ongoing_loops_follow_the_configured_interval() -> None:
    r = run(
        evse=MinimalEvse(authorization_steps=2, cable_check_steps=2),
        evcc_config=EvccConfig(timers=EvccTimers(loop_interval=0.7, charge_loop_interval=0.4)),
    )
    clean_end(r)
    for cls in (cm.AuthorizationReq, dc.DcCableCheckReq):
        times = r.times(cls)
        assert [b - a for a, b in zip(times, times[1:], strict=False)] == pytest.approx([0.7, 0.7], abs=1e-6)
    times = r.times(dc.DcChargeLoopReq)
    assert [b - a for a, b in zip(times, times[1:], strict=False)] == pytest.approx([0.4] * 9, abs=1e-6)


@dataclass
class SlowScheduleEvse(MinimalEvse):
    """Answers ScheduleExchange with Ongoing `schedule_steps` times first."""

    schedule_steps: int = 2
    schedule_calls: int = 0

    def schedule(self, service, mode, request, max_entries, now) -> ScheduleAnswer:
        self.schedule_calls += 1
        if self.schedule_calls <= self.schedule_steps:
            return ScheduleAnswer(finished=False)
        return super().schedule(service, mode, request, max_entries, now)


@MODES
def test_schedule_exchange_ongoing_loop(mode: ControlMode) -> None:
    r = run(MinimalEv(service=ServiceId.MCS, control_mode=mode), SlowScheduleEvse(schedule_steps=3))
    assert r.labels() == HEAD + CHARGE[:1] + ["ScheduleExchange"] * 4 + CHARGE[2:] + loops(10) + tail()
    clean_end(r)
    processing = [m.evse_processing for m in r.responses(cm.ScheduleExchangeRes)]
    assert processing == [ct.Processing.Ongoing] * 3 + [ct.Processing.Finished]


# -- pause and resume -------------------------------------------------------------------------------
RESUMED = ["SupportedAppProtocol", "SessionSetup", *CHARGE]


def _pause_and_resume(service: ServiceId, mode: ControlMode, *, secc_initiated: bool) -> tuple[Run, Run]:
    store = SessionStore()
    if secc_initiated:
        first = run(
            MinimalEv(service=service, control_mode=mode),
            MinimalEvse(notifications={3: "Pause"}),
            store=store,
        )
        assert first.labels() == HEAD + CHARGE + loops(3) + tail("Pause")
        assert first.events("ev", "notification") == [Event("notification", {"notification": "Pause"})]
    else:
        first = run(
            MinimalEv(service=service, control_mode=mode, charge_loops=4, stop_with=StopReason.PAUSE),
            store=store,
        )
        assert first.labels() == HEAD + CHARGE + loops(4) + tail("Pause")
    clean_end(first, paused=True)
    info = first.evcc.resume_info
    assert info == ResumeInfo(first.secc.session_id, service, first.secc.parameter_set)

    second = run(
        MinimalEv(service=service, control_mode=mode),
        evcc_config=EvccConfig(resume=info),
        store=store,
    )
    assert second.labels() == RESUMED + loops(10) + tail()
    clean_end(second)
    (setup,) = second.responses(cm.SessionSetupRes)
    assert setup.response_code == ct.ResponseCode.OK_OldSessionJoined
    assert second.requests(cm.SessionSetupReq)[0].header.session_id == info.session_id
    assert second.secc.session_id == second.evcc.session_id == info.session_id
    assert second.secc.service is service and second.secc.parameter_set == info.parameter_set
    assert second.secc.seen[2] == (Phase.SELECTED, "DC_ChargeParameterDiscoveryReq")
    return first, second


@MODES
@SERVICES
def test_secc_pause_then_resume(service: ServiceId, mode: ControlMode) -> None:
    _pause_and_resume(service, mode, secc_initiated=True)


@MODES
def test_ev_pause_then_resume(mode: ControlMode) -> None:
    _pause_and_resume(ServiceId.MCS_BPT, mode, secc_initiated=False)


def test_resume_after_resume() -> None:
    store = SessionStore()
    first = run(evse=MinimalEvse(notifications={2: "Pause"}), store=store)
    second = run(
        evse=MinimalEvse(notifications={2: "Pause"}),
        evcc_config=EvccConfig(resume=first.evcc.resume_info),
        store=store,
    )
    assert second.labels() == RESUMED + loops(2) + tail("Pause")
    third = run(evcc_config=EvccConfig(resume=second.evcc.resume_info), store=store)
    assert third.labels() == RESUMED + loops(10) + tail()
    assert first.secc.session_id == second.secc.session_id == third.secc.session_id
    clean_end(third)


def test_resume_with_an_unknown_session_falls_back_to_a_new_session() -> None:
    store = SessionStore()
    first = run(evse=MinimalEvse(notifications={3: "Pause"}), store=store)
    # another charger (an empty store) does not know the session
    second = run(evcc_config=EvccConfig(resume=first.evcc.resume_info), store=SessionStore())
    assert second.labels() == FULL
    clean_end(second)
    (setup,) = second.responses(cm.SessionSetupRes)
    assert setup.response_code == ct.ResponseCode.OK_NewSessionEstablished
    assert second.secc.session_id != first.secc.session_id


def test_pause_refused_by_the_charger() -> None:
    r = run(
        MinimalEv(charge_loops=2, stop_with=StopReason.PAUSE),
        secc_config=SeccConfig(pause_allowed=False),
    )
    assert r.labels() == HEAD + CHARGE + loops(2) + tail("Pause")
    assert r.codes()[-1] == "FAILED_PauseNotAllowed"
    assert not r.t.ev_close.ok and not r.t.evse_close.ok and not r.t.ev_close.paused
    assert r.events("ev", "failed") == [Event("failed", {"code": "FAILED_PauseNotAllowed"})]
    assert r.evcc.resume_info is None


# -- SECC notifications in the charge loop ------------------------------------------------------------
@MODES
@pytest.mark.parametrize("at", [1, 3])
def test_terminate_notification(mode: ControlMode, at: int) -> None:
    r = run(MinimalEv(control_mode=mode), MinimalEvse(notifications={at: "Terminate"}))
    assert r.labels() == HEAD + CHARGE + loops(at) + tail()
    clean_end(r)
    assert r.evcc.stop_reason is StopReason.TERMINATE
    assert r.events("ev", "notification") == [Event("notification", {"notification": "Terminate"})]
    status = r.responses(dc.DcChargeLoopRes)[at - 1].evse_status
    assert status.evse_notification == ct.EvseNotification.Terminate


def test_pause_notification() -> None:
    r = run(evse=MinimalEvse(notifications={3: "Pause"}))
    assert r.labels() == HEAD + CHARGE + loops(3) + tail("Pause")
    clean_end(r, paused=True)
    assert r.evcc.stop_reason is StopReason.PAUSE


@MODES
def test_service_renegotiation_notification(mode: ControlMode) -> None:
    r = run(
        MinimalEv(service=ServiceId.MCS_BPT, control_mode=mode),
        MinimalEvse(notifications={3: "ServiceRenegotiation"}),
    )
    # the cable check passed once already: the (stateful) simple charger answers Finished at once
    again = SERVICES_AGAIN + ["DcChargeParameterDiscovery", "ScheduleExchange", "DcCableCheck", *CHARGE[4:]]
    labels = r.labels()
    first = HEAD + CHARGE + loops(3) + tail("ServiceRenegotiation")
    assert labels[: len(first) + len(again)] == first + again
    rest = labels[len(first) + len(again) :]
    assert rest == loops(len(rest) - 3) + tail()
    assert len(rest) - 3 > 0
    clean_end(r)
    assert len(r.responses(cm.SessionSetupRes)) == 1  # one connection, one session
    assert len({m.header.session_id for m in r.requests(cm.ServiceDiscoveryReq)}) == 1


@MODES
def test_schedule_renegotiation_notification(mode: ControlMode) -> None:
    r = run(
        MinimalEv(service=ServiceId.MCS, control_mode=mode),
        MinimalEvse(notifications={3: "ScheduleRenegotiation"}),
    )
    labels = r.labels()
    first = (
        HEAD + CHARGE + loops(3) + ["PowerDelivery(ScheduleRenegotiation)", "ScheduleExchange", "PowerDelivery(Start)"]
    )
    assert labels[: len(first)] == first
    rest = labels[len(first) :]
    assert rest == loops(len(rest) - 3) + tail() and len(rest) > 3
    clean_end(r)
    assert [p for p, n in r.secc.seen if n == "ScheduleExchangeReq"] == [Phase.CHARGE_PARAMETERS, Phase.RENEGOTIATION]


def test_other_notifications_do_not_stop_the_loop() -> None:
    r = run(evse=MinimalEvse(notifications={2: "ExitStandby"}))
    assert r.labels() == FULL
    clean_end(r)
    assert r.events("ev", "notification") == [Event("notification", {"notification": "ExitStandby"})]


def test_an_eim_session_is_not_asked_for_a_metering_confirmation() -> None:
    """Only a PnC session can sign one (tests/unit/test_metering_confirmation.py): the SECC drops the request."""
    r = run(evse=MinimalEvse(notifications={2: "MeteringConfirmation"}))
    assert r.labels() == FULL
    clean_end(r)
    assert r.events("ev", "notification") == []


# -- EV-initiated stops -------------------------------------------------------------------------------
@dataclass
class StopOnceEv(MinimalEv):
    """Stops with `stop_with` after `charge_loops` loops, then charges `more` loops and stops with `then`."""

    then: StopReason = StopReason.TERMINATE
    more: int = 2

    def charge_loop(self, feedback, now) -> EvLoopStep:
        step = super().charge_loop(feedback, now)
        if step.stop is not None and self.stop_with is not self.then:
            self.stop_with = self.then
            self.loops = self.charge_loops - self.more
        return step


@pytest.mark.parametrize(
    ("reason", "kind", "paused"),
    [(StopReason.TERMINATE, "Terminate", False), (StopReason.PAUSE, "Pause", True)],
)
@MODES
def test_ev_stop(reason: StopReason, kind: str, paused: bool, mode: ControlMode) -> None:
    r = run(MinimalEv(control_mode=mode, charge_loops=5, stop_with=reason))
    assert r.labels() == HEAD + CHARGE + loops(5) + tail(kind)
    clean_end(r, paused=paused)
    assert r.evcc.stop_reason is reason
    assert r.ev.ended == (r.t.ev_close.reason, True)


@MODES
def test_ev_service_renegotiation(mode: ControlMode) -> None:
    ev = StopOnceEv(control_mode=mode, charge_loops=3, stop_with=StopReason.SERVICE_RENEGOTIATION, more=2)
    r = run(ev)
    again = SERVICES_AGAIN + ["DcChargeParameterDiscovery", "ScheduleExchange", "DcCableCheck", *CHARGE[4:]]
    assert r.labels() == HEAD + CHARGE + loops(3) + tail("ServiceRenegotiation") + again + loops(2) + tail()
    clean_end(r)


@MODES
def test_ev_schedule_renegotiation(mode: ControlMode) -> None:
    ev = StopOnceEv(control_mode=mode, charge_loops=3, stop_with=StopReason.SCHEDULE_RENEGOTIATION, more=2)
    r = run(ev)
    renegotiation = ["PowerDelivery(ScheduleRenegotiation)", "ScheduleExchange", "PowerDelivery(Start)"]
    assert r.labels() == HEAD + CHARGE + loops(3) + renegotiation + loops(2) + tail()
    clean_end(r)
    assert (Phase.RENEGOTIATION, "ScheduleExchangeReq") in r.secc.seen


def test_no_service_renegotiation_supported() -> None:
    """ServiceDiscoveryRes said no: the EV that wanted another service terminates instead (it never sends the
    SessionStop(ServiceRenegotiation) that the SECC would answer FAILED_NoServiceRenegotiationSupported,
    [V2G20-1477]) and says why; both sides end cleanly."""
    ev = StopOnceEv(charge_loops=2, stop_with=StopReason.SERVICE_RENEGOTIATION)
    evcc = EvccSession(ev)
    secc = CheckedSecc(MinimalEvse(), SeccConfig(service_renegotiation=False))
    transcript = VirtualLink(evcc, secc).run()
    labels = [label(m) for _, d, m in transcript.messages if d == "ev->evse"]
    assert labels == HEAD + CHARGE + loops(2) + tail("Terminate")
    stop = [m for _, d, m in transcript.messages if d == "ev->evse"][-1]
    assert stop.ev_termination_explanation == "service renegotiation not supported by the charger"
    assert transcript.ev_close.ok and transcript.evse_close.ok
    assert not transcript.violations()


# -- service choice -----------------------------------------------------------------------------------
def test_ev_falls_back_to_an_offered_dc_service() -> None:
    r = run(
        MinimalEv(service=ServiceId.MCS_BPT),
        secc_config=SeccConfig(offers=(dc_offer(ServiceId.DC, (ControlMode.SCHEDULED,)),)),
    )
    assert r.labels() == FULL
    clean_end(r)
    assert r.secc.service is ServiceId.DC and r.secc.control_mode is ControlMode.SCHEDULED


def test_ev_stops_when_no_service_fits() -> None:
    r = run(secc_config=SeccConfig(offers=(dc_offer(ServiceId.AC),)))
    assert r.labels() == HEAD[:5] + ["SessionStop(Terminate)"]
    clean_end(r)
    (stop,) = r.requests(cm.SessionStopReq)
    assert stop.ev_termination_explanation


def test_runs_are_deterministic() -> None:
    ids = iter(bytes([i]) * 8 for i in range(1, 3))

    def once() -> list:
        evcc = EvccSession(MinimalEv())
        secc = SeccSession(MinimalEvse(), new_session_id=lambda: next(ids))
        t = VirtualLink(evcc, secc, now=T0).run()
        return [(round(t_ - T0, 6), d, label(m)) for t_, d, m in t.messages]

    assert once() == once()


def test_close_actions_are_reported() -> None:
    r = run()
    assert r.t.ev_close == Close("session terminated", ok=True)
    assert r.t.evse_close == Close("session terminated", ok=True, linger=5.0)
    assert r.evse.ended == "session terminated"
