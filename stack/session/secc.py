"""The SECC (charger) side of an ISO 15118-20 DC session, sans-I/O.

Feed it decoded requests with the current time; it returns actions (send this response, close) and keeps one
deadline for the driver. The rules that produce response codes live in the `_on_<message>` handlers, one per
request, with the requirement ids PROTOCOL.md cites; the decisions (limits, setpoints, schedules) come from an
`EvseController`.
"""

from __future__ import annotations

import contextlib
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from stack.messages import app_protocol as ap
from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct
from stack.messages.minimal import minimal

from . import convert
from .actions import Action, Close, Event, LocalProtocolError, Send
from .controller import AuthorizationStatus, CableCheckStatus, ChargeLoopOutput, EvseController, PowerLimits
from .flow import BY_NAME, BY_REQUEST, DC_NAMESPACE, NEW_SESSION, Exchange, Phase, allowed, ends_session
from .services import (
    ControlMode,
    NegotiatedService,
    ParameterSet,
    ServiceId,
    ServiceOffer,
    default_offers,
)
from .timers import SeccTimers

RC = ct.ResponseCode


@dataclass(frozen=True, slots=True)
class SeccConfig:
    offers: tuple[ServiceOffer, ...] = field(default_factory=default_offers)
    timers: SeccTimers = field(default_factory=SeccTimers)
    # SAP namespaces we accept with major version 1; MCS negotiates its service later, the namespace stays DC
    namespaces: tuple[str, ...] = (DC_NAMESPACE,)
    service_renegotiation: bool = True
    pause_allowed: bool = True
    standby_allowed: bool = False
    negative_discharge: bool = False  # sign of discharge limits on the wire (PROTOCOL.md section 5)
    # Josev's EVCC rejects MeterInfo with BPT_DischargedEnergyReadingWh (its model misspells it): a setting
    send_discharged_energy: bool = True


@dataclass(slots=True)
class SessionContext:
    """What a paused session keeps for `OK_OldSessionJoined`."""

    session_id: bytes
    service: ServiceId
    parameter_set: ParameterSet
    offered: tuple[ServiceOffer, ...]


