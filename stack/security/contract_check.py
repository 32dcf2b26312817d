"""What the SECC makes of the ContractCertificateChain of a PnC AuthorizationReq (PROTOCOL.md section 4.4): the
chain walk of `stack.security.chain_check` up to a known MO root, the leaf's own profile, validity, revocation and
the 14-day warning of [V2G20-2218]. Sans-I/O: the time and the revocation answers come from the caller.

Order of the verdicts, first match wins:
1. not a chain (nothing, not DER X.509, more than 3 sub-CAs, leaf without CN, leaf a CA or without
   digitalSignature), or a link that does not hold (signature, CA flag, path length, keyCertSign): validation error;
2. no known MO root issued the last certificate (none of that name, or none of that name whose key verifies it):
   eMSP unknown, as EVerest's -20 SECC answers OpenSSL's "unable to get issuer" ([V2G20-2211] as cited in
   `EVerest lib/everest/iso15118/src/iso15118/d20/crypto.cpp validate_contract_chain`): the backend may still know
   the eMSP, so the caller may forward the chain. A known root that issued it but whose constraints the path breaks
   (path length, keyCertSign) is a validation error;
3. a certificate of the path (root included) expired, then one not valid yet ([V2G20-2212] before [V2G20-2213],
   same source). Unlike EVerest, dates are read only after the signatures hold: a date in a forged chain says nothing;
4. revocation (when a source is given): revoked anywhere, then pending while an answer is missing; UNKNOWN lets
   the chain pass unless `strict_revocation` (a responder that knows nothing proves nothing either way);
5. the leaf expires within `expires_soon`: OK_CertificateExpiresSoon [V2G20-2218]; else OK.

`mo_roots` are the trust anchors: MO roots, and V2G roots where contracts may hang under those too ([V2G20-2329],
same source). An OK here is the local verdict; the SECC may still ask the backend and answer Ongoing meanwhile.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509.oid import NameOID

from stack.messages.iso20_types import Processing, ResponseCode
from stack.security.chain_check import Finding, check_chain, load_certificate
from stack.security.ocsp import OcspStatus, RevocationSource

log = logging.getLogger(__name__)
__all__ = ["RESPONSE_CODES", "ContractCheck", "ContractStatus", "RevocationSource", "check_contract"]

# SubCertificates holds at most 3 certificates (XSD V2G_CI_CommonTypes.xsd, PROTOCOL.md section 8).
MAX_SUB_CAS = 3
DEFAULT_EXPIRES_SOON = dt.timedelta(days=14)
# What cryptography raises for a certificate it parsed but cannot use (odd extensions, unknown key or signature).
_UNUSABLE = (ValueError, TypeError, UnsupportedAlgorithm, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)


class ContractStatus(Enum):
    OK = "ok"
    EXPIRES_SOON = "expires soon"
    EXPIRED = "expired"
    NOT_YET_VALID = "not yet valid"
    REVOKED = "revoked"
    INVALID = "invalid"
    EMSP_UNKNOWN = "eMSP unknown"
    PENDING = "pending"


# The ResponseCode of AuthorizationRes for each verdict. Codes: XSD responseCodeType; their use for contract checks:
# EVerest `d20/crypto.cpp validate_contract_chain` and `d20/state/authorization.cpp pnc_rejection_code`.
RESPONSE_CODES: dict[ContractStatus, ResponseCode] = {
    ContractStatus.OK: ResponseCode.OK,
    ContractStatus.EXPIRES_SOON: ResponseCode.OK_CertificateExpiresSoon,  # [V2G20-2218]
    ContractStatus.EXPIRED: ResponseCode.WARNING_CertificateExpired,  # [V2G20-2212]
    ContractStatus.NOT_YET_VALID: ResponseCode.WARNING_CertificateNotYetValid,  # [V2G20-2213]
    ContractStatus.REVOKED: ResponseCode.WARNING_CertificateRevoked,
    ContractStatus.INVALID: ResponseCode.WARNING_CertificateValidationError,
    ContractStatus.EMSP_UNKNOWN: ResponseCode.WARNING_eMSPUnknown,  # [V2G20-2211]
    # The revocation answer is still out: OK with EVSEProcessing Ongoing, as EVerest answers while its backend poll
    # is open (PR #2849); every other verdict is Finished.
    ContractStatus.PENDING: ResponseCode.OK,
}


@dataclass(frozen=True)
class ContractCheck:
    """The verdict on one contract chain; `leaf`, `emaid` and `issuer` are filled as far as they could be read."""

    status: ContractStatus
    reason: str
    emaid: str | None = None
    leaf: x509.Certificate | None = None
    issuer: x509.Certificate | None = None

    @property
    def response_code(self) -> ResponseCode:
        return RESPONSE_CODES[self.status]

    @property
    def processing(self) -> Processing:
        return Processing.Ongoing if self.status is ContractStatus.PENDING else Processing.Finished


def check_contract(
    leaf_der: bytes,
    sub_ca_ders: Sequence[bytes],
    mo_roots: Sequence[x509.Certificate],
    now: dt.datetime,
    *,
    expires_soon: dt.timedelta = DEFAULT_EXPIRES_SOON,
    revocation: RevocationSource | None = None,
    strict_revocation: bool = False,
) -> ContractCheck:
    """The verdict on a contract chain as the EV sent it (leaf DER, sub-CA DERs leaf side first). Whatever the EV
    sent, never raises; a naive `now` is the caller's error (ValueError)."""
    if now.tzinfo is None:
        raise ValueError("check_contract needs a timezone-aware now")
    if not leaf_der:
        return ContractCheck(ContractStatus.INVALID, "no contract certificate")
    if len(sub_ca_ders) > MAX_SUB_CAS:
        return ContractCheck(ContractStatus.INVALID, f"{len(sub_ca_ders)} sub-CA certificates, at most {MAX_SUB_CAS}")
    chain: list[x509.Certificate] = []
    for i, der in enumerate([leaf_der, *sub_ca_ders]):
        cert = _parse(der)
        if cert is None:
            name = "the contract certificate" if i == 0 else f"sub-CA certificate {i}"
            return ContractCheck(ContractStatus.INVALID, f"{name} is not a usable DER X.509 certificate")
        chain.append(cert)
    leaf = chain[0]
    found = _Found(leaf=leaf, emaid=_common_name(leaf), issuer=chain[1] if len(chain) > 1 else None)
    if found.emaid is None:
        return found.verdict(ContractStatus.INVALID, "the contract certificate has no CN (eMAID)")
    if (fault := _leaf_fault(leaf)) is not None:
        return found.verdict(ContractStatus.INVALID, fault)
    try:
        return _check_path(chain, mo_roots, now, found, expires_soon, revocation, strict_revocation)
    except _UNUSABLE as exc:
        return found.verdict(ContractStatus.INVALID, f"a certificate cannot be used ({type(exc).__name__})")


