"""What a sans-I/O session machine asks its driver to do, and the events it reports."""

from __future__ import annotations

from dataclasses import dataclass, field


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


@dataclass(frozen=True, slots=True)
class Event:
    """Something worth logging or reacting to: a phase change, a notification, a timer, a rule applied."""

    kind: str
    detail: dict = field(default_factory=dict)


Action = Send | Close | Event


class LocalProtocolError(RuntimeError):
    """We misused the machine (a bug on our side): wrong call order, feeding a message after close."""


class RemoteProtocolError(ValueError):
    """The peer sent something the protocol does not allow here (wrong message, wrong session, bad response)."""
