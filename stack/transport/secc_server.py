"""An asyncio TCP/TLS server that runs one SeccSession per connection and keeps serving."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Callable
from pathlib import Path

from stack.session.actions import Close
from stack.session.controller import EvseController
from stack.session.secc import SeccConfig, SeccSession, SessionStore

from .connection import V2gConnection
from .drive import run_session

log = logging.getLogger("mcs_v2g.secc")


class SeccServer:
    """Serves V2G sessions on one address until closed; `results` collects how each ended."""

    def __init__(
        self,
        controller_factory: Callable[[], EvseController],
        config: SeccConfig | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_payload: int = 64 * 1024,
        trace_dir: Path | None = None,
        clock: Callable[[], float] | None = None,
        advance: Callable[[float], None] | None = None,
    ) -> None:
        self.controller_factory = controller_factory
        self.config = config or SeccConfig()
        self.ssl_context = ssl_context
        self.max_payload = max_payload
        self.trace_dir = trace_dir
        self.clock, self.advance = clock, advance
        self.store = SessionStore()
        # the latest sessions and how they ended (bounded: a charger serves sessions for years)
        self.results: deque[Close] = deque(maxlen=1000)
        self.sessions: deque[SeccSession] = deque(maxlen=1000)
        self.served = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self, host: str = "::1", port: int = 0) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._handle, host, port, ssl=self.ssl_context)
        address = self._server.sockets[0].getsockname()
        log.info("SECC listening on [%s]:%d (%s)", address[0], address[1], "TLS" if self.ssl_context else "TCP")
        return address[0], address[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            self.served += 1
            n = self.served
            trace = None if self.trace_dir is None else self.trace_dir / f"secc-session-{n}.xml"
            conn = V2gConnection(reader, writer, max_payload=self.max_payload, trace=trace, role="SECC")
            session = SeccSession(self.controller_factory(), self.config, self.store)
            self.sessions.append(session)
            log.info("SECC: connection %d from %s %s", n, conn.peer, conn.tls or "")
            extra = {} if self.clock is None else {"clock": self.clock, "advance": self.advance}
            result = await run_session(session, conn, role="SECC", **extra)
            self.results.append(result)
        except asyncio.CancelledError:  # the server is shutting down
            writer.close()
        except Exception:  # one broken session must never stop the server
            log.exception("SECC: session crashed")
            self.results.append(Close("internal error"))
            writer.close()
        finally:
            self._tasks.discard(task)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> SeccServer:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
