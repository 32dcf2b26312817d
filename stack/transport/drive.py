"""Run a sans-I/O session machine over a V2G connection: the only place where sessions meet asyncio."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from stack.session.actions import Action, Close, Event, Send
from stack.session.flow import message_name

from .connection import BadMessage, ConnectionClosed, V2gConnection

log = logging.getLogger("mcs_v2g.session")


class SessionMachine(Protocol):
    deadline: float | None

    def start(self, now: float) -> list[Action]: ...
    def receive(self, message: object, now: float) -> list[Action]: ...
    def expire(self, now: float) -> list[Action]: ...
    def connection_lost(self, now: float) -> list[Action]: ...


def _code(message: object) -> str:
    code = getattr(message, "response_code", None)
    return "" if code is None else f" {code}"


async def run_session(
    machine: SessionMachine,
    conn: V2gConnection,
    *,
    role: str,
    clock: Callable[[], float] = time.time,
    on_event: Callable[[Event], None] | None = None,
    on_round_trip: Callable[[str, float], None] | None = None,
    on_message: Callable[[str, object], None] | None = None,
    pace: Callable[[float], Awaitable[None]] | None = None,
    advance: Callable[[float], None] | None = None,
) -> Close:
    """Drive `machine` until it closes; returns its Close. Every message is logged on one line.

    `on_round_trip(response name, seconds)` receives the EVCC's round-trip times (request sent -> response read);
    `on_message(direction, message)` sees every message (">>" sent, "<<" received). `pace(deadline)` is for a
    simulated clock: when the machine only waits to send its next request (an EVCC between charge loops), the
    driver awaits `pace` instead of the network, and the clock decides how that time passes. `advance(deadline)`
    moves such a clock to a deadline that passed while the peer was silent (a timeout in simulated time).
    """
    sent_at: float | None = None
    received_at: float | None = None
    actions = machine.start(clock())
    while True:
        lost = None
        for action in actions:
            if lost is not None:
                break
            if isinstance(action, Send):
                try:
                    size = await conn.send(action.message, action.schema)
                except ConnectionClosed as exc:
                    lost = exc
                    break
                if on_message is not None:
                    on_message(">>", action.message)
                sent_at = time.perf_counter()
                took = "" if received_at is None else f", answered in {1000 * (sent_at - received_at):.1f} ms"
                log.info("%s -> %s%s (%d B%s)", role, message_name(action.message), _code(action.message), size, took)
                received_at = None
            elif isinstance(action, Event):
                log.debug("%s event %s %s", role, action.kind, action.detail)
                if on_event:
                    on_event(action)
            elif isinstance(action, Close):
                log.info("%s closes: %s", role, action.reason)
                if action.linger > 0:
                    await conn.wait_closed_by_peer(action.linger)
                await conn.close()
                return action
        if lost is not None:
            log.info("%s: %s", role, lost)
            await conn.close()
            closing = [a for a in machine.connection_lost(clock()) if isinstance(a, Close)]
            return closing[0] if closing else Close(f"connection lost: {lost}")
        deadline = machine.deadline
        if pace is not None and deadline is not None and not getattr(machine, "awaiting_response", True):
            await pace(deadline)
            actions = machine.expire(clock())
            continue
        timeout = None if deadline is None else max(0.0, deadline - clock())
        try:
            received = await conn.receive(timeout)
        except TimeoutError:
            if advance is not None and deadline is not None:
                advance(deadline)
            actions = machine.expire(clock())
            continue
        except ConnectionClosed as exc:
            log.info("%s: %s", role, exc)
            actions = machine.connection_lost(clock())
            if not actions:
                await conn.close()
                return Close(str(exc))
            continue
        except BadMessage as exc:
            log.warning("%s: closing on a malformed message: %s", role, exc)
            await conn.close()
            machine.connection_lost(clock())
            return Close(f"malformed message: {exc}")
        received_at = time.perf_counter()
        rtt = ""
        if sent_at is not None and role != "SECC":
            rtt = f", round trip {1000 * (received_at - sent_at):.1f} ms"
            if on_round_trip is not None:
                on_round_trip(message_name(received.message), received_at - sent_at)
        log.info(
            "%s <- %s%s (%d B%s)", role, message_name(received.message), _code(received.message), received.size, rtt
        )
        if on_message is not None:
            on_message("<<", received.message)
        actions = machine.receive(received.message, clock())
