"""Connect to an SECC and run one EvccSession."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from stack.session.actions import Close
from stack.session.controller import EvController
from stack.session.evcc import EvccConfig, EvccSession

from .connection import V2gConnection
from .drive import run_session


async def run_evcc(
    host: str,
    port: int,
    controller: EvController,
    config: EvccConfig | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    connect_timeout: float = 5.0,
    trace: Path | None = None,
    on_round_trip=None,
    on_message=None,
    clock=None,
    pace=None,
    advance=None,
) -> tuple[Close, EvccSession]:
    """Run one session; returns how it ended and the machine (service, SessionID, resume info...).

    `clock` (seconds) replaces the wall clock for the machine, `pace` lets a simulation decide how the EV's
    waits between requests pass (see `drive.run_session`).
    """
    session = EvccSession(controller, config)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=ssl_context, server_hostname="" if ssl_context else None),
        connect_timeout,
    )
    conn = V2gConnection(reader, writer, trace=trace, role="EV")
    extra = {} if clock is None else {"clock": clock}
    close = await run_session(
        session,
        conn,
        role="EV",
        on_round_trip=on_round_trip,
        on_message=on_message,
        pace=pace,
        advance=advance,
        **extra,
    )
    return close, session
