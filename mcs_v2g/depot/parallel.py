"""Play a depot on several cores: the chargers (and their trucks) split over worker processes, the site EMS here.

Each worker plays its chargers with `play_depot` on its own virtual clock; at every dispatch step it hands what
happened (announcements due, the step's records, its chargers' telemetry) over a pipe and waits for the setpoints,
as a node waits for the in-process EMS: nothing of the node runs meanwhile, so each charger sees the same setpoints
at the same simulated instant as in one process. This process merges the workers' steps in the scenario's order
(chargers, then trucks), asks the EMS and answers every worker: the report is the one-process report (a test
compares them). The lockstep is the price: the EMS's time adds to the slowest worker's at every step.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from evse_emulator.energy.ems.forecast import plan_with_forecast
from evse_emulator.energy.ems.site import Planner, SiteEms
from evse_emulator.energy.topics import Announcement, OutletStep, Setpoint, Telemetry, VisitOutcome
from stack.clock import VirtualClock

from .report import DepotReport
from .run import START, DispatchView, LocalBackend, Progress, build_report, local_ems, play_depot
from .scenario import DepotScenario

_Step = tuple[float, list[Announcement], list[OutletStep], dict[str, Telemetry]]


class WorkerFailed(RuntimeError):
    """A worker process failed or died: the depot run cannot go on."""


@dataclass
class PipeBackend:
    """The site EMS in the parent process, over a pipe; a step's call returns once its setpoints are back."""

    conn: Connection

    async def step(
        self, t_s: float, announced: list[Announcement], records: list[OutletStep], telemetry: dict[str, Telemetry]
    ) -> dict[str, Setpoint]:
        self.conn.send((t_s, announced, records, telemetry))
        answer: dict[str, Setpoint] = self.conn.recv()
        return answer


def _work(conn: Connection, scenario: DepotScenario, chargers: tuple[str, ...], control: str) -> None:
    """A worker process: its chargers to the horizon, then its records and its trucks' outcomes. A parent that has
    gone (its end of the pipe closed) ends the worker quietly."""
    try:
        clock = VirtualClock(START, None)
        run = clock.run(play_depot(scenario, clock, PipeBackend(conn), chargers=chargers, control=control))
        message: tuple[object, ...] = ("done", run.records, run.outcomes())
    except (EOFError, OSError):  # the parent stopped the run
        message = ()
    except Exception as exc:  # said to the parent, which stops the run with it
        message = ("failed", f"{type(exc).__name__}: {exc}")
    try:
        if message:
            conn.send(message)
    except OSError:
        pass  # the parent has gone: nobody to tell
    finally:
        conn.close()


def split_chargers(scenario: DepotScenario, workers: int) -> list[tuple[str, ...]]:
    """The chargers in `workers` groups of about equal work (plugged-in truck time: charge loops), largest first."""
    load = {c.id: 0.0 for c in scenario.chargers}
    for t in scenario.trucks:
        load[t.charger] += t.departure_s - t.arrival_s
    groups: list[list[str]] = [[] for _ in range(max(1, min(workers, len(load))))]
    totals = [0.0] * len(groups)
    for cid in sorted(load, key=lambda c: -load[c]):
        i = totals.index(min(totals))
        groups[i].append(cid)
        totals[i] += load[cid]
    order = {c.id: i for i, c in enumerate(scenario.chargers)}
    return [tuple(sorted(g, key=order.__getitem__)) for g in groups]


@dataclass
class ParallelRun:
    """A depot played over worker processes (the same questions answered as `DepotRun`)."""

    scenario: DepotScenario
    backend: LocalBackend
    records: list[list[OutletStep]] = field(default_factory=list)
    visit_outcomes: list[VisitOutcome] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def ems(self) -> SiteEms:
        return self.backend.ems

    def outcomes(self) -> list[VisitOutcome]:
        return self.visit_outcomes

    def report(self) -> DepotReport:
        return build_report(self.scenario, self.records, self.visit_outcomes, self.wall_s)


