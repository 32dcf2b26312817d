"""`mcs-v2g depot`: a yard of MCS chargers and trucks behind one grid connection, steered by the site EMS."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..depot.planners import PLANNERS, planner
from ..depot.progress import goal_line
from .common import CliError
from .depot_link import add_mqtt_options, depot_speed, pace, run_node, save, tell_outputs
from .outputs import plot_output, writable_file

if TYPE_CHECKING:
    from ..depot.run import DispatchView


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "depot",
        help="a depot of MCS chargers and trucks on one virtual clock, steered by the site EMS (issue 12)",
        description="Play a depot scenario: every session a full -20 exchange, the site EMS (rolling-horizon LP "
        "with HiGHS and a real-time layer) steering the chargers. Without --scenario: the built-in default "
        "(4 MCS chargers, 10 trucks, 24 h). Exit status 0 only when every feasible target is met, no grid limit is "
        "exceeded and every session ended cleanly.",
    )
    p.add_argument("--scenario", type=Path, help="depot scenario TOML (default: the built-in one)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the report (JSON) to FILE")
    p.add_argument("--plot", type=Path, metavar="FILE", help="write the site and per-truck curves (.png/.svg/.pdf)")
    p.add_argument("--speed", type=depot_speed, default=None, help="x real time, or 'max' (default)")
    p.add_argument(
        "--ems",
        choices=(*PLANNERS, "external"),
        default="lp",
        help="the planner: lp (default: the EMS, with room for trucks not known yet), lp-known (the LP over the "
        "known trucks only), or one of the field's heuristics for comparison; external: "
        "another EMS drives the chargers over --mqtt (this node runs at --speed, 1x by default)",
    )
    p.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="processes for the chargers and their trucks (default 1); the EMS stays in this one, in lockstep, so "
        "the report is the same; N = the machine's cores is fastest on a large depot (not with --speed or --mqtt)",
    )
    add_mqtt_options(p)
    p.add_argument(
        "--control",
        choices=("dynamic", "scheduled"),
        default="dynamic",
        help="the trucks' -20 control mode: dynamic (default: the EMS sets the power at every charge loop, FCR "
        "droop included) or scheduled (each truck gets the EMS plan as its schedule, with price levels, and is "
        "asked to renegotiate when the plan changes materially; no FCR)",
    )
    add_fcr_strict(p)
    p.set_defaults(func=run)


def add_fcr_strict(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--fcr-strict",
        action="store_true",
        help="FCR measured at the connection point: the EMS counts each 15-min window with the droop at the room it "
        "keeps for it, so the demand charge never moves a truck's power against an activation (default: it counts "
        "the metered import, the droop's with it, and trims the other trucks after an activation beyond that room; "
        "the report credits each charger's droop either way). Dynamic control only; no effect without [fcr]",
    )


def run(args: argparse.Namespace) -> int:
    from ..depot.parallel import ParallelRun, WorkerFailed, run_parallel
    from ..depot.progress import DepotProgress
    from ..depot.run import DepotRun, run_depot
    from ..depot.scenario import load
    from ..depot.table import summary_table

    if args.plot:
        plot_output(args.plot)
    if args.json:
        writable_file(args.json, "--json", (".json",))
    scenario = load(args.scenario)
    if args.fcr_strict and args.control != "dynamic":
        raise CliError(
            f"--fcr-strict: the chargers hold FCR in Dynamic control only, not with --control {args.control}"
        )
    if args.mqtt:
        if args.workers > 1:
            raise CliError("--workers is for one process's depot: over MQTT, run several nodes (--chargers)")
        return run_node(args, scenario)
    if args.chargers or args.ems == "external":
        raise CliError("--chargers and --ems external need --mqtt URL")
    display = DepotProgress()
    watch = _Watch(display, scenario.horizon_s)
    result: DepotRun | ParallelRun
    guard = args.ems != "uncontrolled"
    if args.workers > 1:
        if pace(args.speed) is not None:
            raise CliError("--workers plays as fast as it computes: not with --speed")
        try:
            result = run_parallel(
                scenario,
                args.workers,
                planner=planner(args.ems, scenario),
                progress=watch,
                guard=guard,
                control=args.control,
                fcr_strict=args.fcr_strict,
            )
        except WorkerFailed as exc:
            raise CliError(str(exc)) from None
    else:
        result = run_depot(
            scenario,
            planner=planner(args.ems, scenario),
            speed=pace(args.speed),
            progress=watch,
            guard=guard,
            control=args.control,
            fcr_strict=args.fcr_strict,
        )
    display.done()
    report = result.report()
    save(args, scenario, report)
    print(summary_table(scenario, report))
    tell_outputs(args, sys.stdout)
    return 0 if report.result == "ok" else 1


class _Watch:
    """The live display: one line per charger at each dispatch step; what the EMS learns is said at once."""

    def __init__(self, display: Any, horizon_s: float) -> None:
        self.display = display
        self.horizon_s = horizon_s
        self.said = 0

    def __call__(self, view: DispatchView) -> None:
        for at, text in view.events[self.said :]:
            if (line := goal_line(at, text)) is not None:
                print(f"\n{line}", file=sys.stderr, flush=True)
        self.said = len(view.events)
        lines = {}
        for cid, tel in view.telemetry.items():
            if tel.truck is None:
                lines[cid] = "idle"
                continue
            soc = "" if tel.soc is None else f"  SoC {tel.soc * 100:5.1f} %"
            told = view.told_w.get(cid, 0.0) / 1000
            lines[cid] = f"{tel.truck:10s} {tel.state:11s} {tel.power_kw:8.1f} kW{soc}  setpoint {told:7.1f} kW"
        self.display.show(view.t_s, self.horizon_s, lines)


def _workers(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"a number of processes >= 1, not {text!r}")
    return n
