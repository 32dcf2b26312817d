"""`mcs-v2g test secc|evcc` (alias `conformance`): judge a charger or a truck against the -20 rulebook.

Exit status 0 only when every selected case passes or is inconclusive; 1 when one fails or errs; 2 for a usage
error (bad profile, nothing selected, unreachable device before any case).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from .common import CliError, add_logging_options, ensure_test_pki, parse_address

ROLES = {"secc": "a charger (the tester plays the EV)", "evcc": "a truck (the tester plays the charger)"}
MARK = {"pass": "pass", "fail": "FAIL", "inconclusive": "inconclusive", "error": "ERROR"}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "test",
        aliases=["conformance"],
        help="run the conformance catalogue against a charger (secc) or a truck (evcc); exit 0 when all pass",
    )
    roles = p.add_subparsers(dest="role", required=True)
    for role, what in ROLES.items():
        r = roles.add_parser(role, help=f"test {what}")
        where = r.add_mutually_exclusive_group()
        if role == "secc":
            where.add_argument("--target", type=lambda t: parse_address(t, "::1"), help="the charger's ADDR:PORT")
            where.add_argument("--interface", help="find the charger with SDP on this interface")
        else:
            where.add_argument(
                "--listen", type=lambda t: parse_address(t, "::"), help="wait for the truck on ADDR:PORT"
            )
            where.add_argument("--interface", help="answer the truck's SDP on this interface and wait for it there")
            r.add_argument("--replug", help="shell command run before each case to make the truck start a session")
            r.add_argument("--wait", type=float, default=60.0, help="seconds a case waits for the truck (default 60)")
        where.add_argument("--self", action="store_true", help="test our own device, in this process")
        _common_options(r)
        r.set_defaults(func=run, logs=True)


def _common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", type=Path, help="device profile TOML (what the device supports; default: all)")
    p.add_argument("--select", nargs="+", default=[], metavar="ID|GLOB|tag:T", help="run only these cases")
    p.add_argument("--list", action="store_true", help="list the selected cases and exit")
    p.add_argument(
        "--slow", action="store_true", help="also the cases that wait for hours-long timers (always with --self)"
    )
    tls = p.add_mutually_exclusive_group()
    tls.add_argument("--tls", dest="tls", action="store_true", default=None, help="run the cases over TLS 1.3")
    tls.add_argument("--no-tls", dest="tls", action="store_false", help="run the cases over plain TCP")
    p.add_argument(
        "--pnc",
        action="store_true",
        help="the device does Plug & Charge with CertificateInstallation (as authorization = ['eim', 'pnc'] and "
        "[pnc] certificate_installation = true in the profile); the tester's PnC files come from the [pnc] table "
        "or the test PKI",
    )
    p.add_argument(
        "--pki", type=Path, help="the tester's test PKI folder (default: the user's, made on first use; also PnC's)"
    )
    p.add_argument(
        "--pki-profile",
        choices=("secp521r1", "ed448", "secp256r1"),
        default="secp521r1",
        help="the tester's PKI profile (ed448 for the *-TLS-ED448 cases, with ed448 = true in the profile)",
    )
    p.add_argument("--junit", type=Path, help="write a JUnit XML report here")
    p.add_argument("--html", type=Path, help="write a self-contained HTML report here")
    p.add_argument("--pcap", type=Path, help="write a pcapng of every case here (TLS secrets embedded)")
    p.add_argument("--keylog", type=Path, help="write the TLS secrets in SSLKEYLOGFILE format here")
    p.add_argument("--json", type=Path, help="write the verdicts as JSON here")
    add_logging_options(p)


def run(args: argparse.Namespace) -> int:
    import asyncio
    from dataclasses import replace

    from mcs_v2g.conformance.catalogue import CATALOGUE
    from mcs_v2g.conformance.profile import ProfileError, load_profile, with_pnc
    from mcs_v2g.conformance.runner import select
    from mcs_v2g.conformance.targets import run_against
    from stack.clock import RealClock, VirtualClock

    try:
        profile = load_profile(args.profile, args.role)
    except ProfileError as exc:
        raise CliError(str(exc)) from None
    if args.tls is not None:
        profile = replace(profile, tls=args.tls)
    if args.pnc:
        profile = with_pnc(profile)
    cases = select(CATALOGUE, args.role, args.select, slow=args.slow or args.self)
    if not cases:
        raise CliError(f"no {args.role} case matches {' '.join(args.select)} (see --list)")
    if args.list:
        for case in cases:
            print(f"{case.id:44} {','.join(case.tags):28} {case.title}")
        return 0
    target = _target(args)
    if args.verbose < 1:  # the progress lines are the output; the stack's own session logs only with -v
        logging.getLogger("mcs_v2g").setLevel(logging.ERROR)
        logging.getLogger("mcs_v2g.conformance").setLevel(logging.WARNING)
    pki = ensure_test_pki(args.pki, args.pki_profile) if profile.tls or profile.supports("pnc") else None
    # --self: virtual time from now, so that the test PKI's certificates (PnC contracts too) are valid in it
    clock = VirtualClock(start=time.time()) if target.self_test else RealClock()
    wall = time.monotonic()
    progress = _progress_line if sys.stderr.isatty() or args.verbose >= 0 else None

    async def main() -> list[Any]:
        return await run_against(target, cases, profile, clock, pki, progress)

    results = clock.run(main()) if isinstance(clock, VirtualClock) else asyncio.run(main())
    _write_outputs(args, results, profile, time.monotonic() - wall)
    return _summary(results)


def _target(args: argparse.Namespace) -> Any:
    from mcs_v2g.conformance.targets import Target

    if args.self:
        return Target(self_test=True)
    if args.role == "secc":
        if args.target is None and args.interface is None:
            raise CliError("say where the charger is: --target ADDR:PORT, --interface IF or --self")
        return Target(address=args.target, interface=args.interface)
    if args.listen is None and args.interface is None:
        raise CliError("say where to wait for the truck: --listen ADDR:PORT, --interface IF or --self")
    return Target(listen=args.listen, interface=args.interface, replug=args.replug, wait_s=args.wait)


def _progress_line(done: int, total: int, result: Any) -> None:
    verdict = result.verdict
    line = f"[{done:3}/{total}] {result.case_id:44} {MARK[verdict.outcome.value]:12} {result.duration_s:6.1f} s"
    if verdict.outcome.value == "fail":
        line += f"  {verdict.rule}: expected {verdict.expected}, seen {verdict.seen}"
    elif verdict.outcome.value in ("error", "inconclusive"):
        line += f"  {verdict.seen}"
    print(line, file=sys.stderr, flush=True)


def _write_outputs(args: argparse.Namespace, results: list[Any], profile: Any, wall_s: float) -> None:
    meta = {"role": args.role, "device": _where(args), "wall_s": f"{wall_s:.1f}", "tls": str(profile.tls)}
    if args.junit:
        from mcs_v2g.conformance.junit import write_junit

        write_junit(results, args.junit, suite=f"mcs-v2g {args.role}")
    if args.html:
        from mcs_v2g.conformance.html_report import write_html

        write_html(results, args.html, title=f"mcs-v2g conformance: {args.role}", meta=meta)
    if args.pcap or args.keylog:
        from mcs_v2g.capture.pcapng import write_keylog, write_pcapng
        from mcs_v2g.conformance.recordings import merge

        recording = merge(r.recording for r in results)
        if args.pcap:
            write_pcapng(recording, args.pcap)
        if args.keylog:
            write_keylog(recording, args.keylog)
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "cases": [_as_json(r) for r in results]}, indent=1))


def _where(args: argparse.Namespace) -> str:
    if args.self:
        return "our own device (in process)"
    for name in ("target", "listen"):
        value = getattr(args, name, None)
        if value is not None:
            return f"[{value[0]}]:{value[1]}"
    return f"SDP on {args.interface}"


def _as_json(result: Any) -> dict[str, Any]:
    v = result.verdict
    return {
        "id": result.case_id,
        "title": result.title,
        "rules": list(result.rules),
        "tags": list(result.tags),
        "verdict": v.outcome.value,
        "rule": v.rule,
        "expected": v.expected,
        "seen": v.seen,
        "message": v.message,
        "t_s": None if v.t is None else round(v.t - result.trace.started, 6),
        "duration_s": round(result.duration_s, 6),
    }


def _summary(results: list[Any]) -> int:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.verdict.outcome.value] = counts.get(r.verdict.outcome.value, 0) + 1
    ok = all(r.verdict.ok for r in results)
    parts = ", ".join(f"{counts.get(k, 0)} {k}" for k in ("pass", "fail", "inconclusive", "error"))
    print(f"{len(results)} cases: {parts}")
    print(f"result {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1
