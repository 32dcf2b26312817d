"""A depot node over MQTT: its chargers' telemetry, step records and visit outcomes go to the broker, their
setpoints come from it (the contract: `evse_emulator.energy.topics`).

Three ways a node runs (`mcs-v2g depot --mqtt URL`):

* lockstep (`--chargers` a subset, the EMS is `mcs-v2g ems`): the EMS is the time master. At each dispatch step
  the node publishes the due announcements, its chargers' records of the step that ended and their telemetry,
  then `ready`; its virtual clock is held until a setpoint stamped with this step has come for each of its
  chargers. What it publishes is published again every `RETRY_S` of wall time while it waits (a broker restart
  loses nothing: the EMS takes each record once). No answer within `setpoint_timeout_s`: the node says so once
  and goes on without waiting, its chargers' watchdogs fall back to the safe share.
* external (`--ems external`): another EMS drives the chargers; the node runs at its own pace, publishes, and
  applies each setpoint as it comes.
* mirror (the whole depot, the EMS in process): the node publishes everything (dashboards) and takes grid-limit
  changes from the broker.

The MQTT link runs on a real-time loop in its own thread: the simulation's virtual clock never governs the
network's timers (keep-alive, reconnect back-off), and a held clock still hears the broker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import aiomqtt

from evse_emulator.energy.ems.site import VALID_STEPS
from evse_emulator.energy.mqtt import BrokerAddress, MqttLink, redacted
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
    parse_setpoint,
)
from stack.clock import VirtualClock

from .run import START, DepotRun, LocalBackend, Progress, play_depot
from .scenario import DepotScenario

log = logging.getLogger("mcs_v2g.depot.mqtt")

RETRY_S = 2.0  # wall seconds between publishing a step again while its setpoints are awaited
DRAIN_S = 10.0  # wall seconds a node waits at the end for the broker to take what it still has to send
CONNECT_S = 5.0


def probe(url: str, timeout_s: float = CONNECT_S) -> None:
    """Connect to the broker once and leave (a ConnectionError naming it when it cannot be reached)."""
    address = BrokerAddress.parse(url)

    async def connect() -> None:
        async with asyncio.timeout(timeout_s):
            async with address.client(identifier=""):
                pass

    try:
        asyncio.run(connect())
    except aiomqtt.MqttCodeError as exc:  # it answered: with a refusal (a bad login, a banned client id)
        raise ConnectionError(f"the MQTT broker at {redacted(url)} refused the connection: {exc}") from None
    except (aiomqtt.MqttError, OSError) as exc:  # TimeoutError is an OSError
        why = f"no answer within {timeout_s:g} s" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
        raise ConnectionError(f"cannot reach the MQTT broker at {redacted(url)}: {why}") from None


class LinkThread:
    """An `MqttLink` on a real-time loop in a daemon thread; messages reach `on_message` on the caller's loop."""

    def __init__(self, url: str, topics: Topics, node: str, subscribe: Iterable[str]) -> None:
        self._args = (url, topics, node, list(subscribe))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._link: MqttLink | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, on_message: Callable[[str, bytes], None]) -> None:
        target = asyncio.get_running_loop()

        def deliver(topic: str, payload: bytes) -> None:
            target.call_soon_threadsafe(on_message, topic, payload)

        self._thread = threading.Thread(target=asyncio.run, args=(self._main(deliver),), daemon=True)
        self._thread.start()
        self._started.wait()

    async def _main(self, deliver: Callable[[str, bytes], None]) -> None:
        url, topics, node, subscribe = self._args
        self._loop = asyncio.get_running_loop()
        self._link = MqttLink(url, topics, node, subscribe=subscribe)
        self._stop = asyncio.Event()
        task = asyncio.ensure_future(self._link.run(deliver))
        self._started.set()
        await self._stop.wait()
        try:  # what is still queued goes out first (bounded: a broker gone for good does not hold the node)
            async with asyncio.timeout(DRAIN_S):
                while self._link.pending:
                    await asyncio.sleep(0.02)
        except TimeoutError:
            log.warning("MQTT: %d messages not delivered (the broker is away)", self._link.pending)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    def publish(self, topic: str, payload: bytes) -> None:
        assert self._loop is not None and self._link is not None
        self._loop.call_soon_threadsafe(self._link.publish, topic, payload)

    def close(self) -> None:
        """Send what is queued (at most `DRAIN_S`), disconnect, end the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(DRAIN_S + 5.0)


@dataclass
class MqttBackend:
    """A depot node's `SiteBackend` over MQTT (see the module docstring for `lockstep`, `external`, mirror)."""

    scenario: DepotScenario
    topics: Topics
    chargers: tuple[str, ...]
    clock: VirtualClock
    local: LocalBackend | None = None  # mirror: the EMS in this process
    lockstep: bool = True
    setpoint_timeout_s: float = 30.0
    telemetry_every_s: float | None = None  # sim s between extra telemetry messages (None: at dispatch steps)
    link: LinkThread | None = None
    run: DepotRun | None = None
    lost: bool = False  # lockstep: the EMS stopped answering; the node goes on without waiting
    _answers: dict[str, Setpoint] = field(default_factory=dict)
    _waiting: float | None = None
    _sent: list[tuple[str, bytes]] = field(default_factory=list)
    _limits: list[GridLimit] = field(default_factory=list)
    _fallbacks: dict[str, int] = field(default_factory=dict)
    _done: bool = False
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _ticker: asyncio.Task[None] | None = None

    @property
    def node(self) -> str:
        return "node-" + "-".join(self.chargers)

    def connect(self, url: str) -> None:
        """Start the link (on the running loop: the node's)."""
        t = self.topics
        if self.local is not None:
            subscribe = [t.grid_limit]
        else:
            subscribe = [t.setpoint(c) for c in self.chargers] + ([t.done] if self.lockstep else [])
        self._wake = asyncio.Event()
        self.link = LinkThread(url, t, self.node, subscribe)
        self.link.start(self.receive)

    def attach(self, run: DepotRun) -> None:
        """The run's chargers exist (`play_depot`'s `built`): setpoints can be applied as they come."""
        self.run = run
        if self.telemetry_every_s:
            self._ticker = asyncio.ensure_future(self._tick(self.telemetry_every_s))

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self.link is not None:
            self.link.close()

    # -- what comes in ---------------------------------------------------------------------------------------
    def receive(self, topic: str, payload: bytes) -> None:
        t = self.topics
        if topic == t.done:
            self._done = True
        elif topic == t.grid_limit:
            limit = parse_grid_limit(payload)
            if isinstance(limit, Rejected):
                log.warning("%s ignored: %s", topic, limit.reason)
            else:
                self._limits.append(limit)
        else:
            cid = t.charger_of(topic)
            if cid in self.chargers and topic == t.setpoint(cid):
                self._setpoint(cid, topic, payload)
        self._wake.set()

    def _setpoint(self, cid: str, topic: str, payload: bytes) -> None:
        spec = self.scenario.charger(cid)
        discharge = spec.max_power_w if spec.bidirectional else 0.0
        sp = parse_setpoint(payload, spec.max_power_w, discharge, VALID_STEPS * self.scenario.step_s)
        if isinstance(sp, Rejected):
            log.warning("%s ignored: %s", topic, sp.reason)
            return
        if sp.clamped:
            log.warning("%s: %s", topic, sp.clamped)
        if self.lockstep:
            if sp.t_s == self._waiting:
                self._answers[cid] = sp
        elif self.run is not None:
            self.run.outlets[cid].apply(sp, self.clock.now())

    # -- the backend -----------------------------------------------------------------------------------------
    async def step(
        self, t_s: float, announced: list[Announcement], records: list[OutletStep], telemetry: dict[str, Telemetry]
    ) -> dict[str, Setpoint]:
        self._say_fallbacks()
        messages = [(self.topics.announce(a.truck), a.payload()) for a in announced]
        messages += [(self.topics.step(r.charger), r.payload()) for r in records]
        messages += [(self.topics.telemetry(cid), tel.payload()) for cid, tel in telemetry.items()]
        ready = {"t_s": t_s, "chargers": list(self.chargers)}
        messages.append((self.topics.ready(self.node), json.dumps(ready).encode()))
        self._sent = messages
        self._send(messages)
        if self.local is not None:
            return await self._mirror(t_s, announced, records, telemetry)
        if not telemetry or not self.lockstep or self.lost:
            return {}
        return await self._answers_for(t_s)

    async def _mirror(
        self, t_s: float, announced: list[Announcement], records: list[OutletStep], telemetry: dict[str, Telemetry]
    ) -> dict[str, Setpoint]:
        assert self.local is not None
        for limit in [g for g in self._limits if g.t_s <= t_s]:
            self._limits.remove(limit)
            if telemetry:
                self.local.ems.set_grid_limit(t_s, limit.import_w, limit.export_w)
        setpoints = await self.local.step(t_s, announced, records, telemetry)
        self._send((self.topics.setpoint(cid), sp.payload()) for cid, sp in setpoints.items())
        return setpoints

    async def _answers_for(self, t_s: float) -> dict[str, Setpoint]:
        """The setpoints of step `t_s` for every charger of this node (lockstep), or {} after the timeout."""
        self._waiting, self._answers = t_s, {}
        deadline = time.monotonic() + self.setpoint_timeout_s
        retry = time.monotonic() + RETRY_S
        try:
            while set(self._answers) != set(self.chargers):
                now = time.monotonic()
                if now >= deadline:
                    self.lost = True
                    log.warning(
                        "no setpoints from the EMS within %.1f s at t = %.0f s: safe share; this node goes on "
                        "without waiting",
                        self.setpoint_timeout_s,
                        t_s,
                    )
                    return {}
                if now >= retry:
                    self._send(self._sent)
                    retry = now + RETRY_S
                await self._sleep_wall(min(deadline, retry) - now)
            return dict(self._answers)
        finally:
            self._waiting = None

    async def finish(self, outcomes: list[VisitOutcome]) -> None:
        """After the trucks left: every visit outcome of this node's trucks; in lockstep, until the EMS confirms it
        has everything (the last step's records and the outcomes are sent again meanwhile)."""
        messages = [(self.topics.outcome(o.truck), o.payload()) for o in outcomes]
        self._send(messages)
        if not self.lockstep or self.local is not None or self.lost:
            return
        self.clock.hold(self.clock.now())  # nothing simulated is left: only the broker's messages matter now
        deadline = time.monotonic() + self.setpoint_timeout_s
        while not self._done:
            now = time.monotonic()
            if now >= deadline:
                log.warning("the EMS did not confirm the report data within %.1f s", self.setpoint_timeout_s)
                return
            await self._sleep_wall(min(RETRY_S, deadline - now))
            if not self._done:
                self._send(self._sent + messages)

    # -- helpers ---------------------------------------------------------------------------------------------
    def _send(self, messages: Iterable[tuple[str, bytes]]) -> None:
        assert self.link is not None
        for topic, payload in messages:
            self.link.publish(topic, payload)

    async def _sleep_wall(self, seconds: float) -> None:
        """Until a message comes or `seconds` of wall time pass (a held virtual clock has no timers to offer)."""
        loop = asyncio.get_running_loop()
        self._wake.clear()
        timer = threading.Timer(max(seconds, 0.0), loop.call_soon_threadsafe, args=(self._wake.set,))
        timer.daemon = True
        timer.start()
        try:
            await self._wake.wait()
        finally:
            timer.cancel()

    def _say_fallbacks(self) -> None:
        """Say when a charger's watchdog has fallen back to the safe share (its setpoints stopped)."""
        if self.run is None:
            return
        now = self.clock.now()
        for cid, outlet in self.run.outlets.items():
            watchdog = outlet.policy.watchdog
            watchdog.current(now)
            if watchdog.fallbacks > self._fallbacks.get(cid, 0):
                log.warning("%s: setpoints stopped, safe share %.0f kW", cid, watchdog.safe_w / 1000)
            self._fallbacks[cid] = watchdog.fallbacks

    async def _tick(self, every_s: float) -> None:
        """Telemetry between dispatch steps, every `every_s` simulated seconds (dashboards, an external EMS)."""
        assert self.run is not None
        while True:
            await asyncio.sleep(every_s)
            now = self.clock.now()
            for cid, outlet in self.run.outlets.items():
                self._send([(self.topics.telemetry(cid), outlet.telemetry(now - START, now).payload())])


async def play_node(
    scenario: DepotScenario,
    clock: VirtualClock,
    url: str,
    backend: MqttBackend,
    progress: Progress | None = None,
    control: str = "dynamic",
) -> DepotRun:
    """Play this node's chargers and trucks with `backend` on the broker at `url`; the outcomes at the end."""
    backend.connect(url)
    try:
        run = await play_depot(
            scenario,
            clock,
            backend,
            chargers=backend.chargers,
            progress=progress,
            held=backend.lockstep and backend.local is None,
            built=backend.attach,
            control=control,
        )
        await backend.finish(run.outcomes())
    finally:
        backend.close()
    return run
