"""A depot run as a PNG: site grid power and prices, each truck's DC power and SoC, and FCR asked against delivered."""

from __future__ import annotations

import textwrap
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from .report import DepotReport
from .scenario import DepotScenario, Series, TruckSpec

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Rgba = tuple[float, float, float, float]
LEGEND_MAX_TRUCKS = 12  # beyond this a legend hides the data: the lines stay, the names go
TITLE_RESULT_CHARS = 100  # a long failure reason is cut in the title (the table and the JSON have it whole)
TARGET_MARK_H = 0.5  # the length of a truck's target segment before its departure (hours)


def panels(scenario: DepotScenario) -> tuple[str, ...]:
    """The panels drawn, top to bottom: FCR only when the scenario sells it."""
    return ("grid", "power", "soc") + (("fcr",) if scenario.fcr is not None else ())


def plot_depot(scenario: DepotScenario, report: DepotReport, path: Path) -> Path:
    """Write the run's PNG to `path` and return it."""
    fig = figure(scenario, report)
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def figure(scenario: DepotScenario, report: DepotReport) -> Figure:
    """The run's figure (the caller closes it: `matplotlib.pyplot.close(fig)`)."""
    names = panels(scenario)
    fig, axes = _pyplot().subplots(
        len(names), 1, sharex=True, figsize=(12, 2.9 * len(names) + 0.6), constrained_layout=True, squeeze=False
    )
    by_name = dict(zip(names, axes[:, 0], strict=True))
    _grid(by_name["grid"], scenario, report)
    colors = _colors(len(scenario.trucks))
    _power(by_name["power"], scenario, report, colors)
    _soc(by_name["soc"], scenario, report, colors)
    if "fcr" in by_name:
        _fcr(by_name["fcr"], scenario, report)
    for ax in by_name.values():
        ax.grid(True, alpha=0.3)
        ax.set_xlim(0, scenario.horizon_s / 3600)
    axes[-1, 0].set_xlabel("time (h)")
    result = textwrap.shorten(report.result, TITLE_RESULT_CHARS, placeholder=" ...")
    fig.suptitle(f"{scenario.name}\nresult: {result}, total cost {report.cost_eur.total:.2f} EUR")
    return fig


