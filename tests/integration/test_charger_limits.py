"""The charger's `[limits]` reach its SECC server: built from a TOML file with `max_connections = 1`, the server of
`Charger.server()` holds one connection over real loopback TCP and closes a second at once, then takes a new one
when the first has gone. Checks are on the server's counters and the peers' sockets, never on timings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from evse_emulator import Charger, load_charger_config
from stack.clock import RealClock

HOST = "127.0.0.1"
WAIT_S = 10.0  # bound on each wait for the server to act (a hung server fails the test, a slow one does not)
CONFIG = """\
[session]
resume_within = 600
[limits]
max_connections = 1
first_message_timeout = 120.0   # the held connection sends nothing: it must outlive the test
"""


async def wait_for(what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not done():
        assert time.monotonic() < deadline, f"waited {WAIT_S} s for {what}"
        await asyncio.sleep(0.02)


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """True once the server has closed (or reset) the connection; False if it still sends data."""
    try:
        return await asyncio.wait_for(reader.read(1), WAIT_S) == b""
    except ConnectionResetError:
        return True


def test_a_charger_with_max_connections_1_refuses_a_second_connection(tmp_path: Path) -> None:
    path = tmp_path / "charger.toml"
    path.write_text(CONFIG)
    config = load_charger_config(path)
    assert config.limits.max_connections == 1 and config.secc_config().resume_within == 600.0
    charger = Charger.build(config, RealClock())

    async def main() -> None:
        async with charger.server() as server:
            _, port = await server.start(HOST, 0)
            _, held = await asyncio.open_connection(HOST, port)
            await wait_for("the first connection to be open", lambda: server.open_connections == 1)

            extra_reader, extra = await asyncio.open_connection(HOST, port)
            assert await closed_by_server(extra_reader)
            assert server.refused == 1 and server.open_connections == 1
            extra.close()

            held.close()
            await wait_for("the slot to free", lambda: server.open_connections == 0)
            _, again = await asyncio.open_connection(HOST, port)
            await wait_for("a new connection to be taken", lambda: server.open_connections == 1)
            assert server.refused == 1
            again.close()
            await wait_for("every connection to close", lambda: server.open_connections == 0)

    asyncio.run(main())
