"""A depot scenario (issue 12, "Scenario (TOML)"): the site, its tariff, the FCR windows, the chargers, the trucks.

Read and checked at the door (`stack.config_file`): every table against its dataclass, `[[charger]]` and `[[truck]]`
elements with their prefix (`truck[2].`, counted from 0 like every other index in a key path), then the checks
across tables. Units: seconds from the scenario start, W, kWh, EUR; power is signed from the truck's side (+ charges
it). A series is `[[t_s, value], ...]`, sorted, the first at t = 0, each value holding until the next.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from annotated_types import Ge, Gt, Interval, Le, Lt, MinLen
from pydantic import AfterValidator

from ev_emulator.config import Fraction, LoopInterval
from evse_emulator.config import MAX_POWER_W, MIN_OUTPUT_VOLTAGE_V, Amps, Volts, Watts
from stack.config_file import ConfigError, Layout, Problem, read_toml, validate, values_of

MAX_HORIZON_S = 7 * 86_400  # a week of depot: longer is a typo, not a scenario
MAX_SITE_W = 100_000_000.0  # 100 MW: a grid connection beyond any depot's
MAX_BATTERY_KWH = 2_000.0  # beyond any truck's pack
MAX_CONTACTOR_CYCLES = 100_000  # a visit's budget: a DC contactor's whole rated life is of this order
MAX_PRICE_EUR = 100.0  # per kWh or kW, either sign (negative spot prices exist)
MIN_HZ, MAX_HZ = 45.0, 55.0  # beyond these a 50 Hz grid has tripped
NOMINAL_HZ = 50.0
FULL_DROOP_HZ = 0.2  # FCR: full capacity at |df| >= 0.2 Hz (issue 12)
MAX_CSV_BYTES = 16 * 1024 * 1024  # a week of t_s,hz at 1 s is about 10 MB
ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # one MQTT topic level: depot/<site>/<charger>


def _identifier(value: str) -> str:
    if not ID.fullmatch(value):
        raise ValueError("must be 1 to 64 letters, digits, '_', '.' or '-' (an MQTT topic level)")
    return value


def _piecewise(points: tuple[tuple[float, Any], ...]) -> tuple[tuple[float, Any], ...]:
    if points[0][0] != 0:
        raise ValueError("must start at t = 0 ([[0, value], ...])")
    if any(b[0] <= a[0] for a, b in zip(points, points[1:], strict=False)):
        raise ValueError("times must increase")
    return points


def _windows(pairs: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
    if any(start >= end for start, end in pairs):
        raise ValueError("each window must end after it starts")
    if any(b[0] < a[1] for a, b in zip(pairs, pairs[1:], strict=False)):
        raise ValueError("windows must be sorted and must not overlap")
    return pairs


Name = Annotated[str, AfterValidator(_identifier)]
Time = Annotated[float, Interval(ge=0.0, le=MAX_HORIZON_S)]
PIECEWISE = AfterValidator(_piecewise)  # a series: [[t_s, value], ...], sorted, the first at t = 0
SiteWatts = Annotated[float, Interval(ge=0.0, le=MAX_SITE_W)]
Price = Annotated[float, Interval(ge=-MAX_PRICE_EUR, le=MAX_PRICE_EUR)]
Rate = Annotated[float, Interval(ge=0.0, le=MAX_PRICE_EUR)]
Hz = Annotated[float, Interval(ge=MIN_HZ, le=MAX_HZ)]
WattSeries = Annotated[tuple[tuple[Time, SiteWatts], ...], MinLen(1), PIECEWISE]
PriceSeries = Annotated[tuple[tuple[Time, Price], ...], MinLen(1), PIECEWISE]
HzSeries = Annotated[tuple[tuple[Time, Hz], ...], MinLen(1), PIECEWISE]
Windows = Annotated[tuple[tuple[Time, Time], ...], MinLen(1), AfterValidator(_windows)]
Series = tuple[tuple[float, float], ...]


class DepotScenarioError(ConfigError):
    """The depot scenario cannot be read or has a bad value (one line: the file, each key and why)."""


def series_at(series: Series, t: float) -> float:
    """The value of a piecewise-constant series at `t` (the last point at or before it)."""
    return series[max(bisect.bisect_right(series, (t, math.inf)) - 1, 0)][1]


def series_mean(series: Series, t0: float, t1: float, f: Callable[[float], float] | None = None) -> float:
    """The mean of `f(value)` (the value itself when `f` is None) over [t0, t1): exact for a piecewise series."""
    i = max(bisect.bisect_right(series, (t0, math.inf)) - 1, 0)
    total, t = 0.0, t0
    while t < t1:
        end = min(series[i + 1][0], t1) if i + 1 < len(series) else t1
        value = series[i][1]
        total += (value if f is None else f(value)) * (end - t)
        t, i = end, i + 1
    return total / (t1 - t0)


@dataclass(frozen=True, slots=True)
class Timing:
    name: Annotated[str, MinLen(1)]
    horizon_s: Annotated[int, Interval(ge=1, le=MAX_HORIZON_S)]  # whole seconds: steps start on whole seconds
    step_s: Annotated[int, Interval(ge=1, le=3600)]
    loop_interval_s: LoopInterval


@dataclass(frozen=True, slots=True)
class Site:
    grid_import_limit_w: Annotated[float, Gt(0.0), Le(MAX_SITE_W)]
    grid_export_limit_w: SiteWatts  # 0: the site may not export
    base_load_w: WattSeries


@dataclass(frozen=True, slots=True)
class Tariff:
    import_eur_per_kwh: PriceSeries
    export_eur_per_kwh: PriceSeries
    demand_eur_per_kw: Rate
    unserved_eur_per_kwh: Rate


@dataclass(frozen=True, slots=True)
class Fcr:
    capacity_w: Annotated[float, Gt(0.0), Le(MAX_SITE_W)]
    windows: Windows
    frequency_hz: HzSeries  # a CSV file (t_s,hz) is read into a series before this check
    deadband_hz: Annotated[float, Ge(0.0), Lt(FULL_DROOP_HZ)]
    energy_reserve_s: Annotated[float, Interval(ge=0.0, le=MAX_HORIZON_S)]
    penalty_eur_per_kwh: Rate

    def droop_w(self, hz: float) -> float:
        """The FCR power asked at a frequency (truck side: + absorb on over-frequency, - feed on under-frequency)."""
        df = hz - NOMINAL_HZ
        share = min(max((abs(df) - self.deadband_hz) / (FULL_DROOP_HZ - self.deadband_hz), 0.0), 1.0)
        return math.copysign(share * self.capacity_w, df) if share else 0.0

    def required_mean_w(self, t0: float, t1: float) -> float:
        """The mean FCR power asked over [t0, t1): the droop on the frequency, inside the windows only."""
        total = 0.0
        for start, end in self.windows:
            a, b = max(start, t0), min(end, t1)
            if a < b:
                total += series_mean(self.frequency_hz, a, b, self.droop_w) * (b - a)
        return total / (t1 - t0)


@dataclass(frozen=True, slots=True)
class ChargerSpec:
    id: Name
    max_power_w: Watts
    max_current_a: Amps
    max_voltage_v: Volts
    bidirectional: bool
    efficiency: Annotated[float, Interval(ge=0.5, le=1.0)]  # grid side = DC / eff charging, DC * eff discharging

    def grid_w(self, power_w: float) -> float:
        """The grid-side power of a DC power (+ charging the truck)."""
        return power_w / self.efficiency if power_w > 0 else power_w * self.efficiency


@dataclass(frozen=True, slots=True)
class TruckSpec:
    id: Name
    charger: Name
    arrival_s: Time
    departure_s: Time  # hard: the session ends then, whatever the SoC
    announced_s: Time  # booked: early; walk-in: = arrival_s
    booked: bool
    battery_kwh: Annotated[float, Gt(0.0), Le(MAX_BATTERY_KWH)]
    initial_soc: Fraction
    target_soc: Fraction
    min_soc: Fraction  # V2G floor
    max_charge_w: Watts
    min_power_w: Annotated[float, Interval(ge=0.0, le=MAX_POWER_W)]
    max_contactor_cycles: Annotated[int, Interval(ge=1, le=MAX_CONTACTOR_CYCLES)]
    max_discharge_w: Annotated[float, Interval(ge=0.0, le=MAX_POWER_W)] = 0.0  # 0: no V2G

    @property
    def energy_needed_wh(self) -> float:
        """The energy from its initial to its target SoC (0 when it arrives at or above it)."""
        return max(self.target_soc - self.initial_soc, 0.0) * self.battery_kwh * 1000.0

    def cross_check(self) -> list[Problem]:
        problems = []
        if self.arrival_s >= self.departure_s:
            problems.append(
                Problem("departure_s", f"must be after arrival_s ({self.arrival_s}), got {self.departure_s}")
            )
        if self.announced_s > self.arrival_s:
            problems.append(
                Problem("announced_s", f"must not be after arrival_s ({self.arrival_s}), got {self.announced_s}")
            )
        if self.min_soc > self.target_soc:
            problems.append(Problem("min_soc", f"must not be above target_soc ({self.target_soc}), got {self.min_soc}"))
        if self.min_power_w > self.max_charge_w:
            problems.append(
                Problem("min_power_w", f"must not be above max_charge_w ({self.max_charge_w}), got {self.min_power_w}")
            )
        return problems


@dataclass(frozen=True)
class DepotScenario:
    name: str
    horizon_s: int
    step_s: int
    loop_interval_s: float
    site: Site
    tariff: Tariff
    fcr: Fcr | None
    chargers: tuple[ChargerSpec, ...]
    trucks: tuple[TruckSpec, ...]

    def step_starts(self) -> range:
        """The start of every dispatch step: 0, step_s, ... below horizon_s."""
        return range(0, self.horizon_s, self.step_s)

    def steps_of(self, truck: TruckSpec) -> range:
        """The indices of the steps a truck is plugged in during (any part of the step)."""
        return range(int(truck.arrival_s // self.step_s), math.ceil(truck.departure_s / self.step_s))

    def charger(self, charger_id: str) -> ChargerSpec:
        return next(c for c in self.chargers if c.id == charger_id)

    def charger_of(self, truck: TruckSpec) -> ChargerSpec:
        return self.charger(truck.charger)

    def feasible(self, truck: TruckSpec) -> bool:
        """Can its target be met at max_charge_w (within the charger's rating) during its stay, grid limit aside?"""
        rate_w = min(truck.max_charge_w, self.charger_of(truck).max_power_w)
        return truck.energy_needed_wh <= rate_w * (truck.departure_s - truck.arrival_s) / 3600.0

    @cached_property
    def occupancy(self) -> dict[str, dict[int, TruckSpec]]:
        """Per charger, the truck plugged in at each step index (steps without one are absent)."""
        plugged: dict[str, dict[int, TruckSpec]] = {c.id: {} for c in self.chargers}
        for truck in self.trucks:
            for k in self.steps_of(truck):
                plugged[truck.charger][k] = truck
        return plugged

    def cross_check(self) -> list[Problem]:
        """What is wrong between tables, each problem keyed by its path in the file."""
        problems = []
        if self.horizon_s % self.step_s:
            problems.append(Problem("step_s", f"must divide horizon_s ({self.horizon_s}), got {self.step_s}"))
        if self.loop_interval_s > self.step_s:
            problems.append(
                Problem("loop_interval_s", f"must not exceed step_s ({self.step_s}), got {self.loop_interval_s}")
            )
        problems += self._export_above_import()
        problems += _repeated("charger", [c.id for c in self.chargers])
        problems += _repeated("truck", [t.id for t in self.trucks])
        if self.fcr is not None and self.fcr.windows[-1][1] > self.horizon_s:
            problems.append(
                Problem("fcr.windows", f"must end by horizon_s ({self.horizon_s}), got {self.fcr.windows[-1]}")
            )
        for i, c in enumerate(self.chargers):
            if c.max_voltage_v <= MIN_OUTPUT_VOLTAGE_V:
                problems.append(
                    Problem(
                        f"charger[{i}].max_voltage_v",
                        f"must be above {MIN_OUTPUT_VOLTAGE_V:g} V (its lowest output), got {c.max_voltage_v:g}",
                    )
                )
            elif c.max_current_a * c.max_voltage_v < c.max_power_w:
                problems.append(
                    Problem(
                        f"charger[{i}].max_current_a",
                        f"cannot give max_power_w ({c.max_power_w:g} W) at max_voltage_v ({c.max_voltage_v:g} V): "
                        f"needs at least {math.ceil(c.max_power_w / c.max_voltage_v)} A, got {c.max_current_a:g}",
                    )
                )
        chargers = {c.id: c for c in self.chargers}
        last: dict[str, tuple[int, TruckSpec]] = {}
        for i, truck in sorted(enumerate(self.trucks), key=lambda it: it[1].arrival_s):
            key = f"truck[{i}]."
            if truck.departure_s > self.horizon_s:
                problems.append(
                    Problem(
                        key + "departure_s", f"must not be after horizon_s ({self.horizon_s}), got {truck.departure_s}"
                    )
                )
            charger = chargers.get(truck.charger)
            if charger is None:
                problems.append(
                    Problem(
                        key + "charger", f"must name a [[charger]] id ({', '.join(chargers)}), got {truck.charger!r}"
                    )
                )
                continue
            if truck.max_discharge_w > 0 and not charger.bidirectional:
                problems.append(
                    Problem(
                        key + "max_discharge_w",
                        f"must be 0: charger {charger.id!r} is not bidirectional, got {truck.max_discharge_w}",
                    )
                )
            if truck.charger in last:
                j, before = last[truck.charger]
                if truck.arrival_s < before.departure_s:
                    problems.append(
                        Problem(
                            key + "arrival_s",
                            f"overlaps truck[{j}] ({before.id}) on charger {charger.id!r}, got {truck.arrival_s}",
                        )
                    )
                elif self.steps_of(truck).start < self.steps_of(before).stop:
                    problems.append(
                        Problem(
                            key + "arrival_s",
                            f"shares a {self.step_s} s step with truck[{j}] ({before.id}) on charger {charger.id!r}"
                            f" (one truck per charger and step), got {truck.arrival_s}",
                        )
                    )
            last[truck.charger] = (i, truck)
        return problems

    def _export_above_import(self) -> list[Problem]:
        """The first step (prices are read at each step's start) that pays more for export than import costs: the
        plan could import and export at once for a profit, which no single connection point does."""
        imports, exports = self.tariff.import_eur_per_kwh, self.tariff.export_eur_per_kwh
        changes = sorted({t for t, _ in imports} | {t for t, _ in exports} | {self.horizon_s})
        for start, end in zip(changes, changes[1:], strict=False):
            t = self.step_s * math.ceil(start / self.step_s)  # the first step that reads this stretch's prices
            if t < min(end, self.horizon_s) and series_at(exports, t) > series_at(imports, t):
                return [
                    Problem(
                        "tariff.export_eur_per_kwh",
                        f"must not be above the import price at any step (the plan would import and export at once "
                        f"for a profit), got {series_at(exports, t):g} > {series_at(imports, t):g} EUR/kWh at "
                        f"t = {t} s",
                    )
                ]
        return []


def _repeated(table: str, ids: Sequence[str]) -> list[Problem]:
    return [
        Problem(f"{table}[{i}].id", f"repeats {table}[{ids.index(v)}], got {v!r}")
        for i, v in enumerate(ids)
        if ids.index(v) != i
    ]


def _names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls))


