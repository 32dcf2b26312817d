"""`python -m tools.bench exi`: µs per encode and decode, ours and Josev's in the same run, on every message
type of the shared vectors (the largest record of each); the charge loop; and the cost per byte of a
ScheduleExchangeRes grown from 0.5 to 14.5 KB (linear time: the µs per byte stay flat)."""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from stack import exi
from tools.vectors import VECTOR_SCHEMAS, read_records, vector_files, vectors_dir

from .samples import dc_charge_loop_req, grown_schedule_exchange_res

GROWN_ENTRIES = (36, 142, 570, 1024)  # entries per schedule tuple: about 0.5, 2, 8 and 14.5 KB
ROUND_SECONDS = 0.02  # each timing round makes as many calls as fit in this (at most `per_round`)


def vector_messages() -> dict[str, tuple[str, bytes]]:
    """ "schema/message" -> (schema id, the largest record's bytes) over the shared vectors."""
    found: dict[str, tuple[str, bytes]] = {}
    for path in vector_files():
        for rec in read_records(path):
            schema = VECTOR_SCHEMAS.get(rec["schema"])
            if schema is None:
                continue
            data = bytes.fromhex(rec["hex"])
            name = f"{schema}/{rec['message']}"
            if name not in found or len(data) > len(found[name][1]):
                found[name] = (schema, data)
    return dict(sorted(found.items()))


def median_us(fn: Callable[[], object], *, rounds: int, per_round: int) -> float:
    """Median over `rounds` of the mean time of back-to-back calls (as many as fit ROUND_SECONDS), in µs."""
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    calls = max(1, min(per_round, int(ROUND_SECONDS / max(once, 1e-7))))
    times = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times.append((time.perf_counter() - start) / calls * 1e6)
    finally:
        if gc_was_enabled:
            gc.enable()
    return statistics.median(times)


def measure(schema: str, data: bytes, rounds: int, per_round: int) -> dict[str, float]:
    msg = exi.decode(data, schema)
    return {
        "bytes": len(data),
        "decode_us": median_us(lambda: exi.decode(data, schema), rounds=rounds, per_round=per_round),
        "encode_us": median_us(lambda: exi.encode(msg, schema=schema), rounds=rounds, per_round=per_round),
    }


def measure_ours(
    messages: dict[str, tuple[str, bytes]], rounds: int, per_round: int, progress: Callable[[str], object]
) -> dict[str, dict[str, float]]:
    results = {}
    for i, (name, (schema, data)) in enumerate(messages.items(), 1):
        progress(f"  ours {i}/{len(messages)}: {name}")
        results[name] = measure(schema, data, rounds, per_round)
    return results


def measure_grown(rounds: int, progress: Callable[[str], object]) -> list[dict[str, float]]:
    out = []
    for entries in GROWN_ENTRIES:
        data = exi.encode(grown_schedule_exchange_res(entries))
        progress(f"  grown ScheduleExchangeRes: 2 x {entries} entries, {len(data)} bytes")
        out.append({"entries": entries, **measure("iso20-common", data, rounds, 1)})
    return out


def measure_josev(
    messages: dict[str, tuple[str, bytes]], calls: int, progress: Callable[[str], object]
) -> dict[str, dict[str, float | str]] | str:
    """Josev's JSON codec (what its SECC/EVCC call per message), timed inside its own process."""
    try:
        from tools.peers.josev import JosevExi, PeerUnavailable, ensure_josev
    except ImportError as exc:  # pragma: no cover - tools/peers ships with the repo
        return f"unavailable ({exc})"
    try:
        ensure_josev(progress=progress)
        results: dict[str, dict[str, float | str]] = {}
        with JosevExi() as josev:
            for i, (name, (schema, data)) in enumerate(messages.items(), 1):
                progress(f"  Josev {i}/{len(messages)}: {name}")
                try:
                    dec = josev.bench("decode", data, schema, calls, warmup=2)
                    enc = josev.bench("encode", data, schema, calls, warmup=2)
                except Exception as exc:  # one message Josev cannot handle does not end the run
                    results[name] = {"error": f"{type(exc).__name__}: {exc}"[:80]}
                    continue
                results[name] = {"decode_us": statistics.median(dec) * 1e6, "encode_us": statistics.median(enc) * 1e6}
        return results
    except PeerUnavailable as exc:
        return f"unavailable ({exc})"
    except Exception as exc:  # the peer is optional: report, do not crash the benchmark
        return f"failed ({type(exc).__name__}: {exc})"


