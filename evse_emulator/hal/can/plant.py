"""A charger's power electronics behind a real CAN protocol: the physical model of `mock.py`, driven by a rack of
emulated modules of one family and by our I/O board (contactors, IMD, meter), on a python-can bus.

    plant = CanPlant(family("infypower"), open_bus("virtual:mcs0"), clock, modules=20, vehicle=battery)
    await plant.run()      # answers every frame; sends the board's periodic frames; until cancelled

The modules answer what they are asked (none of the three families sends on its own); the board sends its
status and meter frames every `STATUS_PERIOD_S` and its energy registers every `ENERGY_PERIOD_S`, and trips
(modules' enable cut, contactors opened once the current has stopped) when the controller's command frame is
missing for `WATCHDOG_S`. Faults are injected with the `inject_*` methods (or `Fault`s on a schedule).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import can

from stack.clock import Clock

from ..interfaces import ContactorState, FaultKind, ImdStatus, PlantFault, VehicleTerminal
from ..mock import MockPlant, PlantConfig
from .family import Family
from .io_board import ENERGY_PERIOD_S, STATUS_PERIOD_S, WATCHDOG_S, IoBoardCodec, IoCommand
from .port import CanPort
from .rack import ModuleRack, rack_config

log = logging.getLogger("evse_emulator.hal.can.plant")

FAULT_NAMES = (
    "module_loss",
    "derate",
    "can_silence",
    "over_voltage",
    "over_current",
    "insulation",
    "contactor_weld",
    "pre_charge",
)
PER_MODULE = frozenset({"module_loss", "derate"})  # faults of one module (NAME:ADDRESS@SECONDS)
INSULATION_FAULT_OHM = 50_000.0  # injected insulation fault: half the CCS threshold, well under MCS's 125 kΩ
PRE_CHARGE_CAP_V = 200.0  # injected pre-charge failure: the output cannot rise above this
DERATED_TO = 0.5  # injected derating: the module gives this fraction of its rated power


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault to inject at `at_s` seconds after the plant starts (`module_loss` and `derate` take a module's
    address)."""

    name: str
    at_s: float
    module: int = 0

    def __post_init__(self) -> None:
        if self.name not in FAULT_NAMES:
            raise ValueError(f"unknown plant fault {self.name!r}; known: {', '.join(FAULT_NAMES)}")
        if not (math.isfinite(self.at_s) and self.at_s >= 0):
            raise ValueError(f"fault time must be a finite number of seconds >= 0, got {self.at_s!r}")
        if self.module < 0:
            raise ValueError(f"a module address counts from 0, got {self.module}")

    @classmethod
    def parse(cls, text: str) -> Fault:
        """`NAME@SECONDS`, or `module_loss:ADDRESS@SECONDS` / `derate:ADDRESS@SECONDS`."""
        what, sep, at = text.partition("@")
        name, colon, module = what.partition(":")
        if not sep:
            raise ValueError(f"fault must be NAME@SECONDS (e.g. over_voltage@600), got {text!r}")
        if colon and name not in PER_MODULE:
            raise ValueError(f"fault {text!r}: only {' and '.join(sorted(PER_MODULE))} take a module (NAME:ADDRESS)")
        if not colon and name in PER_MODULE:
            raise ValueError(f"fault {text!r}: {name} needs a module address ({name}:ADDRESS@SECONDS)")
        if not _number(at) or (colon and not module.isdigit()):
            raise ValueError(f"fault {text!r}: the time must be seconds and the address a whole number from 0")
        return cls(name, float(at), int(module) if module else 0)


