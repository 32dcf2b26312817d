"""`VirtualClock.hold`: a time master outside the process releases the simulated clock step by step."""

from __future__ import annotations

import asyncio
import threading
import time

from stack.clock import VirtualClock


def test_held_time_stops_at_the_gate_until_released_from_outside() -> None:
    clock = VirtualClock(1000.0)
    seen: list[float] = []

    async def main() -> None:
        clock.hold(1010.0)
        loop = asyncio.get_running_loop()

        async def ticker() -> None:
            while clock.now() < 1030:
                await clock.sleep_until(clock.now() + 1)
                seen.append(clock.now())

        task = asyncio.ensure_future(ticker())
        released = threading.Event()

        def release() -> None:  # another process's message, as a thread here
            time.sleep(0.2)
            released.set()
            loop.call_soon_threadsafe(clock.hold, None)

        threading.Thread(target=release).start()
        await clock.sleep_until(1005.0)
        assert max(seen) <= 1010.0
        await task
        assert released.is_set()  # time passed the gate only after the release

    clock.run(main())
    assert seen[-1] == 1030.0
    assert seen == sorted(seen) and len(seen) == 30
