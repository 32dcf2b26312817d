"""Where the device under test is, and a fresh bench per case for it: a charger at an address (or found with SDP
on an interface), a truck that connects to our listening port (told by SDP on an interface, or started by a
`replug` command before each case), or our own device in this process (`--self`, on a virtual clock)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from stack.clock import Clock
from stack.sdp import SDP_PORT, Security
from stack.security.pki import PkiPaths
from stack.transport.sdp import discover, link_local_address

from .bench import Bench, LinkBench, SdpTarget, SocketBench, Streams
from .case import Case
from .ours import Closers, our_evcc, our_sdp, our_secc
from .profile import DeviceProfile
from .runner import Progress, run_case
from .verdict import CaseResult

log = logging.getLogger("mcs_v2g.conformance")
V2G_PORTS = (49152, 65535)  # the dynamic ports an SECC's TCP server takes (PROTOCOL.md section 1)
REPLUG_GRACE_S = 5.0  # after a case, the replug command gets SIGTERM and this long to end before SIGKILL


@dataclass(frozen=True)
class Target:
    """How to reach the device: exactly one of `address` (a charger), `listen` (for a truck), `self_test`."""

    address: tuple[str, int] | None = None
    interface: str | None = None  # SDP: find the charger, or answer the truck
    listen: tuple[str, int] | None = None
    # what makes the truck start a session for each case: a shell command (run beside the case, terminated after
    # it), or a context manager factory (an embedding program or test starting its own truck)
    replug: str | Callable[[], contextlib.AbstractContextManager[object]] | None = None
    wait_s: float = 60.0  # how long a case waits for the truck to connect
    self_test: bool = False


async def run_against(
    target: Target,
    cases: Sequence[Case],
    profile: DeviceProfile,
    clock: Clock,
    pki: PkiPaths | None,
    progress: Progress | None = None,
) -> list[CaseResult]:
    """Run `cases` one after the other against the target; each case gets a new bench."""
    async with _benches(target, profile, clock, pki) as new_bench:
        results = []
        for i, case in enumerate(cases):
            async with _replugged(target, case):
                result = await run_case(case, new_bench())
            results.append(result)
            if progress is not None:
                progress(i + 1, len(cases), result)
        return results


@contextlib.asynccontextmanager
async def _benches(
    target: Target, profile: DeviceProfile, clock: Clock, pki: PkiPaths | None
) -> AsyncIterator[Callable[[], Bench]]:
    if target.self_test:
        device = our_secc if profile.role == "secc" else our_evcc

        def ours() -> Bench:
            closers: Closers = []
            sdp = our_sdp(profile.role, profile.tls, closers)
            pnc, install = profile.supports("pnc"), profile.supports("certificate_installation")
            side = device(clock, pki, profile.tls, plug_and_charge=pnc, install=install)
            return LinkBench(profile, clock, pki, side, sdp, closers)

        yield ours
        return
    if profile.role == "secc":
        sdp = None if target.interface is None else SdpTarget(("ff02::1", SDP_PORT, 0, _index(target.interface)))
        if target.address is not None:
            yield lambda: SocketBench(profile, clock, pki, address=target.address, sdp=sdp)
        else:
            yield lambda: SocketBench(profile, clock, pki, locate=lambda: _discovered(target, profile), sdp=sdp)
        return
    accepted: asyncio.Queue[Streams] = asyncio.Queue()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put((reader, writer))

    host, port = target.listen or ("::", 0)
    link_local = None if target.interface is None else link_local_address(target.interface)
    if link_local is not None and target.listen is None:
        host = f"{link_local}%{target.interface}"
    server = await _listen(accept, host, port)
    bound = server.sockets[0].getsockname()
    log.info("waiting for the truck on [%s]:%d", bound[0], bound[1])
    sdp = None
    if link_local is not None:  # each case answers the truck's SDP while it waits for its connection
        sdp = SdpTarget(("::", SDP_PORT, 0, 0), target.interface, (link_local, int(bound[1])))
    try:
        yield lambda: SocketBench(profile, clock, pki, accepted=accepted, wait_s=target.wait_s, sdp=sdp)
    finally:
        server.close()
        await server.wait_closed()
        while not accepted.empty():
            accepted.get_nowait()[1].close()


async def _listen(accept: Callable[..., Awaitable[None]], host: str, port: int) -> asyncio.Server:
    """Listen on `port`, or (0) on a free port in 49152..65535: an SDP answer naming another port is refused by
    some EVs (Josev: PROTOCOL.md section 1)."""
    if port:
        return await asyncio.start_server(accept, host, port)
    for candidate in random.sample(range(V2G_PORTS[0], V2G_PORTS[1] + 1), 64):
        with contextlib.suppress(OSError):
            return await asyncio.start_server(accept, host, candidate)
    raise OSError(f"no free TCP port in {V2G_PORTS[0]}..{V2G_PORTS[1]}")


def _index(interface: str) -> int:
    return socket.if_nametoindex(interface)


async def _discovered(target: Target, profile: DeviceProfile) -> tuple[str, int]:
    if target.interface is None:
        raise ValueError("a charger under test needs --target ADDR:PORT or --interface IF")
    answer = await discover(target.interface, Security.TLS if profile.tls else Security.NO_TLS)
    return f"{answer.address}%{target.interface}", answer.port


@contextlib.asynccontextmanager
async def _replugged(target: Target, case: Case) -> AsyncIterator[None]:
    """Make the truck start a session beside the case (if the target says how); stop what was started after."""
    if target.replug is None or case.role != "evcc":
        yield
        return
    if callable(target.replug):
        with target.replug():
            yield
        return
    process = await asyncio.create_subprocess_shell(
        target.replug,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,  # its own process group: what the shell started is stopped with it
    )
    try:
        yield
    finally:
        _signal_group(process.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), REPLUG_GRACE_S)
        _signal_group(process.pid, signal.SIGKILL)
        await process.wait()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
