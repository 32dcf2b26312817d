"""The charger's decisions on top of its hardware: an `EvseController` driving a HAL (mock plant or CAN).

Each answer reads the power stage's measurements at the request's time (a simulated plant runs on the same
clock) and sets new setpoints that hold until the next request: a sample-and-hold control loop. What the EV
says about itself (its pack voltage, its contactors) is passed to a simulated plant, which needs it when it
has no battery model of the truck (a truck in another process).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from stack.session.controller import (
    AuthorizationStatus,
    CableCheckStatus,
    ChargeLoopInput,
    ChargeLoopOutput,
    EnergyRequest,
    MeterReading,
    PowerLimits,
    ScheduleAnswer,
)
from stack.session.services import BPT_SERVICES, ControlMode, ServiceId

from .energy.policy import ChargeToTarget, PolicyInput, SetpointPolicy
from .hal import (
    ContactorState,
    EvReport,
    FaultKind,
    Hal,
    ImdStatus,
    PlantFault,
    StageCapability,
    cable_check_test_voltage,
)
from .shutdown import FaultSupervisor

PRE_CHARGE_LIMIT_S = 7.0  # our choice: the charger gives up before the EV's 10 s PreCharge timeout (PROTOCOL.md 12.3)
PRE_CHARGE_TOLERANCE = 0.1  # matched within 10 % of the target, as EVerest's -20 EV judges it (PROTOCOL.md 10)
PRE_CHARGE_CURRENT = 2.0  # A; EVerest limits cable-check current to 2 A, pre-charge uses the same small figure


@dataclass
class PlantEvseController:
    """An MCS charger: ratings from its power stage, setpoints from a policy, measurements from the HAL."""

    hal: Hal
    ratings: PowerLimits
    policy: SetpointPolicy = field(default_factory=ChargeToTarget)
    evse_identifier: str = "DE*MCS*E0001"
    meter_id: str = "MCS-METER-0001"
    ev_limits: PowerLimits | None = None
    service: ServiceId | None = None
    started: float | None = None
    setpoint_a: float = 0.0  # the current last commanded (signed), for telemetry and tests
    cable_check_started: bool = False
    ended: str | None = None
    last_energy: EnergyRequest | None = None
    last_soc: int | None = None
    supervisor: FaultSupervisor | None = None  # shuts the output down on a fault; None: the HAL's faults only
    pre_charge_started: float | None = None
    # the EV asked pre-charge for more than its own maximum (Josev's simulated EV: 20 kV): its pack voltage is
    # unknown, so the pack it closes its contactors onto is taken at the output it accepted as matched
    pack_at_output: bool = False
    # ask once for MeteringConfirmation when the EV's target energy request falls to this many Wh (near the end);
    # the SECC passes it on only in a PnC session (stack/session/exchanges/metering_confirmation.py)
    metering_confirmation_wh: float | None = None
    metering_asked: bool = False
    _unidirectional: tuple[PowerLimits, PowerLimits] | None = field(default=None, init=False, repr=False, compare=False)

    def faults(self) -> list[PlantFault]:
        return self.supervisor.faults() if self.supervisor is not None else self.hal.faults()

    def evse_id(self, now: float) -> str:
        return self.evse_identifier

    def authorize(self, now: float, emaid: str | None = None) -> AuthorizationStatus:
        return AuthorizationStatus.ACCEPTED

    def _limits(self) -> PowerLimits:
        """The ratings for the session's service, within what the power stage can deliver now (a module stack
        that lost a module advertises less from the next message on)."""
        limits = self.ratings if self.service in BPT_SERVICES else self._charge_ratings()
        return within(limits, self.hal.power_stage.capability())

    def _charge_ratings(self) -> PowerLimits:
        """The ratings without their discharge side, made once per `ratings` (immutable; several times a loop)."""
        cached = self._unidirectional
        if cached is None or cached[0] is not self.ratings:
            self._unidirectional = cached = (self.ratings, self.ratings.unidirectional())
        return cached[1]

    def charge_parameters(self, service: ServiceId, ev: PowerLimits, now: float) -> PowerLimits:
        self.service, self.ev_limits = service, ev
        return self._limits()

    def schedule(self, service, mode, request, max_entries, now) -> ScheduleAnswer:
        self.last_energy = request
        pause = True if self.policy.pause(now) else None  # no energy wanted now: the EV rejoins later
        if mode is ControlMode.DYNAMIC:
            departure = None if request is None else request.departure_time
            return ScheduleAnswer(departure_time=departure, go_to_pause=pause)
        schedules = self.policy.schedules(max_entries, self.ratings, service in BPT_SERVICES, now)
        return ScheduleAnswer(schedules=schedules, go_to_pause=pause)

    def cable_check(self, now: float) -> CableCheckStatus:
        hal = self.hal
        if not self.cable_check_started:
            self.cable_check_started = True
            ev_max = self.ev_limits.max_voltage if self.ev_limits else self._limits().max_voltage
            test_voltage = cable_check_test_voltage(ev_max, self._limits().max_voltage)
            hal.contactors.close()
            hal.power_stage.set_limits(test_voltage, PRE_CHARGE_CURRENT, self._limits().max_charge_power)
            hal.power_stage.enable(test_voltage, self._ev_max_current())
            hal.imd.start(test_voltage)
            return CableCheckStatus.ONGOING
        status = hal.imd.status()
        if status is ImdStatus.FAULT or self.faults():
            self._switch_off()
            return CableCheckStatus.FAULT
        if status is ImdStatus.OK:
            return CableCheckStatus.OK
        return CableCheckStatus.ONGOING

    def pre_charge(self, target_voltage: float, now: float) -> float:
        ev_max = self.ev_limits.max_voltage if self.ev_limits else self._limits().max_voltage
        asked, target_voltage = target_voltage, max(0.0, min(target_voltage, ev_max, self._limits().max_voltage))
        stage = self.hal.power_stage
        if self.faults():  # shut down: the output stays off whatever the EV asks
            return stage.present().voltage_v
        self.pre_charge_started = now if self.pre_charge_started is None else self.pre_charge_started
        present = stage.present().voltage_v
        late = now - self.pre_charge_started > PRE_CHARGE_LIMIT_S
        if late and abs(present - target_voltage) > PRE_CHARGE_TOLERANCE * target_voltage and self.supervisor:
            detail = (
                f"output {present:.0f} V, EV target {target_voltage:.0f} V after {now - self.pre_charge_started:.1f} s"
            )
            self.supervisor.raise_fault(PlantFault(FaultKind.PRE_CHARGE_FAILED, detail, now))
            return stage.present().voltage_v
        # the pack the EV closes its contactors onto is at the voltage it asks for, when that is a pack voltage
        self.pack_at_output = asked > ev_max
        if not self.pack_at_output:
            self._ev_said(EvReport(voltage_v=target_voltage))
        stage.set_limits(target_voltage, PRE_CHARGE_CURRENT, self._limits().max_charge_power)
        stage.enable(self.ev_limits.max_voltage if self.ev_limits else target_voltage, self._ev_max_current())
        return stage.present().voltage_v

    def power_delivery(self, start: bool, discharge: bool, now: float) -> bool:
        hal = self.hal
        if start:
            if self.pack_at_output:
                self._ev_said(EvReport(voltage_v=hal.power_stage.present().voltage_v))
            self._ev_said(EvReport(contactors_closed=True))  # the EV closed its contactors before asking
            self.started = now if self.started is None else self.started
            ev_max = self.ev_limits.max_voltage if self.ev_limits else self._limits().max_voltage
            hal.power_stage.set_limits(ev_max, 0.0, self._limits().max_charge_power)  # the loop raises the current
            return hal.contactors.state() is ContactorState.CLOSED and not self.faults()
        self._switch_off()
        self._ev_said(EvReport(contactors_closed=False))
        return True

    def _ev_max_current(self) -> float | None:
        """The most current the EV takes or gives (what the over-current protection is armed for)."""
        ev = self.ev_limits
        if ev is None:
            return None
        return max(ev.max_charge_current, ev.max_discharge_current or 0.0)

    def _ev_said(self, report: EvReport) -> None:
        if self.hal.plant is not None:
            self.hal.plant.ev_reported(report)

    def _switch_off(self) -> None:
        self.cable_check_started = False
        self.pre_charge_started = None  # a new energy transfer (e.g. after renegotiation) tests again
        self.pack_at_output = False
        stage = self.hal.power_stage
        stage.set_limits(0.0, 0.0, 0.0)
        stage.disable()
        self.hal.contactors.open()
        self.setpoint_a = 0.0

    def charge_loop(self, loop: ChargeLoopInput, now: float) -> ChargeLoopOutput:
        ev = loop.ev_limits or self.ev_limits
        # a pack cannot sit above the EV's own maximum: a report beyond it (Josev's simulated EV says 20 kV) is
        # not physics the plant should follow
        ev_max = ev.max_voltage if ev else self._limits().max_voltage
        self._ev_said(EvReport(voltage_v=min(loop.ev_present_voltage, ev_max)))
        stage = self.hal.power_stage
        present = stage.present()
        rated = self._limits()  # the ratings now (a power stage that loses a module rates less)
        self.last_energy = loop.energy or self.last_energy
        self.last_soc = loop.soc if loop.soc is not None else self.last_soc
        voltage = max(present.voltage_v, loop.ev_present_voltage, 1.0)
        elapsed = 0.0 if self.started is None else now - self.started
        x = PolicyInput(elapsed, self.last_soc, ev, rated, self.last_energy, now, self._ev_max_current())
        power = self.policy.setpoint(x)  # asked in Scheduled mode too: the policy follows the session
        current = power / voltage
        if loop.control_mode is ControlMode.SCHEDULED and loop.target_current is not None:
            current = loop.target_current  # the EV follows its schedule
        current, limited = clamp_current(current, voltage, ev, rated, self._ev_max_current())
        faults = self.faults()
        pause = not faults and self.policy.pause(now)
        if faults or pause:  # shutting down (a fault) or pausing: no current until the EV stops
            current = 0.0
        self.setpoint_a = current
        rated = self._limits()  # again: a fault may have cost a module
        v_limit = ev.max_voltage if ev else rated.max_voltage
        stage.set_limits(v_limit, current, rated.max_charge_power)
        meter = self.hal.meter.read()
        return ChargeLoopOutput(
            present_voltage=present.voltage_v,
            present_current=present.current_a,
            limits=self.policy.advertise(self._limits(), now),
            current_limit_achieved=limited == "current",
            power_limit_achieved=limited == "power",
            voltage_limit_achieved=present.voltage_v >= v_limit - 1.0,
            meter=MeterReading(self.meter_id, int(meter.imported_wh), int(meter.exported_wh), int(now)),
            notification=_notification(faults, pause, self.policy.renegotiate(now)) or self._confirm_metering(),
        )

    def _confirm_metering(self) -> str | None:
        """MeteringConfirmation, once, when the EV's remaining target energy reached `metering_confirmation_wh`."""
        threshold, energy = self.metering_confirmation_wh, self.last_energy
        if self.metering_asked or threshold is None or energy is None or energy.target_energy > threshold:
            return None
        self.metering_asked = True
        return "MeteringConfirmation"

    def welding_detection(self, now: float) -> float:
        return self.hal.power_stage.present().voltage_v

    def session_ended(self, reason: str, now: float) -> None:
        self.ended = reason
        self.hal.imd.stop()
        self._switch_off()
        self._ev_said(EvReport(contactors_closed=False))


