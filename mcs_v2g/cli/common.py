"""What the subcommands share: one-line user errors, addresses, logging, TLS options."""

from __future__ import annotations

import argparse
import logging
import ssl
import sys
from collections.abc import Callable
from pathlib import Path

from stack.security.pki import DEFAULT_PROFILE, PKI_DIR_ENV, PkiPaths, Profile, ensure_pki

DEFAULT_PORT = 50000


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def parse_address(text: str, default_host: str) -> tuple[str, int]:
    """`[::1]:50000`, `127.0.0.1:50000`, `:50000` or `50000`."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or default_host
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an [ADDR]:PORT: {text!r}") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"port {number} is not in 0..65535")
    return host, number


def number_in(low: float, high: float, unit: str = "") -> Callable[[str], float]:
    """An argparse type: a number from `low` to `high`, both included (NaN and inf are in no range: a bound keeps
    a typo from hanging a run)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low:g} to {high:g}{unit}, got {text}")
        return value

    return parse


def setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose >= 0 else logging.WARNING
    logging.basicConfig(
        level=level, format="%(asctime)s.%(msecs)03d %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )


def add_tls_options(p: argparse.ArgumentParser) -> None:
    tls = p.add_mutually_exclusive_group()
    tls.add_argument("--tls", dest="tls", action="store_true", default=True, help="TLS 1.3 (default)")
    tls.add_argument("--no-tls", dest="tls", action="store_false", help="plain TCP (test benches)")
    p.add_argument("--tls12", action="store_true", help="also accept TLS 1.2 (compatibility; -20 forbids it)")
    p.add_argument(
        "--pki",
        type=Path,
        help=f"test PKI folder (default: ${PKI_DIR_ENV}/<profile>, else ~/.local/share/mcs-v2g/pki/<profile>;"
        " made on first use)",
    )
    p.add_argument("--pki-profile", choices=("secp521r1", "secp256r1", "ed448"), default="secp521r1")
    p.add_argument("--keylog", type=Path, help="write TLS secrets in SSLKEYLOGFILE format (testing only)")


def add_logging_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("-q", "--quiet", action="store_const", const=-1, dest="verbose")


def tls_context(args: argparse.Namespace, server: bool) -> ssl.SSLContext | None:
    """A TLS 1.3 context with the test PKI (created on first use), or None for plain TCP."""
    if not args.tls:
        return None
    from stack.security.tls import client_context, server_context

    pki = ensure_test_pki(args.pki, args.pki_profile)
    if not server:
        ask = bool(getattr(args, "require_ocsp_staple", False))
        return client_context(pki, keylog_file=args.keylog, allow_tls12=args.tls12, request_ocsp_staple=ask)
    staple = _read_staple(args.ocsp_staple, pki) if getattr(args, "ocsp_staple", None) else None
    return server_context(pki, keylog_file=args.keylog, allow_tls12=args.tls12, ocsp_staple=staple)


def _read_staple(path: Path, pki: PkiPaths) -> Callable[[], bytes]:
    """The DER OCSP response in `path`, read once and stapled to every handshake: it must say GOOD, now, for the
    SECC leaf of `pki` (a staple about another certificate, revoked or out of date helps nobody)."""
    import datetime as dt

    from stack.security.ocsp import OcspError, OcspStatus, check_ocsp_response
    from stack.security.pki import load_certificates

    try:
        der = path.read_bytes()
        leaf, issuer = load_certificates(pki.secc_chain)[:2]
        status = check_ocsp_response(der, leaf, issuer, dt.datetime.now(dt.UTC))
    except (OSError, OcspError) as exc:
        raise CliError(f"--ocsp-staple {path}: not a current OCSP response for the SECC leaf ({exc})") from None
    if status is not OcspStatus.GOOD:
        raise CliError(f"--ocsp-staple {path}: the response says {status.name} for the SECC leaf")
    return lambda: der


def ensure_test_pki(directory: Path | None = None, profile: Profile = DEFAULT_PROFILE) -> PkiPaths:
    """The test PKI in `directory` (default: the user's data directory), made on first use with one line on
    stderr saying where (its private keys are in it)."""
    return ensure_pki(directory, profile, generated=_say_where)


def _say_where(pki: PkiPaths) -> None:
    print(f"mcs-v2g: made a {pki.profile} test PKI (private keys included) in {pki.directory}", file=sys.stderr)
