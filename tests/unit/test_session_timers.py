"""Every timer of the -20 session expiring, in virtual time (PROTOCOL.md section 6).

The EVCC's message timeouts (per exchange, `rulebook.EXCHANGES`), communication setup, ongoing, cable check,
pre-charge and welding guards, the SECC's ongoing guards and its sequence timeout, each with its default and
with a changed value from `EvccTimers` / `SeccTimers`. The side that waited reports a `Violation` whose error is
a `PeerTimeout` with the timer's rule id, and an Event("timeout"). Every run takes the real path (V2GTP and EXI
over `VirtualLink`'s in-memory link) in virtual time.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from examples.minimal_controllers import MinimalEv, MinimalEvse
from stack.messages import app_protocol as ap
from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.session.actions import Close, Event, PeerTimeout, Violation
from stack.session.controller import AuthorizationStatus, ScheduleAnswer
from stack.session.evcc import EvccConfig, EvccSession
from stack.session.rulebook import BY_NAME, EXCHANGES
from stack.session.secc import SeccConfig, SeccSession
from stack.session.services import ControlMode, ServiceId
from stack.session.state import Phase
from stack.session.timers import EvccTimers, SeccTimers
from stack.transport.link import Transcript, VirtualLink

T0 = 1_795_000_000.0
EPS = 1e-6  # virtual time is a float near 1.8e9 s: steps of 0.1 s carry ~1e-7 s of rounding


# -- controllers that stall ------------------------------------------------------------------------
@dataclass
class StallingEvse(MinimalEvse):
    """A charger that can hang in one place: authorization, schedule, pre-charge voltage, welding voltage."""

    auth_forever: bool = False
    schedule_forever: bool = False
    pre_charge_voltage: float | None = None  # None: reach the target at once
    welding_voltage: float = 0.0

    def authorize(self, now: float, emaid: str | None = None) -> AuthorizationStatus:
        return AuthorizationStatus.ONGOING if self.auth_forever else super().authorize(now)

    def schedule(self, service, mode, request, max_entries, now) -> ScheduleAnswer:
        if self.schedule_forever:
            return ScheduleAnswer(finished=False)
        return super().schedule(service, mode, request, max_entries, now)

    def pre_charge(self, target_voltage: float, now: float) -> float:
        return target_voltage if self.pre_charge_voltage is None else self.pre_charge_voltage

    def welding_detection(self, now: float) -> float:
        return self.welding_voltage


@dataclass
class ClockedEv(MinimalEv):
    """Records the time it is told the session ended."""

    ended_at: float | None = None

    def session_ended(self, reason: str, ok: bool, now: float) -> None:
        super().session_ended(reason, ok, now)
        self.ended_at = now


@dataclass
class Outcome:
    evcc: EvccSession
    secc: SeccSession
    t: Transcript

    def first(self, cls: type, direction: str = "evse->ev") -> float:
        return next(t for t, d, m in self.t.messages if d == direction and isinstance(m, cls))

    def last(self, cls: type, direction: str = "ev->evse") -> float:
        return [t for t, d, m in self.t.messages if d == direction and isinstance(m, cls)][-1]

    def count(self, cls: type) -> int:
        return sum(isinstance(m, cls) for _, _, m in self.t.messages)

    def timeouts(self, side: str) -> list[tuple[float, str]]:
        events = [(t, e) for t, s, e in self.t.events if s == side and isinstance(e, Event)]
        return [(t, e.detail["timer"]) for t, e in events if e.kind == "timeout"]

    def peer_timeouts(self, side: str) -> list[str]:
        """Rule ids of the PeerTimeout violations `side` reported (the timer rules of the rulebook)."""
        return [v.rule_id for v in self.t.violations(side) if isinstance(v.error, PeerTimeout)]

    def ev_timed_out(self, timer: str, at: float, latency: float = 0.0) -> None:
        """The EV closed because `timer` expired, exactly at `at`; the charger saw the connection go (on a link
        with `latency`, the in-memory link delivers the close one latency later, as TCP does)."""
        ((when, name),) = self.timeouts("ev")
        assert name == timer
        assert self.peer_timeouts("ev") == [timer] and self.t.violations("ev")[0].error is self.t.ev_close.error
        assert when == pytest.approx(at, abs=EPS)
        assert at - EPS <= self.t.end_time <= at + latency + EPS
        assert self.t.ev_close is not None and not self.t.ev_close.ok
        assert self.evcc.phase is Phase.ENDED
        assert self.t.evse_close == Close("connection lost")
        assert not self.timeouts("evse")
        assert not any(m for t, d, m in self.t.messages if t > at + EPS)


def link(
    ev: MinimalEv | None = None,
    evse: MinimalEvse | None = None,
    evcc_timers: EvccTimers | None = None,
    secc_timers: SeccTimers | None = None,
    **kw,
) -> Outcome:
    evcc = EvccSession(ev or MinimalEv(), EvccConfig(timers=evcc_timers or EvccTimers()))
    secc = SeccSession(evse or MinimalEvse(), SeccConfig(timers=secc_timers or SeccTimers()))
    transcript = VirtualLink(evcc, secc, now=T0, **kw).run()
    return Outcome(evcc, secc, transcript)


def drop_nth(cls: type, n: int = 1):
    """A drop filter that swallows the n-th message of class `cls`."""
    seen = 0

    def drop(message: object) -> bool:
        nonlocal seen
        if isinstance(message, cls):
            seen += 1
            return seen == n
        return False

    return drop


def drop_from(cls: type, n: int):
    """Swallow every message of class `cls` from the n-th on (a peer that stopped talking)."""
    seen = 0

    def drop(message: object) -> bool:
        nonlocal seen
        if isinstance(message, cls):
            seen += 1
            return seen >= n
        return False

    return drop


# -- V2G_EVCC_Msg_Timeout --------------------------------------------------------------------------
EXPECTED_TIMEOUTS = {
    "supportedAppProtocolReq": 2.0,
    "SessionSetupReq": 2.0,
    "AuthorizationSetupReq": 2.0,
    "AuthorizationReq": 2.0,
    "ServiceDiscoveryReq": 2.0,
    "ServiceDetailReq": 5.0,
    "ServiceSelectionReq": 2.0,
    "DC_ChargeParameterDiscoveryReq": 2.0,
    "ScheduleExchangeReq": 2.0,
    "DC_CableCheckReq": 2.0,
    "DC_PreChargeReq": 2.0,
    "PowerDeliveryReq": 2.0,
    "DC_ChargeLoopReq": 0.5,
    "DC_WeldingDetectionReq": 2.0,
    "SessionStopReq": 2.0,
    "CertificateInstallationReq": 5.0,
    "MeteringConfirmationReq": 2.0,  # tests/unit/test_metering_confirmation.py runs it out
}


def test_message_timeouts_are_protocol_md_6_1() -> None:
    assert {x.name: x.evcc_timeout for x in EXCHANGES} == EXPECTED_TIMEOUTS


# the PnC exchanges are timed in their own test files (an EIM session never sends them)
PNC_ONLY = ("CertificateInstallationReq", "MeteringConfirmationReq")


@pytest.mark.parametrize("name", [n for n in EXPECTED_TIMEOUTS if n not in (*PNC_ONLY, "SessionStopReq")])
def test_message_timeout_of_every_exchange(name: str) -> None:
    exchange = BY_NAME[name]
    o = link(
        MinimalEv(service=ServiceId.MCS_BPT, control_mode=ControlMode.SCHEDULED),
        drop=drop_nth(exchange.response),
    )
    sent = o.last(exchange.request)
    o.ev_timed_out("V2G_EVCC_Msg_Timeout", sent + EXPECTED_TIMEOUTS[name])
    assert name in o.t.ev_close.reason and "V2G_EVCC_Msg_Timeout" in o.t.ev_close.reason


@pytest.mark.parametrize(
    ("cls", "n", "timeout"),
    [
        (dc.DcChargeLoopRes, 3, 0.5),
        (dc.DcChargeLoopRes, 10, 0.5),
        (cm.PowerDeliveryRes, 2, 2.0),  # PowerDelivery(Stop)
        (dc.DcCableCheckRes, 2, 2.0),  # the repeated (Ongoing) request
        (dc.DcPreChargeRes, 2, 2.0),
        (cm.ServiceDetailRes, 1, 5.0),
    ],
)
def test_message_timeout_later_in_the_session(cls: type, n: int, timeout: float) -> None:
    o = link(drop=drop_nth(cls, n))
    request = next(x.request for x in EXCHANGES if x.response is cls)
    requests = [t for t, d, m in o.t.messages if d == "ev->evse" and isinstance(m, request)]
    assert len(requests) == n
    o.ev_timed_out("V2G_EVCC_Msg_Timeout", requests[-1] + timeout)


def test_charge_loop_vs_power_delivery_vs_service_detail() -> None:
    """The same dropped response costs 0.5 s in the charge loop, 2 s for PowerDelivery, 5 s for ServiceDetail."""
    waits = {}
    for cls in (dc.DcChargeLoopRes, cm.PowerDeliveryRes, cm.ServiceDetailRes):
        o = link(drop=drop_nth(cls))
        request = next(x.request for x in EXCHANGES if x.response is cls)
        waits[cls.__name__] = round(o.t.end_time - o.last(request), 6)
    assert waits == {"DcChargeLoopRes": 0.5, "PowerDeliveryRes": 2.0, "ServiceDetailRes": 5.0}


@pytest.mark.parametrize("scale", [0.5, 2.0, 10.0])
def test_message_scale_is_honoured(scale: float) -> None:
    for cls, timeout in ((dc.DcChargeLoopRes, 0.5), (cm.ServiceDetailRes, 5.0)):
        o = link(evcc_timers=EvccTimers(message_scale=scale), drop=drop_nth(cls, 1))
        request = next(x.request for x in EXCHANGES if x.response is cls)
        o.ev_timed_out("V2G_EVCC_Msg_Timeout", o.last(request) + timeout * scale)


def test_a_late_response_is_too_late() -> None:
    # latency 0.26 s each way: a 0.52 s round trip misses the charge loop's 0.5 s
    o = link(latency=0.26)
    assert o.count(dc.DcChargeLoopReq) == 1
    o.ev_timed_out("V2G_EVCC_Msg_Timeout", o.last(dc.DcChargeLoopReq) + 0.5, latency=0.26)


def test_a_response_just_in_time() -> None:
    o = link(latency=0.24)
    assert o.t.ev_close.ok and o.t.evse_close.ok
    assert o.count(dc.DcChargeLoopReq) == 10


def test_session_stop_response_lost_ends_with_the_evs_message_timeout() -> None:
    # after SessionStopRes the SECC waits up to 5 s for the EV to close first ([V2G20-1643], now real on the
    # link): the EV, whose response was lost, gives up after its 2 s message timeout and closes; the SECC's
    # session still ended cleanly
    o = link(drop=drop_nth(cm.SessionStopRes))
    sent = o.last(cm.SessionStopReq)
    assert o.timeouts("ev") == [(pytest.approx(sent + 2.0, abs=EPS), "V2G_EVCC_Msg_Timeout")]
    assert o.peer_timeouts("ev") == ["V2G_EVCC_Msg_Timeout"] and not o.t.ev_close.ok
    assert o.t.end_time == pytest.approx(sent + 2.0, abs=EPS)
    assert o.t.evse_close == Close("session terminated", ok=True, linger=5.0) and not o.timeouts("evse")


# -- V2G_EVCC_CommunicationSetup_Timeout --------------------------------------------------------------
def test_communication_setup_timeout() -> None:
    # the message timeout (2 s x 20) is longer than the 20 s communication setup limit
    o = link(evcc_timers=EvccTimers(message_scale=20), drop=drop_nth(cm.SessionSetupRes))
    o.ev_timed_out("V2G_EVCC_CommunicationSetup_Timeout", T0 + 20.0)
    assert o.t.ev_close.reason == "V2G_EVCC_CommunicationSetup_Timeout: expired"


def test_communication_setup_with_a_slow_link() -> None:
    # SAP and SessionSetup round trips through a 5.1 s link: SessionSetupRes would arrive at 20.4 s
    o = link(evcc_timers=EvccTimers(message_scale=100), latency=5.1)
    o.ev_timed_out("V2G_EVCC_CommunicationSetup_Timeout", T0 + 20.0, latency=5.1)
    assert o.count(cm.SessionSetupRes) == 1  # sent by the SECC, still in flight at the timeout


def test_communication_setup_met_just_in_time() -> None:
    # the pre-charge guard runs from the first DC_PreChargeReq over two 9.8 s round trips (Ongoing, then
    # Finished): widened here, this test is about the communication setup
    o = link(MinimalEv(charge_loops=1), evcc_timers=EvccTimers(message_scale=100, pre_charge=30.0), latency=4.9)
    assert o.first(cm.SessionSetupRes) + 4.9 == pytest.approx(T0 + 19.6, abs=EPS)
    assert o.t.ev_close.ok and o.t.evse_close.ok
    assert not o.timeouts("ev")


def test_communication_setup_is_configurable() -> None:
    o = link(
        evcc_timers=EvccTimers(communication_setup=3.0, message_scale=20),
        drop=drop_nth(cm.SessionSetupRes),
    )
    o.ev_timed_out("V2G_EVCC_CommunicationSetup_Timeout", T0 + 3.0)


def test_communication_setup_ends_with_session_setup() -> None:
    # a session lasting longer than 20 s is not cut by the communication setup timer
    o = link(MinimalEv(charge_loops=100))
    assert o.t.end_time - T0 > 20.0
    assert o.t.ev_close.ok and not o.timeouts("ev")


# -- V2G_EVCC_Ongoing_Timeout and the SECC's ongoing guards ----------------------------------------------
def test_ev_ongoing_timeout_before_the_secc_eim_guard() -> None:
    # the SECC's EIM guard is 180 s: the EV's 60 s fire first
    o = link(evse=StallingEvse(auth_forever=True))
    o.ev_timed_out("V2G_EVCC_Ongoing_Timeout", o.first(cm.AuthorizationRes) + 60.0)
    assert o.count(cm.AuthorizationReq) > 500
    assert all(str(m.response_code) == "OK" for _, d, m in o.t.messages if isinstance(m, cm.AuthorizationRes))


def test_ev_ongoing_timeout_is_configurable() -> None:
    o = link(evse=StallingEvse(auth_forever=True), evcc_timers=EvccTimers(ongoing=7.5))
    o.ev_timed_out("V2G_EVCC_Ongoing_Timeout", o.first(cm.AuthorizationRes) + 7.5)


def test_secc_eim_guard_fires_first_when_shorter() -> None:
    o = link(evse=StallingEvse(auth_forever=True), secc_timers=SeccTimers(eim_ongoing=30.0))
    start = o.first(cm.AuthorizationRes)
    failed = next(
        t for t, d, m in o.t.messages if isinstance(m, cm.AuthorizationRes) and str(m.response_code) == "FAILED"
    )
    assert start + 30.0 < failed <= start + 30.1 + EPS  # the first request after the guard
    assert o.t.end_time == pytest.approx(failed, abs=EPS)
    assert o.t.ev_close.reason == "SECC answered AuthorizationReq with FAILED"
    assert not o.timeouts("ev") and not o.timeouts("evse")


@pytest.mark.parametrize("mode", list(ControlMode), ids=lambda m: m.name.lower())
def test_schedule_exchange_ongoing_secc_answers_failed_at_55s(mode: ControlMode) -> None:
    o = link(MinimalEv(control_mode=mode), StallingEvse(schedule_forever=True))
    start = o.first(cm.ScheduleExchangeRes)
    failed = o.t.messages[-1]
    assert isinstance(failed[2], cm.ScheduleExchangeRes) and str(failed[2].response_code) == "FAILED"
    assert start + 55.0 < failed[0] <= start + 55.1 + EPS  # before the EV's own 60 s
    assert o.t.ev_close == Close("SECC answered ScheduleExchangeReq with FAILED")
    assert o.t.evse_close == Close("ScheduleExchangeReq answered FAILED")
    assert [e for _, s, e in o.t.events if s == "ev" and e.kind == "failed"] == [Event("failed", {"code": "FAILED"})]
    assert not o.timeouts("ev")


def test_schedule_exchange_ongoing_ev_timeout_when_the_secc_guard_is_longer() -> None:
    o = link(evse=StallingEvse(schedule_forever=True), secc_timers=SeccTimers(ongoing=70.0))
    o.ev_timed_out("V2G_EVCC_Ongoing_Timeout", o.first(cm.ScheduleExchangeRes) + 60.0)


def test_secc_ongoing_guard_is_configurable() -> None:
    o = link(evse=StallingEvse(schedule_forever=True), secc_timers=SeccTimers(ongoing=4.0))
    start = o.first(cm.ScheduleExchangeRes)
    assert start + 4.0 < o.t.end_time <= start + 4.1 + EPS
    assert o.t.ev_close.reason == "SECC answered ScheduleExchangeReq with FAILED"


# -- V2G_EVCC_CableCheck_Timeout --------------------------------------------------------------------
def test_cable_check_timeout() -> None:
    # SECC guard 55 s, EV 40 s: the EV gives up first
    o = link(evse=MinimalEvse(cable_check_steps=10**6))
    o.ev_timed_out("V2G_EVCC_CableCheck_Timeout", o.first(dc.DcCableCheckRes) + 40.0)


def test_cable_check_timeout_is_configurable() -> None:
    o = link(
        evse=MinimalEvse(cable_check_steps=10**6),
        evcc_timers=EvccTimers(cable_check=12.0),
    )
    o.ev_timed_out("V2G_EVCC_CableCheck_Timeout", o.first(dc.DcCableCheckRes) + 12.0)


def test_cable_check_secc_guard_when_shorter() -> None:
    o = link(evse=MinimalEvse(cable_check_steps=10**6), secc_timers=SeccTimers(ongoing=30.0))
    start = o.first(dc.DcCableCheckRes)
    assert start + 30.0 < o.t.end_time <= start + 30.1 + EPS
    assert o.t.ev_close.reason == "SECC answered DC_CableCheckReq with FAILED"


def test_cable_check_just_in_time() -> None:
    # 399 Ongoing answers 0.1 s apart: finished at ~39.9 s, inside the 40 s
    o = link(evse=MinimalEvse(cable_check_steps=399))
    assert o.t.ev_close.ok and o.count(dc.DcCableCheckReq) == 400


# -- V2G_EVCC_PreCharge_Timeout -----------------------------------------------------------------------
def test_pre_charge_timeout() -> None:
    o = link(evse=StallingEvse(pre_charge_voltage=0.0))
    o.ev_timed_out("V2G_EVCC_PreCharge_Timeout", o.first(dc.DcPreChargeRes) + 10.0)
    assert o.count(dc.DcPreChargeReq) > 90


@pytest.mark.parametrize("limit", [3.0, 60.0])  # 60 s: the value Josev issue #281 reads in -20 Table 215
def test_pre_charge_timeout_is_configurable(limit: float) -> None:
    o = link(evse=StallingEvse(pre_charge_voltage=0.0), evcc_timers=EvccTimers(pre_charge=limit))
    o.ev_timed_out("V2G_EVCC_PreCharge_Timeout", o.first(dc.DcPreChargeRes) + limit)


def test_pre_charge_within_tolerance_is_no_timeout() -> None:
    # MinimalEv targets 768 V; the default tolerance is 20 V
    o = link(evse=StallingEvse(pre_charge_voltage=750.0))
    assert o.t.ev_close.ok and o.count(dc.DcPreChargeReq) == 2


# -- welding detection guard --------------------------------------------------------------------------
def test_welding_detection_guard() -> None:
    o = link(evse=StallingEvse(welding_voltage=400.0))
    stop_res = [t for t, d, m in o.t.messages if isinstance(m, cm.PowerDeliveryRes)][-1]
    o.ev_timed_out("WeldingDetection_Timeout", stop_res + 60.0)
    assert o.count(dc.DcWeldingDetectionReq) > 500
    assert o.count(cm.SessionStopReq) == 0


def test_welding_detection_guard_is_configurable() -> None:
    o = link(
        evse=StallingEvse(welding_voltage=400.0),
        evcc_timers=EvccTimers(welding_detection=2.5),
    )
    stop_res = [t for t, d, m in o.t.messages if isinstance(m, cm.PowerDeliveryRes)][-1]
    o.ev_timed_out("WeldingDetection_Timeout", stop_res + 2.5)


# -- V2G_SECC_Sequence_Timeout ------------------------------------------------------------------------
def test_sequence_timeout_without_a_first_request() -> None:
    secc = SeccSession(MinimalEvse())
    secc.start(T0)
    assert secc.deadline == T0 + 60.0
    assert secc.expire(T0 + 59.9) == []
    actions = secc.expire(T0 + 60.0)
    violation, timeout, close = actions
    assert isinstance(violation, Violation) and isinstance(violation.error, PeerTimeout)
    assert violation.rule_id == "V2G_SECC_Sequence_Timeout" and close.error is violation.error
    assert [timeout, close] == [Event("timeout", {"timer": "V2G_SECC_Sequence_Timeout"}), secc.closed]
    assert secc.closed.reason == "V2G_SECC_Sequence_Timeout: no request in time" and not secc.closed.ok
    assert secc.phase is Phase.ENDED and secc.deadline is None
    assert secc.expire(T0 + 120.0) == []


def test_sequence_timer_restarts_with_every_response() -> None:
    secc = SeccSession(MinimalEvse())
    secc.start(T0)
    sap = ap.SupportedAppProtocolReq(
        app_protocol=[
            ap.AppProtocol(
                protocol_namespace="urn:iso:std:iso:15118:-20:DC",
                version_number_major=1,
                version_number_minor=0,
                schema_id=1,
                priority=1,
            )
        ]
    )
    secc.receive(sap, T0 + 50.0)
    assert secc.deadline == T0 + 110.0
    assert secc.expire(T0 + 109.0) == []
    assert secc.expire(T0 + 110.0)[1] == Event("timeout", {"timer": "V2G_SECC_Sequence_Timeout"})


@pytest.mark.parametrize(
    ("cls", "n"),
    [(dc.DcChargeLoopReq, 4), (cm.ServiceDetailReq, 1), (cm.PowerDeliveryReq, 1), (cm.PowerDeliveryReq, 2)],
)
def test_sequence_timeout_when_the_ev_stops_sending(cls: type, n: int) -> None:
    # the EV's requests vanish from the n-th on; its own message timeout is stretched so the SECC's fires first
    o = link(evcc_timers=EvccTimers(message_scale=1000), drop=drop_from(cls, n))
    last_response = [t for t, d, m in o.t.messages if d == "evse->ev"][-1]
    assert o.timeouts("evse") == [(pytest.approx(last_response + 60.0, abs=EPS), "V2G_SECC_Sequence_Timeout")]
    assert o.t.evse_close.reason == "V2G_SECC_Sequence_Timeout: no request in time"
    assert o.peer_timeouts("evse") == ["V2G_SECC_Sequence_Timeout"] and o.t.evse_close.error is not None
    assert o.t.ev_close == Close("connection lost")
    assert o.t.end_time == pytest.approx(last_response + 60.0, abs=EPS)
    assert not o.timeouts("ev")


def test_sequence_timeout_with_a_slow_ev() -> None:
    # an EV that waits 61 s between charge-loop requests
    o = link(evcc_timers=EvccTimers(charge_loop_interval=61.0))
    first_loop_res = o.first(dc.DcChargeLoopRes)
    assert o.timeouts("evse") == [(pytest.approx(first_loop_res + 60.0, abs=EPS), "V2G_SECC_Sequence_Timeout")]
    assert o.count(dc.DcChargeLoopReq) == 1
    assert o.t.ev_close == Close("connection lost")


def test_sequence_timeout_is_configurable() -> None:
    o = link(
        evcc_timers=EvccTimers(charge_loop_interval=6.0),
        secc_timers=SeccTimers(sequence=5.0),
    )
    assert o.timeouts("evse") == [
        (pytest.approx(o.first(dc.DcChargeLoopRes) + 5.0, abs=EPS), "V2G_SECC_Sequence_Timeout")
    ]


def test_slow_but_in_time_ev() -> None:
    o = link(evcc_timers=EvccTimers(charge_loop_interval=59.0))
    assert o.t.ev_close.ok and o.t.evse_close.ok
    assert o.t.end_time - T0 > 9 * 59.0


# -- what the controllers learn ---------------------------------------------------------------------
@pytest.mark.parametrize("how", ["sequence_timeout", "connection_lost"])
def test_charger_learns_that_the_session_ended(how: str) -> None:
    evse = MinimalEvse()
    if how == "sequence_timeout":
        o = link(
            evse=evse,
            evcc_timers=EvccTimers(message_scale=1000),
            drop=drop_from(dc.DcChargeLoopReq, 3),
        )
        assert o.timeouts("evse")
    else:
        o = link(evse=evse, drop=drop_nth(dc.DcChargeLoopRes, 3))
        assert o.t.evse_close == Close("connection lost")
    assert evse.ended is not None


def test_ev_learns_when_the_session_ended() -> None:
    ev = ClockedEv()
    o = link(ev, drop=drop_nth(dc.DcChargeLoopRes, 2))
    assert ev.ended_at == pytest.approx(o.t.end_time, abs=EPS)


def test_ev_learns_why_the_session_ended() -> None:
    ev = ClockedEv()
    o = link(ev, drop=drop_nth(dc.DcChargeLoopRes, 2))
    assert ev.ended == (o.t.ev_close.reason, False)
