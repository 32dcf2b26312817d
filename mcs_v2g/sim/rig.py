"""The charger's hardware in a simulation: the mock plant in process, or a CAN plant on a virtual bus that the
charger drives only through frames (`hal = "can:<family>"`).

Either way the physics is the same `MockPlant` with the truck's battery at the far end of the cable: with CAN,
the rack of emulated modules and the I/O board set it from what they are told on the bus.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ev_emulator.truck import Truck
from evse_emulator.charger import Charger
from evse_emulator.hal import PlantFault
from evse_emulator.hal.can.family import family
from evse_emulator.hal.can.plant import PER_MODULE, CanPlant, Fault
from evse_emulator.hal.can.port import open_bus
from evse_emulator.hal.mock import MockPlant
from stack.clock import Clock

from .reactions import FaultRecord, watch
from .scenario import Scenario

_channels = itertools.count(1)


@dataclass
class Rig:
    charger: Charger
    plant: MockPlant  # the physics: what the truck's inlet, the sampler and the summary read
    can_plant: CanPlant | None = None
    faults_to_inject: tuple[Fault, ...] = ()
    records: list[FaultRecord] = field(default_factory=list)  # what the output did after each injected fault
    watching: list[asyncio.Task[None]] = field(default_factory=list)  # the watchers still sampling

    def background(self) -> list[Coroutine[Any, Any, None]]:
        """The hardware's own work during the session (none for the mock: the session steps it)."""
        if self.can_plant is None:
            return []
        return [self.charger.run_hardware(), self.can_plant.run(), self._inject(self.can_plant)]

    async def _inject(self, can_plant: CanPlant) -> None:
        """Inject each fault at its time and watch what the output does after it."""
        clock, start = can_plant.clock, can_plant.started_s
        for fault in sorted(self.faults_to_inject, key=lambda f: f.at_s):
            await clock.sleep_until(start + fault.at_s)
            self.plant.sync()
            before = self.plant.terminal.current_a
            can_plant.inject(fault)
            name = f"{fault.name}:{fault.module}" if fault.name in PER_MODULE else fault.name
            self.watching.append(asyncio.ensure_future(self.watch(name, clock, start, before)))

    async def watch(self, name: str, clock: Clock, start: float, current_before_a: float | None = None) -> None:
        """Record what the output does from now on (after a fault named `name`)."""
        self.records.append(await watch(name, self.plant, clock, start, current_before_a))

    def faults(self) -> list[PlantFault]:
        """What the charger's devices latched, and what the physics tripped that they did not report."""
        found = list(self.charger.supervisor.faults())
        if self.can_plant is not None:
            kinds = {f.kind for f in found}
            found += [f for f in self.plant.hal().faults() if f.kind not in kinds]
        return sorted(found, key=lambda f: f.time_s)

    def events(self) -> list[tuple[float, str]]:
        """The hardware's events (modules found, dropped, tripped; faults injected), oldest first."""
        if self.can_plant is None:
            return []
        stack = getattr(self.charger.hal.power_stage, "events", [])
        plant = self.can_plant
        return sorted([(e.time_s, e.text) for e in stack] + plant.events + plant.rack.events)

    def close(self) -> None:
        for task in self.watching:
            task.cancel()
        if self.can_plant is not None:
            self.can_plant.close()


def build_rig(s: Scenario, clock: Clock, truck: Truck, can_log: Path | None = None) -> Rig:
    """The charger of scenario `s` on its hardware, the truck's battery behind the cable."""
    config = s.charger()
    if s.hal == "mock":
        charger = Charger.build(config, clock, vehicle=truck.battery)
        if charger.plant is None:
            raise RuntimeError("the mock HAL has no plant")
        return Rig(charger, charger.plant)
    module_family = family(s.hal.partition(":")[2])
    bus = f"virtual:mcs-sim-{next(_channels)}"
    settings: dict[str, Any] = {"bus": bus, "series": s.series}
    if can_log is not None:
        settings["can_log"] = can_log
    charger = Charger.build(replace(config, hal=s.hal, hal_settings=settings), clock)
    modules = s.rack_modules()
    faults = tuple(Fault.parse(text) for text in s.plant_faults)
    can_plant = CanPlant(
        module_family,
        open_bus(bus),
        clock,
        modules=modules,
        series=s.series,
        vehicle=truck.battery,
        settings=dict(config.hal_settings),
    )
    return Rig(charger, can_plant.physics, can_plant, faults)
