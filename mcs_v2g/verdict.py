"""Whether a session did what it was for: one outcome, the reasons, the goals, and the command's exit status.

Sans-I/O: `judge` takes what the session's sides report (how it ended, the faults their hardware latched, the
goals and what was reached) and decides. `ok` only when the session ended cleanly, nothing tripped and every
goal was met; a goal that was infeasible from the start is judged against the best its limits allowed.

| result            | exit | meaning                                                                      |
|-------------------|------|------------------------------------------------------------------------------|
| `ok`              | 0    | ended cleanly, no fault, every goal met                                      |
| `target_missed`   | 1    | ended cleanly, but a goal the limits allowed was not met                     |
| (bad input)       | 2    | usage or input error, refused before any work (`mcs-v2g: error: ...`)        |
| `infeasible`      | 3    | a goal was infeasible from the start; the best reachable level was reached   |
| `aborted`         | 4    | a protocol or transport error, a timeout, a peer that stopped answering      |
| `fault:<kind>`    | 5    | a protection tripped (`overcurrent`, `overvoltage`, `insulation`, ...)      |

A session with several findings gets the most severe (fault > aborted > target_missed > infeasible > ok); the
reasons list them all. A run of several sessions exits with the status of its most severe session.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from ev_emulator.battery import TruckBattery
from ev_emulator.needs import DepartureFeasibility

USAGE_EXIT = 2  # bad input or usage: refused before any work (mcs_v2g.cli.main)

# a SoC goal counts as met within this much (percent of SoC): the wire carries whole percent and a loop of
# sample-and-hold moves the SoC by a fraction of a percent
SOC_TOLERANCE_PCT = 0.5


class Outcome(StrEnum):
    OK = "ok"
    TARGET_MISSED = "target_missed"
    INFEASIBLE = "infeasible"
    ABORTED = "aborted"
    FAULT = "fault"


EXIT_STATUS = {
    Outcome.OK: 0,
    Outcome.TARGET_MISSED: 1,
    Outcome.INFEASIBLE: 3,
    Outcome.ABORTED: 4,
    Outcome.FAULT: 5,
}


class Severity(IntEnum):
    """The order in which findings win: the most severe names the session."""

    OK = 0
    INFEASIBLE = 1
    TARGET_MISSED = 2
    ABORTED = 3
    FAULT = 4


SEVERITY = {outcome: Severity[outcome.name] for outcome in Outcome}

# device fault names (charger HAL `FaultKind`, truck BMS counters) -> the kind in `fault:<kind>`
FAULT_KINDS = {
    "over_current": "overcurrent",
    "overcurrent_charge": "overcurrent",
    "overcurrent_discharge": "overcurrent",
    "over_voltage": "overvoltage",
    "overvoltage": "overvoltage",
    "undervoltage": "undervoltage",
    "insulation_fault": "insulation",
    "imd_self_test_failed": "imd_self_test",
    "contactor_welded": "contactor_welded",
    "contactor_failed_to_close": "contactor_failed_to_close",
    "soc_high": "soc_limit",
    "soc_low": "soc_limit",
}


@dataclass(frozen=True, slots=True)
class Fault:
    """A latched protection event: which side (`charger`, `truck`), its device name, the figures."""

    side: str
    name: str
    detail: str = ""

    @property
    def kind(self) -> str:
        return FAULT_KINDS.get(self.name, self.name)

    def describe(self) -> str:
        return f"{self.side} fault {self.name}" + (f": {self.detail}" if self.detail else "")


@dataclass(frozen=True, slots=True)
class Ending:
    """How the session ended: cleanly (SessionStop answered, or paused for a resume) or not, and why."""

    clean: bool
    reason: str


@dataclass(frozen=True, slots=True)
class LoopGoal:
    """A bench limit: this many charge loops were asked for."""

    requested: int
    done: int

    @property
    def met(self) -> bool:
        return self.done >= self.requested

    def json(self) -> dict:
        return {"requested": self.requested, "done": self.done, "met": self.met}


@dataclass(frozen=True, slots=True)
class SocGoal:
    """The departure target: feasible or not from the start, and the SoC (fraction) the truck had at departure."""

    feasibility: DepartureFeasibility
    reached: float

    @property
    def required(self) -> float:
        """The level judged: the target, or the best reachable when the target was infeasible from the start."""
        f = self.feasibility
        return f.target_soc if f.feasible else min(f.target_soc, f.best_soc)

    @property
    def target_met(self) -> bool:
        return _at_least(self.reached, self.feasibility.target_soc)

    @property
    def met(self) -> bool:
        return _at_least(self.reached, self.required)

    def json(self) -> dict:
        f = self.feasibility
        out: dict[str, object] = {
            "target_soc": _pct(f.target_soc),
            "feasible": f.feasible,
            "needed_s": None if f.needed_s == float("inf") else round(f.needed_s, 1),
            "stay_s": round(f.stay_s, 1),
            "best_reachable_soc": _pct(f.best_soc),
            "required_soc": _pct(self.required),
            "reached_soc": _pct(self.reached),
            "met": self.target_met,
            "required_met": self.met,
        }
        if f.blocked:
            out["blocked"] = f.blocked
        return out


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    reasons: tuple[str, ...] = ()
    goals: dict = field(default_factory=dict)
    fault_kind: str | None = None

    @property
    def result(self) -> str:
        """The word a CI reads: `ok`, `target_missed`, `infeasible`, `aborted` or `fault:<kind>`."""
        return f"fault:{self.fault_kind}" if self.outcome is Outcome.FAULT else self.outcome.value

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS[self.outcome]

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.outcome]

    def because(self, said: str) -> str:
        """`; because ...` with the reasons other than `said` (already on the line), or "" when ok."""
        others = [why for why in self.reasons if why != said]
        return "" if self.outcome is Outcome.OK or not others else f"; because {'; '.join(others)}"

    def json(self) -> dict:
        """The keys a summary gains: result, reasons, goals, exit_status."""
        return {
            "result": self.result,
            "reasons": list(self.reasons),
            "goals": self.goals,
            "exit_status": self.exit_status,
        }


def judge(
    ending: Ending,
    faults: Sequence[Fault] = (),
    *,
    soc: SocGoal | None = None,
    loops: LoopGoal | None = None,
) -> Verdict:
    """The verdict on one session; every finding goes into the reasons, the most severe names the outcome."""
    findings: list[tuple[Outcome, str]] = [(Outcome.FAULT, fault.describe()) for fault in faults]
    if not ending.clean:
        findings.append((Outcome.ABORTED, ending.reason))
    goals: dict = {}
    if loops is not None:
        goals["charge_loops"] = loops.json()
        if not loops.met:
            findings.append((Outcome.TARGET_MISSED, f"{loops.done} of {loops.requested} charge loops"))
    if soc is not None:
        goals["departure_soc"] = soc.json()
        finding = _soc_finding(soc)
        if finding is not None:
            findings.append(finding)
    if not findings:
        return Verdict(Outcome.OK, (ending.reason,), goals)
    outcome = max((o for o, _ in findings), key=SEVERITY.__getitem__)
    kind = faults[0].kind if outcome is Outcome.FAULT else None
    ordered = sorted(findings, key=lambda f: -SEVERITY[f[0]])
    return Verdict(outcome, tuple(why for _, why in ordered), goals, kind)


def truck_faults(battery: TruckBattery) -> list[Fault]:
    """What the truck's BMS latched: its protection counters and a welded contactor its check suspected."""
    faults = [Fault("truck", name, f"{n} time(s)") for name, n in sorted(battery.faults.items())]
    if battery.contactors.weld_suspected:
        faults.append(Fault("truck", "contactor_welded", "suspected by the welding check"))
    return faults


def worst(verdicts: Iterable[Verdict]) -> Verdict | None:
    """The most severe of several sessions' verdicts (the first of equals), None for none."""
    return max(verdicts, key=lambda v: v.severity, default=None)


def _soc_finding(goal: SocGoal) -> tuple[Outcome, str] | None:
    f = goal.feasibility
    reached = f"reached {goal.reached * 100:.1f} %"
    if goal.target_met:
        return None
    if f.feasible:
        return Outcome.TARGET_MISSED, f"target SoC {f.target_soc * 100:.1f} % missed at departure: {reached}"
    if not goal.met:
        return Outcome.TARGET_MISSED, (
            f"target SoC {f.target_soc * 100:.1f} % was infeasible, and the best reachable "
            f"{f.best_soc * 100:.1f} % was missed too: {reached}"
        )
    return Outcome.INFEASIBLE, f"{f.describe()}; {reached}"


def _at_least(reached: float, level: float) -> bool:
    return reached * 100 >= level * 100 - SOC_TOLERANCE_PCT


def _pct(fraction: float) -> float:
    return round(fraction * 100, 2)
