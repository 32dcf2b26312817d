"""`mcs-v2g pki generate`: write a test PKI (see certs/README.md) to `--dir` or the user's data directory;
`mcs-v2g pki inspect FILE [--roots FILE]`: print a certificate chain and check it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from stack.security.pki import (
    DEFAULT_EMAID,
    DEFAULT_EVCC_ID,
    DEFAULT_EVSE_ID,
    DEFAULT_OCSP_URL,
    DEFAULT_PCID,
    DEFAULT_PROFILE,
    DEFAULT_VALIDITY_DAYS,
    PROFILES,
    PkiError,
    PkiPaths,
    default_pki_dir,
    ensure_pki,
    generate_pki,
    load_certificates,
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
                pcid=args.pcid,
                emaid=args.emaid,
                ocsp_url=args.ocsp_url,
                validity_days=args.validity_days,
            )
        else:
            paths = generate_pki(
                directory,
                profile=args.profile,
                validity_days=args.validity_days,
                evse_id=args.evse_id or DEFAULT_EVSE_ID,
                evcc_id=args.evcc_id or DEFAULT_EVCC_ID,
                emaid=args.emaid or DEFAULT_EMAID,
                pcid=args.pcid or DEFAULT_PCID,
                ocsp_url=args.ocsp_url or DEFAULT_OCSP_URL,
                password=args.password,
            )
    except (PkiError, OSError) as exc:
        print(f"mcs-v2g: error: {exc}", file=sys.stderr)
        return 2
    print(_summary(paths))
    return 0


def cmd_pki_inspect(args: argparse.Namespace) -> int:
    """Print each certificate of the chain in `args.file` (leaf first) and every problem; exit 1 when any."""
    from stack.security.chain_check import check_chain

    try:
        chain = load_certificates(Path(args.file))
        roots = load_certificates(Path(args.roots)) if args.roots else []
    except (PkiError, OSError) as exc:
        print(f"mcs-v2g: error: {exc}", file=sys.stderr)
        return 2
    report = check_chain(chain, roots)
    for i, c in enumerate(report.certificates, 1):
        ca = "CA" if c.ca else "leaf"
        depth = "" if c.path_length is None else f", path length {c.path_length}"
        print(f"{i}. {c.subject}  ({ca}{depth})")
        print(f"   issuer {c.issuer}")
        print(f"   {c.key}, signed {c.signature}, valid {c.not_before:%Y-%m-%d} .. {c.not_after:%Y-%m-%d}")
        print(f"   key usage {', '.join(c.key_usage) or '-'}")
    trust = f"against {len(roots)} trusted root(s)" if roots else "without trusted roots (--roots)"
    if report.ok:
        print(f"chain ok, checked {trust}")
        return 0
    print(f"chain NOT ok, checked {trust}:")
    for problem in report.problems:
        print(f"  - {problem}")
    return 1


def _summary(paths: PkiPaths) -> str:
    return "\n".join(
        [
            f"{paths.profile} test PKI in {paths.directory}",
            f"  SECC (TLS server): chain {paths.secc_chain.name}, key {paths.secc_key.name}",
            f"  EVCC (TLS client): chain {paths.vehicle_chain.name}, key {paths.vehicle_key.name}",
            f"  CPS (signs CertificateInstallationRes): chain {paths.cps_chain.name}, key {paths.cps_key.name}",
            f"  OEM provisioning (signs CertificateInstallationReq): chain {paths.oem_prov_chain.name}, "
            f"key {paths.oem_prov_key.name}",
            f"  contract (EV, PnC AuthorizationReq): chain {paths.contract_chain.name}, key {paths.contract_key.name}",
            f"  MO OCSP responder: {paths.mo_ocsp_responder_cert.name}, key {paths.mo_ocsp_responder_key.name}",
            f"  trust anchors: {paths.v2g_root_cert.name} (EVCC trusts; CPS chain), {paths.oem_root_cert.name} "
            f"(SECC trusts; OEM provisioning chain), {paths.mo_root_cert.name} (contract chain)",
        ]
    )


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `pki generate` and `pki inspect` to the `add_subparsers()` object of the `mcs-v2g` parser."""
    p_pki: argparse.ArgumentParser = subparsers.add_parser(
        "pki", help="test PKI for TLS 1.3 and Plug & Charge (V2G -> SECC, CPS; OEM -> vehicle, provisioning; MO)"
    )
    pki_sub = p_pki.add_subparsers(dest="pki_command", required=True)
    gen = pki_sub.add_parser("generate", help="write root CAs, sub-CAs, leaves, keys and chain files (PEM)")
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
    gen.add_argument("--emaid", help=f"CN of the contract leaf, an eMAID (default {DEFAULT_EMAID})")
    gen.add_argument("--pcid", help=f"CN of the OEM provisioning leaf (default {DEFAULT_PCID})")
    gen.add_argument(
        "--ocsp-url", help=f"OCSP responder URL in the contract leaf's authorityInfoAccess (default {DEFAULT_OCSP_URL})"
    )
    gen.add_argument("--password", help="encrypt the private keys with this password (default: unencrypted)")
    gen.add_argument(
        "--if-missing",
        action="store_true",
        help="keep an existing PKI of this profile unless it is incomplete, expiring or has other IDs",
    )
    gen.set_defaults(func=cmd_pki_generate)
    inspect = pki_sub.add_parser("inspect", help="print a certificate chain (PEM, leaf first) and check it")
    inspect.add_argument("file", help="PEM file with the chain, leaf first")
    inspect.add_argument("--roots", help="PEM file with the trusted root(s) the chain must end in")
    inspect.set_defaults(func=cmd_pki_inspect)
    return p_pki
