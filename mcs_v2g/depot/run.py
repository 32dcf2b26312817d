"""Play a depot scenario: every charger and truck of the yard on one virtual clock, steered by the site EMS.

Each charger is the emulator's `Charger` on its mock plant, each truck the emulator's `Truck` with a pack of
the scenario's size; every session runs through the real stack (V2GTP framing and EXI on every message) over
an in-memory link. At each dispatch step the chargers' telemetry goes to the site EMS (`SiteEms`: rolling-horizon
LP, real-time layer) and its setpoints come back; a paused truck rejoins its session when the EMS wants energy
for it again. What the report says each charger delivered is what its plant's meter counted.

SoC in the depot is a fraction of the pack's usable energy (what the scenario's `battery_kwh` and the EMS's
plan speak of); the truck's BMS counts charge, so its own SoC display differs by a few percent mid-range.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from ev_emulator.battery import PackSpec, TruckBattery
from ev_emulator.config import TruckConfig
from ev_emulator.truck import Truck
from evse_emulator.charger import Charger
from evse_emulator.config import ChargerConfig
from evse_emulator.energy.ems.forecast import plan_with_forecast
from evse_emulator.energy.ems.model import Charger as PlanCharger
from evse_emulator.energy.ems.site import Decision, FcrTerms, Planner, SiteEms, SiteModel
from evse_emulator.energy.outlet import DepotOutlet, SiteSetpoint
from evse_emulator.energy.topics import Announcement, OutletStep, Setpoint, Telemetry, VisitOutcome
from evse_emulator.hal.mock import settings_for_loop
from stack.clock import VirtualClock
from stack.session.actions import Close
from stack.transport.drive import Observers
from stack.transport.evcc_client import run_evcc_on
from stack.transport.memory import memory_link

from ..sim.run import PlantInlet
from .judge import Figures, figures
from .report import ChargerStep, DepotReport, StepReport, TruckReport
from .scenario import ChargerSpec, DepotScenario, TruckSpec, series_at

log = logging.getLogger("mcs_v2g.depot")

START = 1_795_000_000.0  # the clock's epoch at the scenario's t = 0
LEAD_LOOPS = 2  # charge loops before departure in which a charger delivers nothing (the session ends on time)
LEAVE_GRACE_S = 120.0  # a session still running this long after its truck's departure is cut (a hung truck)
# a dispatch comes just after its step's instant: what happens at that instant (a truck plugging in, a charge loop)
# is seen by it whatever the order of simultaneous timers (a held clock orders them differently); before the
# paused trucks look again (`_until_wanted`, 1 ms after)
DISPATCH_LAG_S = 0.0005


# -- the scenario's parts as the emulator's products ------------------------------------------------------------
def energy_soc(battery: TruckBattery) -> float:
    """The pack's stored energy as a fraction of its usable energy (the depot's SoC)."""
    return battery.stored_wh() / battery.spec.usable_energy_wh


def _bms_soc(pack: PackSpec, fraction: float) -> float:
    """The BMS SoC (charge) at which the pack holds `fraction` of its usable energy."""
    return TruckBattery(spec=pack).soc_for_energy(fraction * pack.usable_energy_wh)


def pack_of(spec: TruckSpec) -> PackSpec:
    return PackSpec().sized(spec.battery_kwh * 1000, spec.max_charge_w, spec.max_discharge_w)


def truck_config(spec: TruckSpec, scenario: DepotScenario, control: str = "dynamic") -> TruckConfig:
    """The truck's own settings: its needs in its BMS's SoC, MCS (BPT when it offers V2G on a two-way charger)."""
    pack = pack_of(spec)
    v2g = spec.max_discharge_w > 0 and scenario.charger_of(spec).bidirectional
    target = _bms_soc(pack, spec.target_soc)
    floor = _bms_soc(pack, spec.min_soc)
    return TruckConfig(
        vin=spec.id,
        service="mcs-bpt" if v2g else "mcs",
        control=control,
        initial_soc=_bms_soc(pack, spec.initial_soc),
        target_soc=target,
        min_soc=min(floor, target),
        v2g_reserve_soc=floor,
        offers_v2g=v2g,
        departure_s=spec.departure_s - spec.arrival_s,
        max_contactor_cycles=spec.max_contactor_cycles,
        loop_interval=scenario.loop_interval_s,
    )


def charger_config(spec: ChargerSpec, loop_interval_s: float) -> ChargerConfig:
    """The charger of `spec`, its plant stepping one charge loop at a time (as in `mcs-v2g sim`)."""
    return ChargerConfig(
        evse_id=f"DE*DEP*E{spec.id}",
        max_voltage=spec.max_voltage_v,
        max_current=spec.max_current_a,
        max_power=spec.max_power_w,
        bidirectional=spec.bidirectional,
        offer=("mcs", "mcs-bpt") if spec.bidirectional else ("mcs",),
        control_modes=("dynamic", "scheduled"),
        hal_settings=settings_for_loop(loop_interval_s),
    )


def site_model(scenario: DepotScenario) -> SiteModel:
    """What the site's backend knows from the start."""
    site, tariff, fcr = scenario.site, scenario.tariff, scenario.fcr
    return SiteModel(
        step_s=scenario.step_s,
        horizon_s=scenario.horizon_s,
        import_price=tariff.import_eur_per_kwh,
        export_price=tariff.export_eur_per_kwh,
        base_load=site.base_load_w,
        import_limit_w=site.grid_import_limit_w,
        export_limit_w=site.grid_export_limit_w,
        demand_eur_per_kw=tariff.demand_eur_per_kw,
        unserved_eur_per_kwh=tariff.unserved_eur_per_kwh,
        chargers=tuple(
            PlanCharger(c.id, c.max_power_w, c.bidirectional, c.efficiency, c.max_current_a) for c in scenario.chargers
        ),
        fcr=None
        if fcr is None
        else FcrTerms(fcr.capacity_w, fcr.windows, fcr.deadband_hz, fcr.energy_reserve_s, fcr.penalty_eur_per_kwh),
    )


