"""`mcs-v2g ems --mqtt URL`: the site EMS steering depot nodes over MQTT; and the MQTT options of `mcs-v2g depot`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from ..depot.planners import planner
from ..depot.progress import goal_line
from .depot import add_fcr_strict
from .depot_link import WALL_TIMEOUT, _broker, outputs, site, write

# the EMS process steers: no uncontrolled
PLANNERS = ("lp", "lp-known", "equal-share", "edf", "llf", "price-threshold-v2g")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "ems",
        help="the site EMS as its own process: steers `mcs-v2g depot --mqtt URL --chargers ...` nodes over MQTT",
        description="Run the site EMS of a depot scenario against an MQTT broker: it waits for every charger's "
        "node at each dispatch step (lockstep: the EMS is the time master), sends the setpoints, takes grid-limit "
        "changes from depot/<site>/grid/limit and writes the depot report at the horizon. Exit status 0 only when "
        "the report's result is ok; 2 on bad input or an unreachable broker.",
    )
    p.add_argument(
        "--mqtt", required=True, type=_broker, metavar="URL", help="the broker, mqtt://[USER:PASSWORD@]HOST[:PORT]"
    )
    p.add_argument("--scenario", type=Path, help="depot scenario TOML (default: the built-in one)")
    p.add_argument("--site", default="depot", help="the site's topic level: depot/<site>/... (default: depot)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the report (JSON) to FILE")
    p.add_argument("--plot", type=Path, metavar="FILE", help="write the site and per-truck curves (.png/.svg/.pdf)")
    p.add_argument("--planner", choices=PLANNERS, default="lp", help="the planner (default: lp)")
    p.add_argument(
        "--node-timeout",
        type=WALL_TIMEOUT,
        default=600.0,
        metavar="S",
        help="wall seconds to wait for the nodes at a step before giving up (0.1 to 86400; default: 600)",
    )
    add_fcr_strict(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..depot.mqtt_ems import serve_ems
    from ..depot.mqtt_node import probe
    from ..depot.run import local_ems
    from ..depot.scenario import load
    from ..depot.table import summary_table

    outputs(args)
    scenario = load(args.scenario)
    probe(args.mqtt)
    report = asyncio.run(
        serve_ems(
            scenario,
            args.mqtt,
            site(args.site),
            backend=local_ems(scenario, planner(args.planner, scenario), fcr_strict=args.fcr_strict),
            node_timeout_s=args.node_timeout,
            tell=_say_goal,
        )
    )
    write(args, scenario, report)
    print(summary_table(scenario, report))
    return 0 if report.result == "ok" else 1


def _say_goal(t_s: float, event: str) -> None:
    if (line := goal_line(t_s, event)) is not None:
        print(line, file=sys.stderr, flush=True)