def run(*, rounds: int = 15, per_round: int = 300, josev_calls: int = 20, with_josev: bool = True) -> dict[str, Any]:
    started = time.monotonic()
    progress = lambda text: print(f"[{time.monotonic() - started:5.0f} s] {text}", file=sys.stderr, flush=True)  # noqa: E731
    messages = vector_messages()
    loop = dc_charge_loop_req()
    messages_note = f"{len(messages)} message types from {vectors_dir()}" if messages else "no shared vectors found"
    progress(f"measuring mcs-v2g codec: {messages_note} ...")
    charge_loop = measure("iso20-dc", exi.encode(loop), rounds, per_round)
    ours = measure_ours(messages, rounds, per_round, progress)
    grown = measure_grown(rounds, progress)
    josev = measure_josev(messages, josev_calls, progress) if with_josev else "skipped (--no-josev)"
    return {
        "python": sys.version.split()[0],
        "messages": messages_note,
        "charge_loop": charge_loop,
        "ours": ours,
        "josev": josev,
        "grown": grown,
    }


def ratios(results: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Josev's time over ours, (decode, encode), for every message both measured."""
    josev = results["josev"]
    out = {}
    if isinstance(josev, dict):
        for name, r in results["ours"].items():
            j = josev.get(name, {})
            if "decode_us" in j:
                out[name] = (j["decode_us"] / r["decode_us"], j["encode_us"] / r["encode_us"])
    return out


def report(results: dict[str, Any]) -> str:
    ours, josev = results["ours"], results["josev"]
    lines = [f"EXI codec, CPython {results['python']}: median µs per call; {results['messages']}"]
    loop = results["charge_loop"]
    lines.append(
        f"DC_ChargeLoopReq (BPT dynamic, {loop['bytes']} B): decode {loop['decode_us']:.1f} µs, "
        f"encode {loop['encode_us']:.1f} µs"
    )
    x = ratios(results)
    lines.append(
        f"{'message (largest vector)':46s} {'bytes':>6s} {'decode':>8s} {'encode':>8s}"
        f" {'Josev dec':>10s} {'Josev enc':>10s} {'x dec':>6s} {'x enc':>6s}"
    )
    for name, r in ours.items():
        line = f"{name:46s} {r['bytes']:6d} {r['decode_us']:8.1f} {r['encode_us']:8.1f}"
        j = josev.get(name, {}) if isinstance(josev, dict) else {}
        if name in x:
            line += f" {j['decode_us']:10.0f} {j['encode_us']:10.0f} {x[name][0]:6.0f} {x[name][1]:6.0f}"
        elif "error" in j:
            line += f"  Josev: {j['error']}"
        lines.append(line)
    if x:
        worst = min(x, key=lambda k: min(x[k]))
        which = "decode" if x[worst][0] <= x[worst][1] else "encode"
        lines.append(f"worst ratio: {min(x[worst]):.0f}x ({which} of {worst}); target >= 100x")
    else:
        lines.append(f"Josev: {josev}")
    lines.append("grown ScheduleExchangeRes (2 schedule tuples):")
    lines.append(
        f"{'entries':>8s} {'bytes':>7s} {'decode ms':>10s} {'encode ms':>10s} {'dec µs/B':>9s} {'enc µs/B':>9s}"
    )
    for g in results["grown"]:
        lines.append(
            f"{2 * g['entries']:8d} {g['bytes']:7d} {g['decode_us'] / 1e3:10.2f} {g['encode_us'] / 1e3:10.2f}"
            f" {g['decode_us'] / g['bytes']:9.3f} {g['encode_us'] / g['bytes']:9.3f}"
        )
    small, large = results["grown"][0], results["grown"][-1]
    per_byte = {k: (large[k] / large["bytes"]) / (small[k] / small["bytes"]) for k in ("decode_us", "encode_us")}
    lines.append(
        f"µs per byte, {large['bytes']} B over {small['bytes']} B: decode {per_byte['decode_us']:.2f}x, "
        f"encode {per_byte['encode_us']:.2f}x (target <= 2x); decode of {large['bytes']} B: "
        f"{large['decode_us'] / 1e3:.2f} ms (target < 5 ms)"
    )
    return "\n".join(lines)
