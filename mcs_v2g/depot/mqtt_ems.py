"""The site EMS as its own process (`mcs-v2g ems --mqtt URL`): the time master of depot nodes over MQTT.

For each dispatch step of the scenario it waits until the nodes' `ready` messages cover every charger (and
their telemetry, the records of the step before and every announcement due have come), then feeds the `SiteEms`
exactly as a node's in-process EMS does (`LocalBackend`) and publishes each charger's setpoint stamped with the
step. The nodes' clocks are held until then (lockstep), so each charger sees the same setpoints at the same
simulated instant as in one process, and the report is the same. A node that asks again (its `ready` once more:
it missed the answer) gets the step's setpoints again; every record is taken once, whatever is sent twice.

A grid limit (operator, DSO) applies from the first dispatch at or after its `t_s`. At the horizon the EMS
collects the last records and every truck's visit outcome, says `done` and builds the depot report.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from evse_emulator.energy.ems.forecast import plan_with_forecast
from evse_emulator.energy.ems.site import Planner
from evse_emulator.energy.mqtt import MqttLink
from evse_emulator.energy.topics import (
    Announcement,
    GridLimit,
    OutletStep,
    Rejected,
    Setpoint,
    Telemetry,
    Topics,
    VisitOutcome,
    parse_grid_limit,
    parse_record,
)

from .report import DepotReport
from .run import LocalBackend, build_report, local_ems
from .scenario import DepotScenario

log = logging.getLogger("mcs_v2g.depot.ems")

DRAIN_S = 10.0


@dataclass
class EmsInbox:
    """What the nodes and the operator told the EMS, checked (a bad payload is logged and ignored)."""

    scenario: DepotScenario
    topics: Topics
    records: dict[tuple[str, int], OutletStep] = field(default_factory=dict)  # (charger, step index)
    telemetry: dict[tuple[str, int], Telemetry] = field(default_factory=dict)
    ready: dict[int, set[str]] = field(default_factory=dict)  # step index -> chargers
    asked: dict[int, set[str]] = field(default_factory=dict)  # step index -> nodes that sent `ready`
    announced: dict[str, Announcement] = field(default_factory=dict)
    outcomes: dict[str, VisitOutcome] = field(default_factory=dict)
    limits: list[GridLimit] = field(default_factory=list)
    again: list[tuple[str, int]] = field(default_factory=list)  # (node, step) asking a second time
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def k(self, t_s: float) -> int:
        return round(t_s / self.scenario.step_s)

    def __call__(self, topic: str, payload: bytes) -> None:
        t, parts = self.topics, topic.split("/")
        if topic == t.grid_limit:
            self._keep(parse_grid_limit(payload), topic, self.limits.append)
        elif len(parts) == 5 and parts[2] == "node" and parts[4] == "ready":
            self._ready(parts[3], payload)
        elif len(parts) == 5 and parts[2] == "charger" and parts[4] in ("telemetry", "step"):
            if parts[3] not in {c.id for c in self.scenario.chargers}:
                log.warning("%s ignored: no charger %s in the scenario", topic, parts[3])
            elif parts[4] == "telemetry":
                cid = parts[3]
                tel = parse_record(Telemetry, payload)
                self._keep(tel, topic, lambda x: self.telemetry.__setitem__((cid, self.k(x.t_s)), x))
            else:
                self._keep(parse_record(OutletStep, payload), topic, self._record)
        elif len(parts) == 5 and parts[2] == "truck" and parts[4] == "announce":
            self._keep(parse_record(Announcement, payload), topic, self._announce)
        elif len(parts) == 5 and parts[2] == "truck" and parts[4] == "outcome":
            self._keep(parse_record(VisitOutcome, payload), topic, lambda o: self.outcomes.__setitem__(o.truck, o))
        self.changed.set()

    @staticmethod
    def _keep(value: object, topic: str, use: Callable) -> None:
        if isinstance(value, Rejected):
            log.warning("%s ignored: %s", topic, value.reason)
        else:
            use(value)

    def _ready(self, node: str, payload: bytes) -> None:
        try:
            value = json.loads(payload)
            k, chargers = self.k(float(value["t_s"])), [str(c) for c in value["chargers"]]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            log.warning("ready of %s ignored: %s", node, exc)
            return
        if node in self.asked.get(k, set()):
            self.again.append((node, k))
        self.asked.setdefault(k, set()).add(node)
        self.ready.setdefault(k, set()).update(chargers)

    def _record(self, record: OutletStep) -> None:
        self.records[(record.charger, self.k(record.t_s))] = record

    def _announce(self, a: Announcement) -> None:
        why = _implausible(a, self.scenario)
        if why:
            log.warning("announcement of %s ignored: %s", a.truck, why)
        else:
            self.announced[a.truck] = a


def _implausible(a: Announcement, scenario: DepotScenario) -> str:
    """Why an announcement cannot be planned with (empty: it can)."""
    if a.charger not in {c.id for c in scenario.chargers}:
        return f"no charger {a.charger!r} in the depot"
    if a.battery_wh <= 0 or not a.arrival_s < a.departure_s:
        return "needs battery_wh > 0 and arrival_s < departure_s"
    if not all(0 <= x <= 1 for x in (a.soc, a.target_soc, a.min_soc)):
        return "SoCs are fractions 0..1"
    if min(a.max_charge_w, a.max_discharge_w, a.min_power_w, a.max_contactor_cycles) < 0:
        return "powers and the contactor budget are >= 0"
    return ""


@dataclass
class EmsServer:
    """The EMS over MQTT for one scenario (`serve_ems` runs it)."""

    scenario: DepotScenario
    url: str
    topics: Topics
    backend: LocalBackend
    node_timeout_s: float = 600.0  # wall seconds to wait for a step's nodes (or the outcomes) before giving up
    tell: Callable[[float, str], None] | None = None  # each EMS event (t_s, text) as it happens
    inbox: EmsInbox = field(init=False)
    answered: dict[int, dict[str, Setpoint]] = field(default_factory=dict)
    _fed: dict[str, Announcement] = field(default_factory=dict)
    _link: MqttLink | None = None

    def __post_init__(self) -> None:
        self.inbox = EmsInbox(self.scenario, self.topics)

    @property
    def chargers(self) -> list[str]:
        return [c.id for c in self.scenario.chargers]

    async def run(self) -> DepotReport:
        t = self.topics
        topics = [t.announce("+"), t.telemetry("+"), t.step("+"), t.outcome("+"), t.ready("+"), t.grid_limit]
        self._link = link = MqttLink(self.url, t, "ems", subscribe=topics)
        task = asyncio.ensure_future(link.run(self.inbox))
        wall = time.perf_counter()
        try:
            await self._connected(link)
            report = await self._serve(wall)
            link.publish(t.done, json.dumps({"t_s": self.scenario.horizon_s}).encode())
            try:
                async with asyncio.timeout(DRAIN_S):
                    while link.pending:
                        await asyncio.sleep(0.02)
            except TimeoutError:
                log.warning(
                    "the broker did not take `done` within %.0f s (the nodes stop waiting by themselves)", DRAIN_S
                )
            return report
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _serve(self, wall: float) -> DepotReport:
        s, box = self.scenario, self.inbox
        for k, t_s in enumerate(s.step_starts()):
            await self._until(partial(self._complete, k), f"the nodes' step at {t_s} s")
            self._apply_limits(t_s)
            due = self._due(t_s)
            records = [box.records[(c, k - 1)] for c in self.chargers] if k else []
            telemetry = {c: box.telemetry[(c, k)] for c in self.chargers}
            told = len(self.backend.ems.events)
            setpoints = await self.backend.step(t_s, due, records, telemetry)
            if self.tell is not None:
                for at, event in self.backend.ems.events[told:]:
                    self.tell(at, event)
            self.answered[k] = setpoints
            self._publish(setpoints)
        n = len(s.step_starts())
        await self._until(lambda: self._complete(n), "the nodes' last records")
        await self.backend.step(s.horizon_s, [], [box.records[(c, n - 1)] for c in self.chargers], {})
        await self._until(lambda: {tr.id for tr in s.trucks} <= set(box.outcomes), "the trucks' visit outcomes")
        steps = [[box.records[(c, k)] for c in self.chargers] for k in range(n)]
        return build_report(s, steps, list(box.outcomes.values()), time.perf_counter() - wall)

    def _complete(self, k: int) -> bool:
        """Whether everything of step k has come: every charger ready, its telemetry, the records of step k-1 and
        the scenario's announcements due."""
        box, t_s = self.inbox, k * self.scenario.step_s
        n = len(self.scenario.step_starts())
        return (
            set(self.chargers) <= box.ready.get(k, set())
            and (k == n or all((c, k) in box.telemetry for c in self.chargers))
            and (k == 0 or all((c, k - 1) in box.records for c in self.chargers))
            and all(tr.id in box.announced for tr in self.scenario.trucks if tr.announced_s <= t_s)
        )

    async def _connected(self, link: MqttLink) -> None:
        """Wait for the broker's connection (a timeout while it connects would leave its socket to the GC)."""
        try:
            async with asyncio.timeout(self.node_timeout_s):
                await link.connected.wait()
        except TimeoutError:
            raise TimeoutError(f"waited {self.node_timeout_s:g} s for the broker's connection") from None

    async def _until(self, done: Callable[[], bool], what: str) -> None:
        """Wait until `done()`; answer meanwhile a node that asks again for a step already dispatched."""
        box = self.inbox
        try:
            async with asyncio.timeout(self.node_timeout_s):
                while True:
                    self._answer_again()
                    if done():
                        return
                    box.changed.clear()
                    await box.changed.wait()
        except TimeoutError:
            raise TimeoutError(f"waited {self.node_timeout_s:g} s for {what}") from None

    def _answer_again(self) -> None:
        for _, k in self.inbox.again:
            if k in self.answered:
                self._publish(self.answered[k])
        self.inbox.again.clear()

    def _publish(self, setpoints: dict[str, Setpoint]) -> None:
        assert self._link is not None
        for cid, sp in setpoints.items():
            self._link.publish(self.topics.setpoint(cid), sp.payload())

    def _apply_limits(self, t_s: float) -> None:
        for limit in [g for g in self.inbox.limits if g.t_s <= t_s]:
            self.inbox.limits.remove(limit)
            self.backend.ems.set_grid_limit(t_s, limit.import_w, limit.export_w)
            log.info("grid limit at %.0f s: %.0f / %.0f kW", t_s, limit.import_w / 1000, limit.export_w / 1000)

    def _due(self, t_s: float) -> list[Announcement]:
        """The announcements to feed now: new or changed, due by `t_s`, in the order a node hands them over."""
        order = {tr.id: i for i, tr in enumerate(self.scenario.trucks)}
        due = [a for a in self.inbox.announced.values() if a.t_s <= t_s and self._fed.get(a.truck) != a]
        due.sort(key=lambda a: (a.t_s, order.get(a.truck, len(order))))
        for a in due:
            self._fed[a.truck] = a
        return due


async def serve_ems(
    scenario: DepotScenario,
    url: str,
    site: str = "depot",
    planner: Planner = plan_with_forecast,
    *,
    backend: LocalBackend | None = None,
    node_timeout_s: float = 600.0,
    tell: Callable[[float, str], None] | None = None,
) -> DepotReport:
    """Steer the depot nodes of `scenario` on the broker at `url` to the horizon; the depot report (`backend`:
    the EMS to use, default a fresh one with `planner`; `tell`: called with each EMS event as it happens)."""
    server = EmsServer(scenario, url, Topics(site), backend or local_ems(scenario, planner), node_timeout_s, tell)
    return await server.run()
