"""`mcs-v2g evse`: the emulated charger (`Charger`: HAL, plant controller, energy policy) serving sessions until
stopped (or `--sessions N` of them), on TCP/TLS and optionally SDP. One line (or one JSON object) per finished
session on stdout, with its verdict (`mcs_v2g.verdict`: `ok`, `aborted`, `fault:<kind>`); after `--sessions N`
the exit status is the most severe session's."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from evse_emulator import Charger, load_charger_config
from evse_emulator.pnc import PncSetupError, RevocationFeed, charger_pnc, run_feed
from stack.clock import RealClock
from stack.messages import iso20_common as cm
from stack.session.actions import Close
from stack.session.secc import SeccSession

from ..verdict import Ending, Fault, Verdict, judge, worst
from .common import (
    DEFAULT_PORT,
    CliError,
    add_logging_options,
    add_tls_options,
    ensure_test_pki,
    parse_address,
    tls_context,
)
from .outputs import can_log_output, writable_file, writable_folder


async def serve(args: argparse.Namespace) -> int:
    if args.keylog is not None:
        writable_file(args.keylog, "--keylog")
    if args.trace is not None:  # the server writes a file per session into it
        writable_folder(args.trace, "--trace")
    config = load_charger_config(args.config, hal=args.hal)
    if config.hal.startswith("can:") and args.can is None and "bus" not in config.hal_settings:
        raise CliError(f"{config.hal} needs its bus: --can INTERFACE:CHANNEL (e.g. socketcan:can0) or [hal] bus")
    if args.can is not None or args.can_log is not None:
        if not config.hal.startswith("can:"):
            raise CliError("--can and --can-log need a can:<family> HAL (--hal can:<family> or [hal] driver)")
        settings = dict(config.hal_settings)
        if args.can is not None:
            settings["bus"] = args.can
        if args.can_log is not None:
            settings["can_log"] = can_log_output(args.can_log)
        config = replace(config, hal_settings=settings)
    clock = RealClock()
    charger = Charger.build(config, clock)
    feed = plug_and_charge(args, charger, clock)
    verdicts: list[Verdict] = []
    served_all = asyncio.Event()

    def ended(session: SeccSession, close: Close) -> None:
        verdict = session_verdict(charger, close)
        verdicts.append(verdict)
        summary = {**charger.summary(session, close), **verdict.json()}
        if args.json:
            print(json.dumps(summary), flush=True)
        else:
            loss = summary.get("cable_loss_kwh")
            cable = "" if loss is None else f", cable loss {loss:.3f} kWh"
            why = verdict.because(close.reason)
            print(
                f"session {summary['session_id']} {summary['result']}: {close.reason}; meter "
                f"+{summary['meter_imported_kwh']:.3f} kWh -{summary['meter_exported_kwh']:.3f} kWh{cable}{why}",
                flush=True,
            )
        if args.sessions is not None and len(verdicts) >= args.sessions:
            served_all.set()

    server = charger.server(ssl_context=tls_context(args, server=True), trace_dir=args.trace, ended=ended)
    host, port = args.listen or ("::", DEFAULT_PORT)
    await server.start(host, port)
    plant = asyncio.ensure_future(charger.run_hardware())
    revocation = asyncio.ensure_future(run_feed(feed))
    sdp = None
    try:
        if args.interface:
            from stack.sdp import Endpoint, Offers
            from stack.transport.sdp import SdpServer, wait_link_local

            endpoint = Endpoint(await wait_link_local(args.interface), port)
            sdp = SdpServer(args.interface, Offers(tls=endpoint) if args.tls else Offers(tcp=endpoint))
            await sdp.__aenter__()
        await served_all.wait()
    finally:
        if sdp is not None:
            await sdp.__aexit__(None, None, None)
        for task in (plant, revocation):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await server.close()
    verdict = worst(verdicts)
    return 0 if verdict is None else verdict.exit_status


def plug_and_charge(args: argparse.Namespace, charger: Charger, clock: RealClock) -> RevocationFeed | None:
    """Offer the authorizations of `--auth`; with PnC, its trust and revocation settings (PnC needs TLS)."""
    wanted = auth_modes(args.auth)
    pnc, feed = None, None
    if cm.Authorization.PnC in wanted:
        if not args.tls:
            raise CliError("--auth pnc needs TLS (PnC over plain TCP is refused, PROTOCOL.md 4.4): drop --no-tls")
        paths = ensure_test_pki(args.pki, args.pki_profile)
        try:
            pnc, feed = charger_pnc(
                paths, clock, mo_roots=args.mo_roots, ocsp=args.ocsp, strict=args.ocsp_strict, install=args.install
            )
        except PncSetupError as exc:
            raise CliError(str(exc)) from None
    elif args.mo_roots is not None or args.ocsp is not None or args.ocsp_strict:
        raise CliError("--mo-roots, --ocsp and --ocsp-strict are Plug & Charge settings: add --auth eim,pnc")
    charger.secc_config = replace(charger.secc_config, authorizations=wanted, pnc=pnc)
    return feed


def auth_modes(text: str) -> tuple[cm.Authorization, ...]:
    """`eim`, `pnc` or `eim,pnc` (the order is the offer's)."""
    names = {"eim": cm.Authorization.EIM, "pnc": cm.Authorization.PnC}
    parts = [p.strip().lower() for p in text.split(",") if p.strip()]
    unknown = [p for p in parts if p not in names]
    if unknown or not parts or len(set(parts)) != len(parts):
        raise CliError(f"--auth {text!r}: a comma list of eim and pnc, each once (e.g. eim,pnc)")
    return tuple(names[p] for p in parts)


def session_verdict(charger: Charger, close: Close) -> Verdict:
    """The charger's part of a session: a clean end (or a pause for a resume) and no protection tripped."""
    faults = [Fault("charger", f.kind.value, f.detail) for f in charger.hal.faults()]
    return judge(Ending(close.ok or close.paused, close.reason), faults)


def session_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"at least 1 session, got {value}")
    return value


