"""The truck's decisions: an `EvController` backed by the battery/BMS model and the driver's charging needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from stack.session.controller import (
    ChargeLoopFeedback,
    EnergyRequest,
    EvLoopStep,
    PowerLimits,
    Schedule,
    StopReason,
)
from stack.session.services import BPT_SERVICES, ControlMode, ParameterSet, ServiceId

from .battery import CloseResult, TruckBattery, WeldingStatus
from .needs import ChargingNeeds, discharge_current_limit, energy_request


@dataclass
class TruckController:
    """A heavy truck at a depot or truck stop: asks for its service and follows its battery's limits."""

    battery: TruckBattery
    needs: ChargingNeeds
    inlet_voltage: Callable[[], float]  # what the EV measures at its inlet
    service: ServiceId = ServiceId.MCS_BPT
    control_mode: ControlMode = ControlMode.DYNAMIC
    vin: str = "WMA06XZZ1MP123456"
    stop_reason: StopReason = StopReason.TERMINATE
    schedule: Schedule | None = None
    started: float | None = None
    ended: tuple[str, bool] | None = None
    events: list[tuple[float, str]] = field(default_factory=list)
    _now: float = 0.0  # time of the latest request (the BMS limits depend on departure slack)
    _limits_cache: tuple | None = None  # limits are asked twice per request: compute them once

    def evcc_id(self) -> str:
        return self.vin

    def choose_service(self, offered: list[ServiceId]) -> ServiceId | None:
        return self.service if self.service in offered else None

    def choose_parameter_set(self, service: ServiceId, sets: list[ParameterSet]) -> ParameterSet | None:
        return next((p for p in sets if p.control_mode is self.control_mode), None)

    def limits(self, service: ServiceId) -> PowerLimits:
        """The BMS's present limits (they taper with SoC); discharge only above the V2G reserve."""
        key = (service, self._now, self.battery.soc)
        if self._limits_cache is not None and self._limits_cache[0] == key:
            return self._limits_cache[1]
        limits = self._compute_limits(service)
        self._limits_cache = (key, limits)
        return limits

    def _compute_limits(self, service: ServiceId) -> PowerLimits:
        b, spec = self.battery, self.battery.spec
        limits = PowerLimits(
            max_charge_power=b.charge_power_limit(),
            min_charge_power=0.0,
            max_charge_current=b.charge_current_limit(),
            min_charge_current=0.0,
            max_voltage=spec.max_voltage,
            min_voltage=spec.min_voltage,
        )
        if service not in BPT_SERVICES:
            return limits
        current = discharge_current_limit(b, self.needs, self._now, b.charge_power_limit())
        voltage = b.open_circuit_voltage()
        return PowerLimits(
            *(getattr(limits, f) for f in ("max_charge_power", "min_charge_power", "max_charge_current")),
            min_charge_current=0.0,
            max_voltage=limits.max_voltage,
            min_voltage=limits.min_voltage,
            max_discharge_power=min(b.discharge_power_limit(), current * voltage),
            min_discharge_power=0.0,
            max_discharge_current=current,
            min_discharge_current=0.0,
        )

    def energy_request(self, now: float) -> EnergyRequest:
        self._now = now
        return energy_request(self.battery, self.needs, now)

    def choose_schedule(self, schedules: list[Schedule]) -> Schedule:
        self.schedule = schedules[0]
        return self.schedule

    def present_voltage(self, now: float) -> float:
        return self.battery.present_voltage() if self.battery.contactors_closed() else self.inlet_voltage()

    def pre_charge_target(self, now: float) -> float:
        return self.battery.open_circuit_voltage()

    def discharge(self) -> bool:
        return False

    def contactors(self, closed: bool, now: float) -> bool:
        if closed:
            result = self.battery.close_contactors(self.inlet_voltage())
            self.events.append((now, f"contactors close: {result}"))
            if result in (CloseResult.CLOSED, CloseResult.ALREADY_CLOSED):
                self.started = now if self.started is None else self.started
                return True
            return False
        self.battery.open_contactors(now)
        self.events.append((now, "contactors open"))
        return True

    def charge_loop(self, feedback: ChargeLoopFeedback | None, now: float) -> EvLoopStep:
        self._now = now
        departure = self.needs.departure_time
        if departure is not None and now >= departure:
            return EvLoopStep(stop=self.stop_reason)  # time to drive off
        if not self.battery.contactors_closed():  # the BMS opened them (SoC limit or fault)
            return EvLoopStep(stop=StopReason.TERMINATE)
        energy = energy_request(self.battery, self.needs, now)
        target_current = None
        if self.control_mode is ControlMode.SCHEDULED:
            power = self._scheduled_power(now)
            target_current = power / max(self.battery.present_voltage(), 1.0)
            limits = self.limits(self.service)
            target_current = max(-(limits.max_discharge_current or 0.0), min(target_current, limits.max_charge_current))
            if energy.target_energy <= 0 and target_current > 0:
                target_current = 0.0
        return EvLoopStep(
            target_current=target_current,
            target_voltage=self.battery.spec.max_voltage,
            soc=self.battery.soc_percent,
            energy=energy,
            limits=self.limits(self.service),
        )

    def _scheduled_power(self, now: float) -> float:
        """The chosen tuple's charging power minus its discharging power at this time (W)."""
        if self.schedule is None or self.started is None:
            return 0.0
        elapsed = now - self.started
        return _power_at(self.schedule.charge, elapsed) - _power_at(self.schedule.discharge or (), elapsed)

    def welding_done(self, evse_voltage: float, now: float) -> bool:
        status = self.battery.welding_check(self.inlet_voltage(), now)
        if status is WeldingStatus.SUSPECTED:
            self.events.append((now, "welded contactor suspected"))
        return status is not WeldingStatus.PENDING

    def session_ended(self, reason: str, ok: bool, now: float) -> None:
        self.ended = (reason, ok)
        if self.battery.contactors_closed():
            self.battery.open_contactors(now)


def _power_at(entries, elapsed: float) -> float:
    """Power of a schedule (consecutive entries from its time anchor) `elapsed` seconds in; 0 after its end."""
    for entry in entries:
        if elapsed < entry.duration:
            return entry.power
        elapsed -= entry.duration
    return 0.0
