"""A charger of a depot under a site EMS: it applies the EMS's setpoints to its sessions, reports what it measures
and hears over -20, and accounts each dispatch step.

The setpoint reaches the session as the charger's own decision in Dynamic mode (the EVSE sets the power within
the EV's limits at every DC_ChargeLoopRes). On top of it the charger adds its share of the depot's FCR response
as a droop on the frequency it measures at that charge loop (the frequency is never known in advance). A
setpoint with `paused` asks the EV to pause (EVSENotification Pause, or GoToPause at ScheduleExchange); the truck
rejoins when the EMS wants energy again. In the last charge loops before the truck's departure (from its -20
DepartureTime) the charger delivers nothing: the session ends on time with no energy after the departure.

The EMS's setpoints are watched: while they are fresh the charger follows them; a setpoint for another truck
(the one before, or none yet for a truck that just plugged in) gives 0 W; when they stop for longer than they
are valid, the charger falls back to its safe share and counts the fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from stack.messages import iso20_common as cm
from stack.session.controller import PowerLimits, PriceLevel, Schedule, ScheduleEntry
from stack.session.rulebook import message_name

from ..charger import Charger
from ..controller import clamp_current
from ..hal import MeterSnapshot
from .policy import ChargeToTarget, PolicyInput
from .realtime import droop_w
from .topics import MIN_PACK_V, Setpoint, SetpointWatchdog, Telemetry

log = logging.getLogger("evse_emulator.energy.outlet")

ACTIVE_W = 1_000.0  # |power| above this counts as charging or discharging (direction changes, state)


@dataclass
class _Held:
    """The power granted at the last charge loop, held until the next (sample and hold)."""

    since: float
    power_w: float = 0.0
    fcr_w: float = 0.0


class SiteSetpoint:
    """The charger's `SetpointPolicy` under a site EMS (see the module docstring)."""

    def __init__(self, frequency_hz: Callable[[float], float], safe_w: float, lead_s: float) -> None:
        self.frequency_hz = frequency_hz  # the frequency measured at the site at a sim time (s from the start)
        self.watchdog = SetpointWatchdog(safe_w)
        self.lead_s = lead_s  # no energy this close to the truck's departure
        self.truck: str | None = None
        self.start_s = 0.0  # the scenario's start on the charger's clock
        self.last: PolicyInput | None = None  # the last charge loop's input: the EV's limits and needs
        self.told_w = 0.0
        self.fcr_wh = 0.0  # energy delivered for FCR since the last `take_fcr_wh`
        self.direction_changes = 0
        self._held: _Held | None = None
        self._sign = 0
        self.offered: _Offered | None = None  # the schedule a Scheduled session follows

    def apply(self, setpoint: Setpoint, now: float) -> None:
        self.watchdog.update(setpoint, now)

    def current(self, now: float) -> Setpoint | None:
        """The EMS's setpoint for the plugged-in truck now; None when there is none for it."""
        setpoint = self.watchdog.current(now)
        if setpoint is None or setpoint.truck != self.truck:
            return None
        return setpoint

    def setpoint(self, x: PolicyInput) -> float:
        now = x.now
        self.last = x
        if self.offered is not None:  # a Scheduled session: the EV follows the schedule it was given
            power = _power_at(_from(self.offered.profile, now - self.offered.at))
            self.told_w = power
            self._hold(now, power, 0.0)
            return power
        fresh = self.watchdog.current(now)
        mine = self.current(now)
        base = mine.power_w if mine is not None else 0.0 if fresh is not None else self.watchdog.safe_w
        droop = 0.0
        if mine is not None and (mine.fcr_w > 0 or mine.fcr_down_w > 0):
            hz = self.frequency_hz(now - self.start_s)
            droop = droop_w(hz, mine.fcr_w, mine.deadband_hz) + min(droop_w(hz, mine.fcr_down_w, mine.deadband_hz), 0.0)
            if mine.fcr_up_w is not None:
                droop = min(droop, mine.fcr_up_w)
        departure = x.energy.departure_time if x.energy is not None else None
        if departure is not None and departure <= self.lead_s:
            base = droop = 0.0
        self.told_w = base
        granted = _within(base + droop, x.ev, x.evse)
        self._hold(now, granted, granted - _within(base, x.ev, x.evse))
        return granted

    def pause(self, now: float) -> bool:
        mine = self.current(now)
        if mine is not None and mine.paused:
            self._hold(now, 0.0, 0.0)
            return True
        return False

    def advertise(self, limits: PowerLimits, now: float) -> PowerLimits:
        """Dynamic mode: the EVSE maximum powers told in DC_ChargeLoopRes are what the EMS allows now (its
        setpoint, and the FCR share on top in either direction); the minimums never above them."""
        mine = self.current(now)
        if mine is None or self.offered is not None:
            return limits
        up = max(mine.power_w, 0.0) + (mine.fcr_w if mine.fcr_up_w is None else min(mine.fcr_w, mine.fcr_up_w))
        down = max(-mine.power_w, 0.0) + mine.fcr_w + mine.fcr_down_w
        charge = min(limits.max_charge_power, up)
        told = replace(limits, max_charge_power=charge, min_charge_power=min(limits.min_charge_power, charge))
        if limits.max_discharge_power is None:
            return told
        discharge = min(limits.max_discharge_power, down)
        return replace(
            told,
            max_discharge_power=discharge,
            min_discharge_power=min(limits.min_discharge_power or 0.0, discharge),
        )

    def wants_energy(self, now: float) -> bool:
        """Whether a paused truck should rejoin: the EMS wants energy for it, or it is silent (the safe share)."""
        mine = self.current(now)
        if mine is not None:
            return not mine.paused
        return self.watchdog.current(now) is None and self.watchdog.safe_w > 0

    def schedules(
        self, max_entries: int, evse: PowerLimits, bidirectional: bool, now: float = 0.0
    ) -> tuple[Schedule, ...]:
        """Scheduled mode: the EMS's plan for this truck from now on, with its price levels."""
        mine = self.current(now)
        if mine is not None and not _from(mine.profile, now - self.start_s - mine.t_s):
            mine = None  # its profile has run out (the truck stays past its plan): nothing, as below
        if mine is None or not mine.profile:  # none for this truck yet: nothing (the safe share if the EMS is
            base = 0.0 if self.watchdog.current(now) is not None else self.watchdog.safe_w  # silent) until it is
            self.offered = _Offered(now, ((86_400.0, base, 0),), -1.0)
            return ChargeToTarget().schedules(max_entries, replace(evse, max_charge_power=base), bidirectional, now)
        offered = _from(mine.profile, now - self.start_s - mine.t_s)[: max(1, max_entries)]
        self.offered = _Offered(now, offered, mine.t_s)
        charge = tuple(ScheduleEntry(max(1, round(d)), max(p, 0.0)) for d, p, _ in offered)
        discharge = tuple(ScheduleEntry(max(1, round(d)), max(-p, 0.0)) for d, p, _ in offered)
        prices = tuple(PriceLevel(max(1, round(d)), level) for d, _, level in offered)
        return (Schedule(1, charge, discharge if bidirectional else None, prices, mine.price_levels),)

    def renegotiate(self, now: float) -> bool:
        """A newer plan from the EMS differs materially from the schedule the EV follows: over the next hour by
        more than `RENEGOTIATE_WH`, or now by more than `RENEGOTIATE_W`."""
        mine, offered = self.current(now), self.offered
        if mine is None or not mine.profile or offered is None or mine.t_s == offered.setpoint_t_s:
            return False
        elapsed = now - offered.at
        old = _from(offered.profile, elapsed)
        new = _from(mine.profile, now - self.start_s - mine.t_s)
        return (
            abs(_energy_wh(old, 3600.0) - _energy_wh(new, 3600.0)) > RENEGOTIATE_WH
            or abs(_power_at(old) - _power_at(new)) > RENEGOTIATE_W
        )

    def idle(self, now: float) -> None:
        """No session is drawing power (between sessions, paused, unplugged)."""
        self._hold(now, 0.0, 0.0)
        self.last = None

    def take_fcr_wh(self, now: float) -> float:
        """The FCR energy delivered since the last call (Wh, + charging)."""
        self._settle(now)
        energy, self.fcr_wh = self.fcr_wh, 0.0
        return energy

    def _hold(self, now: float, power_w: float, fcr_w: float) -> None:
        self._settle(now)
        self._held = _Held(now, power_w, fcr_w)
        sign = (power_w > ACTIVE_W) - (power_w < -ACTIVE_W)
        if sign and self._sign and sign != self._sign:
            self.direction_changes += 1
        self._sign = sign or self._sign

    def _settle(self, now: float) -> None:
        held = self._held
        if held is not None and now > held.since:
            self.fcr_wh += held.fcr_w * (now - held.since) / 3600
            held.since = now

    def new_truck(self, truck: str | None) -> None:
        self.truck = truck
        self.offered = None
        self._sign = 0
        self.direction_changes = 0


