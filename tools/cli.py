"""The `mcs-v2g` command: one entry point with subcommands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stack import exi
from stack.exi.codec import default_schema
from stack.v2gtp import PAYLOAD_SCHEMAS, SCHEMA_PAYLOAD_TYPES, V2gtpError, build, looks_like_frame, parse_frame
from tools import session_cli
from tools.pki import add_pki_parser
from tools.sim import cli as sim_cli
from tools.sim.scenario import ScenarioError


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def _read_text(arg: str) -> str:
    if arg == "-":
        return sys.stdin.read()
    path = Path(arg)
    if path.exists():
        return path.read_text()
    return arg


def _hex_bytes(text: str) -> bytes:
    cleaned = "".join(text.split()).replace(":", "")
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise CliError("input is not hexadecimal") from None


def cmd_exi_decode(args: argparse.Namespace) -> int:
    data = _hex_bytes(_read_text(args.input))
    schema = args.schema
    if looks_like_frame(data):
        try:
            frame = parse_frame(data)
        except V2gtpError as exc:
            raise CliError(f"V2GTP frame: {exc}") from None
        data = frame.payload
        if schema is None:
            if frame.payload_type not in PAYLOAD_SCHEMAS:
                raise CliError(f"payload type {frame.payload_type:#06x} does not carry EXI")
            schema = PAYLOAD_SCHEMAS[frame.payload_type]
    if schema is None:
        raise CliError("not a V2GTP frame: pass --schema (one of " + ", ".join(exi.SCHEMA_IDS) + ")")
    msg = exi.decode(data, schema)
    print(exi.to_xml(msg), end="")
    return 0


def cmd_exi_encode(args: argparse.Namespace) -> int:
    msg = exi.from_xml(_read_text(args.input))
    data = exi.encode(msg, string_table=args.strings == "table")
    if args.frame:
        schema = default_schema(msg)
        if schema not in SCHEMA_PAYLOAD_TYPES:
            raise CliError(f"schema {schema} has no V2GTP payload type")
        data = build(SCHEMA_PAYLOAD_TYPES[schema], data)
    print(data.hex())
    return 0


def cmd_bench_exi(args: argparse.Namespace) -> int:
    from tools.bench import exi as bench

    results = bench.run(
        rounds=args.rounds, per_round=args.per_round, josev_calls=args.josev_calls, with_josev=not args.no_josev
    )
    print(json.dumps(results, indent=2) if args.json else bench.report(results))
    return 0


def cmd_bench_session(args: argparse.Namespace) -> int:
    from tools.bench import session as bench

    results = bench.run(runs=args.runs, concurrent=args.concurrent, josev=not args.no_josev)
    print(json.dumps(results, indent=2) if args.json else bench.report(results))
    return 0


def cmd_bench_sim(args: argparse.Namespace) -> int:
    from tools.bench import sim as bench

    results = bench.run(tls=not args.no_tls)
    print(json.dumps(results, indent=2) if args.json else bench.report(results))
    return 0 if results["summary"]["result"] == "ok" else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mcs-v2g", description="ISO 15118-20 / MCS stack and emulators")
    sub = p.add_subparsers(dest="command", required=True)

    p_exi = sub.add_parser("exi", help="EXI codec: decode to XML, encode from XML")
    exi_sub = p_exi.add_subparsers(dest="exi_command", required=True)
    dec = exi_sub.add_parser("decode", help="EXI (hex) or a whole V2GTP frame (hex) -> XML")
    dec.add_argument("input", help="hex string, a file holding it, or - for stdin")
    dec.add_argument("--schema", choices=exi.SCHEMA_IDS, help="schema set (taken from the payload type of a frame)")
    dec.set_defaults(func=cmd_exi_decode)
    enc = exi_sub.add_parser("encode", help="XML -> EXI (hex)")
    enc.add_argument("input", help="XML file or - for stdin")
    enc.add_argument(
        "--strings",
        choices=("none", "table"),
        default="none",
        help="none: V2G profile, no string-table hits (default); table: EXIficient's default options",
    )
    enc.add_argument("--frame", action="store_true", help="print a whole V2GTP frame")
    enc.set_defaults(func=cmd_exi_encode)

    sim_cli.add_parser(sub)
    session_cli.add_parsers(sub)
    add_pki_parser(sub)

    p_bench = sub.add_parser("bench", help="benchmarks (figures and ratios against Josev in the same run)")
    bench_sub = p_bench.add_subparsers(dest="bench_command", required=True)
    b_exi = bench_sub.add_parser("exi", help="µs per encode/decode, ours and Josev's")
    b_exi.add_argument("--rounds", type=int, default=15)
    b_exi.add_argument("--per-round", type=int, default=300)
    b_exi.add_argument("--josev-calls", type=int, default=20)
    b_exi.add_argument("--no-josev", action="store_true", help="skip Josev (it needs Java and its own venv)")
    b_exi.add_argument("--json", action="store_true", help="print the figures as JSON")
    b_exi.set_defaults(func=cmd_bench_exi)
    b_session = bench_sub.add_parser("session", help="a whole -20 session over TLS, charge-loop round trips")
    b_session.add_argument("--runs", type=int, default=20)
    b_session.add_argument("--concurrent", type=int, default=200)
    b_session.add_argument("--no-josev", action="store_true", help="skip Josev's pair (needs root and Java)")
    b_session.add_argument("--json", action="store_true")
    b_session.set_defaults(func=cmd_bench_session)
    b_sim = bench_sub.add_parser("sim", help="an 8-hour overnight MCS_BPT session at --speed max")
    b_sim.add_argument("--no-tls", action="store_true")
    b_sim.add_argument("--json", action="store_true")
    b_sim.set_defaults(func=cmd_bench_sim)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command in ("evse", "ev"):
            return session_cli.run(args)
        return args.func(args)
    except (CliError, exi.ExiError, session_cli.ConfigError, ScenarioError, OSError, TimeoutError, LookupError) as exc:
        print(f"mcs-v2g: error: {exc or type(exc).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
