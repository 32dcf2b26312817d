"""The external judge of a depot report: every figure recomputed from the report's `steps` and the scenario alone.

`figures` computes what the steps imply; `judge` compares that with the report's own figures (and checks the steps'
structure and their consistency with the scenario), one human-readable line per disagreement.

Definitions (issue 12 leaves these to the contract):
- import cost: each step's grid import (grid_w > 0) x the import price at the step's start x the step's hours;
  export revenue the same with the export (grid_w < 0) and the export price.
- demand: demand_eur_per_kw x the highest mean of the steps' grid import over 15-min windows aligned at t = 0
  (a window cut by the horizon: its mean over the part covered).
- peak_import_w: the highest step mean of grid import (0 when the site never imports).
- violation seconds: whole steps whose grid_w is above the import limit, or below minus the export limit, by more
  than `LIMIT_MARGIN_W`.
- per truck: energy in/out from its charger's power_w over the steps it is plugged in during; SoC at departure the
  SoC at the end of its last step; unserved_kwh = max(target - SoC at departure, 0) x battery_kwh; target met
  when the SoC at departure is within `TARGET_SOC_TOLERANCE` of the target or above.
- FCR: per step the mean droop power asked inside the windows (`Fcr.required_mean_w`); required_kwh its magnitude,
  delivered_kwh the step's fcr_w in the asked direction up to what was asked; availability delivered/required
  (1 when nothing was asked); penalty = penalty_eur_per_kwh x (required - delivered).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from .report import ChargerStep, CostBreakdown, DepotReport, FcrReport, StepReport
from .scenario import ChargerSpec, DepotScenario, TruckSpec, series_at

RELATIVE = 0.001  # 0.1 %: the agreement
# Absolute floors, so that a figure near zero is not held to 0.1 % of nothing. Each is far above the rounding of
# summing a week of MW steps in doubles (~1e-9 of the figure) and at or below what the figure is read to:
FLOOR_EUR = 0.01  # a cent: the least a bill shows
FLOOR_KWH = 0.001  # a watt-hour: the finest register of a revenue meter
FLOOR_W = 1.0  # a watt: 1e-6 of a MW connection, below any meter's accuracy there
FLOOR_S = 0.5  # violation seconds are whole steps: half a second catches any miscount
FLOOR_SOC = 1e-6  # 0.56 Wh of a 560 kWh pack
FLOOR_RATIO = 1e-6
LIMIT_MARGIN_W = 1.0  # a step above a grid limit by less than this is at the limit (float rounding of sums)
TARGET_SOC_TOLERANCE = 1e-6
DEMAND_WINDOW_S = 900


@dataclass(frozen=True, slots=True)
class TruckFigures:
    energy_in_kwh: float
    energy_out_kwh: float
    soc_at_departure: float
    unserved_kwh: float
    lowest_soc: float  # of its initial SoC and its steps' SoC: the report's min_soc_seen is at most this
    target_met: bool


@dataclass(frozen=True, slots=True)
class Figures:
    cost: CostBreakdown
    peak_import_w: float
    peak_15min_import_w: float
    import_violation_s: float
    export_violation_s: float
    trucks: dict[str, TruckFigures]
    fcr: FcrReport


def agrees(reported: float, computed: float, floor: float) -> bool:
    return abs(reported - computed) <= max(RELATIVE * max(abs(reported), abs(computed)), floor)


def target_met(truck: TruckSpec, soc: float) -> bool:
    return soc >= truck.target_soc - TARGET_SOC_TOLERANCE


def figures(scenario: DepotScenario, steps: tuple[StepReport, ...]) -> Figures:
    """What the steps imply (they must have passed `structure`)."""
    hours = scenario.step_s / 3600.0
    site, tariff = scenario.site, scenario.tariff
    imported = [max(s.grid_w, 0.0) for s in steps]
    import_eur = sum(w * series_at(tariff.import_eur_per_kwh, s.t_s) for w, s in zip(imported, steps, strict=True))
    export_eur = sum(max(-s.grid_w, 0.0) * series_at(tariff.export_eur_per_kwh, s.t_s) for s in steps)
    peak_15min = _peak_window_mean(imported, scenario.step_s, scenario.horizon_s)
    trucks = {t.id: _truck(scenario, t, steps) for t in scenario.trucks}
    fcr = _fcr(scenario, steps)
    unserved = sum(f.unserved_kwh for f in trucks.values()) * tariff.unserved_eur_per_kwh
    penalty = (fcr.required_kwh - fcr.delivered_kwh) * (scenario.fcr.penalty_eur_per_kwh if scenario.fcr else 0.0)
    import_eur, export_eur = import_eur * hours / 1000.0, export_eur * hours / 1000.0
    demand = tariff.demand_eur_per_kw * peak_15min / 1000.0
    total = import_eur - export_eur + demand + unserved + penalty
    return Figures(
        cost=CostBreakdown(total, import_eur, export_eur, demand, unserved, penalty),
        peak_import_w=max(imported, default=0.0),
        peak_15min_import_w=peak_15min,
        import_violation_s=scenario.step_s
        * sum(1 for s in steps if s.grid_w > site.grid_import_limit_w + LIMIT_MARGIN_W),
        export_violation_s=scenario.step_s
        * sum(1 for s in steps if s.grid_w < -site.grid_export_limit_w - LIMIT_MARGIN_W),
        trucks=trucks,
        fcr=fcr,
    )


def _peak_window_mean(imported: list[float], step_s: int, horizon_s: int) -> float:
    """The highest mean of a step series over windows of DEMAND_WINDOW_S aligned at t = 0."""
    energy: dict[int, float] = {}
    for k, w in enumerate(imported):
        t, end = k * step_s, (k + 1) * step_s
        while t < end:  # a step may span windows
            window = t // DEMAND_WINDOW_S
            cut = min(end, (window + 1) * DEMAND_WINDOW_S)
            energy[window] = energy.get(window, 0.0) + w * (cut - t)
            t = cut
    covered = {w: min(horizon_s, (w + 1) * DEMAND_WINDOW_S) - w * DEMAND_WINDOW_S for w in energy}
    return max((e / covered[w] for w, e in energy.items()), default=0.0)


def _truck(scenario: DepotScenario, truck: TruckSpec, steps: tuple[StepReport, ...]) -> TruckFigures:
    hours = scenario.step_s / 3600.0
    plugged = [steps[k].chargers[truck.charger] for k in scenario.steps_of(truck)]
    socs = [c.soc for c in plugged if c.soc is not None]
    soc = socs[-1] if socs else truck.initial_soc
    return TruckFigures(
        energy_in_kwh=sum(max(c.power_w, 0.0) for c in plugged) * hours / 1000.0,
        energy_out_kwh=sum(max(-c.power_w, 0.0) for c in plugged) * hours / 1000.0,
        soc_at_departure=soc,
        unserved_kwh=max(truck.target_soc - soc, 0.0) * truck.battery_kwh,
        lowest_soc=min([truck.initial_soc, *socs]),
        target_met=target_met(truck, soc),
    )


def _fcr(scenario: DepotScenario, steps: tuple[StepReport, ...]) -> FcrReport:
    asked_delivered = list(_fcr_steps(scenario, steps))
    required = math.fsum(abs(asked) for asked, _ in asked_delivered)
    delivered = math.fsum(done for _, done in asked_delivered)
    kwh = scenario.step_s / 3600.0 / 1000.0
    return FcrReport(
        required_kwh=required * kwh,
        delivered_kwh=delivered * kwh,
        availability=delivered / required if required else 1.0,
    )


def fcr_short_kwh(scenario: DepotScenario, steps: tuple[StepReport, ...]) -> tuple[float, float]:
    """The FCR energy not delivered (kWh) where the droop asked to raise the import (over-frequency) and where it
    asked to lower it (under-frequency)."""
    raising = lowering = 0.0
    for asked, done in _fcr_steps(scenario, steps):
        if asked > 0:
            raising += asked - done
        else:
            lowering += -asked - done
    kwh = scenario.step_s / 3600.0 / 1000.0
    return raising * kwh, lowering * kwh


def _fcr_steps(scenario: DepotScenario, steps: tuple[StepReport, ...]) -> Iterator[tuple[float, float]]:
    """Per step, the mean droop power asked (W, + raises the import) and what was delivered in that direction, up to
    what was asked (W, >= 0)."""
    if scenario.fcr is None:
        return
    for s in steps:
        asked = scenario.fcr.required_mean_w(s.t_s, s.t_s + scenario.step_s)
        yield asked, min(max(s.fcr_w * math.copysign(1.0, asked), 0.0), abs(asked))


# ----------------------------------------------------------------------------------------------- the judge


def judge(scenario: DepotScenario, report: DepotReport) -> list[str]:
    """Every disagreement between the report, its steps and the scenario, one line each (empty: it agrees)."""
    lines = structure(scenario, report)
    if lines:
        return lines  # the figures cannot be recomputed from steps that do not cover the scenario
    lines += _step_lines(scenario, report.steps)
    f = figures(scenario, report.steps)
    compare = _Comparison(lines)
    for name in ("total", "import_", "export_revenue", "demand", "unserved", "fcr_penalty"):
        key = "cost_eur." + name.rstrip("_")
        compare(key, getattr(report.cost_eur, name), getattr(f.cost, name), FLOOR_EUR)
    compare("peak_import_w", report.peak_import_w, f.peak_import_w, FLOOR_W)
    compare("peak_15min_import_w", report.peak_15min_import_w, f.peak_15min_import_w, FLOOR_W)
    compare("grid_import_violation_s", report.grid_import_violation_s, f.import_violation_s, FLOOR_S)
    compare("grid_export_violation_s", report.grid_export_violation_s, f.export_violation_s, FLOOR_S)
    compare("fcr.required_kwh", report.fcr.required_kwh, f.fcr.required_kwh, FLOOR_KWH)
    compare("fcr.delivered_kwh", report.fcr.delivered_kwh, f.fcr.delivered_kwh, FLOOR_KWH)
    compare("fcr.availability", report.fcr.availability, f.fcr.availability, FLOOR_RATIO)
    compare("simulated_s", report.simulated_s, scenario.horizon_s, FLOOR_S)
    for t in report.trucks:
        mine = f.trucks[t.id]
        key = f"trucks[{t.id}]."
        compare(key + "energy_in_kwh", t.energy_in_kwh, mine.energy_in_kwh, FLOOR_KWH)
        compare(key + "energy_out_kwh", t.energy_out_kwh, mine.energy_out_kwh, FLOOR_KWH)
        compare(key + "soc_at_departure", t.soc_at_departure, mine.soc_at_departure, FLOOR_SOC)
        compare(key + "unserved_kwh", t.unserved_kwh, mine.unserved_kwh, FLOOR_KWH)
        if t.target_met != mine.target_met:
            lines.append(f"{key}target_met: report {_json(t.target_met)}, steps give {_json(mine.target_met)}")
        if t.min_soc_seen > mine.lowest_soc + FLOOR_SOC:
            lines.append(f"{key}min_soc_seen: report {t.min_soc_seen:.6g}, above the lowest SoC {mine.lowest_soc:.6g}")
    if report.result == "ok":
        missed = [t.id for t in scenario.trucks if scenario.feasible(t) and not f.trucks[t.id].target_met]
        if missed:
            lines.append(f"result: report ok, but feasible targets are missed ({', '.join(missed)})")
        if f.import_violation_s or f.export_violation_s:
            lines.append("result: report ok, but the steps violate a grid limit")
    return lines


class _Comparison:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def __call__(self, key: str, reported: float, computed: float, floor: float) -> None:
        if not agrees(reported, computed, floor):
            self.lines.append(f"{key}: report {reported:.6g}, steps give {computed:.6g}")


def _json(value: bool) -> str:
    return "true" if value else "false"


def structure(scenario: DepotScenario, report: DepotReport) -> list[str]:
    """What keeps the figures from being recomputed: the scenario, the step times, the chargers, the trucks."""
    lines = []
    if report.scenario != scenario.name:
        lines.append(f"scenario: report {report.scenario!r}, the scenario is {scenario.name!r}")
    starts = list(scenario.step_starts())
    times = [s.t_s for s in report.steps]
    if times != starts:
        lines.append(
            f"steps: {len(times)} steps at {_span(times)}; the scenario needs {len(starts)}"
            f" at 0, {scenario.step_s}, ... {starts[-1]}"
        )
    ids = {c.id for c in scenario.chargers}
    for s in report.steps:
        if set(s.chargers) != ids:
            missing, extra = sorted(ids - set(s.chargers)), sorted(set(s.chargers) - ids)
            lines.append(f"steps t_s={s.t_s}: chargers missing {missing or 'none'}, unknown {extra or 'none'}")
            break
    reported = [(t.id, t.charger) for t in report.trucks]
    wanted = [(t.id, t.charger) for t in scenario.trucks]
    if sorted(reported) != sorted(wanted):
        lines.append(f"trucks: report {sorted(reported)}, the scenario has {sorted(wanted)} (id, charger)")
    return lines


def _span(times: list[int]) -> str:
    return f"{times[0]} .. {times[-1]}" if times else "none"


def _step_lines(scenario: DepotScenario, steps: tuple[StepReport, ...]) -> list[str]:
    """Each step against the scenario: tariff and base load, who is plugged in, SoC against the energy delivered,
    grid_w against the chargers' power through their efficiency, FCR outside the windows."""
    lines = []
    for k, s in enumerate(steps):
        at = f"steps t_s={s.t_s}"
        for key, reported, series in (
            ("price_import", s.price_import, scenario.tariff.import_eur_per_kwh),
            ("price_export", s.price_export, scenario.tariff.export_eur_per_kwh),
            ("base_load_w", s.base_load_w, scenario.site.base_load_w),
        ):
            if not agrees(reported, series_at(series, s.t_s), FLOOR_RATIO):
                lines.append(f"{at}: {key} {reported:.6g}, the scenario says {series_at(series, s.t_s):.6g}")
        low = high = series_at(scenario.site.base_load_w, s.t_s)
        for charger in scenario.chargers:
            truck = scenario.occupancy[charger.id].get(k)
            lines += _plug_lines(f"{at} {charger.id}", s.chargers[charger.id], truck)
            if truck is not None:
                lines += _soc_lines(scenario, truck, steps, k)
            lo, hi = _grid_bounds(charger, truck, s.chargers[charger.id].power_w)
            low, high = low + lo, high + hi
        margin = max(RELATIVE * abs(s.grid_w), FLOOR_W)
        if not low - margin <= s.grid_w <= high + margin:
            lines.append(
                f"{at}: grid_w {s.grid_w:.6g}, base load and chargers through their efficiency give {_range(low, high)}"
            )
        in_window = scenario.fcr is not None and any(
            a < s.t_s + scenario.step_s and s.t_s < b for a, b in scenario.fcr.windows
        )
        if not in_window and abs(s.fcr_w) > FLOOR_W:
            lines.append(f"{at}: fcr_w {s.fcr_w:.6g} outside the FCR windows")
    return lines


