"""Run a sans-I/O session machine over a V2G connection: the only place where sessions meet asyncio."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from stack.clock import Clock
from stack.session.actions import Action, Close, Event, Send, Violation
from stack.session.rulebook import message_name

from .connection import BadMessage, ConnectionClosed, PeerTooSlow, V2gConnection

log = logging.getLogger("mcs_v2g.session")


class SessionMachine(Protocol):
    closed: Close | None

    @property
    def deadline(self) -> float | None: ...

    def start(self, now: float) -> list[Action]: ...
    def receive(self, message: object, now: float) -> list[Action]: ...
    def expire(self, now: float) -> list[Action]: ...
    def connection_lost(self, now: float) -> list[Action]: ...


class Observers:
    """Callbacks of `run_session`: `message(direction, msg)` sees every message (">>" sent, "<<" received),
    `event` every Event and Violation, `round_trip(name, s)` the EVCC's wall-clock round trips."""

    def __init__(
        self,
        message: Callable[[str, object], None] | None = None,
        event: Callable[[Event | Violation], None] | None = None,
        round_trip: Callable[[str, float], None] | None = None,
    ) -> None:
        self.message = message or (lambda direction, msg: None)
        self.event = event or (lambda e: None)
        self.round_trip = round_trip or (lambda name, seconds: None)


def _code(message: object) -> str:
    code = getattr(message, "response_code", None)
    return "" if code is None else f" {code}"


async def run_session(
    machine: SessionMachine,
    conn: V2gConnection,
    clock: Clock,
    *,
    role: str,
    observers: Observers | None = None,
) -> Close:
    """Drive `machine` until it closes; returns its Close. Every message is logged on one line.

    The machine's deadline is both its timer and, for an EVCC between requests, the time to send the next one:
    the driver listens for the peer until then (a close or an unexpected message is seen at once).
    Every send must be taken by the peer before the machine's deadline (or the connection's send limit): a
    peer that stops reading ends the session like a lost link, so an energized output is switched off.
    Round trips are measured on the wall clock (`time.perf_counter`): a measurement, not protocol time.
    """
    seen = observers or Observers()
    sent_at: float | None = None
    received_at: float | None = None
    actions = machine.start(clock.now())
    slow: PeerTooSlow | None = None  # why the connection gave up on the peer, added to the Close's reason
    while True:
        lost = None
        for action in actions:
            if isinstance(action, Send):
                try:
                    size = await conn.send(action.message, machine.deadline)
                except ConnectionClosed as exc:
                    lost = exc
                    break
                seen.message(">>", action.message)
                sent_at = time.perf_counter()
                if log.isEnabledFor(logging.INFO):  # formatted only when someone reads it (simulations do not)
                    took = "" if received_at is None else f", answered in {1000 * (sent_at - received_at):.1f} ms"
                    name, code = message_name(action.message), _code(action.message)
                    log.info("%s -> %s%s (%d B%s)", role, name, code, size, took)
                received_at = None
            elif isinstance(action, Violation):
                log.warning("%s: the peer broke %s", role, action.error)
                seen.event(action)
            elif isinstance(action, Event):
                log.debug("%s event %s %s", role, action.kind, action.detail)
                seen.event(action)
            elif isinstance(action, Close):
                log.info("%s closes: %s", role, action.reason)
                if action.linger > 0:
                    await conn.wait_closed_by_peer(action.linger)
                await conn.close()
                return _because(action, slow)
        if lost is not None:
            _log_lost(role, lost)
            await conn.close()
            closing = [a for a in machine.connection_lost(clock.now()) if isinstance(a, Close)]
            return _because(closing[0], lost) if closing else Close(f"connection lost: {lost}")
        deadline = machine.deadline
        try:
            received = await conn.receive(deadline)
        except TimeoutError:
            now = clock.now() if deadline is None else max(clock.now(), deadline)
            actions = _closing_on_error(machine, role, machine.expire, now)
            continue
        except ConnectionClosed as exc:
            _log_lost(role, exc)
            slow = exc if isinstance(exc, PeerTooSlow) else None
            actions = machine.connection_lost(clock.now())
            if not actions:
                await conn.close()
                return _because(Close(str(exc)), slow)
            continue
        except BadMessage as exc:
            log.warning("%s: closing on a malformed message: %s", role, exc)
            await conn.close()
            machine.connection_lost(clock.now())
            return Close(f"malformed message: {exc}")
        received_at = time.perf_counter()
        name = message_name(received.message)
        round_trip = None if sent_at is None or role == "SECC" else received_at - sent_at
        if round_trip is not None:
            seen.round_trip(name, round_trip)
        if log.isEnabledFor(logging.INFO):
            rtt = "" if round_trip is None else f", round trip {1000 * round_trip:.1f} ms"
            log.info("%s <- %s%s (%d B%s)", role, name, _code(received.message), received.size, rtt)
        seen.message("<<", received.message)
        actions = _closing_on_error(machine, role, machine.receive, received.message, clock.now())


def _closing_on_error(
    machine: SessionMachine, role: str, step: Callable[..., list[Action]], *args: Any
) -> list[Action]:
    """`step(*args)`; a machine that refused to go on (its controller failed, or it would have broken a rule) has closed
    itself first: the driver ends on that Close and logs why, instead of raising through the product."""
    try:
        return step(*args)
    except Exception as exc:
        closed = machine.closed
        if closed is None:
            raise
        log.error("%s: %s: %s", role, type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
        return [closed]


def _log_lost(role: str, exc: ConnectionClosed) -> None:
    if isinstance(exc, PeerTooSlow):
        log.warning("%s: dropping the peer: %s", role, exc)
    else:
        log.info("%s: %s", role, exc)


def _because(close: Close, error: ConnectionClosed | None) -> Close:
    """`close` with the connection limit the peer broke, if any, in its reason."""
    if not isinstance(error, PeerTooSlow) or str(error) in close.reason:
        return close
    return dataclasses.replace(close, reason=f"{close.reason}: {error}")
