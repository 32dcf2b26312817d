"""A python-can bus on the clock's asyncio loop: the one place the CAN code touches I/O.

    port = CanPort(open_bus("virtual:mcs0"), clock, handler=stack.on_frame, log=can.Logger("bus.log"))
    port.send(frames)          # stamped with the clock's time, logged, written to the bus
    await port.run()           # calls `handler(frame)` for every frame received, until cancelled

Receiving never blocks the loop and needs no thread (a thread would let a virtual clock jump past a frame in
flight): a bus with a file descriptor (SocketCAN, UDP multicast) wakes the loop through its selector; python-can's
`virtual` bus delivers into the receiver's queue inside `send`, so a sending port rings the doorbell of every
port of the same process on that channel; other adapters (PCAN, Kvaser, Vector...) are polled every millisecond
of the clock, which only real time affords.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import can

from stack.clock import Clock

log = logging.getLogger("evse_emulator.hal.can")

UDP_MULTICAST_DEFAULT = "239.74.163.2"  # python-can's IPv4 default group (UdpMulticastBus.DEFAULT_GROUP_IPv4)
POLL_S = 0.001  # how often a bus without a file descriptor is read
_DOORBELLS: dict[str, set[CanPort]] = {}  # virtual channel -> the ports of this process listening on it


class CanBusError(OSError):
    """The bus cannot be opened or written: the interface, the channel and python-can's reason."""


@dataclass(frozen=True, slots=True)
class BusSpec:
    """`INTERFACE:CHANNEL` as the CLI takes it (`virtual:mcs0`, `socketcan:vcan0`, `udp_multicast:default`)."""

    interface: str
    channel: str

    @classmethod
    def parse(cls, text: str) -> BusSpec:
        interface, sep, channel = text.partition(":")
        if not sep or not interface or not channel:
            raise ValueError(f"CAN bus must be INTERFACE:CHANNEL (e.g. virtual:mcs0, socketcan:vcan0), got {text!r}")
        if interface not in can.VALID_INTERFACES:
            known = ", ".join(sorted(can.VALID_INTERFACES))
            raise ValueError(f"unknown python-can interface {interface!r}; known: {known}")
        return cls(interface, channel)

    def __str__(self) -> str:
        return f"{self.interface}:{self.channel}"


def open_bus(spec: BusSpec | str, bitrate: int | None = None) -> can.BusABC:
    """Open the bus; `bitrate` goes to adapters that set it (SocketCAN's is set with `ip link`)."""
    spec = BusSpec.parse(spec) if isinstance(spec, str) else spec
    channel = spec.channel
    options: dict[str, Any] = {}
    if spec.interface == "virtual":
        options["preserve_timestamps"] = True  # the sender's clock stamps the frame, simulated or not
    elif spec.interface == "udp_multicast":
        if channel == "default":
            channel = UDP_MULTICAST_DEFAULT
        options["fd"] = False
    elif spec.interface != "socketcan" and bitrate is not None:
        options["bitrate"] = bitrate
    try:
        return can.Bus(channel, interface=spec.interface, **options)
    except (can.CanError, OSError, ImportError, ValueError) as exc:
        raise CanBusError(f"cannot open CAN bus {spec}: {exc}") from None


def open_log(path: str | Path) -> can.Listener:
    """A python-can writer for `path` (candump .log, .asc, .blf by the suffix); a `CanBusError` if it cannot."""
    try:
        return can.Logger(str(path))
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise CanBusError(f"cannot write the CAN log {path}: {reason}") from None


class CanPort:
    """Frames in and out of one bus, stamped with the clock's time; `silent` cuts the port off (bus-off)."""

    def __init__(
        self,
        bus: can.BusABC,
        clock: Clock,
        handler: Callable[[can.Message], None],
        log: can.Listener | None = None,
        batch_done: Callable[[], None] | None = None,
    ) -> None:
        self.bus = bus
        self.batch_done = batch_done  # called once the frames waiting on the bus are all handled
        self.clock = clock
        self.handler = handler
        self.log = log
        self.silent = False
        self.sent = 0
        self.received = 0
        self.errors = 0
        self._wake = asyncio.Event()
        self._channel = str(bus.channel_info) if _is_virtual(bus) else None
        self._closed = False

    def send(self, frames: Iterable[can.Message]) -> None:
        """Write `frames` now (a silent port drops them, as a bus-off controller does)."""
        if self.silent or self._closed:
            return
        now = self.clock.now()
        for frame in frames:
            frame.timestamp = now
            frame.is_rx = False
            try:
                self.bus.send(frame)
            except can.CanError as exc:
                raise CanBusError(f"CAN send failed on {self.bus.channel_info}: {exc}") from None
            self.sent += 1
            if self.log is not None:
                self.log.on_message_received(frame)
        if self._channel is not None:
            for port in _DOORBELLS.get(self._channel, ()):
                if port is not self:
                    port._wake.set()

    def drain(self) -> None:
        """Hand every frame waiting on the bus to the handler, then say the batch is done."""
        handled = False
        while not self._closed:
            frame = self.bus.recv(0)
            if frame is None:
                break
            if self.silent:
                continue
            frame.timestamp = self.clock.now()
            self.received += 1
            if self.log is not None:
                self.log.on_message_received(frame)
            handled = True
            try:
                self.handler(frame)
            except Exception:  # one bad frame or handler bug must not stop the bus: said, counted, and on we go
                self.errors += 1
                log.exception("CAN frame %08X not handled", frame.arbitration_id)
        if handled and self.batch_done is not None:
            self.batch_done()

    async def run(self) -> None:
        """Receive until cancelled."""
        loop = asyncio.get_running_loop()
        if self._channel is not None:
            _DOORBELLS.setdefault(self._channel, set()).add(self)
            try:
                while True:
                    await self._wake.wait()
                    self._wake.clear()
                    self.drain()
            finally:
                _DOORBELLS[self._channel].discard(self)
        fileno = _fileno(self.bus)
        if fileno is not None:
            loop.add_reader(fileno, self.drain)
            try:
                await asyncio.Event().wait()
            finally:
                loop.remove_reader(fileno)
        while True:
            self.drain()
            await self.clock.sleep_until(self.clock.now() + POLL_S)

    def close(self) -> None:
        """Stop the log and release the bus."""
        self._closed = True
        if self.log is not None:
            self.log.stop()
            self.log = None
        with contextlib.suppress(can.CanError, OSError):
            self.bus.shutdown()


def _is_virtual(bus: can.BusABC) -> bool:
    return type(bus).__name__ == "VirtualBus"


def _fileno(bus: can.BusABC) -> int | None:
    try:
        fileno = bus.fileno()
    except (NotImplementedError, AttributeError, OSError):
        return None
    return fileno if isinstance(fileno, int) and fileno >= 0 else None
