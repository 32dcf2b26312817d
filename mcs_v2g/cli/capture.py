"""`mcs-v2g capture decode FILE [--keylog F] [--json] [--check]` (alias `pcap`): a capture as a timeline of
V2G messages, and optionally the rulebook's findings on it (exit status 1 when there are any)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mcs_v2g.capture.check import Finding, check
from mcs_v2g.capture.decode import Event, Timeline, decode
from mcs_v2g.capture.reader import CaptureError, read_capture

from .common import CliError


def cmd_decode(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    if args.keylog is not None and not args.keylog.is_file():
        raise CliError(f"{args.keylog}: no such key log file")
    try:
        timeline = decode(read_capture(path, args.keylog))
    except CaptureError as exc:
        raise CliError(str(exc)) from None
    result = check(timeline) if args.check else None
    if args.json:
        out: dict[str, Any] = json.loads(timeline.to_json())
        if result is not None:
            out["findings"] = [_finding_json(f, timeline.start) for f in result.findings]
            out["unchecked"] = result.unchecked
        print(json.dumps(out, indent=1))
    else:
        _print_timeline(timeline)
        if result is not None:
            print(f"findings: {len(result.findings)}")
            for f in result.findings:
                where = "SDP" if f.conn is None else f"conn {f.conn}"
                print(
                    f"  [{f.rule_id}] {f.t - timeline.start:10.6f} {where} {f.message}:"
                    f" expected {f.expected}, seen {f.seen}"
                )
            for note in result.unchecked:
                print(f"  not checked: {note}")
    return 1 if result is not None and result.findings else 0


def _print_timeline(timeline: Timeline) -> None:
    for c in timeline.connections:
        print(f"conn {c.id}: EV [{c.ev.ip}]:{c.ev.port} -> EVSE [{c.evse.ip}]:{c.evse.port}{' TLS' if c.tls else ''}")
    for e in timeline.events:
        print(_line(e, timeline.start))
    for note in timeline.notes:
        print(f"note: {note}")


def _line(e: Event, start: float) -> str:
    where = "SDP   " if e.conn is None else f"conn {e.conn}"
    head = f"{e.t - start:10.6f} {where} {e.direction:8} {e.message}"
    if not e.known:
        return f"{head} (unknown: {e.reason})"
    code = f" {e.response_code}" if e.response_code else ""
    values = " ".join(f"{k}={_value(v)}" for k, v in e.values.items())
    return f"{head}{code}" + (f" {values}" if values else "")


def _value(v: Any) -> str:
    if isinstance(v, dict):
        return "{" + " ".join(f"{k}={_value(x)}" for k, x in v.items()) + "}"
    return ",".join(map(str, v)) if isinstance(v, list) else str(v)


def _finding_json(f: Finding, start: float) -> dict[str, Any]:
    return {
        "rule": f.rule_id,
        "t": round(f.t, 6),
        "dt": round(f.t - start, 6),
        "conn": f.conn,
        "message": f.message,
        "expected": f.expected,
        "seen": f.seen,
    }


def add_parser(sub: Any) -> None:
    p = sub.add_parser("capture", aliases=["pcap"], help="decode a pcap/pcapng capture of V2G communication")
    capture_sub = p.add_subparsers(dest="capture_command", required=True)
    dec = capture_sub.add_parser("decode", help="timeline of SDP, SAP and -20 messages (TLS with a key log)")
    dec.add_argument("file", type=Path, help="a .pcap or .pcapng file")
    dec.add_argument("--keylog", type=Path, help="TLS secrets (NSS key log); a pcapng's embedded secrets are used too")
    dec.add_argument("--json", action="store_true", help="JSON instead of one line per message")
    dec.add_argument("--check", action="store_true", help="check against the -20 rulebook; exit 1 on any finding")
    dec.set_defaults(func=cmd_decode)
