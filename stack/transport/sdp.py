"""SDP over UDP/IPv6 link-local multicast (asyncio edge): the SECC's `SdpServer`, the EVCC's `discover`."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections.abc import Callable
from ipaddress import IPv6Address
from types import TracebackType

from stack.sdp import (
    MAX_REQUESTS,
    MULTICAST_GROUP,
    MULTICAST_HOPS,
    RESPONSE_TIMEOUT,
    SDP_PORT,
    Offers,
    SdpError,
    SdpRequest,
    SdpResponse,
    Security,
    TransportProtocol,
    negotiate,
)

logger = logging.getLogger(__name__)

SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
# /proc/net is /proc/self/net: the main thread's namespace, wrong for a thread that joined another one
_IF_INET6 = ("/proc/thread-self/net/if_inet6", "/proc/net/if_inet6")
_SCOPE_LINK = 0x20
_IFA_F_DADFAILED = 0x08
_IFA_F_TENTATIVE = 0x40  # DAD still running: the kernel will not use the address as a source yet

Address = tuple[str, int, int, int]  # IPv6 socket address: host, port, flowinfo, scope id


class SdpTimeout(TimeoutError):
    """No SECC answered any of the SDP requests."""


def link_local_address(interface: str) -> IPv6Address:
    """The usable fe80::/10 address of `interface`; tentative and DAD-failed addresses do not count."""
    for line in _read_if_inet6().splitlines():
        hex_address, _index, _prefix, scope, flags, name = line.split()
        if name != interface or int(scope, 16) != _SCOPE_LINK:
            continue
        if not int(flags, 16) & (_IFA_F_TENTATIVE | _IFA_F_DADFAILED):
            return IPv6Address(bytes.fromhex(hex_address))
    raise LookupError(f"no usable IPv6 link-local address on {interface}")


async def wait_link_local(interface: str, timeout: float = 3.0, *, poll: float = 0.02) -> IPv6Address:
    """`link_local_address` once DAD has finished (about 1 s after link-up unless DAD is disabled)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return link_local_address(interface)
        except LookupError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no usable IPv6 link-local address on {interface} after {timeout} s") from None
        await asyncio.sleep(poll)


class SdpServer:
    """The SECC's SDP responder on one interface: answers each request unicast with `negotiate(request, offers)`.

    `offers` may be replaced while running (e.g. once the TLS server is up). Malformed or unanswerable
    datagrams are dropped silently (logged at debug), as LIB15118's `get_peer_request` does.
    """

    def __init__(self, interface: str, offers: Offers, *, port: int = SDP_PORT) -> None:
        self.interface = interface
        self.offers = offers
        self.answered = 0
        self.ignored = 0
        self._requested_port = port
        self._index = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._closed: asyncio.Future[None] | None = None

    @property
    def port(self) -> int:
        """The bound UDP port (useful with port=0)."""
        if self._transport is None:
            raise RuntimeError("SdpServer is not started")
        return int(self._transport.get_extra_info("sockname")[1])

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._index = socket.if_nametoindex(self.interface)
        sock = _udp_socket(self.interface, self._requested_port)
        try:
            # every IPv6 node is in ff02::1 anyway; joining on the index pins the membership to this link
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, _membership(self._index))
        except OSError:
            sock.close()
            raise
        closed: asyncio.Future[None] = loop.create_future()
        self._closed = closed
        self._transport, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self._received, closed), sock=sock)
        logger.debug("SDP server on %s port %d", self.interface, self.port)

    async def close(self) -> None:
        if self._transport is not None and self._closed is not None:
            self._transport.close()
            await self._closed
            self._transport = None

    async def __aenter__(self) -> SdpServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _received(self, data: bytes, addr: Address) -> None:
        if addr[3] not in (0, self._index):  # only without SO_BINDTODEVICE can another link's datagram arrive
            return self._ignore(addr, f"arrived on interface index {addr[3]}")
        try:
            request = SdpRequest.from_frame(data)
        except SdpError as exc:
            return self._ignore(addr, str(exc))
        response = negotiate(request, self.offers)
        if response is None:
            return self._ignore(addr, f"no answer to {request} with {self.offers}")
        assert self._transport is not None
        self._transport.sendto(response.to_frame(), addr)
        self.answered += 1
        logger.debug("SDP %s from %s: answered %s", request, addr[0], response)

    def _ignore(self, addr: Address, reason: str) -> None:
        self.ignored += 1
        logger.debug("SDP datagram from %s ignored: %s", addr[0], reason)


async def discover(
    interface: str,
    security: Security,
    *,
    transport: TransportProtocol = TransportProtocol.TCP,
    timeout: float = RESPONSE_TIMEOUT,
    max_requests: int = MAX_REQUESTS,
    port: int = SDP_PORT,
    group: IPv6Address = MULTICAST_GROUP,
) -> SdpResponse:
    """The first SECC answer to an SDP request multicast to ff02::1 on `interface`, resent every `timeout`
    (`group`: another destination, e.g. ::1 where a test has no multicast).

    Whether a no-TLS answer to a TLS request is acceptable is the caller's decision (Josev `enforce_tls`).
    Raises `SdpTimeout` after `max_requests` unanswered requests.
    """
    loop = asyncio.get_running_loop()
    index = socket.if_nametoindex(interface)
    sock = _udp_socket(interface, 0)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, MULTICAST_HOPS)
    except OSError:
        sock.close()
        raise
    responses: asyncio.Queue[SdpResponse] = asyncio.Queue()

    def received(data: bytes, addr: Address) -> None:
        try:
            responses.put_nowait(SdpResponse.from_frame(data))
        except SdpError as exc:
            logger.debug("SDP datagram from %s ignored: %s", addr[0], exc)

    closed: asyncio.Future[None] = loop.create_future()
    endpoint, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(received, closed), sock=sock)
    request = SdpRequest(security, transport).to_frame()
    try:
        for attempt in range(1, max_requests + 1):
            # a send error (link down, no source address yet) reaches error_received; the next attempt retries
            endpoint.sendto(request, (str(group), port, 0, index))
            try:
                async with asyncio.timeout(timeout):
                    response = await responses.get()
            except TimeoutError:
                logger.debug("SDP request %d/%d on %s unanswered", attempt, max_requests, interface)
                continue
            logger.debug("SDP answer on %s after %d request(s): %s", interface, attempt, response)
            return response
    finally:
        endpoint.close()
        await closed
    raise SdpTimeout(f"no SDP response on {interface} to {max_requests} requests {timeout} s apart")


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, received: Callable[[bytes, Address], None], closed: asyncio.Future[None]) -> None:
        self._received = received
        self._closed = closed

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._received(data, addr)

    def error_received(self, exc: Exception) -> None:
        logger.debug("SDP socket error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)


def _udp_socket(interface: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, interface.encode())
        except PermissionError:  # needs CAP_NET_RAW; the scope id check in SdpServer stands in
            logger.debug("SO_BINDTODEVICE %s not permitted; filtering by scope id", interface)
        sock.bind(("::", port))
    except OSError:
        sock.close()
        raise
    return sock


def _membership(index: int) -> bytes:
    return MULTICAST_GROUP.packed + struct.pack("@I", index)


def _read_if_inet6() -> str:
    for path in _IF_INET6:
        try:
            with open(path) as file:
                return file.read()
        except FileNotFoundError:
            continue
    return ""
