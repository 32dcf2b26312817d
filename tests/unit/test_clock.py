"""The one clock: virtual time jumps from event to event (or is paced), asyncio timers run on it, and the
in-memory link carries bytes (and TLS 1.3) with latency, closes and hangs as a network would."""

from __future__ import annotations

import asyncio
import time

import pytest

from stack.clock import RealClock, VirtualClock
from stack.security.pki import generate_pki
from stack.security.tls import client_context, server_context
from stack.transport.memory import memory_link

START = 1_795_000_000.0


def test_virtual_time_jumps_to_the_next_timer() -> None:
    clock = VirtualClock(START)
    seen = []

    async def main() -> None:
        clock.call_at(START + 30, lambda: seen.append(("call_at", clock.now())))
        await clock.sleep_until(START + 3600)
        seen.append(("slept", clock.now()))
        with pytest.raises(TimeoutError):
            async with clock.timeout_at(clock.now() + 60):
                await asyncio.Event().wait()  # nothing will ever set it: only the timeout ends the wait
        seen.append(("timed out", clock.now()))

    wall = time.perf_counter()
    clock.run(main())
    assert seen == [("call_at", START + 30), ("slept", START + 3600), ("timed out", START + 3660)]
    assert clock.elapsed == 3660
    assert time.perf_counter() - wall < 5.0  # an hour of waits, no wall-clock wait (a wait would take 3660 s)


def test_asyncio_timers_of_code_on_the_loop_are_virtual() -> None:
    clock = VirtualClock(START)

    async def main() -> float:
        await asyncio.sleep(86_400)
        await asyncio.wait_for(asyncio.sleep(10), timeout=20)
        return clock.now()

    assert clock.run(main()) == START + 86_410


def test_speed_paces_virtual_time_to_the_wall_clock() -> None:
    clock = VirtualClock(START, speed=20.0)

    async def main() -> None:
        await clock.sleep_until(START + 2.0)

    wall = time.perf_counter()
    clock.run(main())
    assert clock.now() == pytest.approx(START + 2.0)
    assert time.perf_counter() - wall >= 2.0 / 20.0 * 0.9  # never faster than 20 x real time


def test_speed_must_be_positive() -> None:
    with pytest.raises(ValueError):
        VirtualClock(START, speed=0)


def test_real_clock_is_epoch_time() -> None:
    async def main() -> tuple[float, float]:
        clock = RealClock()
        before = clock.now()
        await clock.sleep_until(before + 0.01)
        return before, clock.now()

    before, after = asyncio.run(main())
    assert abs(before - time.time()) < 5 and after >= before + 0.009


def test_memory_link_carries_bytes_with_latency_and_then_the_close() -> None:
    clock = VirtualClock(START)

    async def main() -> list:
        link = await memory_link(latency=0.25)
        (s_reader, s_writer), (c_reader, c_writer) = link.server, link.client
        c_writer.write(b"request")
        got = [(await s_reader.read(100), clock.now() - START)]
        s_writer.write(b"response")
        s_writer.close()
        got.append((await c_reader.read(100), clock.now() - START))
        got.append((await c_reader.read(100), clock.now() - START))  # EOF, one latency after the close
        return got

    assert clock.run(main()) == [(b"request", 0.25), (b"response", 0.5), (b"", 0.5)]


def test_a_frozen_end_neither_answers_nor_closes() -> None:
    clock = VirtualClock(START)

    async def main() -> float:
        link = await memory_link()
        (_, s_writer), (c_reader, c_writer) = link.server, link.client
        link.freeze_server()
        c_writer.write(b"anyone there?")
        s_writer.write(b"lost")
        s_writer.close()
        with pytest.raises(TimeoutError):
            async with clock.timeout_at(clock.now() + 60):
                await c_reader.read(100)
        return clock.now()

    assert clock.run(main()) == START + 60


def test_memory_link_with_tls13(tmp_path) -> None:
    pki = generate_pki(tmp_path / "pki")
    clock = VirtualClock(START)

    async def main() -> tuple[str, bytes]:
        link = await memory_link(server_context(pki), client_context(pki))
        (s_reader, s_writer), (_, c_writer) = link.server, link.client
        c_writer.write(b"over TLS")
        data = await s_reader.read(100)
        return s_writer.get_extra_info("ssl_object").version(), data

    assert clock.run(main()) == ("TLSv1.3", b"over TLS")