def run_parallel(
    scenario: DepotScenario,
    workers: int,
    *,
    planner: Planner = plan_with_forecast,
    progress: Progress | None = None,
    guard: bool = True,
    control: str = "dynamic",
    fcr_strict: bool = False,
) -> ParallelRun:
    """Play the scenario with its chargers over `workers` processes and the EMS in this one (as fast as it
    computes); raises `WorkerFailed` when a worker fails."""
    wall = time.perf_counter()
    run = ParallelRun(scenario, local_ems(scenario, planner, guard, control, fcr_strict))
    # fork: a worker starts from this process's memory at once (the scenario, the imported stack)
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context: Any = multiprocessing.get_context(method)
    pipes: list[Connection] = []
    processes = []
    try:
        for chargers in split_chargers(scenario, workers):
            mine, theirs = context.Pipe()
            process = context.Process(target=_work, args=(theirs, scenario, chargers, control), daemon=True)
            process.start()
            theirs.close()
            pipes.append(mine)
            processes.append(process)
        _lockstep(run, pipes, progress)
        ends = [_receive(conn) for conn in pipes]
        run.visit_outcomes = [o for _, _, outcomes in ends for o in outcomes]
        run.records = _merge_records(scenario, [records for _, records, _ in ends])
    finally:
        for conn in pipes:  # a worker still waiting for setpoints (the run failed here) sees the pipe end
            conn.close()
        for process in processes:
            process.join(timeout=5.0)
            if process.is_alive():
                process.kill()
    run.wall_s = time.perf_counter() - wall
    return run


def _lockstep(run: ParallelRun, pipes: list[Connection], progress: Progress | None) -> None:
    """Every dispatch step (and the horizon's last records): the workers' steps merged, the EMS's answer to all."""
    s = run.scenario
    chargers = {c.id: i for i, c in enumerate(s.chargers)}
    trucks = {t.id: i for i, t in enumerate(s.trucks)}
    for _ in range(len(s.step_starts()) + 1):
        steps: list[_Step] = [_receive(conn) for conn in pipes]
        t_s = steps[0][0]
        if any(step[0] != t_s for step in steps):
            raise WorkerFailed(f"the depot workers are out of step: {sorted({step[0] for step in steps})}")
        due = sorted((a for step in steps for a in step[1]), key=lambda a: (a.t_s, trucks.get(a.truck, len(trucks))))
        records = sorted((r for step in steps for r in step[2]), key=lambda r: chargers[r.charger])
        telemetry = dict(sorted(((c, x) for step in steps for c, x in step[3].items()), key=lambda i: chargers[i[0]]))
        setpoints = run.backend.answer(t_s, due, records, telemetry)
        for conn in pipes:
            conn.send(setpoints)
        if progress is not None and telemetry:
            told = {cid: sp.power_w for cid, sp in setpoints.items()}
            progress(DispatchView(t_s, run.ems.events, telemetry, told))


def _receive(conn: Connection) -> Any:
    """A worker's next message; its failure (said or a dead pipe) as `WorkerFailed`."""
    try:
        message = conn.recv()
    except (EOFError, OSError) as exc:
        raise WorkerFailed(f"a depot worker process died: {type(exc).__name__}") from None
    if isinstance(message, tuple) and message and message[0] == "failed":
        raise WorkerFailed(f"a depot worker failed: {message[1]}")
    return message


def _merge_records(scenario: DepotScenario, per_worker: Sequence[list[list[OutletStep]]]) -> list[list[OutletStep]]:
    """Each step's records of every charger, in the scenario's charger order (as one process has them)."""
    order = {c.id: i for i, c in enumerate(scenario.chargers)}
    steps = len(per_worker[0]) if per_worker else 0
    return [sorted((r for w in per_worker for r in w[k]), key=lambda r: order[r.charger]) for k in range(steps)]
