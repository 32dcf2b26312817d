"""The demand of trucks the EMS does not know yet, on the chargers' free time: what a plan leaves room for.

A backend learns of a walk-in when it plugs in, and of a booking only hours ahead. A plan of the known trucks alone
spreads them out to the lowest peak and leaves no room for the trucks that come later: on seeded day 1 an
infeasible walk-in got 5 kWh where, announced early, it got 334, and the peak was the same. `WalkInForecast` is a
depot's history in a few figures: the energy that trucks not known yet take per hour of a charger free of known
trucks, by how far ahead that hour is (the nearer, the more of its trucks are known). The plan holds, on each
charger's free time after `lead_s`, one expected truck of that energy (no V2G, no FCR headroom, its shortfall at the
scenario's unserved price, like a target that cannot be met); the EMS acts on the known trucks' part of that plan,
and the next plan has the forecast an hour on. Known trucks charge earlier, and the peak is set for the trucks that
come while they are there, not for them alone. The forecast reaches only as far as the plan: the last known
departure (early in a day with few trucks known, no room is held for the evening).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from . import fallback
from .lp import plan
from .model import Plan, SitePlan, Truck

HOUR = 3600.0
GAP_STEP_S = 900.0  # the forecast's density is integrated over a free gap in steps of this


@dataclass(frozen=True, slots=True)
class WalkInForecast:
    """kWh per free charger-hour: `near_kwh_per_h` now, `rise_kwh_per_h2` more per hour ahead, at most `far_kwh_per_h`.

    The defaults follow 60 generated days that the benchmark does not play (`python -m tools.fit_forecast`, seeds
    100-159: 11.2 kWh/h over the hour from 1 h ahead, rising to 40.0 over the hour from 12 h ahead). Over those
    hours the defaults give 13.75 and 40: some 25 % above the table near term (measured with them: -1.2 % on 26
    scenarios; with half of every figure -0.8 %). A depot fits its own from its history.
    """

    near_kwh_per_h: float = 10.0
    rise_kwh_per_h2: float = 2.5
    far_kwh_per_h: float = 40.0
    lead_s: float = HOUR  # none in the plan's first hour: that hour is planned for the known trucks
    min_gap_s: float = HOUR  # a charger free for less holds no expected truck (a stay is an hour at least)

    def density(self, ahead_s: float) -> float:
        """The expected kWh per free charger-hour this far ahead."""
        return min(self.near_kwh_per_h + self.rise_kwh_per_h2 * ahead_s / HOUR, self.far_kwh_per_h)

    def energy_wh(self, now_s: float, start_s: float, end_s: float) -> float:
        """The expected energy (Wh) of a charger free over [start_s, end_s), seen from `now_s`."""
        n = max(1, round((end_s - start_s) / GAP_STEP_S))
        dt = (end_s - start_s) / n
        return sum(self.density(start_s + (k + 0.5) * dt - now_s) for k in range(n)) * dt / HOUR * 1000

    def trucks(self, x: SitePlan) -> tuple[Truck, ...]:
        """One expected truck on each charger's free time in the plan, from `lead_s` on."""
        now, end = x.t_s[0], x.t_s[-1] + x.step_s
        out = []
        for c in x.chargers:
            busy = sorted((t.arrival_s, t.departure_s) for t in x.trucks if t.charger == c.id)
            gaps, free_from = [], now + self.lead_s
            for arrival, departure in busy:
                gaps.append((free_from, min(arrival, end)))
                free_from = max(free_from, departure)
            gaps.append((free_from, end))
            for k, (a, b) in enumerate(g for g in gaps if g[1] - g[0] >= self.min_gap_s):
                wh = self.energy_wh(now, a, b)
                out.append(
                    Truck(
                        id=f"~expected {c.id} {k}",
                        charger=c.id,
                        arrival_s=a,
                        departure_s=b,
                        battery_wh=2 * wh,
                        soc=0.0,
                        target_soc=0.5,
                        max_charge_w=c.max_power_w,
                        firm_target=False,
                        expected=True,
                    )
                )
        return tuple(out)


def plan_with_forecast(x: SitePlan, forecast: WalkInForecast = WalkInForecast()) -> Plan:
    """The LP's plan (`lp.plan`, which keeps `Truck.expected` out of the FCR) with the forecast's expected trucks, and
    only the known trucks in the plan it returns (its grid and costs are the whole plan's). When the LP fails, the
    safe plan of the known trucks alone: expected trucks take no power from real ones."""
    expected = forecast.trucks(x)
    if not expected:
        return plan(x)
    whole = plan(replace(x, trucks=x.trucks + expected))
    if whole.fallback:
        return fallback.plan(x, reason=whole.status)
    known = {t.id for t in x.trucks}
    return replace(whole, trucks=tuple(t for t in whole.trucks if t.id in known))
