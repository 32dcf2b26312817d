"""An asyncio server that runs one SeccSession per connection (TCP/TLS, or handed in from an in-memory link)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Callable
from pathlib import Path

from stack.clock import Clock, RealClock
from stack.session.actions import Close
from stack.session.controller import EvseController
from stack.session.secc import SeccConfig, SeccSession, SessionStore
from stack.v2gtp import DEFAULT_MAX_PAYLOAD

from .connection import V2gConnection
from .drive import Observers, run_session

log = logging.getLogger("mcs_v2g.secc")


class SeccServer:
    """Serves V2G sessions until closed; `results` collects how each ended."""

    def __init__(
        self,
        controller_factory: Callable[[], EvseController],
        config: SeccConfig | None = None,
        *,
        clock: Clock | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        trace_dir: Path | None = None,
        observers: Callable[[SeccSession], Observers] | None = None,
        ended: Callable[[SeccSession, Close], None] | None = None,
    ) -> None:
        self.controller_factory = controller_factory
        self.config = config or SeccConfig()
        self.clock = clock or RealClock()
        self.ssl_context = ssl_context
        self.max_payload = max_payload
        self.trace_dir = trace_dir
        self.observers = observers
        self.ended = ended  # told how each session ended, once it has
        self.store = SessionStore()
        # the latest sessions and how they ended (bounded: a charger serves sessions for years)
        self.results: deque[Close] = deque(maxlen=1000)
        self.sessions: deque[SeccSession] = deque(maxlen=1000)
        self.served = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self, host: str = "::1", port: int = 0) -> tuple[str, int]:
        """Listen on TCP (TLS when the server has a context); returns the bound address."""
        self._server = await asyncio.start_server(self.serve, host, port, ssl=self.ssl_context)
        address = self._server.sockets[0].getsockname()
        log.info("SECC listening on [%s]:%d (%s)", address[0], address[1], "TLS" if self.ssl_context else "TCP")
        return address[0], address[1]

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Close:
        """Run one session on an accepted connection until it ends."""
        task = asyncio.current_task()
        self._tasks.add(task)
        session = None
        try:
            self.served += 1
            n = self.served
            trace = None if self.trace_dir is None else self.trace_dir / f"secc-session-{n}.xml"
            conn = V2gConnection(reader, writer, self.clock, max_payload=self.max_payload, trace=trace, role="SECC")
            session = SeccSession(self.controller_factory(), self.config, self.store)
            self.sessions.append(session)
            log.info("SECC: connection %d from %s %s", n, conn.peer, conn.tls or "")
            observers = None if self.observers is None else self.observers(session)
            result = await run_session(session, conn, self.clock, role="SECC", observers=observers)
        except asyncio.CancelledError:  # the server is shutting down
            writer.close()
            result = Close("the server shut down")
        except Exception:  # one broken session must never stop the server
            log.exception("SECC: session crashed")
            result = Close("internal error")
            writer.close()
        finally:
            self._tasks.discard(task)
        self.results.append(result)
        if self.ended is not None and session is not None:
            self.ended(session, result)
        return result

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> SeccServer:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
