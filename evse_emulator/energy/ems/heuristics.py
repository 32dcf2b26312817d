"""The field's standard charging heuristics as planners of the EMS's signature, for the benchmark against the LP.

Each is `(x: SitePlan) -> Plan`: it builds the DC setpoints step by step, greedily, and hands them to `evaluate`
(status: its name, `fallback=False`). None holds the FCR reservation (reported as not held). Common to all: a
truck gets power only in the steps it is plugged in (`x.presence`), at most its rate (min(max_charge_w, its
charger's rating)) x the plugged-in fraction of the step; the trucks on one charger within one step share its
rating (|charge| + |discharge|); no truck is charged above its battery. "Short" means below the target at
departure (or at the plan's end); "headroom" is the import limit - base load - the chargers' grid-side power so far.
The names of EDF, LLF and round robin follow acnportal (Caltech's ACN-Sim, `acnportal/algorithms/`):

- `uncontrolled` (acnportal `UncontrolledCharging`): every plugged-in, short truck charges at its rate x the
  plugged-in fraction until it reaches its target; the grid limit and the prices are ignored; no V2G.
- `equal_share` (acnportal `RoundRobin` in the limit of infinitesimal increments, i.e. max-min fair): the
  headroom is shared equally, grid side, among the plugged-in short trucks by water-filling; a truck capped below
  its share (by its rate, its charger's spare rating or the energy it still needs) leaves the rest to the others.
  No V2G.
- `edf` (acnportal `earliest_deadline_first`): the plugged-in short trucks by departure (then by index), each in
  turn at the most its rate, its charger, its need and the headroom allow. Booked trucks are not favoured. No V2G.
- `llf` (acnportal `least_laxity_first`): the same greedy in order of laxity = (departure - step start) - the
  energy still needed / the truck's rate. Unlike `fallback.plan` it does not serve booked trucks first. No V2G.
- `price_threshold_v2g`: a step is cheap when its import price is at or below the highest price of the cheapest
  third (ceil(n/3)) of the scenario's steps, dear when its export price is at or above the lowest of the dearest
  third of export prices and above that cheap threshold (so no step is both). The thresholds are the operator's,
  fixed for the run (`price_thresholds` over the whole tariff; without them, over the plan's horizon: inside the
  evening peak, a horizon that has only dear hours left would call them cheap). Per step:
  1. dear: every V2G-capable plugged-in truck (bidirectional charger, max_discharge_w > 0) discharges at
     min(max_discharge_w, charger) x presence, never below its floor (min_soc) and only as far as it can still
     reach its target charging at its rate in its remaining plugged-in steps of the horizon (its reserve aside,
     as in 2); the export limit
     (grid >= -export limit) holds (base load and the discharges before it, by index);
  2. every other plugged-in truck charges what it must now to stay able to reach its target charging at its rate
     afterwards (laxity 0; the depot's runs leave the last 15 min of a stay out of "afterwards": with none, a
     truck's energy waits for its last minutes, where the trucks that waited together exceed the connection and
     2 to 7 of the benchmark's 10 or 16 trucks missed their targets), in laxity order within the headroom;
  3. cheap: then each charges at its most within the headroom, in laxity order, up to its target (up to a full
     battery when V2G-capable, the energy it may sell in a dear step).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from evse_emulator.energy.ems.model import PLAN_WEIGHTS, Plan, SitePlan, evaluate

EPS_W = 1e-6  # below this a setpoint or a headroom is nothing


class _Greedy:
    """The greedy planners' bookkeeping: each truck's energy and setpoints, each step's grid and charger use."""

    def __init__(self, x: SitePlan) -> None:
        self.x = x
        self.hours = x.step_s / 3600
        self.energy = [t.soc * t.battery_wh for t in x.trucks]
        self.power = [[0.0] * x.n for _ in x.trucks]
        self.rate = [min(t.max_charge_w, x.charger(t.charger).max_power_w) for t in x.trucks]
        self.eff = [x.charger(t.charger).efficiency for t in x.trucks]
        self.k = 0
        self.grid_w = 0.0
        self.used: dict[str, float] = {}

    def start(self, k: int) -> list[int]:
        """Move to step k; the trucks plugged in during it."""
        self.k, self.grid_w, self.used = k, self.x.base_load_w[k], {}
        return [i for i, t in enumerate(self.x.trucks) if self.x.presence(t, k) > 0]

    def need_w(self, i: int, upto_soc: float | None = None) -> float:
        """The power that brings truck i to `upto_soc` (its target by default) within this step."""
        t = self.x.trucks[i]
        soc = t.target_soc if upto_soc is None else upto_soc
        return max(0.0, soc * t.battery_wh - self.energy[i]) / self.hours

    def short(self, i: int) -> bool:
        return self.need_w(i) > EPS_W and self.rate[i] > 0

    def charge_room_w(self, i: int) -> float:
        """The most truck i may still charge in this step: its rate x presence, its charger, its battery."""
        t = self.x.trucks[i]
        own = self.rate[i] * self.x.presence(t, self.k) - self.power[i][self.k]
        spare = self.x.charger(t.charger).max_power_w - self.used.get(t.charger, 0.0)
        return max(0.0, min(own, spare, self.need_w(i, 1.0)))

    def headroom_w(self) -> float:
        """The grid-side import still allowed in this step."""
        return max(0.0, self.x.import_limit_w[self.k] - self.grid_w)

    def laxity_s(self, i: int) -> float:
        t = self.x.trucks[i]
        return t.departure_s - self.x.t_s[self.k] - self.need_w(i) * self.hours * 3600 / self.rate[i]

    def add(self, i: int, p: float) -> None:
        """Add DC power p (+ charge, - discharge) to truck i in this step."""
        if abs(p) <= EPS_W:
            return
        t = self.x.trucks[i]
        self.power[i][self.k] += p
        self.energy[i] += p * self.hours
        self.grid_w += p / self.eff[i] if p > 0 else p * self.eff[i]
        self.used[t.charger] = self.used.get(t.charger, 0.0) + abs(p)

    def charge(self, wants: Iterable[tuple[int, float]]) -> None:
        """Each truck in turn charges up to what it wants more, within its room and the headroom."""
        for i, want in wants:
            self.add(i, max(0.0, min(want, self.charge_room_w(i), self.headroom_w() * self.eff[i])))

    def plan(self, status: str) -> Plan:
        short = [self.x.fcr(k) for k in range(self.x.n)]  # no heuristic holds the reservation
        return evaluate(self.x, self.power, PLAN_WEIGHTS, fcr_shortfall_w=short, status=status, fallback=False)


