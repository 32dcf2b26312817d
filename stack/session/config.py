"""Settings of the two session machines, and what a charger keeps of its paused sessions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from stack.messages import iso20_common as cm
from stack.schemas import DC_PROTOCOL

from .pnc import EvPnc, SeccPnc
from .services import ParameterSet, ServiceId, ServiceOffer, default_offers
from .timers import EvccTimers, SeccTimers

DC_NAMESPACE = DC_PROTOCOL.namespace  # SAP namespace of -20 DC; MCS negotiates its service later
# How long a paused session may be rejoined. PROTOCOL.md 4.5: a pause keeps the context while the data link
# sleeps, to wait for a later slot of the charging schedule (GoToPause) or for the charger (EVSENotification
# Pause); neither Josev nor LIB15118 bounds it. A day covers an overnight or depot stay and a whole schedule;
# past it an EV must authorize again (a resume skips authorization).
DEFAULT_RESUME_WITHIN = 24 * 3600.0


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
    # seconds after a pause in which the same vehicle may rejoin the session (DEFAULT_RESUME_WITHIN)
    resume_within: float = DEFAULT_RESUME_WITHIN
    # offered in AuthorizationSetupRes; PnC only when `pnc` holds the trust it needs
    authorizations: tuple[cm.Authorization, ...] = (cm.Authorization.EIM, cm.Authorization.PnC)
    pnc: SeccPnc | None = None


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
    max_supporting_points: int = 1024
    pnc: EvPnc | None = None  # Plug & Charge (None: EIM only)


@dataclass(frozen=True, slots=True)
class Vehicle:
    """Who may rejoin a paused session: the vehicle's TLS client certificate when it sent one, else its EVCCID
    (LIB15118 binds a resume to the certificate: PROTOCOL.md 4.3, SessionSetup)."""

    evccid: str
    certificate: bytes | None = None  # SHA-256 of the DER certificate

    @property
    def key(self) -> tuple[str, bytes | str]:
        return ("certificate", self.certificate) if self.certificate else ("evccid", self.evccid)


@dataclass(frozen=True, slots=True)
class _Paused:
    info: ResumeInfo
    vehicle: tuple[str, bytes | str]
    until: float  # clock time after which it can no longer be rejoined


@dataclass(frozen=True, slots=True)
class _Caller:
    vehicle: Vehicle | None
    now: float
    resume_within: float


class SessionStore:
    """Paused sessions of one charger, shared by its connections (resume with the old SessionID).

    A paused session is rejoined only by the vehicle that paused it (`Vehicle.key`) and only within the
    pausing session's `resume_within`: a session's requests run `acting_for` its vehicle at the request's time
    (SeccSession does that), which `pause` records and `resume` checks. Another vehicle, or a late one, gets a
    new session and the entry stays (or, expired, goes); `refusal` says why the last resume was refused. A
    `resume` outside `acting_for` is the charger's own code and is not checked. Bounded: beyond `capacity`
    paused sessions the oldest is forgotten (its EV then gets a new session).
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._paused: dict[bytes, _Paused] = {}
        self._caller: _Caller | None = None
        self.refusal = ""

    @contextmanager
    def acting_for(self, vehicle: Vehicle | None, now: float, resume_within: float) -> Iterator[None]:
        """Within this block, `pause` and `resume` act for `vehicle` (None: not identified yet) at `now`."""
        self._caller = _Caller(vehicle, now, resume_within)
        try:
            yield
        finally:
            self._caller = None

    def pause(self, paused: ResumeInfo) -> None:
        caller = self._caller
        if caller is None or caller.vehicle is None:
            raise RuntimeError("a session paused before its vehicle was identified (SessionSetupReq)")
        self._forget_expired(caller.now)
        self._paused[paused.session_id] = _Paused(paused, caller.vehicle.key, caller.now + caller.resume_within)
        while len(self._paused) > self.capacity:
            del self._paused[next(iter(self._paused))]

    def resume(self, session_id: bytes) -> ResumeInfo | None:
        """The paused session `session_id` if the caller may rejoin it now (it is then no longer paused)."""
        caller = self._caller
        if caller is not None:
            self._forget_expired(caller.now)
        paused = self._paused.get(session_id)
        if paused is None:
            self.refusal = "no paused session with this SessionID (unknown, expired or already rejoined)"
            return None
        if caller is not None and (caller.vehicle is None or caller.vehicle.key != paused.vehicle):
            self.refusal = "the session was paused by another vehicle"
            return None
        del self._paused[session_id]
        self.refusal = ""
        return paused.info

    def clear(self) -> None:
        """Forget every paused session (e.g. the vehicle unplugged: a pause lives as long as the plug)."""
        self._paused.clear()

    def __len__(self) -> int:
        return len(self._paused)

    def _forget_expired(self, now: float) -> None:
        for session_id in [sid for sid, p in self._paused.items() if p.until < now]:
            del self._paused[session_id]
