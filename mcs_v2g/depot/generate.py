"""Seeded, realistic depot scenarios for the benchmark, and the TOML that `scenario.load` reads back.

`generate(seed)` draws everything from `random.Random(seed)`, so one seed gives one scenario. t = 0 is midnight.
The chargers are MCS dispensers of 750 kW to 1 MW (most bidirectional, efficiency 0.95-0.97). Each charger serves
its share of the trucks one after another: a stay of 1 to 10 h each, at least two steps apart (so no step is
shared, one full step free between two trucks), the idle time spread at random over the day. A truck: a 400-800 kWh
pack, booked (announced 1-12 h ahead) or a walk-in (announced on arrival), V2G-capable on some bidirectional
chargers. About 10 % of the trucks cannot reach their target (a short stay and a pack that accepts less power);
the others can, at their rate, grid limit aside. The grid import limit is 25-40 % of the summed ratings (so that it
binds); the base load stays below a quarter of it. Time-of-use prices with an evening peak (export below import
at every time), a demand charge, and an FCR window for half of the seeds.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
from dataclasses import fields, replace
from pathlib import Path

from mcs_v2g.depot.scenario import ChargerSpec, DepotScenario, Fcr, Site, Tariff, TruckSpec, load

HOUR = 3600
DAY = 86_400
INFEASIBLE_SHARE = 0.1


def generate(
    seed: int,
    *,
    chargers: int = 6,
    trucks: int = 16,
    horizon_s: int = DAY,
    step_s: int = 60,
    loop_interval_s: float = 5.0,
) -> DepotScenario:
    """A depot of `chargers` MCS chargers and `trucks` trucks over `horizon_s`, checked by `scenario.load`."""
    if chargers < 1 or trucks < 1 or horizon_s % step_s:
        raise ValueError("need at least one charger and one truck, and step_s dividing horizon_s")
    rng = random.Random(seed)
    specs = tuple(_charger(rng, f"mcs{c + 1}") for c in range(chargers))
    site = _site(rng, sum(c.max_power_w for c in specs), horizon_s)
    scenario = DepotScenario(
        name=f"generated depot (seed {seed}): {chargers} MCS chargers, {trucks} trucks, {horizon_s / HOUR:g} h",
        horizon_s=horizon_s,
        step_s=step_s,
        loop_interval_s=loop_interval_s,
        site=site,
        tariff=_tariff(rng, horizon_s),
        fcr=_fcr(rng, site.grid_import_limit_w, horizon_s) if rng.random() < 0.5 else None,
        chargers=specs,
        trucks=_trucks(rng, specs, trucks, horizon_s, step_s),
    )
    with tempfile.TemporaryDirectory() as tmp:  # through the same door as a file: every check of `load`
        path = Path(tmp) / "depot.toml"
        path.write_text(to_toml(scenario), encoding="utf-8")
        return load(path)


def _charger(rng: random.Random, cid: str) -> ChargerSpec:
    power = round(rng.uniform(750, 1000) / 25) * 25_000.0
    voltage = rng.choice((1000.0, 1250.0))
    return ChargerSpec(
        id=cid,
        max_power_w=power,
        max_current_a=float(math.ceil(power / voltage)),
        max_voltage_v=voltage,
        bidirectional=rng.random() < 0.75,
        efficiency=round(rng.uniform(0.95, 0.97), 3),
    )


def _daily(horizon_s: int, hours: list[int], values: list[float]) -> tuple[tuple[float, float], ...]:
    """A series repeating daily: `values[j]` from hour `hours[j]` (hours[0] = 0), cut at the horizon."""
    points = [
        (float(d * DAY + h * HOUR), v)
        for d in range(math.ceil(horizon_s / DAY))
        for h, v in zip(hours, values, strict=True)
    ]
    return tuple((t, v) for t, v in points if t < horizon_s)


def _site(rng: random.Random, rated_w: float, horizon_s: int) -> Site:
    limit = round(rng.uniform(0.25, 0.4) * rated_w, -4)  # binding: below the peak of uncontrolled charging
    night, day = rng.uniform(0.05, 0.12) * limit, rng.uniform(0.12, 0.25) * limit
    base = _daily(horizon_s, [0, 6, 18, 22], [round(v, -3) for v in (night, day, (night + day) / 2, night)])
    return Site(
        grid_import_limit_w=limit, grid_export_limit_w=round(rng.uniform(0.3, 0.6) * limit, -4), base_load_w=base
    )


def _tariff(rng: random.Random, horizon_s: int) -> Tariff:
    peak = rng.choice((16, 17, 18))
    hours = [0, 6, peak, peak + rng.choice((3, 4))]
    buy = [rng.uniform(0.08, 0.14), rng.uniform(0.18, 0.26), rng.uniform(0.32, 0.45), rng.uniform(0.12, 0.18)]
    sell = [
        p * r
        for p, r in zip(buy, (rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6), rng.uniform(0.7, 0.9), 0.5), strict=True)
    ]
    return Tariff(
        import_eur_per_kwh=_daily(horizon_s, hours, [round(p, 3) for p in buy]),
        export_eur_per_kwh=_daily(horizon_s, hours, [math.floor(p * 1000) / 1000 for p in sell]),
        demand_eur_per_kw=round(rng.uniform(5.0, 15.0), 1),
        unserved_eur_per_kwh=round(rng.uniform(1.5, 3.0), 2),
    )


def _fcr(rng: random.Random, limit_w: float, horizon_s: int) -> Fcr:
    length = min(4 * HOUR, horizon_s)
    start = rng.randrange(0, horizon_s - length + 1, min(HOUR, horizon_s))
    hz = [(0.0, 50.0)] + [
        (float(t), round(min(max(rng.gauss(50.0, 0.05), 49.8), 50.2), 3)) for t in range(start, start + length, 300)
    ]
    return Fcr(
        capacity_w=round(rng.uniform(0.1, 0.25) * limit_w, -4),
        windows=((float(start), float(start + length)),),
        frequency_hz=tuple(dict(hz).items()),
        deadband_hz=0.01,
        energy_reserve_s=900.0,
        penalty_eur_per_kwh=1.0,
    )


def _trucks(
    rng: random.Random, chargers: tuple[ChargerSpec, ...], count: int, horizon_s: int, step_s: int
) -> tuple[TruckSpec, ...]:
    """`count` trucks, spread over the chargers, one after another on each (two steps apart at least)."""
    fuller = set(rng.sample(range(len(chargers)), count % len(chargers)))
    per = [count // len(chargers) + (c in fuller) for c in range(len(chargers))]
    infeasible = set(rng.sample(range(count), round(INFEASIBLE_SHARE * count)))
    gap = 2 * step_s
    out: list[TruckSpec] = []
    for charger, m in zip(chargers, per, strict=True):
        if not m:
            continue
        short = [len(out) + j in infeasible for j in range(m)]
        free = horizon_s - m * HOUR - (m - 1) * gap  # beyond the shortest stays and gaps
        if free < 0:
            raise ValueError(f"{m} stays of at least 1 h do not fit in {horizon_s} s on one charger")
        extra = [rng.uniform(0, 0.5 if s else 9) * HOUR for s in short]
        busy = rng.uniform(0.6, 0.95) * free
        if sum(extra) > busy:
            extra = [e * busy / sum(extra) for e in extra]
        weights = [rng.random() for _ in range(m + 1)]
        idle = [(free - sum(extra)) * w / sum(weights) for w in weights]
        t = idle[0]
        for j in range(m):
            arrival = math.floor(t)
            departure = min(math.floor(t + HOUR + extra[j]), horizon_s)
            out.append(_truck(rng, charger, arrival, departure, short[j]))
            t += HOUR + extra[j] + gap + idle[j + 1]
    out.sort(key=lambda t: t.arrival_s)
    width = len(str(count))
    return tuple(replace(t, id=f"t{n + 1:0{width}d}") for n, t in enumerate(out))


def _truck(rng: random.Random, charger: ChargerSpec, arrival: int, departure: int, infeasible: bool) -> TruckSpec:
    """One stay; `infeasible`: a pack that accepts too little power to reach the target in it."""
    hours = (departure - arrival) / HOUR
    booked = rng.random() < 0.7
    battery = round(rng.uniform(700, 800) if infeasible else rng.uniform(400, 800), -1)
    target = round(rng.uniform(0.85, 0.95) if infeasible else rng.uniform(0.8, 0.95), 2)
    initial = round(rng.uniform(0.05, 0.15) if infeasible else rng.uniform(0.1, 0.5), 2)
    need_wh = (target - initial) * battery * 1000
    if infeasible:
        max_charge = math.floor(need_wh / hours / rng.uniform(1.15, 1.6) / 1000) * 1000.0
    else:
        max_charge = round(rng.uniform(600, 1000), -1) * 1000
        rate = min(max_charge, charger.max_power_w)
        if need_wh > 0.9 * rate * hours:  # keep it feasible: arrive fuller
            initial = math.ceil((target - 0.9 * rate * hours / battery / 1000) * 100) / 100
    v2g = charger.bidirectional and not infeasible and rng.random() < 0.6
    min_soc = round(min(rng.uniform(0.2, 0.4), target), 2)
    return TruckSpec(
        id="unnamed",
        charger=charger.id,
        arrival_s=float(arrival),
        departure_s=float(departure),
        announced_s=float(max(0, arrival - rng.randint(1, 12) * HOUR) if booked else arrival),
        booked=booked,
        battery_kwh=battery,
        initial_soc=initial,
        target_soc=target,
        min_soc=min_soc,
        max_charge_w=max_charge,
        min_power_w=float(rng.choice((20_000, 30_000, 40_000, 50_000))),
        max_contactor_cycles=rng.randint(2, 6),
        max_discharge_w=round(rng.uniform(0.5, 1.0) * min(max_charge, charger.max_power_w), -4) if v2g else 0.0,
    )


def to_toml(scenario: DepotScenario) -> str:
    """The scenario as a TOML file that `scenario.load` reads back into an equal scenario."""
    lines = [
        f"name = {_value(scenario.name)}",
        f"horizon_s = {scenario.horizon_s}",
        f"step_s = {scenario.step_s}",
        f"loop_interval_s = {_value(scenario.loop_interval_s)}",
    ]
    tables: list[tuple[str, Site | Tariff | Fcr | ChargerSpec | TruckSpec]] = [
        ("[site]", scenario.site),
        ("[tariff]", scenario.tariff),
    ]
    if scenario.fcr is not None:
        tables.append(("[fcr]", scenario.fcr))
    tables += [("[[charger]]", c) for c in scenario.chargers] + [("[[truck]]", t) for t in scenario.trucks]
    for header, table in tables:
        lines += ["", header]
        lines += [f"{f.name} = {_value(getattr(table, f.name))}" for f in fields(table)]
    return "\n".join(lines) + "\n"


def _value(v: object) -> str:
    """A TOML value: booleans, numbers (floats as Python writes them, which TOML reads), strings, arrays."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string: JSON's escapes are TOML's
    if isinstance(v, tuple | list):
        return "[" + ", ".join(_value(e) for e in v) + "]"
    raise TypeError(f"no TOML for {v!r}")
