"""Run one case of the catalogue against our own device (good) or our peer broken by the case's breaker, in this
process on a virtual clock over an in-memory link (TLS when the case is tagged `tls`), with the device's SDP side
over real UDP on the loopback interface (::1)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from ipaddress import IPv6Address
from pathlib import Path
from unittest import mock

import stack.transport.sdp as sdp_io
from mcs_v2g.conformance.bench import Address, LinkBench, SdpDevice, udp_socket
from mcs_v2g.conformance.case import Case
from mcs_v2g.conformance.ours import SDP_SIDE, broken, our_evcc, our_secc
from mcs_v2g.conformance.profile import DeviceProfile
from mcs_v2g.conformance.runner import run_case
from mcs_v2g.conformance.verdict import CaseResult
from stack.clock import VirtualClock
from stack.sdp import Endpoint, Offers, Security
from stack.security.pki import PkiPaths, ensure_pki

LOOPBACK = "lo"
LOCAL = IPv6Address("::1")
TLS_PORT, TCP_PORT = 50001, 50002  # what our charger's SDP answers name (no TCP server listens in the harness)
Closers = list[Callable[[], object]]


def make_pki(directory: Path) -> PkiPaths:
    return ensure_pki(directory, "secp521r1")


def play_against(case: Case, pki: PkiPaths, *, good: bool) -> CaseResult:
    """The case's result against our good device, or against our peer broken by its breaker."""
    tls = "tls" in case.tags
    clock = VirtualClock()
    profile = DeviceProfile(role=case.role, tls=tls)

    async def run() -> CaseResult:
        closers: Closers = []
        sdp: SdpDevice | None
        if good:
            device = (our_secc if case.role == "secc" else our_evcc)(clock, pki, tls)
            sdp = our_sdp(case.role, tls, closers)
        else:
            device = broken(case.role, case.breaker, clock, pki, tls)
            sdp = broken_sdp(case.role, case.breaker.settings.get(SDP_SIDE), closers)
        bench = LinkBench(profile, clock, pki, device, sdp)
        try:
            result = await run_case(case, bench)
            await bench.settle()
        finally:
            for close in closers:
                await _maybe_await(close())
        return result

    return clock.run(run())


def our_sdp(role: str, tls: bool, closers: Closers) -> SdpDevice:
    """Our device's SDP side: the charger's SdpServer on lo (a free port), or the truck's `discover` sending to the
    tester's address (unicast to ::1: multicast does not leave lo)."""

    async def charger(_: Address | None) -> Address | None:
        tls_at = Endpoint(LOCAL, TLS_PORT) if tls else None
        server = sdp_io.SdpServer(LOOPBACK, Offers(tls=tls_at, tcp=Endpoint(LOCAL, TCP_PORT)), port=0)
        await server.start()
        closers.append(server.close)
        return (str(LOCAL), server.port, 0, 0)

    async def truck(tester: Address | None) -> Address | None:
        assert tester is not None
        with mock.patch.object(sdp_io, "MULTICAST_GROUP", LOCAL), contextlib.suppress(sdp_io.SdpTimeout):
            await sdp_io.discover(LOOPBACK, Security.TLS if tls else Security.NO_TLS, port=int(tester[1]))
        return None

    return charger if role == "secc" else truck


def broken_sdp(role: str, side: object, closers: Closers) -> SdpDevice | None:
    """Our broken peer's SDP side from the breaker: for a charger, `side()` gives the answer to each datagram
    (None: silence), served on ::1; for a truck, `side(address)` sends its requests there."""
    if side is None:
        return None
    if role == "evcc":

        async def truck(tester: Address | None) -> Address | None:
            assert tester is not None and callable(side)
            await side(tester)
            return None

        return truck

    async def charger(_: Address | None) -> Address | None:
        assert callable(side)
        answer = side()
        transport, queue = await udp_socket((str(LOCAL), 0, 0, 0))
        closers.append(transport.close)

        async def serve() -> None:
            while True:
                data, source = await queue.get()
                reply = answer(data)
                if reply is not None:
                    transport.sendto(reply, source)

        task = asyncio.ensure_future(serve())
        closers.append(task.cancel)
        return tuple(transport.get_extra_info("sockname"))

    return charger


async def _maybe_await(value: object) -> None:
    if asyncio.iscoroutine(value):
        await value
