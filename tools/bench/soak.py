"""`python -m tools.bench soak`: many concurrent sessions for a long time, and what they leave behind.

* `virtual`: `--sessions` charge points (default 200) on one VirtualClock for `--hours` of simulated time (default
  1), each running session after session (`--session-minutes` of charge loop each) over the in-memory link.
* `wall`: the same over real loopback sockets (TCP, `--tls` for TLS 1.3) on the wall clock for `--duration` s
  (default 600).

Both report the charge-loop round trip (p50/p99, wall clock, as `run_session` measures it), RSS before the run,
after the warm-up (the first `--warmup` s) and at the end, and the asyncio tasks and sockets left once the
server closed. The controllers are examples/minimal_controllers.py: the stack (transport, session machines,
codec) is what soaks; the products' plant and battery models have their own benchmark (`bench sim`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sys
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from examples.minimal_controllers import MinimalEv, MinimalEvse
from stack.clock import Clock, RealClock, VirtualClock
from stack.session.controller import ChargeLoopFeedback, EvLoopStep
from stack.session.evcc import EvccConfig
from stack.session.timers import EvccTimers
from stack.transport.drive import Observers
from stack.transport.evcc_client import run_evcc, run_evcc_on
from stack.transport.limits import Limits
from stack.transport.memory import memory_link
from stack.transport.secc_server import SeccServer

RAMP = 0.05  # s between two charge points' first sessions (trucks do not plug in within the same millisecond)
LIMITS = Limits(max_connections=1024)  # the server must take every charge point of the run


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


class Histogram:
    """Round trips in 10 µs bins up to 2 s (the last bin takes the rest): constant memory for millions of
    samples, so a long run's own bookkeeping does not show up as growth."""

    BIN_S = 1e-5
    BINS = 200_000

    def __init__(self) -> None:
        self.counts = array("Q", bytes(8 * self.BINS))
        self.n = 0

    def add(self, seconds: float) -> None:
        self.counts[min(self.BINS - 1, max(0, int(seconds / self.BIN_S)))] += 1
        self.n += 1

    def percentile(self, q: float) -> float:
        """The `q` quantile in seconds (bin centre), nan without samples."""
        if not self.n:
            return float("nan")
        rank, seen = q * (self.n - 1), 0
        for i, count in enumerate(self.counts):
            seen += count
            if seen > rank:
                return (i + 0.5) * self.BIN_S
        return self.BINS * self.BIN_S


class SoakEv(MinimalEv):
    """MinimalEv without its transcript of every charge-loop feedback (it would grow with the session)."""

    def charge_loop(self, feedback: ChargeLoopFeedback | None, now: float) -> EvLoopStep:
        return super().charge_loop(None, now)


@dataclass
class Soak:
    """What a run measured."""

    mode: str
    sessions: int
    duration_s: float
    interval_s: float
    tls: bool
    rtts: Histogram = field(default_factory=Histogram)  # charge-loop round trips after the warm-up
    recent: Histogram = field(default_factory=Histogram)  # ... since the last progress line
    warmup_rtts: int = 0
    finished: int = 0
    failed: list[str] = field(default_factory=list)
    rss_mib: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, int] = field(default_factory=dict)  # tasks and sockets before the server started
    left: dict[str, int] = field(default_factory=dict)  # ... and after it closed
    wall_s: float = 0.0

    def figures(self) -> dict[str, Any]:
        rss = self.rss_mib
        return {
            "mode": self.mode,
            "sessions": self.sessions,
            "duration_s": self.duration_s,
            "charge_loop_interval_s": self.interval_s,
            "tls": self.tls,
            "charge_loops": self.rtts.n + self.warmup_rtts,
            "round_trip_ms": {
                "p50": 1000 * self.rtts.percentile(0.5),
                "p99": 1000 * self.rtts.percentile(0.99),
                "max": 1000 * self.rtts.percentile(1.0),
            },
            "sessions_finished": self.finished,
            "sessions_failed": len(self.failed),
            "failures": self.failed[:5],
            "rss_mib": rss,
            "growth_after_warmup_mib": rss.get("end", 0.0) - rss.get("after_warmup", 0.0),
            "tasks": {"before": self.baseline.get("tasks"), "after": self.left.get("tasks")},
            "sockets": {"before": self.baseline.get("sockets"), "after": self.left.get("sockets")},
            "wall_s": self.wall_s,
        }