def _soc_lines(scenario: DepotScenario, truck: TruckSpec, steps: tuple[StepReport, ...], k: int) -> list[str]:
    """A SoC that rose more than the DC energy delivered in the step (losses and auxiliaries only take away)."""
    soc = steps[k].chargers[truck.charger].soc
    before = steps[k - 1].chargers[truck.charger].soc if k > scenario.steps_of(truck).start else truck.initial_soc
    if soc is None or before is None:
        return []
    gained = (soc - before) * truck.battery_kwh
    delivered = steps[k].chargers[truck.charger].power_w * scenario.step_s / 3600.0 / 1000.0
    if gained <= delivered + max(RELATIVE * abs(delivered), FLOOR_KWH):
        return []
    return [
        f"steps t_s={steps[k].t_s} {truck.charger}: SoC gained {gained:.6g} kWh,"
        f" more than the {delivered:.6g} kWh delivered"
    ]


def _plug_lines(at: str, here: ChargerStep, truck: TruckSpec | None) -> list[str]:
    expected = truck.id if truck is not None else None
    if here.truck != expected:
        return [f"{at}: truck {here.truck!r}, the scenario plugs in {expected!r}"]
    if (here.soc is None) != (truck is None):
        return [f"{at}: soc {here.soc!r} with truck {here.truck!r} (a SoC exactly when a truck is plugged in)"]
    if truck is None and abs(here.power_w) > FLOOR_W:
        return [f"{at}: power_w {here.power_w:.6g} without a truck"]
    return []


def _grid_bounds(charger: ChargerSpec, truck: TruckSpec | None, power_w: float) -> tuple[float, float]:
    """The least and most grid-side mean power of a charger whose mean DC power over the step is `power_w`.

    The efficiency makes grid power a convex function of DC power, so the least is at a constant power (the
    exact value when the direction does not change within the step) and the most when the power alternates
    between the extremes the truck and charger allow (the same when the charger cannot discharge)."""
    least = charger.grid_w(power_w)
    if truck is None:
        return least, least
    up = min(truck.max_charge_w, charger.max_power_w)
    down = min(truck.max_discharge_w, charger.max_power_w) if charger.bidirectional else 0.0
    if not -down < power_w < up:
        return least, least
    share_up = (power_w + down) / (up + down)
    return least, share_up * charger.grid_w(up) + (1.0 - share_up) * charger.grid_w(-down)


def _range(low: float, high: float) -> str:
    return f"{low:.6g}" if math.isclose(low, high) else f"{low:.6g} .. {high:.6g}"