SECTIONS = {"site": Site, "tariff": Tariff, "fcr": Fcr}
ARRAYS = {"charger": ChargerSpec, "truck": TruckSpec}
LAYOUT = Layout(top=_names(Timing) | frozenset(ARRAYS), sections={s: _names(c) for s, c in SECTIONS.items()})


def load(path: Path | None = None) -> DepotScenario:
    """The scenario of a TOML file (None: the built-in default), or a `DepotScenarioError` naming the file."""
    if path is None:
        with resources.as_file(resources.files(__package__).joinpath("default.toml")) as default:
            return load(default)
    try:
        data = read_toml(path)
        values, _ = LAYOUT.flatten(data)
    except ConfigError as exc:
        raise DepotScenarioError(exc.problems, path) from None
    return _parse(data, values, path)


def _parse(data: Mapping[str, Any], values: Mapping[str, Any], path: Path) -> DepotScenario:
    """The scenario of a file's tables (`data`) and their values by field name (`values`)."""
    problems: list[Problem] = []

    def part(cls: type[Any], prefix: str, given: Mapping[str, Any]) -> Any:
        """`cls` from `given` (a [[table]] element whole: its unknown keys are refused by the schema)."""
        names = _names(cls)
        try:
            return validate(cls, given, keys={n: prefix + n for n in names | given.keys()})
        except ConfigError as exc:
            problems.extend(exc.problems)
            return None

    def section(cls: type[Any]) -> dict[str, Any]:  # the Layout refused keys outside the sections
        return {n: v for n, v in values.items() if n in _names(cls)}

    timing = part(Timing, "", section(Timing))
    site = part(Site, "site.", section(Site))
    tariff = part(Tariff, "tariff.", section(Tariff))
    fcr = None
    if "fcr" in data:
        fcr_values = section(Fcr)
        if isinstance(values.get("frequency_hz"), str):
            fcr_values["frequency_hz"] = _frequency_csv(path.parent / values["frequency_hz"], problems)
        if fcr_values.get("frequency_hz", ()) is not None:
            fcr = part(Fcr, "fcr.", fcr_values)
    tables: dict[str, tuple[Any, ...]] = {}
    for table, cls in ARRAYS.items():
        items = values.get(table)
        if not isinstance(items, list) or not items or not all(isinstance(v, dict) for v in items):
            problems.append(Problem(table, f"must be one or more [[{table}]] tables"))
            continue
        tables[table] = tuple(part(cls, f"{table}[{i}].", item) for i, item in enumerate(items))
    if problems:
        raise DepotScenarioError(problems, path)
    scenario = DepotScenario(
        **values_of(timing), site=site, tariff=tariff, fcr=fcr, chargers=tables["charger"], trucks=tables["truck"]
    )
    problems = scenario.cross_check()
    if problems:
        raise DepotScenarioError(problems, path)
    return scenario


def _frequency_csv(path: Path, problems: list[Problem]) -> Any:
    """The `t_s,hz` rows of a CSV file (an optional header line) as a series, or None with a problem noted."""
    key = "fcr.frequency_hz"
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CSV_BYTES + 1)
        if len(raw) > MAX_CSV_BYTES:
            problems.append(Problem(key, f"{path}: more than {MAX_CSV_BYTES} bytes"))
            return None
        lines = raw.decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: a NUL in the path
        problems.append(Problem(key, f"cannot read {str(path)[:200]!r}: {getattr(exc, 'strerror', None) or exc}"))
        return None
    points = []
    for n, line in enumerate(lines, 1):
        cells = [c.strip() for c in line.split(",")]
        if cells == [""] or (n == 1 and cells == ["t_s", "hz"]):
            continue
        try:
            t, hz = (float(c) for c in cells)
        except ValueError:
            problems.append(Problem(key, f"{path} line {n}: must be t_s,hz (two numbers), got {line[:40]!r}"))
            return None
        points.append((t, hz))
    if not points:
        problems.append(Problem(key, f"{path}: no t_s,hz rows"))
        return None
    return tuple(points)