class Run:
    """Charge points that run session after session until `end`, and the figures they produce."""

    def __init__(
        self,
        soak: Soak,
        clock: Clock,
        *,
        warmup: float,
        session_s: float,
        progress: Callable[[str], None],
    ) -> None:
        self.soak, self.clock = soak, clock
        self.start = clock.now()
        self.end = self.start + soak.duration_s
        self.warm_at = self.start + warmup
        self.loops = max(1, round(session_s / soak.interval_s))
        self.config = EvccConfig(timers=EvccTimers(loop_interval=0.0, charge_loop_interval=soak.interval_s))
        self.progress = progress
        self.observers = Observers(round_trip=self._round_trip)

    def _round_trip(self, name: str, seconds: float) -> None:
        if name != "DC_ChargeLoopRes":
            return
        self.soak.recent.add(seconds)
        if self.clock.now() < self.warm_at:
            self.soak.warmup_rtts += 1
        else:
            self.soak.rtts.add(seconds)

    def _ended(self, ok: bool, reason: str) -> None:
        if ok:
            self.soak.finished += 1
        else:
            self.soak.failed.append(reason)

    def next_loops(self, first: float = 1.0) -> int:
        """Charge loops of the next session: a whole session (`first`: a fraction of one, so that sessions do
        not all end together), or what is left of the run (0: no time left)."""
        return min(round(first * self.loops) or 1, int((self.end - self.clock.now()) / self.soak.interval_s))

    async def report(self) -> None:
        """A progress line every tenth of the run; RSS once the warm-up is over."""
        step = self.soak.duration_s / 10
        lines = [self.start + step * k for k in range(1, 11)]
        for mark in sorted({self.warm_at, *lines}):
            await self.clock.sleep_until(mark)
            if mark == self.warm_at:
                gc.collect()
                self.soak.rss_mib["after_warmup"] = rss_mib()
            if mark in lines:
                loops = self.soak.rtts.n + self.soak.warmup_rtts
                p99 = 1000 * self.soak.recent.percentile(0.99)
                self.soak.recent = Histogram()
                self.progress(
                    f"  {100 * (mark - self.start) / self.soak.duration_s:3.0f} %  {loops:>9} charge loops"
                    f"  {self.soak.finished:>6} sessions  p99 {p99:6.1f} ms  RSS {rss_mib():6.1f} MiB"
                    f"  {len(asyncio.all_tasks())} tasks  {open_sockets()} sockets"
                )


async def _virtual(soak: Soak, clock: VirtualClock, run: Run, tls: tuple[Any, Any] | None) -> None:
    server = SeccServer(MinimalEvse, clock=clock, limits=LIMITS)

    async def charge_point(i: int) -> None:
        await clock.sleep_until(run.start + i * RAMP)
        first = (i + 1) / soak.sessions
        while (loops := run.next_loops(first)) > 0:
            first = 1.0
            link = await memory_link(*(tls or (None, None)))
            secc = asyncio.ensure_future(server.serve(*link.server))
            close, _ = await run_evcc_on(
                *link.client, SoakEv(charge_loops=loops), run.config, clock=clock, observers=run.observers
            )
            await secc
            run._ended(close.ok, close.reason)

    reporter = asyncio.ensure_future(run.report())
    await asyncio.gather(*(charge_point(i) for i in range(soak.sessions)))
    reporter.cancel()
    await server.close()


async def _wall(soak: Soak, clock: RealClock, run: Run, tls: tuple[Any, Any] | None) -> None:
    server_ctx, client_ctx = tls or (None, None)
    server = SeccServer(MinimalEvse, clock=clock, ssl_context=server_ctx, limits=LIMITS)
    host, port = await server.start("127.0.0.1", 0)

    async def charge_point(i: int) -> None:
        await clock.sleep_until(run.start + i * RAMP)
        first = (i + 1) / soak.sessions
        while (loops := run.next_loops(first)) > 0:
            first = 1.0
            try:
                close, _ = await run_evcc(
                    host,
                    port,
                    SoakEv(charge_loops=loops),
                    run.config,
                    clock=clock,
                    ssl_context=client_ctx,
                    observers=run.observers,
                )
                run._ended(close.ok, close.reason)
            except (OSError, TimeoutError) as exc:
                run._ended(False, f"connect: {exc}")
                await asyncio.sleep(1.0)

    reporter = asyncio.ensure_future(run.report())
    await asyncio.gather(*(charge_point(i) for i in range(soak.sessions)))
    reporter.cancel()
    await server.close()