def announcement(spec: TruckSpec) -> Announcement:
    return Announcement(
        t_s=spec.announced_s,
        truck=spec.id,
        charger=spec.charger,
        arrival_s=spec.arrival_s,
        departure_s=spec.departure_s,
        battery_wh=spec.battery_kwh * 1000,
        soc=spec.initial_soc,
        target_soc=spec.target_soc,
        min_soc=spec.min_soc,
        max_charge_w=spec.max_charge_w,
        max_discharge_w=spec.max_discharge_w,
        min_power_w=spec.min_power_w,
        booked=spec.booked,
        max_contactor_cycles=spec.max_contactor_cycles,
    )


def safe_share_w(scenario: DepotScenario) -> float:
    """What a charger gives when the EMS's setpoints stop: an equal share of the connection above the base load."""
    peak_base = max(w for _, w in scenario.site.base_load_w)
    headroom = max(scenario.site.grid_import_limit_w - peak_base, 0.0)
    return headroom / len(scenario.chargers) * min(c.efficiency for c in scenario.chargers)


def build_outlet(spec: ChargerSpec, scenario: DepotScenario, clock: VirtualClock) -> DepotOutlet:
    frequency = scenario.fcr.frequency_hz if scenario.fcr else ((0.0, 50.0),)
    policy = SiteSetpoint(
        lambda t: series_at(frequency, t), safe_share_w(scenario), LEAD_LOOPS * scenario.loop_interval_s
    )
    policy.start_s = START
    charger = Charger.build(charger_config(spec, scenario.loop_interval_s), clock)
    charger.policy = policy
    return DepotOutlet(spec.id, charger, policy, spec.efficiency)


# -- the run ----------------------------------------------------------------------------------------------------
@dataclass
class TruckStay:
    """One truck's visit as the simulation saw it."""

    spec: TruckSpec
    control: str = "dynamic"
    truck: Truck | None = None
    closes: list[Close] = field(default_factory=list)
    lowest_soc: float = 1.0
    direction_changes: int = 0
    messages: int = 0

    def session_result(self) -> str:
        if not self.closes:
            return "no session"
        bad = [c.reason for c in self.closes if not (c.ok or c.paused)]
        return "ok" if not bad else "; ".join(bad)

    def outcome(self) -> VisitOutcome:
        return VisitOutcome(
            truck=self.spec.id,
            charger=self.spec.charger,
            contactor_cycles=self.truck.battery.contactors.session_cycles if self.truck else 0,
            direction_changes=self.direction_changes,
            session_result=self.session_result(),
            messages=self.messages,
            min_soc_seen=min(self.lowest_soc, self.spec.initial_soc),
        )


@dataclass
class DepotRun:
    """A depot node's run: its chargers and trucks (all of the scenario's, or a subset with `--chargers`)."""

    scenario: DepotScenario
    outlets: dict[str, DepotOutlet]
    stays: dict[str, TruckStay]
    backend: SiteBackend
    records: list[list[OutletStep]] = field(default_factory=list)  # per step, per charger of this node
    wall_s: float = 0.0

    @property
    def ems(self) -> SiteEms | None:
        """The site EMS when it runs in this process."""
        return self.backend.ems if isinstance(self.backend, LocalBackend) else None

    def outcomes(self) -> list[VisitOutcome]:
        return [stay.outcome() for stay in self.stays.values()]

    def report(self) -> DepotReport:
        return build_report(self.scenario, self.records, self.outcomes(), self.wall_s)


