"""Where a case meets the device: a new connection per case (the tester connects to a charger, or waits for a truck
to connect), TLS done by the tester on the recorded stream, and the trace and tape of the case.

`SocketBench` reaches a real device over TCP; our own test suite uses the same class over loopback, or
`LinkBench` over an in-memory link on a virtual clock (the device then runs in the same process).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

from mcs_v2g.capture.wire import Datagram, Endpoint
from stack.clock import Clock
from stack.sdp import SdpError, SdpRequest, SdpResponse, Security
from stack.security.pki import PkiPaths
from stack.security.tls import client_context, server_context
from stack.transport.memory import memory_link

from .driver import Conversation
from .profile import DeviceProfile
from .stream import HandshakeFailed, RecordedStream, Tape
from .trace import Entry, Kind, Trace

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Address = tuple[Any, ...]  # a socket address: IPv6 (host, port, flowinfo, scope id)
CONNECT_TIMEOUT_S = 10.0
HANDSHAKE_TIMEOUT_S = 10.0


class NoSdp(Exception):
    """The bench has no SDP path to the device (the case is inconclusive)."""


@dataclass(frozen=True)
class SdpTarget:
    """Where SDP goes. A charger under test: `address` is where the tester sends its requests (ff02::1 with the
    interface's scope id, or the charger's address), port 15118. A truck under test: the tester listens on
    `address` (joining ff02::1 on `interface` when given) and its answers name `answer` (where to connect)."""

    address: Address
    interface: str | None = None
    answer: tuple[IPv6Address, int] | None = None


class SdpSocket:
    """The tester's UDP socket for SDP: every datagram to or from the device in the case's trace
    (`SENT_RAW`/`RECEIVED`, name "SDP", the datagram as `data`)."""

    def __init__(
        self,
        transport: asyncio.DatagramTransport,
        incoming: asyncio.Queue[tuple[bytes, Address]],
        clock: Clock,
        trace: Trace,
        peer: Address | None,
        tape: Tape | None = None,
    ) -> None:
        self.transport, self.incoming, self.clock, self.trace, self.peer = transport, incoming, clock, trace, peer
        self.tape = tape

    def _record(self, src: Address, dst: Address, data: bytes) -> None:
        """The datagram on the case's tape (for the pcapng), as seen on the wire."""
        if self.tape is not None:
            self.tape.datagrams.append(Datagram(self.clock.now(), _endpoint(src), _endpoint(dst), data))

    @property
    def address(self) -> Address:
        """Where the socket is bound."""
        return tuple(self.transport.get_extra_info("sockname"))

    def send(self, datagram: bytes, to: Address | None = None, detail: str = "") -> None:
        """Send one datagram to `to` (default: the device's SDP address)."""
        where = to or self.peer
        if where is None:
            raise NoSdp("no address to send SDP to")
        self.trace.add(Entry(self.clock.now(), Kind.SENT_RAW, "SDP", data=datagram, detail=detail))
        self._record(self.address, where, datagram)
        self.transport.sendto(datagram, where)

    async def receive(self, deadline: float) -> tuple[bytes, Address] | None:
        """The next datagram from the device and where it came from, or None when none came by `deadline`."""
        try:
            async with self.clock.timeout_at(deadline):
                data, source = await self.incoming.get()
        except TimeoutError:
            return None
        self.trace.add(
            Entry(self.clock.now(), Kind.RECEIVED, "SDP", data=data, detail=f"from [{source[0]}]:{source[1]}")
        )
        self._record(source, self.address, data)
        return data, source

    def close(self) -> None:
        self.transport.close()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, queue: asyncio.Queue[tuple[bytes, Address]]) -> None:
        self.queue = queue

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.queue.put_nowait((data, addr))


