"""What a sans-I/O session machine asks its driver to do, and what it reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import LocalProtocolError, PeerTimeout, RemoteProtocolError

__all__ = [
    "Action",
    "Close",
    "Event",
    "LocalProtocolError",
    "PeerTimeout",
    "RemoteProtocolError",
    "Send",
    "Violation",
]


@dataclass(frozen=True, slots=True)
class Send:
    """Encode and send this message (the schema id picks the EXI grammar and the V2GTP payload type)."""

    message: object
    schema: str


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection. `ok` is a clean end (SessionStop answered), `paused` keeps the session for a resume."""

    reason: str
    ok: bool = False
    paused: bool = False
    linger: float = 0.0  # seconds to wait for the peer to close first ([V2G20-1643]: the SECC waits up to 5 s)
    error: RemoteProtocolError | None = None  # the peer's violation that ended the session, if one did


@dataclass(frozen=True, slots=True)
class Event:
    """Something worth logging or reacting to: a notification, a rule the SECC applied, a stop decision."""

    kind: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Violation:
    """The peer broke a rule: the typed error, with the rule id (the session answers or closes as the rule says)."""

    error: RemoteProtocolError

    @property
    def rule_id(self) -> str | None:
        return self.error.rule_id


Action = Send | Close | Event | Violation
