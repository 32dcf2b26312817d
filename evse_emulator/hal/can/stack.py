"""A stack of power modules of one family behind one `PowerStage` (the controller's side, sans-I/O).

    stack = ModuleStack(family, send=port.send, now=clock.now)   # then: stack.on_frame(frame) for each frame
    stack.tick()                                                  # every `family.poll_interval_s`

What it does, each step in its own method:
- discovery: the family's count query (or a fixed address list); a module that answers is adopted (hot-plug);
- current sharing: the stage's current split over the live strings, no module above what it gives at the
  voltage (what one cannot take goes to the others), the same voltage ceiling for all (per module: the string
  voltage divided by `series`, the number of modules in series in a string);
- sequencing: on enable, direction first, then setpoints, then on; on disable, current to zero, then off;
- supervision: a module silent for the family's `drop_after_s` is dropped; the capability shrinks and the
  charger's next DC_ChargeLoopRes advertises the smaller maximum; none left is a `COMMUNICATION_LOST` fault;
- faults: a module reporting a fault alarm or protection is set aside (its share goes to the others); when
  every module has one, the stage latches the matching `PlantFault` (output over-voltage, short circuit, other).

It sends nothing on its own: `tick()` polls, the `PowerStage` calls command, `on_frame` listens.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import can

from ..interfaces import DcReading, FaultKind, PlantFault, StageCapability
from .family import Family
from .model import Direction, ModuleCommand, ModuleRating, ModuleReport, ModuleStatus

log = logging.getLogger("evse_emulator.hal.can")

SHED_HIGH = 0.9  # add a string when the running ones would each give more than this fraction of what they can
SHED_LOW = 0.5  # drop one when the others would each still give at least this fraction
# Infy V1.13: "the device will not allow setting the current to 0" (CAN.md 1): the floor sent while on
MIN_SHARE_A = 1.0


@dataclass(slots=True)
class TrackedModule:
    """What the driver knows about one module."""

    address: int
    last_seen_s: float
    rating: ModuleRating | None = None
    voltage_v: float | None = None
    current_a: float | None = None
    status: ModuleStatus | None = None
    sent: ModuleCommand | None = None  # the last command sent (None: send everything next time)
    dropped: bool = False

    @property
    def usable(self) -> bool:
        """Answering, rated and without a fault: it gets a share."""
        return not self.dropped and self.rating is not None and not (self.status and self.status.fault)


@dataclass(slots=True)
class StackEvent:
    time_s: float
    text: str


@dataclass(slots=True)
class _Target:
    voltage_v: float = 0.0
    current_a: float = 0.0  # signed
    power_w: float = 0.0
    enabled: bool = False


class ModuleStack:
    """N modules (in strings of `series`) of one family as one power stage."""

    def __init__(
        self,
        family: Family,
        send: Callable[[list[can.Message]], None],
        now: Callable[[], float],
        *,
        addresses: Sequence[int] | None = None,
        series: int = 1,
        measure: Callable[[], DcReading | None] | None = None,
        arm: Callable[[float | None, float | None], None] | None = None,
    ) -> None:
        """`measure`: the terminals' voltage and current from a meter faster than the modules' poll (the I/O
        board's); `arm`: passes the negotiated maximum voltage and current to the protection on `enable`."""
        if series < 1:
            raise ValueError(f"series must be at least 1, got {series}")
        self.family = family
        self.codec = family.driver(family.database())
        self.series = series
        self._send = send
        self._now = now
        self._measure = measure
        self._arm = arm
        self.discover = addresses is None  # fixed list or discovery
        self.modules: dict[int, TrackedModule] = {a: TrackedModule(a, now()) for a in addresses or ()}
        self.events: list[StackEvent] = []
        self.refusals = 0
        self._target = _Target()
        self._fault: PlantFault | None = None
        self._ever_usable = False
        self._polls: dict[tuple[int, bool], list[can.Message]] = {}
        self._running = 0  # strings switched on

    # -- PowerStage --

    def set_limits(self, voltage_v: float, current_a: float, power_w: float) -> None:
        self._target.voltage_v, self._target.current_a, self._target.power_w = voltage_v, current_a, power_w
        self._command()

    def enable(
        self, negotiated_max_voltage_v: float | None = None, negotiated_max_current_a: float | None = None
    ) -> None:
        if self._fault is not None and self._fault.kind is not FaultKind.COMMUNICATION_LOST:
            self._fault = None  # re-armed after a trip, as the mock does
        self._target.enabled = True
        if self._arm is not None:
            self._arm(negotiated_max_voltage_v, negotiated_max_current_a)
        self._command()

    def disable(self) -> None:
        self._target.enabled = False
        self._command()

    def present(self) -> DcReading:
        """The terminals' voltage and current: from the meter when there is one, else the modules' readings."""
        measured = self._measure() if self._measure is not None else None
        return measured if measured is not None else self.from_modules()

    def from_modules(self) -> DcReading:
        """Voltage and current as the modules last reported them (one poll cycle old at most)."""
        strings = [s for s in self._strings() if all(m.voltage_v is not None for m in s)]
        if not strings:
            return DcReading(0.0, 0.0)
        voltage = max(sum(m.voltage_v or 0.0 for m in s) for s in strings)
        current = sum(sum(m.current_a or 0.0 for m in s) / len(s) for s in strings)
        return DcReading(voltage, current)

    def fault(self) -> PlantFault | None:
        return self._fault

    @staticmethod
    def _power(module: TrackedModule) -> float:
        """A module's power: its rating, or while it derates what it gives (told to the truck as a smaller
        maximum, like a lost module)."""
        rated = module.rating.rated_power_w if module.rating is not None else 0.0
        status, volts, amps = module.status, module.voltage_v, module.current_a
        if status is None or not status.derated or volts is None or amps is None:
            return rated
        return min(rated, abs(volts * amps))

    def capability(self) -> StageCapability | None:
        strings = [s for s in self._strings() if all(m.usable for m in s)]
        if not strings:
            return StageCapability(0.0, 0.0, 0.0, 0.0)
        ratings = [[m.rating for m in s if m.rating is not None] for s in strings]
        max_v = min(sum(r.max_voltage_v for r in rs) for rs in ratings)
        min_v = max(sum(r.min_voltage_v for r in rs) for rs in ratings)
        current = sum(min(r.max_current_a for r in rs) for rs in ratings)
        power = sum(self._power(m) for s in strings for m in s)
        both = all(r.bidirectional for rs in ratings for r in rs)
        return StageCapability(max_v, min_v, current, power, current if both else 0.0, power if both else 0.0)

    # -- the bus --

    def tick(self) -> None:
        """One poll cycle: discovery, the reads of every module, supervision."""
        frames = self.codec.discovery() if self.discover else []
        for module in self.modules.values():
            if not module.dropped:
                frames += self._poll(module.address, module.rating is not None)
        self._send(frames)
        self._supervise()

    def on_frame(self, frame: can.Message) -> None:
        report = self.codec.decode(frame)
        if report is not None:
            self._learn(report)

    # -- what the stack learns --

    def _learn(self, report: ModuleReport) -> None:
        now = self._now()
        if report.module_count is not None:
            for address in range(report.module_count):
                if address not in self.modules:
                    self._adopt(address, now)
            return
        module = self.modules.get(report.address)
        if module is None:
            if not self.discover:
                return
            module = self._adopt(report.address, now)
        module.last_seen_s = now
        if module.dropped:
            module.dropped, module.sent = False, None
            self._event(f"module {module.address} answers again")
        if report.refused is not None:
            self.refusals += 1
            module.sent = None  # resend in full next time
            self._event(f"module {module.address} refused a command: {report.refused}")
        if report.rating is not None and module.rating is None:
            module.rating = report.rating
            self._ever_usable = True
            self._command()
        if report.voltage_v is not None:
            module.voltage_v = report.voltage_v
        if report.current_a is not None:
            module.current_a = report.current_a
        if report.status is not None:
            self._status(module, report.status)

    def _adopt(self, address: int, now: float) -> TrackedModule:
        """A module found: read it at once (its rating first), not one poll cycle later."""
        module = self.modules[address] = TrackedModule(address, now)
        self._event(f"module {address} found")
        self._send(self._poll(address, False))
        return module

    def _poll(self, address: int, rating_known: bool) -> list[can.Message]:
        """A module's reads (the same frames every cycle: encoded once)."""
        key = (address, rating_known)
        frames = self._polls.get(key)
        if frames is None:
            frames = self._polls[key] = self.codec.poll(address, rating_known)
        return frames

    def _status(self, module: TrackedModule, status: ModuleStatus) -> None:
        before = module.status
        module.status = status
        if status.fault and status.fault != (before.fault if before else None):
            self._event(f"module {module.address} fault: {status.fault}")
            self._command()
            self._check_all_failed(status.fault)
        elif status.derated != (before.derated if before else False):
            self._event(f"module {module.address} {'derating' if status.derated else 'no longer derating'}")
            self._command()

    def _check_all_failed(self, fault: str) -> None:
        live = [m for m in self.modules.values() if not m.dropped and m.rating is not None]
        if live and all(m.status and m.status.fault for m in live) and self._fault is None:
            text = fault.lower()
            if "over-voltage" in text or "overvoltage" in text:
                kind = FaultKind.OVER_VOLTAGE
            elif "short" in text or "over-current" in text or "overcurrent" in text:
                kind = FaultKind.OVER_CURRENT
            else:
                kind = FaultKind.MODULE_FAULT
            detail = f"{len(live)} of {len(live)} modules report: {fault}"
            self._fault = PlantFault(kind, detail, self._now())
            self._target.enabled = False
            self._command()

    def _supervise(self) -> None:
        now = self._now()
        for module in self.modules.values():
            if not module.dropped and now - module.last_seen_s > self.family.drop_after_s:
                module.dropped = True
                self._event(f"module {module.address} dropped: silent for {now - module.last_seen_s:.1f} s")
                self._command()
        everyone_silent = self.modules and all(m.dropped for m in self.modules.values())
        if self._ever_usable and everyone_silent and self._fault is None:
            silent = min(now - m.last_seen_s for m in self.modules.values())
            detail = f"no module answered for {silent:.1f} s (limit {self.family.drop_after_s:.1f} s)"
            self._fault = PlantFault(FaultKind.COMMUNICATION_LOST, detail, now)
            self._target.enabled = False

    # -- what the stack commands --

    def _strings(self) -> list[list[TrackedModule]]:
        """The modules in strings of `series`, in address order (a string with a dropped module is broken)."""
        ordered = [self.modules[a] for a in sorted(self.modules)]
        count = len(ordered) // self.series * self.series
        return [ordered[i : i + self.series] for i in range(0, count, self.series)]

    def _command(self) -> None:
        """Send every module its command: the share of the target current its string takes."""
        target = self._target
        direction = Direction.IMPORT if target.current_a < 0 else Direction.EXPORT
        strings = self._strings()
        usable = [s for s in strings if all(m.usable for m in s)] if target.enabled else []
        module_v = target.voltage_v / self.series
        voltage = self.from_modules().voltage_v or target.voltage_v
        current = abs(target.current_a)
        if voltage > 0:
            current = min(current, target.power_w / voltage)
        active = self._active(usable, current, voltage)
        shares = self._shares(active, current, voltage)
        frames: list[can.Message] = []
        for string in strings:
            share = shares.get(id(string[0]))
            for module in string:
                if module.dropped:
                    continue
                on = share is not None
                command = ModuleCommand(on, module_v, max(share or 0.0, MIN_SHARE_A) if on else 0.0, direction)
                sent = module.sent
                if on and sent is not None and sent.on and sent.direction is not direction:  # off before turning
                    off = ModuleCommand(False, 0.0, 0.0, sent.direction)
                    frames += self.codec.command(module.address, off, sent)
                    module.sent = off
                if command != module.sent:
                    frames += self.codec.command(module.address, command, module.sent)
                    module.sent = command
        if frames:
            self._send(frames)

    def _cap(self, string: list[TrackedModule], voltage_v: float) -> float:
        """What a string gives at `voltage_v`: its weakest module (a derating one gives what it measured)."""
        return min(self._module_cap(m, voltage_v / self.series) for m in string if m.rating is not None)

    @staticmethod
    def _module_cap(module: TrackedModule, voltage_v: float) -> float:
        """A module's rating at the voltage; while it reports derating (temperature, power limit), what it gives:
        never more until the derating clears, so the shares do not swing; the rest goes to the others."""
        rated = module.rating.current_at(voltage_v) if module.rating is not None else 0.0
        status, measured = module.status, module.current_a
        if status is None or not status.derated or measured is None:
            return rated
        return max(min(rated, abs(measured)), MIN_SHARE_A)

    def _active(
        self, usable: list[list[TrackedModule]], current_a: float, voltage_v: float
    ) -> list[list[TrackedModule]]:
        """The strings to run: enough that none runs above `SHED_HIGH` of what it gives, and no more than keep
        each above `SHED_LOW` (a light load runs on fewer modules; the band keeps the count from chattering),
        at least one while enabled."""
        if not usable:
            self._running = 0
            return []
        cap = sum(self._cap(s, voltage_v) for s in usable) / len(usable)
        fewest = math.ceil(current_a / (SHED_HIGH * cap)) if cap > 0 else len(usable)
        most = math.ceil(current_a / (SHED_LOW * cap)) if cap > 0 else len(usable)
        running = min(max(self._running, fewest), most)
        self._running = min(max(running, 1), len(usable))
        return usable[: self._running]

    def _shares(self, strings: list[list[TrackedModule]], current_a: float, voltage_v: float) -> dict[int, float]:
        """Each string's current (keyed by its first module): an even split, capped at what the string gives at
        the voltage (its weakest module); what a capped string cannot take goes to the others."""
        if not strings:
            return {}
        caps = {id(string[0]): self._cap(string, voltage_v) for string in strings}
        shares: dict[int, float] = {}
        left, open_keys = current_a, list(caps)
        while open_keys and left > 1e-9:
            even = left / len(open_keys)
            capped = [k for k in open_keys if caps[k] - shares.get(k, 0.0) <= even]
            if not capped:
                for k in open_keys:
                    shares[k] = shares.get(k, 0.0) + even
                left = 0.0
                break
            for k in capped:
                left -= caps[k] - shares.get(k, 0.0)
                shares[k] = caps[k]
                open_keys.remove(k)
        return {k: shares.get(k, 0.0) for k in caps}

    def _event(self, text: str) -> None:
        log.info("%s", text)
        self.events.append(StackEvent(self._now(), text))
