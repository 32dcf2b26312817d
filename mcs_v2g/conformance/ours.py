"""Our own devices as the device under test, in this process over in-memory links: the good ones (our SeccServer
and EVCC, as shipped) and, for the proof that a case can fail, our peer broken by the case's breaker script.

`mcs-v2g test secc --self` runs the catalogue against our own charger this way; the test suite runs every case
against both, on a virtual clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
from collections.abc import Callable
from ipaddress import IPv6Address
from typing import Any

import stack.transport.sdp as sdp_io
from ev_emulator.pnc import load_truck_contract, truck_pnc
from evse_emulator.pnc import charger_pnc
from stack.clock import Clock
from stack.sdp import Endpoint, Offers, Security
from stack.security.pki import PkiPaths
from stack.security.tls import client_context, server_context
from stack.session.evcc import EvccConfig
from stack.session.pnc import EvPnc
from stack.session.reference import MinimalEv, MinimalEvse
from stack.session.secc import SeccConfig
from stack.transport.drive import SessionMachine
from stack.transport.evcc_client import run_evcc_on
from stack.transport.memory import start_tls
from stack.transport.secc_server import SeccServer

from .bench import Address, DeviceSide, SdpDevice, udp_socket
from .case import Breaker
from .catalogue.common import tester_ev, tester_evse
from .driver import Conversation, play
from .stream import HandshakeFailed, RecordedStream, Tape
from .trace import Trace


def our_secc(
    clock: Clock,
    pki: PkiPaths | None,
    tls: bool,
    *,
    plug_and_charge: bool = False,
    install: bool = True,
    **settings: Any,
) -> DeviceSide:
    """Our SECC as shipped (SeccServer with the reference charger) serving each connection; with
    `plug_and_charge` it also offers PnC with the test PKI's MO root, and with `install` CertificateInstallation
    by the test PKI's CPS."""
    if plug_and_charge and pki is not None:
        settings.setdefault("pnc", charger_pnc(pki, clock, install=install)[0])
    server = SeccServer(MinimalEvse, SeccConfig(**settings), clock=clock)
    context = server_context(pki) if tls and pki is not None else None

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> object:
        if context is not None:
            await start_tls(writer, context, server_side=True)
        return await server.serve(reader, writer)

    return serve


def our_evcc(
    clock: Clock,
    pki: PkiPaths | None,
    tls: bool,
    *,
    plug_and_charge: bool = False,
    install: bool = False,
    **ev: Any,
) -> DeviceSide:
    """Our EVCC as shipped (the reference truck) on each connection; with `plug_and_charge` it signs with the test
    PKI's contract when offered PnC (EIM otherwise) and, with `install`, gets a new contract when offered."""
    context = client_context(pki) if tls and pki is not None else None
    config = EvccConfig(pnc=our_truck_pnc(pki, install)) if plug_and_charge and pki is not None else EvccConfig()

    async def drive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> object:
        if context is not None:
            await start_tls(writer, context, server_side=False)
        return await run_evcc_on(reader, writer, MinimalEv(**ev), config, clock=clock)

    return drive


def our_truck_pnc(pki: PkiPaths, install: bool = False) -> EvPnc:
    """Our truck's PnC settings from the test PKI: its contract and OEM provisioning chain, EIM when not offered."""
    return truck_pnc(pki, contract=load_truck_contract(pki.directory), install=install, eim_fallback=True)


# Breaker.settings keys that are not machine settings: how our broken peer's transport is broken
TLS_CONTEXT = "tls_context"  # Callable[[PkiPaths], ssl.SSLContext]: its TLS context instead of ours
CHANNEL = "channel"  # Callable[[], V2gChannel]: its channel, e.g. one that ignores the V2GTP header
SDP_SIDE = "sdp_side"  # its SDP side (see `broken_sdp`)
# its Plug & Charge, from the test PKI as our good device's: {"install": bool}, for a charger also
# {"challenge": Callable[[], bytes]} (its GenChallenge source)
PNC = "pnc_setup"  # catalogue.pnc_kit.PNC_SETUP
# Callable[[SessionMachine, PkiPaths], SessionMachine]: its machine wrapped, e.g. to skip a check
WRAP = "wrap"  # catalogue.pnc_kit.WRAP
PEER_KEYS = (TLS_CONTEXT, CHANNEL, SDP_SIDE, PNC, WRAP)
LOOPBACK = "lo"
LOCAL = IPv6Address("::1")
TLS_PORT, TCP_PORT = 50001, 50002  # what our charger's SDP answers name (its TCP side is the in-memory link)
Closers = list[Callable[[], object]]


