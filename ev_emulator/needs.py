"""The truck's charging needs and the ISO 15118-20 energy requests derived from its battery.

SoC values are fractions in [0, 1] (the wire carries whole percent); energies are Wh, signed as the -20
requests are: positive = energy the EV wants charged, negative = energy above that level, which may be
discharged. Times are simulated seconds; `departure_time` is absolute, the wire carries seconds from now.

The V2X requests follow the -20 semantics as OCPP 2.1 restates them (V2XChargingParametersType):
EVMinimumV2XEnergyRequest is the energy to the minimum SoC of V2X cycling (here: the V2G reserve), positive
when the pack is below it (must be charged first), negative when above it (that much may be discharged);
EVMaximumV2XEnergyRequest is the energy to the maximum SoC of V2X cycling, negative when above it.
Energies are open-circuit (stored) energies; resistive losses come on top at the terminals.
"""

from __future__ import annotations

from dataclasses import dataclass

from stack.session.controller import EnergyRequest

from .battery import TruckBattery


@dataclass(frozen=True, slots=True)
class ChargingNeeds:
    """What the driver and fleet ask of this stop."""

    departure_time: float | None = None  # absolute sim seconds; None = no deadline
    target_soc: float = 0.8
    min_soc: float = 0.2  # to be reached as soon as possible
    max_soc: float = 1.0  # ceiling for EVMaximumEnergyRequest
    offers_v2g: bool = False
    v2g_reserve_soc: float = 0.5  # never discharge below this ...
    v2g_reserve_wh: float | None = None  # ... nor below this stored energy, when given
    v2x_max_soc: float | None = None  # top of the V2X cycling window; None = max_soc
    max_contactor_cycles: int | None = None  # closings accepted this session: `Contactors.start_session(this)`

    def __post_init__(self) -> None:
        for name in ("target_soc", "min_soc", "max_soc", "v2g_reserve_soc"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} outside [0, 1]")
        if not self.min_soc <= self.target_soc <= self.max_soc:
            raise ValueError("need min_soc <= target_soc <= max_soc")


def remaining_time(needs: ChargingNeeds, now: float) -> float | None:
    """Seconds to departure (0 once past it), None without a departure time."""
    return None if needs.departure_time is None else max(0.0, needs.departure_time - now)


def reserve_soc(battery: TruckBattery, needs: ChargingNeeds) -> float:
    """The SoC below which the truck refuses to discharge: the higher of min SoC, reserve SoC, reserve energy."""
    soc = max(needs.min_soc, needs.v2g_reserve_soc)
    if needs.v2g_reserve_wh is not None:
        soc = max(soc, battery.soc_for_energy(needs.v2g_reserve_wh))
    return soc


def target_energy_request(battery: TruckBattery, needs: ChargingNeeds) -> float:
    """EVTargetEnergyRequest: Wh to the target SoC."""
    return battery.energy_to(needs.target_soc)


def maximum_energy_request(battery: TruckBattery, needs: ChargingNeeds) -> float:
    """EVMaximumEnergyRequest: Wh to the maximum SoC."""
    return battery.energy_to(needs.max_soc)


def minimum_energy_request(battery: TruckBattery, needs: ChargingNeeds) -> float:
    """EVMinimumEnergyRequest: Wh to the minimum SoC, negative above it."""
    return battery.energy_to(needs.min_soc)


def minimum_v2x_energy_request(battery: TruckBattery, needs: ChargingNeeds) -> float | None:
    """EVMinimumV2XEnergyRequest: Wh to the V2G reserve; negative = may be discharged. None without V2G."""
    return battery.energy_to(reserve_soc(battery, needs)) if needs.offers_v2g else None


def maximum_v2x_energy_request(battery: TruckBattery, needs: ChargingNeeds) -> float | None:
    """EVMaximumV2XEnergyRequest: Wh to the top of the V2X window. None without V2G."""
    if not needs.offers_v2g:
        return None
    top = needs.max_soc if needs.v2x_max_soc is None else needs.v2x_max_soc
    return battery.energy_to(max(top, reserve_soc(battery, needs)))