@dataclass
class _Found:
    leaf: x509.Certificate
    emaid: str | None
    issuer: x509.Certificate | None

    def verdict(self, status: ContractStatus, reason: str) -> ContractCheck:
        return ContractCheck(status, reason, self.emaid, self.leaf, self.issuer)


def _check_path(
    chain: list[x509.Certificate],
    roots: Sequence[x509.Certificate],
    now: dt.datetime,
    found: _Found,
    expires_soon: dt.timedelta,
    revocation: RevocationSource | None,
    strict_revocation: bool,
) -> ContractCheck:
    # one walk over the whole path (each signature verified once): the root that issued the last certificate,
    # found by its name and key, joins the chain the EV sent
    root = None if chain[-1] in roots else _issuing_root(chain[-1], roots)
    path = chain if root is None else [*chain, root]
    report = check_chain(path, (), now)
    if links := report.of(Finding.LINK):
        return found.verdict(ContractStatus.INVALID, links[0])
    if chain[-1] not in roots and root is None:
        issuer = chain[-1].issuer.rfc4514_string()
        return found.verdict(ContractStatus.EMSP_UNKNOWN, f"no known MO root {issuer} issued the chain")
    if root is not None:
        found.issuer = path[1]  # the root, when the EV sent the leaf alone
    if expired := report.of(Finding.EXPIRED):
        return found.verdict(ContractStatus.EXPIRED, expired[0])
    if early := report.of(Finding.NOT_YET_VALID):
        return found.verdict(ContractStatus.NOT_YET_VALID, early[0])
    if revocation is not None:
        verdict = _revocation(path, now, revocation, strict_revocation, found)
        if verdict is not None:
            return verdict
    left = found.leaf.not_valid_after_utc - now
    if left < expires_soon:
        return found.verdict(ContractStatus.EXPIRES_SOON, f"the contract certificate expires in {_days(left)}")
    return found.verdict(
        ContractStatus.OK, f"contract {found.emaid} valid until {found.leaf.not_valid_after_utc:%Y-%m-%d}"
    )


