"""Verdicts: pass, fail (with the rule, expected vs seen, the message and its time), inconclusive, error."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from mcs_v2g.capture.wire import Recording

from .trace import Trace


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"  # the device does not support a precondition of the case
    ERROR = "error"  # the tester itself failed


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    rule: str = ""  # the rule id the device broke (fail), or why the case could not judge
    expected: str = ""
    seen: str = ""
    message: str = ""  # the message the verdict is about
    t: float | None = None  # its clock time

    @property
    def ok(self) -> bool:
        """Pass or inconclusive: what a run's exit status accepts."""
        return self.outcome in (Outcome.PASS, Outcome.INCONCLUSIVE)


def passed() -> Verdict:
    return Verdict(Outcome.PASS)


def failed(rule: str, expected: str, seen: str, message: str = "", t: float | None = None) -> Verdict:
    return Verdict(Outcome.FAIL, rule, expected, seen, message, t)


def inconclusive(why: str) -> Verdict:
    return Verdict(Outcome.INCONCLUSIVE, seen=why)


def error(why: str) -> Verdict:
    return Verdict(Outcome.ERROR, seen=why)


@dataclass
class CaseResult:
    """One case run: its verdict, what it saw, what went over the wire, and how long it took (clock s)."""

    case_id: str
    title: str
    rules: tuple[str, ...]
    tags: tuple[str, ...]
    verdict: Verdict
    trace: Trace = field(default_factory=Trace)
    recording: Recording | None = None
    duration_s: float = 0.0
