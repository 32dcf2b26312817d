"""A V2GTP message connection over asyncio streams: EXI-encode, frame, send; read, unframe, decode."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from stack import exi
from stack.v2gtp import PAYLOAD_SCHEMAS, SCHEMA_PAYLOAD_TYPES, FrameReader, V2gtpError, build

log = logging.getLogger("mcs_v2g.v2gtp")

READ_CHUNK = 4096


class ConnectionClosed(Exception):
    """The peer closed the connection (or it broke)."""


class BadMessage(Exception):
    """A frame or its EXI payload was malformed: the connection must close (PROTOCOL.md section 2)."""


@dataclass(frozen=True, slots=True)
class Received:
    message: object
    schema: str
    size: int


class V2gConnection:
    """Messages in and out of one TCP/TLS stream, with an optional XML trace of every message."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        max_payload: int = 64 * 1024,
        trace: Path | None = None,
        role: str = "",
    ) -> None:
        self.reader, self.writer = reader, writer
        self.frames = FrameReader(max_payload)
        self._queue: list = []
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

    async def send(self, message: object, schema: str) -> int:
        payload = exi.encode(message, schema=schema)
        try:
            self.writer.write(build(SCHEMA_PAYLOAD_TYPES[schema], payload))
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise ConnectionClosed(str(exc) or type(exc).__name__) from None
        self._trace(">>", message)
        return len(payload)

    async def receive(self, timeout: float | None) -> Received:
        """The next message within `timeout` seconds (one deadline for the whole message, however it trickles in);
        raises TimeoutError, ConnectionClosed or BadMessage."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self._queue:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                data = await asyncio.wait_for(self.reader.read(READ_CHUNK), left)
            except TimeoutError:  # a subclass of OSError: let it through as a timeout
                raise
            except (ConnectionError, OSError) as exc:
                raise ConnectionClosed(str(exc) or type(exc).__name__) from None
            if not data:
                raise ConnectionClosed("peer closed the connection")
            try:
                self._queue.extend(self.frames.feed(data))
            except V2gtpError as exc:
                raise BadMessage(f"V2GTP: {exc}") from None
        frame = self._queue.pop(0)
        schema = PAYLOAD_SCHEMAS.get(frame.payload_type)
        if schema is None:
            raise BadMessage(f"payload type {frame.payload_type:#06x} does not carry a -20 message")
        try:
            message = exi.decode(frame.payload, schema)
        except exi.ExiError as exc:
            raise BadMessage(f"EXI: {exc}") from None
        self._trace("<<", message)
        return Received(message, schema, len(frame.payload))

    def _trace(self, direction: str, message: object) -> None:
        if self.trace is None:
            return
        with self.trace.open("a") as f:
            f.write(f"<!-- {self.role} {direction} {type(message).__name__} -->\n{exi.to_xml(message)}")

    async def wait_closed_by_peer(self, timeout: float) -> None:
        """Give the peer up to `timeout` seconds to close first (it may still send, we ignore it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with contextlib.suppress(TimeoutError, ConnectionError, OSError):
            while (left := deadline - loop.time()) > 0:
                if not await asyncio.wait_for(self.reader.read(READ_CHUNK), left):
                    return

    async def close(self) -> None:
        if self.writer.is_closing():
            return
        self.writer.close()
        with contextlib.suppress(TimeoutError, ConnectionError, OSError):
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)
