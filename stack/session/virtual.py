"""Run an EVCC and an SECC machine against each other in memory, in virtual time.

No sockets, no sleeping: messages pass straight from one machine to the other (optionally through the EXI
codec, to prove every message encodes), and the clock jumps to the next deadline when both sides wait. Used
by the tests, by benchmarks and by accelerated simulations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stack import exi

from .actions import Action, Close, Event, Send
from .evcc import EvccSession
from .secc import SeccSession


@dataclass(slots=True)
class Transcript:
    messages: list[tuple[float, str, object]] = field(default_factory=list)  # (time, "ev->evse"|"evse->ev", msg)
    events: list[tuple[float, str, Event]] = field(default_factory=list)
    ev_close: Close | None = None
    evse_close: Close | None = None
    end_time: float = 0.0

    def names(self, direction: str | None = None) -> list[str]:
        return [type(m).__name__ for _, d, m in self.messages if direction is None or d == direction]


class VirtualLink:
    """Both machines, a clock, and an optional latency per message (seconds)."""

    def __init__(
        self,
        evcc: EvccSession,
        secc: SeccSession,
        *,
        now: float = 1_795_000_000.0,
        latency: float = 0.0,
        through_exi: bool = True,
        max_steps: int = 100_000,
        drop: callable | None = None,
    ) -> None:
        self.evcc, self.secc = evcc, secc
        self.now = now
        self.latency = latency
        self.through_exi = through_exi
        self.max_steps = max_steps
        self.drop = drop  # drop(message) -> True makes the message vanish (a stalled peer)
        self.transcript = Transcript()
        self._in_flight: list[tuple[float, str, object]] = []

    def run(self) -> Transcript:
        self._handle("evse", self.secc.start(self.now))
        self._handle("ev", self.evcc.start(self.now))
        for _ in range(self.max_steps):
            if self.evcc.closed is not None and self.secc.closed is not None:
                break
            # a closed connection is seen by the other side once everything sent before the close has arrived
            if not self._in_flight:
                if self.secc.closed is not None and self.evcc.closed is None:
                    self._handle("ev", self.evcc.connection_lost(self.now))
                    continue
                if self.evcc.closed is not None and self.secc.closed is None:
                    self._handle("evse", self.secc.connection_lost(self.now))
                    continue
            deadlines = [(d, side) for side, d in (("ev", self.evcc.deadline), ("evse", self.secc.deadline)) if d]
            self._in_flight.sort(key=lambda x: x[0])
            arrival = self._in_flight[0][0] if self._in_flight else None
            if arrival is None and not deadlines:
                break
            if arrival is not None and (not deadlines or arrival <= min(deadlines)[0]):
                due, to, message = self._in_flight.pop(0)
                self.now = max(self.now, due)
                machine = self.secc if to == "evse" else self.evcc
                if machine.closed is None:
                    self._handle(to, machine.receive(message, self.now))
                continue
            deadline, side = min(deadlines)
            self.now = max(self.now, deadline)
            machine = self.evcc if side == "ev" else self.secc
            self._handle(side, machine.expire(self.now))
        else:
            raise RuntimeError("virtual session did not end")
        self.transcript.end_time = self.now
        return self.transcript

    def _handle(self, side: str, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                message = action.message
                if self.through_exi:
                    message = exi.decode(exi.encode(message, schema=action.schema), action.schema)
                direction = "ev->evse" if side == "ev" else "evse->ev"
                self.transcript.messages.append((self.now, direction, message))
                if self.drop is not None and self.drop(message):
                    continue
                self._in_flight.append((self.now + self.latency, "evse" if side == "ev" else "ev", message))
            elif isinstance(action, Close):
                if side == "ev":
                    self.transcript.ev_close = action
                    self._in_flight = [m for m in self._in_flight if m[1] != "ev"]
                else:
                    self.transcript.evse_close = action
                    self._in_flight = [m for m in self._in_flight if m[1] != "evse"]
            elif isinstance(action, Event):
                self.transcript.events.append((self.now, side, action))
