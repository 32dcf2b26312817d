"""What the CAN drivers and the emulated modules exchange, whatever the family: ratings, commands, reports.

Units are SI floats. A module's current is signed from the vehicle's point of view, as in the HAL: > 0 flows
into the EV (the module exports to the DC side), < 0 flows back (a bidirectional module in inverter mode).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Direction(StrEnum):
    EXPORT = "export"  # rectifier: AC grid -> DC output (charging the EV)
    IMPORT = "import"  # inverter: DC output -> AC grid (discharging the EV)


@dataclass(frozen=True, slots=True)
class ModuleRating:
    """What one module can do (a family's capability frame, or its documented default)."""

    max_voltage_v: float
    min_voltage_v: float
    max_current_a: float
    rated_power_w: float
    bidirectional: bool = False

    def current_at(self, voltage_v: float) -> float:
        """The most current the module gives at `voltage_v` (constant current, then constant power)."""
        if voltage_v <= 0:
            return self.max_current_a
        return min(self.max_current_a, self.rated_power_w / voltage_v)


@dataclass(frozen=True, slots=True)
class ModuleStatus:
    """A module's status word, decoded: what the driver acts on."""

    off: bool = True  # DC side off
    fault: str | None = None  # the protection or alarm that latched, in words ("output over-voltage")
    derated: bool = False  # power limit or temperature derating active
    inverter: bool = False  # importing (bidirectional families)
    temperature_c: float | None = None


@dataclass(frozen=True, slots=True)
class ModuleReport:
    """What the driver learned from one frame of module `address` (None: the frame did not say)."""

    address: int
    rating: ModuleRating | None = None
    voltage_v: float | None = None
    current_a: float | None = None  # signed, > 0 into the EV
    status: ModuleStatus | None = None
    module_count: int | None = None  # a group's answer to the discovery query
    serial: str | None = None
    refused: str | None = None  # the module answered with an error code: why
    acknowledged: str | None = None  # the module confirmed a setting (its register or command name)


@dataclass(frozen=True, slots=True)
class ModuleCommand:
    """One module's setpoints: the stack sends each module its share."""

    on: bool
    voltage_v: float  # export: the output voltage ceiling; import: the floor it discharges down to
    current_a: float  # magnitude of this module's current
    direction: Direction = Direction.EXPORT


@dataclass(slots=True)
class EmulatedModule:
    """One power module as the plant emulates it: its settings (written over CAN), its output, its faults.

    The family's module codec applies commands through the `set_*` methods, which refuse what the real module
    refuses (an out-of-range value leaves the setting as it was and returns the reason).
    """

    address: int
    rating: ModuleRating
    group: int = 0
    serial: str = ""
    on: bool = False
    voltage_v: float = 0.0  # setpoint
    current_a: float = 0.0  # setpoint, magnitude
    direction: Direction = Direction.EXPORT
    output_v: float = 0.0  # measured at its output
    output_a: float = 0.0  # its share of the measured current, signed
    temperature_c: float = 35.0
    derate: float = 1.0  # fraction of the rated power it can give (temperature, injected)
    fault: str | None = None  # latched protection; the module is off until reset
    alive: bool = True  # False: lost (no power, no answer)
    last_heard_s: float = 0.0  # when the controller last addressed it
    settings: dict[str, float] = field(default_factory=dict)  # other registers written (walk-in, altitude...)

    def set_voltage(self, voltage_v: float) -> str | None:
        if not 0.0 <= voltage_v <= self.rating.max_voltage_v:
            return f"voltage {voltage_v:.1f} V outside 0..{self.rating.max_voltage_v:.0f} V"
        self.voltage_v = voltage_v
        return None

    def set_current(self, current_a: float) -> str | None:
        if not 0.0 <= current_a <= self.rating.max_current_a:
            return f"current {current_a:.2f} A outside 0..{self.rating.max_current_a:.1f} A"
        self.current_a = current_a
        return None

    def switch(self, on: bool) -> str | None:
        if on and self.fault is not None:
            return f"latched fault: {self.fault}"
        self.on = on
        return None

    def set_direction(self, direction: Direction) -> str | None:
        if direction is Direction.IMPORT and not self.rating.bidirectional:
            return "not bidirectional"
        if self.on and direction is not self.direction:
            return "direction changes only while off"
        self.direction = direction
        return None

    def reset(self) -> None:
        """Clear a latched protection (the family's reset command)."""
        self.fault = None

    def status(self) -> ModuleStatus:
        return ModuleStatus(
            off=not self.on,
            fault=self.fault,
            derated=self.derate < 1.0,
            inverter=self.direction is Direction.IMPORT,
            temperature_c=self.temperature_c,
        )

    @property
    def available_power_w(self) -> float:
        return self.rating.rated_power_w * self.derate


def module_at(modules: Sequence[EmulatedModule], address: int) -> EmulatedModule | None:
    """Module `address` of `modules`: the rack keeps module n at index n (looked up at once), else searched."""
    if 0 <= address < len(modules) and modules[address].address == address:
        return modules[address]
    return next((m for m in modules if m.address == address), None)
