"""A V2G message connection over asyncio streams: the sans-I/O channel does frames and EXI, this does I/O.

Every wait is bounded (stack/transport/limits.py): a send by `send_timeout` (or the session's own deadline), a
frame by `frame_timeout` once its first byte came, the first message by `first_message_timeout`. A peer that
breaks one of them raises `PeerTooSlow`, a `ConnectionClosed`: the session ends as if the link had gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from pathlib import Path

from stack import exi
from stack.channel import ChannelError, Received, V2gChannel
from stack.clock import Clock
from stack.session.rulebook import message_name

from .limits import DEFAULT_LIMITS, Limits
from .offload import compute

log = logging.getLogger("mcs_v2g.v2gtp")

READ_CHUNK = 64 * 1024  # at most this much per read: a large frame that has arrived is taken in one piece
CLOSE_WAIT = 2.0  # s to let a closing transport flush (TLS close_notify) before it is aborted

__all__ = ["BadMessage", "ConnectionClosed", "PeerTooSlow", "Received", "V2gConnection"]


class ConnectionClosed(Exception):
    """The peer closed the connection (or it broke)."""


class PeerTooSlow(ConnectionClosed):
    """The peer broke a time limit of the connection (it stopped reading, dripped a frame, sent nothing)."""


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
        limits: Limits = DEFAULT_LIMITS,
        trace: Path | None = None,
        role: str = "",
    ) -> None:
        self.reader, self.writer = reader, writer
        self.clock = clock
        self.limits = limits
        self.channel = V2gChannel(limits.max_payload)
        self._queue: list[Received] = []
        self.trace = trace
        self.role = role
        self.opened = clock.now()
        self._messages_in = 0
        self._frame_started: float | None = None  # when the first byte of the frame being assembled came
        with contextlib.suppress(AttributeError, NotImplementedError):
            writer.transport.set_write_buffer_limits(high=limits.write_buffer)

    @property
    def peer(self) -> str:
        peer = self.writer.get_extra_info("peername")
        return f"[{peer[0]}]:{peer[1]}" if peer else "?"

    @property
    def tls(self) -> str | None:
        obj = self.writer.get_extra_info("ssl_object")
        return None if obj is None else f"{obj.version()} {obj.cipher()[0]}"

    async def send(self, message: object, deadline: float | None = None) -> int:
        """Frame and send `message`; returns the EXI payload size. Our own unsendable message is a bug: it raises.

        The peer must take the bytes by `deadline` or within `send_timeout`, whichever is sooner (PeerTooSlow).
        """
        frame = self.channel.send(message)  # raises LocalChannelError
        limit = self.clock.now() + self.limits.send_timeout
        if deadline is not None and deadline < limit:
            limit = deadline
        try:
            self.writer.write(frame)
            if self.writer.transport.get_write_buffer_size():  # the peer has bytes to take: wait for it
                async with self.clock.timeout_at(limit):
                    await self.writer.drain()
            else:  # nothing buffered, so drain cannot wait: it only raises for a lost connection
                await self.writer.drain()
        except TimeoutError:
            raise PeerTooSlow(f"the peer did not read our {message_name(message)} in time") from None
        except (ConnectionError, OSError) as exc:
            raise ConnectionClosed(str(exc) or type(exc).__name__) from None
        self._trace(">>", message)
        return len(frame) - 8

    async def receive(self, deadline: float | None) -> Received:
        """The next message before `deadline` (clock time; one deadline for the whole message, however it
        trickles in); raises TimeoutError, ConnectionClosed (PeerTooSlow) or BadMessage."""
        while not self._queue:
            if self.channel.held:  # frames that came with a SAP request, now that we answered it
                data = b""
            else:
                data = await self._read(deadline)
                if self._frame_started is None:
                    self._frame_started = self.clock.now()
            try:
                if self.channel.pending + len(data) >= self.limits.decode_in_thread_from:
                    received = await compute(self.clock, functools.partial(self.channel.receive_data, data))
                else:
                    received = self.channel.receive_data(data)
            except ChannelError as exc:
                raise BadMessage(str(exc)) from None
            if not self.channel.pending:
                self._frame_started = None
            elif received:  # whole frames came, and the start of the next one: its time runs from now
                self._frame_started = self.clock.now()
            self._queue.extend(received)
        received_message = self._queue.pop(0)
        self._messages_in += 1
        self._trace("<<", received_message.message)
        return received_message

    async def _read(self, deadline: float | None) -> bytes:
        """The next bytes, by `deadline` (TimeoutError) or the connection's own limits (PeerTooSlow)."""
        limit, why = deadline, ""
        if self._frame_started is not None:
            limit, why = self._sooner(limit, why, self._frame_started + self.limits.frame_timeout, "a frame")
        if not self._messages_in:
            first = self.opened + self.limits.first_message_timeout
            limit, why = self._sooner(limit, why, first, "the first message")
        try:
            async with self.clock.timeout_at(limit):
                data = await self.reader.read(READ_CHUNK)
        except TimeoutError:
            if why:
                raise PeerTooSlow(f"{why} did not arrive in time") from None
            raise
        except (ConnectionError, OSError) as exc:
            raise ConnectionClosed(str(exc) or type(exc).__name__) from None
        if not data:
            raise ConnectionClosed("peer closed the connection")
        return data

    @staticmethod
    def _sooner(limit: float | None, why: str, other: float, other_why: str) -> tuple[float | None, str]:
        return (other, other_why) if limit is None or other < limit else (limit, why)

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
        """Close, letting the transport flush for up to CLOSE_WAIT; a peer that does not read is then cut off
        (otherwise a socket with unsent bytes stays open for as long as the peer keeps it so)."""
        if not self.writer.is_closing():
            self.writer.close()
        try:
            async with self.clock.timeout_at(self.clock.now() + CLOSE_WAIT):
                await self.writer.wait_closed()
        except (TimeoutError, ConnectionError, OSError):
            self.writer.transport.abort()