Profile = tuple[tuple[float, float, int], ...]  # (s, W, price level)
RENEGOTIATE_WH = 5_000.0  # a plan this far off the followed schedule over the next hour is a material change ...
RENEGOTIATE_W = 50_000.0  # ... or this far off now


@dataclass(frozen=True)
class _Offered:
    at: float  # clock time the schedule was offered (its entries run from then)
    profile: Profile
    setpoint_t_s: float  # the setpoint it came from


def _from(profile: Profile, elapsed_s: float) -> Profile:
    """The profile from `elapsed_s` after its start on (empty after its end)."""
    out, t = [], 0.0
    for duration, power, level in profile:
        end = t + duration
        if end > elapsed_s:
            out.append((end - max(t, elapsed_s), power, level))
        t = end
    return tuple(out)


def _power_at(profile: Profile) -> float:
    return profile[0][1] if profile else 0.0


def _energy_wh(profile: Profile, span_s: float) -> float:
    total, t = 0.0, 0.0
    for duration, power, _ in profile:
        take = min(duration, span_s - t)
        if take <= 0:
            break
        total += power * take / 3600
        t += take
    return total


def ev_power_now(x: PolicyInput | None, voltage_v: float, *, charging: bool) -> float:
    """The most the EV takes (or gives) now: its power limit, or its current limit (and the over-current
    protection's) at the present voltage when that is lower (a pack's voltage falls as it gives power)."""
    ev = x.ev if x is not None else None
    if x is None or ev is None:
        return 0.0
    power = ev.max_charge_power if charging else (ev.max_discharge_power or 0.0)
    amps = ev.max_charge_current if charging else (ev.max_discharge_current or 0.0)
    if x.armed_current_a is not None:
        amps = min(amps, x.armed_current_a)
    return min(power, amps * voltage_v) if voltage_v >= MIN_PACK_V else power


