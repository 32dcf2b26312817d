"""The `can` HAL driver: a module stack of one family and our I/O board on one python-can bus.

    hal = make_hal("can:infypower", bus="socketcan:can0", clock=RealClock())          # a bench
    hal = make_hal("can:winline", bus="virtual:mcs0", clock=clock, addresses=[0, 1])  # a fixed module list

`hal.service()` is the driver's background work, run by the charger next to its sessions: the receiver, the
poll cycle of the family (reads and module supervision) and the board's heartbeat command.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import can

from stack.clock import Clock, RealClock

from .. import Hal
from ..interfaces import FaultKind, PlantFault
from .family import Family, family
from .io_board import STATUS_PERIOD_S, IoBoardDriver
from .port import BusSpec, CanBusError, CanPort, open_bus, open_log
from .stack import ModuleStack

BOARD_SILENCE_S = 1.0  # our profile: the board sends every 100 ms; ten periods missed is a lost board


class CanDevices:
    """Everything the charger's controller drives over the bus, and the work that keeps it current."""

    def __init__(
        self,
        module_family: Family,
        bus: can.BusABC,
        clock: Clock,
        *,
        addresses: Sequence[int] | None = None,
        series: int = 1,
        mcs: bool = True,
        log_to: can.Listener | None = None,
    ) -> None:
        self.family = module_family
        self.clock = clock
        self.port = CanPort(bus, clock, self._on_frame, log_to, batch_done=self._changed)
        self.listeners: list[Callable[[], None]] = []
        self.board = IoBoardDriver(self.port.send, clock.now, mcs=mcs)
        self.stack = ModuleStack(
            module_family,
            self.port.send,
            clock.now,
            addresses=addresses,
            series=series,
            measure=lambda: self.board.dc,
            arm=self.board.arm,
        )
        self.board_fault: PlantFault | None = None

    def _on_frame(self, frame: can.Message) -> None:
        self.board.on_frame(frame)
        self.stack.on_frame(frame)

    def _changed(self) -> None:
        for listener in self.listeners:
            listener()

    def hal(self) -> Hal:
        return Hal(
            self.stack,
            self.board.contactors,
            self.board.imd,
            self.board.meter,
            service=self.run,
            extra_faults=self.faults,
            listen=self.listeners.append,
        )

    def faults(self) -> list[PlantFault]:
        """The board's own faults: its protection tripped, or it fell silent."""
        return [f for f in (self.board.emergency_fault, self.board_fault) if f is not None]

    async def run(self) -> None:
        """Receive, poll and send the heartbeat until cancelled; the bus is released at the end."""
        tasks = [
            asyncio.ensure_future(self.port.run()),
            asyncio.ensure_future(self._every(self.family.poll_interval_s, self._poll)),
            asyncio.ensure_future(self._every(STATUS_PERIOD_S, self._heartbeat)),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.port.close()

    def _poll(self) -> None:
        self.stack.tick()
        self._changed()

    def _heartbeat(self) -> None:
        self.board.heartbeat()
        silent = self.board.silent_for(self.clock.now())
        if silent > BOARD_SILENCE_S and self.board_fault is None:
            detail = f"I/O board silent for {silent:.1f} s (limit {BOARD_SILENCE_S:.1f} s)"
            self.board_fault = PlantFault(FaultKind.COMMUNICATION_LOST, detail, self.clock.now())
            self._changed()

    async def _every(self, period: float, work: Any) -> None:
        next_at = self.clock.now()
        while True:
            work()
            next_at += period
            await self.clock.sleep_until(next_at)


def make_can_hal(
    family: str,
    clock: Clock | None = None,
    bus: str | can.BusABC = "virtual:mcs0",
    addresses: Sequence[int] | None = None,
    series: int = 1,
    mcs: bool = True,
    can_log: str | Path | None = None,
    **unknown: Any,
) -> Hal:
    """The `can:<family>` driver (`addresses`: a fixed module list, None: discovery) on the real clock unless
    given one."""
    if unknown:
        raise ValueError(f"unknown CAN driver settings {sorted(unknown)}; known: addresses, bus, can_log, mcs, series")
    module_family = family_of(family)
    clock = clock or RealClock()
    opened = bus if isinstance(bus, can.BusABC) else open_bus(BusSpec.parse(bus), module_family.bitrate)
    try:
        log_to = open_log(can_log) if can_log is not None else None
    except CanBusError:
        opened.shutdown()
        raise
    devices = CanDevices(module_family, opened, clock, addresses=addresses, series=series, mcs=mcs, log_to=log_to)
    return devices.hal()


def family_of(name: str) -> Family:
    try:
        return family(name)
    except LookupError as exc:
        raise ValueError(str(exc)) from None
