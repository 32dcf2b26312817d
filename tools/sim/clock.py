"""Simulated time for a closed-loop session over real sockets.

Messages are exchanged at a frozen instant (an exchange takes no simulated time); simulated time advances
only while the EV waits to send its next request, which is when the physics runs. With `speed=None` ("max")
that wait is skipped: the clock jumps and the plant integrates the interval at once. With `speed=N` the wait
lasts interval/N wall seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class SimClock:
    def __init__(self, start: float, world_step: Callable[[float], None], *, speed: float | None, max_dt: float = 1.0):
        if max_dt <= 0:
            raise ValueError(f"max_dt must be positive, got {max_dt}")
        self.t = start
        self.start = start
        self.speed = speed
        self.max_dt = max_dt
        self._step = world_step
        self.wall_start = time.perf_counter()
        self.frozen_until: float | None = None  # set to stop the EV's clock (fault: the EV stops answering)

    def now(self) -> float:
        return self.t

    @property
    def elapsed(self) -> float:
        return self.t - self.start

    def advance(self, until: float) -> None:
        """Step the world to `until` in steps of at most `max_dt`."""
        while self.t < until - 1e-9:
            dt = min(self.max_dt, until - self.t)
            self._step(dt)
            self.t += dt

    async def pace(self, deadline: float) -> None:
        """The EV waits until `deadline` (simulated): physics runs meanwhile."""
        if self.frozen_until is not None and deadline >= self.frozen_until:
            self.advance(self.frozen_until)
            await asyncio.Event().wait()  # the EV has stopped answering: never returns (cancelled at the end)
        if self.speed is None:
            self.advance(deadline)
            await asyncio.sleep(0)
            return
        while self.t < deadline - 1e-9:
            chunk = min(deadline - self.t, 0.1 * self.speed)  # a tenth of a wall second at a time
            await asyncio.sleep(chunk / self.speed)
            self.advance(self.t + chunk)
