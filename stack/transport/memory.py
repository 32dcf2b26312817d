"""An in-memory byte link between two asyncio stream pairs, optionally upgraded to real TLS 1.3.

The bytes never touch the kernel, so a `VirtualClock` knows exactly when both ends are idle and can jump in
time; the TLS layer is Python's `ssl` (the same handshake, certificates and ciphers as over a socket).
`latency` delays every write by that many (virtual) seconds; `freeze` makes one end hang (it neither sends nor
receives nor closes, like a peer whose process stopped without a FIN).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Any

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _PipeEnd(asyncio.Transport):
    """One end of the pipe: `write` delivers to the other end's protocol on the loop, after `latency`."""

    _start_tls_compatible = True  # loop.start_tls() may wrap it

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str, latency: float) -> None:
        super().__init__()
        self._loop = loop
        self._protocol: asyncio.BaseProtocol | None = None
        self._name = name
        self._latency = latency
        self.peer: _PipeEnd | None = None
        self._closing = False
        self._lost = False
        self.frozen = False
        self._paused = False
        self._held: list[bytes] = []

    # -- the asyncio Transport interface -----------------------------------------------------------------
    def get_protocol(self) -> asyncio.BaseProtocol:
        if self._protocol is None:
            raise RuntimeError("the pipe end has no protocol yet")
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": (self._name, 0), "sockname": (self._name, 0)}.get(name, default)

    def is_closing(self) -> bool:
        return self._closing

    def is_reading(self) -> bool:
        return not self._paused

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        self._paused = False
        held, self._held = self._held, []
        for data in held:
            self._deliver(data)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        peer = self.peer
        if self._closing or self.frozen or not data or peer is None:
            return
        if self._latency > 0:
            self._loop.call_later(self._latency, peer._deliver, bytes(data))
        else:
            self._loop.call_soon(peer._deliver, bytes(data))

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (0, 0)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def close(self) -> None:
        """Close both ends (a TCP close as the peer sees it: EOF after the bytes already written)."""
        if self._closing:
            return
        self._closing = True
        self._loop.call_soon(self._connection_lost)
        peer = self.peer
        if peer is not None and not self.frozen:
            # the FIN travels like the data: it reaches the peer one latency later, after the bytes written
            # before it (data due at the same instant runs first: this hop goes through call_soon once more)
            self._loop.call_later(self._latency, self._loop.call_soon, peer._closed_by_peer)

    def abort(self) -> None:
        self.close()

    # -- delivery ------------------------------------------------------------------------------------------
    def _deliver(self, data: bytes) -> None:
        if self._lost or self.frozen:
            return
        if self._paused:
            self._held.append(data)
            return
        protocol = self._protocol
        if isinstance(protocol, asyncio.BufferedProtocol):
            view = memoryview(data)
            while view:  # as the loop feeds a buffered protocol: into the buffers it hands out
                buffer = memoryview(protocol.get_buffer(len(view)))
                n = min(len(buffer), len(view))
                buffer[:n] = view[:n]
                protocol.buffer_updated(n)
                view = view[n:]
        elif isinstance(protocol, asyncio.Protocol):
            protocol.data_received(data)

    def _connection_lost(self) -> None:
        if not self._lost:
            self._lost = True
            if self._protocol is not None:
                self._protocol.connection_lost(None)

    def _closed_by_peer(self) -> None:
        if self.frozen or self._lost:
            return
        self._closing = True
        self._connection_lost()


@dataclass(slots=True)
class MemoryLink:
    """The two ends of an in-memory link as stream pairs."""

    server: Streams
    client: Streams
    _ends: tuple[_PipeEnd, _PipeEnd]

    def freeze_server(self) -> None:
        """The server end hangs from now on: nothing it writes arrives, nothing reaches it, no close."""
        self._ends[0].frozen = True

    def freeze_client(self) -> None:
        self._ends[1].frozen = True

    @property
    def server_frozen(self) -> bool:
        return self._ends[0].frozen

    @property
    def client_frozen(self) -> bool:
        return self._ends[1].frozen


async def memory_link(
    server_tls: ssl.SSLContext | None = None,
    client_tls: ssl.SSLContext | None = None,
    *,
    latency: float = 0.0,
    server_name: str = "secc",
    client_name: str = "evcc",
) -> MemoryLink:
    """A server and a client stream pair joined in memory; with both contexts, TLS on top."""
    loop = asyncio.get_running_loop()
    ends = _PipeEnd(loop, client_name, latency), _PipeEnd(loop, server_name, latency)  # named by the peer seen
    ends[0].peer, ends[1].peer = ends[1], ends[0]
    streams = []
    for end in ends:
        reader = asyncio.StreamReader(limit=2**20)
        protocol = asyncio.StreamReaderProtocol(reader)
        end.set_protocol(protocol)
        protocol.connection_made(end)
        streams.append((reader, protocol, end))
    if (server_tls is None) != (client_tls is None):
        raise ValueError("TLS needs both contexts (server and client) or neither")
    pairs = [(reader, asyncio.StreamWriter(end, protocol, reader, loop)) for reader, protocol, end in streams]
    if server_tls is not None and client_tls is not None:
        await asyncio.gather(
            start_tls(pairs[0][1], server_tls, server_side=True), start_tls(pairs[1][1], client_tls, server_side=False)
        )
    return MemoryLink(pairs[0], pairs[1], ends)


async def start_tls(writer: asyncio.StreamWriter, context: ssl.SSLContext, *, server_side: bool) -> None:
    """TLS on one end of an in-memory link, either side (`StreamWriter.start_tls` only knows the client side of a
    stream it did not accept): the handshake runs on the pipe end, then the stream talks through the TLS transport."""
    loop = asyncio.get_running_loop()
    transport = writer.transport
    protocol = transport.get_protocol()
    hostname = None if server_side else ""
    tls = await loop.start_tls(transport, protocol, context, server_side=server_side, server_hostname=hostname)
    if tls is None:
        raise ConnectionError("the in-memory TLS handshake ended without a transport")
    protocol._transport = tls  # type: ignore[attr-defined]  # the stream protocol now talks TLS
    protocol._over_ssl = True  # type: ignore[attr-defined]
    writer._transport = tls  # type: ignore[attr-defined]
