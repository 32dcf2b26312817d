"""`python -m tools.bench exi`: µs per encode and decode of representative messages, ours and Josev's, same run."""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable

from stack import exi
from stack.exi.codec import default_schema

from .samples import BENCH_MESSAGES


def median_us(fn: Callable[[], object], *, rounds: int, per_round: int) -> float:
    """Median over `rounds` of the mean time of `per_round` back-to-back calls, in µs."""
    fn()
    times = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(per_round):
                fn()
            times.append((time.perf_counter() - start) / per_round * 1e6)
    finally:
        if gc_was_enabled:
            gc.enable()
    return statistics.median(times)


def measure_ours(rounds: int, per_round: int) -> dict[str, dict[str, float]]:
    results = {}
    for name, build in BENCH_MESSAGES.items():
        msg = build()
        schema = default_schema(msg)
        data = exi.encode(msg)
        results[name] = {
            "bytes": len(data),
            "encode_us": median_us(lambda m=msg: exi.encode(m), rounds=rounds, per_round=per_round),
            "decode_us": median_us(lambda d=data, s=schema: exi.decode(d, s), rounds=rounds, per_round=per_round),
        }
    return results


def measure_josev(calls: int, progress: Callable[[str], object]) -> dict[str, dict[str, float]] | str:
    """Josev's JSON codec (what its SECC/EVCC call per message), timed inside its own process."""
    try:
        from tools.peers.josev import JosevExi, PeerUnavailable, ensure_josev
    except ImportError as exc:  # pragma: no cover - tools/peers ships with the repo
        return f"unavailable ({exc})"
    try:
        ensure_josev(progress=progress)
        results = {}
        with JosevExi() as josev:
            for name, build in BENCH_MESSAGES.items():
                msg = build()
                schema = default_schema(msg)
                data = exi.encode(msg)
                progress(f"  Josev: {name}")
                enc = josev.bench("encode", data, schema, calls, warmup=3)
                dec = josev.bench("decode", data, schema, calls, warmup=3)
                results[name] = {
                    "encode_us": statistics.median(enc) * 1e6,
                    "decode_us": statistics.median(dec) * 1e6,
                }
        return results
    except PeerUnavailable as exc:
        return f"unavailable ({exc.reason if hasattr(exc, 'reason') else exc})"
    except Exception as exc:  # the peer is optional: report, do not crash the benchmark
        return f"failed ({type(exc).__name__}: {exc})"


def run(*, rounds: int = 15, per_round: int = 300, josev_calls: int = 20, with_josev: bool = True) -> dict:
    progress = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    progress("measuring mcs-v2g codec ...")
    ours = measure_ours(rounds, per_round)
    josev = measure_josev(josev_calls, progress) if with_josev else "skipped (--no-josev)"
    return {"python": sys.version.split()[0], "ours": ours, "josev": josev}


def report(results: dict) -> str:
    ours, josev = results["ours"], results["josev"]
    lines = [f"EXI codec, CPython {results['python']}: median µs per call"]
    head = f"{'message':38s} {'bytes':>5s} {'encode':>9s} {'decode':>9s}"
    if isinstance(josev, dict):
        head += f" {'Josev enc':>10s} {'Josev dec':>10s} {'x enc':>7s} {'x dec':>7s}"
    lines.append(head)
    for name, r in ours.items():
        line = f"{name:38s} {r['bytes']:5d} {r['encode_us']:9.1f} {r['decode_us']:9.1f}"
        if isinstance(josev, dict):
            j = josev[name]
            line += f" {j['encode_us']:10.0f} {j['decode_us']:10.0f}"
            line += f" {j['encode_us'] / r['encode_us']:7.0f} {j['decode_us'] / r['decode_us']:7.0f}"
        lines.append(line)
    loop = ours["DC_ChargeLoopReq (BPT dynamic)"]
    lines.append(f"DC_ChargeLoopReq encode+decode: {loop['encode_us'] + loop['decode_us']:.1f} µs")
    if not isinstance(josev, dict):
        lines.append(f"Josev: {josev}")
    return "\n".join(lines)