def uncontrolled(x: SitePlan) -> Plan:
    """Every plugged-in truck at its rate until its target, whatever the grid limit and the prices."""
    g = _Greedy(x)
    for k in range(x.n):
        for i in g.start(k):
            g.add(i, min(g.need_w(i), g.charge_room_w(i)))
    return g.plan("uncontrolled")


def equal_share(x: SitePlan) -> Plan:
    """The headroom shared equally (grid side) among the short trucks, by water-filling."""
    g = _Greedy(x)
    for k in range(x.n):
        active = {i: min(g.need_w(i), g.charge_room_w(i)) / g.eff[i] for i in g.start(k) if g.short(i)}
        share = dict.fromkeys(active, 0.0)  # grid side
        left = g.headroom_w()
        spare = {c.id: c.max_power_w for c in x.chargers}  # DC
        while active and left > EPS_W:
            on: dict[str, list[int]] = {}
            for i in active:
                on.setdefault(x.trucks[i].charger, []).append(i)
            rise = min(
                left / len(active),
                min(active[i] - share[i] for i in active),
                *(spare[c] / sum(g.eff[i] for i in ids) for c, ids in on.items()),
            )
            for i in active:
                share[i] += rise
                left -= rise
                spare[x.trucks[i].charger] -= rise * g.eff[i]
            full = {c for c, ids in on.items() if spare[c] <= EPS_W}
            active = {i: cap for i, cap in active.items() if cap - share[i] > EPS_W and x.trucks[i].charger not in full}
        for i, s in share.items():
            g.add(i, s * g.eff[i])
    return g.plan("equal-share")