def _issuing_root(last: x509.Certificate, roots: Sequence[x509.Certificate]) -> x509.Certificate | None:
    """The first root whose name and key issued `last`: several roots may share a name (a rekeyed root)."""
    for root in roots:
        try:
            last.verify_directly_issued_by(root)  # the names first, then the signature
        except (InvalidSignature, *_UNUSABLE):
            continue
        return root
    return None


def _revocation(
    path: list[x509.Certificate],
    now: dt.datetime,
    source: RevocationSource,
    strict: bool,
    found: _Found,
) -> ContractCheck | None:
    """The verdict revocation gives on every certificate below the root, None when it has nothing against them."""
    answers = [(cert, source.status(cert, issuer, now)) for cert, issuer in zip(path, path[1:], strict=False)]
    for wanted, status in ((OcspStatus.REVOKED, ContractStatus.REVOKED), (None, ContractStatus.PENDING)):
        hits = [cert for cert, answer in answers if answer is wanted]
        if hits:
            what = "is revoked" if wanted is OcspStatus.REVOKED else "has no revocation answer yet"
            return found.verdict(status, f"{hits[0].subject.rfc4514_string()} {what}")
    unknown = [cert for cert, answer in answers if answer is OcspStatus.UNKNOWN]
    if unknown:
        what = f"the revocation status of {unknown[0].subject.rfc4514_string()} is unknown"
        if strict:
            return found.verdict(ContractStatus.INVALID, what)
        log.warning("%s: accepted (soft-fail; strict revocation refuses it)", what)
    return None


def _parse(der: bytes) -> x509.Certificate | None:
    """The certificate, with everything this module and chain_check read of it touched once; None if unusable."""
    try:
        cert = load_certificate(der)
        # cryptography parses lazily: read now what is read later, so that an unusable part shows here.
        _ = cert.public_key(), cert.signature_hash_algorithm, cert.extensions
        _ = cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
    except _UNUSABLE:
        return None
    return cert


def _common_name(cert: x509.Certificate) -> str | None:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else None
    return value if isinstance(value, str) and value else None


def _leaf_fault(leaf: x509.Certificate) -> str | None:
    """What makes the leaf no contract certificate: it must not be a CA, and its key signs AuthorizationReq."""
    try:
        constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return "the contract certificate has no basicConstraints"
    if constraints.ca:
        return "the contract certificate is a CA (basicConstraints CA:true)"
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return "the contract certificate has no keyUsage"
    if not usage.digital_signature:
        return "the contract certificate may not sign (keyUsage without digitalSignature)"
    return None


def _days(left: dt.timedelta) -> str:
    return f"{left.days} days" if left.days != 1 else "1 day"
