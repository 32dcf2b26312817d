"""What both ends of a -20 session know after each exchange: the phase and the negotiated facts.

`SessionState` is derived from the messages alone (each exchange's `apply` reads the request and the response),
so the SECC and the EVCC hold the same state after every exchange and check requests against the same facts:
the EVCC never sends what the SECC would refuse (h11's "no role-specific rules" in -20 form).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from stack.messages import iso20_common as cm

from .config import ResumeInfo
from .services import BPT_SERVICES, ControlMode, ParameterSet, ServiceId

NEW_SESSION = bytes(8)  # the SessionID of a SessionSetupReq that asks for a new session


class Phase(StrEnum):
    """Where a session stands: named after the last exchange and its outcome."""

    START = "start"
    SAP_DONE = "sap_done"
    SESSION = "session"
    AUTHORIZATION_SETUP = "authorization_setup"
    AUTHORIZATION_ONGOING = "authorization_ongoing"
    AUTHORIZED = "authorized"
    DISCOVERED = "discovered"
    DETAILED = "detailed"
    SELECTED = "selected"
    CHARGE_PARAMETERS = "charge_parameters"
    SCHEDULE_ONGOING = "schedule_ongoing"
    SCHEDULED = "scheduled"
    CABLE_CHECK_ONGOING = "cable_check_ongoing"
    CABLE_CHECKED = "cable_checked"
    PRE_CHARGE = "pre_charge"
    POWER_ON = "power_on"
    CHARGE_LOOP = "charge_loop"
    RENEGOTIATION = "renegotiation"
    POWER_OFF = "power_off"
    WELDING_DETECTION = "welding_detection"
    ENDED = "ended"


class Outcome(StrEnum):
    """How an exchange ended, read from its request and response alone (the rulebook maps it to a phase)."""

    OK = "ok"
    ONGOING = "ongoing"  # EVSEProcessing Ongoing: the EV asks again
    REFUSED = "refused"  # a WARNING code: the step did not happen, the session goes on
    FAILED = "failed"  # a FAILED code: the session ends
    NEW_SESSION = "new_session"
    RESUMED = "resumed"  # OK_OldSessionJoined
    EV_ONGOING = "ev_ongoing"  # EVProcessing Ongoing in PowerDeliveryReq: nothing changes yet
    START = "start"
    STOP = "stop"
    STANDBY = "standby"
    RENEGOTIATE = "renegotiate"  # PowerDelivery(ScheduleRenegotiation)
    TERMINATE = "terminate"
    PAUSE = "pause"
    SERVICE_RENEGOTIATION = "service_renegotiation"


@dataclass(frozen=True, slots=True)
class SessionState:
    """The phase and every negotiated fact the rules read; replaced (never mutated) after each exchange."""

    phase: Phase = Phase.START
    session_id: bytes = NEW_SESSION
    sap_offer: tuple[tuple[int, str], ...] = ()  # (SchemaID, namespace) of the SupportedAppProtocolReq
    authorization_services: frozenset[cm.Authorization] = frozenset()  # offered in AuthorizationSetupRes
    gen_challenge: bytes | None = None  # PnC: the SECC's GenChallenge of AuthorizationSetupRes
    certificate_installation: bool = False  # AuthorizationSetupRes offered CertificateInstallation
    authorization: cm.Authorization | None = None  # the mode the EV selected and the SECC accepted
    authorized: bool = False
    supported_service_ids: tuple[int, ...] | None = None  # the EV's ServiceDiscoveryReq filter
    offered_services: tuple[int, ...] = ()  # ServiceDiscoveryRes
    renegotiation_supported: bool = False
    parameter_sets: dict[int, tuple[ParameterSet, ...]] = field(default_factory=dict)  # per detailed service
    service: ServiceId | None = None
    parameter_set: ParameterSet | None = None
    schedule_ids: frozenset[int] = frozenset()  # ScheduleTupleIDs offered in Scheduled mode
    cable_checked: bool = False  # an insulation test passed since the output was last switched off
    energized: bool = False  # PowerDelivery(Start) .. (Stop): contactors closed for energy transfer
    renegotiating: bool = False  # a schedule renegotiation is running (the output stays on)
    resume: ResumeInfo | None = None  # the paused session being rejoined (EV: its setting; SECC: its store)

    @property
    def selected(self) -> tuple[ServiceId, ParameterSet]:
        """The service and parameter set chosen at ServiceSelection; the rulebook's phases ask for them only after."""
        if self.service is None or self.parameter_set is None:
            raise RuntimeError(f"no service selected yet in phase {self.phase} (a rulebook bug)")
        return self.service, self.parameter_set

    @property
    def bpt(self) -> bool:
        return self.service in BPT_SERVICES

    @property
    def control_mode(self) -> ControlMode:
        return self.parameter_set.control_mode if self.parameter_set else ControlMode.SCHEDULED

    def to(self, phase: Phase, **changes: Any) -> SessionState:
        if phase is self.phase and not changes:  # most exchanges keep the phase: no copy
            return self
        return replace(self, phase=phase, **changes)


class _Stateful(Protocol):
    state: SessionState


class SessionView:
    """What a session machine knows, read from the state both machines keep in `ctx.state`."""

    ctx: _Stateful

    @property
    def state(self) -> SessionState:
        return self.ctx.state

    @property
    def phase(self) -> Phase:
        return self.ctx.state.phase

    @property
    def session_id(self) -> bytes:
        return self.ctx.state.session_id

    @property
    def service(self) -> ServiceId | None:
        return self.ctx.state.service

    @property
    def parameter_set(self) -> ParameterSet | None:
        return self.ctx.state.parameter_set

    @property
    def control_mode(self) -> ControlMode:
        return self.ctx.state.control_mode

    @property
    def bpt(self) -> bool:
        return self.ctx.state.bpt

    @property
    def energized(self) -> bool:
        return self.ctx.state.energized
