"""The truck's decisions: an `EvController` backed by the battery/BMS model and the driver's charging needs.

Each call first brings the physics behind the inlet up to the call's time, then answers from the pack's state at
that moment: the limits it announces are the BMS limits of now, the energy it asks for is what it needs now.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stack.session.controller import (
    ChargeLoopFeedback,
    ChargeParameters,
    EnergyRequest,
    EvLoopStep,
    PowerDeliveryStep,
    PowerLimits,
    PreChargeStep,
    Schedule,
    StopReason,
)
from stack.session.services import BPT_SERVICES, ControlMode, ParameterSet, ServiceId

from .battery import CloseResult, TruckBattery, WeldingStatus
from .inlet import Inlet
from .needs import ChargingNeeds, discharge_current_limit, energy_request


@dataclass
class TruckController:
    """A heavy truck at a depot or truck stop: asks for its service and follows its battery's limits."""

    battery: TruckBattery
    needs: ChargingNeeds
    inlet: Inlet
    service: ServiceId = ServiceId.MCS_BPT
    control_mode: ControlMode = ControlMode.DYNAMIC
    vin: str = "WMA06XZZ1MP123456"
    stop_reason: StopReason = StopReason.TERMINATE
    max_charge_loops: int | None = None  # a bench limit: stop after this many DC_ChargeLoopReq
    leave_at_target: bool = False  # stop charging once the target SoC is reached (else stay until departure)
    negotiated: ServiceId | None = None
    schedule: Schedule | None = None
    schedule_at: float | None = None  # when a renegotiated schedule was chosen (its entries run from then)
    started: float | None = None
    charge_loops: int = 0
    ended: tuple[str, bool] | None = None
    events: list[tuple[float, str]] = field(default_factory=list)

    def evcc_id(self, now: float) -> str:
        return self.vin

    def choose_service(self, offered: list[ServiceId], now: float) -> ServiceId | None:
        return self.service if self.service in offered else None

    def choose_parameter_set(self, service: ServiceId, sets: list[ParameterSet], now: float) -> ParameterSet | None:
        self.negotiated = service
        return next((p for p in sets if p.control_mode is self.control_mode), None)

    def charge_parameters(self, service: ServiceId, now: float) -> ChargeParameters:
        self.inlet.advance_to(now)
        self.negotiated = service
        return ChargeParameters(self._limits(now), target_soc=round(self.needs.target_soc * 100))

    def energy_request(self, service: ServiceId, mode: ControlMode, now: float) -> EnergyRequest:
        self.inlet.advance_to(now)
        return energy_request(self.battery, self.needs, now)

    def choose_schedule(self, schedules: list[Schedule], now: float) -> Schedule | None:
        self.schedule = schedules[0] if schedules else None
        self.schedule_at = now if self.started is not None else None  # a renegotiated schedule runs from now
        return self.schedule

    def pre_charge(self, evse_present_voltage: float | None, now: float) -> PreChargeStep:
        self.inlet.evse_reported(now, voltage=evse_present_voltage)
        target = self.battery.open_circuit_voltage()
        tolerance = self.battery.contactors.precharge_tolerance
        matched = evse_present_voltage is not None and abs(self.inlet.voltage() - target) <= tolerance
        return PreChargeStep(self._present_voltage(), target, matched)

    def power_delivery(self, progress: str, now: float) -> PowerDeliveryStep:
        self.inlet.advance_to(now)
        if progress != "Start":
            return PowerDeliveryStep()
        result = self.battery.close_contactors(self.inlet.voltage())
        self.events.append((now, f"contactors close: {result}"))
        if result not in (CloseResult.CLOSED, CloseResult.ALREADY_CLOSED):
            return PowerDeliveryStep(ready=False)
        self.started = now if self.started is None else self.started
        return PowerDeliveryStep(ready=True, discharge=False, max_charge_power=self.battery.charge_power_limit())

    def charge_loop(self, feedback: ChargeLoopFeedback | None, now: float) -> EvLoopStep:
        if feedback is None:
            self.inlet.advance_to(now)
        else:  # the pack follows the charger's measurements (a shared plant: up to now)
            at = now if feedback.received_at is None else feedback.received_at
            self.inlet.evse_reported(at, voltage=feedback.present_voltage, current=feedback.present_current)
        stop = self._stop(now)
        if stop is not None:
            return EvLoopStep(stop=stop)
        self.charge_loops += 1
        limits = self._limits(now)
        energy = energy_request(self.battery, self.needs, now)
        target_current = None
        if self.control_mode is ControlMode.SCHEDULED:
            power = self._scheduled_power(now)
            target_current = power / max(self.battery.present_voltage(), 1.0)
            target_current = max(-(limits.max_discharge_current or 0.0), min(target_current, limits.max_charge_current))
            if energy.target_energy <= 0 and target_current > 0:
                target_current = 0.0
        return EvLoopStep(
            present_voltage=self._present_voltage(),
            target_current=target_current,
            target_voltage=self.battery.spec.max_voltage,
            soc=self.battery.soc_percent,
            energy=energy,
            limits=limits,
            charging_complete=energy.target_energy <= 0,
        )

    def welding_detection(self, evse_present_voltage: float | None, now: float) -> bool:
        self.inlet.evse_reported(now, voltage=evse_present_voltage)
        if evse_present_voltage is None:  # the first call, after PowerDeliveryRes(Stop): open, then check
            self.battery.open_contactors(now)
            self.events.append((now, "contactors open"))
            return False
        status = self.battery.welding_check(self.inlet.voltage(), now)
        if status is WeldingStatus.SUSPECTED:
            self.events.append((now, "welded contactor suspected"))
        return status is not WeldingStatus.PENDING

    def session_ended(self, reason: str, ok: bool, now: float) -> None:
        self.inlet.advance_to(now)
        self.ended = (reason, ok)
        if self.battery.contactors_closed():
            self.battery.open_contactors(now)

    # -- the truck's own state --------------------------------------------------------------------------------
    def _present_voltage(self) -> float:
        return self.battery.present_voltage() if self.battery.contactors_closed() else self.inlet.voltage()

    def _stop(self, now: float) -> StopReason | None:
        departure = self.needs.departure_time
        if departure is not None and now >= departure:
            return self.stop_reason  # time to drive off
        if not self.battery.contactors_closed():  # the BMS opened them (SoC limit or fault)
            return StopReason.TERMINATE
        if self.max_charge_loops is not None and self.charge_loops >= self.max_charge_loops:
            return self.stop_reason
        if self.leave_at_target and self.battery.soc >= self.needs.target_soc:
            return self.stop_reason
        return None

    def _limits(self, now: float) -> PowerLimits:
        """The BMS's present limits (they taper with SoC); discharge only above the V2G reserve."""
        b, spec = self.battery, self.battery.spec
        charge = {
            "max_charge_power": b.charge_power_limit(),
            "min_charge_power": 0.0,
            "max_charge_current": b.charge_current_limit(),
            "min_charge_current": 0.0,
            "max_voltage": spec.max_voltage,
            "min_voltage": spec.min_voltage,
        }
        if (self.negotiated or self.service) not in BPT_SERVICES:
            return PowerLimits(**charge)
        current = discharge_current_limit(b, self.needs, now, charge["max_charge_power"])
        return PowerLimits(
            **charge,
            max_discharge_power=min(b.discharge_power_limit(), current * b.open_circuit_voltage()),
            min_discharge_power=0.0,
            max_discharge_current=current,
            min_discharge_current=0.0,
        )

    def _scheduled_power(self, now: float) -> float:
        """The chosen tuple's charging power minus its discharging power at this time (W)."""
        if self.schedule is None or self.started is None:
            return 0.0
        elapsed = now - (self.schedule_at if self.schedule_at is not None else self.started)
        return power_at(self.schedule.charge, elapsed) - power_at(self.schedule.discharge or (), elapsed)


def power_at(entries, elapsed: float) -> float:
    """Power of a schedule (consecutive entries from its time anchor) `elapsed` seconds in; 0 after its end."""
    for entry in entries:
        if elapsed < entry.duration:
            return entry.power
        elapsed -= entry.duration
    return 0.0
