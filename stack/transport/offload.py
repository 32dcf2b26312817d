"""Run a long computation without stalling the event loop, in a way that respects the session's clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from stack.clock import Clock, VirtualClock

T = TypeVar("T")


async def compute(clock: Clock, work: Callable[[], T]) -> T:
    """`work()` in a worker thread on a real clock, inline on a virtual one.

    On a real clock the thread lets the loop serve other sessions while the work runs (the interpreter hands
    the loop its turn every switch interval). On a virtual clock inline is right: simulated time does not pass
    while the loop computes, whereas a thread would let the loop jump to its next timer while it waits.
    """
    if isinstance(clock, VirtualClock):
        return work()
    return await asyncio.to_thread(work)
