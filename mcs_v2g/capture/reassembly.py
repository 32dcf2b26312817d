"""TCP stream reassembly for one direction of one connection, by sequence number.

Segments are fed in capture order; bytes come out in stream order, each chunk stamped with the time and the
capture index of the packet that made it contiguous. Retransmitted and overlapping bytes are dropped,
out-of-order ones held until the gap before them fills. The stream starts after the SYN when it was captured,
else at the lowest sequence number seen (a capture that started mid-connection).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MOD = 1 << 32


@dataclass(frozen=True, slots=True)
class TcpSegment:
    t: float
    index: int  # position of its packet in the capture
    seq: int
    data: bytes
    syn: bool = False


@dataclass(slots=True)
class StreamResult:
    chunks: list[tuple[float, int, bytes]] = field(default_factory=list)  # (time, packet index, bytes)
    missing: int = 0  # bytes never captured before the last one that was (a gap that never filled)
    held: int = 0  # bytes after such a gap, dropped


def reassemble(segments: list[TcpSegment]) -> StreamResult:
    """The in-order bytes of one direction; data after a gap that never fills is dropped and counted."""
    out = StreamResult()
    syn = next((s for s in segments if s.syn), None)
    data_segments = [s for s in segments if s.data]
    if not data_segments:
        return out
    if syn is not None:
        base = (syn.seq + 1) % MOD
    else:
        first = data_segments[0].seq
        base = min((s.seq for s in data_segments), key=lambda seq: _signed(seq - first))
    next_offset = 0
    pending: dict[int, bytes] = {}
    for s in data_segments:
        offset = _signed(s.seq + s.syn - base)  # data on a SYN (TCP Fast Open) starts after the SYN
        if offset + len(s.data) <= next_offset:
            continue  # a retransmission of bytes already delivered
        if offset not in pending or len(s.data) > len(pending[offset]):
            pending[offset] = s.data
        next_offset = _drain(pending, next_offset, s, out)
    if pending:
        start = min(pending)
        out.missing = start - next_offset
        out.held = sum(len(d) for d in pending.values())
    return out


def _drain(pending: dict[int, bytes], next_offset: int, arrived: TcpSegment, out: StreamResult) -> int:
    """Deliver every held segment that now continues the stream; the new stream position."""
    while True:
        usable = [o for o in pending if o <= next_offset]
        if not usable:
            return next_offset
        for offset in sorted(usable):
            tail = pending.pop(offset)[next_offset - offset :]
            if tail:
                out.chunks.append((arrived.t, arrived.index, tail))
                next_offset += len(tail)


def _signed(delta: int) -> int:
    """A sequence number difference as a signed 32-bit value."""
    delta %= MOD
    return delta - MOD if delta >= MOD // 2 else delta
