"""The recording of what was exchanged on the wire: what the conformance runner records and a capture reads.

Plain frozen dataclasses, no behaviour: TCP connections (their bytes as written on the socket, TLS ciphertext
when the connection is TLS), SDP datagrams over UDP, and the TLS secrets in NSS key log form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An IP address (IPv6 text for what we record; a capture may hold IPv4) and a port."""

    ip: str
    port: int


@dataclass(frozen=True, slots=True)
class Connection:
    """One TCP connection: the EV (the client) and the EVSE (the server), and whether it runs TLS."""

    id: int
    ev: Endpoint
    evse: Endpoint
    tls: bool


@dataclass(frozen=True, slots=True)
class Segment:
    """Bytes written on one connection in one direction at time `t` (seconds since the epoch)."""

    t: float
    conn: int
    to_evse: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class Datagram:
    """One UDP datagram (SDP) at time `t`."""

    t: float
    src: Endpoint
    dst: Endpoint
    data: bytes


@dataclass(frozen=True, slots=True)
class Recording:
    """Everything exchanged: connections, their segments and the SDP datagrams in time order, and the TLS
    secrets as NSS key log lines (what `ssl.SSLContext.keylog_filename` writes)."""

    connections: Sequence[Connection]
    segments: Sequence[Segment]
    datagrams: Sequence[Datagram] = ()
    keylog: str = ""
    notes: Sequence[str] = ()  # what a capture reader could not take in (lost segments, unknown flows)

    def stream(self, conn: int, to_evse: bool) -> bytes:
        """All bytes of one direction of one connection, in order."""
        return b"".join(s.data for s in self.segments if s.conn == conn and s.to_evse == to_evse)