class SessionStore:
    """Paused sessions of one charger, shared by its connections (resume with the old SessionID).

    Bounded: beyond `capacity` paused sessions the oldest is forgotten (its EV then gets a new session).
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._paused: dict[bytes, SessionContext] = {}

    def pause(self, ctx: SessionContext) -> None:
        self._paused[ctx.session_id] = ctx
        while len(self._paused) > self.capacity:
            del self._paused[next(iter(self._paused))]

    def resume(self, session_id: bytes) -> SessionContext | None:
        return self._paused.pop(session_id, None)


class SeccSession(NegotiatedService):
    """One V2G communication session seen from the charger."""

    def __init__(
        self,
        controller: EvseController,
        config: SeccConfig | None = None,
        store: SessionStore | None = None,
        new_session_id: Callable[[], bytes] = lambda: secrets.token_bytes(8),
    ) -> None:
        self.controller = controller
        self.config = config or SeccConfig()
        self.store = store if store is not None else SessionStore()
        self._new_session_id = new_session_id
        self.phase = Phase.START
        self.session_id = NEW_SESSION
        self.offered: tuple[ServiceOffer, ...] = ()
        self.service: ServiceId | None = None
        self.parameter_set: ParameterSet | None = None
        self.schedule_ids: set[int] = set()
        self.deadline: float | None = None
        self.closed: Close | None = None
        self._ongoing: tuple[str, float] | None = None  # (request name, start) of the current Ongoing phase
        self.authorized = False
        self.evse_limits: PowerLimits | None = None
        self.energized = False  # contactors closed for energy transfer (PowerDelivery Start .. Stop)

    # -- driver interface ------------------------------------------------------------------------------
    def start(self, now: float) -> list[Action]:
        """The connection is up: the first request must arrive within the sequence timeout."""
        self.deadline = now + self.config.timers.sequence
        return [Event("secc_started")]

    def receive(self, message: object, now: float) -> list[Action]:
        if self.closed is not None:
            raise LocalProtocolError("session already closed")
        exchange = BY_REQUEST.get(type(message))
        if exchange is None:
            return self._close(f"unexpected message {type(message).__name__}", now)
        has_session = exchange.name not in ("supportedAppProtocolReq", "SessionSetupReq")
        if has_session and message.header.session_id != self.session_id:
            return self._fail(exchange, RC.FAILED_UnknownSession, now, "foreign SessionID")
        if not allowed(self.phase, exchange.name):
            return self._fail(exchange, RC.FAILED_SequenceError, now, f"{exchange.name} in phase {self.phase}")
        handler = getattr(self, "_on_" + exchange.key)
        try:
            response = handler(message, now)
        except Exception:  # a controller failed: leave the hardware safe, then let the driver report it
            with contextlib.suppress(Exception):
                self._close(f"internal error while handling {exchange.name}", now)
            raise
        return self._respond(exchange, response, now)

    def expire(self, now: float) -> list[Action]:
        """Call when `now` reached `deadline`."""
        if self.deadline is None or now < self.deadline or self.closed is not None:
            return []
        self.deadline = None
        return self._close("V2G_SECC_Sequence_Timeout: no request in time", now, timer="V2G_SECC_Sequence_Timeout")

    def connection_lost(self, now: float) -> list[Action]:
        if self.closed is not None:
            return []
        return self._close("connection lost", now)

    # -- plumbing --------------------------------------------------------------------------------------
    def _header(self, now: float) -> ct.MessageHeader:
        return ct.MessageHeader(session_id=self.session_id, time_stamp=int(now))

    def _respond(self, exchange: Exchange, response: object, now: float) -> list[Action]:
        actions: list[Action] = [Send(response, exchange.schema)]
        code = getattr(response, "response_code", None)
        if ends_session(code):
            closing = self._close(f"{exchange.name} answered {code}", now)
            return [*actions, Event("failed", {"request": exchange.name, "code": str(code)}), *closing]
        if self.closed is not None:
            return [*actions, self.closed]
        self.deadline = now + self.config.timers.sequence
        return actions

    def _fail(self, exchange: Exchange, code: RC, now: float, why: str) -> list[Action]:
        if exchange.response is ap.SupportedAppProtocolRes:  # no header, no FAILED_* codes: refuse the negotiation
            response = ap.SupportedAppProtocolRes(response_code=ap.ResponseCode.Failed_NoNegotiation)
        else:
            response = minimal(exchange.response, header=self._header(now), response_code=code)
        return [Event("rule", {"code": str(code), "why": why}), *self._respond(exchange, response, now)]

    def _failed(self, exchange_name: str, code: RC, now: float, **fields) -> object:
        return minimal(BY_NAME[exchange_name].response, header=self._header(now), response_code=code, **fields)

    def _close(
        self, reason: str, now: float, *, ok: bool = False, paused: bool = False, timer: str | None = None
    ) -> list[Action]:
        """End the session; the charger is told, and an energized output is switched off first."""
        if self.energized:
            self.controller.power_delivery(False, False, now)
            self.energized = False
        if self.closed is None:
            self.controller.session_ended(reason, now)
        self.phase = Phase.ENDED
        self.deadline = None
        linger = self.config.timers.close_linger if ok else 0.0
        self.closed = Close(reason, ok=ok, paused=paused, linger=linger)
        events = [Event("timeout", {"timer": timer})] if timer else []
        return [*events, self.closed]

    def _still_ongoing(self, request: str, now: float, limit: float) -> bool:
        """Start or continue the Ongoing phase of `request`; False when it lasted longer than `limit`."""
        if self._ongoing is None or self._ongoing[0] != request:
            self._ongoing = (request, now)
        return now - self._ongoing[1] <= limit

    def _finish_ongoing(self) -> None:
        self._ongoing = None

    # -- handlers: one per request ---------------------------------------------------------------------
    def _on_supported_app_protocol(self, req: ap.SupportedAppProtocolReq, now: float):
        # [V2G20-167]: answer the highest-priority (lowest number) entry we support
        for entry in sorted(req.app_protocol, key=lambda e: e.priority):
            if entry.protocol_namespace in self.config.namespaces and entry.version_number_major == 1:
                code = (
                    ap.ResponseCode.OK_SuccessfulNegotiation
                    if entry.version_number_minor == 0
                    else ap.ResponseCode.OK_SuccessfulNegotiationWithMinorDeviation
                )
                self.phase = Phase.SAP_DONE
                return ap.SupportedAppProtocolRes(response_code=code, schema_id=entry.schema_id)
        return ap.SupportedAppProtocolRes(response_code=ap.ResponseCode.Failed_NoNegotiation)

    def _on_session_setup(self, req: cm.SessionSetupReq, now: float):
        requested = req.header.session_id
        resumed = self.store.resume(requested) if requested != NEW_SESSION else None
        if resumed is not None:
            # OK_OldSessionJoined: continue at ChargeParameterDiscovery with the selected service (LIB15118)
            self.session_id = resumed.session_id
            self.service, self.parameter_set, self.offered = resumed.service, resumed.parameter_set, resumed.offered
            self.phase = Phase.SELECTED
            self.authorized = True
            code = RC.OK_OldSessionJoined
        else:
            self.session_id = self._new_session_id()
            while self.session_id == NEW_SESSION:  # all zeros means "new session": never hand it out
                self.session_id = self._new_session_id()
            self.phase = Phase.SESSION
            code = RC.OK_NewSessionEstablished
        return cm.SessionSetupRes(header=self._header(now), response_code=code, evseid=self.controller.evse_id())

    def _on_authorization_setup(self, req: cm.AuthorizationSetupReq, now: float):
        self.phase = Phase.AUTHORIZATION_SETUP
        return cm.AuthorizationSetupRes(
            header=self._header(now),
            response_code=RC.OK,
            authorization_services=[cm.Authorization.EIM],
            certificate_installation_service=False,
            eim_as_res_authorization_mode=cm.EimAsResAuthorizationMode(),
        )

    def _on_authorization(self, req: cm.AuthorizationReq, now: float):
        def res(code: RC, processing: ct.Processing) -> cm.AuthorizationRes:
            return cm.AuthorizationRes(header=self._header(now), response_code=code, evse_processing=processing)

        # [V2G20-2209/2226]: a service we did not offer (we offer EIM only; PnC comes with the PKI issue)
        if req.selected_authorization_service != cm.Authorization.EIM or req.eim_a_req_authorization_mode is None:
            return res(RC.WARNING_AuthorizationSelectionInvalid, ct.Processing.Finished)
        status = self.controller.authorize(now)
        if status is AuthorizationStatus.ONGOING:
            if not self._still_ongoing("AuthorizationReq", now, self.config.timers.eim_ongoing):
                return res(RC.FAILED, ct.Processing.Finished)
            self.phase = Phase.AUTHORIZATION_ONGOING
            return res(RC.OK, ct.Processing.Ongoing_WaitingForCustomerInteraction)
        self._finish_ongoing()
        if status is AuthorizationStatus.REJECTED:
            self.phase = Phase.AUTHORIZATION_SETUP
            return res(RC.WARNING_EIMAuthorizationFailure, ct.Processing.Finished)  # [V2G20-2230]
        self.phase = Phase.AUTHORIZED
        self.authorized = True
        return res(RC.OK, ct.Processing.Finished)

    def _on_service_discovery(self, req: cm.ServiceDiscoveryReq, now: float):
        offers = self.config.offers
        if req.supported_service_ids is not None:  # offer nothing outside the EV's list
            wanted = set(req.supported_service_ids.service_id)
            offers = tuple(o for o in offers if o.service_id in wanted)
        if not offers:
            return self._failed("ServiceDiscoveryReq", RC.FAILED_NoEnergyTransferServiceSelected, now)
        self.offered = offers
        self.phase = Phase.DISCOVERED
        services = [cm.Service(service_id=int(o.service_id), free_service=o.free) for o in offers]
        return cm.ServiceDiscoveryRes(
            header=self._header(now),
            response_code=RC.OK,
            service_renegotiation_supported=self.config.service_renegotiation,
            energy_transfer_service_list=cm.ServiceList(service=services),
        )

    def _on_service_detail(self, req: cm.ServiceDetailReq, now: float):
        offer = self._offer(req.service_id)
        if offer is None:  # [V2G20-464]
            return self._failed("ServiceDetailReq", RC.FAILED_ServiceIDInvalid, now, service_id=req.service_id)
        self.phase = Phase.DETAILED
        return cm.ServiceDetailRes(
            header=self._header(now),
            response_code=RC.OK,
            service_id=req.service_id,
            service_parameter_list=offer.detail(),
        )

    def _on_service_selection(self, req: cm.ServiceSelectionReq, now: float):
        selected = req.selected_energy_transfer_service
        offer = self._offer(selected.service_id)
        if offer is None:
            return self._failed("ServiceSelectionReq", RC.FAILED_NoEnergyTransferServiceSelected, now)
        parameter_set = offer.parameter_set(selected.parameter_set_id)
        if parameter_set is None or (req.selected_vas_list and req.selected_vas_list.selected_service):
            return self._failed("ServiceSelectionReq", RC.FAILED_ServiceSelectionInvalid, now)
        self.service, self.parameter_set = offer.service_id, parameter_set
        self.phase = Phase.SELECTED
        return cm.ServiceSelectionRes(header=self._header(now), response_code=RC.OK)

    def _offer(self, service_id: int) -> ServiceOffer | None:
        return next((o for o in self.offered if o.service_id == service_id), None)

    def _on_dc_charge_parameter_discovery(self, req: dc.DcChargeParameterDiscoveryReq, now: float):
        mode = req.dc_cpd_req_energy_transfer_mode
        if isinstance(mode, dc.BptDcCpdReqEnergyTransferMode) != self.bpt:
            return self._failed("DC_ChargeParameterDiscoveryReq", RC.FAILED_WrongChargeParameter, now)
        ev = convert.limits_of_cpd_request(mode)
        if min(ev.max_charge_power, ev.max_charge_current, ev.max_voltage, ev.min_voltage) < 0:
            return self._failed("DC_ChargeParameterDiscoveryReq", RC.FAILED_WrongChargeParameter, now)
        evse = self.controller.charge_parameters(self.service, ev, now)
        self.evse_limits = evse
        self.phase = Phase.CHARGE_PARAMETERS
        return dc.DcChargeParameterDiscoveryRes(
            header=self._header(now),
            response_code=RC.OK,
            dc_cpd_res_energy_transfer_mode=convert.cpd_response(evse, self.bpt, self.config.negative_discharge),
        )

    def _on_schedule_exchange(self, req: cm.ScheduleExchangeReq, now: float):
        dynamic = self.control_mode is ControlMode.DYNAMIC
        if (req.dynamic_se_req_control_mode is not None) != dynamic:
            return self._failed("ScheduleExchangeReq", RC.FAILED, now)  # control mode mismatch
        answer = self.controller.schedule(
            self.service, self.control_mode, convert.energy_of_se_request(req), req.maximum_supporting_points, now
        )
        res = cm.ScheduleExchangeRes(
            header=self._header(now),
            response_code=RC.OK,
            evse_processing=ct.Processing.Finished,
            go_to_pause=answer.go_to_pause,
        )
        if not answer.finished:
            if not self._still_ongoing("ScheduleExchangeReq", now, self.config.timers.ongoing):
                return self._failed("ScheduleExchangeReq", RC.FAILED, now)
            self.phase = Phase.SCHEDULE_ONGOING
            res.evse_processing = ct.Processing.Ongoing
            # the XSD needs the control-mode element even while Ongoing (PROTOCOL.md 4.3)
            if dynamic:
                res.dynamic_se_res_control_mode = cm.DynamicSeResControlMode()
            else:
                res.scheduled_se_res_control_mode = minimal(cm.ScheduledSeResControlMode)
            return res
        self._finish_ongoing()
        self.phase = Phase.SCHEDULED
        if dynamic:
            res.dynamic_se_res_control_mode = cm.DynamicSeResControlMode(
                departure_time=answer.departure_time, minimum_soc=answer.min_soc, target_soc=answer.target_soc
            )
        else:
            schedules = answer.schedules[:3]
            self.schedule_ids = {s.tuple_id for s in schedules}
            res.scheduled_se_res_control_mode = cm.ScheduledSeResControlMode(
                schedule_tuple=convert.schedule_tuples(schedules, int(now))
            )
        return res

    def _on_dc_cable_check(self, req: dc.DcCableCheckReq, now: float):
        def res(code: RC, processing: ct.Processing) -> dc.DcCableCheckRes:
            return dc.DcCableCheckRes(header=self._header(now), response_code=code, evse_processing=processing)

        status = self.controller.cable_check(now)
        if status is CableCheckStatus.ONGOING:
            if not self._still_ongoing("DC_CableCheckReq", now, self.config.timers.ongoing):
                return res(RC.FAILED, ct.Processing.Finished)
            self.phase = Phase.CABLE_CHECK_ONGOING
            return res(RC.OK, ct.Processing.Ongoing)
        self._finish_ongoing()
        if status is CableCheckStatus.FAULT:  # isolation fault: -20 DC has no isolation field, only the code
            return res(RC.FAILED, ct.Processing.Finished)
        self.phase = Phase.CABLE_CHECKED
        return res(RC.OK, ct.Processing.Finished)

    def _on_dc_pre_charge(self, req: dc.DcPreChargeReq, now: float):
        target = convert.fl(req.ev_target_voltage)
        if not (math.isfinite(target) and target > 0):  # never drive the output to a nonsense voltage
            return self._failed("DC_PreChargeReq", RC.FAILED, now, evse_present_voltage=convert.rn(0))
        # above the rating the output is clamped, not refused: the EV judges the voltage it gets
        # (Josev's simulated EV asks for 20 kV and still expects a session)
        voltage = self.controller.pre_charge(min(target, self.evse_limits.max_voltage), now)
        self.phase = Phase.PRE_CHARGE
        return dc.DcPreChargeRes(
            header=self._header(now), response_code=RC.OK, evse_present_voltage=convert.rn(voltage)
        )

    def _on_power_delivery(self, req: cm.PowerDeliveryReq, now: float):
        def res(code: RC) -> cm.PowerDeliveryRes:
            return cm.PowerDeliveryRes(header=self._header(now), response_code=code)

        progress = req.charge_progress
        if req.ev_processing != ct.Processing.Finished:
            return res(RC.OK)  # the EV is still computing its profile: it asks again
        if progress == cm.ChargeProgress.Start:
            if self.phase is Phase.SCHEDULED and not self.energized:
                # only a schedule renegotiation (output still on) may skip cable check and pre-charge
                # ([V2G20-2122] lets the EV go to PowerDelivery for pause or standby, not to start)
                return res(RC.FAILED_SequenceError)
            if self.control_mode is ControlMode.SCHEDULED:
                profile = req.ev_power_profile
                chosen = None if profile is None else profile.scheduled_evppt_control_mode
                if chosen is None or chosen.selected_schedule_tuple_id not in self.schedule_ids:
                    return res(RC.FAILED_ScheduleSelectionInvalid)
            discharge = req.bpt_channel_selection == cm.ChannelSelection.Discharge
            if not self.controller.power_delivery(True, discharge, now):
                return res(RC.FAILED_ContactorError)
            self.phase = Phase.POWER_ON
            self.energized = True
            return res(RC.OK)
        if progress == cm.ChargeProgress.Stop:
            if not self.controller.power_delivery(False, False, now):
                return res(RC.FAILED_ContactorError)
            self.phase = Phase.POWER_OFF
            self.energized = False
            return res(RC.OK)
        if progress == cm.ChargeProgress.ScheduleRenegotiation:
            if self.phase not in (Phase.POWER_ON, Phase.CHARGE_LOOP):
                return res(RC.FAILED_SequenceError)
            self.phase = Phase.RENEGOTIATION
            return res(RC.OK)
        if progress == cm.ChargeProgress.Standby and not self.config.standby_allowed:
            return res(RC.WARNING_StandbyNotAllowed)
        return res(RC.OK)

    def _on_dc_charge_loop(self, req: dc.DcChargeLoopReq, now: float):
        expected = convert.LOOP_REQUEST_MODES[self.control_mode, self.bpt]
        if type(req.cl_req_control_mode) is not expected:  # control mode or BPT mismatch (LIB15118: FAILED)
            return self._failed("DC_ChargeLoopReq", RC.FAILED, now)
        loop = convert.loop_input(req, self.control_mode)
        limits = loop.ev_limits
        if limits is not None and min(limits.max_charge_power, limits.max_charge_current, limits.max_voltage) < 0:
            return self._failed("DC_ChargeLoopReq", RC.FAILED, now)  # negative limits: refuse, do not guess
        out = self.controller.charge_loop(loop, now)
        self.phase = Phase.CHARGE_LOOP
        return dc.DcChargeLoopRes(
            header=self._header(now),
            response_code=RC.OK,
            evse_status=None
            if out.notification is None
            else ct.EvseStatus(notification_max_delay=out.notification_max_delay, evse_notification=out.notification),
            meter_info=self._meter_info(out) if (req.meter_info_requested or out.meter) else None,
            evse_present_current=convert.rn(out.present_current),
            evse_present_voltage=convert.rn(out.present_voltage),
            evse_power_limit_achieved=out.power_limit_achieved,
            evse_current_limit_achieved=out.current_limit_achieved,
            evse_voltage_limit_achieved=out.voltage_limit_achieved,
            cl_res_control_mode=convert.loop_response_mode(
                self.control_mode, self.bpt, out, self.config.negative_discharge
            ),
        )

    def _meter_info(self, out: ChargeLoopOutput) -> ct.MeterInfo | None:
        meter = out.meter
        if meter is None:
            return None
        info = ct.MeterInfo(
            meter_id=meter.meter_id, charged_energy_reading_wh=meter.imported_wh, meter_timestamp=meter.timestamp
        )
        if self.bpt and self.config.send_discharged_energy and meter.exported_wh is not None:
            info = replace(info, bpt_discharged_energy_reading_wh=meter.exported_wh)
        return info

    def _on_dc_welding_detection(self, req: dc.DcWeldingDetectionReq, now: float):
        voltage = self.controller.welding_detection(now)
        self.phase = Phase.WELDING_DETECTION
        return dc.DcWeldingDetectionRes(
            header=self._header(now), response_code=RC.OK, evse_present_voltage=convert.rn(voltage)
        )

    def _on_session_stop(self, req: cm.SessionStopReq, now: float):
        def res(code: RC) -> cm.SessionStopRes:
            return cm.SessionStopRes(header=self._header(now), response_code=code)

        kind = req.charging_session
        if self.energized:  # a SessionStop while energy flows: switch off before answering
            self.controller.power_delivery(False, False, now)
            self.energized = False
        if kind == cm.ChargingSession.ServiceRenegotiation:
            if not self.config.service_renegotiation:
                return res(RC.FAILED_NoServiceRenegotiationSupported)
            if not self.authorized:  # renegotiation must not be a way around authorization
                return res(RC.FAILED_SequenceError)
            self.phase = Phase.AUTHORIZED  # back to ServiceDiscovery in the same connection [V2G20-1477]
            self._finish_ongoing()
            return res(RC.OK)
        if kind == cm.ChargingSession.Pause:
            if not self.config.pause_allowed or self.service is None:
                return res(RC.FAILED_PauseNotAllowed)
            self.store.pause(SessionContext(self.session_id, self.service, self.parameter_set, self.offered))
            self._close("session paused", now, ok=True, paused=True)
            return res(RC.OK)
        self._close("session terminated", now, ok=True)
        return res(RC.OK)
