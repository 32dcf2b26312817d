"""`python -m tools.fit_forecast [FIRST LAST]`: the walk-in forecast's figures from generated days (a depot's history).

For each generated day (seeds FIRST..LAST, 100-159 by default: days the benchmark does not play) and each even hour,
what the EMS knows then (the trucks announced) against what comes: per charger and hour ahead (1-12 h), the hours
free of known trucks, and the energy of the trucks not known yet in them (each truck's energy spread over its stay;
a target that cannot be met counts what its rate delivers). Prints kWh per free charger-hour by hour ahead and the
line that `evse_emulator.energy.ems.forecast.WalkInForecast` takes (near, rise per hour, cap).
"""

from __future__ import annotations

import sys

import numpy as np

from mcs_v2g.depot.generate import generate

HOUR = 3600
AHEAD_H = range(1, 13)


def density(seeds: range) -> dict[int, float]:
    """kWh of trucks not known yet per free charger-hour, by hours ahead."""
    energy = dict.fromkeys(AHEAD_H, 0.0)
    free_h = dict.fromkeys(AHEAD_H, 0.0)
    for seed in seeds:
        day = generate(seed)
        for now in range(0, day.horizon_s, 2 * HOUR):
            known = [t for t in day.trucks if t.announced_s <= now < t.departure_s]
            unknown = [t for t in day.trucks if t.announced_s > now]
            for charger in day.chargers:
                busy = [(max(t.arrival_s, now), t.departure_s) for t in known if t.charger == charger.id]
                for ahead in AHEAD_H:
                    a, b = now + ahead * HOUR, now + (ahead + 1) * HOUR
                    if b > day.horizon_s:
                        break
                    free_h[ahead] += 1 - sum(max(0.0, min(b, d) - max(a, s)) for s, d in busy) / HOUR
                    for t in (t for t in unknown if t.charger == charger.id):
                        stay = t.departure_s - t.arrival_s
                        rate_kw = min(t.max_charge_w, charger.max_power_w) / 1000
                        kwh = min((t.target_soc - t.initial_soc) * t.battery_kwh, rate_kw * stay / HOUR)
                        energy[ahead] += kwh * max(0.0, min(b, t.departure_s) - max(a, t.arrival_s)) / stay
    return {h: energy[h] / free_h[h] for h in AHEAD_H if free_h[h]}


def main(argv: list[str]) -> None:
    first, last = (int(a) for a in argv) if argv else (100, 159)
    table = density(range(first, last + 1))
    for ahead, kwh in table.items():
        print(f"{ahead:3d} h ahead: {kwh:5.1f} kWh per free charger-hour")
    rise, near = np.polyfit(list(table), list(table.values()), 1)
    print(f"fit: near {near:.1f} kWh/h, rise {rise:.2f} kWh/h per hour ahead, cap {max(table.values()):.1f} kWh/h")


if __name__ == "__main__":
    main(sys.argv[1:])
