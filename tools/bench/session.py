"""`python -m tools.bench session`: a whole -20 DC_BPT session over loopback TLS 1.3, and charge-loop round trips."""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import time

from examples.minimal_controllers import MinimalEv, MinimalEvse
from stack.security.pki import ensure_pki
from stack.security.tls import client_context, server_context
from stack.session.evcc import EvccConfig
from stack.session.services import ControlMode, ServiceId
from stack.session.timers import EvccTimers
from stack.transport.drive import Observers
from stack.transport.evcc_client import run_evcc
from stack.transport.secc_server import SeccServer

NO_WAITS = EvccConfig(timers=EvccTimers(loop_interval=0.0, charge_loop_interval=0.0))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _server():
    pki = ensure_pki()
    server = SeccServer(MinimalEvse, ssl_context=server_context(pki))
    address = await server.start("127.0.0.1", 0)
    return server, address, client_context(pki)


async def whole_sessions(runs: int) -> list[float]:
    """Wall time from connect to SessionStopRes of DC_BPT sessions with 10 charge loops, no physical waits."""
    server, address, ctx = await _server()
    times = []
    try:
        for _ in range(runs + 1):  # the first one warms up imports and caches
            ev = MinimalEv(service=ServiceId.DC_BPT, control_mode=ControlMode.DYNAMIC, charge_loops=10)
            start = time.perf_counter()
            close, _ = await run_evcc(*address, ev, NO_WAITS, ssl_context=ctx)
            times.append(time.perf_counter() - start)
            if not close.ok:
                raise RuntimeError(f"session failed: {close.reason}")
    finally:
        await server.close()
    return times[1:]


async def charge_loop_round_trips(
    sessions: int, loops: int, interval: float, ramp: float = 0.02
) -> tuple[list[float], float]:
    """Round trips of DC_ChargeLoopReq with `sessions` concurrent MCS_BPT sessions in this process.

    Sessions start `ramp` seconds apart (trucks do not all plug in within the same millisecond; 200 P-521 TLS
    handshakes at once would only measure the handshake queue) and then charge side by side.
    """
    server, address, ctx = await _server()
    rtts: list[float] = []

    def record(name: str, seconds: float) -> None:
        if name == "DC_ChargeLoopRes":
            rtts.append(seconds)

    config = EvccConfig(timers=EvccTimers(loop_interval=0.0, charge_loop_interval=interval))
    start = time.perf_counter()
    try:
        results = await asyncio.gather(
            *(
                run_evcc(
                    *address,
                    MinimalEv(charge_loops=loops),
                    config,
                    ssl_context=ctx,
                    observers=Observers(round_trip=record),
                )
                for _ in range(sessions)
            )
        )
    finally:
        await server.close()
    failed = [c.reason for c, _ in results if not c.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} sessions failed: {failed[:3]}")
    return rtts, time.perf_counter() - start


def run(*, runs: int = 20, concurrent: int = 200, loops: int = 40, interval: float = 0.25, josev: bool = True) -> dict:
    logging.getLogger("mcs_v2g").setLevel(logging.WARNING)
    progress = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    progress(f"{runs} whole DC_BPT sessions over TLS 1.3 ...")
    whole = asyncio.run(whole_sessions(runs))
    progress("charge loop, 1 session ...")
    one, _ = asyncio.run(charge_loop_round_trips(1, loops * 5, interval))
    progress(f"charge loop, {concurrent} concurrent sessions ...")
    many, wall = asyncio.run(charge_loop_round_trips(concurrent, loops, interval))
    if josev:
        progress("Josev's EVCC against Josev's SECC (network namespaces, needs root and Java) ...")
    pair = josev_pair_session() if josev else "skipped (--no-josev)"
    return {
        "josev_pair": pair,
        "python": sys.version.split()[0],
        "session_s": {"median": statistics.median(whole), "min": min(whole), "max": max(whole), "runs": runs},
        "loop_1": {"p50_ms": 1000 * percentile(one, 0.5), "p99_ms": 1000 * percentile(one, 0.99), "n": len(one)},
        "loop_many": {
            "sessions": concurrent,
            "p50_ms": 1000 * percentile(many, 0.5),
            "p99_ms": 1000 * percentile(many, 0.99),
            "n": len(many),
            "wall_s": wall,
        },
        "interval_s": interval,
    }


def report(r: dict) -> str:
    s, one, many = r["session_s"], r["loop_1"], r["loop_many"]
    return "\n".join(
        [
            f"-20 session benchmark, CPython {r['python']}, loopback TLS 1.3",
            f"whole DC_BPT session (SAP..SessionStopRes, 10 charge loops, no waits): median {1000 * s['median']:.1f} ms"
            f" (min {1000 * s['min']:.1f}, max {1000 * s['max']:.1f}, {s['runs']} runs)",
            f"DC_ChargeLoop round trip, 1 session: p50 {one['p50_ms']:.2f} ms, p99 {one['p99_ms']:.2f} ms"
            f" ({one['n']} loops)",
            f"DC_ChargeLoop round trip, {many['sessions']} sessions: p50 {many['p50_ms']:.2f} ms,"
            f" p99 {many['p99_ms']:.2f} ms ({many['n']} loops, one every {r['interval_s']} s per session)",
            _josev_line(r["josev_pair"], s["median"]),
        ]
    )


def _josev_line(pair: dict | str, ours: float) -> str:
    if not isinstance(pair, dict):
        return f"Josev pair: {pair}"
    return (
        f"Josev's EVCC + SECC, same session over TCP: {pair['session_s']:.2f} s ({pair['charge_loops']} charge loops),"
        f" ours {pair['session_s'] / ours:.0f}x faster"
    )


def josev_pair_session(control: str = "dynamic") -> dict | str:
    """Josev's EVCC against Josev's SECC (-20 DC_BPT, 10 charge loops, TCP) in two network namespaces: seconds
    from its supportedAppProtocolReq to SessionStopRes, read from its log (JVM start-up not counted)."""
    import tempfile
    from datetime import datetime
    from pathlib import Path

    from tools.netns import NetnsUnavailable, VethPair
    from tools.peers.josev import PeerUnavailable
    from tools.peers.josev_session import start_josev_evcc, start_josev_secc

    def seconds(stamp: str) -> float:
        return datetime.strptime(stamp.replace(",", "."), "%Y-%m-%d %H:%M:%S.%f").timestamp()

    try:
        with VethPair() as pair, tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "secc").mkdir()
            (Path(tmp) / "evcc").mkdir()
            with (
                start_josev_secc(pair, "a", Path(tmp) / "secc"),
                start_josev_evcc(pair, "b", Path(tmp) / "evcc", control=control) as evcc,
            ):
                stop = evcc.wait_for_message("SessionStopRes", 120, sent=False)
                sap = next((m for m in evcc.messages() if m.name == "supportedAppProtocolReq"), None)
                if stop is None or sap is None:
                    return f"failed ({evcc.tail(5)})"
                loops = sum(1 for m in evcc.messages() if m.name == "DC_ChargeLoopReq")
                return {"session_s": seconds(stop.time) - seconds(sap.time), "charge_loops": loops}
    except (NetnsUnavailable, PeerUnavailable, RuntimeError, OSError, ValueError) as exc:
        return f"unavailable ({exc})"
