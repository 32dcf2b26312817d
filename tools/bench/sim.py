"""`python -m tools.bench sim`: wall time of a simulated 8-hour overnight MCS_BPT session at --speed max."""

from __future__ import annotations

import sys

from mcs_v2g.cli.sim import tls_contexts
from mcs_v2g.sim.run import simulate
from mcs_v2g.sim.scenario import overnight


def run(*, tls: bool = True) -> dict:
    print("simulating an 8-hour overnight MCS_BPT session at --speed max ...", file=sys.stderr, flush=True)
    result = simulate(overnight(), tls=tls, speed=None, ssl_contexts=tls_contexts)
    summary = result.summary()
    loops = summary["messages"].get("DC_ChargeLoopReq", 0)
    return {"python": sys.version.split()[0], "summary": summary, "charge_loops": loops}


def report(r: dict) -> str:
    s = r["summary"]
    return "\n".join(
        [
            f"overnight sim, CPython {r['python']}: {s['simulated_s'] / 3600:.1f} h simulated in {s['wall_s']:.2f} s"
            f" ({s['simulated_s'] / max(s['wall_s'], 1e-9):.0f}x real time), result {s['result']}",
            f"{r['charge_loops']} charge loops over {'TLS 1.3' if s['tls'] else 'TCP'},"
            f" {s['energy_charged_kwh']:.0f} kWh in, {s['energy_discharged_kwh']:.0f} kWh out,"
            f" SoC {s['initial_soc']:.0f} -> {s['final_soc']:.1f} % (departure met: {s['departure_met']})",
        ]
    )
