"""The pack a truck in another process closes its contactors onto (the charger models it from the EV's reports).

An EV that asks pre-charge for its pack voltage closes onto that voltage: closing before the output matched is an
inrush trip. An EV that asks for more than its own maximum (Josev's simulated EV: 20 kV, PreCharge ended after 5
requests whatever the output) says nothing about its pack: the pack is taken at the output it accepted. Found by
CI: Josev ended PreCharge while the output was still falling from the 1 100 V cable-check voltage.
"""

from __future__ import annotations

from evse_emulator.charger import Charger
from evse_emulator.config import ChargerConfig
from evse_emulator.hal.interfaces import FaultKind
from stack.clock import Clock
from stack.session.controller import PowerLimits
from stack.session.services import ServiceId

EV_MAX_V = 1_000.0
JOSEV_PRE_CHARGE_REQUESTS = 5
REQUEST_GAP_S = 0.017  # Josev's pace in the CI log


class SteppedClock(Clock):
    def __init__(self) -> None:
        self.t = 1_795_000_000.0

    def now(self) -> float:
        return self.t


def ev_limits() -> PowerLimits:
    """Josev's simulated EV: 300 kW, 300 A, 1 000 V (the over-current protection is armed for 300 A)."""
    return PowerLimits(300_000.0, 100.0, 300.0, 10.0, EV_MAX_V, 10.0)


def pre_charged_early(asked_v: float) -> Charger:
    """Cable check to its end, then five PreChargeReq 17 ms apart, then PowerDelivery Start at once."""
    clock = SteppedClock()
    charger = Charger.build(ChargerConfig(), clock)
    controller = charger.controller()
    controller.charge_parameters(ServiceId.MCS, ev_limits(), clock.t)
    while controller.cable_check(clock.t).name != "OK":
        clock.t += 0.05
    for _ in range(JOSEV_PRE_CHARGE_REQUESTS):
        clock.t += REQUEST_GAP_S
        controller.pre_charge(asked_v, clock.t)
    clock.t += REQUEST_GAP_S
    controller.power_delivery(True, False, clock.t)
    clock.t += 0.5
    charger.hal.power_stage.present()  # the plant catches up with the clock
    return charger


def test_an_ev_asking_beyond_its_maximum_closes_onto_the_output_it_accepted() -> None:
    charger = pre_charged_early(asked_v=20_000.0)
    assert charger.hal.faults() == []


def test_an_ev_asking_for_its_pack_voltage_and_closing_early_trips_the_inrush_protection() -> None:
    charger = pre_charged_early(asked_v=EV_MAX_V)
    faults = charger.hal.faults()
    assert [f.kind for f in faults] == [FaultKind.OVER_CURRENT] and "inrush" in faults[0].detail
