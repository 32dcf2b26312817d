"""The EVCC (vehicle) side of an ISO 15118-20 DC session, sans-I/O.

`start` yields the first request; every response fed to `receive` yields the next request (or a close). Repeated
requests (Ongoing, pre-charge, charge loop, welding detection) are paced: the machine holds them and sets
`deadline`; the driver calls `expire` when that time has come. Timers are the EVCC's of PROTOCOL.md section 6.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from stack.messages import app_protocol as ap
from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct

from . import convert
from .actions import Action, Close, Event, LocalProtocolError, Send
from .controller import ChargeLoopFeedback, EvController, PowerLimits, Schedule, StopReason
from .flow import BY_REQUEST, BY_RESPONSE, DC_NAMESPACE, NEW_SESSION, Exchange, Phase, allowed, ends_session
from .services import ControlMode, NegotiatedService, ParameterSet, ServiceId
from .timers import EvccTimers

ONGOING = (ct.Processing.Ongoing, ct.Processing.Ongoing_WaitingForCustomerInteraction)
STOP_NOTIFICATIONS = {
    "Terminate": StopReason.TERMINATE,
    "Pause": StopReason.PAUSE,
    "ServiceRenegotiation": StopReason.SERVICE_RENEGOTIATION,
    "ScheduleRenegotiation": StopReason.SCHEDULE_RENEGOTIATION,
}
SESSION_STOP_KIND = {
    StopReason.TERMINATE: cm.ChargingSession.Terminate,
    StopReason.PAUSE: cm.ChargingSession.Pause,
    StopReason.SERVICE_RENEGOTIATION: cm.ChargingSession.ServiceRenegotiation,
}


@dataclass(frozen=True, slots=True)
class ResumeInfo:
    """What the EV keeps across a pause to rejoin its session (`OK_OldSessionJoined`)."""

    session_id: bytes
    service: ServiceId
    parameter_set: ParameterSet


@dataclass(frozen=True, slots=True)
class EvccConfig:
    timers: EvccTimers = field(default_factory=EvccTimers)
    namespaces: tuple[str, ...] = (DC_NAMESPACE,)
    resume: ResumeInfo | None = None
    negative_discharge: bool = False
    request_meter_info: bool = False
    pre_charge_tolerance: float = 20.0  # V; EVerest's -2 EV uses 20 V absolute (PROTOCOL.md section 10)
    max_supporting_points: int = 1024


class EvccSession(NegotiatedService):
    """One V2G communication session seen from the vehicle."""

    def __init__(self, controller: EvController, config: EvccConfig | None = None) -> None:
        self.controller = controller
        self.config = config or EvccConfig()
        self.phase = Phase.START
        self.session_id = NEW_SESSION
        self.service: ServiceId | None = None
        self.parameter_set: ParameterSet | None = None
        self.evse_limits: PowerLimits | None = None
        self.schedule: Schedule | None = None
        self.stop_reason: StopReason | None = None
        self.closed: Close | None = None
        self.resume_info: ResumeInfo | None = None
        self.charge_loops = 0
        self._awaiting: Exchange | None = None
        self._response_due: float | None = None
        self._pending: tuple[Callable[[float], list[Action]], float] | None = None  # (what to send, when)
        self._limits: dict[str, float] = {}  # phase guards: name -> absolute deadline
        self._last_request: object | None = None
        self._renegotiating = False
        self.energized = False

    # -- driver interface ------------------------------------------------------------------------------
    @property
    def deadline(self) -> float | None:
        times = [t for t in (self._response_due, self._pending[1] if self._pending else None) if t is not None]
        times += self._limits.values()
        return min(times) if times and self.closed is None else None

    def start(self, now: float) -> list[Action]:
        self._limits["V2G_EVCC_CommunicationSetup_Timeout"] = now + self.config.timers.communication_setup
        entries = [
            ap.AppProtocol(
                protocol_namespace=ns, version_number_major=1, version_number_minor=0, schema_id=i, priority=i
            )
            for i, ns in enumerate(self.config.namespaces, 1)
        ]
        return self._send(ap.SupportedAppProtocolReq(app_protocol=entries), now)

    def receive(self, message: object, now: float) -> list[Action]:
        if self.closed is not None:
            raise LocalProtocolError("session already closed")
        exchange = BY_RESPONSE.get(type(message))
        if exchange is None or exchange is not self._awaiting:
            expected = self._awaiting.response.__name__ if self._awaiting else "nothing"
            return self._close(f"unexpected {type(message).__name__}, expected {expected}", now)
        if self._response_due is not None and now > self._response_due:  # too late: the timer fired first
            return self._close(
                f"V2G_EVCC_Msg_Timeout: the answer to {exchange.name} came too late", now, timer="V2G_EVCC_Msg_Timeout"
            )
        self._awaiting = self._response_due = None
        code = getattr(message, "response_code", None)
        if ends_session(code):
            return self._close(f"SECC answered {exchange.name} with {code}", now, code=str(code))
        header = getattr(message, "header", None)
        if header is not None and exchange.name != "SessionSetupReq" and header.session_id != self.session_id:
            return self._close("response carries a foreign SessionID", now)
        handler = getattr(self, "_after_" + exchange.key)
        return self._guarded(lambda: handler(message, now), now)

    def expire(self, now: float) -> list[Action]:
        if self.closed is not None:
            return []
        if self._pending is not None and now >= self._pending[1]:
            build, _ = self._pending
            self._pending = None
            return self._guarded(lambda: build(now), now)
        if self._response_due is not None and now >= self._response_due:
            name = self._awaiting.name if self._awaiting else "?"
            return self._close(f"V2G_EVCC_Msg_Timeout: no answer to {name} in time", now, timer="V2G_EVCC_Msg_Timeout")
        for name, limit in list(self._limits.items()):
            if now >= limit:
                return self._close(f"{name} expired", now, timer=name)
        return []

    @property
    def awaiting_response(self) -> bool:
        """True while a request is out; False while the machine only waits to send its next one."""
        return self._awaiting is not None

    def connection_lost(self, now: float) -> list[Action]:
        return [] if self.closed is not None else self._close("connection lost", now)

    # -- plumbing --------------------------------------------------------------------------------------
    def _guarded(self, step: Callable[[], list[Action]], now: float) -> list[Action]:
        """Run a controller-driven step; if the controller fails, end the session safely, then re-raise."""
        try:
            return step()
        except Exception:
            if self.closed is None:
                with contextlib.suppress(Exception):
                    self._close("internal error in the EV controller", now)
            raise

    def _header(self, now: float) -> ct.MessageHeader:
        return ct.MessageHeader(session_id=self.session_id, time_stamp=int(now))

    def _send(self, message: object, now: float) -> list[Action]:
        exchange = BY_REQUEST[type(message)]
        if not allowed(self.phase, exchange.name):
            raise LocalProtocolError(f"{exchange.name} is not allowed in phase {self.phase}")
        self._awaiting = exchange
        self._response_due = now + exchange.evcc_timeout * self.config.timers.message_scale
        self._last_request = message
        return [Send(message, exchange.schema)]

    def _later(self, build: Callable[[float], list[Action]], now: float, interval: float) -> list[Action]:
        """Run `build(time)` after `interval`: a repeated request is made when it is sent, from fresh values."""
        if interval <= 0:
            return build(now)
        self._pending = (build, now + interval)
        return []

    def _close(
        self, reason: str, now: float, *, ok: bool = False, paused: bool = False, timer: str | None = None, code=None
    ) -> list[Action]:
        self.phase = Phase.ENDED
        self._pending = None
        self._awaiting = self._response_due = None
        self._limits.clear()
        self.closed = Close(reason, ok=ok, paused=paused)
        self.controller.session_ended(reason, ok, now)
        events = [Event("timeout", {"timer": timer})] if timer else []
        if code:
            events.append(Event("failed", {"code": code}))
        return [*events, self.closed]

    def _guard(self, name: str, now: float, seconds: float) -> None:
        self._limits.setdefault(name, now + seconds)

    def _unguard(self, *names: str) -> None:
        for name in names:
            self._limits.pop(name, None)

    def _repeat(self, now: float) -> list[Action]:
        """Send the last request again with a fresh timestamp ([V2G20-1582]: otherwise unaltered)."""
        last = self._last_request
        return self._later(
            lambda t: self._send(replace(last, header=self._header(t)), t), now, self.config.timers.loop_interval
        )

    # -- one handler per response ----------------------------------------------------------------------
    def _after_supported_app_protocol(self, res: ap.SupportedAppProtocolRes, now: float) -> list[Action]:
        self.phase = Phase.SAP_DONE
        resume = self.config.resume
        self.session_id = resume.session_id if resume else NEW_SESSION
        return self._send(cm.SessionSetupReq(header=self._header(now), evccid=self.controller.evcc_id()), now)

    def _after_session_setup(self, res: cm.SessionSetupRes, now: float) -> list[Action]:
        self._unguard("V2G_EVCC_CommunicationSetup_Timeout")
        self.session_id = res.header.session_id
        resume = self.config.resume
        if res.response_code == ct.ResponseCode.OK_OldSessionJoined and resume is not None:
            self.service, self.parameter_set = resume.service, resume.parameter_set
            self.phase = Phase.SELECTED
            return self._send_charge_parameters(now)
        self.phase = Phase.SESSION
        return self._send(cm.AuthorizationSetupReq(header=self._header(now)), now)

    def _after_authorization_setup(self, res: cm.AuthorizationSetupRes, now: float) -> list[Action]:
        self.phase = Phase.AUTHORIZATION_SETUP
        if cm.Authorization.EIM not in res.authorization_services:
            return self._stop_session(now, "the SECC does not offer EIM (Plug & Charge is not implemented yet)")
        req = cm.AuthorizationReq(
            header=self._header(now),
            selected_authorization_service=cm.Authorization.EIM,
            eim_a_req_authorization_mode=cm.EimAReqAuthorizationMode(),
        )
        return self._send(req, now)

    def _after_authorization(self, res: cm.AuthorizationRes, now: float) -> list[Action]:
        if res.evse_processing in ONGOING:
            self.phase = Phase.AUTHORIZATION_ONGOING
            self._guard("V2G_EVCC_Ongoing_Timeout", now, self.config.timers.ongoing)
            return self._repeat(now)
        self._unguard("V2G_EVCC_Ongoing_Timeout")
        if res.response_code != ct.ResponseCode.OK:
            return self._stop_session(now, f"authorization refused: {res.response_code}")
        self.phase = Phase.AUTHORIZED
        return self._send(cm.ServiceDiscoveryReq(header=self._header(now)), now)

    def _after_service_discovery(self, res: cm.ServiceDiscoveryRes, now: float) -> list[Action]:
        self.phase = Phase.DISCOVERED
        offered = []
        for s in res.energy_transfer_service_list.service:
            try:
                offered.append(ServiceId(s.service_id))
            except ValueError:
                continue
        chosen = self.controller.choose_service(offered)
        if chosen is None:
            return self._stop_session(now, f"no acceptable service among {[int(s) for s in offered]}")
        self.service = chosen
        return self._send(cm.ServiceDetailReq(header=self._header(now), service_id=int(chosen)), now)

    def _after_service_detail(self, res: cm.ServiceDetailRes, now: float) -> list[Action]:
        self.phase = Phase.DETAILED
        try:
            sets = [ParameterSet.from_xsd(ps) for ps in res.service_parameter_list.parameter_set]
        except ValueError as exc:
            return self._stop_session(now, f"bad ServiceDetailRes: {exc}")
        chosen = self.controller.choose_parameter_set(self.service, sets)
        if chosen is None:
            return self._stop_session(now, "no acceptable parameter set")
        self.parameter_set = chosen
        selected = cm.SelectedService(service_id=int(self.service), parameter_set_id=chosen.id)
        req = cm.ServiceSelectionReq(header=self._header(now), selected_energy_transfer_service=selected)
        return self._send(req, now)

    def _after_service_selection(self, res: cm.ServiceSelectionRes, now: float) -> list[Action]:
        self.phase = Phase.SELECTED
        return self._send_charge_parameters(now)

    def _send_charge_parameters(self, now: float) -> list[Action]:
        limits = self.controller.limits(self.service)
        energy = self.controller.energy_request(now)
        mode = convert.cpd_request(limits, self.bpt, energy.target_soc, self.config.negative_discharge)
        req = dc.DcChargeParameterDiscoveryReq(header=self._header(now), dc_cpd_req_energy_transfer_mode=mode)
        return self._send(req, now)

    def _after_dc_charge_parameter_discovery(self, res, now: float) -> list[Action]:
        self.phase = Phase.CHARGE_PARAMETERS
        self.evse_limits = convert.limits_of_cpd_response(res.dc_cpd_res_energy_transfer_mode)
        return self._send_schedule_exchange(now)

    def _send_schedule_exchange(self, now: float) -> list[Action]:
        energy = self.controller.energy_request(now)
        req = cm.ScheduleExchangeReq(
            header=self._header(now), maximum_supporting_points=self.config.max_supporting_points
        )
        if self.control_mode is ControlMode.DYNAMIC:
            req.dynamic_se_req_control_mode = convert.dynamic_se_request(energy)
        else:
            req.scheduled_se_req_control_mode = convert.scheduled_se_request(energy)
        return self._send(req, now)

    def _after_schedule_exchange(self, res: cm.ScheduleExchangeRes, now: float) -> list[Action]:
        if res.evse_processing in ONGOING:
            self.phase = Phase.SCHEDULE_ONGOING
            self._guard("V2G_EVCC_Ongoing_Timeout", now, self.config.timers.ongoing)
            return self._repeat(now)
        self._unguard("V2G_EVCC_Ongoing_Timeout")
        self.phase = Phase.SCHEDULED
        if self.control_mode is ControlMode.SCHEDULED:
            if res.scheduled_se_res_control_mode is None:
                return self._stop_session(now, "ScheduleExchangeRes without schedules in Scheduled mode")
            schedules = convert.schedules_of_tuples(res.scheduled_se_res_control_mode.schedule_tuple)
            self.schedule = self.controller.choose_schedule(schedules)
        if res.go_to_pause:  # the SECC asks for a pause: no energy now, rejoin later with this SessionID
            self.stop_reason = StopReason.PAUSE
            return self._send_power_delivery(cm.ChargeProgress.Stop, now)
        if self._renegotiating:  # back from a renegotiation: contactors are closed, go on charging
            self._renegotiating = False
            return self._send_power_delivery(cm.ChargeProgress.Start, now)
        return self._send(dc.DcCableCheckReq(header=self._header(now)), now)

    def _after_dc_cable_check(self, res: dc.DcCableCheckRes, now: float) -> list[Action]:
        self._guard("V2G_EVCC_CableCheck_Timeout", now, self.config.timers.cable_check)
        if res.evse_processing in ONGOING:
            self.phase = Phase.CABLE_CHECK_ONGOING
            return self._repeat(now)
        self._unguard("V2G_EVCC_CableCheck_Timeout")
        self.phase = Phase.CABLE_CHECKED
        return self._send_pre_charge(ct.Processing.Ongoing, now)

    def _send_pre_charge(self, processing: ct.Processing, now: float, interval: float = 0.0) -> list[Action]:
        def build(t: float) -> list[Action]:
            req = dc.DcPreChargeReq(
                header=self._header(t),
                ev_processing=processing,
                ev_present_voltage=convert.rn(self.controller.present_voltage(t)),
                ev_target_voltage=convert.rn(self.controller.pre_charge_target(t)),
            )
            return self._send(req, t)

        return self._later(build, now, interval)

    def _after_dc_pre_charge(self, res: dc.DcPreChargeRes, now: float) -> list[Action]:
        self.phase = Phase.PRE_CHARGE
        self._guard("V2G_EVCC_PreCharge_Timeout", now, self.config.timers.pre_charge)
        if self._last_request.ev_processing == ct.Processing.Finished:
            self._unguard("V2G_EVCC_PreCharge_Timeout")
            if not self.controller.contactors(True, now):
                return self._stop_session(now, "the EV's contactors refused to close")
            return self._send_power_delivery(cm.ChargeProgress.Start, now)
        target = self.controller.pre_charge_target(now)
        matched = abs(convert.fl(res.evse_present_voltage) - target) <= self.config.pre_charge_tolerance
        if matched:
            return self._send_pre_charge(ct.Processing.Finished, now)
        return self._send_pre_charge(ct.Processing.Ongoing, now, self.config.timers.loop_interval)

    def _send_power_delivery(self, progress: cm.ChargeProgress, now: float) -> list[Action]:
        req = cm.PowerDeliveryReq(
            header=self._header(now), ev_processing=ct.Processing.Finished, charge_progress=progress
        )
        if progress == cm.ChargeProgress.Start:
            # Optional in the XSD, but Josev's SECC (and some chargers) require the EV power profile at Start
            # and the power tolerance acceptance in Scheduled mode: send them, they cost a few bytes.
            if self.control_mode is ControlMode.SCHEDULED and self.schedule is not None:
                entries = [
                    cm.PowerScheduleEntry(duration=e.duration, power=convert.rn(e.power)) for e in self.schedule.charge
                ]
                req.ev_power_profile = cm.EvPowerProfile(
                    time_anchor=int(now),
                    scheduled_evppt_control_mode=cm.ScheduledEvpptControlMode(
                        selected_schedule_tuple_id=self.schedule.tuple_id,
                        power_tolerance_acceptance=cm.PowerToleranceAcceptance.PowerToleranceConfirmed,
                    ),
                    ev_power_profile_entries=cm.EvPowerProfileEntryList(ev_power_profile_entry=entries),
                )
            elif self.control_mode is ControlMode.DYNAMIC:
                limits = self.controller.limits(self.service)
                entry = cm.PowerScheduleEntry(duration=86_400, power=convert.rn(limits.max_charge_power))
                req.ev_power_profile = cm.EvPowerProfile(
                    time_anchor=int(now),
                    dynamic_evppt_control_mode=cm.DynamicEvpptControlMode(),
                    ev_power_profile_entries=cm.EvPowerProfileEntryList(ev_power_profile_entry=[entry]),
                )
            if self.bpt:
                discharge = self.controller.discharge()
                req.bpt_channel_selection = cm.ChannelSelection.Discharge if discharge else cm.ChannelSelection.Charge
        return self._send(req, now)

    def _after_power_delivery(self, res: cm.PowerDeliveryRes, now: float) -> list[Action]:
        progress = self._last_request.charge_progress
        if progress == cm.ChargeProgress.Start:
            self.phase = Phase.POWER_ON
            self.energized = True
            return self._send_charge_loop(None, now)
        if progress == cm.ChargeProgress.ScheduleRenegotiation:
            self.phase = Phase.RENEGOTIATION
            self._renegotiating = True
            return self._send_schedule_exchange(now)
        self.phase = Phase.POWER_OFF
        if not self.energized:  # the contactors never closed (e.g. GoToPause): nothing can be welded
            return self._send_session_stop(now)
        self.energized = False
        self.controller.contactors(False, now)
        self._guard("WeldingDetection_Timeout", now, self.config.timers.welding_detection)
        return self._send(dc.DcWeldingDetectionReq(header=self._header(now), ev_processing=ct.Processing.Ongoing), now)

    def _send_charge_loop(self, feedback: ChargeLoopFeedback | None, now: float) -> list[Action]:
        notified = STOP_NOTIFICATIONS.get(feedback.notification) if feedback and feedback.notification else None
        if notified is not None:  # the SECC asks to stop: react at once
            return self._stop_charging(notified, now)
        interval = self.config.timers.charge_loop_interval if feedback is not None else 0.0
        return self._later(lambda t: self._charge_loop_request(feedback, t), now, interval)

    def _stop_charging(self, stop: StopReason, now: float) -> list[Action]:
        self.stop_reason = stop
        if stop is StopReason.SCHEDULE_RENEGOTIATION:
            return self._send_power_delivery(cm.ChargeProgress.ScheduleRenegotiation, now)
        return self._send_power_delivery(cm.ChargeProgress.Stop, now)

    def _charge_loop_request(self, feedback: ChargeLoopFeedback | None, now: float) -> list[Action]:
        """Decide and build the next DC_ChargeLoopReq when it is sent, from the EV's state at that time."""
        step = self.controller.charge_loop(feedback, now)
        if step.stop is not None:
            return self._stop_charging(step.stop, now)
        limits = self.controller.limits(self.service)
        req = dc.DcChargeLoopReq(
            header=self._header(now),
            # ChargingComplete is optional, but Josev's SECC rejects DisplayParameters without it
            display_parameters=None
            if step.soc is None
            else ct.DisplayParameters(present_soc=step.soc, charging_complete=step.display.get("complete", False)),
            meter_info_requested=self.config.request_meter_info,
            ev_present_voltage=convert.rn(self.controller.present_voltage(now)),
            cl_req_control_mode=convert.loop_request(
                self.control_mode, self.bpt, step, limits, self.config.negative_discharge
            ),
        )
        self.charge_loops += 1
        return self._send(req, now)

    def _after_dc_charge_loop(self, res: dc.DcChargeLoopRes, now: float) -> list[Action]:
        self.phase = Phase.CHARGE_LOOP
        feedback = convert.feedback_of_response(res)
        events = [Event("notification", {"notification": feedback.notification})] if feedback.notification else []
        return events + self._send_charge_loop(feedback, now)

    def _after_dc_welding_detection(self, res: dc.DcWeldingDetectionRes, now: float) -> list[Action]:
        self.phase = Phase.WELDING_DETECTION
        if not self.controller.welding_done(convert.fl(res.evse_present_voltage), now):
            return self._repeat(now)
        self._unguard("WeldingDetection_Timeout")
        return self._send_session_stop(now)

    def _send_session_stop(self, now: float) -> list[Action]:
        kind = SESSION_STOP_KIND.get(self.stop_reason or StopReason.TERMINATE, cm.ChargingSession.Terminate)
        return self._send(cm.SessionStopReq(header=self._header(now), charging_session=kind), now)

    def _stop_session(self, now: float, why: str) -> list[Action]:
        self.stop_reason = StopReason.TERMINATE
        req = cm.SessionStopReq(
            header=self._header(now),
            charging_session=cm.ChargingSession.Terminate,
            ev_termination_explanation=why[:160],
        )
        return [Event("stopping", {"why": why}), *self._send(req, now)]

    def _after_session_stop(self, res: cm.SessionStopRes, now: float) -> list[Action]:
        kind = self._last_request.charging_session
        if kind == cm.ChargingSession.ServiceRenegotiation:
            self.phase = Phase.AUTHORIZED
            self.stop_reason = None
            return self._send(cm.ServiceDiscoveryReq(header=self._header(now)), now)
        if kind == cm.ChargingSession.Pause:
            self.resume_info = ResumeInfo(self.session_id, self.service, self.parameter_set)
            return self._close("session paused", now, ok=True, paused=True)
        return self._close("session terminated", now, ok=True)
