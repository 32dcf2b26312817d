"""The emulated modules of one family as the plant's converter (the module's side, sans-I/O).

Each module keeps what the controller wrote (on/off, direction, voltage, current); the rack turns the whole set
into the one converter the physical model has (`MockPowerStage`): strings of `series` modules conduct when all
their modules are alive, on and healthy; the voltage ceiling is a string's voltage setpoints added up, the
current the strings' setpoints added up (each at most what its weakest module gives at the voltage), the power
what the conducting modules are rated for. After the model steps, the rack hands each module its share of the
measured output, and latches the model's protection trips into the modules' status, as modules report them.
"""

from __future__ import annotations

from collections.abc import Sequence

import can

from ..interfaces import FaultKind
from ..mock import MockPlant, PlantConfig
from .family import Family
from .model import Direction, EmulatedModule, ModuleRating

# the status a module reports when the output's protection tripped (the family codecs map these to their bits)
TRIP_STATUS = {
    FaultKind.OVER_VOLTAGE: "output over-voltage",
    FaultKind.OVER_CURRENT: "output short circuit",
}


def rack_config(rating: ModuleRating, modules: int, series: int, **settings: float) -> PlantConfig:
    """The physical model's ratings for `modules` modules in strings of `series`."""
    strings = modules // series
    return PlantConfig(
        rated_voltage_v=rating.max_voltage_v * series,
        rated_current_a=rating.max_current_a * strings,
        rated_power_w=rating.rated_power_w * strings * series,
        **settings,  # type: ignore[arg-type]
    )


class ModuleRack:
    """`count` modules (addresses 0..count-1) of `family` driving `physics`."""

    def __init__(self, family: Family, physics: MockPlant, count: int, series: int = 1) -> None:
        if count < series or count % series:
            raise ValueError(f"{count} modules do not make strings of {series}")
        self.family = family
        self.codec = family.module(family.database())
        self.physics = physics
        self.series = series
        now = physics.terminal.time_s
        self.modules = [EmulatedModule(a, family.rating, serial=f"EMU{a:05d}", last_heard_s=now) for a in range(count)]
        self.interlock = False  # the I/O board cut the modules' enable line
        self.events: list[tuple[float, str]] = []
        self._measured_s = -1.0

    def answer(self, frame: can.Message, now: float) -> list[can.Message]:
        """The modules' replies to a controller frame (from the output as it is now). The caller `apply`s the
        new settings once the frames of this instant are answered (the bus delivers them in bursts)."""
        if now > self._measured_s:
            self.measure(now)
        return self.codec.answer(frame, self.modules, now)

    def strings(self) -> list[Sequence[EmulatedModule]]:
        return [self.modules[i : i + self.series] for i in range(0, len(self.modules), self.series)]

    def conducting(self) -> list[Sequence[EmulatedModule]]:
        if self.interlock:
            return []
        return [s for s in self.strings() if all(m.alive and m.on and m.fault is None for m in s)]

    def apply(self) -> None:
        """Set the physical converter from the modules' settings."""
        stage = self.physics.power_stage
        strings = self.conducting()
        if not strings:
            if stage.enabled:
                stage.disable()
            return
        voltage = min(sum(m.voltage_v for m in s) for s in strings)
        present = self.physics.terminal.voltage_v
        out_v = (present if present > 1.0 else voltage) / self.series  # constant power at the output's voltage
        current = sum(self._gives(s, out_v) for s in strings)
        power = sum(m.available_power_w for s in strings for m in s)
        importing = all(m.direction is Direction.IMPORT for s in strings for m in s)
        stage.set_limits(voltage, -current if importing else current, power)
        if not stage.enabled:
            stage.enable(stage.negotiated_max_voltage_v, stage.negotiated_max_current_a)

    def after_step(self, now: float) -> None:
        """Latch the output's protection trips into the modules; switch off modules the controller forgot."""
        fault = self.physics.power_stage.fault()
        if fault is not None and fault.kind in TRIP_STATUS:
            for m in self.modules:
                if m.alive and m.on and m.fault is None:
                    m.fault, m.on = TRIP_STATUS[fault.kind], False
                    self.events.append((now, f"module {m.address} tripped: {m.fault}"))
        limit = self.family.module_silence_off_s
        for m in self.modules:
            if m.on and now - m.last_heard_s > limit:
                m.on = False
                self.events.append((now, f"module {m.address} off: controller silent for {now - m.last_heard_s:.1f} s"))
        self.apply()

    def measure(self, now: float) -> None:
        """Hand each module its share of the output as it is now (what its readings report)."""
        self.physics.sync()
        self.after_step(now)
        self._measured_s = now
        conducting = {id(s[0]): s for s in self.conducting()}
        terminal = self.physics.terminal
        module_v = terminal.voltage_v / self.series
        gives = {key: self._gives(s, module_v) for key, s in conducting.items()}
        total = sum(gives.values()) or 1.0
        for s in self.strings():
            share = terminal.current_a * gives[id(s[0])] / total if id(s[0]) in gives else 0.0
            for m in s:
                m.output_v = module_v if m.alive else 0.0
                m.output_a = share if id(s[0]) in gives else 0.0

    def _gives(self, string: Sequence[EmulatedModule], module_v: float) -> float:
        """What a conducting string delivers of its setpoint: its weakest module, derating included."""
        return min(min(m.current_a, m.rating.current_at(module_v) * m.derate) for m in string)

    def lose(self, address: int, now: float) -> None:
        """Module `address` dies: no output, no answer."""
        module = self.modules[address]
        module.alive, module.on = False, False
        self.events.append((now, f"module {address} lost"))
        self.apply()
