"""Our EVCC against our SECC over real loopback TCP sockets."""

from __future__ import annotations

import asyncio

import pytest

from examples.minimal_controllers import MinimalEv, MinimalEvse
from stack.session.evcc import EvccConfig
from stack.session.services import ControlMode, ServiceId
from stack.session.timers import EvccTimers
from stack.transport.evcc_client import run_evcc
from stack.transport.secc_server import SeccServer

FAST = EvccConfig(timers=EvccTimers(loop_interval=0.0, charge_loop_interval=0.0))


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
@pytest.mark.parametrize(
    ("service", "mode"), [(ServiceId.MCS_BPT, ControlMode.DYNAMIC), (ServiceId.DC, ControlMode.SCHEDULED)]
)
def test_session_over_tcp(host: str, service: ServiceId, mode: ControlMode) -> None:
    async def main():
        async with SeccServer(MinimalEvse) as server:
            address = await server.start(host, 0)
            close, session = await run_evcc(*address, MinimalEv(service=service, control_mode=mode), FAST)
            for _ in range(100):
                if server.results:
                    break
                await asyncio.sleep(0.01)
            return close, session, server.results

    close, session, results = asyncio.run(main())
    assert close.ok, close
    assert results and results[0].ok
    assert session.service is service and session.charge_loops == 10


def test_server_keeps_serving_after_a_client_vanishes() -> None:
    async def main():
        async with SeccServer(MinimalEvse) as server:
            host, port = await server.start("127.0.0.1", 0)
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"\x01\xfe\x80\x01\x00\x00\xff\xff")  # a header announcing 64 KiB, then silence
            writer.close()
            close, _ = await run_evcc(host, port, MinimalEv(), FAST)
            return close

    assert asyncio.run(main()).ok


def test_session_over_tls13_with_mutual_authentication(tmp_path) -> None:
    from stack.security.pki import generate_pki
    from stack.security.tls import client_context, server_context

    pki = generate_pki(tmp_path / "pki")

    async def main():
        async with SeccServer(MinimalEvse, ssl_context=server_context(pki)) as server:
            address = await server.start("::1", 0)
            close, session = await run_evcc(*address, MinimalEv(), FAST, ssl_context=client_context(pki))
            for _ in range(100):
                if server.results:
                    break
                await asyncio.sleep(0.01)
            return close, session, server.results

    close, session, results = asyncio.run(main())
    assert close.ok and results[0].ok
    assert session.service is ServiceId.MCS_BPT and session.charge_loops == 10
