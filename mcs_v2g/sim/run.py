"""Play a scenario: the emulated charger (`Charger`, mock plant) and truck (`Truck`, battery) on one virtual clock.

Both products run as they do on their own, joined by an in-memory link (real V2GTP, EXI and, by default,
TLS 1.3) and by the cable: the charger's plant carries the truck's battery as its vehicle, the truck reads its
inlet from that plant. Time is the `VirtualClock`'s: it jumps from event to event at `speed=None` and is paced
to N x real time at `speed=N`; a timer of either side (the charger's 60 s sequence timeout when the truck hangs)
costs no wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ev_emulator.battery import TruckBattery
from ev_emulator.needs import DepartureFeasibility, assess_departure
from ev_emulator.truck import Truck
from evse_emulator.charger import Charger
from evse_emulator.hal.mock import MockPlant
from stack.clock import VirtualClock
from stack.session.actions import Close
from stack.session.rulebook import message_name
from stack.session.units import fl
from stack.transport.drive import Observers
from stack.transport.evcc_client import run_evcc_on
from stack.transport.memory import MemoryLink, memory_link

from ..verdict import Ending, Fault, SocGoal, Verdict, judge, truck_faults
from .pnc import plug_and_charge
from .progress import Progress
from .reactions import WATCH_FOR_S, note_capability
from .rig import Rig, build_rig
from .scenario import Scenario

log = logging.getLogger("mcs_v2g.sim")


@dataclass(slots=True)
class Sample:
    t: float  # s since the start
    voltage: float  # V at the charger terminals
    current: float  # A, + into the truck
    soc: float  # %
    imported_wh: float
    exported_wh: float

    @property
    def power_kw(self) -> float:
        return self.voltage * self.current / 1000


@dataclass
class SimResult:
    scenario: Scenario
    tls: bool
    samples: list[Sample] = field(default_factory=list)
    messages: Counter = field(default_factory=Counter)
    ev_close: Close | None = None
    evse_close: Close | None = None
    session_id: str = ""
    soc_at_departure: float | None = None
    wall_s: float = 0.0
    simulated_s: float = 0.0
    faults: list[str] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)  # the hardware's (CAN: modules, board, faults)
    advertised: list[tuple[float, float]] = field(default_factory=list)  # (s, W): EVSE maximum charge power told
    departure: DepartureFeasibility | None = None  # the target's feasibility, judged when the session starts
    ev_events: list[tuple[float, str]] = field(default_factory=list)
    battery: TruckBattery | None = None
    plant: MockPlant | None = None
    charger: Charger | None = None
    truck: Truck | None = None
    rig: Rig | None = None
    auth: str | None = None  # how the session was authorized: eim | pnc (None: it was not)
    emaid: str | None = None
    contract_installed: bool = False

    def verdict(self) -> Verdict:
        """Did the session do what it was for: a clean end on both sides, no fault, the departure target met."""
        closes = [("EV", self.ev_close), ("charger", self.evse_close)]
        broken = [f"{side}: {c.reason}" if c else f"{side}: did not finish" for side, c in closes if not _clean(c)]
        ending = Ending(not broken, "; ".join(broken) or (self.ev_close.reason if self.ev_close else ""))
        goal = None
        if self.departure is not None and self.battery is not None:
            reached = self.battery.soc if self.soc_at_departure is None else self.soc_at_departure / 100
            goal = SocGoal(self.departure, reached)
        return judge(ending, self.device_faults(), soc=goal)

    def device_faults(self) -> list[Fault]:
        """What the charger's plant and the truck's BMS latched during the session."""
        found = self.rig.faults() if self.rig else self.plant.hal().faults() if self.plant else []
        faults = [Fault("charger", f.kind.value, f.detail) for f in found]
        return faults + (truck_faults(self.battery) if self.battery is not None else [])

    def summary(self) -> dict:
        s = self.scenario
        peak_charge = max((x.power_kw for x in self.samples), default=0.0)
        peak_discharge = max((-x.power_kw for x in self.samples), default=0.0)
        meter = self.plant.meter.read() if self.plant else None
        ok = self.ev_close is not None and self.ev_close.ok
        final_soc = self.battery.soc * 100 if self.battery else None
        at_departure = self.soc_at_departure if self.soc_at_departure is not None else final_soc
        verdict = self.verdict()
        return {
            "result": verdict.result,
            "session_id": self.session_id,
            "service": s.service,
            "control_mode": s.control,
            "tls": self.tls,
            "auth": self.auth,
            "emaid": self.emaid,
            "contract_installed": self.contract_installed,
            "energy_charged_kwh": round(meter.imported_wh / 1000, 3) if meter else 0.0,
            "energy_discharged_kwh": round(meter.exported_wh / 1000, 3) if meter else 0.0,
            "peak_charge_kw": round(max(peak_charge, 0.0), 1) + 0.0,  # + 0.0: never -0.0
            "peak_discharge_kw": round(max(peak_discharge, 0.0), 1) + 0.0,
            "max_current_a": round(max((abs(x.current) for x in self.samples), default=0.0), 1),
            "initial_soc": round(s.initial_soc * 100, 2),
            "final_soc": None if final_soc is None else round(final_soc, 2),
            "target_soc": round(s.target_soc * 100, 2),
            "soc_at_departure": None if at_departure is None else round(at_departure, 2),
            "departure_met": bool(ok and at_departure is not None and at_departure >= s.target_soc * 100 - 0.5),
            "messages": dict(sorted(self.messages.items())),
            "wall_s": round(self.wall_s, 3),
            "simulated_s": round(self.simulated_s, 1),
            "charger_close": self.evse_close.reason if self.evse_close else None,
            "faults": self.faults,
            "reasons": list(verdict.reasons),
            "goals": verdict.goals,
            "exit_status": verdict.exit_status,
            "hal": s.hal,
            "reactions": [r.json() for r in self.rig.records] if self.rig else [],
            "evse_max_charge_power_kw": [[round(t, 1), round(w / 1000, 1)] for t, w in self.advertised],
            "charger_reactions": [r.json(s.start) for r in self.charger.supervisor.reactions] if self.charger else [],
        }


def _clean(close: Close | None) -> bool:
    return close is not None and (close.ok or close.paused)


def departure_feasibility(scenario: Scenario) -> DepartureFeasibility | None:
    """The departure target of the scenario's truck at plug-in, at its BMS limits and the charger's ratings (the
    cable is the charger's: MCS rates them together)."""
    truck = Truck.build(scenario.truck(), VirtualClock(scenario.start))
    return _assess(truck, scenario)


def _assess(truck: Truck, s: Scenario) -> DepartureFeasibility | None:
    return assess_departure(
        truck.battery,
        truck.needs,
        truck.plugged_in,
        max_power=s.max_power,
        max_current=s.max_current,
        max_voltage=s.max_voltage,
    )


class PlantInlet:
    """The truck's inlet on the charger's simulated plant: the plant integrates the whole circuit (its vehicle is
    the truck's battery), so the truck only brings it up to the clock and reads it."""

    def __init__(self, plant: MockPlant) -> None:
        self.plant = plant

    def advance_to(self, now: float) -> None:
        self.plant.sync()

    def voltage(self) -> float:
        return self.plant.inlet_voltage()

    def evse_reported(self, now: float, voltage: float | None = None, current: float | None = None) -> None:
        self.plant.sync()


def simulate(
    scenario: Scenario,
    *,
    tls: bool = True,
    speed: float | None = None,
    progress: bool = False,
    ssl_contexts: Callable[[], tuple] | None = None,
    on_message: Callable[[str, object], None] | None = None,
    can_log: Path | None = None,
) -> SimResult:
    """Run the whole session on a fresh virtual clock; never raises for a session that fails (the result says
    how it ended). `on_message(direction, message)` sees every message as the truck does (">>" sent)."""
    clock = VirtualClock(scenario.start, speed)
    return clock.run(
        play(
            scenario,
            clock,
            tls=tls,
            progress=progress,
            ssl_contexts=ssl_contexts,
            on_message=on_message,
            can_log=can_log,
        )
    )


async def play(
    scenario: Scenario,
    clock: VirtualClock,
    *,
    tls: bool = True,
    progress: bool = False,
    ssl_contexts: Callable[[], tuple] | None = None,
    on_message: Callable[[str, object], None] | None = None,
    can_log: Path | None = None,
) -> SimResult:
    logging.getLogger("mcs_v2g").setLevel(logging.WARNING)
    s = scenario
    wall = time.perf_counter()
    truck = Truck.build(s.truck(), clock)
    rig = build_rig(s, clock, truck, can_log)
    charger, plant = rig.charger, rig.plant
    truck.plug_into(PlantInlet(plant))
    if s.insulation_fault_ohm is not None:
        plant.inject_insulation_fault(s.insulation_fault_ohm)
    result = SimResult(s, tls, battery=truck.battery, plant=plant, charger=charger, truck=truck, rig=rig)
    result.departure = _assess(truck, s)
    line = Progress(progress)
    phase = ["start"]

    def count(direction: str, message: object) -> None:
        name = message_name(message)
        result.messages[name] += 1
        if name == "DC_ChargeLoopRes":
            _note_advertised(result, clock.now() - s.start, message)
        if direction == "<<":
            phase[0] = name
        if on_message is not None:
            on_message(direction, message)

    hardware = [asyncio.ensure_future(work) for work in rig.background()]
    if not await charger.wait_ready():
        log.error("the charger's power stage did not become ready")
    server_tls, client_tls = ssl_contexts() if (tls and ssl_contexts) else (None, None)
    link = await memory_link(server_tls, client_tls)
    authorization = contextlib.ExitStack()
    authorization.enter_context(plug_and_charge(s, charger, truck, clock))
    server = charger.server()
    secc = asyncio.ensure_future(server.serve(*link.server))
    ev = asyncio.ensure_future(
        run_evcc_on(*link.client, truck.controller, truck.evcc_config, clock=clock, observers=Observers(message=count))
    )
    sampler = asyncio.ensure_future(_sample(result, plant, truck.battery, clock, line, phase))
    departure_time = truck.needs.departure_time
    if departure_time is None:  # Scenario.truck() always sets one
        raise RuntimeError("the sim's truck has no departure time")
    departure = clock.call_at(departure_time, lambda: _at_departure(result, plant, truck.battery))
    hangs = _inject_hangs(s, clock, link, secc, ev, rig)
    try:  # both sides always end by themselves: a hung peer is ended by the other side's timers
        await asyncio.gather(secc, ev, return_exceptions=True)
        await _settle([*hangs, *rig.watching])
    finally:
        for task in (sampler, *hangs, *hardware):
            task.cancel()
        departure.cancel()
        await server.close()
        await asyncio.gather(*hardware, return_exceptions=True)
        rig.close()
        authorization.close()
    result.evse_close = Close("the charger stopped answering") if link.server_frozen else secc.result()
    result.ev_close = _ev_close(ev, link.client_frozen)
    if server.sessions:
        result.session_id = server.sessions[0].session_id.hex().upper()
        result.emaid = server.sessions[0].ctx.emaid
        authorized = server.sessions[0].state.authorization
        result.auth = None if authorized is None else authorized.value.lower()
    if ev.done() and not ev.cancelled() and ev.exception() is None:
        result.contract_installed = ev.result()[1].ctx.contract_installed
    plant.sync()
    _record(result, plant, truck.battery, line, phase)
    result.wall_s = time.perf_counter() - wall
    result.simulated_s = clock.elapsed
    result.faults = [f"{f.kind}: {f.detail}" for f in rig.faults()]
    result.events = rig.events()
    for record in rig.records:
        if record.name.startswith("module_loss"):
            note_capability(record, result.events, result.advertised, s.start)
    result.ev_events = truck.controller.events
    line.show(f"{phase[0]:24s} done", force=True)
    line.done()
    return result


def _note_advertised(result: SimResult, t: float, res: object) -> None:
    """The EVSE maximum charge power the truck was told, when it changed (a rack that lost a module tells less)."""
    mode = getattr(res, "cl_res_control_mode", None)
    maximum = getattr(mode, "evse_maximum_charge_power", None)
    if maximum is None:
        return
    watts = fl(maximum)
    if not result.advertised or result.advertised[-1][1] != watts:
        result.advertised.append((t, watts))


async def _settle(watchers: list[asyncio.Task]) -> None:
    """Let the fault watchers finish (they end once the output is safe, or after `WATCH_FOR_S`)."""
    if watchers:
        await asyncio.wait(watchers, timeout=WATCH_FOR_S)


def _ev_close(ev: asyncio.Future, frozen: bool) -> Close:
    if frozen:
        return Close("the EV stopped answering")
    error = ev.exception()
    if error is not None:
        log.error("the EV side failed", exc_info=error)
        return Close(f"the EV side failed: {type(error).__name__}: {error}")
    close, _ = ev.result()
    return close


def _inject_hangs(
    s: Scenario, clock: VirtualClock, link: MemoryLink, secc: asyncio.Future, ev: asyncio.Future, rig: Rig
) -> list[asyncio.Task]:
    """Faults of the scenario that make one side hang at a given time, as a crashed controller would: its
    software stops (no answer, no timer, no close) while its hardware stays as it was. The truck's silence is
    watched: how long until the charger made the output safe."""

    async def at(delay: float, freeze: Callable[[], None], side: asyncio.Future, watched: str | None = None) -> None:
        await clock.sleep_until(s.start + delay)
        freeze()
        side.cancel()
        if watched is not None:
            await rig.watch(watched, clock, s.start)

    tasks = []
    if s.ev_stops_answering_s is not None:
        tasks.append(asyncio.ensure_future(at(s.ev_stops_answering_s, link.freeze_client, ev, "ev_silence")))
    if s.charger_stops_answering_s is not None:
        tasks.append(asyncio.ensure_future(at(s.charger_stops_answering_s, link.freeze_server, secc)))
    return tasks


def _at_departure(result: SimResult, plant: MockPlant, battery: TruckBattery) -> None:
    plant.sync()
    result.soc_at_departure = battery.soc * 100


async def _sample(
    result: SimResult, plant: MockPlant, battery: TruckBattery, clock: VirtualClock, line: Progress, phase: list[str]
) -> None:
    """Sample the plant once per sample interval (plot, progress) where it stands: the charger and the truck
    bring it up to the clock at every message; forcing it here would only split its steps."""
    every = max(1.0, result.scenario.loop_interval)
    while True:
        if not result.samples or plant.terminal.time_s > result.samples[-1].t + result.scenario.start:
            _record(result, plant, battery, line, phase)
        await clock.sleep_until(clock.now() + every)


def _record(result: SimResult, plant: MockPlant, battery: TruckBattery, line: Progress, phase: list[str]) -> None:
    at, present, meter = plant.snapshot()
    t = at - result.scenario.start
    sample = Sample(t, present.voltage_v, present.current_a, battery.soc * 100, meter.imported_wh, meter.exported_wh)
    result.samples.append(sample)
    line.show(
        f"{phase[0]:24s} t={t / 3600:5.2f} h  SoC {sample.soc:5.1f} %  {sample.voltage:6.1f} V "
        f"{sample.current:7.1f} A {sample.power_kw:7.1f} kW  in {meter.imported_wh / 1000:6.1f} kWh"
        f"  out {meter.exported_wh / 1000:6.1f} kWh"
    )
