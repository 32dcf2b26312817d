"""Run one EvccSession: over TCP/TLS to an SECC, or over streams handed in (an in-memory link)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from pathlib import Path

from stack.clock import Clock, RealClock
from stack.session.actions import Close
from stack.session.controller import EvController
from stack.session.evcc import EvccConfig, EvccSession

from .connection import V2gConnection
from .drive import Observers, run_session


class PeerRefused(ConnectionError):
    """The EV would not start a session with this SECC (what `accept_peer` found)."""


async def run_evcc(
    host: str,
    port: int,
    controller: EvController,
    config: EvccConfig | None = None,
    *,
    clock: Clock | None = None,
    ssl_context: ssl.SSLContext | None = None,
    connect_timeout: float = 5.0,
    trace: Path | None = None,
    observers: Observers | None = None,
    accept_peer: Callable[[asyncio.StreamWriter], str | None] | None = None,
) -> tuple[Close, EvccSession]:
    """Connect and run one session; returns how it ended and the machine (service, SessionID, resume info...).

    `accept_peer` looks at the connection before the session (e.g. the SECC's stapled OCSP response) and returns
    why it refuses it, or None; a refused peer is a `PeerRefused` (a ConnectionError) and no session starts."""
    clock = clock or RealClock()
    async with clock.timeout_at(clock.now() + connect_timeout):
        reader, writer = await asyncio.open_connection(
            host, port, ssl=ssl_context, server_hostname="" if ssl_context else None
        )
    refusal = accept_peer(writer) if accept_peer is not None else None
    if refusal is not None:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        raise PeerRefused(refusal)
    return await run_evcc_on(reader, writer, controller, config, clock=clock, trace=trace, observers=observers)


async def run_evcc_on(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    controller: EvController,
    config: EvccConfig | None = None,
    *,
    clock: Clock,
    trace: Path | None = None,
    observers: Observers | None = None,
) -> tuple[Close, EvccSession]:
    """Run one session on an open connection."""
    session = EvccSession(controller, config)
    conn = V2gConnection(reader, writer, clock, trace=trace, role="EV")
    close = await run_session(session, conn, clock, role="EV", observers=observers)
    return close, session