def machine_settings(breaker: Breaker) -> dict[str, Any]:
    """The breaker's settings of our peer's machine (without those of its transport)."""
    return {key: value for key, value in breaker.settings.items() if key not in PEER_KEYS}


def broken(role: str, breaker: Breaker, clock: Clock, pki: PkiPaths | None, tls: bool) -> DeviceSide:
    """Our peer of `role` ("secc" or "evcc") played by the driver with the breaker's script (and, when its settings
    say so, a TLS context or a channel of its own: `TLS_CONTEXT`, `CHANNEL`)."""
    make_context: Callable[[PkiPaths], ssl.SSLContext] | None = breaker.settings.get(TLS_CONTEXT)  # type: ignore[assignment]

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> object:
        stream = RecordedStream(reader, writer, clock, Tape(), we_are_ev=role == "evcc")
        if tls and pki is not None:
            context: ssl.SSLContext
            if make_context is not None:
                context = make_context(pki)
            else:
                context = server_context(pki) if role == "secc" else client_context(pki)
            try:
                await stream.start_tls(context, clock.now() + 10.0)
            except (HandshakeFailed, TimeoutError):
                stream.abort()
                return None
        settings = {**machine_settings(breaker), **_pnc_settings(role, breaker, clock, pki)}
        machine: SessionMachine = tester_evse(**settings) if role == "secc" else tester_ev(**settings)
        wrap = breaker.settings.get(WRAP)
        if callable(wrap) and pki is not None:
            machine = wrap(machine, pki)
        conversation = Conversation(stream, clock, Trace())
        make_channel = breaker.settings.get(CHANNEL)
        if callable(make_channel):
            conversation.channel = make_channel()
        await play(machine, conversation, breaker.script())
        return None

    return run


def _pnc_settings(role: str, breaker: Breaker, clock: Clock, pki: PkiPaths | None) -> dict[str, Any]:
    """The machine settings of our broken peer's PnC (`PNC` in the breaker's settings), from the test PKI."""
    options = breaker.settings.get(PNC)
    if not isinstance(options, dict) or pki is None:
        return {}
    install = bool(options.get("install", role == "secc"))
    if role == "evcc":
        return {"pnc": our_truck_pnc(pki, install)}
    pnc = charger_pnc(pki, clock, install=install)[0]
    if callable(options.get("challenge")):
        pnc = dataclasses.replace(pnc, new_challenge=options["challenge"])
    return {"pnc": pnc}


def our_sdp(role: str, tls: bool, closers: Closers) -> SdpDevice:
    """Our device's SDP side over real UDP on the loopback interface: the charger's SdpServer on lo (a free port),
    or the truck's `discover` sending to the tester's address (unicast to ::1: multicast does not leave lo)."""

    async def charger(_: Address | None) -> Address | None:
        tls_at = Endpoint(LOCAL, TLS_PORT) if tls else None
        server = sdp_io.SdpServer(LOOPBACK, Offers(tls=tls_at, tcp=Endpoint(LOCAL, TCP_PORT)), port=0)
        await server.start()
        closers.append(server.close)
        return (str(LOCAL), server.port, 0, 0)

    async def truck(tester: Address | None) -> Address | None:
        assert tester is not None
        with contextlib.suppress(sdp_io.SdpTimeout):
            security = Security.TLS if tls else Security.NO_TLS
            await sdp_io.discover(LOOPBACK, security, port=int(tester[1]), group=LOCAL)
        return None

    return charger if role == "secc" else truck


def broken_sdp(role: str, side: object, closers: Closers) -> SdpDevice | None:
    """Our broken peer's SDP side from the breaker: for a charger, `side()` gives the answer to each datagram
    (None: silence), served on ::1; for a truck, `side(address)` sends its requests there."""
    if side is None:
        return None
    if role == "evcc":

        async def truck(tester: Address | None) -> Address | None:
            assert tester is not None and callable(side)
            await side(tester)
            return None

        return truck

    async def charger(_: Address | None) -> Address | None:
        assert callable(side)
        answer = side()
        transport, queue = await udp_socket((str(LOCAL), 0, 0, 0))
        closers.append(transport.close)

        async def serve() -> None:
            while True:
                data, source = await queue.get()
                reply = answer(data)
                if reply is not None:
                    transport.sendto(reply, source)

        task = asyncio.ensure_future(serve())
        closers.append(task.cancel)
        return tuple(transport.get_extra_info("sockname"))

    return charger
