"""Run one EvccSession: over TCP/TLS to an SECC, or over streams handed in (an in-memory link)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from stack.clock import Clock, RealClock
from stack.session.actions import Close
from stack.session.controller import EvController
from stack.session.evcc import EvccConfig, EvccSession

from .connection import V2gConnection
from .drive import Observers, run_session


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
) -> tuple[Close, EvccSession]:
    """Connect and run one session; returns how it ended and the machine (service, SessionID, resume info...)."""
    clock = clock or RealClock()
    async with clock.timeout_at(clock.now() + connect_timeout):
        reader, writer = await asyncio.open_connection(
            host, port, ssl=ssl_context, server_hostname="" if ssl_context else None
        )
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