def _sorted(x: SitePlan, key: Callable[[_Greedy, int], float], status: str) -> Plan:
    """The short trucks in order of `key`, each at its most within the headroom."""
    g = _Greedy(x)
    for k in range(x.n):
        waiting = sorted((i for i in g.start(k) if g.short(i)), key=lambda i: (key(g, i), i))
        g.charge((i, g.need_w(i)) for i in waiting)
    return g.plan(status)


def edf(x: SitePlan) -> Plan:
    """Earliest deadline (departure) first."""
    return _sorted(x, lambda g, i: x.trucks[i].departure_s, "edf")


def llf(x: SitePlan) -> Plan:
    """Least laxity first."""
    return _sorted(x, _Greedy.laxity_s, "llf")


def _third(prices: Sequence[float], dearest: bool) -> float:
    """The highest price of the cheapest third of the steps, or the lowest of the dearest third."""
    ranked = sorted(prices)
    m = math.ceil(len(ranked) / 3)
    return ranked[-m] if dearest else ranked[m - 1]


def price_thresholds(import_eur_per_kwh: Sequence[float], export_eur_per_kwh: Sequence[float]) -> tuple[float, float]:
    """The import price at or below which a step is cheap and the export price at or above which it is dear, from
    the steps' prices (see `price_threshold_v2g`)."""
    cheap = _third(import_eur_per_kwh, dearest=False)
    return cheap, max(_third(export_eur_per_kwh, dearest=True), math.nextafter(cheap, math.inf))


def price_threshold_v2g(x: SitePlan, thresholds: tuple[float, float] | None = None, reserve_s: float = 0.0) -> Plan:
    """Charge in cheap steps, sell in dear ones (V2G), otherwise only what keeps the target reachable;
    `thresholds`: (cheap import, dear export) prices fixed for the run (default: from this plan's horizon);
    `reserve_s`: the end of each stay that keeping a target reachable does not count on."""
    g = _Greedy(x)
    cheap, dear = thresholds or price_thresholds(x.import_eur_per_kwh, x.export_eur_per_kwh)
    after = []  # per truck and step k: the energy it can charge at its rate in steps k+1 ..
    for i, t in enumerate(x.trucks):
        tail, total, counted = [0.0] * x.n, 0.0, replace(t, departure_s=t.departure_s - reserve_s)
        for k in reversed(range(x.n)):
            tail[k] = total
            total += g.rate[i] * x.presence(counted, k) * g.hours
        after.append(tail)
    v2g = [x.charger(t.charger).bidirectional and t.max_discharge_w > 0 for t in x.trucks]
    full = [1.0 if v else None for v in v2g]
    for k in range(x.n):
        plugged = g.start(k)
        sold: set[int] = set()
        if x.export_eur_per_kwh[k] >= dear:
            for i in (i for i in plugged if v2g[i]):
                t = x.trucks[i]
                d = min(
                    min(t.max_discharge_w, x.charger(t.charger).max_power_w) * x.presence(t, k),
                    (g.energy[i] - t.min_soc * t.battery_wh) / g.hours,
                    (g.energy[i] + after[i][k] - t.target_soc * t.battery_wh) / g.hours,
                    x.charger(t.charger).max_power_w - g.used.get(t.charger, 0.0),
                    (g.grid_w + x.export_limit_w[k]) / g.eff[i],
                )
                if d > EPS_W:
                    g.add(i, -d)
                    sold.add(i)
        waiting = sorted((i for i in plugged if i not in sold and g.rate[i] > 0), key=lambda i: (g.laxity_s(i), i))
        g.charge((i, g.need_w(i) - after[i][k] / g.hours) for i in waiting)
        if x.import_eur_per_kwh[k] <= cheap:
            g.charge((i, g.need_w(i, full[i])) for i in waiting)
    return g.plan("price-threshold-v2g")


HEURISTICS: dict[str, Callable[[SitePlan], Plan]] = {
    "uncontrolled": uncontrolled,
    "equal-share": equal_share,
    "edf": edf,
    "llf": llf,
    "price-threshold-v2g": price_threshold_v2g,
}
