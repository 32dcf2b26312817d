"""The SECC's check of a PnC contract chain: a good chain of each profile, each broken chain named with its -20
ResponseCode, revocation (revoked, pending, unknown) and garbage of every kind giving a status, never an exception.

The chains are built here (MO root -> MO sub-CA 1 -> MO sub-CA 2 -> contract leaf, CN = eMAID) so that the test
does not depend on the test PKI of stack.security.pki; tests/unit/test_ocsp.py uses the same helpers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stack.messages.iso20_types import Processing, ResponseCode
from stack.security.contract_check import RESPONSE_CODES, ContractStatus, check_contract
from stack.security.ocsp import LocalOcspResponder, OcspStatus, StaticOcspResponses

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
EMAID = "DE-8EO-C12345678-9"
Key = ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey
# -20 profiles (P-521 with ECDSA-SHA512, Ed448) and the -2 one Josev still uses for -20 (P-256, ECDSA-SHA256).
PROFILES: dict[str, Callable[[], Key]] = {
    "secp521r1": lambda: ec.generate_private_key(ec.SECP521R1()),
    "ed448": ed448.Ed448PrivateKey.generate,
    "secp256r1": lambda: ec.generate_private_key(ec.SECP256R1()),
}


@dataclass
class Issued:
    cert: x509.Certificate
    key: Key

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


def _digest(key: Key) -> hashes.SHA512 | hashes.SHA256 | None:
    if isinstance(key, ed448.Ed448PrivateKey):
        return None
    return hashes.SHA512() if key.curve.key_size == 521 else hashes.SHA256()


def issue(
    cn: str | None,
    key: Key,
    issuer: Issued | None,
    *,
    ca: bool,
    path_length: int | None = None,
    valid: tuple[dt.datetime, dt.datetime] = (NOW - dt.timedelta(days=30), NOW + dt.timedelta(days=365)),
    digital_signature: bool = True,
    key_cert_sign: bool | None = None,
    ocsp_url: str | None = None,
    eku: Sequence[x509.ObjectIdentifier] = (),
    basic_constraints: bool = True,
    serial: int | None = None,
) -> Issued:
    """A certificate of `key` signed by `issuer` (self-signed when None), with the extensions of the -20 profile."""
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MO")]
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), *attributes] if cn else attributes)
    signer = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.cert.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
    )
    if basic_constraints:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    signs = ca if key_cert_sign is None else key_cert_sign
    usage = x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=not ca,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not ca and not isinstance(key, ed448.Ed448PrivateKey),
        key_cert_sign=signs,
        crl_sign=signs,
        encipher_only=False,
        decipher_only=False,
    )
    builder = builder.add_extension(usage, critical=True)
    if ocsp_url:
        location = x509.UniformResourceIdentifier(ocsp_url)
        access = x509.AuthorityInformationAccess([x509.AccessDescription(AuthorityInformationAccessOID.OCSP, location)])
        builder = builder.add_extension(access, critical=False)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if ExtendedKeyUsageOID.OCSP_SIGNING in eku:
        builder = builder.add_extension(x509.OCSPNoCheck(), critical=False)
    return Issued(builder.sign(signer, _digest(signer)), key)


@dataclass
class MoChain:
    """MO root -> sub-CA 1 (pathlen 1) -> sub-CA 2 (pathlen 0) -> contract leaf, and an OCSP responder of sub-CA 2."""

    new_key: Callable[[], Key]
    root: Issued
    sub1: Issued
    sub2: Issued
    leaf: Issued
    responder: Issued

    @property
    def sub_ders(self) -> list[bytes]:
        return [self.sub2.der, self.sub1.der]

    def key(self) -> Key:
        return self.new_key()

    def contract(self, cn: str | None = EMAID, **kwargs: Any) -> Issued:
        """Another leaf under sub-CA 2 (same options as `issue`)."""
        return issue(cn, self.key(), self.sub2, ca=False, **kwargs)

    def local_responder(self) -> LocalOcspResponder:
        return LocalOcspResponder(self.responder.cert, self.responder.key, self.sub2.cert)


def make_chain(profile: str = "secp521r1") -> MoChain:
    new_key = PROFILES[profile]
    root = issue("MO Root CA", new_key(), None, ca=True)
    sub1 = issue("MO Sub-CA 1", new_key(), root, ca=True, path_length=1)
    sub2 = issue("MO Sub-CA 2", new_key(), sub1, ca=True, path_length=0)
    leaf = issue(EMAID, new_key(), sub2, ca=False)
    responder = issue("MO OCSP", new_key(), sub2, ca=False, eku=[ExtendedKeyUsageOID.OCSP_SIGNING])
    return MoChain(new_key, root, sub1, sub2, leaf, responder)


@pytest.fixture(scope="module", params=list(PROFILES))
def chain(request: pytest.FixtureRequest) -> MoChain:
    return make_chain(request.param)


@pytest.fixture(scope="module")
def p521() -> MoChain:
    return make_chain("secp521r1")


@pytest.fixture(scope="module")
def other() -> MoChain:
    return make_chain("secp521r1")


def test_a_good_chain_of_each_profile_is_ok_with_its_emaid(chain: MoChain) -> None:
    result = check_contract(chain.leaf.der, chain.sub_ders, [chain.root.cert], NOW)
    assert result.status is ContractStatus.OK, result.reason
    assert result.emaid == EMAID and result.leaf == chain.leaf.cert and result.issuer == chain.sub2.cert
    assert (result.response_code, result.processing) == (ResponseCode.OK, Processing.Finished)


def test_one_sub_ca_and_the_root_sent_along_are_fine(p521: MoChain) -> None:
    direct = issue("EMAID-DIRECT", p521.key(), p521.sub1, ca=False)
    no_path_left = check_contract(direct.der, [p521.sub1.der], [p521.root.cert], NOW)
    assert no_path_left.status is ContractStatus.OK, no_path_left.reason
    with_root = check_contract(p521.leaf.der, [*p521.sub_ders, p521.root.der], [p521.root.cert], NOW)
    assert with_root.status is ContractStatus.OK, with_root.reason


def test_a_leaf_expiring_within_14_days_is_ok_with_a_warning(p521: MoChain) -> None:
    soon = p521.contract(valid=(NOW - dt.timedelta(days=300), NOW + dt.timedelta(days=13)))
    result = check_contract(soon.der, p521.sub_ders, [p521.root.cert], NOW)
    assert (
        result.status is ContractStatus.EXPIRES_SOON and result.response_code is ResponseCode.OK_CertificateExpiresSoon
    )
    later = check_contract(soon.der, p521.sub_ders, [p521.root.cert], NOW, expires_soon=dt.timedelta(days=7))
    assert later.status is ContractStatus.OK


def test_dates_outside_the_validity_give_expired_and_not_yet_valid(p521: MoChain) -> None:
    roots = [p521.root.cert]
    after = check_contract(p521.leaf.der, p521.sub_ders, roots, NOW + dt.timedelta(days=400))
    assert after.status is ContractStatus.EXPIRED and after.response_code is ResponseCode.WARNING_CertificateExpired
    before = check_contract(p521.leaf.der, p521.sub_ders, roots, NOW - dt.timedelta(days=60))
    assert before.status is ContractStatus.NOT_YET_VALID
    assert before.response_code is ResponseCode.WARNING_CertificateNotYetValid
    assert after.emaid == before.emaid == EMAID


def test_expired_anywhere_wins_over_not_yet_valid(p521: MoChain) -> None:
    old_sub = issue(
        "MO Sub-CA 2",
        p521.key(),
        p521.sub1,
        ca=True,
        path_length=0,
        valid=(NOW - dt.timedelta(days=90), NOW - dt.timedelta(days=1)),
    )
    future_leaf = issue(
        EMAID, p521.key(), old_sub, ca=False, valid=(NOW + dt.timedelta(days=1), NOW + dt.timedelta(days=90))
    )
    result = check_contract(future_leaf.der, [old_sub.der, p521.sub1.der], [p521.root.cert], NOW)
    assert result.status is ContractStatus.EXPIRED, result.reason


def test_a_chain_ending_at_an_unknown_root_is_an_unknown_emsp(p521: MoChain, other: MoChain) -> None:
    result = check_contract(p521.leaf.der, p521.sub_ders, [other.root.cert], NOW)
    assert result.status is ContractStatus.EMSP_UNKNOWN and result.response_code is ResponseCode.WARNING_eMSPUnknown
    assert result.emaid == EMAID
    assert check_contract(p521.leaf.der, p521.sub_ders, [], NOW).status is ContractStatus.EMSP_UNKNOWN


def test_a_root_of_the_right_name_but_another_key_is_not_the_issuer(p521: MoChain) -> None:
    rekeyed = issue("MO Root CA", p521.key(), None, ca=True)
    result = check_contract(p521.leaf.der, p521.sub_ders, [rekeyed.cert], NOW)
    assert result.status is ContractStatus.EMSP_UNKNOWN
    both = check_contract(p521.leaf.der, p521.sub_ders, [rekeyed.cert, p521.root.cert], NOW)
    assert both.status is ContractStatus.OK and both.issuer == p521.sub2.cert


def test_a_known_root_whose_path_length_the_chain_breaks_is_a_validation_error(p521: MoChain) -> None:
    strict_root = issue("MO Root CA 0", p521.key(), None, ca=True, path_length=0)
    sub = issue("MO Sub-CA", p521.key(), strict_root, ca=True, path_length=0)
    leaf = issue(EMAID, p521.key(), sub, ca=False)
    result = check_contract(leaf.der, [sub.der], [strict_root.cert], NOW)
    assert result.status is ContractStatus.INVALID and "sub-CAs below it" in result.reason


def test_each_broken_link_is_a_validation_error(p521: MoChain, other: MoChain) -> None:
    roots = [p521.root.cert]
    cases = {
        "sub-CAs out of order": (p521.leaf.der, [p521.sub1.der, p521.sub2.der]),
        "a sub-CA of another chain": (p521.leaf.der, [other.sub2.der, p521.sub1.der]),
        "a leaf of another chain": (other.leaf.der, p521.sub_ders),
        "the leaf as its own CA": (p521.leaf.der, [p521.leaf.der, p521.sub1.der]),
    }
    # An issuer that is no CA, one that may not sign certificates, a path length exceeded.
    no_ca = issue("MO Sub-CA 2", p521.key(), p521.sub1, ca=False, basic_constraints=True)
    cases["issuer not a CA"] = (issue(EMAID, p521.key(), no_ca, ca=False).der, [no_ca.der, p521.sub1.der])
    no_sign = issue("MO Sub-CA 2", p521.key(), p521.sub1, ca=True, path_length=0, key_cert_sign=False)
    cases["issuer without keyCertSign"] = (
        issue(EMAID, p521.key(), no_sign, ca=False).der,
        [no_sign.der, p521.sub1.der],
    )
    deep = issue("MO Sub-CA 3", p521.key(), p521.sub2, ca=True, path_length=0)
    cases["path length"] = (issue(EMAID, p521.key(), deep, ca=False).der, [deep.der, *p521.sub_ders])
    tampered = bytearray(p521.leaf.der)
    tampered[-3] ^= 0x01
    cases["a bad signature"] = (bytes(tampered), p521.sub_ders)
    for name, (leaf, subs) in cases.items():
        result = check_contract(leaf, subs, roots, NOW)
        assert result.status is ContractStatus.INVALID, name
        assert result.response_code is ResponseCode.WARNING_CertificateValidationError, name


def test_a_leaf_that_is_no_contract_certificate_is_a_validation_error(p521: MoChain) -> None:
    leaves = {
        "CA:true": issue(EMAID, p521.key(), p521.sub2, ca=True, path_length=0, key_cert_sign=False),
        "no basicConstraints": p521.contract(basic_constraints=False),
        "no digitalSignature": p521.contract(digital_signature=False),
        "no CN": p521.contract(cn=None),
    }
    for name, leaf in leaves.items():
        result = check_contract(leaf.der, p521.sub_ders, [p521.root.cert], NOW)
        assert result.status is ContractStatus.INVALID, name
        assert result.leaf == leaf.cert, name


def test_a_naive_time_is_the_callers_error(p521: MoChain) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        check_contract(p521.leaf.der, p521.sub_ders, [p521.root.cert], NOW.replace(tzinfo=None))


def test_more_than_three_sub_cas_and_an_empty_chain_are_validation_errors(p521: MoChain) -> None:
    roots = [p521.root.cert]
    subs = [p521.sub1]
    for n in range(2, 5):
        subs.append(issue(f"MO Sub-CA {n}", p521.key(), subs[-1], ca=True))
    leaf = issue(EMAID, p521.key(), subs[-1], ca=False)
    four = check_contract(leaf.der, [c.der for c in subs[::-1]], roots, NOW)
    assert four.status is ContractStatus.INVALID and four.reason == "4 sub-CA certificates, at most 3"
    assert check_contract(b"", [], roots, NOW).status is ContractStatus.INVALID
    assert check_contract(b"", p521.sub_ders, roots, NOW).reason == "no contract certificate"


def test_revocation_revoked_pending_and_unknown(p521: MoChain) -> None:
    roots = [p521.root.cert]
    responder = p521.local_responder()
    revoked = p521.contract()
    responder.revoke(revoked.cert.serial_number, NOW - dt.timedelta(hours=1))
    issuer_signed = LocalOcspResponder(p521.sub1.cert, p521.sub1.key, p521.sub1.cert)
    responses = [
        responder.response_for(p521.leaf.cert, NOW),
        responder.response_for(revoked.cert, NOW),
        issuer_signed.response_for(p521.sub2.cert, NOW),
    ]
    static = StaticOcspResponses(responses)
    good = check_contract(p521.leaf.der, p521.sub_ders, roots, NOW, revocation=static)
    assert good.status is ContractStatus.OK, good.reason
    bad = check_contract(revoked.der, p521.sub_ders, roots, NOW, revocation=static)
    assert bad.status is ContractStatus.REVOKED and bad.response_code is ResponseCode.WARNING_CertificateRevoked
    # sub-CA 1 has no response: UNKNOWN, which blocks only when strict.
    strict = check_contract(p521.leaf.der, p521.sub_ders, roots, NOW, revocation=static, strict_revocation=True)
    assert strict.status is ContractStatus.INVALID and "MO Sub-CA 1" in strict.reason

    class Waiting:
        def status(self, cert: x509.Certificate, issuer: x509.Certificate, now: dt.datetime) -> OcspStatus | None:
            return None

    pending = check_contract(p521.leaf.der, p521.sub_ders, roots, NOW, revocation=Waiting())
    assert pending.status is ContractStatus.PENDING
    assert (pending.response_code, pending.processing) == (ResponseCode.OK, Processing.Ongoing)


def test_every_status_has_a_response_code_of_authorization_res() -> None:
    accepted = {ContractStatus.OK, ContractStatus.EXPIRES_SOON, ContractStatus.PENDING}
    assert set(RESPONSE_CODES) == set(ContractStatus)
    assert {RESPONSE_CODES[s] for s in accepted} == {ResponseCode.OK, ResponseCode.OK_CertificateExpiresSoon}
    assert all(RESPONSE_CODES[s].startswith("WARNING_") for s in set(ContractStatus) - accepted)


def test_certificates_of_another_kind_give_a_status(p521: MoChain) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, EMAID)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(p521.sub2.cert.subject)
        .last_update(NOW)
        .next_update(NOW + dt.timedelta(days=1))
        .sign(p521.sub2.key, hashes.SHA512())
    )
    pem = p521.leaf.cert.public_bytes(serialization.Encoding.PEM)
    for der in (csr.public_bytes(serialization.Encoding.DER), crl.public_bytes(serialization.Encoding.DER), pem):
        assert check_contract(der, p521.sub_ders, [p521.root.cert], NOW).status is ContractStatus.INVALID
        assert check_contract(p521.leaf.der, [der], [p521.root.cert], NOW).status is ContractStatus.INVALID


def _mutations(der: bytes) -> st.SearchStrategy[bytes]:
    flips = st.tuples(st.integers(0, len(der) - 1), st.integers(1, 255))
    return st.lists(flips, max_size=4).map(lambda fs: _flip(der, fs)) | st.integers(0, len(der)).map(lambda n: der[:n])


def _flip(der: bytes, flips: list[tuple[int, int]]) -> bytes:
    data = bytearray(der)
    for at, mask in flips:
        data[at] ^= mask
    return bytes(data)


_GOOD = make_chain("secp256r1")
_PIECES = [_GOOD.leaf.der, _GOOD.sub2.der, _GOOD.sub1.der, _GOOD.root.der]
_GARBAGE = st.binary(max_size=300) | st.sampled_from(_PIECES) | st.sampled_from(_PIECES).flatmap(_mutations)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(leaf=_GARBAGE, subs=st.lists(_GARBAGE, max_size=5), when=st.integers(-800, 800))
@example(leaf=_flip(_GOOD.leaf.der, [(12, 1)]), subs=[], when=0)  # version 3: cryptography's InvalidVersion (CI)
def test_garbage_gives_a_status_never_an_exception(leaf: bytes, subs: list[bytes], when: int) -> None:
    result = check_contract(leaf, subs, [_GOOD.root.cert], NOW + dt.timedelta(days=when))
    assert isinstance(result.status, ContractStatus) and result.reason
    if result.status is ContractStatus.OK:  # only the good leaf, whatever bytes it came in, may pass
        assert result.leaf is not None and result.leaf.public_key() == _GOOD.leaf.cert.public_key()
