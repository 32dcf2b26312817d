"""A charger's setpoint policy under the site EMS (`SiteSetpoint`) and its visits (`DepotOutlet`), sans-I/O.

Times: the charger's clock starts the scenario at START; setpoints carry sim time (s from the scenario start).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from evse_emulator.charger import Charger
from evse_emulator.config import ChargerConfig
from evse_emulator.controller import clamp_current
from evse_emulator.energy.outlet import RENEGOTIATE_W, RENEGOTIATE_WH, DepotOutlet, SiteSetpoint, ev_power_now
from evse_emulator.energy.policy import PolicyInput
from evse_emulator.energy.topics import Setpoint
from stack.clock import VirtualClock
from stack.messages import iso20_common as cm
from stack.messages import iso20_types as ct
from stack.session.controller import EnergyRequest, PowerLimits

KW = 1000.0
START = 1000.0  # the scenario's start on the charger's clock
SAFE_W = 40 * KW
LEAD_S = 60.0


def limits(charge_w: float, discharge_w: float | None = None, min_charge_w: float = 0.0) -> PowerLimits:
    return PowerLimits(
        max_charge_power=charge_w,
        min_charge_power=min_charge_w,
        max_charge_current=3000.0,
        min_charge_current=0.0,
        max_voltage=1250.0,
        min_voltage=200.0,
        max_discharge_power=discharge_w,
        min_discharge_power=None if discharge_w is None else 0.0,
    )


EVSE = limits(400 * KW, 400 * KW)
EV = limits(300 * KW, 200 * KW)


def policy(frequency: float = 50.0, truck: str | None = "T1") -> SiteSetpoint:
    p = SiteSetpoint(lambda t: frequency, SAFE_W, LEAD_S)
    p.start_s = START
    p.new_truck(truck)
    return p


def loop(
    now: float, ev: PowerLimits | None = EV, departure: int | None = None, evse: PowerLimits = EVSE
) -> PolicyInput:
    energy = EnergyRequest(100_000.0, 200_000.0, 0.0, departure_time=departure)
    return PolicyInput(elapsed=now - START, soc=50, ev=ev, evse=evse, energy=energy, now=now)


def sp(power_w: float, t_s: float = 0.0, truck: str | None = "T1", **kw: object) -> Setpoint:
    settings: dict = {"valid_for_s": 180.0, "truck": truck} | kw
    return Setpoint(t_s, power_w, **settings)


# -- Dynamic mode: the setpoint, the watchdog, the limits -------------------------------------------------------
def test_a_fresh_setpoint_for_the_plugged_in_truck_is_followed() -> None:
    p = policy()
    p.apply(sp(150 * KW), START)
    assert p.setpoint(loop(START + 10)) == 150 * KW
    assert p.told_w == 150 * KW
    assert p.last is not None and p.last.now == START + 10


def test_a_setpoint_for_another_truck_gives_nothing() -> None:
    p = policy(truck="T2")
    p.apply(sp(150 * KW, truck="T1"), START)
    assert p.current(START + 10) is None
    assert p.setpoint(loop(START + 10)) == 0.0
    assert not p.wants_energy(START + 10)
    assert p.watchdog.fallbacks == 0


def test_a_silent_ems_gives_the_safe_share_and_counts_one_fallback() -> None:
    p = policy()
    assert p.setpoint(loop(START)) == SAFE_W  # nothing heard yet: the safe share, not a fallback
    assert p.watchdog.fallbacks == 0
    p.apply(sp(150 * KW), START)
    assert p.setpoint(loop(START + 180)) == 150 * KW  # still valid at exactly valid_for_s
    assert p.setpoint(loop(START + 181)) == SAFE_W
    assert p.setpoint(loop(START + 240)) == SAFE_W
    assert p.watchdog.fallbacks == 1  # one fallback, however many loops it lasts
    assert p.wants_energy(START + 240)
    p.apply(sp(100 * KW, t_s=300), START + 300)
    assert p.setpoint(loop(START + 301)) == 100 * KW
    assert p.setpoint(loop(START + 500)) == SAFE_W
    assert p.watchdog.fallbacks == 2


def test_a_silent_ems_with_no_safe_share_does_not_wake_a_paused_truck() -> None:
    p = SiteSetpoint(lambda t: 50.0, 0.0, LEAD_S)
    p.new_truck("T1")
    assert not p.wants_energy(0.0)


def test_the_power_is_kept_within_the_ev_and_evse_limits() -> None:
    p = policy()
    p.apply(sp(380 * KW), START)
    assert p.setpoint(loop(START + 1)) == 300 * KW  # the EV's maximum
    assert p.told_w == 380 * KW  # what the EMS said, before the limits
    p.apply(sp(-350 * KW, t_s=1), START + 1)
    assert p.setpoint(loop(START + 2)) == -200 * KW  # the EV's discharge maximum
    assert p.setpoint(loop(START + 3, ev=replace(EV, max_discharge_power=None))) == 0.0  # the EV refuses V2G
    assert p.setpoint(loop(START + 4, evse=limits(400 * KW))) == 0.0  # a one-way charger
    assert p.setpoint(loop(START + 5, ev=None)) == 0.0  # no EV limits heard yet: no V2G ...
    p.apply(sp(450 * KW, t_s=6), START + 6)
    assert p.setpoint(loop(START + 7, ev=None)) == 400 * KW  # ... and the charger's charge rating


def test_no_energy_within_the_lead_before_departure() -> None:
    p = policy(frequency=49.8)
    p.apply(sp(150 * KW, fcr_w=50 * KW), START)
    assert p.setpoint(loop(START + 1, departure=int(LEAD_S) + 1)) == 100 * KW  # 150 kW - the full droop
    assert p.setpoint(loop(START + 2, departure=int(LEAD_S))) == 0.0  # the droop is off too
    assert p.told_w == 0.0
    p.apply(sp(0.0, t_s=3, truck="T9"), START + 3)  # another truck's setpoint: 0 W anyway
    assert p.setpoint(loop(START + 4, departure=10)) == 0.0
    silent = policy()
    assert silent.setpoint(loop(START, departure=30)) == 0.0  # not even the safe share


# -- FCR: the droop at each charge loop and its energy -----------------------------------------------------------
def test_the_fcr_droop_follows_the_frequency_at_the_charge_loop() -> None:
    seen: list[float] = []

    def frequency(t: float) -> float:
        seen.append(t)
        return 49.9 if t < 100 else 50.2

    p = SiteSetpoint(frequency, SAFE_W, LEAD_S)
    p.start_s, p.truck = START, "T1"
    p.apply(sp(100 * KW, fcr_w=80 * KW), START)
    assert p.setpoint(loop(START + 40)) == pytest.approx(100 * KW - 40 * KW)  # 0.1 Hz low: half, given back
    assert p.setpoint(loop(START + 100)) == pytest.approx(180 * KW)  # 0.2 Hz high: the full share taken
    assert seen == [40.0, 100.0]  # asked at sim time, not clock time
    assert p.told_w == 100 * KW  # the EMS's part only


@pytest.mark.parametrize(("hz", "power_w"), [(49.8, 100 * KW - 60 * KW), (50.2, 100 * KW + 20 * KW)])
def test_a_share_that_lowers_the_import_only_acts_below_the_nominal_frequency(hz: float, power_w: float) -> None:
    """20 kW symmetric and 40 kW more that only lowers the import: 60 kW less at 0.2 Hz low, 20 kW more at 0.2
    Hz high; the EV is told it may give back the whole of both."""
    p = policy(frequency=hz)
    p.apply(sp(-10 * KW, fcr_w=20 * KW, fcr_down_w=40 * KW), START)
    p.apply(sp(100 * KW, t_s=1, fcr_w=20 * KW, fcr_down_w=40 * KW), START + 1)
    assert p.setpoint(loop(START + 2)) == pytest.approx(power_w)
    assert p.advertise(EVSE, START + 2).max_discharge_power == pytest.approx(60 * KW)


@pytest.mark.parametrize(("hz", "power_w", "fcr_wh"), [(50.2, 130 * KW, 30_000.0), (49.8, 20 * KW, -80_000.0)])
def test_a_cap_on_the_droops_import_holds_only_over_frequency(hz: float, power_w: float, fcr_wh: float) -> None:
    """An 80 kW share whose droop may raise the import by 30 kW (the window's room below its peak): 30 kW more at
    0.2 Hz high, the whole 80 kW less at 0.2 Hz low; the EV is told the cap as its headroom up, and the FCR energy
    is what the droop delivered."""
    p = policy(frequency=hz)
    p.apply(sp(100 * KW, fcr_w=80 * KW, fcr_up_w=30 * KW), START)
    assert p.setpoint(loop(START)) == pytest.approx(power_w)
    assert p.advertise(EVSE, START).max_charge_power == pytest.approx(130 * KW)
    assert p.advertise(EVSE, START).max_discharge_power == pytest.approx(80 * KW)
    assert p.take_fcr_wh(START + 3600) == pytest.approx(fcr_wh)  # an hour at the droop delivered: W x 1 h


def test_the_deadband_and_no_fcr_share_mean_no_droop() -> None:
    p = policy(frequency=49.95)
    p.apply(sp(100 * KW, fcr_w=80 * KW, deadband_hz=0.05), START)
    assert p.setpoint(loop(START + 1)) == 100 * KW
    p.apply(sp(100 * KW, t_s=2, fcr_w=0.0), START + 2)
    assert p.setpoint(loop(START + 3)) == 100 * KW


def test_a_silent_ems_gives_no_droop() -> None:
    p = policy(frequency=49.8)
    assert p.setpoint(loop(START)) == SAFE_W
    assert p.take_fcr_wh(START + 3600) == 0.0


def test_the_fcr_energy_is_held_between_loops_and_taken_once() -> None:
    p = policy(frequency=49.9)
    p.apply(sp(100 * KW, fcr_w=80 * KW), START)
    p.setpoint(loop(START))  # -40 kW of FCR from now ...
    p.setpoint(loop(START + 90))  # ... held 90 s, then again
    assert p.take_fcr_wh(START + 180) == pytest.approx(-40 * KW * 180 / 3600)
    assert p.take_fcr_wh(START + 180) == 0.0
    p.idle(START + 270)  # 90 s more at -40 kW, then none
    assert p.take_fcr_wh(START + 400) == pytest.approx(-40 * KW * 90 / 3600)
    assert p.last is None


def test_only_the_droop_the_limits_let_through_counts_as_fcr() -> None:
    p = policy(frequency=50.2)
    p.apply(sp(280 * KW, fcr_w=80 * KW), START)
    assert p.setpoint(loop(START)) == 300 * KW  # the EV takes at most 300 kW: 20 kW of the 80 kW droop
    assert p.take_fcr_wh(START + 3600) == pytest.approx(20 * KW)


# -- pause, wants_energy, advertise ------------------------------------------------------------------------------
def test_pause_follows_the_setpoint_for_this_truck() -> None:
    p = policy(frequency=49.8)
    p.apply(sp(0.0, paused=True, fcr_w=50 * KW), START)
    assert p.pause(START + 1)
    assert not p.wants_energy(START + 1)
    assert p.take_fcr_wh(START + 3601) == 0.0  # a paused truck holds no FCR
    p.apply(sp(100 * KW, t_s=10), START + 10)
    assert not p.pause(START + 11)
    assert p.wants_energy(START + 11)
    p.apply(sp(0.0, t_s=20, paused=True, truck="T2"), START + 20)
    assert not p.pause(START + 21)  # another truck's pause


def test_advertise_narrows_the_evse_limits_to_the_setpoint_and_the_fcr_share() -> None:
    p = policy()
    told = limits(400 * KW, 400 * KW, min_charge_w=150 * KW)
    p.apply(sp(100 * KW, fcr_w=20 * KW), START)
    a = p.advertise(told, START + 1)
    assert (a.max_charge_power, a.min_charge_power) == (120 * KW, 120 * KW)  # the minimum never above the maximum
    assert (a.max_discharge_power, a.min_discharge_power) == (20 * KW, 0.0)
    p.apply(sp(-50 * KW, t_s=2), START + 2)
    a = p.advertise(told, START + 3)
    assert (a.max_charge_power, a.min_charge_power, a.max_discharge_power) == (0.0, 0.0, 50 * KW)
    a = p.advertise(limits(400 * KW), START + 3)
    assert (a.max_charge_power, a.max_discharge_power, a.min_discharge_power) == (0.0, None, None)
    assert a.max_voltage == 1250.0  # the rest untouched


def test_advertise_is_untouched_without_a_setpoint_for_this_truck() -> None:
    p = policy()
    assert p.advertise(EVSE, START) == EVSE
    p.apply(sp(100 * KW, truck="T2"), START)
    assert p.advertise(EVSE, START + 1) == EVSE


# -- Scheduled mode ----------------------------------------------------------------------------------------------
PROFILE = ((60.0, 50 * KW, 0), (120.0, -30 * KW, 1), (600.0, 80 * KW, 2))


def test_schedules_give_the_profile_from_now_on_with_price_levels() -> None:
    p = policy()
    p.apply(sp(50 * KW, t_s=120, profile=PROFILE, price_levels=3), START + 120)
    now = START + 120 + 90  # 90 s into the profile: 90 s of its second entry left
    (s,) = p.schedules(10, EVSE, True, now)
    assert [(e.duration, e.power) for e in s.charge] == [(90, 0.0), (600, 80 * KW)]
    assert s.discharge is not None
    assert [(e.duration, e.power) for e in s.discharge] == [(90, 30 * KW), (600, 0.0)]
    assert [(q.duration, q.level) for q in s.prices] == [(90, 1), (600, 2)]
    assert s.price_levels == 3
    # the session follows it: the schedule runs from when it was offered
    assert p.setpoint(loop(now + 30)) == -30 * KW
    assert p.setpoint(loop(now + 100)) == 80 * KW
    assert p.setpoint(loop(now + 700)) == 0.0  # after its end
    assert p.advertise(EVSE, now + 100) == EVSE  # the EV drives a Scheduled session


def test_schedules_are_cut_to_the_evs_entries_and_one_way_without_bpt() -> None:
    p = policy()
    p.apply(sp(50 * KW, t_s=0, profile=PROFILE, price_levels=3), START)
    (s,) = p.schedules(1, EVSE, False, START)
    assert [(e.duration, e.power) for e in s.charge] == [(60, 50 * KW)]
    assert s.discharge is None
    assert p.setpoint(loop(START + 90)) == 0.0  # the EV was told one entry only


@pytest.mark.parametrize(("other_truck", "power"), [(True, 0.0), (False, SAFE_W)])
def test_schedules_before_a_setpoint_for_this_truck(other_truck: bool, power: float) -> None:
    p = policy()
    if other_truck:  # the EMS is alive but has not planned this truck yet: nothing until it has
        p.apply(sp(100 * KW, truck="T0", profile=PROFILE, price_levels=3), START)
    (s,) = p.schedules(3, EVSE, True, START + 5)
    assert [(e.duration, e.power) for e in s.charge] == [(3600, power)] * 3
    assert p.setpoint(loop(START + 600)) == power


def test_a_setpoint_without_profile_schedules_like_none() -> None:
    p = policy()
    p.apply(sp(100 * KW), START)  # fresh, for this truck, but no profile: 0 W (the EMS is not silent)
    (s,) = p.schedules(2, EVSE, True, START + 5)
    assert [e.power for e in s.charge] == [0.0, 0.0]


def test_a_profile_that_has_run_out_still_schedules_one_entry() -> None:
    p = policy()
    p.apply(sp(50 * KW, t_s=0, profile=((60.0, 50 * KW, 0),), price_levels=1), START)
    (s,) = p.schedules(10, EVSE, True, START + 120)  # the setpoint is valid for 180 s, its profile for 60 s
    assert len(s.charge) >= 1 and all(e.power == 0.0 for e in s.charge)


def test_renegotiate_on_a_material_change_of_a_newer_plan() -> None:
    p = policy()
    assert not p.renegotiate(START)  # nothing offered
    p.apply(sp(100 * KW, t_s=0, profile=((7200.0, 100 * KW, 0),)), START)
    p.schedules(10, EVSE, True, START)
    assert not p.renegotiate(START + 30)  # the same setpoint
    small = RENEGOTIATE_WH - 1000  # over the hour, and less than RENEGOTIATE_W now
    p.apply(sp(100 * KW, t_s=60, profile=((7200.0, 100 * KW + small, 0),)), START + 60)
    assert not p.renegotiate(START + 60)
    big = RENEGOTIATE_WH + 1000
    p.apply(sp(100 * KW, t_s=120, profile=((7200.0, 100 * KW + big, 0),)), START + 120)
    assert p.renegotiate(START + 120)
    # now only: 60 kW more for 60 s is 1 kWh, but more than RENEGOTIATE_W off at once
    jump = RENEGOTIATE_W + 10 * KW
    p.apply(sp(100 * KW, t_s=180, profile=((60.0, 100 * KW + jump, 0), (7200.0, 100 * KW, 0))), START + 180)
    assert p.renegotiate(START + 180)
    p.apply(sp(100 * KW, t_s=240, profile=((60.0, 100 * KW + jump - 20 * KW, 0), (7200.0, 100 * KW, 0))), START + 240)
    assert not p.renegotiate(START + 240)


def test_renegotiate_compares_from_now_on() -> None:
    p = policy()
    p.apply(sp(0.0, t_s=0, profile=((600.0, 0.0, 0), (7200.0, 200 * KW, 0))), START)
    p.schedules(10, EVSE, True, START)
    # a newer plan that only changes what is already past
    p.apply(sp(0.0, t_s=600, profile=((7200.0, 200 * KW, 0),)), START + 600)
    assert not p.renegotiate(START + 600)


# -- direction changes, trucks -----------------------------------------------------------------------------------
def test_direction_changes_are_counted_across_idle_and_reset_per_truck() -> None:
    p = policy()
    powers = [100 * KW, 500.0, 0.0, -100 * KW, -800.0, -50 * KW, 60 * KW]  # |p| <= 1 kW is idle
    for i, w in enumerate(powers):
        p.apply(sp(w, t_s=i), START + i)
        p.setpoint(loop(START + i + 0.5))
    assert p.direction_changes == 2
    p.new_truck("T2")
    assert p.direction_changes == 0 and p.truck == "T2" and p.offered is None
    p.apply(sp(-100 * KW, t_s=20, truck="T2"), START + 20)
    p.setpoint(loop(START + 21))
    assert p.direction_changes == 0  # the first direction of the new truck is no change


@pytest.mark.parametrize(
    ("volts", "armed", "charge_w", "discharge_w"),
    [
        (800.0, None, 300 * KW, 200 * KW),
        (700.0, None, 280 * KW, 200 * KW),
        (700.0, 250.0, 175 * KW, 175 * KW),
        (50.0, None, 300 * KW, 200 * KW),
    ],
)
def test_the_telemetry_gives_what_the_truck_takes_and_gives_at_the_present_voltage(
    volts: float, armed: float | None, charge_w: float, discharge_w: float
) -> None:
    """The truck's power limits, or its current limits (400 A charging, 300 A discharging) or the over-current
    protection's at the voltage now when lower: a pack's voltage falls as it gives (the built-in scenario's t1
    says 750 kW but its 923 A give 725 kW at 785 V); at 50 V there is no pack on the cable to rate them by."""
    ev = replace(EV, max_charge_current=400.0, max_discharge_current=300.0)
    x = replace(loop(START, ev=ev), armed_current_a=armed)
    assert ev_power_now(x, volts, charging=True) == pytest.approx(charge_w)
    assert ev_power_now(x, volts, charging=False) == pytest.approx(discharge_w)
    assert ev_power_now(None, volts, charging=True) == 0.0


def test_a_depot_outlet_counts_visits_and_hands_the_truck_to_its_policy() -> None:
    p = policy(truck=None)
    outlet = DepotOutlet("c1", charger=None, policy=p, efficiency=0.95)  # type: ignore[arg-type]
    visit = outlet.plug("T1")
    assert p.truck == "T1" and outlet.visit is visit and visit.truck == "T1"
    p.apply(sp(100 * KW, fcr_w=50 * KW), START)
    p.setpoint(loop(START))
    outlet.observe("rx", object())  # any message of the session is counted
    assert visit.messages == 1
    outlet.unplug(START + 10)
    assert outlet.visit is None and p.truck is None and p.last is None
    outlet.observe("rx", object())
    assert visit.messages == 1
    assert outlet.plug("T2") is not visit
    assert [v.truck for v in outlet.visits] == ["T1", "T2"]


def _stop(kind: str) -> cm.SessionStopReq:
    header = ct.MessageHeader(session_id=b"\x01" * 8, time_stamp=0)
    return cm.SessionStopReq(header=header, charging_session=cm.ChargingSession(kind))


def test_a_truck_that_terminates_its_session_is_finished_until_it_starts_another() -> None:
    """SessionStopReq(Terminate) ends the truck's charging for the visit; a Pause does not."""
    outlet = DepotOutlet("c1", charger=None, policy=policy(truck=None), efficiency=0.95)  # type: ignore[arg-type]
    visit = outlet.plug("T1")
    outlet.observe("rx", _stop("Pause"))
    assert not visit.finished
    outlet.observe("rx", _stop("Terminate"))
    assert visit.finished


def test_the_charger_never_commands_more_current_than_its_protection_was_armed_for() -> None:
    """The EV's loop limits may grow past what it said at ChargeParameterDiscovery (the over-current trip's
    reference): the current stays at the armed value instead of tripping the charger (a seed-3 depot fault)."""
    ev_now = replace(EV, max_charge_current=700.0, max_charge_power=1000 * KW)
    ev_v2g = replace(ev_now, max_discharge_current=700.0, max_discharge_power=1000 * KW)
    evse = replace(EVSE, max_charge_power=1000 * KW, max_discharge_power=1000 * KW, max_discharge_current=3000.0)
    assert clamp_current(606.0, 850.0, ev_now, evse, armed=520.0) == (520.0, "current")
    assert clamp_current(-606.0, 850.0, ev_v2g, evse, armed=520.0) == (-520.0, "current")
    assert clamp_current(300.0, 850.0, ev_now, evse, armed=520.0) == (300.0, None)
    assert clamp_current(606.0, 850.0, ev_now, evse, armed=None) == (606.0, None)


def test_a_setpoint_applied_between_loops_stays_within_the_armed_current() -> None:
    """The EMS's setpoint reaches the power stage at once, between charge loops: within the EV's limits and the
    over-current protection's armed value like a loop's current (a seed-3 depot fault: 609 A against a 572 A trip)."""
    charger = Charger.build(ChargerConfig(max_power=1000 * KW, max_current=1500.0), VirtualClock(START))
    p = policy()
    outlet = DepotOutlet("c1", charger=charger, policy=p, efficiency=0.95)
    ev_now = replace(EV, max_charge_current=700.0, max_charge_power=1000 * KW)
    evse = replace(EVSE, max_charge_power=1000 * KW, max_charge_current=1500.0)
    p.apply(sp(100 * KW), START)
    p.setpoint(replace(loop(START, ev=ev_now, evse=evse), armed_current_a=520.0))
    outlet.apply(sp(900 * KW, t_s=60.0), START + 60.0)
    stage = charger.hal.power_stage
    assert stage.current_limit_a == 520.0  # type: ignore[attr-defined]
