"""`mcs-v2g ev`: the emulated truck (`Truck`: battery/BMS, charging needs, EVCC controller) for one session,
found by SDP or at an address. The result says whether the session did what the truck came for (`ok` only when
it ended cleanly, nothing tripped and its goal was met: the charge loops of `--charge-loops`, else the target SoC
by departure) and sets the exit status (`mcs_v2g.verdict`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ev_emulator import Truck, load_truck_config
from ev_emulator.needs import DepartureFeasibility, assess_departure
from ev_emulator.pnc import ContractSetupError, load_truck_contract, truck_pnc
from stack.clock import RealClock
from stack.messages import iso20_common as cm
from stack.session.actions import Close, Event, Violation
from stack.session.evcc import EvccSession
from stack.session.pnc import authorization_summary
from stack.session.services import SERVICE_NAMES
from stack.transport.drive import Observers

from ..verdict import Ending, LoopGoal, SocGoal, Verdict, judge, truck_faults
from .common import (
    CliError,
    add_logging_options,
    add_tls_options,
    ensure_test_pki,
    number_in,
    parse_address,
    tls_context,
)
from .outputs import writable_file


async def charge(args: argparse.Namespace) -> int:
    for option in ("trace", "keylog"):
        if getattr(args, option) is not None:
            writable_file(getattr(args, option), f"--{option}")
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
    ssl_context = tls_context(args, server=False)
    truck = Truck.build(config, clock)
    plug_and_charge(args, truck)
    goal = None
    if config.charge_loops is None:  # the truck's own limits: the charger's are only known once it answers
        goal = assess_departure(truck.battery, truck.needs, clock.now())
        if goal is not None and not goal.feasible:
            print(f"mcs-v2g: goal: {goal.describe()}", file=sys.stderr, flush=True)
    stops: list[str] = []  # why the truck ended the session itself (SessionStop after a refusal)

    def note_stop(event: Event | Violation) -> None:
        if isinstance(event, Event) and event.kind == "stopping":
            stops.append(str(event.detail.get("why", "")))

    observers = Observers(event=note_stop)
    close, session = await find_and_charge(args, truck, clock, ssl_context, observers)
    if stops:
        close = replace(close, reason=f"{close.reason}: {stops[0]}")
    if args.auth == "pnc" and session is not None and session.state.authorization is not cm.Authorization.PnC:
        close = Close(f"Plug & Charge did not happen: {stops[0] if stops else close.reason}")
    verdict = truck_verdict(truck, close, goal)
    contract = None if session is None else session.ctx.contract
    summary = {
        "result": verdict.result,
        "reason": close.reason,
        "session_id": None if session is None else session.session_id.hex().upper(),
        "service": None if session is None or session.service is None else session.service.name,
        **authorization_summary(
            None if session is None else session.state.authorization,
            contract.emaid if contract is not None and session is not None and session.state.authorization else None,
            None if session is None else session.ctx.contract_installed,
        ),
        **truck.summary(),
        **verdict.json(),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        why = verdict.because(close.reason)
        print(
            f"session {summary['session_id'] or '-'} {summary['result']}: {close.reason};"
            f" {truck.controller.charge_loops} charge loops;"
            f" battery +{summary['battery_in_kwh']:.3f} kWh -{summary['battery_out_kwh']:.3f} kWh;"
            f" SoC {summary['initial_soc']:.1f} % -> {summary['final_soc']:.1f} %{why}"
        )
    return verdict.exit_status


def plug_and_charge(args: argparse.Namespace, truck: Truck) -> None:
    """With `--auth pnc`: the contract of `--contract` (or none: installed first), the PKI's OEM provisioning."""
    if args.auth != "pnc":
        if args.contract is not None or args.install_contract:
            raise CliError("--contract and --install-contract are Plug & Charge settings: add --auth pnc")
        return
    if not args.tls:
        raise CliError("--auth pnc needs TLS (PnC over plain TCP is refused, PROTOCOL.md 4.4): drop --no-tls")
    paths = ensure_test_pki(args.pki, args.pki_profile)
    try:
        contract = None if args.contract is None else load_truck_contract(args.contract)
    except ContractSetupError as exc:
        raise CliError(str(exc)) from None
    pnc = truck_pnc(paths, contract=contract, install=args.install_contract, keep_in=args.contract)
    # a PnC truck asks for MeterInfo: the readings it may be asked to sign (MeteringConfirmation)
    truck.evcc_config = replace(truck.evcc_config, pnc=pnc, request_meter_info=True)


