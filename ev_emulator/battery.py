"""The heavy truck's traction battery and its BMS: a pure model stepped by simulated time.

Sign convention: current is positive when it charges the pack, negative when it discharges it (V2G).
Units: V, A, ohm, W, Wh, s; SoC is a fraction of the usable capacity in [0, 1].

Default pack, derived from cells (PROTOCOL.md sections 9 and 10):

* Cell: the Scania/Northvolt NMC cell, 157 Ah, 3.6 V nominal
  (https://newmobility.news/2023/10/20/scania-rejuvenates-urban-battery-electric-truck-range/).
* Series count: 208 s x 3.6 V = 748.8 V nominal, so the first-generation MCS truck limit of 1000 A gives
  ~750 kW (Scania, MAN eTGX: 1000 A / 750 kW, PROTOCOL.md section 9). Pack voltages of real trucks were not
  found (PROTOCOL.md section 12 item 11); 208 s is our choice from these two figures.
* Parallel count: 5 p x 157 Ah = 785 Ah gross (587.8 kWh at 3.6 V; 614 kWh integrated over our OCV curve).
  The BMS exposes 91 % of it, close to MAN's 80 of 89 kWh per pack (0.90): 714 Ah usable x 208 cells x the
  mean cell OCV of 3.76 V = ~559 kWh usable, Scania's largest net option (560 kWh, 7 MAN packs).
* Cell limits 2.8 V .. 4.2 V (typical NMC datasheet values) give pack limits 582.4 V .. 873.6 V.
* Resistance: 0.75 mOhm per 157 Ah cell (10 s DC resistance of large prismatic NMC cells, 25 degC, mid SoC)
  x 208 / 5 = 31.2 mOhm, plus 6 mOhm of busbars, fuses and contactors = ~37 mOhm; x1.8 at 0 % SoC and
  doubling every 15 K below 25 degC. At 1000 A that is ~37 kW of heat (5 %).
* BMS taper: full current up to 80 % SoC, then down to 3 % of it at 100 %; discharge derated below 20 % SoC.
* EV-side contactors: pre-charge match within 20 V (EVerest -2 EV `PRE_CHARGE_ABS_VOLTAGE_TOLERANCE_V`);
  welding check "inlet below 60 V" (EVerest -2 EV ends welding detection there, PROTOCOL.md section 10) within
  5 s (our choice; the normative figures were not found, PROTOCOL.md section 12 item 10).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Protocol


class VehicleTerminal(Protocol):
    """The truck as the charger's mock plant sees it through the cable (positive current charges)."""

    def open_circuit_voltage(self) -> float: ...
    def internal_resistance(self) -> float: ...
    def contactors_closed(self) -> bool: ...
    def apply_current(self, amps: float, dt: float) -> None: ...


class BatteryError(Exception):
    """The model was driven in a way the physics does not allow (e.g. current through open contactors)."""


