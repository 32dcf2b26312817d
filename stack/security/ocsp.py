"""OCSP (RFC 6960) without I/O: a local responder for tests and emulators, the check of a response, and the
revocation sources the contract check asks (PROTOCOL.md sections 4.4 and 8).

- `LocalOcspResponder` answers for the certificates one CA issued, signed by that CA or by a delegated responder
  certificate (EKU OCSPSigning) the CA issued.
- `check_ocsp_response` accepts a response only when it is signed by the issuer or its delegated responder, names
  the certificate asked about, and is current (thisUpdate/nextUpdate, with a small clock skew).
- `RevocationSource` is what `stack.security.contract_check` asks; `StaticOcspResponses` serves DER files given
  on the command line, `OcspCache` the answers an edge fetcher (`stack.security.ocsp_http.OcspFetcher`) brings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

ResponderKey = ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey

# Clocks of a charger, a backend and a responder differ a little; RFC 6960 leaves the tolerance to local policy.
DEFAULT_SKEW = dt.timedelta(minutes=5)
# A response without nextUpdate is taken for this long after its thisUpdate.
DEFAULT_MAX_AGE = dt.timedelta(days=7)
DEFAULT_VALIDITY = dt.timedelta(days=1)
# RFC 5019 (the lightweight profile most responders follow) identifies certificates by SHA-1 CertIDs.
CERT_ID_HASH = hashes.SHA1()
_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm)


class OcspStatus(Enum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


class OcspError(Exception):
    """A response that cannot be relied on: malformed, unsuccessful, wrongly signed, about another certificate."""


class OcspStale(OcspError):
    """A response that was good once: its nextUpdate (or the maximum age) has passed."""


_STATUS = {
    ocsp.OCSPCertStatus.GOOD: OcspStatus.GOOD,
    ocsp.OCSPCertStatus.REVOKED: OcspStatus.REVOKED,
    ocsp.OCSPCertStatus.UNKNOWN: OcspStatus.UNKNOWN,
}


@dataclass(frozen=True)
class _Revocation:
    at: dt.datetime
    reason: x509.ReasonFlags | None


class LocalOcspResponder:
    """Answers for the certificates `issuer_cert` issued; signs with `responder_key` (of `responder_cert`, which is
    the issuer itself or a certificate it issued with EKU OCSPSigning). Knows no list of issued serials: every
    serial of its issuer that is not revoked is good (RFC 6960 section 2.2 allows "good" to mean "not revoked")."""

    def __init__(self, responder_cert: x509.Certificate, responder_key: ResponderKey, issuer_cert: x509.Certificate):
        self.responder_cert = responder_cert
        self.issuer_cert = issuer_cert
        self._key = responder_key
        self._revoked: dict[int, _Revocation] = {}

    def revoke(self, serial: int, at: dt.datetime, reason: x509.ReasonFlags | None = None) -> None:
        """From `at` on, `serial` is revoked."""
        self._revoked[serial] = _Revocation(at, reason)

    def response_for(
        self, cert: x509.Certificate, now: dt.datetime, *, validity: dt.timedelta = DEFAULT_VALIDITY
    ) -> bytes:
        """A signed DER response about `cert` (unknown when another CA issued it), valid from `now` for `validity`."""
        name_hash, key_hash = _issuer_hashes(self.issuer_cert, CERT_ID_HASH)
        ours = cert.issuer == self.issuer_cert.subject
        return self._response(name_hash, key_hash, cert.serial_number, CERT_ID_HASH, now, validity, ours)

    def respond(self, request_der: bytes, now: dt.datetime, *, validity: dt.timedelta = DEFAULT_VALIDITY) -> bytes:
        """The DER answer to a DER OCSP request; malformedRequest for anything that is not one."""
        try:
            request = ocsp.load_der_ocsp_request(request_der)
            algorithm = request.hash_algorithm
            asked = (request.issuer_name_hash, request.issuer_key_hash, request.serial_number)
            ours = asked[:2] == _issuer_hashes(self.issuer_cert, algorithm)
        except _ERRORS:
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        if {len(asked[0]), len(asked[1])} != {algorithm.digest_size}:
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        return self._response(*asked, algorithm, now, validity, ours)

    def _response(
        self,
        name_hash: bytes,
        key_hash: bytes,
        serial: int,
        algorithm: hashes.HashAlgorithm,
        now: dt.datetime,
        validity: dt.timedelta,
        ours: bool,
    ) -> bytes:
        revocation = self._revoked.get(serial) if ours else None
        if revocation is not None and revocation.at > now:
            revocation = None
        status = ocsp.OCSPCertStatus.UNKNOWN if not ours else ocsp.OCSPCertStatus.GOOD
        if revocation is not None:
            status = ocsp.OCSPCertStatus.REVOKED
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=name_hash,
            issuer_key_hash=key_hash,
            serial_number=serial,
            algorithm=algorithm,
            cert_status=status,
            this_update=now,
            next_update=now + validity,
            revocation_time=None if revocation is None else revocation.at,
            revocation_reason=None if revocation is None else revocation.reason,
        )
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, self.responder_cert)
        if self.responder_cert != self.issuer_cert:
            builder = builder.certificates([self.responder_cert])
        response = builder.sign(self._key, _signing_hash(self._key))
        return response.public_bytes(serialization.Encoding.DER)


def check_ocsp_response(
    response_der: bytes,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    now: dt.datetime,
    *,
    skew: dt.timedelta = DEFAULT_SKEW,
    max_age: dt.timedelta = DEFAULT_MAX_AGE,
) -> OcspStatus:
    """What a response says about `cert` (issued by `issuer`); OcspError when it cannot be relied on."""
    try:
        response = ocsp.load_der_ocsp_response(response_der)
    except _ERRORS as exc:
        raise OcspError(f"not an OCSP response ({exc})") from None
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise OcspError(f"the responder answered {response.response_status.name}")
    try:
        single = _single_for(response, cert, issuer)
        this_update, next_update = single.this_update_utc, single.next_update_utc
        status = single.certificate_status
        signer = _signer(response, issuer, now, skew)
    except _ERRORS as exc:
        raise OcspError(f"the response cannot be read ({exc})") from None
    try:
        _verify(signer.public_key(), response.signature, response.tbs_response_bytes, response.signature_hash_algorithm)
    except (InvalidSignature, *_ERRORS) as exc:
        raise OcspError(f"the response's signature does not verify ({type(exc).__name__})") from None
    if this_update > now + skew:
        raise OcspError(f"the response is not valid yet (thisUpdate {this_update:%Y-%m-%d %H:%M:%S})")
    if _STATUS[status] is OcspStatus.REVOKED:  # a revocation does not expire (RFC 5280 3.3): an old one still holds
        return OcspStatus.REVOKED
    if now - skew > (next_update or this_update + max_age):
        raise OcspStale(f"the response is out of date (thisUpdate {this_update:%Y-%m-%d %H:%M:%S})")
    return _STATUS[status]


class RevocationSource(Protocol):
    """Revocation status of `cert` (issued by `issuer`); None when the answer is not known yet. Never raises."""

    def status(self, cert: x509.Certificate, issuer: x509.Certificate, now: dt.datetime) -> OcspStatus | None: ...


class StaticOcspResponses:
    """DER responses fixed at start (the SECC's `--ocsp FILE`): no answer is coming later, so a certificate none of
    them covers (or covers with a response that fails `check_ocsp_response`) is UNKNOWN, never None."""

    def __init__(self, responses: Iterable[bytes], *, skew: dt.timedelta = DEFAULT_SKEW):
        self._responses = list(responses)
        self._skew = skew

    @classmethod
    def load(cls, paths: Iterable[Path | str], *, skew: dt.timedelta = DEFAULT_SKEW) -> StaticOcspResponses:
        """Read DER responses from files; OcspError naming the file that holds none."""
        responses = []
        for path in paths:
            try:
                der = Path(path).read_bytes()
                ocsp.load_der_ocsp_response(der)
            except (OSError, *_ERRORS) as exc:
                raise OcspError(f"{path}: not a DER OCSP response ({exc})") from None
            responses.append(der)
        return cls(responses, skew=skew)

    def status(self, cert: x509.Certificate, issuer: x509.Certificate, now: dt.datetime) -> OcspStatus | None:
        for der in self._responses:
            try:
                return check_ocsp_response(der, cert, issuer, now, skew=self._skew)
            except OcspError:
                continue
        return OcspStatus.UNKNOWN


_Key = tuple[bytes, bytes]


@dataclass(frozen=True)
class _Failure:
    reason: str
    at: dt.datetime


class OcspCache:
    """Responses an edge fetcher brought, by certificate. A certificate asked about and not answered yet is None
    and joins `wanted()`; so is one whose response went out of date. A failed fetch counts as UNKNOWN for
    `retry_after`, then the certificate is wanted again."""

    def __init__(self, *, skew: dt.timedelta = DEFAULT_SKEW, retry_after: dt.timedelta = dt.timedelta(minutes=5)):
        self._skew = skew
        self._retry_after = retry_after
        self._entries: dict[_Key, bytes | _Failure] = {}
        self._wanted: dict[_Key, tuple[x509.Certificate, x509.Certificate]] = {}

    def put(self, cert: x509.Certificate, issuer: x509.Certificate, response_der: bytes) -> None:
        self._entries[_key(cert, issuer)] = response_der

    def fail(self, cert: x509.Certificate, issuer: x509.Certificate, reason: str, now: dt.datetime) -> None:
        self._entries[_key(cert, issuer)] = _Failure(reason, now)

    def failure(self, cert: x509.Certificate, issuer: x509.Certificate) -> str | None:
        """Why the last fetch for `cert` failed, if it did."""
        entry = self._entries.get(_key(cert, issuer))
        return entry.reason if isinstance(entry, _Failure) else None

    def wanted(self) -> list[tuple[x509.Certificate, x509.Certificate]]:
        """The (certificate, issuer) pairs to fetch, each handed out once."""
        pairs = list(self._wanted.values())
        self._wanted.clear()
        return pairs

    def status(self, cert: x509.Certificate, issuer: x509.Certificate, now: dt.datetime) -> OcspStatus | None:
        key = _key(cert, issuer)
        entry = self._entries.get(key)
        if isinstance(entry, _Failure) and now - entry.at < self._retry_after:
            return OcspStatus.UNKNOWN
        if isinstance(entry, bytes):
            try:
                return check_ocsp_response(entry, cert, issuer, now, skew=self._skew)
            except OcspStale:
                pass
            except OcspError:
                return OcspStatus.UNKNOWN
        self._entries.pop(key, None)
        self._wanted[key] = (cert, issuer)
        return None


def ocsp_request(cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
    """The DER OCSP request for `cert` (SHA-1 CertID, no nonce, as RFC 5019 has it)."""
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, CERT_ID_HASH).build()
    return request.public_bytes(serialization.Encoding.DER)


def _key(cert: x509.Certificate, issuer: x509.Certificate) -> _Key:
    return cert.fingerprint(hashes.SHA256()), issuer.fingerprint(hashes.SHA256())


def _issuer_hashes(issuer: x509.Certificate, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
    """issuerNameHash and issuerKeyHash of a CertID for certificates `issuer` issued."""
    name = hashes.Hash(algorithm)
    name.update(issuer.subject.public_bytes())
    # A request for (issuer, issuer) hashes the issuer's key exactly as RFC 6960 wants (the BIT STRING's value).
    key_hash = ocsp.OCSPRequestBuilder().add_certificate(issuer, issuer, algorithm).build().issuer_key_hash
    return name.finalize(), key_hash


def _single_for(
    response: ocsp.OCSPResponse, cert: x509.Certificate, issuer: x509.Certificate
) -> ocsp.OCSPSingleResponse:
    for single in response.responses:
        algorithm = single.hash_algorithm
        name_hash, key_hash = _issuer_hashes(issuer, algorithm)
        if (single.issuer_name_hash, single.issuer_key_hash, single.serial_number) == (
            name_hash,
            key_hash,
            cert.serial_number,
        ):
            return single
    raise OcspError(
        f"the response says nothing about serial {cert.serial_number:#x} of {issuer.subject.rfc4514_string()}"
    )


def _signer(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, now: dt.datetime, skew: dt.timedelta
) -> x509.Certificate:
    """The issuer, or the delegated responder certificate in the response that the issuer authorised."""
    for candidate in (issuer, *response.certificates):
        if response.responder_key_hash is not None:
            named = (
                x509.SubjectKeyIdentifier.from_public_key(candidate.public_key()).digest == response.responder_key_hash
            )
        else:
            named = candidate.subject == response.responder_name
        if not named:
            continue
        if candidate == issuer or candidate.public_key() == issuer.public_key():
            return candidate
        if _delegated(candidate, issuer, now, skew):
            return candidate
    raise OcspError("the response is signed neither by the issuer nor by a responder the issuer authorised")


def _delegated(responder: x509.Certificate, issuer: x509.Certificate, now: dt.datetime, skew: dt.timedelta) -> bool:
    """RFC 6960 section 4.2.2.2: issued directly by the CA, with id-kp-OCSPSigning, valid now."""
    try:
        responder.verify_directly_issued_by(issuer)
        usage = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (InvalidSignature, x509.ExtensionNotFound, *_ERRORS):
        return False
    in_time = responder.not_valid_before_utc - skew <= now <= responder.not_valid_after_utc + skew
    return ExtendedKeyUsageOID.OCSP_SIGNING in usage and in_time


def _verify(key: object, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
        key.verify(signature, data, ec.ECDSA(algorithm))
    elif isinstance(key, ed448.Ed448PublicKey | ed25519.Ed25519PublicKey) and algorithm is None:
        key.verify(signature, data)
    elif isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
        key.verify(signature, data, padding.PKCS1v15(), algorithm)
    else:
        raise InvalidSignature(f"{type(key).__name__} with {algorithm}")


def _signing_hash(key: ResponderKey) -> hashes.HashAlgorithm | None:
    """The digest that goes with a key: none for EdDSA, SHA-512 for P-521 as -20 wants, else SHA-256/384."""
    if isinstance(key, ed448.Ed448PrivateKey | ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {521: hashes.SHA512(), 384: hashes.SHA384()}.get(key.curve.key_size, hashes.SHA256())
    return hashes.SHA256()


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)
