"""Read and check a certificate chain (leaf first) as the -20 profile wants it: each certificate signed by the next,
every issuer a CA allowed to sign certificates (path lengths kept), every certificate valid at the time asked, and
the last one issued by one of the trusted roots when roots are given (PROTOCOL.md section 8).

Pure functions over `cryptography` objects; `mcs-v2g pki inspect` prints what they find.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

E = TypeVar("E", bound=x509.ExtensionType)


class CertificateParseError(ValueError):
    """DER that is no X.509 certificate `cryptography` can read."""


def load_certificate(der: bytes) -> x509.Certificate:
    """A DER certificate from the other side; every refusal is a `CertificateParseError` (cryptography's
    `InvalidVersion`, for a version field other than v1 or v3, is no ValueError)."""
    try:
        return x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion) as exc:
        raise CertificateParseError(str(exc)) from None


@dataclass(frozen=True)
class CertificateView:
    """What a person reads of one certificate."""

    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    key: str
    signature: str
    ca: bool | None
    path_length: int | None
    key_usage: tuple[str, ...]


class Finding(StrEnum):
    """What kind of problem a chain has: its dates, a link between two certificates, or its trust anchor."""

    EXPIRED = "expired"
    NOT_YET_VALID = "not yet valid"
    LINK = "link"
    UNTRUSTED = "untrusted"


@dataclass
class ChainReport:
    certificates: list[CertificateView] = field(default_factory=list)
    findings: list[tuple[Finding, str]] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [text for _, text in self.findings]

    @property
    def ok(self) -> bool:
        return not self.findings

    def of(self, *kinds: Finding) -> list[str]:
        """The texts of the findings of `kinds`."""
        return [text for kind, text in self.findings if kind in kinds]


def describe(cert: x509.Certificate) -> CertificateView:
    constraints = _extension(cert, x509.BasicConstraints)
    usage = _extension(cert, x509.KeyUsage)
    return CertificateView(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key=_key_name(cert.public_key()),
        signature=getattr(cert.signature_algorithm_oid, "_name", cert.signature_algorithm_oid.dotted_string),
        ca=None if constraints is None else constraints.ca,
        path_length=None if constraints is None else constraints.path_length,
        key_usage=() if usage is None else _usages(usage),
    )


def check_chain(
    chain: Sequence[x509.Certificate], roots: Sequence[x509.Certificate] = (), now: dt.datetime | None = None
) -> ChainReport:
    """Every finding about `chain` (leaf first); none means it holds."""
    report = ChainReport([describe(c) for c in chain])
    if not chain:
        report.findings.append((Finding.LINK, "no certificate"))
        return report
    when = now or dt.datetime.now(dt.UTC)
    for i, cert in enumerate(chain):
        name = f"certificate {i + 1} ({cert.subject.rfc4514_string()})"
        if when < cert.not_valid_before_utc:
            text = f"{name} is not valid yet (from {cert.not_valid_before_utc:%Y-%m-%d})"
            report.findings.append((Finding.NOT_YET_VALID, text))
        if when > cert.not_valid_after_utc:
            report.findings.append((Finding.EXPIRED, f"{name} has expired ({cert.not_valid_after_utc:%Y-%m-%d})"))
        if i + 1 < len(chain):
            report.findings.extend((Finding.LINK, p) for p in _link(cert, chain[i + 1], name, below=i))
    last = chain[-1]
    if roots and last not in roots:
        anchors = [r for r in roots if r.subject == last.issuer]
        if not anchors:
            text = f"no trusted root named {last.issuer.rfc4514_string()} issued the last certificate"
            report.findings.append((Finding.UNTRUSTED, text))
        elif all(_link(last, root, "", below=len(chain) - 1) for root in anchors):
            text = "the last certificate does not verify against the trusted root of its issuer's name"
            report.findings.append((Finding.UNTRUSTED, text))
    return report


def _link(cert: x509.Certificate, issuer: x509.Certificate, name: str, below: int) -> list[str]:
    """What is wrong between `cert` and its `issuer` (`below`: how many certificates sit under the issuer)."""
    problems = []
    if cert.issuer != issuer.subject:
        return [f"{name} is not issued by the next certificate ({issuer.subject.rfc4514_string()})"]
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError) as exc:
        problems.append(f"{name}: the issuer's signature does not verify ({type(exc).__name__})")
    constraints = _extension(issuer, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        problems.append(f"{name}: its issuer is not a CA (basicConstraints)")
    elif constraints.path_length is not None and below > constraints.path_length:
        problems.append(f"{name}: its issuer allows {constraints.path_length} sub-CAs below it, the chain has {below}")
    usage = _extension(issuer, x509.KeyUsage)
    if usage is None or not usage.key_cert_sign:
        problems.append(f"{name}: its issuer may not sign certificates (keyUsage keyCertSign)")
    return problems


def _extension(cert: x509.Certificate, kind: type[E]) -> E | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _key_name(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    return type(key).__name__


def _usages(usage: x509.KeyUsage) -> tuple[str, ...]:
    names = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement"]
    names += ["key_cert_sign", "crl_sign"]
    return tuple(n for n in names if getattr(usage, n))
