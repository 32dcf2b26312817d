"""The charger's reaction to a device fault, as IEC 61851-23 classes it (PROTOCOL.md section 10), sans-I/O.

- Emergency shutdown (over-voltage, over-current, Table CC.10): the converter off at once (its protection has
  already tripped it), the contactors opened as soon as the current has stopped.
- Error shutdown (insulation fault, module faults, lost communication, failed pre-charge, a failed IMD self-test):
  the current commanded to zero, the converter off once it is below `LOW_CURRENT_A`, then the contactors.

Either way the contactors open only below `LOW_CURRENT_A` (a DC contactor breaking load current welds), or after
`OPEN_ANYWAY_S` when the current does not stop (CC.3.4.2: an error shutdown that does not act escalates after
2.5 s). The session learns of the fault through `Hal.faults()`: the next DC_ChargeLoopRes carries
EVSENotification Terminate.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .hal import Hal, PlantFault
from .hal.interfaces import FaultKind

LOW_CURRENT_A = 5.0  # our choice: contactors open below this (the welding threshold of the mock is 300 A)
OPEN_ANYWAY_S = 2.5  # IEC 61851-23 CC.3.4.2 (PROTOCOL.md 10): escalation when a shutdown does not act


class Shutdown(StrEnum):
    EMERGENCY = "emergency"
    ERROR = "error"


SHUTDOWN_OF = {
    FaultKind.OVER_VOLTAGE: Shutdown.EMERGENCY,
    FaultKind.OVER_CURRENT: Shutdown.EMERGENCY,
}  # every other fault kind: an error shutdown


@dataclass(slots=True)
class Reaction:
    """What the charger did about one fault, with the times (charger clock) and the current it opened at."""

    fault: PlantFault
    shutdown: Shutdown
    acted_s: float
    disabled_s: float | None = None
    opened_s: float | None = None
    opened_at_a: float | None = None

    def json(self, origin: float = 0.0) -> dict[str, object]:
        """The reaction with its times in s after `origin` (e.g. the start of a simulation)."""

        def since(t: float | None) -> float | None:
            return None if t is None else round(t - origin, 4)

        return {
            "fault": self.fault.kind.value,
            "detail": self.fault.detail,
            "shutdown": self.shutdown.value,
            "detected_s": since(self.fault.time_s),
            "acted_s": since(self.acted_s),
            "disabled_s": since(self.disabled_s),
            "contactors_opened_s": since(self.opened_s),
            "opened_at_a": None if self.opened_at_a is None else round(self.opened_at_a, 1),
        }


class FaultSupervisor:
    """Watches the HAL's faults and shuts the output down; `check(now)` after every change the HAL reports."""

    def __init__(self, hal: Hal) -> None:
        self.hal = hal
        self.reactions: list[Reaction] = []
        self._seen: set[tuple[FaultKind, float]] = set()
        self._pending: Reaction | None = None
        self.raised: list[PlantFault] = []  # faults the charger's controller found itself (a failed pre-charge)

    def faults(self) -> list[PlantFault]:
        """The devices' faults and the controller's, oldest first."""
        return sorted([*self.hal.faults(), *self.raised], key=lambda f: f.time_s)

    def raise_fault(self, fault: PlantFault) -> None:
        """A fault the controller found: shut down as for a device's."""
        self.raised.append(fault)
        self.check(fault.time_s)

    def check(self, now: float) -> None:
        for fault in self.faults():
            key = (fault.kind, fault.time_s)
            if key not in self._seen:
                self._seen.add(key)
                self._react(fault, now)
        if self._pending is not None:
            self._finish(self._pending, now)

    def _react(self, fault: PlantFault, now: float) -> None:
        reaction = Reaction(fault, SHUTDOWN_OF.get(fault.kind, Shutdown.ERROR), now)
        self.reactions.append(reaction)
        stage = self.hal.power_stage
        if reaction.shutdown is Shutdown.EMERGENCY:
            stage.disable()
            reaction.disabled_s = now
        else:
            present = stage.present()
            stage.set_limits(present.voltage_v, 0.0, 0.0)
        if self._pending is None:
            self._pending = reaction
        self._finish(reaction, now)

    def _finish(self, reaction: Reaction, now: float) -> None:
        """Converter off once the current is low, then the contactors (or anyway after `OPEN_ANYWAY_S`)."""
        current = abs(self.hal.power_stage.present().current_a)
        late = now - reaction.acted_s >= OPEN_ANYWAY_S
        if current >= LOW_CURRENT_A and not late:
            return
        if reaction.disabled_s is None:
            self.hal.power_stage.disable()
            reaction.disabled_s = now
        self.hal.contactors.open()
        reaction.opened_s, reaction.opened_at_a = now, current
        self._pending = None
