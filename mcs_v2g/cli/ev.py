"""`mcs-v2g ev`: the emulated truck (`Truck`: battery/BMS, charging needs, EVCC controller) for one session,
found by SDP or at an address. Exit status 0 when the session ended cleanly (SessionStop answered)."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from ev_emulator import Truck, load_truck_config
from stack.clock import RealClock
from stack.session.services import SERVICE_NAMES

from .common import add_logging_options, add_tls_options, parse_address, tls_context


async def charge(args: argparse.Namespace) -> int:
    config = load_truck_config(
        args.config,
        service=args.service,
        control=args.control,
        initial_soc=args.soc,
        target_soc=args.target_soc,
        min_soc=args.min_soc,
        v2g_reserve_soc=args.reserve,
        departure_s=args.departure,
        charge_loops=args.charge_loops,
        loop_interval=args.loop_interval,
        leave_at_target=args.leave_at_target or None,
        offers_v2g=False if args.no_v2g else None,
    )
    clock = RealClock()
    host, port = args.connect or (None, None)
    if args.interface:
        from stack.sdp import Security
        from stack.transport.sdp import discover

        answer = await discover(args.interface, Security.TLS if args.tls else Security.NO_TLS)
        host, port = f"{answer.address}%{args.interface}", answer.port  # link-local: the scope is our interface
        args.tls = answer.security == Security.TLS
    truck = Truck.build(config, clock)
    close, session = await truck.charge_at(
        host, port, clock, ssl_context=tls_context(args, server=False), trace=args.trace
    )
    summary = {
        "result": "ok" if close.ok else "FAILED",
        "reason": close.reason,
        "session_id": session.session_id.hex().upper(),
        "service": None if session.service is None else session.service.name,
        **truck.summary(),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"session {summary['session_id']} {summary['result']}: {close.reason}; {session.charge_loops} charge loops;"
            f" battery +{summary['battery_in_kwh']:.3f} kWh -{summary['battery_out_kwh']:.3f} kWh;"
            f" SoC {summary['initial_soc']:.1f} % -> {summary['final_soc']:.1f} %"
        )
    return 0 if close.ok else 1


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a fraction in [0, 1] is needed, got {value}")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"a positive number of seconds is needed, got {text}")
    return value


def add_parser(sub: Any) -> None:
    p = sub.add_parser("ev", help="run the emulated truck (EVCC) for one session; exit 0 on a clean SessionStop")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--interface", help="find the SECC with SDP on this interface")
    where.add_argument("--connect", type=lambda t: parse_address(t, "::1"), help="ADDR:PORT, no SDP")
    p.add_argument("--config", type=Path, help="truck TOML (see ev_emulator/config.py); flags override it")
    p.add_argument("--service", choices=list(SERVICE_NAMES), help="energy service (default mcs-bpt)")
    p.add_argument("--control", choices=("dynamic", "scheduled"), help="control mode (default dynamic)")
    p.add_argument("--soc", type=fraction, help="state of charge at plug-in, 0..1 (default 0.30)")
    p.add_argument("--target-soc", type=fraction, help="target state of charge at departure (default 0.80)")
    p.add_argument("--min-soc", type=fraction, help="minimum state of charge, reached first (default 0.20)")
    p.add_argument("--reserve", type=fraction, help="V2G reserve: never discharge below it (default 0.40)")
    p.add_argument("--departure", type=seconds, help="seconds after plug-in when the truck leaves (default 3600)")
    p.add_argument("--no-v2g", action="store_true", help="the truck offers no discharge")
    p.add_argument("--leave-at-target", action="store_true", help="stop charging once the target SoC is reached")
    p.add_argument("--charge-loops", type=int, help="stop after this many DC_ChargeLoopReq (a bench limit)")
    p.add_argument("--loop-interval", type=seconds, help="seconds between DC_ChargeLoopReq (default 0.25)")
    p.add_argument("--json", action="store_true", help="print the session summary as one JSON object")
    add_tls_options(p)
    p.add_argument("--trace", type=Path, help="write the decoded XML of every message to this file")
    add_logging_options(p)
    p.set_defaults(func=lambda a: asyncio.run(charge(a)), logs=True)
