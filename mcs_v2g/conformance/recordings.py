"""One recording of a whole run from its cases' recordings: connection ids renumbered, and every connection given
its own EV port where two would look the same on the wire (in-memory links have made-up addresses), so that
Wireshark shows one TCP stream per case connection."""

from __future__ import annotations

from collections.abc import Iterable

from mcs_v2g.capture.wire import Connection, Datagram, Endpoint, Recording, Segment

FIRST_EPHEMERAL_PORT = 49152


def merge(recordings: Iterable[Recording | None]) -> Recording:
    connections: list[Connection] = []
    segments: list[Segment] = []
    datagrams: list[Datagram] = []
    keylog: list[str] = []
    seen: set[tuple[Endpoint, Endpoint]] = set()
    for recording in recordings:
        if recording is None:
            continue
        renumber = {}
        for c in recording.connections:
            ev = c.ev
            while (ev, c.evse) in seen:
                ev = Endpoint(ev.ip, FIRST_EPHEMERAL_PORT + (ev.port + 1 - FIRST_EPHEMERAL_PORT) % 16384)
            seen.add((ev, c.evse))
            renumber[c.id] = len(connections)
            connections.append(Connection(len(connections), ev, c.evse, c.tls))
        segments.extend(Segment(s.t, renumber[s.conn], s.to_evse, s.data) for s in recording.segments)
        datagrams.extend(recording.datagrams)
        if recording.keylog:
            keylog.append(recording.keylog.rstrip("\n"))
    segments.sort(key=lambda s: s.t)
    datagrams.sort(key=lambda d: d.t)
    secrets = "\n".join(keylog) + ("\n" if keylog else "")
    return Recording(tuple(connections), tuple(segments), tuple(datagrams), keylog=secrets)
