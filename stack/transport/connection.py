"""A V2G message connection over asyncio streams: the sans-I/O channel does frames and EXI, this does I/O."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from stack import exi
from stack.channel import ChannelError, Received, V2gChannel
from stack.clock import Clock
from stack.v2gtp import DEFAULT_MAX_PAYLOAD

log = logging.getLogger("mcs_v2g.v2gtp")

READ_CHUNK = 4096
CLOSE_WAIT = 2.0  # s to let a closing transport flush (TLS close_notify)

__all__ = ["BadMessage", "ConnectionClosed", "Received", "V2gConnection"]


class ConnectionClosed(Exception):
    """The peer closed the connection (or it broke)."""


class BadMessage(Exception):
    """A frame or its EXI payload was malformed: the connection must close (PROTOCOL.md section 2)."""


class V2gConnection:
    """Messages in and out of one TCP/TLS (or in-memory) stream, with an optional XML trace of every message."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        clock: Clock,
        *,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        trace: Path | None = None,
        role: str = "",
    ) -> None:
        self.reader, self.writer = reader, writer
        self.clock = clock
        self.channel = V2gChannel(max_payload)
        self._queue: list[Received] = []
        self.trace = trace
        self.role = role

    @property
    def peer(self) -> str:
        peer = self.writer.get_extra_info("peername")
        return f"[{peer[0]}]:{peer[1]}" if peer else "?"

    @property
    def tls(self) -> str | None:
        obj = self.writer.get_extra_info("ssl_object")
        return None if obj is None else f"{obj.version()} {obj.cipher()[0]}"

    async def send(self, message: object) -> int:
        """Frame and send `message`; returns the EXI payload size. Our own unsendable message is a bug: it raises."""
        frame = self.channel.send(message)  # raises LocalChannelError
        try:
            self.writer.write(frame)
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise ConnectionClosed(str(exc) or type(exc).__name__) from None
        self._trace(">>", message)
        return len(frame) - 8

    async def receive(self, deadline: float | None) -> Received:
        """The next message before `deadline` (clock time; one deadline for the whole message, however it
        trickles in); raises TimeoutError, ConnectionClosed or BadMessage."""
        async with self.clock.timeout_at(deadline):
            while not self._queue:
                if self.channel.held:  # frames that came with a SAP request, now that we answered it
                    data = b""
                else:
                    try:
                        data = await self.reader.read(READ_CHUNK)
                    except (ConnectionError, OSError) as exc:
                        if isinstance(exc, TimeoutError):
                            raise
                        raise ConnectionClosed(str(exc) or type(exc).__name__) from None
                    if not data:
                        raise ConnectionClosed("peer closed the connection")
                try:
                    self._queue.extend(self.channel.receive_data(data))
                except ChannelError as exc:
                    raise BadMessage(str(exc)) from None
        received = self._queue.pop(0)
        self._trace("<<", received.message)
        return received

    def _trace(self, direction: str, message: object) -> None:
        if self.trace is None:
            return
        with self.trace.open("a") as f:
            f.write(f"<!-- {self.role} {direction} {type(message).__name__} -->\n{exi.to_xml(message)}")

    async def wait_closed_by_peer(self, seconds: float) -> None:
        """Give the peer up to `seconds` to close first (it may still send, we ignore it)."""
        with contextlib.suppress(TimeoutError, ConnectionError, OSError):
            async with self.clock.timeout_at(self.clock.now() + seconds):
                while await self.reader.read(READ_CHUNK):
                    pass

    async def close(self) -> None:
        if self.writer.is_closing():
            return
        self.writer.close()
        with contextlib.suppress(TimeoutError, ConnectionError, OSError):
            async with self.clock.timeout_at(self.clock.now() + CLOSE_WAIT):
                await self.writer.wait_closed()