async def udp_socket(
    bind: Address, interface: str | None = None
) -> tuple[asyncio.DatagramTransport, asyncio.Queue[tuple[bytes, Address]]]:
    """A UDP/IPv6 socket bound to `bind` (joined to ff02::1 on `interface`) and the queue of what it receives."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if interface is not None:
            index = socket.if_nametoindex(interface)
            group = IPv6Address("ff02::1").packed + struct.pack("@I", index)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
        sock.bind(bind)
    except OSError:
        sock.close()
        raise
    queue: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: _Datagrams(queue), sock=sock)
    return transport, queue


class Bench:
    """One case's access to the device. `tester_is_ev`: the tester plays the EV (the device is a charger)."""

    def __init__(
        self, profile: DeviceProfile, clock: Clock, pki: PkiPaths | None, sdp: SdpTarget | None = None
    ) -> None:
        self.profile, self.clock, self.pki, self.sdp_target = profile, clock, pki, sdp
        self.tester_is_ev = profile.role == "secc"
        self.sdp_sockets: list[SdpSocket] = []
        self.trace = Trace(started=clock.now())
        self.tape = Tape()
        self._keylog = Path(tempfile.mkstemp(prefix="mcs-v2g-keylog-")[1])

    # -- what the cases call --------------------------------------------------------------------------------
    def context(self, **variant: object) -> ssl.SSLContext:
        """The tester's TLS context (the test PKI's EV or SECC side) with a variant: keyword arguments of
        `client_context`/`server_context`, e.g. `allow_tls12`, `ecdh_group`, `require_client_cert`."""
        if self.pki is None:
            raise HandshakeFailed("no test PKI for TLS")
        make: Callable[..., ssl.SSLContext] = client_context if self.tester_is_ev else server_context
        return make(self.pki, keylog_file=self._keylog, **variant)

    async def open(self, *, tls: bool | None = None, context: ssl.SSLContext | None = None) -> Conversation:
        """A new connection to (or from) the device, with TLS when `tls` (default: the profile's) or `context`
        is given; HandshakeFailed when the handshake fails (recorded), ConnectionError when nobody answers."""
        use_tls = self.profile.tls if tls is None else tls
        reader, writer = await self._streams()
        stream = RecordedStream(reader, writer, self.clock, self.tape, we_are_ev=self.tester_is_ev)
        self.trace.add(Entry(self.clock.now(), Kind.CONNECTED, detail=self.describe()))
        if use_tls or context is not None:
            try:
                await stream.start_tls(context or self.context(), self.clock.now() + HANDSHAKE_TIMEOUT_S)
            except (HandshakeFailed, TimeoutError) as exc:
                why = exc.reason if isinstance(exc, HandshakeFailed) else "no answer during the handshake"
                self.trace.add(Entry(self.clock.now(), Kind.TLS, "failed", detail=why))
                stream.abort()
                raise HandshakeFailed(why) from None
            tls_object = stream.tls
            assert tls_object is not None
            suite = tls_object.cipher()
            detail = f"{tls_object.version()} {suite[0] if suite else '?'}"
            self.trace.add(Entry(self.clock.now(), Kind.TLS, "ok", detail=detail))
        return Conversation(stream, self.clock, self.trace)

    async def sdp(self) -> SdpSocket:
        """The tester's SDP socket: to send requests to a charger, or to hear a truck's requests and answer them;
        NoSdp when the bench has no SDP path (the case is then inconclusive)."""
        target = await self._sdp_target()
        if target is None:
            raise NoSdp("the bench has no SDP path to the device (no interface or SDP address given)")
        if self.tester_is_ev:
            transport, queue = await udp_socket(("::", 0, 0, 0))
            peer: Address | None = target.address
        else:
            transport, queue = await udp_socket(target.address, target.interface)
            peer = None
        sdp = SdpSocket(transport, queue, self.clock, self.trace, peer, self.tape)
        self.sdp_sockets.append(sdp)
        await self._sdp_started(sdp)
        return sdp

    def keylog(self) -> str:
        """The TLS secrets of this case's connections (NSS key log lines)."""
        with contextlib.suppress(OSError):
            return self._keylog.read_text()
        return ""

    async def finish(self) -> None:
        """The case is over: close the tester's SDP sockets, drop the key log file."""
        for sdp in self.sdp_sockets:
            sdp.close()
        with contextlib.suppress(OSError):
            self._keylog.unlink()

    # -- how each bench reaches the device ------------------------------------------------------------------
    async def _streams(self) -> Streams:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    async def _sdp_target(self) -> SdpTarget | None:
        return self.sdp_target

    async def _sdp_started(self, sdp: SdpSocket) -> None:
        """The tester's SDP socket is ready (a bench with the device in process starts the device's SDP side)."""