def _within(power_w: float, ev: PowerLimits | None, evse: PowerLimits) -> float:
    """A signed power within the EV's and the charger's present power limits."""
    charge = min(evse.max_charge_power, ev.max_charge_power if ev else evse.max_charge_power)
    discharge = min(evse.max_discharge_power or 0.0, (ev.max_discharge_power or 0.0) if ev else 0.0)
    return min(max(power_w, -discharge), charge)


@dataclass
class Visit:
    """One truck at this charger: what the charger counted of its sessions."""

    truck: str
    session_id: str | None = None
    messages: int = 0
    starts: int = 0  # PowerDelivery(Start): the truck's contactor closings
    renegotiations: int = 0  # PowerDelivery(ScheduleRenegotiation)
    priced_schedules: int = 0  # ScheduleExchangeRes with price levels
    finished: bool = False  # the truck ended its charging for this visit (SessionStopReq Terminate)


@dataclass
class DepotOutlet:
    """A charger of the depot, its EMS policy and its accounting (sans-I/O: the caller brings the time)."""

    id: str
    charger: Charger
    policy: SiteSetpoint
    efficiency: float
    visit: Visit | None = None
    visits: list[Visit] = field(default_factory=list)
    _meter: MeterSnapshot | None = None

    def apply(self, setpoint: Setpoint, now: float) -> None:
        """Take the EMS's setpoint and act on it at once in Dynamic mode: the power stage follows now, the EV
        hears of it in the next DC_ChargeLoopRes (a charger does not hold an old power until the next loop)."""
        policy = self.policy
        policy.apply(setpoint, now)
        x = policy.last
        if x is None or policy.offered is not None or x.ev is None:
            return  # no session in the loop (or the EV drives a Scheduled one)
        stage = self.charger.hal.power_stage
        power = 0.0 if policy.pause(now) else policy.setpoint(replace(x, now=now))
        voltage = max(stage.present().voltage_v, 1.0)
        # within the ratings, the EV's limits and the armed over-current protection, as in a charge loop
        current, _ = clamp_current(power / voltage, voltage, x.ev, x.evse, x.armed_current_a)
        stage.set_limits(x.ev.max_voltage, current, x.evse.max_charge_power)

    def plug(self, truck: str) -> Visit:
        self.visit = Visit(truck)
        self.visits.append(self.visit)
        self.policy.new_truck(truck)
        return self.visit

    def unplug(self, now: float) -> None:
        self.visit = None
        self.policy.idle(now)
        self.policy.new_truck(None)

    def observe(self, direction: str, message: object) -> None:
        """Every message of this charger's sessions (an SECC observer)."""
        visit = self.visit
        if visit is None:
            return
        visit.messages += 1
        if isinstance(message, cm.PowerDeliveryReq) and message.charge_progress == cm.ChargeProgress.Start:
            visit.starts += 1
        elif isinstance(message, cm.PowerDeliveryReq):
            visit.renegotiations += message.charge_progress == cm.ChargeProgress.ScheduleRenegotiation
        elif isinstance(message, cm.ScheduleExchangeRes) and message.scheduled_se_res_control_mode is not None:
            tuples = message.scheduled_se_res_control_mode.schedule_tuple
            visit.priced_schedules += any(t.charging_schedule.price_level_schedule is not None for t in tuples)
        elif isinstance(message, cm.SessionStopReq):
            visit.finished = message.charging_session == cm.ChargingSession.Terminate
        elif message_name(message) == "SessionSetupRes":
            visit.session_id = message.header.session_id.hex().upper()  # type: ignore[attr-defined]
            visit.finished = False

    def telemetry(self, t_s: float, now: float) -> Telemetry:
        """What the charger knows now: its output, and what the truck said in its last charge loop."""
        plant = self.charger.plant
        if plant is not None:
            plant.sync()
        present = self.charger.hal.power_stage.present()
        power = present.voltage_v * present.current_a
        x, visit = self.policy.last, self.visit
        state = "idle" if visit is None else "connected"
        told = self.policy.current(now)
        if visit is not None and told is not None and told.paused:
            state = "paused"
        if visit is not None and visit.finished:
            state = "finished"
        if power > ACTIVE_W:
            state = "charging"
        elif power < -ACTIVE_W:
            state = "discharging"
        return Telemetry(
            t_s=t_s,
            voltage_v=round(present.voltage_v, 2),
            current_a=round(present.current_a, 2),
            power_kw=round(power / 1000, 3),
            soc=None if x is None or x.soc is None else x.soc / 100,
            state=state,
            session_id=visit.session_id if visit else None,
            truck=visit.truck if visit else None,
            ev_max_charge_w=ev_power_now(x, present.voltage_v, charging=True),
            ev_max_discharge_w=ev_power_now(x, present.voltage_v, charging=False),
            energy_to_target_wh=None if x is None or x.energy is None else x.energy.target_energy,
            energy_to_full_wh=None if x is None or x.energy is None else x.energy.max_energy,
            cycles_used=visit.starts if visit else 0,
        )

    def close_step(self, step_s: float, now: float) -> tuple[float, float, float]:
        """The step that ends now: mean DC power, mean grid-side power (through the efficiency) and mean FCR
        power, from the charger's meter (W)."""
        plant = self.charger.plant
        if plant is not None:
            plant.sync()
        meter = self.charger.hal.meter.read()
        before = self._meter or meter
        self._meter = meter
        imported = (meter.imported_wh - before.imported_wh) * 3600 / step_s
        exported = (meter.exported_wh - before.exported_wh) * 3600 / step_s
        fcr = self.policy.take_fcr_wh(now) * 3600 / step_s
        return imported - exported, imported / self.efficiency - exported * self.efficiency, fcr

    def start_metering(self) -> None:
        self._meter = self.charger.hal.meter.read()