class SiteBackend(Protocol):
    """The site EMS as a depot node reaches it: at each dispatch step the node hands over what happened and what
    it measures, and gets its chargers' setpoints back."""

    async def step(
        self, t_s: float, announced: list[Announcement], records: list[OutletStep], telemetry: dict[str, Telemetry]
    ) -> dict[str, Setpoint]: ...


@dataclass
class LocalBackend:
    """The site EMS in this process."""

    ems: SiteEms
    decisions: list[Decision] = field(default_factory=list)

    async def step(
        self, t_s: float, announced: list[Announcement], records: list[OutletStep], telemetry: dict[str, Telemetry]
    ) -> dict[str, Setpoint]:
        return self.answer(t_s, announced, records, telemetry)

    def answer(
        self, t_s: float, announced: list[Announcement], records: list[OutletStep], telemetry: dict[str, Telemetry]
    ) -> dict[str, Setpoint]:
        """`step` without the event loop (the EMS decides at once)."""
        for a in announced:
            self.ems.announce(a)
        if records:
            hours = self.ems.model.step_s / 3600
            delivered = {r.truck: r.power_w * hours for r in records if r.truck is not None}
            droop = sum(_droop_grid_w(r, self.ems.model.charger(r.charger)) for r in records)
            self.ems.record_step(records[0].t_s, sum(r.grid_w for r in records), delivered, droop)
        if not telemetry:  # the horizon: the last step's records only
            return {}
        decision = self.ems.dispatch(t_s, telemetry)
        self.decisions.append(decision)
        return decision.setpoints


@dataclass(frozen=True)
class DispatchView:
    """A dispatch step as a live display shows it: the EMS's events so far (empty when it runs elsewhere), each
    charger's telemetry and the power it was told."""

    t_s: float
    events: Sequence[tuple[float, str]]
    telemetry: Mapping[str, Telemetry]
    told_w: Mapping[str, float]


Progress = Callable[[DispatchView], None]


def _droop_grid_w(record: OutletStep, charger: PlanCharger) -> float:
    """What a charger's FCR droop moved at the grid in a step: its grid-side power less what the rest of its DC
    power would have drawn (through the efficiency in the direction the charger ran without the droop)."""
    return record.grid_w - charger.grid_w(record.power_w - record.fcr_w)


def local_ems(
    scenario: DepotScenario,
    planner: Planner = plan_with_forecast,
    guard: bool = True,
    control: str = "dynamic",
    fcr_strict: bool = False,
) -> LocalBackend:
    """The site EMS for `scenario` in this process; `guard=False` leaves the grid limits unguarded (the
    uncontrolled depot of the benchmark); `control="scheduled"` sends each truck its plan as a schedule;
    `fcr_strict`: the demand charge never moves a truck's power against an FCR activation (`SiteEms.record_step`)."""
    lead = LEAD_LOOPS * scenario.loop_interval_s
    scheduled = control == "scheduled"
    ems = SiteEms(
        site_model(scenario), planner, departure_lead_s=lead, guard=guard, scheduled=scheduled, fcr_strict=fcr_strict
    )
    return LocalBackend(ems)


def run_depot(
    scenario: DepotScenario,
    *,
    planner: Planner = plan_with_forecast,
    speed: float | None = None,
    progress: Progress | None = None,
    guard: bool = True,
    control: str = "dynamic",
    fcr_strict: bool = False,
) -> DepotRun:
    """Play the whole scenario with its EMS in this process on a fresh virtual clock (`speed=None`: as fast as it
    computes); every truck in Dynamic or Scheduled `control` mode."""
    clock = VirtualClock(START, speed)
    backend = local_ems(scenario, planner, guard, control, fcr_strict)
    return clock.run(play_depot(scenario, clock, backend, progress=progress, control=control))


