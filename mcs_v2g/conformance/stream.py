"""The tester's side of one TCP connection: raw bytes, TLS done in process, every byte recorded with its time.

TLS runs on an `ssl.SSLObject` over memory BIOs rather than asyncio's TLS transport, so that the bytes really
written on the socket (TLS records, ciphertext) are seen and recorded for the pcapng, and so that a test case can
pick any TLS variant its context allows. The tester never trusts the peer's timing: every wait has a deadline on
the run's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from dataclasses import dataclass, field

from mcs_v2g.capture.wire import Connection, Datagram, Endpoint, Segment
from stack.clock import Clock

READ_CHUNK = 64 * 1024


class StreamClosed(Exception):
    """The peer closed the connection (or it broke)."""


class HandshakeFailed(Exception):
    """The TLS handshake failed: `alert` is OpenSSL's reason (e.g. `TLSV1_ALERT_UNKNOWN_CA`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Tape:
    """What one run recorded: its connections and segments, and its SDP datagrams (the capture package writes them
    to pcapng)."""

    connections: list[Connection] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    datagrams: list[Datagram] = field(default_factory=list)

    def open(self, ev: Endpoint, evse: Endpoint, tls: bool) -> int:
        conn = len(self.connections)
        self.connections.append(Connection(conn, ev, evse, tls))
        return conn

    def set_tls(self, conn: int) -> None:
        c = self.connections[conn]
        self.connections[conn] = Connection(c.id, c.ev, c.evse, True)


class RecordedStream:
    """One connection's bytes in both directions; `we_are_ev` says which way is `to_evse`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        clock: Clock,
        tape: Tape,
        *,
        we_are_ev: bool,
    ) -> None:
        self.reader, self.writer, self.clock, self.tape = reader, writer, clock, tape
        self.we_are_ev = we_are_ev
        ours, theirs = _endpoint(writer, "sockname", we_are_ev), _endpoint(writer, "peername", not we_are_ev)
        ev, evse = (ours, theirs) if we_are_ev else (theirs, ours)
        self.conn = tape.open(ev, evse, tls=False)
        self._tls: ssl.SSLObject | None = None
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.closed = False

    @property
    def tls(self) -> ssl.SSLObject | None:
        return self._tls

    async def start_tls(self, context: ssl.SSLContext, deadline: float) -> None:
        """Run the TLS handshake (our role from the context's `check_hostname`-free side); HandshakeFailed."""
        server_side = not self.we_are_ev
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=server_side)
        self.tape.set_tls(self.conn)
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()
                data = await self._read_raw(deadline)
                if not data:
                    await self._flush()
                    raise HandshakeFailed("the peer closed the connection during the handshake") from None
                self._incoming.write(data)
            except ssl.SSLError as exc:
                await self._flush()  # our alert goes out
                raise HandshakeFailed(exc.reason or str(exc)) from None
        await self._flush()

    async def write(self, data: bytes) -> None:
        """Send `data` (through TLS when on); StreamClosed if the connection is gone."""
        if self._tls is None:
            await self._write_raw(data)
            return
        try:
            self._tls.write(data)
        except ssl.SSLError as exc:
            raise StreamClosed(f"TLS: {exc.reason or exc}") from None
        await self._flush()

    async def read(self, deadline: float | None) -> bytes:
        """The next bytes by `deadline` (TimeoutError); b"" when the peer closed."""
        if self._tls is None:
            return await self._read_raw(deadline)
        while True:
            try:
                return self._tls.read(READ_CHUNK)
            except ssl.SSLWantReadError:
                await self._flush()  # a key update or ticket may need an answer
                data = await self._read_raw(deadline)
                if not data:
                    return b""
                self._incoming.write(data)
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            except ssl.SSLError as exc:
                raise StreamClosed(f"TLS: {exc.reason or exc}") from None

    async def close(self) -> None:
        """Close: TLS close_notify first (when on), then the TCP FIN; never waits long."""
        if self.closed:
            return
        self.closed = True
        if self._tls is not None:
            with contextlib.suppress(ssl.SSLError, StreamClosed, ConnectionError, OSError):
                self._tls.unwrap()
            with contextlib.suppress(StreamClosed):
                await self._flush()
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            async with self.clock.timeout_at(self.clock.now() + 1.0):
                await self.writer.wait_closed()

    def abort(self) -> None:
        """Drop the connection at once (a reset, no close_notify)."""
        self.closed = True
        self.writer.transport.abort()

    # -- raw bytes, recorded -------------------------------------------------------------------------------
    async def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            await self._write_raw(data)

    async def _write_raw(self, data: bytes) -> None:
        if self.writer.is_closing():
            raise StreamClosed("the connection is closed")
        self.tape.segments.append(Segment(self.clock.now(), self.conn, self.we_are_ev, data))
        try:
            self.writer.write(data)
            async with self.clock.timeout_at(self.clock.now() + 5.0):
                await self.writer.drain()
        except TimeoutError:
            raise StreamClosed("the peer stopped reading") from None
        except (ConnectionError, OSError) as exc:
            raise StreamClosed(str(exc) or type(exc).__name__) from None

    async def _read_raw(self, deadline: float | None) -> bytes:
        try:
            async with self.clock.timeout_at(deadline):
                data = await self.reader.read(READ_CHUNK)
        except TimeoutError:  # an OSError too: not a close
            raise
        except (ConnectionError, OSError):
            return b""
        if data:
            self.tape.segments.append(Segment(self.clock.now(), self.conn, not self.we_are_ev, data))
        return data


def _endpoint(writer: asyncio.StreamWriter, which: str, ev: bool) -> Endpoint:
    """The socket's address as an Endpoint; an in-memory link has none, so link-local stand-ins (EV fe80::1 on an
    ephemeral port, EVSE fe80::2 on 15118) take their place in the capture."""
    address = writer.get_extra_info(which)
    try:
        host = str(ipaddress.ip_address(address[0]))
    except (TypeError, ValueError, IndexError):  # an in-memory link names its ends ("secc", 0)
        return Endpoint("fe80::1", 49152) if ev else Endpoint("fe80::2", 15118)
    if ":" not in host:
        host = f"::ffff:{host}"
    return Endpoint(host, int(address[1]))
