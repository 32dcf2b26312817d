"""`python -m tools.bench exi|session|sim|fuzz|soak|can|faults|depot|pnc` (also `mcs-v2g bench ...` in a source
checkout): figures of this stack, and Josev's measured in the same run where it can run (its own venv, Java; root for
its SECC/EVCC pair)."""

from __future__ import annotations

import argparse
import json


def cmd_exi(args: argparse.Namespace) -> int:
    from tools.bench import exi as bench

    results = bench.run(
        rounds=args.rounds, per_round=args.per_round, josev_calls=args.josev_calls, with_josev=not args.no_josev
    )
    print(json.dumps(results, indent=2) if args.json else bench.report(results))
    return 0


def cmd_session(args: argparse.Namespace) -> int:
    from tools.bench import session as bench

    results = bench.run(runs=args.runs, concurrent=args.concurrent, josev=not args.no_josev)
    print(json.dumps(results, indent=2) if args.json else bench.report(results))
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    from tools.bench import sim as bench

    results = bench.run(tls=not args.no_tls)
    print(json.dumps(results, indent=2) if args.json else bench.report(results))
    return 0 if results["summary"]["result"] == "ok" else 1


def cmd_fuzz(args: argparse.Namespace) -> int:
    from tools.bench import fuzz as bench

    return bench.main(args)


def cmd_soak(args: argparse.Namespace) -> int:
    from tools.bench import soak as bench

    results = bench.run(
        args.mode,
        sessions=args.sessions,
        duration=args.duration,
        interval=args.interval,
        session_minutes=args.session_minutes,
        tls=args.tls,
    )
    print(json.dumps(results, indent=2) if args.json else bench.report(results))
    return 0 if results["sessions_failed"] == 0 else 1


def cmd_can(args: argparse.Namespace) -> int:
    from tools.bench import can as bench

    results = bench.run(args.family)
    print(json.dumps(results, indent=2) if args.json else bench.report(results))
    return 0


def cmd_faults(args: argparse.Namespace) -> int:
    from evse_emulator.hal.can.family import family_names
    from tools.bench import faults as bench

    rows = bench.run(args.family or family_names())
    print(json.dumps(rows, indent=2) if args.json else bench.report(rows))
    return 0


def cmd_depot(args: argparse.Namespace) -> int:
    from tools.bench import depot as bench

    results = bench.run(
        seeds=bench.seeds_of(args),
        scale=not args.quick,
        jobs=args.jobs,
        scale_workers=args.scale_workers,
        online=not args.no_online,
    )
    print(json.dumps(results, indent=2) if args.json else bench.report(results))
    return 0


def cmd_pnc(args: argparse.Namespace) -> int:
    from tools.bench import pnc as bench

    return bench.main(args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__)
    sub = p.add_subparsers(dest="bench_command", required=True)
    b_exi = sub.add_parser("exi", help="µs per encode/decode, ours and Josev's")
    b_exi.add_argument("--rounds", type=int, default=15)
    b_exi.add_argument("--per-round", type=int, default=300)
    b_exi.add_argument("--josev-calls", type=int, default=20)
    b_exi.add_argument("--no-josev", action="store_true", help="skip Josev (it needs Java and its own venv)")
    b_exi.add_argument("--json", action="store_true", help="print the figures as JSON")
    b_exi.set_defaults(func=cmd_exi)
    b_session = sub.add_parser("session", help="a whole -20 session over TLS, charge-loop round trips")
    b_session.add_argument("--runs", type=int, default=20)
    b_session.add_argument("--concurrent", type=int, default=200)
    b_session.add_argument("--no-josev", action="store_true", help="skip Josev's pair (needs root and Java)")
    b_session.add_argument("--json", action="store_true")
    b_session.set_defaults(func=cmd_session)
    b_sim = sub.add_parser("sim", help="an 8-hour overnight MCS_BPT session at --speed max")
    b_sim.add_argument("--no-tls", action="store_true")
    b_sim.add_argument("--json", action="store_true")
    b_sim.set_defaults(func=cmd_sim)
    b_fuzz = sub.add_parser("fuzz", help="fuzz every parser: >= 10^6 inputs per target, contract violations")
    from tools.bench.fuzz import add_arguments as fuzz_arguments

    fuzz_arguments(b_fuzz)
    b_fuzz.set_defaults(func=cmd_fuzz)
    b_soak = sub.add_parser("soak", help="many sessions for long: round trips, memory, leaked tasks and sockets")
    b_soak.add_argument("mode", choices=["virtual", "wall"], help="VirtualClock in memory, or real loopback sockets")
    b_soak.add_argument("--sessions", type=int, default=200, help="concurrent charge points (default 200)")
    b_soak.add_argument("--duration", type=float, help="seconds (default: 3600 simulated, 600 wall)")
    b_soak.add_argument("--interval", type=float, default=0.25, help="s between charge loops (default 0.25)")
    b_soak.add_argument("--session-minutes", type=float, default=10.0, help="charge loop of one session")
    b_soak.add_argument("--tls", action="store_true", help="TLS 1.3 (in memory or on the sockets)")
    b_soak.add_argument("--json", action="store_true")
    b_soak.set_defaults(func=cmd_soak)
    b_can = sub.add_parser("can", help="CAN: bus load per family, setpoint-to-current latency, frames/s")
    b_can.add_argument("--family", action="append", help="one module family (repeatable; default: all)")
    b_can.add_argument("--json", action="store_true")
    b_can.set_defaults(func=cmd_can)
    b_faults = sub.add_parser("faults", help="CAN plant faults: the charger's reactions against IEC 61851-23")
    b_faults.add_argument("--family", action="append", help="one module family (repeatable; default: all)")
    b_faults.add_argument("--json", action="store_true")
    b_faults.set_defaults(func=cmd_faults)
    b_depot = sub.add_parser("depot", help="the site EMS's cost against the foresight bound and the heuristics")
    from tools.bench.depot import add_arguments as depot_arguments

    depot_arguments(b_depot)
    b_depot.set_defaults(func=cmd_depot)
    b_pnc = sub.add_parser("pnc", help="Plug & Charge: signatures/s (ours and Josev's), the SECC's check, sessions")
    from tools.bench.pnc import add_arguments as pnc_arguments

    pnc_arguments(b_pnc)
    b_pnc.set_defaults(func=cmd_pnc)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
