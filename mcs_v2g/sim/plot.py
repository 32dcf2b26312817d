"""Voltage, current, power and SoC of a simulated session against time, as a PNG."""

from __future__ import annotations

from pathlib import Path

from .run import SimResult


def plot(result: SimResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    s = result.scenario
    t = [x.t / 3600 for x in result.samples]
    fig, axes = plt.subplots(4, 1, sharex=True, figsize=(10, 9), constrained_layout=True)
    series = [
        ([x.voltage for x in result.samples], "voltage (V)", "tab:blue"),
        ([x.current for x in result.samples], "current (A)\n+ charge, - discharge", "tab:orange"),
        ([x.power_kw for x in result.samples], "power (kW)", "tab:red"),
        ([x.soc for x in result.samples], "SoC (%)", "tab:green"),
    ]
    for ax, (values, label, color) in zip(axes, series, strict=True):
        ax.plot(t, values, color=color, linewidth=1.2)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[1].axhline(0, color="black", linewidth=0.6)
    axes[2].axhline(0, color="black", linewidth=0.6)
    soc = axes[3]
    soc.axhline(s.target_soc * 100, color="tab:green", linestyle="--", linewidth=0.8, label="target")
    soc.axhline(s.v2g_reserve_soc * 100, color="tab:purple", linestyle=":", linewidth=0.8, label="V2G reserve")
    soc.axvline(s.departure_s / 3600, color="black", linestyle="--", linewidth=0.8, label="departure")
    soc.legend(loc="lower right", fontsize=8)
    soc.set_xlabel("time (h)")
    summary = result.summary()
    fig.suptitle(
        f"{s.service.upper()} {s.control}: {summary['energy_charged_kwh']:.0f} kWh in, "
        f"{summary['energy_discharged_kwh']:.0f} kWh out, SoC {summary['initial_soc']:.0f} -> "
        f"{summary['final_soc']:.1f} % (result: {summary['result']})"
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
