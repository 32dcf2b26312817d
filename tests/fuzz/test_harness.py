"""The contract harness can fail: an escaped error, a slow input, a memory hog and a hang are each caught and
named, an allowed error is not, and the crash store keeps one file per bug."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tools.fuzz.contract import Harness
from tools.fuzz.crashes import CrashStore
from tools.fuzz.targets import Target


def _target(call, allowed: tuple[str, ...] = ("stack.v2gtp:V2gtpError",)) -> Target:
    return Target("fake", "sdp", "fake(data)", allowed, 64, call)


def _busy(seconds: float) -> None:
    """Spend CPU time (the harness measures CPU, not wall time)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_waiting_is_not_slowness() -> None:
    harness = Harness(_target(lambda data: time.sleep(0.02)), limit_ms=5.0)
    assert harness.one(b"x") is None


def _raise_allowed(data: bytes) -> None:
    from stack.v2gtp import V2gtpError

    raise V2gtpError("bad header")


def test_an_allowed_error_is_no_violation() -> None:
    harness = Harness(_target(_raise_allowed))
    assert harness.one(b"x") is None
    assert (harness.counters.inputs, harness.counters.violations) == (1, 0)


def test_an_error_outside_the_contract_is_an_escape_naming_type_and_place() -> None:
    harness = Harness(_target(lambda data: {}[data]))
    violation = harness.one(b"x")
    assert violation is not None
    assert violation.reason == "escaped"
    assert violation.detail.startswith("KeyError")
    assert "tests/fuzz/test_harness.py" in violation.detail
    assert harness.counters.by_reason == {"escaped": 1}


def test_a_slow_input_is_a_violation_even_at_its_best_of_three() -> None:
    calls = []

    def slow(data: bytes) -> None:
        calls.append(data)
        _busy(0.02)

    harness = Harness(_target(slow), limit_ms=5.0)
    violation = harness.one(b"x")
    assert violation is not None and violation.reason == "slow"
    assert len(calls) == 4  # timed three times (the best counts), then once under tracemalloc


def test_a_slow_first_call_is_forgiven_when_the_next_ones_are_fast() -> None:
    calls = []

    def slow_once(data: bytes) -> None:
        calls.append(data)
        if len(calls) == 1:
            _busy(0.02)

    harness = Harness(_target(slow_once), limit_ms=5.0)
    assert harness.one(b"x") is None


def test_an_input_that_allocates_over_the_limit_is_a_memory_violation() -> None:
    harness = Harness(_target(lambda data: bytearray(2 * 1024 * 1024)), limit_bytes=1024 * 1024, trace_every=1)
    violation = harness.one(b"x")
    assert violation is not None and violation.reason == "memory"
    assert harness.counters.peak_bytes >= 2 * 1024 * 1024


def test_memory_is_traced_for_one_fast_input_in_trace_every() -> None:
    harness = Harness(_target(lambda data: None), trace_every=4)
    for _ in range(8):
        harness.one(b"x")
    assert harness.counters.traced == 2


def test_a_hang_is_interrupted_and_recorded() -> None:
    def forever(data: bytes) -> None:
        while True:
            pass

    harness = Harness(_target(forever), hang_s=0.2)
    violation = harness.one(b"x")
    assert violation is not None and violation.reason == "hang"


def test_the_crash_store_keeps_one_file_per_bug_and_the_worst_slow_input(tmp_path: Path) -> None:
    harness = Harness(_target(lambda data: {}[data]))
    store = CrashStore(tmp_path, "fake")
    for data in (b"a", b"b"):
        store.record(harness.one(data), data)
    assert store.saved == 1  # the same KeyError at the same place
    files = list(tmp_path.glob("fake--escaped-*.bin"))
    assert len(files) == 1 and files[0].read_bytes() == b"a"
    record = json.loads((tmp_path / "fake.jsonl").read_text())
    assert record["target"] == "fake" and record["reason"] == "escaped" and record["hex"] == b"a".hex()