async def play_depot(
    scenario: DepotScenario,
    clock: VirtualClock,
    backend: SiteBackend,
    *,
    chargers: Collection[str] | None = None,
    progress: Progress | None = None,
    held: bool = False,
    control: str = "dynamic",
    built: Callable[[DepotRun], None] | None = None,
) -> DepotRun:
    """Run the chargers named (default: all) and their trucks through the scenario. `held`: the clock waits at
    each step boundary until the backend has answered (a site EMS in another process sets the pace). `built` is
    called with the run once its chargers exist (a backend that applies setpoints as they come needs them)."""
    logging.getLogger("mcs_v2g").setLevel(logging.WARNING)
    wall = time.perf_counter()
    mine = [c for c in scenario.chargers if chargers is None or c.id in chargers]
    outlets = {c.id: build_outlet(c, scenario, clock) for c in mine}
    stays = {t.id: TruckStay(t, control=control) for t in scenario.trucks if t.charger in outlets}
    run = DepotRun(scenario, outlets, stays, backend)
    if built is not None:
        built(run)
    servers = {cid: o.charger.server(observers=Observers(message=o.observe)) for cid, o in outlets.items()}
    for outlet in outlets.values():
        outlet.start_metering()
    visits = [asyncio.ensure_future(_stay(run, stay, servers, clock)) for stay in stays.values()]
    announcements = sorted((announcement(s.spec) for s in stays.values()), key=lambda a: a.t_s)
    try:
        for k, t in enumerate(scenario.step_starts()):
            if held:
                clock.hold(START + t + DISPATCH_LAG_S)
            await clock.sleep_until(START + t + DISPATCH_LAG_S)
            records = _close_step(run, k - 1) if k else []
            due = []
            while announcements and announcements[0].t_s <= t:
                due.append(announcements.pop(0))
            now = clock.now()
            telemetry = {cid: o.telemetry(t, now) for cid, o in outlets.items()}
            setpoints = await backend.step(t, due, records, telemetry)
            for cid, setpoint in setpoints.items():
                if cid in outlets:
                    outlets[cid].apply(setpoint, clock.now())
            if progress is not None:
                ems = run.ems
                told = {cid: sp.power_w for cid, sp in setpoints.items()}
                progress(DispatchView(t, ems.events if ems else (), telemetry, told))
        if held:
            clock.hold(START + scenario.horizon_s)
        await clock.sleep_until(START + scenario.horizon_s)
        await backend.step(scenario.horizon_s, [], _close_step(run, len(run.records)), {})
        if held:
            clock.hold(None)
        await asyncio.gather(*visits)
    finally:
        for task in visits:
            task.cancel()
        for server in servers.values():
            await server.close()
    run.wall_s = time.perf_counter() - wall
    return run


def _close_step(run: DepotRun, k: int) -> list[OutletStep]:
    """Account step k (it ends now): each charger's meter, the plugged truck's SoC."""
    s = run.scenario
    now = START + (k + 1) * s.step_s
    records = []
    for cid, outlet in run.outlets.items():
        power, grid, fcr = outlet.close_step(s.step_s, now)
        spec = s.occupancy[cid].get(k)
        stay = run.stays[spec.id] if spec is not None else None
        soc = None
        if stay is not None:
            soc = stay.spec.initial_soc if stay.truck is None else energy_soc(stay.truck.battery)
            stay.lowest_soc = min(stay.lowest_soc, soc, stay.spec.initial_soc)
        told = outlet.policy.told_w if stay is not None else 0.0
        records.append(OutletStep(k * s.step_s, cid, spec.id if spec else None, power, grid, soc, told, fcr))
    run.records.append(records)
    return records


async def _stay(run: DepotRun, stay: TruckStay, servers: dict, clock: VirtualClock) -> None:
    """A truck's visit: plug in at arrival, run its session (and rejoin after each pause), leave at departure."""
    spec, s = stay.spec, run.scenario
    await clock.sleep_until(START + spec.arrival_s)
    truck = Truck.build(truck_config(spec, s, stay.control), clock, pack=pack_of(spec))
    stay.truck = truck
    outlet = run.outlets[spec.charger]
    plant = outlet.charger.plant
    assert plant is not None
    plant.plug(truck.battery)
    truck.plug_into(PlantInlet(plant))
    visit = outlet.plug(spec.id)
    departure = START + spec.departure_s
    config = truck.evcc_config
    while clock.now() < departure:
        link = await memory_link()
        secc = asyncio.ensure_future(servers[spec.charger].serve(*link.server))
        try:
            async with clock.timeout_at(departure + LEAVE_GRACE_S):
                close, session = await run_evcc_on(*link.client, truck.controller, config, clock=clock)
        except TimeoutError:  # a hung truck drives off anyway: its session is cut at the plug
            close, session = Close(f"the truck's session had not ended {LEAVE_GRACE_S:.0f} s after departure"), None
            link.client[1].close()
        except Exception as exc:  # the truck's own failure ends its stay, reported
            close, session = Close(f"the EV side failed: {type(exc).__name__}: {exc}"), None
        await asyncio.gather(secc, return_exceptions=True)
        stay.closes.append(close)
        outlet.policy.idle(clock.now())
        if not close.paused or session is None:
            break
        config = replace(config, resume=session.resume_info)
        await _until_wanted(outlet, clock, departure, s.step_s)
    stay.direction_changes = outlet.policy.direction_changes
    stay.messages = visit.messages
    if clock.now() < departure:
        await clock.sleep_until(departure)
    outlet.unplug(clock.now())
    plant.sync()
    plant.plug(None)


