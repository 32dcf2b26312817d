"""`python -m tools.bench faults`: every plant fault injected into a short MCS session over CAN, the charger's
reaction measured in simulated time against what IEC 61851-23 / -23-3 require (PROTOCOL.md section 10).

Prints the table of the README (markdown) or `--json`; runs each fault once per family given (`--family`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mcs_v2g.sim.reactions import REQUIRED
from mcs_v2g.sim.run import simulate
from mcs_v2g.sim.scenario import Scenario

# 750 kW from the start; faults at 120 s, while ~900 A flow (the pre-charge one before the session)
SESSION = replace(
    Scenario(), departure_s=600.0, initial_soc=0.45, target_soc=0.60, steps=((0.0, 750_000.0),), service="mcs"
)
FAULTS = {
    "over_voltage": "over_voltage@120",
    "over_current": "over_current@120",
    "insulation": "insulation@120",
    "module_loss": "module_loss:1@120",
    "can_silence": "can_silence@120",
    "contactor_weld": "contactor_weld@120",
    "pre_charge": "pre_charge@0",
    "ev_silence": None,  # the truck hangs at 120 s (a scenario key, not a plant fault)
}


def run(families: list[str]) -> list[dict[str, Any]]:
    rows = []
    for name in families:
        for fault, spec in FAULTS.items():
            changes: dict[str, Any] = {"hal": f"can:{name}"}
            if spec is None:
                changes["ev_stops_answering_s"] = 120.0
            else:
                changes["plant_faults"] = (spec,)
            summary = simulate(replace(SESSION, **changes), tls=False).summary()
            record = summary["reactions"][0] if summary["reactions"] else {}
            reaction = summary["charger_reactions"][0] if summary["charger_reactions"] else {}
            rows.append(
                {"family": name, "fault": fault, "result": summary["result"], "plant": record, "charger": reaction}
            )
    return rows


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"


def measured(row: dict[str, Any]) -> str:
    """The figure that the requirement is about, in words."""
    p, c, fault = row["plant"], row["charger"], row["fault"]
    if fault == "module_loss":
        return (
            f"dropped after {_ms(p.get('dropped_after_s'))}; max power told "
            f"{p.get('advertised_before_kw')} -> {p.get('advertised_after_kw')} kW {_ms(p.get('advertised_after_s'))} "
            "after the loss"
        )
    if fault in ("over_voltage", "over_current"):
        crossed, tripped = p.get("limit_crossed_after_s"), p.get("tripped_after_s")
        low, opened = p.get("current_below_5a_after_s"), p.get("contactors_open_after_s")

        def after(t: float | None) -> float | None:
            return None if t is None or tripped is None else max(0.0, t - tripped)

        return (
            f"limit passed {_ms(crossed)} after the fault, protection {_ms(p.get('protection_took_s'))} later; "
            f"< 5 A {_ms(after(low))} and contactors open {_ms(after(opened))} after the trip, at "
            f"{p.get('opened_at_a')} A"
        )
    if fault == "contactor_weld":
        return f"reported at the opening ({c.get('detail', '-')})" if c else "not reported"
    if fault == "pre_charge":
        return f"given up at {c.get('detected_s')} s of the session ({c.get('detail', '')})" if c else "not detected"
    return (
        f"< 5 A {_ms(p.get('current_below_5a_after_s'))}, contactors open {_ms(p.get('contactors_open_after_s'))}"
        f" at {p.get('opened_at_a')} A"
    )


def report(rows: list[dict[str, Any]]) -> str:
    """One row per fault; where the families differ, each family's figure."""
    lines = [
        "| fault | shutdown | required (PROTOCOL.md 10) | measured (simulated time) | result |",
        "|---|---|---|---|---|",
    ]
    for fault in FAULTS:
        found = [row for row in rows if row["fault"] == fault]
        if not found:
            continue
        texts = {row["family"]: measured(row) for row in found}
        results = sorted({row["result"] for row in found})
        if len(set(texts.values())) == 1:
            shown = next(iter(texts.values()))
        else:
            shown = "; ".join(f"{family}: {text}" for family, text in texts.items())
        need = REQUIRED[fault]
        cells = (fault, need.shutdown, need.rule, shown, ", ".join(f"`{r}`" for r in results))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
