"""A short soak (tools/bench/soak.py) in both modes leaves nothing behind: every session ends cleanly and the
asyncio tasks and sockets of the process come back to what they were. Counters only, no timings."""

from __future__ import annotations

import pytest

from tools.bench import soak


@pytest.mark.parametrize(
    ("mode", "sessions", "duration", "tls"),
    [("virtual", 10, 60.0, False), ("virtual", 3, 30.0, True), ("wall", 4, 4.0, False), ("wall", 3, 4.0, True)],
    ids=["virtual", "virtual TLS", "wall TCP", "wall TLS"],
)
def test_a_short_soak_leaks_no_tasks_or_sockets(mode: str, sessions: int, duration: float, tls: bool) -> None:
    figures = soak.run(mode, sessions=sessions, duration=duration, session_minutes=0.05, tls=tls, progress=print)
    assert figures["sessions_failed"] == 0, figures["failures"]
    assert figures["sessions_finished"] >= 2 * sessions, figures  # sessions ended and new ones began
    assert figures["charge_loops"] > 0
    assert figures["tasks"]["after"] == figures["tasks"]["before"], figures
    assert figures["sockets"]["after"] == figures["sockets"]["before"], figures