class CanPlant:
    """The power modules, the I/O board and the physics behind them, on one bus."""

    def __init__(
        self,
        family: Family,
        bus: can.BusABC,
        clock: Clock,
        *,
        modules: int,
        series: int = 1,
        vehicle: VehicleTerminal | None = None,
        settings: dict[str, float] | None = None,
        log_to: can.Listener | None = None,
    ) -> None:
        self.family = family
        self.clock = clock
        config: PlantConfig = rack_config(family.rating, modules, series, **(settings or {}))
        self.physics = MockPlant(vehicle, config, clock)
        self.rack = ModuleRack(family, self.physics, modules, series)
        self.board = IoBoardCodec()
        self.port = CanPort(bus, clock, self._on_frame, log_to)
        self.started_s = clock.now()
        self.last_command_s: float | None = None
        self.watchdog_tripped = False
        self._imd_running = False
        self._apply_pending = False
        self._pre_charge_fault = False
        self._watchdog_timer: asyncio.TimerHandle | None = None
        self.events: list[tuple[float, str]] = []

    # -- the bus --

    def _on_frame(self, frame: can.Message) -> None:
        now = self.clock.now()
        command = self.board.decode_command(frame)
        if command is not None:
            self._board_command(command, now)
            return
        replies = self.rack.answer(frame, now)
        if not self._apply_pending:
            self._apply_pending = True
            asyncio.get_running_loop().call_soon(self._apply)
        if replies:
            self.port.send(replies)

    def _apply(self) -> None:
        """The converter follows the modules' settings: once per burst of frames, at the same instant."""
        self._apply_pending = False
        self.rack.apply()

    def _board_command(self, command: IoCommand, now: float) -> None:
        self.last_command_s = now
        if self._watchdog_timer is not None:
            self._watchdog_timer.cancel()
        self._watchdog_timer = self.clock.call_at(now + WATCHDOG_S, self._watchdog_expired)
        physics = self.physics
        if command.contactor_close and not self.watchdog_tripped:
            physics.contactors.close()
        elif not command.contactor_close:
            physics.contactors.open()
            self.watchdog_tripped = False  # the controller took over again
            self.rack.interlock = False
        if command.imd_run and not self._imd_running:
            physics.imd.start(command.imd_test_voltage_v)
        elif not command.imd_run and self._imd_running:
            physics.imd.stop()
        self._imd_running = command.imd_run
        physics.power_stage.negotiated_max_voltage_v = command.negotiated_max_voltage_v or None
        physics.power_stage.negotiated_max_current_a = command.negotiated_max_current_a or None

    async def run(self) -> None:
        """Answer frames and send the board's periodic frames until cancelled."""
        receiver = asyncio.ensure_future(self.port.run())
        try:
            next_energy = self.clock.now()
            while True:
                now = self.clock.now()
                self.tick(now, energy=now >= next_energy)
                if now >= next_energy:
                    next_energy += ENERGY_PERIOD_S
                await self.clock.sleep_until(now + STATUS_PERIOD_S)
        finally:
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)

    def tick(self, now: float, energy: bool = False) -> None:
        """One board period: the physics up to now, the modules' shares, the watchdog, the board's frames."""
        self.physics.sync()
        self.rack.after_step(now)
        self._watchdog(now)
        if self._pre_charge_fault and self.physics.imd.status() is ImdStatus.OK:
            self._pre_charge_fault = False
            self.physics.inject_voltage_cap(PRE_CHARGE_CAP_V)
            self.events.append((now, f"converter limited to {PRE_CHARGE_CAP_V:.0f} V after the cable check"))
        terminal = self.physics.terminal
        contactors, imd = self.physics.contactors, self.physics.imd
        frames = [
            self.board.status_frames(
                contactors.state(),
                _kind(contactors.fault()),
                imd.status(),
                _kind(imd.fault()),
                self.watchdog_tripped,
                imd.resistance_ohm(),
                _emergency(self.physics.power_stage.fault()),
            ),
            self.board.meter_frame(terminal.voltage_v, terminal.current_a),
        ]
        if energy:
            meter = self.physics.meter.read()
            frames.append(self.board.energy_frame(meter.imported_wh, meter.exported_wh))
        self.port.send(frames)

    def _watchdog_expired(self) -> None:
        """No IO_Command for `WATCHDOG_S`: cut the modules' enable (the interlock), then open the contactors."""
        now = self.clock.now()
        if self.watchdog_tripped or not self._energised():
            return
        self.physics.sync()
        self.watchdog_tripped = True
        self.rack.interlock = True
        self.rack.apply()
        self.events.append((now, f"I/O board watchdog: no command for {now - (self.last_command_s or now):.2f} s"))
        self._watchdog(now)

    def _watchdog(self, now: float) -> None:
        """A tripped watchdog opens the contactors once the current has stopped."""
        if self.watchdog_tripped and abs(self.physics.terminal.current_a) < 1.0:
            self.physics.contactors.open()

    def _energised(self) -> bool:
        contactors = self.physics.contactors.state()
        return self.physics.power_stage.enabled or contactors is not ContactorState.OPEN

    # -- fault injection --

    def inject(self, fault: Fault) -> None:
        now = self.clock.now()
        physics = self.physics
        self.events.append((now, f"injected {fault.name}"))
        if fault.name == "module_loss":
            self.rack.lose(fault.module, now)
        elif fault.name == "derate":  # over-temperature: the module gives half its power
            self.rack.modules[fault.module].derate = DERATED_TO
            self.rack.apply()
        elif fault.name == "can_silence":
            self.port.silent = True
        elif fault.name == "over_voltage":  # a load dump onto a failed voltage loop
            physics.inject_regulation_fault()
            physics.inject_load_dump()
        elif fault.name == "over_current":
            physics.inject_current_runaway()
        elif fault.name == "insulation":
            physics.inject_insulation_fault(INSULATION_FAULT_OHM)
        elif fault.name == "contactor_weld":
            physics.inject_contactor_weld()
        elif fault.name == "pre_charge":  # the converter fails once the cable check is done
            self._pre_charge_fault = True

    async def inject_on_schedule(self, faults: Sequence[Fault]) -> None:
        for fault in sorted(faults, key=lambda f: f.at_s):
            await self.clock.sleep_until(self.started_s + fault.at_s)
            self.inject(fault)

    def close(self) -> None:
        self.port.close()


def _kind(fault: PlantFault | None) -> FaultKind | None:
    return None if fault is None else fault.kind


def _emergency(fault: PlantFault | None) -> FaultKind | None:
    """The output protection's trip as the board reports it (over-voltage or over-current)."""
    kind = _kind(fault)
    return kind if kind in (FaultKind.OVER_VOLTAGE, FaultKind.OVER_CURRENT) else None


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
