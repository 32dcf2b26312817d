"""A depot on an MQTT broker, for `mcs-v2g depot --mqtt` and `mcs-v2g ems`: the options, the node, the outputs."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any, TextIO

from ..depot.planners import planner
from .common import CliError, number_in
from .outputs import plot_output, writable_file
from .sim import speed


def add_mqtt_options(p: argparse.ArgumentParser) -> None:
    """`mcs-v2g depot`'s options for a node on a broker."""
    p.add_argument(
        "--mqtt",
        type=_broker,
        metavar="URL",
        help="publish to and take setpoints or grid limits from mqtt://[USER:PASSWORD@]HOST[:PORT]",
    )
    p.add_argument("--site", default="depot", help="the site's topic level: depot/<site>/... (default: depot)")
    p.add_argument(
        "--chargers",
        type=_charger_ids,
        metavar="ID,ID",
        help="run only these chargers and their trucks (needs --mqtt and `mcs-v2g ems` on the same broker)",
    )
    p.add_argument(
        "--setpoint-timeout",
        type=WALL_TIMEOUT,
        default=30.0,
        metavar="S",
        help="wall seconds a node waits for its setpoints before its chargers fall back to the safe share "
        "(0.1 to 86400; default: 30)",
    )
    p.add_argument(
        "--telemetry-every",
        type=number_in(1.0, 86_400.0, " s"),
        metavar="S",
        help="also publish telemetry every S simulated seconds, 1 to 86400 (default: at each dispatch step)",
    )


def depot_speed(text: str) -> float:
    """`--speed` of `mcs-v2g depot`: x real time, or inf for 'max' (given, unlike the default None)."""
    value = math.inf if text == "max" else speed(text)
    assert value is not None  # speed() gives None only for 'max'
    return value


def pace(given: float | None) -> float | None:
    """The clock's speed for a `depot_speed`: None (as fast as it computes) for 'max' and by default."""
    return None if given is None or math.isinf(given) else given


def _charger_ids(text: str) -> tuple[str, ...]:
    ids = tuple(c.strip() for c in text.split(",") if c.strip())
    if not ids:
        raise argparse.ArgumentTypeError("one or more charger ids, comma-separated (e.g. mcs1,mcs2)")
    return ids


def _broker(text: str) -> str:
    from evse_emulator.energy.mqtt import BrokerAddress

    try:
        BrokerAddress.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


WALL_TIMEOUT = number_in(0.1, 86_400.0, " s")  # wall seconds to wait for the broker's other side: up to a day


def run_node(args: argparse.Namespace, scenario: Any) -> int:
    """`mcs-v2g depot --mqtt URL ...`: this process's chargers on the broker (see `mcs_v2g.depot.mqtt_node`)."""
    from evse_emulator.energy.topics import Topics
    from stack.clock import VirtualClock

    from ..depot.mqtt_node import MqttBackend, play_node, probe
    from ..depot.run import START, local_ems
    from ..depot.table import summary_table

    known = [c.id for c in scenario.chargers]
    unknown = [c for c in args.chargers or () if c not in known]
    if unknown:
        raise CliError(f"--chargers: no charger {', '.join(unknown)} in the scenario (it has {', '.join(known)})")
    subset = args.chargers is not None and set(args.chargers) != set(known)
    external = args.ems == "external"
    if subset and (args.json or args.plot):
        raise CliError("--json and --plot need the whole depot: `mcs-v2g ems --json` writes the report of a split one")
    if subset and args.ems not in ("lp", "lp-known", "external"):
        raise CliError(
            "--chargers: the planner is the EMS's (mcs-v2g ems --planner); --ems lp, lp-known or external here"
        )
    control = getattr(args, "control", "dynamic")
    if control != "dynamic" and (subset or external):
        raise CliError(f"--control {control}: only with the EMS in this process (no --chargers, no --ems external)")
    strict = getattr(args, "fcr_strict", False)
    if strict and (subset or external):
        raise CliError("--fcr-strict: only with the EMS in this process (give it to `mcs-v2g ems` for a split depot)")
    if external and args.speed == math.inf:
        raise CliError("--ems external: the other EMS answers in wall time; this node runs at --speed N (1 by default)")
    outputs(args)
    probe(args.mqtt)
    local = None
    if not (subset or external):
        local = local_ems(scenario, planner(args.ems, scenario), args.ems != "uncontrolled", control, strict)
    clock = VirtualClock(START, (args.speed or 1.0) if external else pace(args.speed))
    backend = MqttBackend(
        scenario,
        Topics(site(args.site)),
        tuple(c for c in known if not subset or c in args.chargers),
        clock,
        local=local,
        lockstep=not external,
        setpoint_timeout_s=args.setpoint_timeout,
        telemetry_every_s=args.telemetry_every,
    )
    result = clock.run(play_node(scenario, clock, args.mqtt, backend, control=control))
    if subset:
        for o in result.outcomes():
            print(f"{o.truck:10s} at {o.charger:8s} {o.session_result}")
        return 0 if all(o.session_result == "ok" for o in result.outcomes()) else 1
    report = result.report()
    write(args, scenario, report)
    print(summary_table(scenario, report))
    return 0 if report.result == "ok" else 1


def site(name: str) -> str:
    if not name or any(c in name for c in "/+#"):
        raise CliError(f"--site {name!r}: one MQTT topic level (no '/', '+', '#')")
    return name


def outputs(args: argparse.Namespace) -> None:
    if args.plot:
        plot_output(args.plot)
    if args.json:
        writable_file(args.json, "--json", (".json",))


def write(args: argparse.Namespace, scenario: Any, report: Any) -> None:
    """The report (`--json`) and the plot (`--plot`), each said on stderr (see `save`)."""
    save(args, scenario, report)
    tell_outputs(args, sys.stderr)


def tell_outputs(args: argparse.Namespace, stream: TextIO) -> None:
    """A line for each file written: `report   PATH`, `plot     PATH`."""
    for path, what in ((args.json, "report"), (args.plot, "plot")):
        if path:
            print(f"{what:8s} {path}", file=stream)


def save(args: argparse.Namespace, scenario: Any, report: Any) -> None:
    """The report (`--json`) and the plot (`--plot`); a `CliError` naming the option when a file cannot be written."""
    if args.json:
        try:
            args.json.write_text(report.to_json(indent=1))
        except OSError as exc:
            raise CliError(f"--json {args.json}: cannot be written: {exc.strerror or exc}") from None
    if args.plot:
        from ..depot.plot import plot_depot

        try:
            plot_depot(scenario, report, args.plot)
        except OSError as exc:
            raise CliError(f"--plot {args.plot}: cannot be written: {exc.strerror or exc}") from None