def _tls_contexts() -> tuple[Any, Any]:
    from stack.security.pki import ensure_pki
    from stack.security.tls import client_context, server_context

    pki = ensure_pki()
    return server_context(pki), client_context(pki)


def run(
    mode: str,
    *,
    sessions: int = 200,
    duration: float | None = None,
    interval: float = 0.25,
    session_minutes: float = 10.0,
    warmup: float | None = None,
    tls: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run one soak (`virtual` or `wall`) and return its figures."""
    logging.getLogger("mcs_v2g").setLevel(logging.WARNING)
    say = progress or (lambda text: print(text, file=sys.stderr, flush=True))
    if duration is None:
        duration = 3600.0 if mode == "virtual" else 600.0
    if warmup is None:
        warmup = min(300.0, duration / 5)
    soak = Soak(mode, sessions, duration, interval, tls)
    contexts = _tls_contexts() if tls else None
    gc.collect()
    soak.rss_mib["before"] = rss_mib()
    wall = time.perf_counter()
    say(
        f"soak {mode}: {sessions} sessions, {duration:.0f} s {'simulated' if mode == 'virtual' else 'wall'}"
        f" time, a charge loop every {interval} s, {'TLS' if tls else 'no TLS'}"
    )

    async def main(clock: Clock) -> None:
        soak.baseline = {"tasks": len(asyncio.all_tasks()), "sockets": open_sockets()}
        run_ = Run(soak, clock, warmup=warmup, session_s=60 * session_minutes, progress=say)
        if isinstance(clock, VirtualClock):
            await _virtual(soak, clock, run_, contexts)
        else:
            assert isinstance(clock, RealClock)
            await _wall(soak, clock, run_, contexts)
        await asyncio.sleep(0)
        gc.collect()
        soak.rss_mib["end"] = rss_mib()
        soak.left = {"tasks": len(asyncio.all_tasks()), "sockets": open_sockets()}

    if mode == "virtual":
        clock = VirtualClock()
        clock.run(main(clock))
    elif mode == "wall":
        asyncio.run(main(RealClock()))
    else:
        raise ValueError(f"mode must be 'virtual' or 'wall', got {mode!r}")
    soak.wall_s = time.perf_counter() - wall
    return soak.figures()


def report(r: dict[str, Any]) -> str:
    rss, rtt = r["rss_mib"], r["round_trip_ms"]
    time_kind = "simulated" if r["mode"] == "virtual" else "wall-clock"
    return "\n".join(
        [
            f"soak ({r['mode']}): {r['sessions']} concurrent sessions, {r['duration_s']:.0f} s of {time_kind} time"
            f" ({r['wall_s']:.0f} s of wall time), {'TLS 1.3' if r['tls'] else 'no TLS'}",
            f"charge loops: {r['charge_loops']} (one every {r['charge_loop_interval_s']} s per session);"
            f" round trip after warm-up p50 {rtt['p50']:.2f} ms, p99 {rtt['p99']:.2f} ms, max {rtt['max']:.1f} ms",
            f"sessions: {r['sessions_finished']} finished cleanly, {r['sessions_failed']} failed {r['failures']}",
            f"RSS: {rss.get('before', 0):.1f} MiB before, {rss.get('after_warmup', 0):.1f} after warm-up,"
            f" {rss.get('end', 0):.1f} at the end (growth after warm-up {r['growth_after_warmup_mib']:+.1f} MiB)",
            f"left behind: tasks {r['tasks']['before']} -> {r['tasks']['after']},"
            f" sockets {r['sockets']['before']} -> {r['sockets']['after']}",
        ]
    )