def energy_request(battery: TruckBattery, needs: ChargingNeeds, now: float) -> EnergyRequest:
    """All -20 energy requests at once, in the form the EVCC session machine sends."""
    remaining = remaining_time(needs, now)
    return EnergyRequest(
        target_energy=target_energy_request(battery, needs),
        max_energy=maximum_energy_request(battery, needs),
        min_energy=minimum_energy_request(battery, needs),
        departure_time=None if remaining is None else int(remaining),
        min_soc=round(needs.min_soc * 100),
        target_soc=round(needs.target_soc * 100),
        max_v2x_energy=maximum_v2x_energy_request(battery, needs),
        min_v2x_energy=minimum_v2x_energy_request(battery, needs),
    )


def charge_time(
    battery: TruckBattery,
    to_soc: float,
    max_power: float | None = None,
    max_current: float | None = None,
    max_voltage: float | None = None,
) -> float:
    """Seconds to charge from the present SoC to `to_soc` at the BMS limits (and the charger's, when given).

    Integrates dt = capacity dSoC / I(SoC) on a fine SoC grid (midpoint rule); inf if the current reaches 0.
    """
    start = battery.soc
    if to_soc <= start:
        return 0.0
    capacity_as = battery.spec.capacity_ah * 3600
    steps = max(1, round((to_soc - start) / 0.01))
    width = (to_soc - start) / steps
    total = 0.0
    for k in range(steps):
        current = _charge_current(battery, start + (k + 0.5) * width, max_power, max_current, max_voltage)
        if current <= 0:
            return float("inf")
        total += capacity_as * width / current
    return total


def reachable_soc(
    battery: TruckBattery,
    seconds: float,
    max_power: float | None = None,
    max_current: float | None = None,
    max_voltage: float | None = None,
) -> float:
    """The SoC that `seconds` of charging from the present SoC reach at the BMS limits (and the charger's).

    The inverse of `charge_time`, on a grid of 0.1 % of SoC: the last step is interpolated linearly.
    """
    soc, left = battery.soc, max(0.0, seconds)
    capacity_as = battery.spec.capacity_ah * 3600
    width = 0.001
    while left > 0 and soc < 1.0:
        step = min(width, 1.0 - soc)
        current = _charge_current(battery, soc + step / 2, max_power, max_current, max_voltage)
        if current <= 0:
            break
        needed = capacity_as * step / current
        if needed >= left:
            return soc + step * left / needed
        soc, left = soc + step, left - needed
    return soc


# the time a session takes from plug-in to energy flowing (SAP .. pre-charge; the cable check dominates): it is
# not charging time, so a goal that needs all of the stay at full power can only be missed by this much
SETUP_ALLOWANCE_S = 60.0


@dataclass(frozen=True, slots=True)
class DepartureFeasibility:
    """Can the target SoC be reached by departure at the rated limits, and if not, how far can it get.

    `needed_s` is the charging time at the rated limits from plug-in (inf when nothing can flow); the target is
    feasible when it fits the stay. `best_soc` is what the stay reaches at those limits after the session's
    setup (`SETUP_ALLOWANCE_S`): the level a charger that does its best must reach when the target is not
    feasible. `blocked` says why no energy can flow at all (e.g. a contactor budget of 0), else None.
    """

    initial_soc: float
    target_soc: float
    stay_s: float
    needed_s: float
    best_soc: float
    limits: str  # the rated limits assumed, for people: "750 kW, 1000 A, 1250 V"
    blocked: str | None = None

    @property
    def feasible(self) -> bool:
        return self.needed_s <= self.stay_s

    def describe(self) -> str:
        """One line on the goal: feasible or why not, and the best reachable SoC."""
        goal = f"SoC {self.target_soc * 100:.1f} % by departure ({self.stay_s:.0f} s)"
        if self.feasible:
            return f"{goal} is feasible: {self.needed_s:.0f} s of charging at {self.limits}"
        why = self.blocked or f"needs {self.needed_s:.0f} s of charging at {self.limits}"
        return f"{goal} is infeasible: {why}; best reachable {self.best_soc * 100:.1f} %"


