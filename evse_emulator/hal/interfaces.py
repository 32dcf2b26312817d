"""The charger's hardware contract: four small Protocols, the value types they exchange, three IEC 61851-23 rules.

Units are SI floats (V, A, W, Wh, Ω, s). Current is signed from the vehicle's point of view: positive flows
into the EV (charging, energy imported by the EV), negative flows out of it (discharge, energy exported to the
grid). A driver never raises from a read: a device problem is a latched `PlantFault` returned by `fault()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class ContactorState(StrEnum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"
    OPENING = "opening"
    WELDED = "welded"  # commanded open, still conducting


class ImdStatus(StrEnum):
    IDLE = "idle"
    ONGOING = "ongoing"
    OK = "ok"
    FAULT = "fault"


class FaultKind(StrEnum):
    OVER_VOLTAGE = "over_voltage"  # emergency shutdown, IEC 61851-23 Table 103 / 61851-23-3 Table 202
    OVER_CURRENT = "over_current"  # emergency shutdown (Table CC.10)
    CONTACTOR_WELDED = "contactor_welded"
    CONTACTOR_FAILED_TO_CLOSE = "contactor_failed_to_close"
    INSULATION_FAULT = "insulation_fault"  # error shutdown (Table CC.10)
    IMD_SELF_TEST_FAILED = "imd_self_test_failed"
    MODULE_FAULT = "module_fault"  # every power module reports a fault alarm or protection (error shutdown)
    COMMUNICATION_LOST = "communication_lost"  # the power modules or the I/O board stopped answering on the bus
    PRE_CHARGE_FAILED = "pre_charge_failed"  # the output did not reach the EV's voltage within the time allowed


@dataclass(frozen=True, slots=True)
class PlantFault:
    """A latched device fault: what, why (human-readable, with the figures), when (driver time, s)."""

    kind: FaultKind
    detail: str
    time_s: float


@dataclass(frozen=True, slots=True)
class DcReading:
    """Present output of the power stage at the charger terminals."""

    voltage_v: float
    current_a: float  # > 0 into the EV

    @property
    def power_w(self) -> float:
        return self.voltage_v * self.current_a


@dataclass(frozen=True, slots=True)
class MeterSnapshot:
    """One consistent meter reading (energy registers only grow)."""

    imported_wh: float  # delivered to the EV
    exported_wh: float  # taken from the EV back to the grid
    power_w: float  # > 0 while charging
    timestamp_s: float


@dataclass(frozen=True, slots=True)
class EvReport:
    """What the EV said about itself over -20 (EVTargetVoltage at pre-charge, EVPresentVoltage in the loop; its
    contactors close before PowerDelivery(Start) and open after Stop): a simulated plant without a battery model
    of the truck models it from these."""

    voltage_v: float | None = None
    contactors_closed: bool | None = None


@dataclass(frozen=True, slots=True)
class StageCapability:
    """What a power stage can deliver now (a rack of modules shrinks when one is lost or derated)."""

    max_voltage_v: float
    min_voltage_v: float
    max_current_a: float
    max_power_w: float
    max_discharge_current_a: float = 0.0  # 0: unidirectional
    max_discharge_power_w: float = 0.0


class PowerStage(Protocol):
    """The DC converter: a CC/CV source bounded by a voltage, a signed current and a power limit."""

    def set_limits(self, voltage_v: float, current_a: float, power_w: float) -> None:
        """Regulate to `current_a` (signed) without exceeding `voltage_v` or `power_w` (magnitude)."""

    def enable(
        self, negotiated_max_voltage_v: float | None = None, negotiated_max_current_a: float | None = None
    ) -> None:
        """Switch the output on; arms the over-voltage and over-current protection for the negotiated maxima (None:
        the ratings); re-arms after a trip."""

    def disable(self) -> None:
        """Switch the output off (current to zero, output discharge engaged)."""

    def present(self) -> DcReading: ...

    def fault(self) -> PlantFault | None: ...

    def capability(self) -> StageCapability | None:
        """What the stage can deliver now; None: its ratings are the charger's configured ones."""