async def find_and_charge(
    args: argparse.Namespace,
    truck: Truck,
    clock: RealClock,
    ssl_context: ssl.SSLContext | None,
    observers: Observers | None = None,
) -> tuple[Close, EvccSession | None]:
    """Find the charger (SDP, or the address given) and run one session; no session when none can be reached."""
    if args.connect:
        host, port = args.connect
    else:
        from stack.sdp import Security
        from stack.transport.sdp import SdpTimeout, discover

        try:
            answer = await discover(args.interface, Security.TLS if args.tls else Security.NO_TLS)
        except SdpTimeout as exc:
            return Close(f"no session: {exc}"), None
        host, port = f"{answer.address}%{args.interface}", answer.port  # link-local: the scope is our interface
        if (answer.security == Security.TLS) != args.tls:
            args.tls = answer.security == Security.TLS
            ssl_context = tls_context(args, server=False)
    try:
        accept = staple_required if args.require_ocsp_staple else None
        return await truck.charge_at(
            host, port, clock, ssl_context=ssl_context, trace=args.trace, observers=observers, accept_peer=accept
        )
    except (OSError, TimeoutError) as exc:  # refused, reset, TLS handshake failed, connect timeout
        return Close(f"no session: {type(exc).__name__}: {exc}"), None


def staple_required(writer: asyncio.StreamWriter) -> str | None:
    """`--require-ocsp-staple`: the SECC stapled an OCSP response that says GOOD for its leaf, now; else why not."""
    import datetime as dt

    from stack.security.ocsp import OcspError, OcspStatus
    from stack.security.ocsp_staple import stapled_status

    connection = writer.get_extra_info("ssl_object")
    if connection is None:
        return "no TLS: no OCSP staple"
    try:
        status = stapled_status(connection, dt.datetime.now(dt.UTC))
    except OcspError as exc:
        return f"the SECC's OCSP staple cannot be relied on: {exc}"
    if status is not OcspStatus.GOOD:
        return "the SECC stapled no OCSP response" if status is None else f"the SECC's OCSP staple says {status.name}"
    return None


def truck_verdict(truck: Truck, close: Close, departure: DepartureFeasibility | None) -> Verdict:
    """The truck's goal: the charge loops of a bench limit when one is set, else its target SoC by departure
    (`departure`: judged at plug-in against the truck's own limits); its BMS must not have tripped."""
    loops = (
        None
        if truck.config.charge_loops is None
        else LoopGoal(truck.config.charge_loops, truck.controller.charge_loops)
    )
    soc = None if departure is None or loops is not None else SocGoal(departure, truck.battery.soc)
    return judge(Ending(close.ok or close.paused, close.reason), truck_faults(truck.battery), soc=soc, loops=loops)


fraction = number_in(0.0, 1.0)
seconds = number_in(0.001, 7 * 86_400.0, " s")  # a loop interval of a millisecond to a stay of a week


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "ev", help="run the emulated truck (EVCC) for one session; exit 0 when it met its goal (see the verdict table)"
    )
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
    pnc = p.add_argument_group("authorization (Plug & Charge needs TLS)")
    pnc.add_argument(
        "--auth", type=str.lower, choices=("eim", "pnc"), default="eim", help="how the truck authorizes (default eim)"
    )
    pnc.add_argument(
        "--contract",
        type=Path,
        help="folder of the contract (contract_chain.pem, contract_leaf.key); an installed contract is saved there."
        " Without one (or an empty folder) the truck asks for a contract by CertificateInstallation first",
    )
    pnc.add_argument("--install-contract", action="store_true", help="ask for a new contract even when it has one")
    p.add_argument(
        "--require-ocsp-staple",
        action="store_true",
        help="start no session unless the SECC staples an OCSP response that says GOOD for its TLS leaf",
    )
    p.add_argument("--trace", type=Path, help="write the decoded XML of every message to this file")
    add_logging_options(p)
    p.set_defaults(func=lambda a: asyncio.run(charge(a)), logs=True)
