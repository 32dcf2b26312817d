"""`mcs-v2g sim`: the main job, a closed-loop MCS V2G session between the emulated charger and truck."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from stack.session.services import SERVICE_NAMES

from ..sim.scenario import Scenario, load
from .common import CliError
from .outputs import PLOT_FORMATS, can_log_output, plot_output


def speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("a number (x real time) or 'max'") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError("speed must be a positive number (or 'max')")
    return value


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "sim", help="closed-loop MCS V2G session: emulated charger + truck over TLS, in accelerated time"
    )
    p.add_argument("--service", choices=list(SERVICE_NAMES), help="default: the scenario's (mcs-bpt)")
    p.add_argument("--control", choices=("dynamic", "scheduled"), help="default: the scenario's (dynamic)")
    tls = p.add_mutually_exclusive_group()
    tls.add_argument("--tls", dest="tls", action="store_true", default=True, help="TLS 1.3 (default)")
    tls.add_argument("--no-tls", dest="tls", action="store_false")
    p.add_argument("--scenario", type=Path, help="TOML file (keys of mcs_v2g/sim/scenario.py's Scenario)")
    p.add_argument(
        "--auth", type=str.lower, choices=("eim", "pnc"), help="authorization (default: the scenario's, eim)"
    )
    p.add_argument(
        "--install-contract",
        action="store_true",
        help="pnc: the truck starts without a contract and gets one by CertificateInstallation first",
    )
    p.add_argument("--speed", type=speed, default=None, help="x real time, or 'max' (default)")
    p.add_argument(
        "--plot",
        type=Path,
        help=f"write voltage/current/power/SoC curves to this file ({', '.join(PLOT_FORMATS)}; needs the plot extra)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    can = p.add_argument_group("the charger's hardware over CAN (python-can virtual bus, simulated time)")
    can.add_argument(
        "--hal", help="mock (default: the physical model in process) or can:<family> (see plant --list-families)"
    )
    can.add_argument(
        "--modules", type=int, help="CAN: power modules in the rack (default: the plan's peak + one spare)"
    )
    can.add_argument("--series", type=int, help="CAN: modules in series in a string (2 reach 1 250 V)")
    can.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME@SECONDS",
        help="CAN plant fault at SECONDS from the start, e.g. over_voltage@1500 or module_loss:3@900 (repeatable): "
        "over_voltage, over_current, insulation, module_loss:N, derate:N, can_silence, contactor_weld, pre_charge",
    )
    can.add_argument("--can-log", type=Path, help="record the bus (.log candump, .asc, .blf: by the suffix)")
    p.set_defaults(func=run)


def tls_contexts():
    from stack.security.tls import client_context, server_context

    from .common import ensure_test_pki

    pki = ensure_test_pki()
    return server_context(pki), client_context(pki)


def run(args: argparse.Namespace) -> int:
    from ..sim.run import departure_feasibility, simulate

    if args.plot:
        plot_output(args.plot)
    scenario: Scenario = load(args.scenario)
    if args.service:
        scenario = replace(scenario, service=args.service)
    if args.control:
        scenario = replace(scenario, control=args.control)
    if args.auth or args.install_contract:
        auth = args.auth or scenario.auth
        if args.install_contract and auth != "pnc":
            raise CliError("--install-contract is a Plug & Charge setting: add --auth pnc")
        scenario = replace(scenario, auth=auth, install_contract=args.install_contract or scenario.install_contract)
        scenario = scenario.checked()
    if scenario.auth == "pnc" and not args.tls:
        raise CliError("Plug & Charge needs TLS (PnC over plain TCP is refused, PROTOCOL.md 4.4): drop --no-tls")
    scenario = with_hardware(scenario, args)
    goal = departure_feasibility(scenario)
    if goal is not None and not goal.feasible:  # said when the session starts, not discovered at the end
        print(f"mcs-v2g: goal: {goal.describe()}", file=sys.stderr, flush=True)
    result = simulate(
        scenario,
        tls=args.tls,
        speed=args.speed,
        progress=not args.json,
        ssl_contexts=tls_contexts,
        can_log=args.can_log,
    )
    summary = result.summary()
    if args.plot:
        from ..sim.plot import plot

        plot(result, args.plot)
    if args.json:
        print(json.dumps(summary))
    else:
        print(report(summary, args.plot))
    return summary["exit_status"]


def with_hardware(scenario: Scenario, args: argparse.Namespace) -> Scenario:
    """The scenario with the CAN options of the command line (checked like the file's keys)."""
    changes: dict[str, Any] = {}
    if args.hal:
        changes["hal"] = args.hal
    if args.modules is not None:
        changes["modules"] = args.modules
    if args.series is not None:
        changes["series"] = args.series
    if args.fault:
        changes["plant_faults"] = (*scenario.plant_faults, *args.fault)
    if args.can_log is not None:
        if (changes.get("hal") or scenario.hal) == "mock":
            raise CliError("--can-log needs --hal can:<family>")
        can_log_output(args.can_log)
    scenario = replace(scenario, **changes).checked() if changes else scenario
    return one_way(scenario)


def one_way(scenario: Scenario) -> Scenario:
    """A one-way module family cannot feed back: a BPT service plays as its one-way twin, and the user is told."""
    from evse_emulator.hal.can.family import family

    driver, _, name = scenario.hal.partition(":")
    if driver != "can" or family(name).rating.bidirectional or not scenario.service.endswith("-bpt"):
        return scenario
    service = scenario.service.removesuffix("-bpt")
    print(f"mcs-v2g: note: {name} modules cannot feed back: the session runs as {service}", file=sys.stderr)
    return replace(scenario, service=service)


def authorization(s: dict) -> str:
    if s["auth"] != "pnc":
        return s["auth"] or "none"
    installed = ", contract installed in the session" if s["contract_installed"] else ""
    return f"Plug & Charge, eMAID {s['emaid']}{installed}"


def report(s: dict, plot: Path | None) -> str:
    messages = ", ".join(f"{name} {n}" for name, n in s["messages"].items() if name.endswith("Req"))
    lines = [
        f"result            {s['result']}   (charger: {s['charger_close']})",
        *(f"  because         {why}" for why in s["reasons"] if s["result"] != "ok"),
        f"session           {s['session_id']}  {s['service']} {s['control_mode']}  {'TLS 1.3' if s['tls'] else 'TCP'}",
        f"authorization     {authorization(s)}",
        f"energy            {s['energy_charged_kwh']:.1f} kWh charged, {s['energy_discharged_kwh']:.1f} kWh discharged",
        f"peak power        {s['peak_charge_kw']:.0f} kW charging, {s['peak_discharge_kw']:.0f} kW discharging,"
        f" max {s['max_current_a']:.0f} A",
        f"SoC               {s['initial_soc']:.1f} % -> {s['final_soc']:.1f} % (target {s['target_soc']:.0f} %,"
        f" at departure {s['soc_at_departure']:.1f} %: {'met' if s['departure_met'] else 'NOT met'})",
        f"messages          {messages}",
        f"time              {s['simulated_s'] / 3600:.2f} h simulated in {s['wall_s']:.1f} s",
    ]
    if s["faults"]:
        lines.append(f"faults            {'; '.join(s['faults'])}")
    if plot:
        lines.append(f"plot              {plot}")
    return "\n".join(lines)
