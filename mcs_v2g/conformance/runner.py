"""Run cases against a device: select, check preconditions, play each on a fresh bench, keep verdict and record."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from mcs_v2g.capture.wire import Recording
from stack.clock import Clock

from .bench import Bench
from .case import Case
from .stream import HandshakeFailed
from .verdict import CaseResult, Verdict, error, inconclusive

log = logging.getLogger("mcs_v2g.conformance")

Progress = Callable[[int, int, CaseResult], None]


SLOW = "slow"  # a case that waits for a long timer of the device (hours in real time, nothing on a virtual clock)


def select(cases: Iterable[Case], role: str, patterns: Sequence[str] = (), *, slow: bool = False) -> list[Case]:
    """The cases for a device of `role`, narrowed to those an id glob or `tag:` of `patterns` selects; cases
    tagged slow only with `slow` or when a pattern names them."""
    chosen = [c for c in cases if c.role == role]
    if patterns:
        return [c for c in chosen if c.selected_by(patterns)]
    return [c for c in chosen if slow or SLOW not in c.tags]


async def run_case(case: Case, bench: Bench) -> CaseResult:
    """Play one case on its bench; never raises (the tester's own failure is an `error` verdict)."""
    clock: Clock = bench.clock
    start = clock.now()
    unmet = case.needs.unmet(bench.profile)
    verdict: Verdict
    if unmet is not None:
        verdict = inconclusive(unmet)
    else:
        try:
            verdict = await case.play(bench)
        except HandshakeFailed as exc:
            verdict = error(f"TLS handshake failed: {exc.reason}")
        except (ConnectionError, OSError, TimeoutError) as exc:
            verdict = error(f"cannot reach the device: {exc or type(exc).__name__}")
        except Exception as exc:  # a defect of the tester: reported as such, the run goes on
            log.exception("case %s: tester error", case.id)
            verdict = error(f"tester error: {type(exc).__name__}: {exc}")
    keylog = bench.keylog()
    await bench.finish()
    tape = bench.tape
    recording = Recording(tuple(tape.connections), tuple(tape.segments), tuple(tape.datagrams), keylog=keylog)
    return CaseResult(case.id, case.title, case.rules, case.tags, verdict, bench.trace, recording, clock.now() - start)
