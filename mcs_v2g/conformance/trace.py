"""What a test case saw, in order: messages sent and received, raw bytes, and how the connection ended.

A case's verdict is read from its trace after the run (sans-I/O judges), and the reports print it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    SENT = "sent"  # the tester sent a message (valid or mutated: `message` is what was encoded)
    SENT_RAW = "sent-raw"  # the tester sent bytes that are not a message it could encode (`data`)
    RECEIVED = "received"  # the device sent a message
    MALFORMED = "malformed"  # the device sent bytes that do not decode (`detail` says why)
    PEER_CLOSED = "peer-closed"  # the device closed the connection
    WE_CLOSED = "we-closed"  # the tester closed it (`detail`: why)
    SILENCE = "silence"  # nothing came until the tester stopped waiting (`detail`: for what)
    TLS = "tls"  # the TLS handshake's outcome (`detail`: version and suite, or the failure)
    CONNECTED = "connected"
    VIOLATION = "violation"  # our machine found the device breaking a rule (`name`: the rule id)
    EVENT = "event"  # something our machine reported (a notification, a stop decision)
    NOTE = "note"  # what the script did (a delay, a withheld answer, a hang)


@dataclass(frozen=True, slots=True, eq=False)
class Entry:
    """One step; entries compare by identity (two identical requests are two steps)."""

    t: float  # clock time
    kind: Kind
    name: str = ""  # message name (XSD element), for SENT/RECEIVED
    message: object | None = None
    data: bytes = b""  # the V2GTP frame (or raw bytes) as sent or received
    detail: str = ""


@dataclass
class Trace:
    """The entries of one case, with helpers the judges use."""

    entries: list[Entry] = field(default_factory=list)
    started: float = 0.0

    def add(self, entry: Entry) -> Entry:
        self.entries.append(entry)
        return entry

    def received(self, name: str | None = None) -> list[Entry]:
        return [e for e in self.entries if e.kind is Kind.RECEIVED and (name is None or e.name == name)]

    def sent(self, name: str | None = None) -> list[Entry]:
        kinds = (Kind.SENT, Kind.SENT_RAW)
        return [e for e in self.entries if e.kind in kinds and (name is None or e.name == name)]

    def violations(self) -> list[Entry]:
        return [e for e in self.entries if e.kind is Kind.VIOLATION]

    def first(self, kind: Kind) -> Entry | None:
        return next((e for e in self.entries if e.kind is kind), None)

    def after(self, entry: Entry) -> list[Entry]:
        return self.entries[self.entries.index(entry) + 1 :]

    def ended(self) -> Entry | None:
        """How the connection ended (peer closed, we closed, or silence), if it did."""
        ends = (Kind.PEER_CLOSED, Kind.WE_CLOSED, Kind.SILENCE)
        return next((e for e in reversed(self.entries) if e.kind in ends), None)