def add_parser(sub: Any) -> None:
    p = sub.add_parser("evse", help="run the emulated charger (SECC) until stopped")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--interface", help="answer SDP on this interface (IPv6 link-local)")
    where.add_argument("--listen", type=lambda t: parse_address(t, "::"), help="[ADDR]:PORT, no SDP")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=argparse.SUPPRESS)
    p.add_argument("--config", type=Path, help="charger TOML: ratings, services, session, [hal], [policy]")
    p.add_argument("--hal", help="HAL driver: mock (default, a physical model) or can:<family>")
    p.add_argument("--can", metavar="INTERFACE:CHANNEL", help="the CAN bus of a can:<family> HAL (e.g. socketcan:can0)")
    p.add_argument("--can-log", type=Path, help="record the CAN bus (.log candump, .asc, .blf)")
    p.add_argument("--json", action="store_true", help="one JSON object per finished session on stdout")
    p.add_argument(
        "--sessions",
        type=session_count,
        help="stop after N sessions; exit status of the worst (default: serve until stopped)",
    )
    add_tls_options(p)
    p.add_argument(
        "--ocsp-staple", type=Path, metavar="FILE", help="staple this DER OCSP response (for the SECC leaf) in TLS"
    )
    pnc = p.add_argument_group("authorization (Plug & Charge needs TLS)")
    pnc.add_argument("--auth", default="eim", help="what the charger offers: eim (default), pnc or eim,pnc")
    pnc.add_argument("--mo-roots", type=Path, help="PEM file or folder of MO roots (default: the test PKI's)")
    pnc.add_argument(
        "--ocsp",
        metavar="URL|FILE|aia",
        help="check contracts' revocation: an OCSP responder URL, a file with a DER OCSP response, or 'aia'"
        " (each contract's own responder); default: no revocation check",
    )
    pnc.add_argument(
        "--ocsp-strict",
        action="store_true",
        help="refuse a contract whose revocation status stays unknown (default: logged and accepted, a soft-fail)",
    )
    pnc.add_argument(
        "--no-install",
        dest="install",
        action="store_false",
        help="do not offer CertificateInstallation (default: the test PKI's CPS issues contracts)",
    )
    p.add_argument("--trace", type=Path, help="folder for the decoded XML of every message (a file per session)")
    add_logging_options(p)
    p.set_defaults(func=lambda a: asyncio.run(serve(a)), logs=True)
