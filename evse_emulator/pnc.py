"""The charger's Plug & Charge setup: the MO roots it trusts, where revocation answers come from, and the contract
backend that answers CertificateInstallation (the local test CPS of the PKI).

Revocation: none (the default), DER OCSP responses from files (`--ocsp FILE`), or an OCSP responder over HTTP
(`--ocsp URL`, or `--ocsp aia`: each contract's own AIA URL). Over HTTP the SECC answers AuthorizationRes Ongoing
until the answer is in; `RevocationFeed.run` fetches what the checks asked for, at the edge (asyncio). A status
that stays unknown (no response covers the certificate, the responder cannot be reached) is logged and accepted,
as browsers soft-fail; `strict` (`--ocsp-strict`) refuses it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from stack.clock import Clock
from stack.security import pki
from stack.security.ocsp import OcspCache, OcspError, StaticOcspResponses
from stack.security.ocsp_http import OcspFetcher
from stack.session.pnc import SeccPnc

from .contract_backend import LocalContractBackend

FETCH_POLL_S = 0.2  # s between looks at what the contract checks want fetched
AIA = "aia"  # `--ocsp aia`: ask the responder each contract certificate names


class PncSetupError(ValueError):
    """A Plug & Charge setting of the charger cannot be used (the message says which and why)."""


@dataclass
class RevocationFeed:
    """Fetches the OCSP answers the SECC's contract checks are waiting for."""

    fetcher: OcspFetcher
    clock: Clock

    async def run(self) -> None:
        while True:
            await self.fetcher.fetch_wanted()
            await self.clock.sleep_until(self.clock.now() + FETCH_POLL_S)


def load_roots(path: Path) -> tuple[x509.Certificate, ...]:
    """Root certificates from a PEM file, or from every .pem file of a folder."""
    files = sorted(path.glob("*.pem")) if path.is_dir() else [path]
    try:
        roots = tuple(cert for file in files for cert in pki.load_certificates(file))
    except pki.PkiError as exc:
        raise PncSetupError(f"MO roots: {exc}") from None
    if not roots:
        raise PncSetupError(f"MO roots: no certificate in {path}")
    return roots


def charger_pnc(
    paths: pki.PkiPaths,
    clock: Clock,
    *,
    mo_roots: Path | None = None,
    ocsp: str | None = None,
    strict: bool = False,
    install: bool = True,
) -> tuple[SeccPnc, RevocationFeed | None]:
    """The SECC's PnC settings from the test PKI in `paths` (its MO root unless `mo_roots`; its CPS for
    installation), and the revocation feed to run beside the server when `ocsp` names a responder."""
    roots = load_roots(mo_roots) if mo_roots is not None else tuple(pki.load_certificates(paths.mo_root_cert))
    backend = LocalContractBackend(paths) if install else None
    if ocsp is None:
        if strict:
            raise PncSetupError("--ocsp-strict needs --ocsp (where revocation answers come from)")
        return SeccPnc(mo_roots=roots, backend=backend), None
    if ocsp.startswith("https://"):
        raise PncSetupError(f"--ocsp {ocsp}: OCSP over HTTPS is not supported (RFC 6960 responders answer over http)")
    if ocsp == AIA or ocsp.startswith("http://"):
        cache = OcspCache()
        fetcher = OcspFetcher(cache, url=None if ocsp == AIA else ocsp)
        pnc = SeccPnc(mo_roots=roots, backend=backend, revocation=cache, strict_revocation=strict)
        return pnc, RevocationFeed(fetcher, clock)
    try:
        responses = StaticOcspResponses.load([ocsp])
    except (OcspError, OSError) as exc:
        raise PncSetupError(f"--ocsp {ocsp}: {exc}") from None
    return SeccPnc(mo_roots=roots, backend=backend, revocation=responses, strict_revocation=strict), None


async def run_feed(feed: RevocationFeed | None) -> None:
    """`feed.run()`, or wait forever when there is none (so callers can always start and cancel it)."""
    if feed is None:
        await asyncio.Event().wait()
    else:
        await feed.run()