def _notification(faults: list[PlantFault], pause: bool, renegotiate: bool) -> str | None:
    """The EVSENotification of a charge loop: a fault terminates, then a pause, then a new schedule."""
    if faults:
        return "Terminate"
    if pause:
        return "Pause"
    return "ScheduleRenegotiation" if renegotiate else None


def within(limits: PowerLimits, capability: StageCapability | None) -> PowerLimits:
    """`limits` no wider than the power stage's present capability."""
    if capability is None:
        return limits
    discharge = limits.max_discharge_power is not None
    return replace(
        limits,
        max_voltage=min(limits.max_voltage, capability.max_voltage_v),
        min_voltage=max(limits.min_voltage, capability.min_voltage_v),
        max_charge_current=min(limits.max_charge_current, capability.max_current_a),
        max_charge_power=min(limits.max_charge_power, capability.max_power_w),
        max_discharge_current=(
            min(limits.max_discharge_current or 0.0, capability.max_discharge_current_a) if discharge else None
        ),
        max_discharge_power=(
            min(limits.max_discharge_power or 0.0, capability.max_discharge_power_w) if discharge else None
        ),
    )


def clamp_current(
    current: float, voltage: float, ev: PowerLimits | None, r: PowerLimits, armed: float | None
) -> tuple[float, str | None]:
    """Limit a signed current by the charger's ratings `r`, the EV's limits in this loop and `armed`, the
    current the over-current protection was armed for at the session's start (the EV's limits then: an EV
    whose loop limits grew since must not trip the charger); says which limit acted."""
    caps_armed = [] if armed is None else [("current", armed)]
    if current >= 0:
        caps = [("current", r.max_charge_current), ("power", r.max_charge_power / voltage)]
        if ev is not None:
            caps += [("current", ev.max_charge_current), ("power", ev.max_charge_power / voltage)]
    else:
        ev_power = (ev.max_discharge_power or 0.0) if ev else 0.0
        ev_current = (ev.max_discharge_current or 0.0) if ev else 0.0
        caps = [("current", r.max_discharge_current or 0.0), ("power", (r.max_discharge_power or 0.0) / voltage)]
        caps += [("current", ev_current), ("power", ev_power / voltage)]
    name, cap = min(caps + caps_armed, key=lambda c: c[1])
    if abs(current) <= cap:
        return current, None
    return (cap if current >= 0 else -cap), name