def _pyplot() -> ModuleType:
    """pyplot on the Agg backend (files only, no display), imported on first use: the CLI starts without it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _edges(scenario: DepotScenario, report: DepotReport) -> list[float]:
    """Step starts in hours, then the horizon: x for step lines (`drawstyle="steps-post"`)."""
    return [s.t_s / 3600 for s in report.steps] + [scenario.horizon_s / 3600]


def _held(values: list[float]) -> list[float]:
    """A step series with its last value repeated, to match `_edges`."""
    return values + values[-1:]


def _series_line(series: Series, horizon_s: int) -> tuple[list[float], list[float]]:
    """A scenario series as step-line points in hours, held to the horizon."""
    x = [t / 3600 for t, _ in series] + [horizon_s / 3600]
    y = [v for _, v in series]
    return x, y + y[-1:]


def _colors(n: int) -> list[Rgba]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _grid(ax: Axes, scenario: DepotScenario, report: DepotReport) -> None:
    site = scenario.site
    x = _edges(scenario, report)
    grid = _held([s.grid_w / 1000 for s in report.steps])
    ax.plot(x, grid, drawstyle="steps-post", color="tab:blue", lw=1.1, label="grid (+ import)")
    bx, by = _series_line(site.base_load_w, scenario.horizon_s)
    ax.plot(bx, [w / 1000 for w in by], drawstyle="steps-post", color="tab:gray", lw=0.9, label="base load")
    ax.axhline(site.grid_import_limit_w / 1000, color="tab:red", ls="--", lw=0.9, label="import limit")
    ax.axhline(-site.grid_export_limit_w / 1000, color="tab:purple", ls="--", lw=0.9, label="export limit")
    ax.axhline(0, color="black", lw=0.5)
    ax.set_ylabel("site grid (kW)")
    price = ax.twinx()
    for series, label, color in (
        (scenario.tariff.import_eur_per_kwh, "import price", "tab:orange"),
        (scenario.tariff.export_eur_per_kwh, "export price", "tab:olive"),
    ):
        px, py = _series_line(series, scenario.horizon_s)
        price.plot(px, py, drawstyle="steps-post", color=color, lw=0.9, ls=":", label=label)
    price.set_ylabel("price (EUR/kWh)")
    handles = ax.get_legend_handles_labels()[0] + price.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="lower left", fontsize=7, ncol=3)


def _plugged(scenario: DepotScenario, report: DepotReport, truck: TruckSpec) -> list[int]:
    """The step indices where the report shows the truck on its charger."""
    return [k for k in scenario.steps_of(truck) if report.steps[k].chargers[truck.charger].truck == truck.id]


def _power(ax: Axes, scenario: DepotScenario, report: DepotReport, colors: list[Rgba]) -> None:
    thin = len(scenario.trucks) > LEGEND_MAX_TRUCKS
    for truck, color in zip(scenario.trucks, colors, strict=True):
        ks = _plugged(scenario, report, truck)
        if not ks:
            continue
        x = [report.steps[k].t_s / 3600 for k in ks] + [min(truck.departure_s, scenario.horizon_s) / 3600]
        y = [report.steps[k].chargers[truck.charger].power_w / 1000 for k in ks]
        ax.plot(x, _held(y), drawstyle="steps-post", color=color, lw=0.7 if thin else 1.1, label=truck.id)
    ax.axhline(0, color="black", lw=0.5)
    ax.set_ylabel("DC power (kW)\n+ charge, - discharge")
    if not thin:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, title="truck", title_fontsize=7)


def _soc(ax: Axes, scenario: DepotScenario, report: DepotReport, colors: list[Rgba]) -> None:
    thin = len(scenario.trucks) > LEGEND_MAX_TRUCKS
    for truck, color in zip(scenario.trucks, colors, strict=True):
        ks = _plugged(scenario, report, truck)
        socs = [(k, report.steps[k].chargers[truck.charger].soc) for k in ks]
        x = [truck.arrival_s / 3600] + [
            min(report.steps[k].t_s + scenario.step_s, truck.departure_s) / 3600 for k, soc in socs if soc is not None
        ]
        y = [truck.initial_soc * 100] + [soc * 100 for _, soc in socs if soc is not None]
        ax.plot(x, y, color=color, lw=0.7 if thin else 1.1)
        end = truck.departure_s / 3600
        ax.plot([end - TARGET_MARK_H, end], [truck.target_soc * 100] * 2, color=color, ls="--", lw=1.0)
        ax.plot([end], [truck.target_soc * 100], color=color, marker="v" if thin else "o", ms=3 if thin else 4)
    ax.set_ylabel("SoC (%)\n-- target at departure")
    ax.set_ylim(0, 100)


def _fcr(ax: Axes, scenario: DepotScenario, report: DepotReport) -> None:
    fcr = scenario.fcr
    assert fcr is not None  # panels() draws this one only with [fcr]
    x = _edges(scenario, report)
    asked = [fcr.required_mean_w(s.t_s, s.t_s + scenario.step_s) / 1000 for s in report.steps]
    ax.plot(x, _held(asked), drawstyle="steps-post", color="tab:gray", lw=1.6, label="asked")
    delivered = _held([s.fcr_w / 1000 for s in report.steps])
    ax.plot(x, delivered, drawstyle="steps-post", color="tab:green", lw=0.9, label="delivered")
    for start, end in fcr.windows:
        ax.axvspan(start / 3600, end / 3600, color="tab:green", alpha=0.06)
    ax.axhline(0, color="black", lw=0.5)
    ax.set_ylabel("FCR (kW)\n+ absorb, - feed")
    ax.set_ylim(-fcr.capacity_w / 1000 * 1.15, fcr.capacity_w / 1000 * 1.15)
    ax.legend(loc="upper right", fontsize=7)