class Contactors(Protocol):
    """The charger's DC output contactors (both poles switched together)."""

    def close(self) -> None: ...

    def open(self) -> None: ...

    def state(self) -> ContactorState:
        """A failed close falls back to OPEN, a failed open ends in WELDED; `fault()` says why."""

    def fault(self) -> PlantFault | None: ...


class IsolationMonitor(Protocol):
    """The IMD: self-test, then insulation resistance DC+/DC- to PE at a test voltage, then monitoring."""

    def start(self, test_voltage_v: float) -> None:
        """Begin the cable check; the caller drives the output to `test_voltage_v` (`cable_check_test_voltage`)."""

    def stop(self) -> None: ...

    def status(self) -> ImdStatus: ...

    def resistance_ohm(self) -> float | None:
        """Last measured insulation resistance; None before the first measurement."""

    def fault(self) -> PlantFault | None: ...


class Meter(Protocol):
    """The DC energy meter at the charger terminals."""

    def imported_wh(self) -> float: ...

    def exported_wh(self) -> float: ...

    def power_w(self) -> float: ...

    def timestamp_s(self) -> float: ...

    def read(self) -> MeterSnapshot: ...


class VehicleTerminal(Protocol):
    """The vehicle as the plant sees it through the inlet: a battery behind the EV's contactors.

    The EV emulator owns the battery and its state of charge; the plant only pushes current into it.
    """

    def open_circuit_voltage(self) -> float: ...

    def internal_resistance(self) -> float: ...

    def contactors_closed(self) -> bool: ...

    def apply_current(self, amps: float, dt: float) -> None:
        """`amps` (> 0 charges) flowed for `dt` seconds; the EV integrates its charge."""


# The rules below are IEC 61851-23 figures every driver and controller needs; sources in PROTOCOL.md 9-10.

CABLE_CHECK_LOW_VOLTAGE_V = 500.0
INSULATION_FAULT_OHM_CCS = 100_000.0  # IEC 61851-23:2023 (the 2014 "warning" level was dropped)
INSULATION_FAULT_OHM_MCS = 125_000.0  # IEC 61851-23-3 draft, EVerest CABLECHECK_MCS_INSULATION_FAULT_RESISTANCE_OHM


def cable_check_test_voltage(ev_max_voltage_v: float, evse_max_voltage_v: float) -> float:
    """IEC 61851-23:2023 CC.4.1.2 formula CC.1."""
    if ev_max_voltage_v <= CABLE_CHECK_LOW_VOLTAGE_V:
        return min(ev_max_voltage_v + 50.0, CABLE_CHECK_LOW_VOLTAGE_V, evse_max_voltage_v)
    return min(1.1 * ev_max_voltage_v, evse_max_voltage_v)


def insulation_fault_threshold_ohm(mcs: bool) -> float:
    """Below this the cable check fails: 125 kΩ for MCS, 100 kΩ for CCS."""
    return INSULATION_FAULT_OHM_MCS if mcs else INSULATION_FAULT_OHM_CCS


# (negotiated maximum up to, emergency limit): IEC 61851-23:2023 Table 103; > 1 000 V: 61851-23-3 draft Table 202.
_EMERGENCY_OVER_VOLTAGE = ((500.0, 550.0), (750.0, 825.0), (850.0, 935.0), (1000.0, 1100.0))
EMERGENCY_OVER_VOLTAGE_ABOVE_1000_V = 1375.0
EMERGENCY_OVER_VOLTAGE_DELAY_S = 0.009  # shut down once above the limit for 9 ms


def emergency_over_voltage_limit(negotiated_max_voltage_v: float) -> float:
    """The output voltage above which the EVSE must shut down at once."""
    for up_to, limit in _EMERGENCY_OVER_VOLTAGE:
        if negotiated_max_voltage_v <= up_to:
            return limit
    return EMERGENCY_OVER_VOLTAGE_ABOVE_1000_V
