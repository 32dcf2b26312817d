"""Play a scenario: the emulated charger (SECC + mock plant) and truck (EVCC + battery) over loopback sockets."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ev_emulator.battery import TruckBattery
from ev_emulator.controller import TruckController
from ev_emulator.needs import ChargingNeeds
from evse_emulator.controller import PlantEvseController
from evse_emulator.energy.policy import ScriptedProfile
from evse_emulator.hal.mock import MockPlant, PlantConfig
from stack.session.actions import Close
from stack.session.controller import PowerLimits
from stack.session.evcc import EvccConfig, EvccSession
from stack.session.flow import message_name
from stack.session.secc import SeccConfig
from stack.session.services import SERVICE_NAMES, ControlMode, dc_offer
from stack.session.timers import EvccTimers, SeccTimers
from stack.transport.evcc_client import run_evcc
from stack.transport.secc_server import SeccServer

from .clock import SimClock
from .scenario import Scenario

CONTROL = {"dynamic": ControlMode.DYNAMIC, "scheduled": ControlMode.SCHEDULED}


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
    ev_events: list[tuple[float, str]] = field(default_factory=list)
    battery: TruckBattery | None = None
    plant: MockPlant | None = None

    def summary(self) -> dict:
        s = self.scenario
        peak_charge = max((x.power_kw for x in self.samples), default=0.0)
        peak_discharge = max((-x.power_kw for x in self.samples), default=0.0)
        meter = self.plant.hal().meter.read() if self.plant else None
        ok = self.ev_close is not None and self.ev_close.ok
        final_soc = self.battery.soc * 100 if self.battery else None
        at_departure = self.soc_at_departure if self.soc_at_departure is not None else final_soc
        return {
            "result": "ok" if ok else (self.ev_close.reason if self.ev_close else "did not finish"),
            "session_id": self.session_id,
            "service": s.service,
            "control_mode": s.control,
            "tls": self.tls,
            "energy_charged_kwh": round(meter.imported_wh / 1000, 3) if meter else 0.0,
            "energy_discharged_kwh": round(meter.exported_wh / 1000, 3) if meter else 0.0,
            "peak_charge_kw": round(max(peak_charge, 0.0), 1),
            "peak_discharge_kw": round(max(peak_discharge, 0.0), 1),
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
        }


class Progress:
    """One live line on stderr: phase, SoC, V, A, kW, energy in/out."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def show(self, text: str, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < (0.2 if self.tty else 2.0):
            return
        self._last = now
        sys.stderr.write(("\r" + text.ljust(110)) if self.tty else text + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")


async def simulate(
    scenario: Scenario,
    *,
    tls: bool = True,
    speed: float | None = None,
    progress: bool = False,
    ssl_contexts: Callable[[], tuple] | None = None,
) -> SimResult:
    """Run the whole session; never raises for a session that fails (the result says how it ended)."""
    logging.getLogger("mcs_v2g").setLevel(logging.WARNING)
    s = scenario
    result = SimResult(s, tls)
    battery = TruckBattery(soc=s.initial_soc)
    needs = ChargingNeeds(
        departure_time=s.start + s.departure_s,
        target_soc=s.target_soc,
        min_soc=min(s.min_soc, s.target_soc),
        offers_v2g=s.offers_v2g,
        v2g_reserve_soc=s.v2g_reserve_soc,
        max_contactor_cycles=s.max_contactor_cycles,
    )
    battery.contactors.start_session(needs.max_contactor_cycles)
    plant = MockPlant(
        battery,
        PlantConfig(rated_voltage_v=s.max_voltage, rated_current_a=s.max_current, rated_power_w=s.max_power),
    )
    if s.insulation_fault_ohm is not None:
        plant.inject_insulation_fault(s.insulation_fault_ohm)
    result.battery, result.plant = battery, plant
    sample_every = max(1.0, s.loop_interval)
    next_sample = [0.0]
    line = Progress(progress)
    phase = ["start"]

    def world(dt: float) -> None:
        plant.step(dt)
        t = clock.t + dt - s.start
        if t >= next_sample[0]:
            next_sample[0] = t + sample_every
            present = plant.power_stage.present()
            meter = plant.meter.read()
            sample = Sample(
                t, present.voltage_v, present.current_a, battery.soc * 100, meter.imported_wh, meter.exported_wh
            )
            result.samples.append(sample)
            line.show(
                f"{phase[0]:24s} t={t / 3600:5.2f} h  SoC {sample.soc:5.1f} %  {sample.voltage:6.1f} V "
                f"{sample.current:7.1f} A {sample.power_kw:7.1f} kW  in {meter.imported_wh / 1000:6.1f} kWh"
                f"  out {meter.exported_wh / 1000:6.1f} kWh"
            )
        if result.soc_at_departure is None and clock.t + dt >= needs.departure_time:
            result.soc_at_departure = battery.soc * 100

    clock = SimClock(s.start, world, speed=speed, max_dt=min(10.0, s.loop_interval))
    if s.ev_stops_answering_s is not None:
        clock.frozen_until = s.start + s.ev_stops_answering_s
    ratings = PowerLimits(
        max_charge_power=s.max_power,
        min_charge_power=0.0,
        max_charge_current=s.max_current,
        min_charge_current=0.0,
        max_voltage=s.max_voltage,
        min_voltage=200.0,
        max_discharge_power=s.max_power,
        min_discharge_power=0.0,
        max_discharge_current=s.max_current,
        min_discharge_current=0.0,
    )
    service = SERVICE_NAMES[s.service]
    mode = CONTROL[s.control]
    evse = PlantEvseController(plant.hal(), ratings, ScriptedProfile(s.steps))
    truck = TruckController(battery, needs, plant.inlet_voltage, service=service, control_mode=mode)
    secc_config = SeccConfig(offers=(dc_offer(service),), timers=SeccTimers(sequence=s.secc_sequence_timeout))
    server_ctx, client_ctx = ssl_contexts() if (tls and ssl_contexts) else (None, None)
    server = SeccServer(lambda: evse, secc_config, ssl_context=server_ctx, clock=clock.now, advance=clock.advance)
    evcc_config = EvccConfig(timers=EvccTimers(loop_interval=0.1, charge_loop_interval=s.loop_interval))
    wall = time.perf_counter()
    sessions: list[EvccSession] = []

    def count(direction: str, message: object) -> None:
        name = message_name(message)
        result.messages[name] += 1
        if direction == "<<" and name != phase[0]:
            phase[0] = name

    host, port = await server.start("127.0.0.1", 0)
    try:
        ev_task = asyncio.ensure_future(
            run_evcc(
                host,
                port,
                truck,
                evcc_config,
                ssl_context=client_ctx,
                clock=clock.now,
                pace=clock.pace,
                on_message=count,
            )
        )
        while not ev_task.done():
            await asyncio.wait([ev_task], timeout=0.05)
            if server.results and not ev_task.done():  # the charger ended the session; give the EV a moment
                await asyncio.wait([ev_task], timeout=1.0)
                ev_task.cancel()
        if ev_task.cancelled():
            result.ev_close = Close("the EV stopped answering")
        elif ev_task.exception() is not None:
            error = ev_task.exception()
            logging.getLogger("mcs_v2g.sim").error("the EV side failed", exc_info=error)
            result.ev_close = Close(f"the EV side failed: {type(error).__name__}: {error}")
        else:
            result.ev_close, session = ev_task.result()
            sessions.append(session)
        for _ in range(100):
            if server.results:
                break
            await asyncio.sleep(0.01)
    finally:
        await server.close()
    result.evse_close = server.results[0] if server.results else None
    if server.sessions:
        result.session_id = server.sessions[0].session_id.hex().upper()
    result.wall_s = time.perf_counter() - wall
    result.simulated_s = clock.elapsed
    result.faults = [f"{f.kind}: {f.detail}" for f in plant.hal().faults()]
    result.ev_events = truck.events
    line.show(f"{phase[0]:24s} done", force=True)
    line.done()
    return result
