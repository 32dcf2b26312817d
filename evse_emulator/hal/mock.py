"""The `mock` HAL driver: the charger's DC output as a physical model, stepped in simulated time.

    converter ──●────────────────[charger contactors]── cable (R_cable loop) ──[EV contactors]── battery
                │ C_out, R_bleed, R_discharge (switched in while disabled),       (OCV, R_batt, owned by the EV)
                │ insulation R+ and R- to PE
                └ voltage sensor and meter: "the terminals"

The charger measures (and meters) at its terminals, upstream of its contactors, where the output capacitance
and the discharge resistor sit. With every contactor closed the path is stiff (C_out·(R_cable + R_batt) is well
under a millisecond), so the node voltage is algebraic, V = OCV + I·(R_cable + R_batt), and the converter sets
the current (CC, tapering at its voltage limit: CV). Otherwise the converter only charges C_out: a voltage loop
follows a slew-limited reference with a first-order lag (pre-charge, cable check); once disabled the output
decays through the discharge resistor. Each step is solved in closed form (the battery's OCV held for the
step), so results do not depend on `dt`, except contactor and protection timing, which act at step boundaries.

With a `Clock` the plant runs on it: every reading and command first brings it up to the clock's present time
(in steps of at most `max_step_s`), so what the charger measures is the plant at that instant, whoever else
steps it. Without one (unit tests) it moves only by `step(dt)`.

The vehicle behind the cable is a `VehicleTerminal`: the truck's battery model when the truck is simulated in
the same process, or a `ReportedVehicle` built from what the EV says over -20 when it is not.

Figures without a source in PROTOCOL.md are model choices, documented on `PlantConfig`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

from stack.clock import Clock
from stack.config_file import ConfigError, Problem

from . import Hal
from .interfaces import (
    EMERGENCY_OVER_VOLTAGE_DELAY_S,
    ContactorState,
    DcReading,
    EvReport,
    FaultKind,
    ImdStatus,
    MeterSnapshot,
    PlantFault,
    StageCapability,
    VehicleTerminal,
    emergency_over_voltage_limit,
    insulation_fault_threshold_ohm,
)

J_PER_WH = 3600.0


# values a plant cannot work with at zero (divisions, ratings, the catch-up step)
_POSITIVE = frozenset(
    {
        "rated_voltage_v",
        "rated_current_a",
        "rated_power_w",
        "current_ramp_a_per_s",
        "voltage_slew_v_per_s",
        "output_capacitance_f",
        "bleed_ohm",
        "discharge_ohm",
        "insulation_pos_ohm",
        "insulation_neg_ohm",
        "over_current_factor",
        "runaway_voltage_factor",
        "max_step_s",
    }
)
# multiples of a rating: a trip below the rating (or a runaway below it) is no protection
_AT_LEAST_ONE = frozenset({"over_current_factor", "runaway_voltage_factor"})


def settings_for_loop(loop_interval_s: float) -> dict[str, float]:
    """The plant's settings for a simulated session at `loop_interval_s`: it catches up with the clock in steps of
    one charge loop (10 s at most) instead of 1 s (15 % less CPU in a depot run); the electrical
    solution does not depend on the step, contactor and protection timing act at its boundaries."""
    return {"max_step_s": min(10.0, loop_interval_s)}


@dataclass(frozen=True, slots=True)
class PlantConfig:
    """Ratings and component values of the mock charger (defaults: an MCS charger)."""

    # MCS ratings, PROTOCOL.md section 9 (1 250 V, 3 000 A, ~3.75 MW)
    rated_voltage_v: float = 1250.0
    rated_current_a: float = 3000.0
    rated_power_w: float = 3_750_000.0
    # Model choice: how fast the power modules raise |I|. EVerest's 25 A/s (PROTOCOL.md 10) is a controller
    # tuning applied on top; 500 A/s lets a full MCS ramp take 6 s. Reductions are immediate (see `_ramp`).
    current_ramp_a_per_s: float = 500.0
    # Model choice: soft-start slew of the voltage reference and the voltage loop's lag; pre-charge to 800 V
    # takes ~0.8 s, well inside the -20 PreCharge timeout (10 s in Josev and EVerest, PROTOCOL.md 12.3).
    voltage_slew_v_per_s: float = 1000.0
    voltage_loop_tau_s: float = 0.02
    # Model choice: a module regulates voltage with at least this current even when asked for ~0 A.
    min_regulated_current_a: float = 1.0
    # Model choice: film capacitors of the paralleled power modules and the output filter.
    output_capacitance_f: float = 20e-6
    # Model choice: the voltage-sensing divider, always present.
    bleed_ohm: float = 1e6
    # Model choice: active discharge while the output is disabled; tau = 0.2 s, 1 250 V -> 60 V in ~0.6 s.
    discharge_ohm: float = 10e3
    # Estimate: 5 m liquid-cooled MCS cable, 2 x 120 mm2 copper (1.43 mOhm loop) plus ~0.1 mOhm for each of
    # 4 contact interfaces (inlet, connector) ~ 1.8 mOhm, rounded up; 18 kW of cable loss at 3 000 A.
    cable_ohm: float = 2e-3
    # Model choice: DC contactor operate/release times (datasheets: 15-50 ms).
    contactor_close_s: float = 0.03
    contactor_open_s: float = 0.03
    # Model choice (10 % of the rating): breaking more than this welds the contacts; controllers ramp down first.
    weld_current_a: float = 300.0
    # IMD: 125 kOhm (MCS) or 100 kOhm (CCS) threshold, PROTOCOL.md 9-10; timing and healthy values are choices.
    mcs: bool = True
    insulation_pos_ohm: float = 5e6
    insulation_neg_ohm: float = 5e6
    imd_self_test_s: float = 0.5
    imd_measure_s: float = 2.0
    imd_voltage_tolerance: float = 0.05  # measure only while V >= (1 - tol) x test voltage
    # Model choice: emergency over-current shutdown (Table CC.10) above this multiple of the rated current.
    over_current_factor: float = 1.1
    # A failed voltage loop (injected) drives the output toward this multiple of the rated voltage.
    runaway_voltage_factor: float = 1.2
    # Model choice: the longest step when the plant catches up with its clock (contactor and protection timing
    # act at step boundaries; the electrical solution does not depend on the step).
    max_step_s: float = 1.0

    def __post_init__(self) -> None:
        """Refuse values the physics cannot work with: a `ConfigError` (a ValueError) naming every one."""
        problems = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(f.default, bool):
                if not isinstance(value, bool):
                    problems.append(Problem(f.name, f"must be true or false, got {value!r}"))
            elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                problems.append(Problem(f.name, f"must be a finite number, got {value!r}"))
            elif value < 0 or (value == 0 and f.name in _POSITIVE):
                problems.append(
                    Problem(f.name, f"must be {'positive' if f.name in _POSITIVE else '>= 0'}, got {value!r}")
                )
            elif f.name in _AT_LEAST_ONE and value < 1:
                problems.append(Problem(f.name, f"must be at least 1 (a multiple of the rating), got {value!r}"))
            elif f.name == "imd_voltage_tolerance" and value >= 1:
                problems.append(Problem(f.name, f"must be below 1 (a fraction of the test voltage), got {value!r}"))
        if problems:
            raise ConfigError(problems)

    @property
    def over_current_a(self) -> float:
        return self.over_current_factor * self.rated_current_a


# ---------------------------------------------------------------------------------------------- pure physics


class _Segment(NamedTuple):
    """Current changing linearly from `start` to `end` over `duration` seconds (never crossing zero); a tuple, as
    every step of the plant makes one or two."""

    duration: float
    start: float
    end: float

    @property
    def charge_c(self) -> float:
        return self.duration * (self.start + self.end) / 2

    def energy_j(self, ocv: float, r_path: float) -> float:
        """Exact ∫V·I dt with V = OCV + R·I and I linear in t."""
        a, b = self.start, self.end
        return self.duration * (ocv * (a + b) / 2 + r_path * (a * a + a * b + b * b) / 3)


def _ramp(i0: float, target: float, rate: float, dt: float) -> list[_Segment]:
    """Raise |I| toward `target` at `rate` A/s; a lower magnitude or a sign change applies at once.

    Power modules shed current within a control cycle (~1 ms); only the rise is slew-limited. This also
    keeps the current inside a limit the moment the limit is lowered.
    """
    if i0 * target < 0 or abs(target) <= abs(i0):
        i0 = target if i0 * target >= 0 else 0.0
    if i0 == target:
        return [_Segment(dt, target, target)]
    t_reach = abs(target - i0) / rate
    if t_reach >= dt:
        return [_Segment(dt, i0, i0 + math.copysign(rate * dt, target))]
    return [_Segment(t_reach, i0, target), _Segment(dt - t_reach, target, target)]


def _charge_current_for_power(ocv: float, r_path: float, power_w: float) -> float:
    """I >= 0 with (OCV + R·I)·I = P."""
    ocv = max(ocv, 0.0)
    root = math.sqrt(ocv * ocv + 4 * r_path * power_w)
    return 2 * power_w / (ocv + root) if ocv + root > 0 else math.inf


def _discharge_current_for_power(ocv: float, r_path: float, power_w: float) -> float:
    """x >= 0 with (OCV - R·x)·x = P; infinite when the battery cannot deliver P at all."""
    disc = ocv * ocv - 4 * r_path * power_w
    if ocv <= 0 or disc < 0:
        return math.inf
    return 2 * power_w / (ocv + math.sqrt(disc))


def _follow(v0: float, ref0: float, ref_target: float, slew: float, tau: float, dt: float) -> tuple[float, float]:
    """Exact response of a first-order lag (tau) to a reference slewing at `slew` toward `ref_target`.

    Returns (output, reference) after `dt`.
    """
    direction = math.copysign(1.0, ref_target - ref0)
    t1 = min(dt, abs(ref_target - ref0) / slew) if slew > 0 else 0.0
    s = direction * slew
    if tau <= 0:
        ref1 = ref_target if t1 < dt else ref0 + s * t1
        return ref1, ref1
    # segment 1: ramping reference r(t) = ref0 + s·t
    y = ref0 + s * t1 - s * tau + (v0 - ref0 + s * tau) * math.exp(-t1 / tau)
    ref = ref0 + s * t1
    if t1 < dt:  # segment 2: constant reference
        ref = ref_target
        y = ref + (y - ref) * math.exp(-(dt - t1) / tau)
    return y, ref


def _parallel(a: float, b: float) -> float:
    return 1.0 / (1.0 / a + 1.0 / b)


# ---------------------------------------------------------------------------------------------- devices


def _no_sync() -> None:
    pass


@dataclass(slots=True)
class _Terminal:
    """The shared state of the output node: what every device observes (after `sync`, the plant's catch-up)."""

    voltage_v: float = 0.0
    current_a: float = 0.0  # into the cable, > 0 toward the EV
    time_s: float = 0.0
    sync: Callable[[], None] = _no_sync


class MockPowerStage:
    """The converter's command side; the plant does the physics."""

    def __init__(self, config: PlantConfig, terminal: _Terminal) -> None:
        self._config = config
        self._terminal = terminal
        self.voltage_limit_v = 0.0
        self.current_limit_a = 0.0
        self.power_limit_w = 0.0
        self.enabled = False
        self.negotiated_max_voltage_v: float | None = None
        self.negotiated_max_current_a: float | None = None
        self.regulation_failed = False
        self.current_runaway = False  # injected: the current loop ignores its limits
        self.voltage_cap_v: float | None = None  # injected: the output cannot rise above this (pre-charge failure)
        self._fault: PlantFault | None = None

    def set_limits(self, voltage_v: float, current_a: float, power_w: float) -> None:
        self._terminal.sync()
        if not (math.isfinite(voltage_v) and math.isfinite(current_a) and math.isfinite(power_w)):
            raise ValueError("power stage limits must be finite")
        if voltage_v < 0 or power_w < 0:
            raise ValueError(f"voltage and power limits are magnitudes, got {voltage_v} V, {power_w} W")
        self.voltage_limit_v = float(voltage_v)
        self.current_limit_a = float(current_a)
        self.power_limit_w = float(power_w)

    def enable(
        self, negotiated_max_voltage_v: float | None = None, negotiated_max_current_a: float | None = None
    ) -> None:
        self._terminal.sync()
        self.enabled = True
        self.negotiated_max_voltage_v = negotiated_max_voltage_v
        self.negotiated_max_current_a = negotiated_max_current_a
        self._fault = None

    def disable(self) -> None:
        self._terminal.sync()
        self.enabled = False

    def present(self) -> DcReading:
        self._terminal.sync()
        return DcReading(self._terminal.voltage_v, self._terminal.current_a)

    def fault(self) -> PlantFault | None:
        self._terminal.sync()
        return self._fault

    def capability(self) -> StageCapability | None:
        return None  # one converter at the configured ratings

    def over_voltage_limit_v(self) -> float:
        """The emergency threshold armed for this session (from the rating when nothing was negotiated)."""
        negotiated = self.negotiated_max_voltage_v
        return emergency_over_voltage_limit(self._config.rated_voltage_v if negotiated is None else negotiated)

    def over_current_limit_a(self) -> float:
        """The over-current trip armed for this session: `over_current_factor` times the negotiated maximum
        current (the EV's), else the rating (model choice: PROTOCOL.md gives no figure, Table CC.10 the class)."""
        negotiated = self.negotiated_max_current_a
        rated = self._config.rated_current_a
        return self._config.over_current_factor * (rated if negotiated is None else min(negotiated, rated))

    def voltage_ceiling_v(self) -> float:
        """The voltage the converter will not exceed (a failed loop runs away)."""
        if self.regulation_failed:
            return self._config.runaway_voltage_factor * self._config.rated_voltage_v
        ceiling = min(self.voltage_limit_v, self._config.rated_voltage_v)
        return ceiling if self.voltage_cap_v is None else min(ceiling, self.voltage_cap_v)

    def trip(self, fault: PlantFault) -> None:
        self.enabled = False
        self._fault = fault


class MockContactors:
    """Contactors with operate/release time, fail-to-close and welding when breaking under load."""

    def __init__(self, config: PlantConfig, terminal: _Terminal) -> None:
        self._config = config
        self._terminal = terminal
        self._state = ContactorState.OPEN
        self._timer = 0.0
        self._fault: PlantFault | None = None
        self.weld_on_next_open = False
        self.fail_next_close = False

    def close(self) -> None:
        self._terminal.sync()
        if self._state is ContactorState.OPEN:
            self._state, self._timer = ContactorState.CLOSING, self._config.contactor_close_s
        elif self._state is ContactorState.OPENING:
            self._state = ContactorState.CLOSED  # never broke

    def open(self) -> None:
        self._terminal.sync()
        if self._state is ContactorState.CLOSED:
            self._state, self._timer = ContactorState.OPENING, self._config.contactor_open_s
        elif self._state is ContactorState.CLOSING:
            self._state = ContactorState.OPEN  # never made

    def state(self) -> ContactorState:
        self._terminal.sync()
        return self._state

    def fault(self) -> PlantFault | None:
        self._terminal.sync()
        return self._fault

    @property
    def conducting(self) -> bool:
        return self._state in (ContactorState.CLOSED, ContactorState.OPENING, ContactorState.WELDED)

    @property
    def at_rest(self) -> bool:
        """Open with no operation pending: `advance` changes nothing."""
        return self._state is ContactorState.OPEN

    def advance(self, dt: float) -> None:
        """Finish a pending operation; a break happens at the current flowing at that instant."""
        if self._state not in (ContactorState.CLOSING, ContactorState.OPENING):
            return
        self._timer -= dt
        if self._timer > 1e-12:
            return
        now = self._terminal.time_s + dt
        if self._state is ContactorState.CLOSING:
            if self.fail_next_close:
                self.fail_next_close = False
                self._state = ContactorState.OPEN
                self._fault = PlantFault(FaultKind.CONTACTOR_FAILED_TO_CLOSE, "no auxiliary feedback", now)
            else:
                self._state = ContactorState.CLOSED
            return
        breaking = abs(self._terminal.current_a)
        if self.weld_on_next_open or breaking > self._config.weld_current_a:
            why = "injected" if self.weld_on_next_open else f"opened under {breaking:.0f} A"
            self.weld_on_next_open = False
            self._state = ContactorState.WELDED
            self._fault = PlantFault(FaultKind.CONTACTOR_WELDED, why, now)
        else:
            self._state = ContactorState.OPEN


class MockImd:
    """An insulation monitor: self-test, a measurement at the test voltage, then continuous monitoring.

    It reports R+ ∥ R- (IEC 61557-8 devices measure the whole system to earth), measured only while the
    output holds at least (1 - tolerance) of the test voltage; waiting for it is the caller's timeout.
    """

    def __init__(self, config: PlantConfig, terminal: _Terminal) -> None:
        self._config = config
        self._terminal = terminal
        self.pos_ohm = config.insulation_pos_ohm
        self.neg_ohm = config.insulation_neg_ohm
        self.fail_self_test = False
        self._phase = "idle"  # idle, self_test, measure, monitor
        self._timer = 0.0
        self._test_voltage_v = 0.0
        self._status = ImdStatus.IDLE
        self._resistance: float | None = None
        self._fault: PlantFault | None = None

    def start(self, test_voltage_v: float) -> None:
        self._terminal.sync()
        self._phase, self._timer = "self_test", self._config.imd_self_test_s
        self._test_voltage_v = test_voltage_v
        self._status = ImdStatus.ONGOING
        self._fault = None

    def stop(self) -> None:
        self._terminal.sync()
        self._phase = "idle"
        if self._status is ImdStatus.ONGOING:
            self._status = ImdStatus.IDLE

    def status(self) -> ImdStatus:
        self._terminal.sync()
        return self._status

    def resistance_ohm(self) -> float | None:
        self._terminal.sync()
        return self._resistance

    def fault(self) -> PlantFault | None:
        self._terminal.sync()
        return self._fault

    @property
    def insulation_ohm(self) -> float:
        return _parallel(self.pos_ohm, self.neg_ohm)

    @property
    def at_rest(self) -> bool:
        """Neither testing nor monitoring: `advance` changes nothing."""
        return self._phase == "idle"

    def advance(self, dt: float) -> None:
        now = self._terminal.time_s + dt
        if self._phase == "self_test":
            self._timer -= dt
            if self._timer <= 1e-12:
                if self.fail_self_test:
                    self._finish(PlantFault(FaultKind.IMD_SELF_TEST_FAILED, "test resistor not detected", now))
                else:
                    self._phase, self._timer = "measure", self._config.imd_measure_s
        elif self._phase == "measure":
            if self._terminal.voltage_v >= (1 - self._config.imd_voltage_tolerance) * self._test_voltage_v:
                self._timer -= dt
            if self._timer <= 1e-12:
                self._phase = "monitor"
                self._status = ImdStatus.OK
                self._check(now)
        elif self._phase == "monitor":
            self._check(now)

    def _check(self, now: float) -> None:
        self._resistance = r = self.insulation_ohm
        threshold = insulation_fault_threshold_ohm(self._config.mcs)
        if r < threshold:
            self._finish(PlantFault(FaultKind.INSULATION_FAULT, f"{r / 1e3:.1f} kΩ < {threshold / 1e3:.0f} kΩ", now))

    def _finish(self, fault: PlantFault) -> None:
        self._phase = "idle"
        self._status = ImdStatus.FAULT
        self._fault = fault


class MockMeter:
    """Energy registers fed with the exact ∫V·I dt of each step."""

    def __init__(self, terminal: _Terminal) -> None:
        self._terminal = terminal
        self._imported_j = 0.0
        self._exported_j = 0.0

    def imported_wh(self) -> float:
        self._terminal.sync()
        return self._imported_j / J_PER_WH

    def exported_wh(self) -> float:
        self._terminal.sync()
        return self._exported_j / J_PER_WH

    def power_w(self) -> float:
        self._terminal.sync()
        return self._terminal.voltage_v * self._terminal.current_a

    def timestamp_s(self) -> float:
        self._terminal.sync()
        return self._terminal.time_s

    def read(self) -> MeterSnapshot:
        self._terminal.sync()
        t = self._terminal
        return MeterSnapshot(
            self._imported_j / J_PER_WH, self._exported_j / J_PER_WH, t.voltage_v * t.current_a, t.time_s
        )

    def add(self, energy_j: float) -> None:
        if energy_j >= 0:
            self._imported_j += energy_j
        else:
            self._exported_j -= energy_j


# ---------------------------------------------------------------------------------------------- the plant


class MockPlant:
    """The charger output, its cable and the vehicle behind it; advance with `step(dt)`."""

    def __init__(
        self, vehicle: VehicleTerminal | None = None, config: PlantConfig | None = None, clock: Clock | None = None
    ) -> None:
        self.config = config or PlantConfig()
        self.vehicle = vehicle
        self.clock = clock
        self.terminal = _Terminal(time_s=clock.now() if clock is not None else 0.0)
        if clock is not None:
            self.terminal.sync = self.sync
        self.power_stage = MockPowerStage(self.config, self.terminal)
        self.contactors = MockContactors(self.config, self.terminal)
        self.imd = MockImd(self.config, self.terminal)
        self.meter = MockMeter(self.terminal)
        self._reference_v = 0.0  # the voltage loop's slewing reference
        self._was_enabled = False
        self._was_connected = False
        self._over_voltage_s = 0.0
        self.cable_loss_j = 0.0  # I^2 R of the cable (the meter counts it, the EV's pack does not)
        self.load_dumped = False  # injected: the vehicle is off the cable
        self._syncing = False

    @property
    def cable_loss_wh(self) -> float:
        return self.cable_loss_j / J_PER_WH

    def sync(self) -> None:
        """Catch up with the clock (a no-op without one, and inside a step)."""
        if self.clock is None or self._syncing:
            return
        self._syncing = True
        try:
            now = self.clock.now()
            while self.terminal.time_s < now - 1e-9:
                self.step(min(self.config.max_step_s, now - self.terminal.time_s))
        finally:
            self._syncing = False

    def snapshot(self) -> tuple[float, DcReading, MeterSnapshot]:
        """(time, output, meter) where the plant stands, without catching up with the clock (for samplers)."""
        t = self.terminal
        meter = self.meter
        energy = MeterSnapshot(
            meter._imported_j / J_PER_WH, meter._exported_j / J_PER_WH, t.voltage_v * t.current_a, t.time_s
        )
        return t.time_s, DcReading(t.voltage_v, t.current_a), energy

    def ev_reported(self, report: EvReport) -> None:
        """Pass what the EV said to a vehicle modelled from its reports; a simulated battery needs none of it."""
        self.sync()
        if isinstance(self.vehicle, ReportedVehicle):
            self.vehicle.update(report)

    def hal(self) -> Hal:
        return Hal(self.power_stage, self.contactors, self.imd, self.meter, plant=self)

    # -- the vehicle side and fault injection (not part of the HAL) --

    def plug(self, vehicle: VehicleTerminal | None) -> None:
        self.vehicle = vehicle

    def inlet_voltage(self) -> float:
        """What the EV measures at its inlet (for its pre-charge match and welding check)."""
        self.sync()
        vehicle = self.vehicle
        if vehicle is None:
            return 0.0
        if self._was_connected:
            return vehicle.open_circuit_voltage() + self.terminal.current_a * vehicle.internal_resistance()
        if self.contactors.conducting:
            return self.terminal.voltage_v
        return vehicle.open_circuit_voltage() if vehicle.contactors_closed() else 0.0

    def inject_insulation_fault(self, ohm: float, pole: str = "DC+") -> None:
        if pole == "DC+":
            self.imd.pos_ohm = ohm
        elif pole == "DC-":
            self.imd.neg_ohm = ohm
        else:
            raise ValueError(f"pole must be 'DC+' or 'DC-', got {pole!r}")

    def inject_contactor_weld(self) -> None:
        self.contactors.weld_on_next_open = True

    def inject_contactor_close_failure(self) -> None:
        self.contactors.fail_next_close = True

    def inject_imd_self_test_failure(self) -> None:
        self.imd.fail_self_test = True

    def inject_regulation_fault(self) -> None:
        """The voltage loop loses its feedback and the output runs away (over-voltage protection must act)."""
        self.power_stage.regulation_failed = True

    def inject_load_dump(self) -> None:
        """The vehicle drops off the cable under load (its contactors open, a cable breaks): the output is left
        on C_out alone, where a failed voltage loop runs away."""
        self.load_dumped = True

    def inject_current_runaway(self) -> None:
        """The current loop loses its feedback: the current rises at the ramp rate past every limit (over-current
        protection must act)."""
        self.power_stage.current_runaway = True

    def inject_voltage_cap(self, voltage_v: float) -> None:
        """The converter's output collapses to `voltage_v` and cannot rise above it (a failed pre-charge when
        below the EV's voltage)."""
        self.sync()
        self.power_stage.voltage_cap_v = voltage_v
        if self.terminal.voltage_v > voltage_v and not self._was_connected:
            self.terminal.voltage_v = self._reference_v = voltage_v

    # -- simulation --

    def step(self, dt: float) -> None:
        if dt < 0:
            raise ValueError(f"dt must not be negative, got {dt}")
        if dt == 0:
            return
        syncing, self._syncing = self._syncing, True  # the devices read the terminal without catching up
        try:
            self._step(dt)
        finally:
            self._syncing = syncing

    def _step(self, dt: float) -> None:
        if self._at_rest():  # an idle charger: a full step would only move the time (each device stays as it is)
            self.terminal.time_s += dt
            return
        if not self.power_stage.enabled:
            # a disabled converter stops conducting within microseconds, long before a contactor releases
            # (30 ms): an emergency switch-off (disable, then open) breaks at zero current, it does not weld
            self.terminal.current_a = 0.0
        self.contactors.advance(dt)
        vehicle = self.vehicle
        connected = (
            self.contactors.conducting and vehicle is not None and vehicle.contactors_closed() and not self.load_dumped
        )
        stage = self.power_stage
        if stage.enabled and not self._was_enabled:
            self._reference_v = self.terminal.voltage_v  # soft start from the present output
        if connected and vehicle is not None:
            if not self._was_connected:
                self._check_inrush(vehicle, dt)
            self._step_connected(vehicle, dt)
        else:
            self._step_open(dt)
        self._was_connected = connected
        self._was_enabled = stage.enabled
        self.imd.advance(dt)
        self.terminal.time_s += dt
        self._protect(dt)

    def _at_rest(self) -> bool:
        """Off and discharged, as in the last step: the converter disabled, the contactors open, no voltage, current
        or voltage reference left, the IMD idle, no over-voltage being timed. A step of `_step_open` leaves every
        one of them unchanged (0 V decays to 0 V), so only the time moves."""
        t = self.terminal
        return (
            not self.power_stage.enabled
            and not self._was_enabled
            and not self._was_connected
            and self.contactors.at_rest
            and self.imd.at_rest
            and t.voltage_v == 0.0
            and t.current_a == 0.0
            and self._reference_v == 0.0
            and self._over_voltage_s == 0.0
        )

    def _path_ohm(self, vehicle: VehicleTerminal) -> float:
        return self.config.cable_ohm + vehicle.internal_resistance()

    def _target_current(self, ocv: float, r_path: float) -> float:
        """The converter's CC setpoint after its ratings, the power limit and the voltage ceiling."""
        stage, cfg = self.power_stage, self.config
        if not stage.enabled:
            return 0.0
        if stage.current_runaway:
            return math.copysign(2 * cfg.over_current_a, stage.current_limit_a or 1.0)
        power = min(stage.power_limit_w, cfg.rated_power_w)
        if stage.current_limit_a >= 0:
            by_voltage = (stage.voltage_ceiling_v() - ocv) / r_path if r_path > 0 else math.inf
            ceiling = min(stage.current_limit_a, cfg.rated_current_a, _charge_current_for_power(ocv, r_path, power))
            return max(0.0, min(ceiling, by_voltage))
        magnitude = min(-stage.current_limit_a, cfg.rated_current_a, _discharge_current_for_power(ocv, r_path, power))
        return -magnitude

    def _step_connected(self, vehicle: VehicleTerminal, dt: float) -> None:
        ocv, r_path = vehicle.open_circuit_voltage(), self._path_ohm(vehicle)
        target = self._target_current(ocv, r_path)
        if self.power_stage.enabled:
            segments = _ramp(self.terminal.current_a, target, self.config.current_ramp_a_per_s, dt)
        else:
            segments = [_Segment(dt, 0.0, 0.0)]
        for segment in segments:
            self.meter.add(segment.energy_j(ocv, r_path))
            a, b = segment.start, segment.end
            self.cable_loss_j += self.config.cable_ohm * segment.duration * (a * a + a * b + b * b) / 3
        vehicle.apply_current(sum(s.charge_c for s in segments) / dt, dt)
        current = segments[-1].end
        self.terminal.current_a = current
        self.terminal.voltage_v = vehicle.open_circuit_voltage() + current * r_path
        self._reference_v = self.terminal.voltage_v

    def _step_open(self, dt: float) -> None:
        """Only C_out is on the converter: voltage-loop tracking when enabled, resistive decay when not."""
        cfg, stage = self.config, self.power_stage
        self.terminal.current_a = 0.0
        v0 = self.terminal.voltage_v
        load_ohm = _parallel(cfg.bleed_ohm, self.imd.pos_ohm + self.imd.neg_ohm)
        if not stage.enabled:
            tau = _parallel(load_ohm, cfg.discharge_ohm) * cfg.output_capacitance_f
            self.terminal.voltage_v = v0 * math.exp(-dt / tau)
            self._reference_v = self.terminal.voltage_v
            return
        v1, self._reference_v = _follow(
            v0, self._reference_v, stage.voltage_ceiling_v(), cfg.voltage_slew_v_per_s, cfg.voltage_loop_tau_s, dt
        )
        # the loop cannot push more than its current capability into C_out (plus the bleed load)
        capability = max(abs(stage.current_limit_a), cfg.min_regulated_current_a)
        rise = (capability - v0 / load_ohm) / cfg.output_capacitance_f * dt
        fall = (capability + v0 / load_ohm) / cfg.output_capacitance_f * dt
        self.terminal.voltage_v = max(0.0, min(v1, v0 + rise), v0 - fall)

    def _check_inrush(self, vehicle: VehicleTerminal, dt: float) -> None:
        """Closing onto a battery at another voltage: C_out dumps into it, peak ΔV / (R_cable + R_batt)."""
        delta = self.terminal.voltage_v - vehicle.open_circuit_voltage()
        peak = abs(delta) / self._path_ohm(vehicle)
        if peak > self.power_stage.over_current_limit_a():
            detail = f"inrush {peak:.0f} A: closed onto the battery with {delta:+.0f} V difference"
            self._trip(PlantFault(FaultKind.OVER_CURRENT, detail, self.terminal.time_s + dt))

    def _protect(self, dt: float) -> None:
        """Emergency shutdowns: over-voltage above the armed limit for 9 ms, over-current at once."""
        stage, term = self.power_stage, self.terminal
        if not stage.enabled:
            self._over_voltage_s = 0.0
            return
        limit = stage.over_voltage_limit_v()
        self._over_voltage_s = self._over_voltage_s + dt if term.voltage_v > limit else 0.0
        if self._over_voltage_s >= EMERGENCY_OVER_VOLTAGE_DELAY_S:
            self._trip(PlantFault(FaultKind.OVER_VOLTAGE, f"{term.voltage_v:.0f} V > {limit:.0f} V", term.time_s))
        elif abs(term.current_a) > (limit := stage.over_current_limit_a()):
            self._trip(PlantFault(FaultKind.OVER_CURRENT, f"{term.current_a:.0f} A > {limit:.0f} A", term.time_s))

    def _trip(self, fault: PlantFault) -> None:
        self.power_stage.trip(fault)
        self.contactors.open()
        self._over_voltage_s = 0.0


class ReportedVehicle:
    """The truck behind the cable, modelled from what it says over -20 (for a truck in another process): a
    voltage source at its reported pack voltage behind an assumed resistance, connected while it says its
    contactors are closed. The pack's state of charge is the truck's business, not the charger's."""

    def __init__(self, resistance_ohm: float = 0.03) -> None:
        # Model choice: 30 mOhm, the order of a 750 V heavy-truck pack (ev_emulator's default pack: ~37 mOhm)
        self.resistance_ohm = resistance_ohm
        self._ocv = 0.0
        self._closed = False
        self._current = 0.0

    def update(self, report: EvReport) -> None:
        if report.contactors_closed is not None:
            self._closed = report.contactors_closed
        if report.voltage_v is not None:  # a terminal voltage under load: take the drop of its resistance off
            current = self._current if self._closed else 0.0
            self._ocv = max(0.0, report.voltage_v - current * self.resistance_ohm)

    def open_circuit_voltage(self) -> float:
        return self._ocv

    def internal_resistance(self) -> float:
        return self.resistance_ohm

    def contactors_closed(self) -> bool:
        return self._closed

    def apply_current(self, amps: float, dt: float) -> None:
        self._current = amps


def make_mock_hal(vehicle: VehicleTerminal | None = None, clock: Clock | None = None, **settings: Any) -> Hal:
    """The `mock` driver: `settings` are `PlantConfig` fields (`mcs=False`, `cable_ohm=...`)."""
    if "family" in settings:
        raise ValueError("the mock driver has no device families (use 'mock')")
    unknown = sorted(set(settings) - set(PlantConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown mock plant settings {unknown}; known: {sorted(PlantConfig.__dataclass_fields__)}")
    return MockPlant(vehicle, PlantConfig(**settings), clock).hal()
