"""`mcs-v2g pki generate`: write a test PKI (see certs/README.md) to `--dir` or the user's data directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from stack.security.pki import (
    DEFAULT_EVCC_ID,
    DEFAULT_EVSE_ID,
    DEFAULT_PROFILE,
    DEFAULT_VALIDITY_DAYS,
    PROFILES,
    PkiError,
    PkiPaths,
    default_pki_dir,
    ensure_pki,
    generate_pki,
)


def cmd_pki_generate(args: argparse.Namespace) -> int:
    directory = Path(args.dir) if args.dir else default_pki_dir(args.profile)
    try:
        if args.if_missing:
            paths = ensure_pki(
                directory,
                args.profile,
                password=args.password,
                evse_id=args.evse_id,
                evcc_id=args.evcc_id,
                validity_days=args.validity_days,
            )
        else:
            paths = generate_pki(
                directory,
                profile=args.profile,
                validity_days=args.validity_days,
                evse_id=args.evse_id or DEFAULT_EVSE_ID,
                evcc_id=args.evcc_id or DEFAULT_EVCC_ID,
                password=args.password,
            )
    except (PkiError, OSError) as exc:
        print(f"mcs-v2g: error: {exc}", file=sys.stderr)
        return 2
    print(_summary(paths))
    return 0


def _summary(paths: PkiPaths) -> str:
    return "\n".join(
        [
            f"{paths.profile} test PKI in {paths.directory}",
            f"  SECC (TLS server): chain {paths.secc_chain.name}, key {paths.secc_key.name}",
            f"  EVCC (TLS client): chain {paths.vehicle_chain.name}, key {paths.vehicle_key.name}",
            f"  trust anchors: {paths.v2g_root_cert.name} (EVCC trusts), {paths.oem_root_cert.name} (SECC trusts)",
        ]
    )


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `pki generate` to the `add_subparsers()` object of the `mcs-v2g` parser."""
    p_pki: argparse.ArgumentParser = subparsers.add_parser(
        "pki", help="test PKI for TLS 1.3 (V2G/CPO -> SECC, OEM -> vehicle)"
    )
    pki_sub = p_pki.add_subparsers(dest="pki_command", required=True)
    gen = pki_sub.add_parser("generate", help="write root CAs, sub-CAs, leaves, keys and TLS chain files (PEM)")
    gen.add_argument(
        "--profile",
        choices=tuple(PROFILES),
        default=DEFAULT_PROFILE,
        help="secp521r1: ECDSA-SHA512, the -20 profile (default); ed448: Ed448 with X448 key exchange, the other -20 "
        "profile; secp256r1: ECDSA-SHA256, for Josev interop",
    )
    gen.add_argument(
        "--dir",
        help="output directory (default: $MCS_V2G_PKI_DIR/<profile>, else ~/.local/share/mcs-v2g/pki/<profile>)",
    )
    gen.add_argument("--validity-days", type=int, default=DEFAULT_VALIDITY_DAYS, help="validity of every cert")
    gen.add_argument("--evse-id", help=f"CN of the SECC leaf (default {DEFAULT_EVSE_ID})")
    gen.add_argument("--evcc-id", help=f"CN of the vehicle leaf (default {DEFAULT_EVCC_ID})")
    gen.add_argument("--password", help="encrypt the private keys with this password (default: unencrypted)")
    gen.add_argument(
        "--if-missing",
        action="store_true",
        help="keep an existing PKI of this profile unless it is incomplete, expiring or has other IDs",
    )
    gen.set_defaults(func=cmd_pki_generate)
    return p_pki
