"""The one owner of time: `Clock` hands out the present (epoch seconds) and waits, for everything that waits
or stamps (transport timeouts, session timers, the plant, the truck, the energy manager).

Two implementations share one contract:

* `RealClock`: wall time, for real devices and benches.
* `VirtualClock`: a discrete-event clock for simulation. It runs its coroutine on an asyncio loop whose time is
  virtual: when every task waits (on a timer, on data from an in-memory link), the loop jumps to the next timer
  instead of sleeping. At `speed=None` ("max") nothing ever waits on the wall clock; at `speed=N` the jumps
  are paced to N x real time. Every asyncio timer (`asyncio.sleep`, `asyncio.timeout`, `loop.call_later`) of
  the code that runs on it is virtual too, so a 60 s sequence timeout at `--speed max` costs microseconds.

Session machines never see a clock: their drivers pass `clock.now()` in (stack/session is sans-I/O).
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

T = TypeVar("T")
GATE_POLL_S = 0.05  # s of wall time a held clock waits for the outside world before it looks again


class Clock:
    """Time as epoch seconds on the running asyncio loop; subclasses say where `now` comes from."""

    def now(self) -> float:
        raise NotImplementedError

    def loop_time(self, when: float) -> float:
        """The running loop's time at epoch time `when`."""
        loop = asyncio.get_running_loop()
        return loop.time() + (when - self.now())

    async def sleep_until(self, when: float) -> None:
        delay = when - self.now()
        await asyncio.sleep(delay if delay > 0 else 0)

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_at(self.loop_time(when), callback, *args)

    def timeout_at(self, when: float | None) -> asyncio.Timeout:
        """`async with clock.timeout_at(deadline):` raises TimeoutError at `deadline` (None: no limit)."""
        return asyncio.timeout_at(None if when is None else self.loop_time(when))


class RealClock(Clock):
    """Wall time (`time.time`), for real devices."""

    def now(self) -> float:
        return time.time()


class VirtualClock(Clock):
    """Simulated time starting at epoch `start`; `run(coro)` runs a coroutine on its virtual-time loop.

    `speed=None` jumps from event to event; `speed=N` lets N simulated seconds pass per wall second.
    """

    def __init__(self, start: float = 1_795_000_000.0, speed: float | None = None) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be positive or None (max), got {speed}")
        self.start = start
        self.speed = speed
        self._loop: VirtualTimeLoop | None = None

    def now(self) -> float:
        if self._loop is None:
            return self.start
        return self.start + self._loop.time()

    def loop_time(self, when: float) -> float:
        """`Clock.loop_time` on the clock's own loop (the same arithmetic, so the same timers), without looking the
        running loop up: every send and receive sets a timeout."""
        loop = self._loop
        if loop is None:
            return super().loop_time(when)
        time_now = loop.time()
        return time_now + (when - (self.start + time_now))

    @property
    def elapsed(self) -> float:
        """Simulated seconds since `start`."""
        return self.now() - self.start

    def hold(self, until: float | None) -> None:
        """Let simulated time run up to epoch `until` at most (None: no limit). A time master outside this process
        (the depot's EMS over MQTT) releases the clock step by step; at the gate the loop waits for real I/O."""
        if self._loop is None:
            raise RuntimeError("hold() needs the running clock")
        self._loop.gate = None if until is None else until - self.start

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        """Run `main` to completion on a fresh virtual-time loop (like `asyncio.run`)."""
        result: list[T] = []

        async def keep() -> None:
            # the result travels outside the task: at exit, CPython 3.11's Runner formats its SIGINT handler,
            # whose repr holds the main task with its result (a whole session transcript: milliseconds)
            result.append(await main)

        with asyncio.Runner(loop_factory=self._new_loop) as runner:
            runner.run(keep())
        return result[0]

    def _new_loop(self) -> VirtualTimeLoop:
        self._loop = VirtualTimeLoop(self.speed)
        return self._loop


class _VirtualSelector(selectors.BaseSelector):
    """Wraps the loop's selector: where the loop would block until its next timer, time jumps instead.

    Real file descriptors (the loop's self-pipe for threads, a real socket) are still polled first, so
    work from outside the simulation is never skipped over.
    """

    def __init__(self, inner: selectors.BaseSelector, loop: VirtualTimeLoop) -> None:
        self._inner = inner
        self._loop = loop

    def register(self, fileobj: FileDescriptorLike, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: FileDescriptorLike, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout == 0 and len(self._inner.get_map()) <= 1:
            # callbacks are ready and only the loop's self-pipe is registered: its byte wakes a loop that would block
            # (the callback a thread hands over is already queued), so it can wait for the next poll below
            return []
        events = self._inner.select(0)
        if events or timeout == 0:
            return events
        if timeout is None:  # no timer at all: only the outside world can wake us
            return self._inner.select(None)
        speed, gate = self._loop.speed, self._loop.gate
        if gate is not None and self._loop.time() + timeout > gate:  # held: up to the gate, then the outside world
            if gate > self._loop.time():
                self._loop.advance(gate - self._loop.time())
                return []
            return self._inner.select(GATE_POLL_S)
        if speed is None:
            self._loop.advance(timeout)
            return []
        started = time.perf_counter()
        events = self._inner.select(timeout / speed)
        self._loop.advance(min(timeout, (time.perf_counter() - started) * speed) if events else timeout)
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose `time()` is simulated seconds since it was created."""

    def __init__(self, speed: float | None = None) -> None:
        self.speed = speed
        self.gate: float | None = None  # loop time that time may not pass (`VirtualClock.hold`)
        self._virtual_time = 0.0
        super().__init__(_VirtualSelector(selectors.DefaultSelector(), self))

    def time(self) -> float:
        return self._virtual_time

    def advance(self, seconds: float) -> None:
        self._virtual_time += seconds
