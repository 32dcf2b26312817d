"""`mcs-v2g evse`: the emulated charger (`Charger`: HAL, plant controller, energy policy) serving sessions until
stopped, on TCP/TLS and optionally SDP. One line (or one JSON object) per finished session on stdout."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

from evse_emulator import Charger, load_charger_config
from stack.clock import RealClock
from stack.session.actions import Close
from stack.session.secc import SeccSession

from .common import DEFAULT_PORT, add_logging_options, add_tls_options, parse_address, tls_context


async def serve(args: argparse.Namespace) -> int:
    config = load_charger_config(args.config, hal=args.hal)
    clock = RealClock()
    charger = Charger.build(config, clock)

    def ended(session: SeccSession, close: Close) -> None:
        summary = charger.summary(session, close)
        if args.json:
            print(json.dumps(summary), flush=True)
            return
        loss = summary.get("cable_loss_kwh")
        cable = "" if loss is None else f", cable loss {loss:.3f} kWh"
        print(
            f"session {summary['session_id']} {summary['result']}: {close.reason}; meter "
            f"+{summary['meter_imported_kwh']:.3f} kWh -{summary['meter_exported_kwh']:.3f} kWh{cable}",
            flush=True,
        )

    if args.trace is not None:  # the server writes a file per session into it, and crashes if it is missing
        args.trace.mkdir(parents=True, exist_ok=True)
    server = charger.server(ssl_context=tls_context(args, server=True), trace_dir=args.trace, ended=ended)
    host, port = args.listen or ("::", DEFAULT_PORT)
    await server.start(host, port)
    plant = asyncio.ensure_future(charger.run_plant())
    sdp = None
    try:
        if args.interface:
            from stack.sdp import Endpoint, Offers
            from stack.transport.sdp import SdpServer, wait_link_local

            endpoint = Endpoint(await wait_link_local(args.interface), port)
            sdp = SdpServer(args.interface, Offers(tls=endpoint) if args.tls else Offers(tcp=endpoint))
            await sdp.__aenter__()
        await asyncio.Event().wait()
    finally:
        if sdp is not None:
            await sdp.__aexit__(None, None, None)
        plant.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await plant
        await server.close()
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("evse", help="run the emulated charger (SECC) until stopped")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--interface", help="answer SDP on this interface (IPv6 link-local)")
    where.add_argument("--listen", type=lambda t: parse_address(t, "::"), help="[ADDR]:PORT, no SDP")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=argparse.SUPPRESS)
    p.add_argument("--config", type=Path, help="charger TOML: ratings, services, session, [hal], [policy]")
    p.add_argument("--hal", help="HAL driver: mock (default, a physical model) or can:<family>")
    p.add_argument("--json", action="store_true", help="one JSON object per finished session on stdout")
    add_tls_options(p)
    p.add_argument("--trace", type=Path, help="folder for the decoded XML of every message (a file per session)")
    add_logging_options(p)
    p.set_defaults(func=lambda a: asyncio.run(serve(a)), logs=True)
