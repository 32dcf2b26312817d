"""`mcs-v2g evse` and `mcs-v2g ev`: the stack's SECC and EVCC on real sockets, with the default controllers."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from stack.session.controller import PowerLimits
from stack.session.defaults import MCS_CHARGER, SimpleEvController, SimpleEvseController
from stack.session.evcc import EvccConfig
from stack.session.secc import SeccConfig
from stack.session.services import SERVICE_NAMES, ControlMode, dc_offer
from stack.session.timers import EvccTimers

CONTROL_NAMES = {"scheduled": ControlMode.SCHEDULED, "dynamic": ControlMode.DYNAMIC}
DEFAULT_PORT = 50000


class ConfigError(Exception):
    """The TOML configuration is unreadable or has a bad value."""


def parse_address(text: str, default_host: str) -> tuple[str, int]:
    """`[::1]:50000`, `127.0.0.1:50000`, `:50000` or `50000`."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or default_host
    try:
        return host, int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an [ADDR]:PORT: {text!r}") from None


def secc_config_from_toml(path: Path | None) -> tuple[SeccConfig, PowerLimits, str]:
    """SECC settings, charger ratings and EVSE ID from a TOML file (all optional; defaults: MCS, 4 services)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
    ratings = data.get("ratings", {})
    try:
        limits = replace(
            MCS_CHARGER,
            max_voltage=float(ratings.get("max_voltage", MCS_CHARGER.max_voltage)),
            max_charge_current=float(ratings.get("max_current", MCS_CHARGER.max_charge_current)),
            max_charge_power=float(ratings.get("max_power", MCS_CHARGER.max_charge_power)),
        )
        if ratings.get("bidirectional", True):
            limits = replace(
                limits, max_discharge_current=limits.max_charge_current, max_discharge_power=limits.max_charge_power
            )
        else:
            limits = replace(limits, max_discharge_power=None, min_discharge_power=None, max_discharge_current=None)
        services = data.get("services", {})
        modes = tuple(CONTROL_NAMES[m] for m in services.get("control_modes", ["scheduled", "dynamic"]))
        offers = tuple(dc_offer(SERVICE_NAMES[s], modes) for s in services.get("offer", list(SERVICE_NAMES)))
        session = data.get("session", {})
        config = SeccConfig(
            offers=offers,
            service_renegotiation=bool(session.get("service_renegotiation", True)),
            pause_allowed=bool(session.get("pause_allowed", True)),
            standby_allowed=bool(session.get("standby_allowed", False)),
            negative_discharge=bool(session.get("negative_discharge", False)),
            send_discharged_energy=bool(session.get("send_discharged_energy", True)),
        )
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path}: bad value ({type(exc).__name__}: {exc})") from None
    return config, limits, str(data.get("evse_id", "DE*MCS*E0001"))


def setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose >= 0 else logging.WARNING
    logging.basicConfig(
        level=level, format="%(asctime)s.%(msecs)03d %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )


def tls_contexts(args: argparse.Namespace, server: bool):
    """TLS 1.3 contexts with the generated test PKI (created on first use), or None for plain TCP."""
    if not args.tls:
        return None
    from stack.security.pki import ensure_pki
    from stack.security.tls import client_context, server_context

    pki = ensure_pki(args.pki, args.pki_profile)
    make = server_context if server else client_context
    return make(pki, keylog_file=args.keylog, allow_tls12=args.tls12)


async def serve_evse(args: argparse.Namespace) -> int:
    from stack.transport.secc_server import SeccServer

    config, ratings, evse_id = secc_config_from_toml(args.config)
    ssl_context = tls_contexts(args, server=True)
    server = SeccServer(
        lambda: SimpleEvseController(ratings=ratings, evse_identifier=evse_id),
        config,
        ssl_context=ssl_context,
        trace_dir=args.trace,
    )
    host, port = args.listen or ("::", DEFAULT_PORT)
    await server.start(host, port)
    sdp = None
    if args.interface:
        from stack.sdp import Endpoint, Offers
        from stack.transport.sdp import SdpServer, wait_link_local

        endpoint = Endpoint(await wait_link_local(args.interface), port)
        sdp = SdpServer(args.interface, Offers(tls=endpoint) if args.tls else Offers(tcp=endpoint))
        await sdp.__aenter__()
    try:
        await asyncio.Event().wait()
    finally:
        if sdp is not None:
            await sdp.__aexit__(None, None, None)
        await server.close()
    return 0


async def run_ev(args: argparse.Namespace) -> int:
    from stack.transport.evcc_client import run_evcc

    host, port = args.connect or (None, None)
    if args.interface:
        from stack.sdp import Security
        from stack.transport.sdp import discover

        answer = await discover(args.interface, Security.TLS if args.tls else Security.NO_TLS)
        host, port = f"{answer.address}%{args.interface}", answer.port  # link-local: the scope is our interface
        args.tls = answer.security == Security.TLS
    controller = SimpleEvController(
        service=SERVICE_NAMES[args.service], control_mode=CONTROL_NAMES[args.control], charge_loops=args.charge_loops
    )
    timers = EvccTimers(charge_loop_interval=args.loop_interval, loop_interval=min(0.1, args.loop_interval))
    ssl_context = tls_contexts(args, server=False)
    close, session = await run_evcc(
        host, port, controller, EvccConfig(timers=timers), ssl_context=ssl_context, trace=args.trace
    )
    verdict = "ok" if close.ok else "FAILED"
    print(f"session {session.session_id.hex().upper()} {verdict}: {close.reason}; {session.charge_loops} charge loops")
    return 0 if close.ok else 1


def add_parsers(sub: Any) -> None:
    evse = sub.add_parser("evse", help="run an SECC (charger) that serves sessions until stopped")
    where = evse.add_mutually_exclusive_group(required=True)
    where.add_argument("--interface", help="answer SDP on this interface (IPv6 link-local)")
    where.add_argument("--listen", type=lambda t: parse_address(t, "::"), help="[ADDR]:PORT, no SDP")
    evse.add_argument("--port", type=int, default=DEFAULT_PORT, help=argparse.SUPPRESS)
    _common(evse)
    evse.add_argument("--config", type=Path, help="TOML file: ratings, offered services, control modes")
    evse.set_defaults(func=lambda a: asyncio.run(serve_evse(a)))

    ev = sub.add_parser("ev", help="run an EVCC (truck) for one session; exit 0 on a clean SessionStop")
    where = ev.add_mutually_exclusive_group(required=True)
    where.add_argument("--interface", help="find the SECC with SDP on this interface")
    where.add_argument("--connect", type=lambda t: parse_address(t, "::1"), help="ADDR:PORT, no SDP")
    ev.add_argument("--service", choices=list(SERVICE_NAMES), default="mcs-bpt")
    ev.add_argument("--control", choices=list(CONTROL_NAMES), default="dynamic")
    ev.add_argument("--charge-loops", type=int, default=10)
    ev.add_argument("--loop-interval", type=float, default=0.25, help="seconds between DC_ChargeLoopReq")
    _common(ev)
    ev.set_defaults(func=lambda a: asyncio.run(run_ev(a)))


def _common(p: argparse.ArgumentParser) -> None:
    tls = p.add_mutually_exclusive_group()
    tls.add_argument("--tls", dest="tls", action="store_true", default=True, help="TLS 1.3 (default)")
    tls.add_argument("--no-tls", dest="tls", action="store_false", help="plain TCP (test benches)")
    p.add_argument("--tls12", action="store_true", help="also accept TLS 1.2 (compatibility; -20 forbids it)")
    p.add_argument("--pki", type=Path, help="test PKI folder (default certs/generated/<profile>, made on first use)")
    p.add_argument("--pki-profile", choices=("secp521r1", "secp256r1"), default="secp521r1")
    p.add_argument("--keylog", type=Path, help="write TLS secrets in SSLKEYLOGFILE format (testing only)")
    p.add_argument("--trace", type=Path, help="write the decoded XML of every message (file for ev, folder for evse)")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("-q", "--quiet", action="store_const", const=-1, dest="verbose")


def run(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    if args.trace is not None and args.command == "evse":
        args.trace.mkdir(parents=True, exist_ok=True)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
