"""An EVCC and an SECC machine joined by an in-memory link, on a virtual clock: whole sessions in microseconds.

The messages take the real path (V2GTP frames and EXI through each side's channel, the same driver as over
TCP/TLS), the clock jumps from event to event, so a 60 s timeout costs nothing and runs are deterministic.
Used by the tests, the benchmarks and as the smallest example of both machines together.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from stack.clock import Clock, VirtualClock
from stack.session.actions import Close, Event, Violation
from stack.session.evcc import EvccSession
from stack.session.secc import SeccSession

from .connection import V2gConnection
from .drive import Observers, run_session
from .memory import memory_link

DEFAULT_START = 1_795_000_000.0
GIVE_UP_AFTER = 30 * 86_400.0  # simulated seconds: a session that never ends is a bug of the test


@dataclass(slots=True)
class Transcript:
    messages: list[tuple[float, str, object]] = field(default_factory=list)  # (time, "ev->evse"|"evse->ev", msg)
    events: list[tuple[float, str, Event | Violation]] = field(default_factory=list)
    ev_close: Close | None = None
    evse_close: Close | None = None
    end_time: float = 0.0

    def names(self, direction: str | None = None) -> list[str]:
        return [type(m).__name__ for _, d, m in self.messages if direction is None or d == direction]

    def violations(self, side: str | None = None) -> list[Violation]:
        return [e for _, s, e in self.events if isinstance(e, Violation) and side in (None, s)]


class _Dropping(V2gConnection):
    """A connection that silently loses the messages `drop` picks (a stalled peer)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        clock: Clock,
        *,
        role: str,
        drop: Callable[[object], bool],
    ) -> None:
        super().__init__(reader, writer, clock, role=role)
        self._drop = drop

    async def send(self, message: object, deadline: float | None = None) -> int:
        if self._drop(message):
            return len(self.channel.send(message)) - 8  # framed (the channel learns), never written
        return await super().send(message, deadline)


class VirtualLink:
    """Both machines over an in-memory link (optionally TLS, latency per message, messages dropped)."""

    def __init__(
        self,
        evcc: EvccSession,
        secc: SeccSession,
        *,
        now: float = DEFAULT_START,
        latency: float = 0.0,
        drop: Callable[[object], bool] | None = None,
        tls: tuple[ssl.SSLContext, ssl.SSLContext] | None = None,
    ) -> None:
        self.evcc, self.secc = evcc, secc
        self.start = now
        self.latency = latency
        self.drop = drop
        self.tls = tls
        self.transcript = Transcript()

    def run(self) -> Transcript:
        """Run the session to its end on a fresh virtual clock."""
        clock = VirtualClock(self.start)
        return clock.run(self.run_on(clock))

    async def run_on(self, clock: Clock) -> Transcript:
        server_tls, client_tls = self.tls or (None, None)
        link = await memory_link(server_tls, client_tls, latency=self.latency)
        (secc_reader, secc_writer), (ev_reader, ev_writer) = link.server, link.client
        secc_conn = self._connection(secc_reader, secc_writer, clock, "SECC")
        ev_conn = self._connection(ev_reader, ev_writer, clock, "EV")
        async with clock.timeout_at(clock.now() + GIVE_UP_AFTER):
            secc_task = asyncio.ensure_future(
                run_session(self.secc, secc_conn, clock, role="SECC", observers=self._observers(clock, "evse"))
            )
            ev_task = asyncio.ensure_future(
                run_session(self.evcc, ev_conn, clock, role="EV", observers=self._observers(clock, "ev"))
            )
            self.transcript.evse_close, self.transcript.ev_close = await asyncio.gather(secc_task, ev_task)
        self.transcript.end_time = clock.now()
        return self.transcript

    def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, clock: Clock, role: str
    ) -> V2gConnection:
        if self.drop is None:
            return V2gConnection(reader, writer, clock, role=role)
        return _Dropping(reader, writer, clock, role=role, drop=self.drop)

    def _observers(self, clock: Clock, side: str) -> Observers:
        direction = "ev->evse" if side == "ev" else "evse->ev"

        def message(way: str, msg: object) -> None:
            if way == ">>":
                self.transcript.messages.append((clock.now(), direction, msg))

        def event(e: Event | Violation) -> None:
            self.transcript.events.append((clock.now(), side, e))

        return Observers(message=message, event=event)
