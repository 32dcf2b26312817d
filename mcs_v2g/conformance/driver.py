"""The fault-injecting scripted driver: plays either role of a -20 session from our own machine, with faults.

The driver runs our `EvccSession` (to test a charger) or `SeccSession` (to test a truck) over a recorded stream,
so that the normal flow is the rulebook's, and a `Script` changes it where a test case wants: one of our messages
mutated, replaced by another message or raw bytes, delayed, withheld, duplicated, or the connection dropped
instead. After a fault the driver either goes on with the flow or only observes what the device does next
(`then`). Every message, byte, violation and close goes to the case's `Trace`, with the clock's time.

The same driver with a script is also the "deliberately broken peer" of our own test suite: our SECC that answers
OK where it should refuse, our EV that ignores a Terminate, and so on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from stack import exi, schemas
from stack.channel import ChannelError, V2gChannel
from stack.clock import Clock
from stack.session.actions import Close, Event, Send, Violation
from stack.session.rulebook import message_name
from stack.transport.drive import SessionMachine
from stack.v2gtp import build

from .stream import RecordedStream, StreamClosed
from .trace import Entry, Kind, Trace


class Then(StrEnum):
    CONTINUE = "continue"  # the flow goes on as if our message had been sent as the machine made it
    OBSERVE = "observe"  # the flow stops: record what the device does until it closes or `observe_s` pass
    CLOSE = "close"  # the tester closes (FIN, TLS close_notify) at once


@dataclass(frozen=True)
class Fault:
    """Where (`at`: a message name or a predicate on our message; the `nth` match) and what to do instead.

    - `mutate(message) -> message`: send a changed message (encoded as any other);
    - `replace(message) -> message | bytes | None`: send another message, raw bytes, or nothing (withhold);
    - `delay`: seconds to wait before sending (virtual or real, by the run's clock);
    - `extra(message) -> message | bytes`: send this too, after ours (a duplicate, an out-of-sequence request);
    - `drop`: abort the connection instead of sending (a reset, no close).
    """

    at: str | Callable[[object], bool]
    nth: int = 1
    mutate: Callable[[Any], Any] | None = None
    replace: Callable[[Any], Any] | None = None
    delay: float = 0.0
    extra: Callable[[Any], Any] | None = None
    drop: bool = False
    then: Then = Then.OBSERVE
    note: str = ""

    def matches(self, message: object) -> bool:
        return self.at(message) if callable(self.at) else message_name(message) == self.at


@dataclass
class Script:
    """The faults of one run, and how long to observe the device after a fault (or after our machine closed)."""

    faults: tuple[Fault, ...] = ()
    observe_s: float = 10.0
    linger_s: float = 0.0  # when our machine closes: wait this long for the device to close first
    _seen: dict[int, int] = field(default_factory=dict)

    def fault_for(self, message: object) -> Fault | None:
        for i, fault in enumerate(self.faults):
            if fault.matches(message):
                self._seen[i] = self._seen.get(i, 0) + 1
                if self._seen[i] == fault.nth:
                    return fault
        return None


def frame_of(message: object) -> bytes:
    """The V2GTP frame of any message of the registry, whatever the session negotiated (for injected messages)."""
    schema = schemas.schema_set(schemas.default_schema_id(type(message)))
    assert schema.payload_type is not None
    return build(schema.payload_type, exi.encode(message))


class Conversation:
    """Messages over one recorded stream: framing and EXI by a V2gChannel, every step in the trace."""

    def __init__(self, stream: RecordedStream, clock: Clock, trace: Trace) -> None:
        self.stream, self.clock, self.trace = stream, clock, trace
        self.channel = V2gChannel()
        self._queue: list[tuple[object, bytes]] = []

    async def send(self, message: object) -> None:
        try:
            frame = self.channel.send(message)
        except ChannelError:  # not what the negotiated protocol carries: sent anyway, that is the test
            frame = frame_of(message)
        self.trace.add(Entry(self.clock.now(), Kind.SENT, message_name(message), message, frame))
        await self.stream.write(frame)

    async def send_raw(self, data: bytes, detail: str = "") -> None:
        self.trace.add(Entry(self.clock.now(), Kind.SENT_RAW, "", None, data, detail))
        await self.stream.write(data)

    async def receive(self, deadline: float | None) -> object | None:
        """The device's next message; None when it closed, went silent until `deadline`, or sent garbage (each
        recorded in the trace)."""
        while not self._queue:
            if self.channel.held:  # frames that came with a SAP request, now that it was answered
                data = b""
            else:
                try:
                    data = await self.stream.read(deadline)
                except TimeoutError:
                    self.trace.add(Entry(self.clock.now(), Kind.SILENCE, detail="no message before the deadline"))
                    return None
                except StreamClosed as exc:
                    self.trace.add(Entry(self.clock.now(), Kind.PEER_CLOSED, detail=str(exc)))
                    return None
                if not data:
                    detail = "the device closed the connection"
                    self.trace.add(Entry(self.clock.now(), Kind.PEER_CLOSED, detail=detail))
                    return None
            try:
                self._queue.extend((r.message, data) for r in self.channel.receive_data(data))
            except ChannelError as exc:
                self.trace.add(Entry(self.clock.now(), Kind.MALFORMED, data=data, detail=str(exc)))
                return None
        message, data = self._queue.pop(0)
        self.trace.add(Entry(self.clock.now(), Kind.RECEIVED, message_name(message), message, data))
        return message

    async def observe(self, seconds: float) -> None:
        """Record what the device sends until it closes or `seconds` pass (then the tester closes)."""
        until = self.clock.now() + seconds
        while self.clock.now() < until:
            if await self.receive(until) is None:
                break
        await self.close("the observation ended")

    async def close(self, why: str) -> None:
        if not self.stream.closed:
            ended = self.trace.ended()
            if ended is None or ended.kind is not Kind.PEER_CLOSED:
                self.trace.add(Entry(self.clock.now(), Kind.WE_CLOSED, detail=why))
            await self.stream.close()


async def play(machine: SessionMachine, conversation: Conversation, script: Script) -> None:
    """Run `machine` over the conversation with the script's faults until the session (or the observation) ends."""
    conv, clock, trace = conversation, conversation.clock, conversation.trace
    actions = machine.start(clock.now())
    while True:
        for action in actions:
            if isinstance(action, Send):
                fault = script.fault_for(action.message)
                try:
                    if fault is None:
                        await conv.send(action.message)
                        continue
                    then = await _apply(fault, action.message, conv)
                except StreamClosed as exc:
                    trace.add(Entry(clock.now(), Kind.PEER_CLOSED, detail=str(exc)))
                    machine.connection_lost(clock.now())
                    return
                if then is Then.OBSERVE:
                    await conv.observe(script.observe_s)
                    return
                if then is Then.CLOSE:
                    await conv.close(fault.note or "the script closes")
                    return
            elif isinstance(action, Violation):
                rule = action.rule_id or ""
                trace.add(Entry(clock.now(), Kind.VIOLATION, rule, detail=str(action.error)))
            elif isinstance(action, Event):
                trace.add(Entry(clock.now(), Kind.EVENT, action.kind, detail=str(action.detail)))
            elif isinstance(action, Close):
                linger = max(script.linger_s, action.linger)  # an SECC lets the EV close first ([V2G20-1643])
                if linger > 0:
                    await conv.observe(linger)
                await conv.close(action.reason)
                return
        deadline = machine.deadline
        message = await conv.receive(deadline)
        if message is not None:
            actions = machine.receive(message, clock.now())
            continue
        last = trace.entries[-1]
        if last.kind is Kind.SILENCE:
            actions = machine.expire(clock.now() if deadline is None else max(clock.now(), deadline))
            if not actions and deadline is None:
                await conv.close("nothing to wait for")
                return
            continue
        if last.kind is Kind.MALFORMED:
            machine.connection_lost(clock.now())
            await conv.close("malformed message")
            return
        actions = machine.connection_lost(clock.now())
        if not any(isinstance(a, Send) for a in actions):
            for action in actions:
                if isinstance(action, Violation):
                    trace.add(Entry(clock.now(), Kind.VIOLATION, action.rule_id or "", detail=str(action.error)))
            await conv.close("the device closed")
            return


async def _apply(fault: Fault, message: object, conv: Conversation) -> Then:
    """Do what the fault says instead of sending `message`."""
    clock, trace = conv.clock, conv.trace
    if fault.note:
        trace.add(Entry(clock.now(), Kind.NOTE, detail=fault.note))
    if fault.drop:
        trace.add(Entry(clock.now(), Kind.WE_CLOSED, detail="the script drops the connection"))
        conv.stream.abort()
        return Then.CLOSE
    if fault.delay > 0:
        await clock.sleep_until(clock.now() + fault.delay)
    outgoing: Any = message
    if fault.mutate is not None:
        outgoing = fault.mutate(message)
    if fault.replace is not None:
        outgoing = fault.replace(message)
    await _send_any(conv, outgoing)
    if fault.extra is not None:
        await _send_any(conv, fault.extra(message))
    return fault.then


async def _send_any(conv: Conversation, outgoing: object) -> None:
    if outgoing is None:
        conv.trace.add(Entry(conv.clock.now(), Kind.NOTE, detail="withheld"))
    elif isinstance(outgoing, bytes | bytearray):
        await conv.send_raw(bytes(outgoing))
    else:
        await conv.send(outgoing)
