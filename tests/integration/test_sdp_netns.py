"""SDP over a real IPv6 link: SECC server in namespace a (`va`), EVCC client in namespace b (`vb`)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest

from stack import v2gtp
from stack.sdp import (
    MULTICAST_GROUP,
    REQUEST_PAYLOAD_TYPE,
    Endpoint,
    Offers,
    SdpRequest,
    SdpResponse,
    Security,
    TransportProtocol,
)
from stack.transport.sdp import SdpServer, SdpTimeout, discover, link_local_address
from tests.netns import NamespaceLoop, VethPair, veth_pair_fixture

T = TypeVar("T")
veth_pair = veth_pair_fixture("module")
FAST = {"timeout": 0.05, "max_requests": 20}  # a lost first request is resent quickly; a failure is quick


@pytest.fixture(scope="module")
def ns_a(veth_pair: VethPair) -> Iterator[NamespaceLoop]:
    with veth_pair.loop("a") as loop:
        yield loop


@pytest.fixture(scope="module")
def ns_b(veth_pair: VethPair) -> Iterator[NamespaceLoop]:
    with veth_pair.loop("b") as loop:
        yield loop


def offers(pair: VethPair, *, tls: bool = True, tcp: bool = True) -> Offers:
    address = pair.address("a")
    return Offers(tls=Endpoint(address, 50000) if tls else None, tcp=Endpoint(address, 50001) if tcp else None)


@contextmanager
def serving(ns: NamespaceLoop, offers: Offers, port: int = 15118) -> Iterator[SdpServer]:
    server = SdpServer("va", offers, port=port)
    ns.run(server.start())
    try:
        yield server
    finally:
        ns.run(server.close())


@pytest.mark.parametrize(
    ("requested", "offered", "answered", "port"),
    [
        (Security.TLS, {"tls": True, "tcp": True}, Security.TLS, 50000),
        (Security.NO_TLS, {"tls": True, "tcp": True}, Security.NO_TLS, 50001),
        (Security.TLS, {"tls": False, "tcp": True}, Security.NO_TLS, 50001),
        (Security.NO_TLS, {"tls": True, "tcp": False}, Security.TLS, 50000),
    ],
    ids=["tls-both", "no_tls-both", "tls-tcp_only", "no_tls-tls_only"],
)
def test_discover_gets_the_negotiated_answer(
    veth_pair: VethPair,
    ns_a: NamespaceLoop,
    ns_b: NamespaceLoop,
    requested: Security,
    offered: dict[str, bool],
    answered: Security,
    port: int,
) -> None:
    with serving(ns_a, offers(veth_pair, **offered)) as server:
        response = ns_b.run(discover("vb", requested, **FAST))
    assert response == SdpResponse(veth_pair.address("a"), port, answered, TransportProtocol.TCP)
    assert server.answered >= 1


def test_configurable_port_and_server_address(veth_pair: VethPair, ns_a: NamespaceLoop, ns_b: NamespaceLoop) -> None:
    assert ns_a.run(_call(link_local_address, "va")) == veth_pair.address("a")
    with serving(ns_a, offers(veth_pair), port=0) as server:
        assert server.port != 15118
        response = ns_b.run(discover("vb", Security.TLS, port=server.port, **FAST))
    assert response.port == 50000


def test_silent_server_means_sdp_timeout(ns_a: NamespaceLoop, ns_b: NamespaceLoop) -> None:
    with serving(ns_a, Offers()) as server:  # nothing offered: negotiate() never answers
        start = time.monotonic()
        with pytest.raises(SdpTimeout):
            ns_b.run(discover("vb", Security.TLS, timeout=0.05, max_requests=5))
        elapsed = time.monotonic() - start
    assert 5 * 0.05 <= elapsed < 2.0  # max_requests x timeout, not the default 50 x 0.25 s
    assert server.ignored == 5  # each of the 5 requests went out and arrived


def test_malformed_datagrams_do_not_stop_the_server(
    veth_pair: VethPair, ns_a: NamespaceLoop, ns_b: NamespaceLoop
) -> None:
    bad = [
        b"",
        b"garbage",
        b"\x02\xfd\x90\x00\x00\x00\x00\x02\x00\x00",
        v2gtp.build(REQUEST_PAYLOAD_TYPE, b"\x00"),
        v2gtp.build(REQUEST_PAYLOAD_TYPE, b"\x00\x00\x00"),
        v2gtp.build(0x8002, b"\x00\x00"),
        SdpResponse(veth_pair.address("b"), 50000, Security.TLS).to_frame(),
        SdpRequest(0x20, TransportProtocol.TCP).to_frame(),  # unknown security: no answer
        SdpRequest(Security.TLS, TransportProtocol.UDP).to_frame(),  # not TCP: no answer
    ]
    with serving(ns_a, offers(veth_pair)) as server:
        replies = ns_b.run(_send_and_listen(bad, 15118, listen=0.1))
        assert replies == []
        response = ns_b.run(discover("vb", Security.NO_TLS, **FAST))
    assert response.port == 50001
    # counters read after close(), which ran on the server's loop: every datagram has been handled by then
    assert server.ignored == len(bad)
    assert server.answered >= 1


def test_discover_skips_malformed_answers(veth_pair: VethPair, ns_a: NamespaceLoop, ns_b: NamespaceLoop) -> None:
    good = SdpResponse(veth_pair.address("a"), 50001, Security.NO_TLS)
    responder = ns_a.run(_start_responder([b"junk", v2gtp.build(0x9001, b"\x00"), good.to_frame()], 15119))
    try:
        assert ns_b.run(discover("vb", Security.NO_TLS, port=15119, **FAST)) == good
    finally:
        ns_a.run(_stop(responder))


def test_server_in_a_subprocess(veth_pair: VethPair, ns_b: NamespaceLoop) -> None:
    """`ip netns exec` path (how Josev will run): a second interpreter hosts the server."""
    process = veth_pair.popen(
        "a", [sys.executable, "-c", SUBPROCESS_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        response = ns_b.run(discover("vb", Security.TLS, **FAST))
        assert response == SdpResponse(veth_pair.address("a"), 50001, Security.NO_TLS)
    finally:
        try:
            process.communicate(timeout=5)  # closing stdin ends the server
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
    assert process.returncode == 0


SUBPROCESS_SERVER = """
import asyncio, sys
from stack.sdp import Endpoint, Offers
from stack.transport.sdp import SdpServer, wait_link_local

