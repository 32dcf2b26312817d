"""XML signatures over EXI fragments (stack/security/xmldsig.py): the six signed -20 elements, three suites,
both Ed448 digests and both SignedInfo grammars; tampering, wrong keys and garbage give typed errors only."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stack import exi
from stack.messages import iso20_common as cm
from stack.messages import xmldsig as ds
from stack.security import xmldsig
from stack.security.xmldsig import (
    AlgorithmError,
    BadSignatureValueError,
    DigestMismatchError,
    MalformedSignatureError,
    PartError,
    ReferenceMismatchError,
    SignatureError,
    SignatureSettings,
    SignedPart,
    sign,
    verify,
)
from tests.interop.test_josev_differential import PNC_SAMPLES, walk
from tests.strategies import message_strategy

# XSD element name -> (PnC sample holding it, its class)
SIGNED: dict[str, tuple[str, type]] = {
    "PnC_AReqAuthorizationMode": ("AuthorizationReq", cm.PncAReqAuthorizationMode),
    "OEMProvisioningCertificateChain": ("CertificateInstallationReq", cm.SignedCertificateChain),
    "SignedInstallationData": ("CertificateInstallationRes", cm.SignedInstallationData),
    "SignedMeteringData": ("MeteringConfirmationReq", cm.SignedMeteringData),
    "AbsolutePriceSchedule": ("ScheduleExchangeRes", cm.AbsolutePriceSchedule),
    "PriceLevelSchedule": ("ScheduleExchangeRes", cm.PriceLevelSchedule),
}
P521 = ec.generate_private_key(ec.SECP521R1())
P256 = ec.generate_private_key(ec.SECP256R1())
ED448 = ed448.Ed448PrivateKey.generate()
KEYS: dict[str, xmldsig.PrivateKey] = {"p521": P521, "p256": P256, "ed448": ED448}


def _sha512(data: bytes) -> bytes:
    return hashlib.sha512(data).digest()


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@dataclasses.dataclass(frozen=True)
class Case:
    """One suite: the signing key, the settings, and what the signature must then hold."""

    key: xmldsig.PrivateKey
    settings: SignatureSettings
    method: str
    digest_uri: str
    digest: Callable[[bytes], bytes]
    size: int


SUITES = {
    "ecdsa-p521": Case(KEYS["p521"], SignatureSettings(), xmldsig.ECDSA_SHA512, xmldsig.SHA512, _sha512, 132),
    "ecdsa-p256": Case(KEYS["p256"], SignatureSettings(), xmldsig.ECDSA_SHA256, xmldsig.SHA256, _sha256, 64),
    "ed448-sha512": Case(KEYS["ed448"], SignatureSettings(), xmldsig.EDDSA_ED448, xmldsig.SHA512, _sha512, 114),
    "ed448-shake256": Case(
        KEYS["ed448"],
        SignatureSettings(ed448_digest="shake256"),
        xmldsig.EDDSA_ED448,
        xmldsig.SHAKE256,
        lambda data: hashlib.shake_256(data).digest(64),
        114,
    ),
}


def part(name: str) -> SignedPart:
    sample, cls = SIGNED[name]
    element = next(x for x in walk(exi.from_xml(PNC_SAMPLES[sample])) if type(x) is cls)
    return SignedPart(element, name, "iso20-common")


def tampered(p: SignedPart) -> SignedPart:
    """`p` with one value changed: the first bytes or int field below it that is not its Id."""
    element = copy.deepcopy(p.element)
    for item in walk(element):
        for f in dataclasses.fields(item):  # type: ignore[arg-type]
            value = getattr(item, f.name)
            if f.name != "id" and isinstance(value, bytes) and value:
                setattr(item, f.name, bytes([value[0] ^ 1]) + value[1:])
                return SignedPart(element, p.name, p.schema)
            if f.name != "id" and isinstance(value, int) and not isinstance(value, bool):
                setattr(item, f.name, value + 1)
                return SignedPart(element, p.name, p.schema)
    raise AssertionError(f"nothing to change in {p.name}")


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("name", SIGNED)
def test_sign_verify_round_trip(name: str, suite: str) -> None:
    case = SUITES[suite]
    p = part(name)
    signature = sign([p], case.key, case.settings)
    verify(signature, [p], case.key.public_key(), case.settings)
    info = signature.signed_info
    assert info.canonicalization_method.algorithm == xmldsig.C14N_EXI
    assert info.signature_method.algorithm == case.method
    (ref,) = info.reference
    assert ref.uri == "#" + p.element.id  # type: ignore[attr-defined]
    assert ref.transforms == ds.Transforms(transform=[ds.Transform(algorithm=xmldsig.C14N_EXI)])
    assert ref.digest_method.algorithm == case.digest_uri
    fragment = exi.encode_fragment(p.element, schema="iso20-common", element=p.qname)
    assert ref.digest_value == case.digest(fragment)
    assert len(signature.signature_value.value) == case.size


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("name", SIGNED)
def test_tampered_element_breaks_its_digest(name: str, suite: str) -> None:
    key, options = SUITES[suite].key, SUITES[suite].settings
    p = part(name)
    signature = sign([p], key, options)
    with pytest.raises(DigestMismatchError):
        verify(signature, [tampered(p)], key.public_key(), options)


@pytest.mark.parametrize("suite", ["ecdsa-p521", "ecdsa-p256"])
def test_signature_value_is_raw_r_s_over_the_signed_info_fragment(suite: str) -> None:
    """Independent of `verify`: r||s, DER-encoded again, verifies over the xmldsig fragment of SignedInfo."""
    key = P521 if suite == "ecdsa-p521" else P256
    signature = sign([part("PnC_AReqAuthorizationMode")], key)
    data = exi.encode_fragment(signature.signed_info, schema="xmldsig", element=xmldsig.SIGNED_INFO)
    value = signature.signature_value.value
    half = len(value) // 2
    der = encode_dss_signature(int.from_bytes(value[:half], "big"), int.from_bytes(value[half:], "big"))
    digest = hashes.SHA512() if suite == "ecdsa-p521" else hashes.SHA256()
    key.public_key().verify(der, data, ec.ECDSA(digest))


def test_ed448_signs_the_signed_info_fragment() -> None:
    signature = sign([part("SignedMeteringData")], ED448)
    data = exi.encode_fragment(signature.signed_info, schema="xmldsig", element=xmldsig.SIGNED_INFO)
    ED448.public_key().verify(signature.signature_value.value, data)


@pytest.mark.parametrize("suite", SUITES)
def test_authorization_req_with_its_signature_survives_exi(suite: str) -> None:
    key, options = SUITES[suite].key, SUITES[suite].settings
    msg = exi.from_xml(PNC_SAMPLES["AuthorizationReq"])
    assert isinstance(msg, cm.AuthorizationReq) and msg.pnc_a_req_authorization_mode is not None
    msg.header.signature = sign(
        [SignedPart(msg.pnc_a_req_authorization_mode, "PnC_AReqAuthorizationMode")], key, options
    )
    back = exi.decode(exi.encode(msg), "iso20-common")
    assert isinstance(back, cm.AuthorizationReq) and back == msg
    assert back.header.signature is not None and back.pnc_a_req_authorization_mode is not None
    received = SignedPart(back.pnc_a_req_authorization_mode, "PnC_AReqAuthorizationMode")
    verify(back.header.signature, [received], key.public_key(), options)
    back.pnc_a_req_authorization_mode.gen_challenge = bytes(16)
    with pytest.raises(DigestMismatchError):
        verify(back.header.signature, [received], key.public_key(), options)


def test_two_references_and_every_part_referenced_once() -> None:
    key, options = SUITES["ecdsa-p521"].key, SUITES["ecdsa-p521"].settings
    absolute, level = part("AbsolutePriceSchedule"), part("PriceLevelSchedule")
    signature = sign([absolute, level], key, options)
    assert [r.uri for r in signature.signed_info.reference] == ["#id5", "#id6"]
    verify(signature, [level, absolute], key.public_key(), options)  # the order of the parts does not matter
    with pytest.raises(ReferenceMismatchError):
        verify(signature, [absolute], key.public_key(), options)  # a Reference to no given part
    with pytest.raises(ReferenceMismatchError):
        verify(sign([absolute], key, options), [absolute, level], key.public_key(), options)  # a part unreferenced
    twice = copy.deepcopy(signature)
    twice.signed_info.reference[1].uri = "#id5"
    with pytest.raises(ReferenceMismatchError):
        verify(twice, [absolute, level], key.public_key(), options)


def test_parts_that_cannot_be_referenced() -> None:
    key = KEYS["p521"]
    p = part("SignedMeteringData")
    with pytest.raises(PartError):
        sign([p, p], key)  # one Id twice
    with pytest.raises(PartError):
        sign([], key)
    no_id = part("AbsolutePriceSchedule")
    no_id.element.id = None  # type: ignore[attr-defined]
    with pytest.raises(PartError):
        sign([no_id], key)
    with pytest.raises(PartError):
        sign([SignedPart(p.element, "AbsolutePriceSchedule")], key)  # not the element of that type
    with pytest.raises(PartError):
        sign([SignedPart(p.element, "SignedMeteringData", "no-such-schema")], key)


def test_key_decides_the_suite_and_must_match_the_uris() -> None:
    p = part("PnC_AReqAuthorizationMode")
    by_p521 = sign([p], KEYS["p521"])
    with pytest.raises(AlgorithmError):
        verify(by_p521, [p], KEYS["p256"].public_key())  # a -2 key for a -20 signature
    with pytest.raises(AlgorithmError):
        verify(by_p521, [p], KEYS["ed448"].public_key())
    with pytest.raises(AlgorithmError):
        sign([p], ec.generate_private_key(ec.SECP384R1()))  # no suite for P-384
    by_ed448 = sign([p], KEYS["ed448"])
    with pytest.raises(AlgorithmError):
        verify(by_ed448, [p], KEYS["ed448"].public_key(), SignatureSettings(ed448_digest="shake256"))
    with pytest.raises(BadSignatureValueError):
        verify(by_p521, [p], ec.generate_private_key(ec.SECP521R1()).public_key())  # same suite, other key


def test_keys_of_the_wrong_kind() -> None:
    p = part("SignedMeteringData")
    signature = sign([p], P521)
    for not_public in (P521, ED448, None, b"key"):
        with pytest.raises(AlgorithmError):
            verify(signature, [p], not_public)  # type: ignore[arg-type]
    for not_private in (P521.public_key(), ED448.public_key(), None):
        with pytest.raises(AlgorithmError):
            sign([p], not_private)  # type: ignore[arg-type]


def test_signed_info_grammar_setting() -> None:
    """The CommonMessages grammar gives other SignedInfo bytes: each setting verifies only its own."""
    key, p = KEYS["p521"], part("PnC_AReqAuthorizationMode")
    message_set = SignatureSettings(signed_info_schema="iso20-common")
    signature = sign([p], key, message_set)
    info = signature.signed_info
    assert exi.encode_fragment(info, schema="iso20-common", element=xmldsig.SIGNED_INFO) != exi.encode_fragment(
        info, schema="xmldsig", element=xmldsig.SIGNED_INFO
    )
    verify(signature, [p], key.public_key(), message_set)
    with pytest.raises(BadSignatureValueError):
        verify(signature, [p], key.public_key())


def test_settings_refuse_unknown_values() -> None:
    with pytest.raises(ValueError, match="ed448_digest"):
        SignatureSettings(ed448_digest="sha3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="signed_info_schema"):
        SignatureSettings(signed_info_schema="iso2")


# -- garbage: only SignatureError, whatever comes in ------------------------------------------------------------
URIS = [xmldsig.C14N_EXI, xmldsig.ECDSA_SHA512, xmldsig.ECDSA_SHA256, xmldsig.EDDSA_ED448, xmldsig.SHA512]
URIS += [xmldsig.SHA256, xmldsig.SHAKE256, "", "http://www.w3.org/2000/09/xmldsig#sha1"]
uris = st.sampled_from(URIS) | st.text(max_size=40)
GARBAGE_KEYS: list[object] = [KEYS["p521"].public_key(), KEYS["p256"].public_key(), KEYS["ed448"].public_key()]
GARBAGE_KEYS += [ec.generate_private_key(ec.SECP384R1()).public_key(), None, b"key", KEYS["p521"]]


@st.composite
def garbled(draw: st.DrawFn) -> tuple[object, list[SignedPart], object, SignatureSettings]:
    """A real signature of a real part with some of its fields replaced by random values."""
    suite = draw(st.sampled_from(sorted(SUITES)))
    key, options = SUITES[suite].key, SUITES[suite].settings
    p = part(draw(st.sampled_from(sorted(SIGNED))))
    signature = copy.deepcopy(SIGNATURES[(suite, p.name)])
    info, ref = signature.signed_info, signature.signed_info.reference[0]
    changes = draw(st.sets(st.sampled_from(["value", "digest", "uri", "c14n", "method", "digest_uri", "transform"])))
    for change in changes:
        if change == "value":
            signature.signature_value.value = draw(st.binary(max_size=200))
        elif change == "digest":
            ref.digest_value = draw(st.binary(max_size=80))
        elif change == "uri":
            ref.uri = draw(st.none() | st.text(max_size=20) | st.just("#id1"))
        elif change == "c14n":
            info.canonicalization_method.algorithm = draw(uris)
        elif change == "method":
            info.signature_method.algorithm = draw(uris)
        elif change == "digest_uri":
            ref.digest_method.algorithm = draw(uris)
        else:
            ref.transforms = draw(
                st.none() | st.builds(lambda a: ds.Transforms(transform=[ds.Transform(algorithm=a)]), uris)
            )
    public_key = draw(st.sampled_from([key.public_key(), *GARBAGE_KEYS]))
    whole = draw(
        st.sampled_from(
            [
                signature,
                signature,
                signature,
                None,
                "Signature",
                info,
                ds.Signature(signed_info=info, signature_value=None),  # type: ignore[arg-type]
            ]
        )
    )
    return whole, [p], public_key, options


SIGNATURES = {
    (suite, name): sign([part(name)], SUITES[suite].key, SUITES[suite].settings) for suite in SUITES for name in SIGNED
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbled())
def test_garbage_gives_only_signature_errors(case: tuple[object, list[SignedPart], object, SignatureSettings]) -> None:
    signature, parts, public_key, options = case
    try:
        verify(signature, parts, public_key, options)  # type: ignore[arg-type]
    except SignatureError:
        return
    # it verified: then it must be an untouched signature with its own key
    suite = next(s for s in SUITES if SUITES[s].settings == options and SUITES[s].key.public_key() == public_key)
    assert signature == SIGNATURES[(suite, parts[0].name)]


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(sorted(SUITES)))
def test_random_signature_values_never_verify(value: bytes, suite: str) -> None:
    key, options = SUITES[suite].key, SUITES[suite].settings
    p = part("SignedInstallationData")
    signature = copy.deepcopy(SIGNATURES[(suite, p.name)])
    signature.signature_value.value = value
    with pytest.raises(BadSignatureValueError):
        verify(signature, [p], key.public_key(), options)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message_strategy(ds.Signature), st.sampled_from(sorted(SUITES)), st.sampled_from(sorted(SIGNED)))
def test_any_schema_valid_signature_is_refused(signature: ds.Signature, suite: str, name: str) -> None:
    """Random ds.Signature instances (any KeyInfo, Object, lists): a typed refusal, never another exception."""
    with pytest.raises(SignatureError):
        verify(signature, [part(name)], SUITES[suite].key.public_key(), SUITES[suite].settings)


def test_parts_of_the_wrong_kind() -> None:
    signature = SIGNATURES[("ecdsa-p521", "SignedMeteringData")]
    element = part("SignedMeteringData").element
    no_name = SignedPart(element, 7)  # type: ignore[arg-type]
    no_schema = SignedPart(element, "SignedMeteringData", None)  # type: ignore[arg-type]
    for parts in ("parts", [None], [no_name], [no_schema]):
        with pytest.raises(PartError):
            verify(signature, parts, P521.public_key())  # type: ignore[arg-type]


def test_malformed_structures() -> None:
    key, p = KEYS["p521"], part("PnC_AReqAuthorizationMode")
    good = SIGNATURES[("ecdsa-p521", p.name)]
    empty = copy.deepcopy(good)
    empty.signed_info.reference = []
    wrong_type = copy.deepcopy(good)
    wrong_type.signed_info.reference[0].digest_value = "00"  # type: ignore[assignment]
    long_id = copy.deepcopy(good)
    long_id.signed_info.id = "\ud800"  # a lone surrogate EXI cannot write
    for bad, error in ((empty, MalformedSignatureError), (wrong_type, MalformedSignatureError)):
        with pytest.raises(error):
            verify(bad, [p], key.public_key())
    with pytest.raises(SignatureError):
        verify(long_id, [p], key.public_key())