async def _until_wanted(outlet: DepotOutlet, clock: VirtualClock, departure: float, step_s: float) -> None:
    """Wait, paused, until the charger is told to deliver again (checked after each dispatch) or departure."""
    lead = outlet.policy.lead_s
    while clock.now() < departure - lead - 1.0:
        if outlet.policy.wants_energy(clock.now()):
            return
        boundary = START + ((clock.now() - START) // step_s + 1) * step_s
        await clock.sleep_until(min(boundary + 0.001, departure))
    await clock.sleep_until(departure)


# -- the report -------------------------------------------------------------------------------------------------
def build_report(
    scenario: DepotScenario, records: list[list[OutletStep]], outcomes: list[VisitOutcome], wall_s: float
) -> DepotReport:
    """The depot report from every charger's step records and every truck's outcome (wherever they ran)."""
    s = scenario
    steps = tuple(_step_report(s, k, step) for k, step in enumerate(records))
    measured = figures(s, steps)
    by_truck = {o.truck: o for o in outcomes}
    trucks = tuple(_truck_report(spec, measured, by_truck.get(spec.id)) for spec in s.trucks)
    reasons = _failures(s, measured, trucks)
    return DepotReport(
        result="ok" if not reasons else "; ".join(reasons),
        scenario=s.name,
        cost_eur=measured.cost,
        peak_import_w=measured.peak_import_w,
        peak_15min_import_w=measured.peak_15min_import_w,
        grid_import_violation_s=measured.import_violation_s,
        grid_export_violation_s=measured.export_violation_s,
        trucks=trucks,
        fcr=measured.fcr,
        wall_s=round(wall_s, 3),
        simulated_s=float(s.horizon_s),
        steps=steps,
    )


def _step_report(s: DepotScenario, k: int, records: list[OutletStep]) -> StepReport:
    t = k * s.step_s
    base = series_at(s.site.base_load_w, t)
    chargers = {r.charger: ChargerStep(r.truck, r.power_w, r.soc, r.setpoint_w) for r in records}
    return StepReport(
        t_s=t,
        price_import=series_at(s.tariff.import_eur_per_kwh, t),
        price_export=series_at(s.tariff.export_eur_per_kwh, t),
        base_load_w=base,
        grid_w=base + sum(r.grid_w for r in records),
        fcr_w=sum(r.fcr_w for r in records),
        chargers=chargers,
    )


def _truck_report(spec: TruckSpec, measured: Figures, outcome: VisitOutcome | None) -> TruckReport:
    mine = measured.trucks[spec.id]
    return TruckReport(
        id=spec.id,
        charger=spec.charger,
        energy_in_kwh=mine.energy_in_kwh,
        energy_out_kwh=mine.energy_out_kwh,
        soc_at_departure=mine.soc_at_departure,
        target_met=mine.target_met,
        unserved_kwh=mine.unserved_kwh,
        min_soc_seen=min(outcome.min_soc_seen, mine.lowest_soc) if outcome else mine.lowest_soc,
        contactor_cycles=outcome.contactor_cycles if outcome else 0,
        direction_changes=outcome.direction_changes if outcome else 0,
        session_result=outcome.session_result if outcome else "no report from its charger",
        messages=outcome.messages if outcome else 0,
    )


def _failures(s: DepotScenario, figures: Figures, trucks: tuple[TruckReport, ...]) -> list[str]:
    """Why the depot did not do what it was for (empty: it did)."""
    reasons = []
    missed = [t.id for t in s.trucks if s.feasible(t) and not figures.trucks[t.id].target_met]
    if missed:
        reasons.append(f"feasible targets missed: {', '.join(missed)}")
    if figures.import_violation_s:
        reasons.append(f"grid import limit exceeded for {figures.import_violation_s:.0f} s")
    if figures.export_violation_s:
        reasons.append(f"grid export limit exceeded for {figures.export_violation_s:.0f} s")
    reasons += [f"{t.id}: {t.session_result}" for t in trucks if t.session_result != "ok"]
    return reasons
