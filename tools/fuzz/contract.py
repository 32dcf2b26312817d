"""The contract of every target, checked input by input: only the allowed errors escape, each input takes at
most `limit_ms` and allocates at most `limit_bytes` at its peak.

Memory is measured with tracemalloc (the peak of what one call allocated), not with an RSS or address-space
rlimit: the codec and the loaders are pure Python, so every allocation they make is traced, and tracemalloc
attributes it to the one input, where an RSS high-water mark is shared by the whole process (interpreter,
atheris, corpus) and never goes down, and an rlimit would kill the worker instead of recording the input.
Tracing slows a call 3 to 5 times, so each input first runs untraced (that run is timed), and runs again
traced when it is one in `trace_every` or slower than TRACE_SLOW_MS (allocating and touching 50 MB takes
longer: 12,800 page faults, or millions of Python objects). A large block allocated and never touched is
caught by the sampling only. The short run of the tests traces every
input. libFuzzer's own -rss_limit_mb stays as a backstop.

Time is the CPU time of the untraced call (time.thread_time), not wall time: on 2 cores shared with other work
a worker gets a fraction of a core, and wall time then says more about the machine than about the input. An
input over either limit is run twice more and only the best of the three counts, so that a lazy import or a
cache filled on first use does not make an input slow. An input still running after `hang_s` of wall time is
interrupted (SIGALRM) and recorded as a hang.
"""

from __future__ import annotations

import signal
import time
import traceback
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

from .targets import Target

LIMIT_MS = 100.0
LIMIT_BYTES = 50 * 1024 * 1024
HANG_S = 10.0
TRACE_EVERY = 16  # one input in so many is run again under tracemalloc (1: every input)
TRACE_SLOW_MS = 2.0  # and every input slower than this: touching 50 MB of fresh pages takes longer
_REPO = str(Path(__file__).resolve().parents[2])


class InputHang(BaseException):
    """Raised into the target by SIGALRM; a BaseException so that no `except Exception` of the target eats it."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One input that broke the contract."""

    target: str
    reason: str  # escaped | slow | memory | hang
    detail: str  # the exception, or the figure over the limit
    signature: str  # what makes two violations the same bug (for deduplication)
    ms: float
    peak_bytes: int


@dataclass(slots=True)
class Counters:
    inputs: int = 0
    traced: int = 0  # inputs whose memory was measured
    violations: int = 0
    slowest_ms: float = 0.0
    peak_bytes: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class Harness:
    """Runs the inputs of one target under the contract and keeps the counters."""

    def __init__(
        self,
        target: Target,
        *,
        limit_ms: float = LIMIT_MS,
        limit_bytes: int = LIMIT_BYTES,
        hang_s: float = HANG_S,
        trace_every: int = TRACE_EVERY,
    ) -> None:
        self.target = target
        self.allowed = target.allowed
        self.limit_ms = limit_ms
        self.limit_bytes = limit_bytes
        self.hang_s = hang_s
        self.trace_every = trace_every
        self.counters = Counters()
        signal.signal(signal.SIGALRM, _raise_hang)

    def one(self, data: bytes) -> Violation | None:
        """Run one input; the violation it caused, if any (also counted)."""
        self.counters.inputs += 1
        ms, _, error = self._measure(data, traced=False)
        if ms > self.limit_ms:  # first-use costs (a lazy import, a cache filled), a busy machine: best of three
            ms = min([ms] + [self._measure(data, traced=False)[0] for _ in range(2)])
        peak = 0
        if self.counters.inputs % self.trace_every == 0 or ms > TRACE_SLOW_MS:
            peak = self._measure(data, traced=True)[1]
            if peak > self.limit_bytes:
                peak = min([peak] + [self._measure(data, traced=True)[1] for _ in range(2)])
            self.counters.traced += 1
        self.counters.slowest_ms = max(self.counters.slowest_ms, ms)
        self.counters.peak_bytes = max(self.counters.peak_bytes, peak)
        violation = self._judge(ms, peak, error)
        if violation is not None:
            self.counters.violations += 1
            self.counters.by_reason[violation.reason] = self.counters.by_reason.get(violation.reason, 0) + 1
        return violation

    def _measure(self, data: bytes, *, traced: bool) -> tuple[float, int, BaseException | None]:
        """CPU time (ms), traced peak (bytes, 0 untraced) and outcome of one call."""
        error: BaseException | None = None
        if traced:
            tracemalloc.start()
        signal.setitimer(signal.ITIMER_REAL, self.hang_s)
        start = time.thread_time()
        try:
            self.target.run(data)
        except BaseException as exc:  # judging what escapes is the point
            error = exc
        finally:
            ms = (time.thread_time() - start) * 1000.0
            signal.setitimer(signal.ITIMER_REAL, 0)
            peak = 0
            if traced:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
        if isinstance(error, KeyboardInterrupt | SystemExit):
            raise error
        return ms, peak, error

    def _judge(self, ms: float, peak: int, error: BaseException | None) -> Violation | None:
        name = self.target.name
        if isinstance(error, InputHang):
            return Violation(name, "hang", f"still running after {self.hang_s:g} s", "hang", ms, peak)
        if isinstance(error, MemoryError):
            return Violation(name, "memory", "MemoryError", "memory", ms, peak)
        if error is not None and not isinstance(error, self.allowed):
            where = _innermost_repo_frame(error)
            detail = f"{type(error).__name__}: {error} at {where}"[:500]
            return Violation(name, "escaped", detail, f"escaped-{type(error).__name__}-{where}", ms, peak)
        if peak > self.limit_bytes:
            return Violation(name, "memory", f"peak {peak / 2**20:.1f} MB", "memory", ms, peak)
        if ms > self.limit_ms:
            return Violation(name, "slow", f"{ms:.1f} ms", "slow", ms, peak)
        return None


def _raise_hang(signum: int, frame: object) -> None:
    raise InputHang


def _innermost_repo_frame(error: BaseException) -> str:
    """`path:line` of the deepest frame of the traceback that is in this repository (not the harness)."""
    found = "?"
    for entry in traceback.extract_tb(error.__traceback__):
        if entry.filename.startswith(_REPO) and "/tools/fuzz/" not in entry.filename:
            found = f"{entry.filename[len(_REPO) + 1 :]}:{entry.lineno}"
    return found