async def main():
    address = await wait_link_local("va")
    async with SdpServer("va", Offers(tcp=Endpoint(address, 50001))):
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


async def _call(function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` on the namespace loop's thread (hence inside the namespace)."""
    return function(*args)


def _socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind(("::", port))
    return sock


async def _send_and_listen(datagrams: list[bytes], port: int, listen: float) -> list[bytes]:
    """Multicast each datagram from `vb`, then collect whatever comes back within `listen` seconds."""
    loop = asyncio.get_running_loop()
    replies = []
    with _socket() as sock:
        for datagram in datagrams:
            sock.sendto(datagram, (str(MULTICAST_GROUP), port, 0, socket.if_nametoindex("vb")))
        try:
            async with asyncio.timeout(listen):
                while True:
                    replies.append((await loop.sock_recvfrom(sock, 100))[0])
        except TimeoutError:
            pass
    return replies


async def _start_responder(answers: list[bytes], port: int) -> asyncio.Task[None]:
    """A fake SECC that answers every datagram with all of `answers`, bad ones first."""
    sock = _socket(port)

    async def respond() -> None:
        loop = asyncio.get_running_loop()
        with sock:
            while True:
                _, addr = await loop.sock_recvfrom(sock, 100)
                for answer in answers:
                    await loop.sock_sendto(sock, answer, addr)

    return asyncio.get_running_loop().create_task(respond())


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
