"""The charger's hardware abstraction: four Protocols bundled in `Hal`, a driver picked by a config string.

    hal = make_hal("mock", vehicle=truck_battery, clock=clock)  # physical model on the clock (or `plant.step(dt)`)
    hal = make_hal("can:infypower", bus="socketcan:can0", clock=clock)  # a rack of modules and our I/O board

Like python-can's `Bus(interface=...)`, drivers are looked up by name and imported only when asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from .interfaces import (
    Contactors,
    ContactorState,
    DcReading,
    EvReport,
    FaultKind,
    ImdStatus,
    IsolationMonitor,
    Meter,
    MeterSnapshot,
    PlantFault,
    PowerStage,
    StageCapability,
    VehicleTerminal,
    cable_check_test_voltage,
    emergency_over_voltage_limit,
    insulation_fault_threshold_ohm,
)

__all__ = [
    "ContactorState",
    "Contactors",
    "DcReading",
    "EvReport",
    "FaultKind",
    "Hal",
    "ImdStatus",
    "IsolationMonitor",
    "Meter",
    "MeterSnapshot",
    "PlantFault",
    "PowerStage",
    "SimulatedPlant",
    "StageCapability",
    "VehicleTerminal",
    "cable_check_test_voltage",
    "emergency_over_voltage_limit",
    "insulation_fault_threshold_ohm",
    "make_hal",
    "register_driver",
]


class SimulatedPlant(Protocol):
    """A model that runs on the clock; real hardware has none."""

    def step(self, dt: float) -> None: ...

    def sync(self) -> None:
        """Bring the model up to the clock's present time."""

    def ev_reported(self, report: EvReport) -> None:
        """What the EV said over -20 (used when the plant has no battery model of the truck)."""


@dataclass(frozen=True, slots=True)
class Hal:
    power_stage: PowerStage
    contactors: Contactors
    imd: IsolationMonitor
    meter: Meter
    plant: SimulatedPlant | None = None
    service: Callable[[], Coroutine[Any, Any, None]] | None = None  # the devices' background work (CAN: bus I/O)
    extra_faults: Callable[[], list[PlantFault]] | None = None  # faults of no single device (a silent board)
    listen: Callable[[Callable[[], None]], None] | None = None  # call back after every change the devices report

    def faults(self) -> list[PlantFault]:
        """The latched faults of every device, oldest first."""
        found = [d.fault() for d in (self.power_stage, self.contactors, self.imd)]
        found += self.extra_faults() if self.extra_faults is not None else []
        return sorted((f for f in found if f is not None), key=lambda f: f.time_s)


HalFactory = Callable[..., Hal]

# driver name -> factory, or "module:function" imported on first use
_DRIVERS: dict[str, HalFactory | str] = {
    "mock": "evse_emulator.hal.mock:make_mock_hal",
    "can": "evse_emulator.hal.can.driver:make_can_hal",
}


def register_driver(name: str, factory: HalFactory | str) -> None:
    """Add a driver; `name` is the part of the spec before ':' (`can` for `can:<family>`)."""
    _DRIVERS[name] = factory


def make_hal(spec: str, **kwargs: Any) -> Hal:
    """Build the HAL named by `spec` (`mock`, `can:<family>`); the text after ':' is passed as `family=`."""
    name, _, family = spec.partition(":")
    try:
        factory = _DRIVERS[name]
    except KeyError:
        raise ValueError(f"unknown HAL driver {spec!r}; known: {', '.join(sorted(_DRIVERS))}") from None
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
        _DRIVERS[name] = factory
    if family:
        kwargs["family"] = family
    return factory(**kwargs)