@dataclass(frozen=True, slots=True)
class Curve:
    """A piecewise-linear function given by points, clamped at both ends, with an exact running integral."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]
    _area: tuple[float, ...] = field(init=False, repr=False, compare=False)  # the integral up to each point

    def __post_init__(self) -> None:
        if len(self.xs) != len(self.ys) or len(self.xs) < 2:
            raise ValueError("a curve needs at least two points, as many x as y")
        if any(b <= a for a, b in zip(self.xs, self.xs[1:], strict=False)):
            raise ValueError("curve x values must increase")
        area = [0.0]
        for i in range(len(self.xs) - 1):
            area.append(area[-1] + (self.xs[i + 1] - self.xs[i]) * (self.ys[i] + self.ys[i + 1]) / 2)
        object.__setattr__(self, "_area", tuple(area))

    def __call__(self, x: float) -> float:
        xs, ys = self.xs, self.ys
        if x <= xs[0]:
            return ys[0]
        if x >= xs[-1]:
            return ys[-1]
        i = bisect_right(xs, x) - 1
        return ys[i] + (ys[i + 1] - ys[i]) * (x - xs[i]) / (xs[i + 1] - xs[i])

    def integral(self, x: float) -> float:
        """Integral from xs[0] to x (x within the curve's range)."""
        xs = self.xs
        x = min(max(x, xs[0]), xs[-1])
        i = min(bisect_right(xs, x) - 1, len(xs) - 2)
        return self._area[i] + (x - xs[i]) * (self.ys[i] + self(x)) / 2


# NMC cell OCV over the usable SoC window (rest voltage, 25 degC): steep below 10 %, a plateau around 3.6-3.7 V,
# rising towards full. Shape after published NMC622/811 OCV curves; piecewise-linear so energy integrates exactly.
NMC_CELL_OCV = Curve(
    (0.0, 0.02, 0.05, 0.10, 0.15, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 0.95, 1.0),
    (3.00, 3.30, 3.45, 3.53, 3.57, 3.60, 3.65, 3.69, 3.74, 3.81, 3.89, 3.97, 4.06, 4.10, 4.15),
)
# resistance multiplier over SoC: higher when nearly empty (and a little when full)
NMC_RESISTANCE_SOC = Curve((0.0, 0.10, 0.20, 0.30, 0.50, 0.80, 1.0), (1.8, 1.35, 1.15, 1.05, 1.0, 1.0, 1.1))
# BMS charge-current fraction over SoC: full up to 80 %, a CV-like taper above
CHARGE_TAPER = Curve((0.0, 0.80, 0.90, 0.95, 1.0), (1.0, 1.0, 0.5, 0.25, 0.03))
# BMS discharge-current fraction over SoC: derated below 20 %
DISCHARGE_DERATE = Curve((0.0, 0.05, 0.10, 0.20, 1.0), (0.0, 0.2, 0.5, 1.0, 1.0))


@dataclass(frozen=True, slots=True)
class PackSpec:
    """A pack built from cells, with its BMS limits (defaults: the 560 kWh MCS truck, module docstring)."""

    cells_series: int = 208
    cells_parallel: int = 5
    cell_capacity_ah: float = 157.0
    cell_nominal_voltage: float = 3.6
    cell_max_voltage: float = 4.2
    cell_min_voltage: float = 2.8
    usable_fraction: float = 0.91
    cell_ocv: Curve = NMC_CELL_OCV
    cell_resistance: float = 0.75e-3  # ohm at 25 degC, mid SoC
    extra_resistance: float = 6e-3  # ohm: busbars, fuses, contactors, inlet
    resistance_soc: Curve = NMC_RESISTANCE_SOC
    resistance_doubling_k: float = 15.0  # resistance doubles per this many K below 25 degC
    max_charge_current: float = 1000.0
    max_discharge_current: float = 1000.0
    max_power: float = 750_000.0  # W at the terminals, both directions (discharge: unless max_discharge_power)
    max_discharge_power: float | None = None
    charge_taper: Curve = CHARGE_TAPER
    discharge_derate: Curve = DISCHARGE_DERATE

    @property
    def capacity_ah(self) -> float:
        """Usable capacity (the 0..100 % SoC span)."""
        return self.cells_parallel * self.cell_capacity_ah * self.usable_fraction

    @property
    def nominal_voltage(self) -> float:
        return self.cells_series * self.cell_nominal_voltage

    @property
    def max_voltage(self) -> float:
        return self.cells_series * self.cell_max_voltage

    @property
    def min_voltage(self) -> float:
        return self.cells_series * self.cell_min_voltage

    def ocv(self, soc: float) -> float:
        return self.cells_series * self.cell_ocv(soc)

    def stored_wh(self, soc: float) -> float:
        """Energy stored at open circuit from 0 % to `soc` (Wh): capacity x integral of the OCV."""
        return self.capacity_ah * self.cells_series * self.cell_ocv.integral(soc)

    @property
    def usable_energy_wh(self) -> float:
        return self.stored_wh(1.0)

    def sized(self, usable_wh: float, max_charge_w: float, max_discharge_w: float) -> PackSpec:
        """This pack's chemistry and voltage with `usable_wh` of usable energy (cells of a scaled capacity) and BMS
        power limits of its own: full power from about 90 % of the nominal voltage up (a depot's truck)."""
        scale = usable_wh / self.usable_energy_wh
        current = 1.0 / (0.9 * self.nominal_voltage)
        return replace(
            self,
            cell_capacity_ah=self.cell_capacity_ah * scale,
            cell_resistance=self.cell_resistance / scale,  # a bigger cell of the same chemistry
            max_charge_current=max_charge_w * current,
            max_discharge_current=max_discharge_w * current,
            max_power=max_charge_w,
            max_discharge_power=max_discharge_w,
        )

    def resistance(self, soc: float, temperature_c: float = 25.0) -> float:
        cells = self.cells_series * self.cell_resistance / self.cells_parallel
        cold = min(max(2.0 ** ((25.0 - temperature_c) / self.resistance_doubling_k), 0.8), 8.0)
        return (cells * self.resistance_soc(soc) + self.extra_resistance) * cold


@dataclass(frozen=True, slots=True)
class _PresentState:
    """A battery's state (SoC, temperature, pack) and what follows from it alone."""

    soc: float
    temperature_c: float
    spec: PackSpec
    ocv: float
    resistance: float
    stored_wh: float

    @classmethod
    def of(cls, battery: TruckBattery) -> _PresentState:
        soc, temperature, spec = battery.soc, battery.temperature_c, battery.spec
        return cls(soc, temperature, spec, spec.ocv(soc), spec.resistance(soc, temperature), spec.stored_wh(soc))

    def holds_for(self, battery: TruckBattery) -> bool:
        """The battery is still in this state (equal floats give equal results; the spec is immutable)."""
        return self.soc == battery.soc and self.temperature_c == battery.temperature_c and self.spec is battery.spec


class CloseResult(StrEnum):
    CLOSED = "closed"
    ALREADY_CLOSED = "already_closed"
    CYCLE_LIMIT = "cycle_limit"
    PRECHARGE_MISMATCH = "precharge_mismatch"


class WeldingStatus(StrEnum):
    PENDING = "pending"  # inlet still live, timeout not reached
    OK = "ok"  # inlet fell below the safe voltage
    SUSPECTED = "suspected"  # inlet still live after the timeout: a welded contactor


@dataclass
class Contactors:
    """The EV-side DC contactors between pack and inlet: cycle budget, pre-charge match, welding check."""

    max_cycles: int = 100_000  # closings over the contactors' life
    precharge_tolerance: float = 20.0  # V
    safe_voltage: float = 60.0  # V
    welding_timeout: float = 5.0  # s
    cycles: int = 0  # closings so far
    session_budget: int | None = None  # closings allowed in this session (pause/resume, V2G), None = no limit
    session_cycles: int = 0
    welded: bool = False  # fault injection: once closed they stay physically closed
    weld_suspected: bool = False
    opened_at: float | None = None
    _closed: bool = field(default=False, init=False)

    def is_closed(self) -> bool:
        return self._closed

    def start_session(self, budget: int | None) -> None:
        self.session_budget = budget
        self.session_cycles = 0

    def cycles_left(self) -> int:
        left = self.max_cycles - self.cycles
        if self.session_budget is not None:
            left = min(left, self.session_budget - self.session_cycles)
        return max(0, left)

    def close(self, inlet_voltage: float, pack_voltage: float) -> CloseResult:
        if self._closed:
            return CloseResult.ALREADY_CLOSED
        if self.cycles_left() == 0:
            return CloseResult.CYCLE_LIMIT
        if abs(inlet_voltage - pack_voltage) > self.precharge_tolerance:
            return CloseResult.PRECHARGE_MISMATCH
        self.cycles += 1
        self.session_cycles += 1
        self._closed = True
        self.opened_at = None
        return CloseResult.CLOSED

    def open(self, now: float) -> None:
        """Command open; a welded contactor stays closed, which the welding check then reveals."""
        if not self.welded:
            self._closed = False
        self.opened_at = now

    def trip(self) -> None:
        """The BMS opens on its own (protection); the controller still runs its welding check via `open`."""
        if not self.welded:
            self._closed = False

    def welding_check(self, inlet_voltage: float, now: float) -> WeldingStatus:
        if self.opened_at is None:
            raise BatteryError("welding check before the contactors were commanded open")
        if inlet_voltage < self.safe_voltage:
            return WeldingStatus.OK
        if now - self.opened_at >= self.welding_timeout:
            self.weld_suspected = True
            return WeldingStatus.SUSPECTED
        return WeldingStatus.PENDING


@dataclass
class TruckBattery:
    """Pack state (SoC, temperature, energy counters) plus its BMS limits and contactors; a `VehicleTerminal`."""

    spec: PackSpec = field(default_factory=PackSpec)
    soc: float = 0.3
    temperature_c: float = 25.0
    contactors: Contactors = field(default_factory=Contactors)
    present_current: float = 0.0
    elapsed_s: float = 0.0
    energy_in_wh: float = 0.0  # at the terminals, while charging
    energy_out_wh: float = 0.0  # at the terminals, while discharging (positive)
    loss_wh: float = 0.0  # I^2 R heat
    faults: Counter[str] = field(default_factory=Counter)
    # OCV, resistance and stored energy of the present state (see `_present`)
    _present_cache: _PresentState | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.soc <= 1.0:
            raise ValueError(f"SoC {self.soc} outside [0, 1]")

    def _present(self) -> _PresentState:
        """OCV, resistance and stored energy at the present SoC and temperature. The plant and the BMS read them
        several times per step and per charge loop while the state holds, so they are computed once per state: the
        cache is keyed by everything they depend on (SoC, temperature, the pack), any change of which recomputes."""
        cached = self._present_cache
        if cached is not None and cached.holds_for(self):
            return cached
        self._present_cache = fresh = _PresentState.of(self)
        return fresh

    # --- VehicleTerminal -------------------------------------------------------------------------------
    def open_circuit_voltage(self, soc: float | None = None) -> float:
        return self._present().ocv if soc is None else self.spec.ocv(soc)

    def internal_resistance(self, soc: float | None = None) -> float:
        return self._present().resistance if soc is None else self.spec.resistance(soc, self.temperature_c)

    def contactors_closed(self) -> bool:
        return self.contactors.is_closed()

    def apply_current(self, amps: float, dt: float) -> None:
        """Carry `amps` (positive charges) for `dt` seconds; the BMS trips the contactors at 0 % or 100 %."""
        if dt < 0:
            raise ValueError("dt must not be negative")
        self.elapsed_s += dt
        self.present_current = amps
        if amps == 0 or dt == 0:
            return
        if not self.contactors_closed():
            raise BatteryError(f"{amps} A through open contactors")
        self._watch_limits(amps)
        capacity_as = self.spec.capacity_ah * 3600
        soc0 = self.soc
        soc1 = soc0 + amps * dt / capacity_as
        trip = None
        if soc1 > 1.0 or soc1 < 0.0:
            bound = 1.0 if soc1 > 1.0 else 0.0
            trip = "soc_high" if bound == 1.0 else "soc_low"
            dt = (bound - soc0) * capacity_as / amps
            soc1 = bound
        loss = amps * amps * self.internal_resistance() * dt / 3600
        terminal = self.spec.stored_wh(soc1) - self.stored_wh() + loss
        if terminal >= 0:
            self.energy_in_wh += terminal
        else:
            self.energy_out_wh -= terminal
        self.loss_wh += loss
        self.soc = soc1
        if trip is not None:
            self.faults[trip] += 1
            self.present_current = 0.0
            self.contactors.trip()

    # --- terminal quantities -----------------------------------------------------------------------------
    def terminal_voltage(self, current: float) -> float:
        return self.open_circuit_voltage() + current * self.internal_resistance()

    def present_voltage(self) -> float:
        return self.terminal_voltage(self.present_current)

    @property
    def soc_percent(self) -> int:
        return round(self.soc * 100)

    def stored_wh(self, soc: float | None = None) -> float:
        return self._present().stored_wh if soc is None else self.spec.stored_wh(soc)

    def energy_to(self, soc: float) -> float:
        """Open-circuit energy (Wh) from the present SoC to `soc`: positive to charge, negative to discharge."""
        return self.spec.stored_wh(soc) - self.stored_wh()

    def soc_for_energy(self, wh: float) -> float:
        """The SoC whose stored energy (from 0 %) is `wh`, clamped to [0, 1]."""
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if self.spec.stored_wh(mid) < wh:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    # --- BMS limits (magnitudes, A and W at the terminals) ---------------------------------------------
    def charge_current_limit(self, soc: float | None = None) -> float:
        at = self.soc if soc is None else soc
        if at >= 1.0:
            return 0.0
        ocv, r, spec = self.open_circuit_voltage(soc), self.internal_resistance(soc), self.spec
        by_voltage = max(0.0, (spec.max_voltage - ocv) / r)
        by_power = 2 * spec.max_power / (ocv + math.sqrt(ocv * ocv + 4 * r * spec.max_power))
        return min(spec.max_charge_current * spec.charge_taper(at), by_voltage, by_power)

    def discharge_current_limit(self, soc: float | None = None) -> float:
        at = self.soc if soc is None else soc
        if at <= 0.0:
            return 0.0
        ocv, r, spec = self.open_circuit_voltage(soc), self.internal_resistance(soc), self.spec
        by_voltage = max(0.0, (ocv - spec.min_voltage) / r)
        limit = spec.max_power if spec.max_discharge_power is None else spec.max_discharge_power
        disc = ocv * ocv - 4 * r * limit
        by_power = 2 * limit / (ocv + math.sqrt(disc)) if disc >= 0 else math.inf
        return min(spec.max_discharge_current * spec.discharge_derate(at), by_voltage, by_power)

    def charge_power_limit(self, soc: float | None = None) -> float:
        current = self.charge_current_limit(soc)
        return current * (self.open_circuit_voltage(soc) + current * self.internal_resistance(soc))

    def discharge_power_limit(self, soc: float | None = None) -> float:
        current = self.discharge_current_limit(soc)
        return current * (self.open_circuit_voltage(soc) - current * self.internal_resistance(soc))

    def _watch_limits(self, amps: float) -> None:
        limit = self.charge_current_limit() if amps > 0 else self.discharge_current_limit()
        if abs(amps) > limit * 1.05 + 5.0:
            self.faults["overcurrent_charge" if amps > 0 else "overcurrent_discharge"] += 1
        voltage = self.terminal_voltage(amps)
        if voltage > self.spec.max_voltage + 1.0:
            self.faults["overvoltage"] += 1
        elif voltage < self.spec.min_voltage - 1.0:
            self.faults["undervoltage"] += 1

    # --- contactors ----------------------------------------------------------------------------------------
    def close_contactors(self, inlet_voltage: float) -> CloseResult:
        """Close if the cycle budget allows and the inlet was pre-charged to the pack voltage."""
        return self.contactors.close(inlet_voltage, self.open_circuit_voltage())

    def open_contactors(self, now: float) -> None:
        self.present_current = 0.0
        self.contactors.open(now)

    def welding_check(self, inlet_voltage: float, now: float) -> WeldingStatus:
        return self.contactors.welding_check(inlet_voltage, now)
