"""The truck's side of the charging cable: what it measures at its inlet, and who moves current into its pack.

Two ways to be connected:

* to a simulated charger in the same process (`mcs-v2g sim`): the charger's plant integrates the physics of
  the whole circuit and pushes current into the battery; the inlet only reads it (see `mcs_v2g.sim`).
* to a charger somewhere else (`mcs-v2g ev` against a real or emulated SECC): the truck has only what the
  charger reports over -20. `ReportedSupply` is that virtual cable: the inlet voltage is the last
  EVSEPresentVoltage, and while the contactors are closed the pack carries the EVSEPresentCurrent of the
  reports, each placed at the time its response arrived and integrated between two reports by the trapezoid
  rule (exact while a converter ramps linearly). The pack is then up to one loop behind the charger; it is
  brought up to the present (the last current held) only when no report can come any more: the EV stopped
  the transfer or the session ended.
"""

from __future__ import annotations

from typing import Protocol

from .battery import TruckBattery


class Inlet(Protocol):
    def advance_to(self, now: float) -> None:
        """Bring the physics behind the inlet up to `now` (the truck is about to read its pack, or no report
        will tell it more)."""

    def voltage(self) -> float:
        """The voltage the EV measures at its inlet (for its pre-charge match and welding check)."""

    def evse_reported(self, at: float, voltage: float | None = None, current: float | None = None) -> None:
        """What a response of the charger said (EVSEPresentVoltage, EVSEPresentCurrent), received at `at`."""


class ReportedSupply:
    """A virtual cable fed by the charger's reports (a truck talking to a charger in another process)."""

    def __init__(self, battery: TruckBattery, start: float) -> None:
        self.battery = battery
        self.time = start
        self._voltage = 0.0
        self._current = 0.0

    def advance_to(self, now: float) -> None:
        dt = now - self.time
        if dt <= 0:
            return
        self.time = now
        if not self.battery.contactors_closed():
            self._current = 0.0
        elif self._current:
            self.battery.apply_current(self._current, dt)

    def voltage(self) -> float:
        if self.battery.contactors_closed():
            return self.battery.present_voltage()
        return self._voltage

    def evse_reported(self, at: float, voltage: float | None = None, current: float | None = None) -> None:
        if voltage is not None:
            self._voltage = voltage
        if current is None:
            return
        if not self.battery.contactors_closed():
            self.time, self._current = max(self.time, at), 0.0
            return
        dt = at - self.time
        if dt > 0:
            self.battery.apply_current((self._current + current) / 2, dt)
            self.time = at
        self._current = current
