"""Settings of the two session machines, and what a charger keeps of its paused sessions."""

from __future__ import annotations

from dataclasses import dataclass, field

from stack.schemas import DC_PROTOCOL

from .services import ParameterSet, ServiceId, ServiceOffer, default_offers
from .timers import EvccTimers, SeccTimers

DC_NAMESPACE = DC_PROTOCOL.namespace  # SAP namespace of -20 DC; MCS negotiates its service later


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


class SessionStore:
    """Paused sessions of one charger, shared by its connections (resume with the old SessionID).

    Bounded: beyond `capacity` paused sessions the oldest is forgotten (its EV then gets a new session).
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._paused: dict[bytes, ResumeInfo] = {}

    def pause(self, paused: ResumeInfo) -> None:
        self._paused[paused.session_id] = paused
        while len(self._paused) > self.capacity:
            del self._paused[next(iter(self._paused))]

    def resume(self, session_id: bytes) -> ResumeInfo | None:
        return self._paused.pop(session_id, None)
