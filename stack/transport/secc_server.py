"""An asyncio server that runs one SeccSession per connection (TCP/TLS, or handed in from an in-memory link).

The server bounds what peers can hold (stack/transport/limits.py): a connection beyond `max_connections` is
closed as soon as it is accepted, before any TLS work; the TLS handshake is ours to time (`handshake_timeout`),
so a handshake that never finishes costs its memory for seconds, not for asyncio's default minute.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import ssl
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from stack.clock import Clock, RealClock
from stack.session.actions import Close
from stack.session.controller import EvseController
from stack.session.secc import SeccConfig, SeccSession, SessionStore

from .connection import V2gConnection
from .drive import Observers, run_session
from .limits import DEFAULT_LIMITS, Limits

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
        limits: Limits = DEFAULT_LIMITS,
        trace_dir: Path | None = None,
        observers: Callable[[SeccSession], Observers] | None = None,
        ended: Callable[[SeccSession, Close], None] | None = None,
    ) -> None:
        self.controller_factory = controller_factory
        self.config = config or SeccConfig()
        self.clock = clock or RealClock()
        self.ssl_context = ssl_context
        self.limits = limits
        self.trace_dir = trace_dir
        self.observers = observers
        self.ended = ended  # told how each session ended, once it has
        self.store = SessionStore()
        # the latest sessions and how they ended (bounded: a charger serves sessions for years)
        self.results: deque[Close] = deque(maxlen=1000)
        self.sessions: deque[SeccSession] = deque(maxlen=1000)
        self.served = 0
        self.refused = 0  # connections closed at once: `max_connections` were open
        self.failed_handshakes = 0  # TLS handshakes that failed or did not finish in time
        self.open_connections = 0  # accepted TCP connections not closed yet (handshakes included)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[object]] = set()

    async def start(self, host: str = "::1", port: int = 0) -> tuple[str, int]:
        """Listen on TCP (TLS when the server has a context); returns the bound address."""
        self._server = await asyncio.start_server(self._accept, host, port, limit=self.limits.read_buffer)
        address = self._server.sockets[0].getsockname()
        log.info("SECC listening on [%s]:%d (%s)", address[0], address[1], "TLS" if self.ssl_context else "TCP")
        return address[0], address[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A new TCP connection: refused beyond the limit, else TLS (if any, timed), then the session."""
        if self.open_connections >= self.limits.max_connections:
            self.refused += 1
            level = logging.WARNING if self.refused == 1 else logging.DEBUG  # a flood must not flood the log
            log.log(level, "SECC: refused a connection: %d are open", self.open_connections)
            writer.transport.abort()
            return
        self.open_connections += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.limits.socket_send_buffer)
        try:
            if self.ssl_context is not None and not await self._handshake(writer, self.ssl_context):
                return
            await self.serve(reader, writer)
        finally:
            self.open_connections -= 1

    async def _handshake(self, writer: asyncio.StreamWriter, context: ssl.SSLContext) -> bool:
        track = self._track()
        try:
            await writer.start_tls(context, ssl_handshake_timeout=self.limits.handshake_timeout)
            return True
        except (ssl.SSLError, ConnectionError, OSError, TimeoutError) as exc:
            self.failed_handshakes += 1
            log.info("SECC: TLS handshake failed: %s", str(exc) or type(exc).__name__)
            writer.transport.abort()
            return False
        except asyncio.CancelledError:  # the server is shutting down
            writer.transport.abort()
            return False
        finally:
            self._untrack(track)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Close:
        """Run one session on an accepted connection (TLS done, if any) until it ends."""
        track = self._track()
        session = None
        try:
            self.served += 1
            n = self.served
            trace = None if self.trace_dir is None else self.trace_dir / f"secc-session-{n}.xml"
            conn = V2gConnection(reader, writer, self.clock, limits=self.limits, trace=trace, role="SECC")
            session = SeccSession(
                self.controller_factory(), self.config, self.store, vehicle_certificate=_certificate_of(writer)
            )
            self.sessions.append(session)
            log.info("SECC: connection %d from %s %s", n, conn.peer, conn.tls or "")
            observers = None if self.observers is None else self.observers(session)
            result = await run_session(session, conn, self.clock, role="SECC", observers=observers)
        except asyncio.CancelledError:  # the server is shutting down
            writer.transport.abort()
            result = Close("the server shut down")
        except Exception:  # one broken session must never stop the server
            log.exception("SECC: session crashed")
            result = Close("internal error")
            writer.transport.abort()
        finally:
            self._untrack(track)
        self.results.append(result)
        if self.ended is not None and session is not None:
            self.ended(session, result)
        return result

    def _track(self) -> asyncio.Task[object] | None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        return task

    def _untrack(self, task: asyncio.Task[object] | None) -> None:
        if task is not None:
            self._tasks.discard(task)

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

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def _certificate_of(writer: asyncio.StreamWriter) -> bytes | None:
    """SHA-256 of the vehicle's TLS client certificate (DER), None without TLS or without a certificate."""
    ssl_object = writer.get_extra_info("ssl_object")
    der = None if ssl_object is None else ssl_object.getpeercert(binary_form=True)
    return None if not der else hashlib.sha256(der).digest()
