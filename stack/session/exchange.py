"""The shape of one exchange of the rulebook, and what its handlers see and return.

A row of the rulebook (`Exchange`) is data: the request and response classes, the phases, services and
control modes in which the request is allowed, the next phase per outcome, the timers, the rules. The code of
the exchange lives in its module under `exchanges/` and reaches the row as a `Handlers`:

* `answer(secc, request, now) -> Answer`: the SECC's response (and the decision behind a code other than OK);
* `outcome(request, response) -> Outcome`: how the exchange ended, from the two messages alone;
* `apply(state, request, response, outcome) -> SessionState`: what both sides learn from the exchange;
* `build(ev, now, **options) -> request`: the EVCC's request, built when it is sent;
* `react(ev, request, response, outcome, now) -> Step`: what the EVCC does next.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stack.messages import iso20_common as cm
from stack.messages import iso20_types as ct
from stack.messages._schema import XsdType
from stack.security.xmldsig import PublicKey

from .actions import Event
from .config import EvccConfig, ResumeInfo, SeccConfig, SessionStore
from .controller import ChargeLoopFeedback, EvController, EvseController, PowerLimits, Schedule, StopReason
from .pnc import Contract
from .rules import Rule
from .services import DC_SERVICES, ControlMode, ServiceId
from .state import Outcome, Phase, SessionState
from .timers import TimerId

ALL_CONTROL_MODES = frozenset(ControlMode)
ALL_AUTHORIZATIONS = frozenset(cm.Authorization)


@dataclass(slots=True)
class SeccContext:
    """What an SECC handler reads and keeps besides the shared state."""

    controller: EvseController
    config: SeccConfig
    store: SessionStore
    state: SessionState
    new_session_id: Callable[[], bytes]
    evse_limits: PowerLimits | None = None
    emaid: str | None = None  # the contract's eMAID once a PnC authorization passed its checks
    contract_key: PublicKey | None = None  # PnC: the contract leaf's key, verifies MeteringConfirmationReq
    meter_info: ct.MeterInfo | None = None  # the last MeterInfo sent in DC_ChargeLoopRes


@dataclass(slots=True)
class EvccContext:
    """What an EVCC handler reads and keeps besides the shared state."""

    controller: EvController
    config: EvccConfig
    state: SessionState
    evse_limits: PowerLimits | None = None
    schedule: Schedule | None = None
    stop_reason: StopReason | None = None
    last_request: Any = None
    charge_loops: int = 0
    resume_info: ResumeInfo | None = None
    ev_contactors_closed: bool = False  # the EV closed them for PowerDelivery(Start) and has not opened them
    contract: Contract | None = None  # PnC: the contract it signs with (from its settings or installed)
    contract_installed: bool = False  # CertificateInstallation gave it a contract in this session
    installation_tried: bool = False
    meter_info: ct.MeterInfo | None = None  # the last MeterInfo received in DC_ChargeLoopRes
    held_feedback: ChargeLoopFeedback | None = None  # the charge loop's, held over a MeteringConfirmation


@dataclass(frozen=True, slots=True)
class Answer:
    """The SECC's response, and the rule (a decision) that made its code other than OK."""

    response: Any
    rule: Rule | None = None
    resume: ResumeInfo | None = None  # SessionSetup: the paused session the SECC rejoins


# -- what the EVCC does after a response --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendNext:
    """Build and send a request of the exchange of `request` (its `build` with `options`), `after` seconds."""

    request: type
    after: float = 0.0
    options: Mapping[str, Any] = field(default_factory=dict)
    events: tuple[Event, ...] = ()


@dataclass(frozen=True, slots=True)
class Repeat:
    """Send the last request again after `after` seconds, only the timestamp changes ([V2G20-1582])."""

    after: float


@dataclass(frozen=True, slots=True)
class StopSession:
    """End the session with SessionStopReq(Terminate) and an explanation."""

    why: str


@dataclass(frozen=True, slots=True)
class Finish:
    """The session is over (SessionStop answered): close the connection."""

    reason: str
    paused: bool = False


Step = SendNext | Repeat | StopSession | Finish


def keep_state(state: SessionState, request: Any, response: Any, outcome: Outcome) -> SessionState:
    return state


@dataclass(frozen=True, slots=True)
class Handlers:
    answer: Callable[[SeccContext, Any, float], Answer]
    outcome: Callable[[Any, Any], Outcome]
    build: Callable[..., Any]
    react: Callable[[EvccContext, Any, Any, Outcome, float], Step]
    apply: Callable[[SessionState, Any, Any, Outcome], SessionState] = keep_state


@dataclass(frozen=True, slots=True)
class Exchange:
    """One row of the rulebook."""

    name: str  # XSD element name of the request
    request: type[XsdType]
    response: type[XsdType]
    schema: str  # schema id of both messages (picks the EXI grammar and the V2GTP payload type)
    allowed_in: frozenset[Phase]
    next_phase: Mapping[Outcome, Phase]  # outcomes not listed keep the phase; FAILED always ends the session
    evcc_timeout: float  # V2G_EVCC_Msg_Timeout of this request, seconds (PROTOCOL.md 6.1)
    handlers: Handlers
    request_rules: tuple[Rule, ...] = ()
    response_rules: tuple[Rule, ...] = ()
    decisions: tuple[Rule, ...] = ()
    evcc_guard: TimerId | None = None  # runs from the first request of this exchange until another is sent
    secc_guard: TimerId | None = None  # the same on the SECC side (its Ongoing guard)
    in_session: bool = True  # carries the session's SessionID (all but SAP and SessionSetup)
    services: frozenset[ServiceId] = DC_SERVICES  # services in which the request may be sent once one is selected
    control_modes: frozenset[ControlMode] = ALL_CONTROL_MODES
    authorizations: frozenset[cm.Authorization] = ALL_AUTHORIZATIONS

    @property
    def response_name(self) -> str:
        return self.name[: -len("Req")] + "Res"

    def allowed(self, state: SessionState) -> bool:
        """The request fits the phase, the selected service and control mode, the authorization mode."""
        if state.phase not in self.allowed_in:
            return False
        if state.service is not None and state.service not in self.services:
            return False
        if state.authorization is not None and state.authorization not in self.authorizations:
            return False
        return state.parameter_set is None or state.control_mode in self.control_modes

    def next(self, state: SessionState, outcome: Outcome) -> Phase:
        if outcome is Outcome.FAILED:
            return Phase.ENDED
        return self.next_phase.get(outcome, state.phase)
