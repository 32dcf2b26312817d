"""The generated test PKI: chain structure, extensions, algorithms, both profiles, idempotence, errors."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID

from mcs_v2g.cli import main as mcs_v2g_main
from stack.security.pki import (
    CHAINS,
    DEFAULT_EVCC_ID,
    DEFAULT_EVSE_ID,
    ENTITY_NAMES,
    PkiFileInvalid,
    PkiFileMissing,
    PkiPaths,
    default_pki_dir,
    ensure_pki,
    generate_pki,
    load_certificates,
    load_pki,
    load_private_key,
)

ALGORITHMS = {
    "secp521r1": (ec.SECP521R1, hashes.SHA512, SignatureAlgorithmOID.ECDSA_WITH_SHA512),
    "secp256r1": (ec.SECP256R1, hashes.SHA256, SignatureAlgorithmOID.ECDSA_WITH_SHA256),
    "ed448": (None, None, SignatureAlgorithmOID.ED448),
}
ISSUER = {
    "cpo_sub_ca1": "v2g_root_ca",
    "cpo_sub_ca2": "cpo_sub_ca1",
    "secc_leaf": "cpo_sub_ca2",
    "vehicle_sub_ca1": "oem_root_ca",
    "vehicle_sub_ca2": "vehicle_sub_ca1",
    "vehicle_leaf": "vehicle_sub_ca2",
    "cps_sub_ca1": "v2g_root_ca",
    "cps_sub_ca2": "cps_sub_ca1",
    "cps_leaf": "cps_sub_ca2",
    "oem_sub_ca1": "oem_root_ca",
    "oem_sub_ca2": "oem_sub_ca1",
    "oem_prov_leaf": "oem_sub_ca2",
    "mo_sub_ca1": "mo_root_ca",
    "mo_sub_ca2": "mo_sub_ca1",
    "contract_leaf": "mo_sub_ca2",
    "mo_ocsp_responder": "mo_sub_ca2",
}
PATH_LENGTHS = {
    "v2g_root_ca": 2,
    "cpo_sub_ca1": 1,
    "cpo_sub_ca2": 0,
    "oem_root_ca": 2,
    "vehicle_sub_ca1": 1,
    "vehicle_sub_ca2": 0,
    "cps_sub_ca1": 1,
    "cps_sub_ca2": 0,
    "oem_sub_ca1": 1,
    "oem_sub_ca2": 0,
    "mo_root_ca": 2,
    "mo_sub_ca1": 1,
    "mo_sub_ca2": 0,
}


@pytest.fixture(scope="module", params=sorted(ALGORITHMS))
def pki(request, tmp_path_factory) -> PkiPaths:
    return generate_pki(tmp_path_factory.mktemp(request.param), profile=request.param)


def cert(pki: PkiPaths, name: str) -> x509.Certificate:
    (only,) = load_certificates(pki.cert(name))
    return only


def common_name(c: x509.Certificate) -> str:
    return str(c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_every_file_exists_and_keys_are_private(pki: PkiPaths) -> None:
    for path in pki.all_files():
        assert path.is_file(), path
    for name in ENTITY_NAMES:
        assert pki.key(name).stat().st_mode & 0o077 == 0
        assert b"BEGIN PRIVATE KEY" in pki.key(name).read_bytes()


def test_each_certificate_is_signed_by_its_issuer(pki: PkiPaths) -> None:
    for name, issuer_name in ISSUER.items():
        child, issuer = cert(pki, name), cert(pki, issuer_name)
        assert child.issuer == issuer.subject
        child.verify_directly_issued_by(issuer)
        aki = child.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert aki.key_identifier == ski.digest
    assert set(ISSUER) | set(PATH_LENGTHS) == set(ENTITY_NAMES)
    for root in ("v2g_root_ca", "oem_root_ca", "mo_root_ca"):
        c = cert(pki, root)
        assert c.issuer == c.subject
        c.verify_directly_issued_by(c)


def test_subject_key_identifiers_match_the_keys(pki: PkiPaths) -> None:
    for name in ENTITY_NAMES:
        c = cert(pki, name)
        ski = c.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        assert not ski.critical
        assert ski.value == x509.SubjectKeyIdentifier.from_public_key(c.public_key())
        key = load_private_key(pki.key(name))
        assert key.public_key() == c.public_key()


def test_ca_certificates_have_critical_constraints_and_path_lengths(pki: PkiPaths) -> None:
    for name, path_length in PATH_LENGTHS.items():
        c = cert(pki, name)
        bc = c.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca and bc.value.path_length == path_length, name
        ku = c.extensions.get_extension_for_class(x509.KeyUsage)
        assert ku.critical
        assert ku.value.key_cert_sign and ku.value.crl_sign
        assert not (ku.value.digital_signature or ku.value.key_agreement or ku.value.key_encipherment)


def test_leaves_are_tls_end_entities(pki: PkiPaths) -> None:
    for name, usage in (
        ("secc_leaf", ExtendedKeyUsageOID.SERVER_AUTH),
        ("vehicle_leaf", ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        c = cert(pki, name)
        bc = c.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and not bc.value.ca
        ku = c.extensions.get_extension_for_class(x509.KeyUsage)
        assert ku.critical and ku.value.digital_signature and ku.value.key_agreement
        assert not (ku.value.key_cert_sign or ku.value.crl_sign or ku.value.key_encipherment)
        assert list(c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [usage]


def test_leaf_names(pki: PkiPaths) -> None:
    secc = cert(pki, "secc_leaf")
    assert common_name(secc) == DEFAULT_EVSE_ID
    assert secc.subject.get_attributes_for_oid(NameOID.DOMAIN_COMPONENT)[0].value == "CPO"
    san = secc.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    assert common_name(cert(pki, "vehicle_leaf")) == DEFAULT_EVCC_ID


def test_curve_and_signature_algorithm_follow_the_profile(pki: PkiPaths) -> None:
    curve, hash_cls, oid = ALGORITHMS[pki.profile]
    for name in ENTITY_NAMES:
        c = cert(pki, name)
        key = c.public_key()
        if curve is None:  # Ed448: the key is the algorithm, no curve and no separate hash
            assert isinstance(key, ed448.Ed448PublicKey), name
            assert c.signature_hash_algorithm is None
        else:
            assert isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, curve), name
            assert isinstance(c.signature_hash_algorithm, hash_cls)
        assert c.signature_algorithm_oid == oid
        assert c.version == x509.Version.v3


def test_chain_files_are_leaf_then_sub_cas_without_root(pki: PkiPaths) -> None:
    for chain_name, members in CHAINS.items():
        chain = load_certificates(pki.chain(chain_name))
        assert chain == [cert(pki, m) for m in members]
        assert len(chain) == 3  # leaf + at most 3 sub-CAs per -20 SubCertificates; no root
    assert pki.secc_chain == pki.secc_credentials().chain
    assert pki.oem_root_cert == pki.secc_credentials().trust_roots
    assert pki.v2g_root_cert == pki.evcc_credentials().trust_roots


def test_validity(tmp_path: Path) -> None:
    before = dt.datetime.now(dt.UTC)
    pki = generate_pki(tmp_path, validity_days=30)
    for name in ENTITY_NAMES:
        c = cert(pki, name)
        assert c.not_valid_before_utc <= before
        assert dt.timedelta(days=29) < c.not_valid_after_utc - before <= dt.timedelta(days=30, seconds=5)


def test_custom_ids(tmp_path: Path) -> None:
    pki = generate_pki(tmp_path, evse_id="NL*ABC*E42", evcc_id="EVCC-1")
    assert common_name(cert(pki, "secc_leaf")) == "NL*ABC*E42"
    assert common_name(cert(pki, "vehicle_leaf")) == "EVCC-1"


def test_encrypted_keys(tmp_path: Path) -> None:
    pki = generate_pki(tmp_path, profile="secp256r1", password="s3cret")
    assert pki.key_password == b"s3cret"
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in pki.secc_key.read_bytes()
    assert load_private_key(pki.secc_key, "s3cret").public_key() == cert(pki, "secc_leaf").public_key()
    with pytest.raises(PkiFileInvalid):
        load_private_key(pki.secc_key, "wrong")
    with pytest.raises(PkiFileInvalid):
        load_private_key(pki.secc_key)
    assert "s3cret" not in repr(pki)


def test_ensure_is_idempotent(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path, "secp521r1")
    contents = {p: p.read_bytes() for p in first.all_files()}
    second = ensure_pki(tmp_path, "secp521r1")
    assert second == first
    assert {p: p.read_bytes() for p in second.all_files()} == contents
    assert load_pki(tmp_path) == first


def test_ensure_regenerates_what_is_not_current(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, "secp521r1")
    root = pki.v2g_root_cert.read_bytes()

    def regenerated() -> bool:
        nonlocal root
        changed = pki.v2g_root_cert.read_bytes() != root
        root = pki.v2g_root_cert.read_bytes()
        return changed

    assert ensure_pki(tmp_path, "secp256r1").profile == "secp256r1" and regenerated()
    assert ensure_pki(tmp_path, "secp256r1", evse_id=DEFAULT_EVSE_ID) and not regenerated()
    assert ensure_pki(tmp_path, "secp256r1", evse_id="DE*MCS*E999") and regenerated()
    os.remove(pki.vehicle_chain)
    assert ensure_pki(tmp_path, "secp256r1") and regenerated()
    pki.secc_cert.write_text("not a certificate")
    assert ensure_pki(tmp_path, "secp256r1") and regenerated()
    assert ensure_pki(tmp_path, "secp256r1", password="pw") and regenerated()
    assert ensure_pki(tmp_path, "secp256r1", password="pw") and not regenerated()
    # expiring: less left than asked for
    assert ensure_pki(tmp_path, "secp256r1", password="pw", min_remaining=dt.timedelta(days=400)) and regenerated()


def test_ensure_is_fast(tmp_path: Path) -> None:
    import time

    ensure_pki(tmp_path)
    start = time.perf_counter()
    for _ in range(10):
        ensure_pki(tmp_path)
    assert (time.perf_counter() - start) / 10 < 0.05


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(PkiFileMissing) as info:
        load_pki(tmp_path / "nothing")
    assert isinstance(info.value, FileNotFoundError)
    pki = generate_pki(tmp_path)
    pki.secc_cert.write_text("garbage")
    with pytest.raises(PkiFileInvalid):
        load_pki(tmp_path)
    with pytest.raises(PkiFileInvalid):
        load_certificates(pki.secc_cert)
    with pytest.raises(PkiFileMissing):
        load_private_key(tmp_path / "missing.key")


def test_default_directory_is_the_user_data_directory(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MCS_V2G_PKI_DIR", str(tmp_path))
    assert default_pki_dir("secp256r1") == tmp_path / "secp256r1"
    monkeypatch.delenv("MCS_V2G_PKI_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "d"))
    assert default_pki_dir("secp256r1") == tmp_path / "d" / "mcs-v2g" / "pki" / "secp256r1"


def test_cli_generate(tmp_path: Path, capsys) -> None:
    argv = ["pki", "generate", "--profile", "secp256r1", "--dir", str(tmp_path)]
    assert mcs_v2g_main([*argv, "--evse-id", "DE*X*E1"]) == 0
    assert "secp256r1 test PKI" in capsys.readouterr().out
    pki = load_pki(tmp_path)
    assert pki.profile == "secp256r1" and common_name(cert(pki, "secc_leaf")) == "DE*X*E1"
    before = pki.secc_cert.read_bytes()
    assert mcs_v2g_main([*argv, "--if-missing"]) == 0
    assert pki.secc_cert.read_bytes() == before
    assert mcs_v2g_main(["pki", "generate", "--dir", str(tmp_path), "--validity-days", "0"]) == 2
    assert "validity_days" in capsys.readouterr().err