def assess_departure(
    battery: TruckBattery,
    needs: ChargingNeeds,
    now: float,
    *,
    max_power: float | None = None,
    max_current: float | None = None,
    max_voltage: float | None = None,
) -> DepartureFeasibility | None:
    """How feasible the departure target is from `now` at the BMS limits and the charger's ratings (when given);
    None without a departure time. A contactor budget of 0 closings blocks any energy."""
    stay = remaining_time(needs, now)
    if stay is None:
        return None
    rated = (battery.spec.max_power, battery.spec.max_charge_current)
    power = rated[0] if max_power is None else min(rated[0], max_power)
    current = rated[1] if max_current is None else min(rated[1], max_current)
    limits = f"{power / 1000:.0f} kW, {current:.0f} A" + ("" if max_voltage is None else f", {max_voltage:.0f} V")
    start = battery.soc
    blocked = None
    if not battery.contactors_closed() and battery.contactors.cycles_left() == 0:
        blocked = f"a contactor-cycle budget of {needs.max_contactor_cycles} closings forbids any charging"
    if blocked is not None:
        needed = 0.0 if needs.target_soc <= start else float("inf")
        return DepartureFeasibility(start, needs.target_soc, stay, needed, start, limits, blocked)
    needed = charge_time(battery, needs.target_soc, max_power, max_current, max_voltage)
    best = reachable_soc(battery, stay - SETUP_ALLOWANCE_S, max_power, max_current, max_voltage)
    return DepartureFeasibility(start, needs.target_soc, stay, needed, max(start, best), limits)


def departure_slack(
    battery: TruckBattery, needs: ChargingNeeds, now: float, max_power: float | None = None
) -> float | None:
    """Seconds to spare if charging to the target starts now at full power; negative = target is missed."""
    remaining = remaining_time(needs, now)
    if remaining is None:
        return None
    return remaining - charge_time(battery, needs.target_soc, max_power)


def can_make_departure(battery: TruckBattery, needs: ChargingNeeds, now: float, max_power: float | None = None) -> bool:
    """Whether charging at full power from now still reaches the target SoC by departure.

    Asked at every charge loop of a V2G truck: when the slower of the currents at the start and at the target
    (the BMS taper, the voltage and the power limits all fall as the SoC rises) gets there in time, the answer is
    yes without integrating the charge time."""
    remaining = remaining_time(needs, now)
    if remaining is None or needs.target_soc <= battery.soc:
        return True
    ends = (battery.soc, needs.target_soc)
    slowest = min(_charge_current(battery, soc, max_power, None, None) for soc in ends)
    if slowest > 0 and remaining * slowest >= (needs.target_soc - battery.soc) * battery.spec.capacity_ah * 3600:
        return True
    slack = departure_slack(battery, needs, now, max_power)
    return slack is None or slack >= 0


def may_discharge(
    battery: TruckBattery, needs: ChargingNeeds, now: float, max_charge_power: float | None = None
) -> bool:
    """V2G is offered, the pack is above its reserve, and the departure target is still reachable."""
    return (
        needs.offers_v2g
        and battery.soc > reserve_soc(battery, needs)
        and can_make_departure(battery, needs, now, max_charge_power)
    )


def discharge_current_limit(
    battery: TruckBattery, needs: ChargingNeeds, now: float, max_charge_power: float | None = None
) -> float:
    """The discharge current the truck offers now (A, magnitude): the BMS limit, or 0 when it refuses."""
    if not may_discharge(battery, needs, now, max_charge_power):
        return 0.0
    return battery.discharge_current_limit()


def _charge_current(
    battery: TruckBattery, soc: float, max_power: float | None, max_current: float | None, max_voltage: float | None
) -> float:
    """The charging current at `soc` under the BMS limits and the charger's ratings (A, 0 when none flows)."""
    current = battery.charge_current_limit(soc)
    if max_current is not None:
        current = min(current, max_current)
    if max_power is not None:
        current = min(current, _current_for_power(battery, soc, max_power))
    if max_voltage is not None:  # the charger cannot push the terminals above its rated voltage
        current = min(
            current, max(0.0, (max_voltage - battery.open_circuit_voltage(soc)) / battery.internal_resistance(soc))
        )
    return current


def _current_for_power(battery: TruckBattery, soc: float, power: float) -> float:
    """Charging current whose terminal power is `power`: solves I (OCV + I R) = P."""
    ocv, r = battery.open_circuit_voltage(soc), battery.internal_resistance(soc)
    return 2 * power / (ocv + (ocv * ocv + 4 * r * power) ** 0.5)
