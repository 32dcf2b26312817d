"""The safe plan when the LP fails or overruns: least laxity first within the grid import limit, no V2G.

Step by step, the plugged-in trucks still short of their target are served in order: booked before walk-ins,
then by laxity (time to departure - time the remaining energy needs at full power, as acnportal defines it),
each up to its own and its charger's rating and the energy it still needs, while the grid import (base load +
chargers through their efficiency) stays within the limit. It never discharges and ignores prices, the demand
charge and the FCR reservation (reported as not held).
"""

from __future__ import annotations

from evse_emulator.energy.ems.model import PLAN_WEIGHTS, Plan, SitePlan, evaluate


def plan(x: SitePlan, *, reason: str = "fallback") -> Plan:
    """The heuristic plan, marked `fallback=True` with `reason` as its status."""
    hours = x.step_s / 3600
    energy = [t.soc * t.battery_wh for t in x.trucks]
    power = [[0.0] * x.n for _ in x.trucks]
    rate = [min(t.max_charge_w, x.charger(t.charger).max_power_w) for t in x.trucks]
    for k, t0 in enumerate(x.t_s):
        headroom = x.import_limit_w[k] - x.base_load_w[k]
        waiting = [
            i
            for i, t in enumerate(x.trucks)
            if x.presence(t, k) > 0 and energy[i] < t.target_soc * t.battery_wh and rate[i] > 0
        ]

        def laxity(i: int, t0: float = t0) -> float:
            t = x.trucks[i]
            return t.departure_s - t0 - (t.target_soc * t.battery_wh - energy[i]) * 3600 / rate[i]

        used: dict[str, float] = {}
        for i in sorted(waiting, key=lambda i: (not x.trucks[i].booked, laxity(i))):
            truck = x.trucks[i]
            charger = x.charger(truck.charger)
            need_w = (truck.target_soc * truck.battery_wh - energy[i]) / hours
            spare = charger.max_power_w - used.get(charger.id, 0.0)
            p = max(0.0, min(rate[i] * x.presence(truck, k), need_w, spare, headroom * charger.efficiency))
            power[i][k] = p
            energy[i] += p * hours
            headroom -= charger.grid_w(p)
            used[charger.id] = used.get(charger.id, 0.0) + p
    short = [x.fcr(k) for k in range(x.n)]  # it holds no reservation
    return evaluate(x, power, PLAN_WEIGHTS, fcr_shortfall_w=short, status=reason, fallback=True)
