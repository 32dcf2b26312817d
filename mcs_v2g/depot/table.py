"""A depot report as a plain-text table for a terminal: one row per truck, then the site's figures and the result."""

from __future__ import annotations

from .judge import fcr_short_kwh
from .report import DepotReport, TruckReport
from .scenario import DepotScenario, TruckSpec

WIDTH = 120  # no line is longer
ID_WIDTH = 12  # a longer truck or charger id is cut, ending in "~"


def summary_table(scenario: DepotScenario, report: DepotReport) -> str:
    """The report as fixed-width text (no colours, no line over `WIDTH`), ending with `result: ...`."""
    specs = {t.id: t for t in scenario.trucks}
    ids = max([len("truck"), *(len(t.id) for t in report.trucks)])
    chargers = max([len("charger"), *(len(t.charger) for t in report.trucks)])
    id_w, charger_w = min(ids, ID_WIDTH), min(chargers, ID_WIDTH)
    head = (
        f"{'truck':<{id_w}} {'charger':<{charger_w}} {'booked':<6} {'in kWh':>8} {'out kWh':>8}"
        f" {'SoC/target %':>12} {'target':<16} {'unserved kWh':>12} {'cycles':>6} {'dir chg':>7} "
    )
    lines = [_fit(head + "session"), "-" * min(len(head) + len("session"), WIDTH)]
    for t in report.trucks:
        spec = specs[t.id]
        soc = f"{t.soc_at_departure * 100:5.1f}/{spec.target_soc * 100:5.1f}"
        row = (
            f"{_cut(t.id, id_w):<{id_w}} {_cut(t.charger, charger_w):<{charger_w}} {'yes' if spec.booked else 'no':<6}"
            f" {t.energy_in_kwh:>8.1f} {t.energy_out_kwh:>8.1f} {soc:>12} {target_status(scenario, spec, t):<16}"
            f" {t.unserved_kwh:>12.1f} {t.contactor_cycles:>6d} {t.direction_changes:>7d} "
        )
        lines.append(_fit(row + t.session_result))
    return "\n".join(lines + [""] + _site(scenario, report) + [f"result: {report.result}"]) + "\n"


def target_status(scenario: DepotScenario, spec: TruckSpec, truck: TruckReport) -> str:
    """The target column: met, MISSED, or infeasible (out of reach at full power; "infeasible (met)" if met anyway)."""
    if not scenario.feasible(spec):
        return "infeasible (met)" if truck.target_met else "infeasible"
    return "met" if truck.target_met else "MISSED"


def _site(scenario: DepotScenario, report: DepotReport) -> list[str]:
    cost, fcr = report.cost_eur, report.fcr
    limit_kw = scenario.site.grid_import_limit_w / 1000
    factor = f"{report.simulated_s / report.wall_s:.0f}x" if report.wall_s > 0 else "n/a"
    lines = [
        "cost (EUR)",
        f"  import               {cost.import_:>12.2f}",
        f"  export revenue       {-cost.export_revenue:>12.2f}",
        f"  demand               {cost.demand:>12.2f}",
        f"  unserved energy      {cost.unserved:>12.2f}",
        f"  FCR penalty          {cost.fcr_penalty:>12.2f}",
        f"  total                {cost.total:>12.2f}",
        f"peak import            {report.peak_import_w / 1000:>12.1f} kW (limit {limit_kw:.1f} kW)",
        f"peak 15-min import     {report.peak_15min_import_w / 1000:>12.1f} kW (limit {limit_kw:.1f} kW)",
        f"grid limit violations  import {report.grid_import_violation_s:.0f} s,"
        f" export {report.grid_export_violation_s:.0f} s",
        f"FCR                    required {fcr.required_kwh:.3f} kWh, delivered {fcr.delivered_kwh:.3f} kWh,"
        f" availability {fcr.availability * 100:.1f} %",
        *_fcr_short(scenario, report),
        f"time                   simulated {report.simulated_s:.0f} s in {report.wall_s:.1f} s wall ({factor})",
    ]
    return [_fit(line) for line in lines]


def _fcr_short(scenario: DepotScenario, report: DepotReport) -> list[str]:
    """What the FCR left short, by the direction the droop asked (the EMS holds back the droop that would raise the
    15-min peak; a truck at full power cannot take more): a line when anything was."""
    raising, lowering = fcr_short_kwh(scenario, report.steps)
    if raising + lowering < 0.0005:
        return []
    return [f"FCR not delivered      {raising:.3f} kWh asked to raise the import, {lowering:.3f} kWh to lower it"]


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def _fit(line: str) -> str:
    return _cut(line.rstrip(), WIDTH)
