"""Reference charger and truck decisions: the smallest that complete a -20 session, exact and cheap.

No physics: the charger reports what the truck asks for. The product's charger and truck (`evse_emulator.Charger`,
`ev_emulator.Truck`) put a plant and a battery model behind the same two doors. The conformance runner plays these
as its peers (the device under test meets a predictable counterpart), and the tests and benchmarks use them;
`examples/minimal_controllers.py` shows how to start your own from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stack.session.controller import (
    AuthorizationStatus,
    CableCheckStatus,
    ChargeLoopFeedback,
    ChargeLoopInput,
    ChargeLoopOutput,
    ChargeParameters,
    EnergyRequest,
    EvLoopStep,
    MeterReading,
    PowerDeliveryStep,
    PowerLimits,
    PreChargeStep,
    Schedule,
    ScheduleAnswer,
    ScheduleEntry,
    StopReason,
)
from stack.session.services import BPT_SERVICES, DC_SERVICES, ControlMode, ParameterSet, ServiceId

MCS_CHARGER = PowerLimits(
    max_charge_power=3_750_000,
    min_charge_power=5_000,
    max_charge_current=3000,
    min_charge_current=0,
    max_voltage=1250,
    min_voltage=200,
    max_discharge_power=3_750_000,
    min_discharge_power=5_000,
    max_discharge_current=3000,
    min_discharge_current=0,
)
# a first-generation MCS truck: 1000 A / 750 kW both ways, pack 650..1000 V (PROTOCOL.md section 9)
MCS_TRUCK = PowerLimits(
    max_charge_power=750_000,
    min_charge_power=10_000,
    max_charge_current=1000,
    min_charge_current=10,
    max_voltage=1000,
    min_voltage=650,
    max_discharge_power=750_000,
    min_discharge_power=10_000,
    max_discharge_current=1000,
    min_discharge_current=10,
)
WELDING_SAFE_VOLTAGE = 60.0  # V: the inlet is dead below this (EVerest's -2 EV)


@dataclass
class MinimalEvse:
    """A charger with fixed ratings that follows the EV: instant authorization, a short cable check."""

    ratings: PowerLimits = MCS_CHARGER
    evse_identifier: str = "DE*MCS*E0001"
    authorization_steps: int = 0  # Ongoing answers before accepting
    cable_check_steps: int = 1  # Ongoing answers before the insulation test passes
    cable_check_fault: bool = False
    notifications: dict[int, str] = field(default_factory=dict)  # charge-loop index -> EVSENotification
    loops: int = 0
    imported_wh: float = 0.0
    ended: str | None = None
    _auth_calls: int = 0
    _cable_calls: int = 0
    _last: float | None = None

    def evse_id(self, now: float) -> str:
        return self.evse_identifier

    def authorize(self, now: float, emaid: str | None = None) -> AuthorizationStatus:
        self._auth_calls += 1
        if self._auth_calls <= self.authorization_steps:
            return AuthorizationStatus.ONGOING
        return AuthorizationStatus.ACCEPTED

    def charge_parameters(self, service: ServiceId, ev: PowerLimits, now: float) -> PowerLimits:
        return self.ratings if service in BPT_SERVICES else self.ratings.unidirectional()

    def schedule(
        self, service: ServiceId, mode: ControlMode, request: EnergyRequest | None, max_entries: int, now: float
    ) -> ScheduleAnswer:
        if mode is ControlMode.DYNAMIC:
            return ScheduleAnswer(departure_time=None if request is None else request.departure_time)
        charge = tuple(ScheduleEntry(1800, self.ratings.max_charge_power) for _ in range(min(12, max_entries)))
        discharge = None
        if service in BPT_SERVICES:
            discharge = (ScheduleEntry(86_400, self.ratings.max_discharge_power or 0.0),)
        return ScheduleAnswer(schedules=(Schedule(1, charge, discharge),))

    def cable_check(self, now: float) -> CableCheckStatus:
        self._cable_calls += 1
        if self._cable_calls <= self.cable_check_steps:
            return CableCheckStatus.ONGOING
        return CableCheckStatus.FAULT if self.cable_check_fault else CableCheckStatus.OK

    def pre_charge(self, target_voltage: float, now: float) -> float:
        return target_voltage

    def power_delivery(self, start: bool, discharge: bool, now: float) -> bool:
        return True

    def charge_loop(self, loop: ChargeLoopInput, now: float) -> ChargeLoopOutput:
        self.loops += 1
        voltage = min(loop.ev_present_voltage, self.ratings.max_voltage)  # never report beyond the ratings
        ev, r = loop.ev_limits, self.ratings
        if loop.control_mode is ControlMode.SCHEDULED and loop.target_current is not None:
            current = min(loop.target_current, r.max_charge_current)
        else:
            current = r.max_charge_current if ev is None else min(ev.max_charge_current, r.max_charge_current)
            if voltage > 0:
                power = r.max_charge_power if ev is None else min(ev.max_charge_power, r.max_charge_power)
                current = min(current, power / voltage)
        if self._last is not None:
            self.imported_wh += voltage * current * max(0.0, now - self._last) / 3600
        self._last = now
        notification = self.notifications.get(self.loops)
        metered = loop.meter_info_requested or notification == "MeteringConfirmation"  # the reading to be signed
        return ChargeLoopOutput(
            present_voltage=voltage,
            present_current=current,
            limits=self.ratings,
            notification=notification,
            meter=MeterReading("SIMPLE-METER", int(self.imported_wh), 0) if metered else None,
        )

    def welding_detection(self, now: float) -> float:
        return 0.0

    def session_ended(self, reason: str, now: float) -> None:
        self.ended = reason


@dataclass
class MinimalEv:
    """A truck with a stiff battery: asks for its service, charges for `charge_loops` cycles, then stops."""

    service: ServiceId = ServiceId.MCS_BPT
    control_mode: ControlMode = ControlMode.DYNAMIC
    charge_loops: int = 10
    battery_voltage: float = 768.0
    limits: PowerLimits = MCS_TRUCK
    evcc_identifier: str = "WMA06XZZ1MP123456"
    stop_with: StopReason = StopReason.TERMINATE
    soc: int = 55
    loops: int = 0
    feedback: list[ChargeLoopFeedback] = field(default_factory=list)
    ended: tuple[str, bool] | None = None

    def evcc_id(self, now: float) -> str:
        return self.evcc_identifier

    def choose_service(self, offered: list[ServiceId], now: float) -> ServiceId | None:
        if self.service in offered:
            return self.service
        return next((s for s in offered if s in DC_SERVICES), None)

    def choose_parameter_set(self, service: ServiceId, sets: list[ParameterSet], now: float) -> ParameterSet | None:
        return next((p for p in sets if p.control_mode is self.control_mode), sets[0] if sets else None)

    def limits_for(self, service: ServiceId) -> PowerLimits:
        return self.limits if service in BPT_SERVICES else self.limits.unidirectional()

    def charge_parameters(self, service: ServiceId, now: float) -> ChargeParameters:
        return ChargeParameters(self.limits_for(service))

    def energy_request(
        self, service: ServiceId | None = None, mode: ControlMode | None = None, now: float = 0.0
    ) -> EnergyRequest:
        return EnergyRequest(
            target_energy=196_000,
            max_energy=252_000,
            min_energy=0,
            departure_time=7200,
            target_soc=90,
            min_soc=20,
            max_v2x_energy=84_000,
            min_v2x_energy=0,
        )

    def choose_schedule(self, schedules: list[Schedule], now: float) -> Schedule | None:
        return schedules[0] if schedules else None

    def pre_charge(self, evse_present_voltage: float | None, now: float) -> PreChargeStep:
        matched = evse_present_voltage is not None and abs(evse_present_voltage - self.battery_voltage) <= 20.0
        return PreChargeStep(self.battery_voltage, self.battery_voltage, matched)

    def power_delivery(self, progress: str, now: float) -> PowerDeliveryStep:
        return PowerDeliveryStep(ready=True, discharge=False, max_charge_power=self.limits.max_charge_power)

    def charge_loop(self, feedback: ChargeLoopFeedback | None, now: float) -> EvLoopStep:
        if feedback is not None:
            self.feedback.append(feedback)
        if self.loops >= self.charge_loops:
            return EvLoopStep(stop=self.stop_with)
        self.loops += 1
        return EvLoopStep(
            present_voltage=self.battery_voltage,
            target_current=self.limits.max_charge_current,
            target_voltage=self.limits.max_voltage,
            soc=self.soc,
            energy=self.energy_request(),
            limits=self.limits,
        )

    def welding_detection(self, evse_present_voltage: float | None, now: float) -> bool:
        return evse_present_voltage is not None and evse_present_voltage < WELDING_SAFE_VOLTAGE

    def session_ended(self, reason: str, ok: bool, now: float) -> None:
        self.ended = (reason, ok)