class SocketBench(Bench):
    """A device over TCP: the tester connects to a charger at `address`, or accepts a truck's connection on
    `server` (each case takes the next connection that comes)."""

    def __init__(
        self,
        profile: DeviceProfile,
        clock: Clock,
        pki: PkiPaths | None,
        *,
        address: tuple[str, int] | None = None,
        locate: Callable[[], Awaitable[tuple[str, int]]] | None = None,
        accepted: asyncio.Queue[Streams] | None = None,
        wait_s: float = CONNECT_TIMEOUT_S,
        sdp: SdpTarget | None = None,
    ) -> None:
        super().__init__(profile, clock, pki, sdp)
        self.address, self.locate, self.accepted, self.wait_s = address, locate, accepted, wait_s

    async def _streams(self) -> Streams:
        if self.locate is not None:  # SDP before every connection, as an EV does (a charger may move its port)
            self.address = await self.locate()
        async with self.clock.timeout_at(self.clock.now() + self.wait_s):
            if self.address is not None:
                return await asyncio.open_connection(*self.address)
            assert self.accepted is not None
            async with self._answering_sdp():
                while True:
                    reader, writer = await self.accepted.get()
                    await asyncio.sleep(0)  # let a close that already came reach the stream
                    if not reader.at_eof() and not writer.is_closing():
                        return reader, writer
                    writer.close()  # a truck of an earlier case that has gone since

    @contextlib.asynccontextmanager
    async def _answering_sdp(self) -> AsyncIterator[None]:
        """While the tester waits for a truck: answer its SDP requests with where to connect (when it has one)."""
        target = self.sdp_target
        if target is None or target.answer is None:
            yield
            return
        address, port = target.answer
        security = Security.TLS if self.profile.tls else Security.NO_TLS
        answer = SdpResponse(address, port, security).to_frame()
        transport, queue = await udp_socket(target.address, target.interface)

        async def respond() -> None:
            while True:
                data, source = await queue.get()
                with contextlib.suppress(SdpError):
                    SdpRequest.from_frame(data)
                    transport.sendto(answer, source)

        task = asyncio.ensure_future(respond())
        try:
            yield
        finally:
            task.cancel()
            transport.close()

    def describe(self) -> str:
        if self.address is not None:
            return f"to [{self.address[0]}]:{self.address[1]}"
        return "from the device"


DeviceSide = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[object]]
# the device's SDP side in this process: a charger's starts its SDP server and gives its address (called with
# None); a truck's sends its requests to the tester's address it is called with (run as a task of the bench)
SdpDevice = Callable[[Address | None], Awaitable[Address | None]]


class LinkBench(Bench):
    """A device in this process over an in-memory link: `device(reader, writer)` runs its side of each
    connection (TLS on its side is its own business, as over a socket)."""

    def __init__(
        self,
        profile: DeviceProfile,
        clock: Clock,
        pki: PkiPaths | None,
        device: DeviceSide,
        sdp_device: SdpDevice | None = None,
        closers: list[Callable[[], object]] | None = None,
    ) -> None:
        super().__init__(profile, clock, pki)
        self.device, self.sdp_device = device, sdp_device
        self.tasks: list[asyncio.Task[object]] = []
        self.closers = closers if closers is not None else []  # what the device side opened, closed after the case

    async def _streams(self) -> Streams:
        link = await memory_link()
        ours, theirs = (link.client, link.server) if self.tester_is_ev else (link.server, link.client)
        self.tasks.append(asyncio.ensure_future(self.device(*theirs)))
        return ours

    def describe(self) -> str:
        return "over an in-memory link"

    async def _sdp_target(self) -> SdpTarget | None:
        if self.sdp_device is None:
            return None
        if not self.tester_is_ev:
            return SdpTarget(("::1", 0, 0, 0))
        address = await self.sdp_device(None)
        return None if address is None else SdpTarget(address)

    async def _sdp_started(self, sdp: SdpSocket) -> None:
        if self.sdp_device is not None and not self.tester_is_ev:
            self.tasks.append(asyncio.ensure_future(self.sdp_device(sdp.address)))

    async def finish(self) -> None:
        """Let the device's side of every connection finish (bounded by the device's own timers), then close what
        it opened (its SDP server)."""
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for close in self.closers:
            result = close()
            if asyncio.iscoroutine(result):
                await result
        await super().finish()


def _endpoint(address: Address) -> Endpoint:
    """A socket address as the recording's Endpoint (the scope id dropped: the pcapng has one link)."""
    host = str(address[0]).split("%")[0]
    if host in ("", "::"):
        host = "::1"
    return Endpoint(host, int(address[1]))
