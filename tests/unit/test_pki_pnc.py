"""The Plug & Charge part of the test PKI: the CPS, OEM provisioning and MO chains and the MO OCSP responder in every
profile, contract certificates issued for a given key, loading and saving contracts, and the upgrade of a PKI
directory made before these chains existed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, x448
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from mcs_v2g.cli import main
from stack.security.chain_check import check_chain
from stack.security.pki import (
    CHAINS,
    DEFAULT_EMAID,
    DEFAULT_OCSP_URL,
    DEFAULT_PCID,
    ContractCredentials,
    PkiError,
    PkiFileInvalid,
    PkiPaths,
    common_name,
    ensure_pki,
    generate_pki,
    is_emaid,
    issue_contract_certificate,
    load_certificates,
    load_contract,
    load_pki,
    ocsp_urls,
    save_contract,
)

PROFILES = ("secp521r1", "ed448", "secp256r1")
# chain file -> the root it must end in
CHAIN_ROOTS = {
    "cps_chain": "v2g_root_ca",
    "oem_prov_chain": "oem_root_ca",
    "contract_chain": "mo_root_ca",
}
USAGES = (
    *("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement"),
    *("key_cert_sign", "crl_sign"),
)
NEW_NAMES = (
    *("cps_sub_ca1", "cps_sub_ca2", "cps_leaf", "oem_sub_ca1", "oem_sub_ca2", "oem_prov_leaf"),
    *("mo_root_ca", "mo_sub_ca1", "mo_sub_ca2", "contract_leaf", "mo_ocsp_responder"),
)


@pytest.fixture(scope="module", params=PROFILES)
def pki(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    return generate_pki(tmp_path_factory.mktemp(request.param), profile=request.param)


def cert(pki: PkiPaths, name: str) -> x509.Certificate:
    (only,) = load_certificates(pki.cert(name))
    return only


def usages(c: x509.Certificate) -> set[str]:
    ku = c.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    return {u for u in USAGES if getattr(ku.value, u)}


def purposes(c: x509.Certificate) -> list[x509.ObjectIdentifier] | None:
    try:
        return list(c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return None


def is_end_entity(c: x509.Certificate) -> bool:
    bc = c.extensions.get_extension_for_class(x509.BasicConstraints)
    return bc.critical and not bc.value.ca


def new_key(kind: str) -> ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey | x448.X448PrivateKey:
    if kind == "secp521r1":
        return ec.generate_private_key(ec.SECP521R1())
    if kind == "secp256r1":
        return ec.generate_private_key(ec.SECP256R1())
    return ed448.Ed448PrivateKey.generate() if kind == "ed448" else x448.X448PrivateKey.generate()


def test_accessors_name_the_new_files_and_all_of_them_exist(pki: PkiPaths) -> None:
    named = {
        pki.mo_root_cert: "mo_root_ca.pem",
        pki.cps_chain: "cps_chain.pem",
        pki.cps_cert: "cps_leaf.pem",
        pki.cps_key: "cps_leaf.key",
        pki.oem_prov_chain: "oem_prov_chain.pem",
        pki.oem_prov_cert: "oem_prov_leaf.pem",
        pki.oem_prov_key: "oem_prov_leaf.key",
        pki.contract_chain: "contract_chain.pem",
        pki.contract_cert: "contract_leaf.pem",
        pki.contract_key: "contract_leaf.key",
        pki.mo_ocsp_responder_cert: "mo_ocsp_responder.pem",
        pki.mo_ocsp_responder_key: "mo_ocsp_responder.key",
    }
    files = set(pki.all_files())
    for path, file_name in named.items():
        assert path.name == file_name and path.parent == pki.directory
        assert path in files and path.is_file()
    for name in NEW_NAMES:
        assert pki.cert(name) in files and pki.key(name) in files
        assert pki.key(name).stat().st_mode & 0o077 == 0
    assert pki.contract_credentials() == ContractCredentials(pki.contract_chain, pki.contract_key)


def test_cps_leaf_only_signs(pki: PkiPaths) -> None:
    c = cert(pki, "cps_leaf")
    assert is_end_entity(c) and usages(c) == {"digital_signature"} and purposes(c) is None


def test_oem_provisioning_leaf_signs_and_agrees_keys_under_its_pcid(pki: PkiPaths) -> None:
    c = cert(pki, "oem_prov_leaf")
    assert is_end_entity(c) and usages(c) == {"digital_signature", "key_agreement"}
    assert common_name(c) == DEFAULT_PCID and len(DEFAULT_PCID) == 18
    assert common_name(c) != common_name(cert(pki, "vehicle_leaf"))


def test_contract_leaf_carries_the_emaid_and_its_ocsp_url(pki: PkiPaths) -> None:
    c = cert(pki, "contract_leaf")
    assert is_end_entity(c)
    assert usages(c) == {"digital_signature", "content_commitment", "key_encipherment", "key_agreement"}
    assert common_name(c) == DEFAULT_EMAID and is_emaid(DEFAULT_EMAID)
    assert c.subject.get_attributes_for_oid(NameOID.DOMAIN_COMPONENT)[0].value == "MO"
    aia = c.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    assert not aia.critical
    assert [(d.access_method, d.access_location.value) for d in aia.value] == [
        (AuthorityInformationAccessOID.OCSP, DEFAULT_OCSP_URL)
    ]
    assert ocsp_urls(c) == [DEFAULT_OCSP_URL] and ocsp_urls(cert(pki, "secc_leaf")) == []


def test_ocsp_responder_is_delegated_by_mo_sub_ca2(pki: PkiPaths) -> None:
    c, issuer = cert(pki, "mo_ocsp_responder"), cert(pki, "mo_sub_ca2")
    assert c.issuer == issuer.subject == cert(pki, "contract_leaf").issuer
    c.verify_directly_issued_by(issuer)
    assert is_end_entity(c) and usages(c) == {"digital_signature"}
    assert purposes(c) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    nocheck = c.extensions.get_extension_for_class(x509.OCSPNoCheck)
    assert not nocheck.critical


def test_each_chain_checks_out_against_its_root_only(pki: PkiPaths) -> None:
    roots = {name: load_certificates(pki.cert(name)) for name in set(CHAIN_ROOTS.values())}
    for chain_name, root_name in CHAIN_ROOTS.items():
        chain = load_certificates(pki.chain(chain_name))
        assert chain == [cert(pki, m) for m in CHAINS[chain_name]]
        report = check_chain(chain, roots[root_name])
        assert report.ok, (chain_name, report.problems)
        for other, other_roots in roots.items():
            if other != root_name:
                assert not check_chain(chain, other_roots).ok, (chain_name, other)


@pytest.mark.parametrize("chain_name", sorted(CHAIN_ROOTS))
def test_inspect_passes_on_each_chain_with_its_root(pki: PkiPaths, chain_name: str, capsys) -> None:
    root = pki.cert(CHAIN_ROOTS[chain_name])
    assert main(["pki", "inspect", str(pki.chain(chain_name)), "--roots", str(root)]) == 0
    assert "chain ok" in capsys.readouterr().out
    wrong = pki.v2g_root_cert if chain_name != "cps_chain" else pki.mo_root_cert
    assert main(["pki", "inspect", str(pki.chain(chain_name)), "--roots", str(wrong)]) == 1


@pytest.mark.parametrize("kind", ["secp521r1", "secp256r1", "ed448", "x448"])
def test_issue_contract_certificate_for_a_given_key(pki: PkiPaths, kind: str) -> None:
    key = new_key(kind)
    leaf = issue_contract_certificate(pki, key.public_key(), "NL-ABC-C00000042-7", validity_days=30)
    sub_cas = load_certificates(pki.contract_chain)[1:]
    assert leaf.public_key() == key.public_key()
    assert common_name(leaf) == "NL-ABC-C00000042-7"
    assert check_chain([leaf, *sub_cas], load_certificates(pki.mo_root_cert)).ok
    ski = leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == sub_cas[0].extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert ocsp_urls(leaf) == [DEFAULT_OCSP_URL] and is_end_entity(leaf)
    lifetime = leaf.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=29) < lifetime <= dt.timedelta(days=30)
    # X448 cannot sign: RFC 8410 leaves it keyAgreement only
    expected = {"key_agreement"} if kind == "x448" else usages(cert(pki, "contract_leaf"))
    assert usages(leaf) == expected


def test_issued_contracts_follow_the_pki_url_and_never_outlive_the_sub_ca(tmp_path: Path) -> None:
    pki = generate_pki(tmp_path, validity_days=20, ocsp_url="https://mo.example/ocsp")
    key = new_key("secp521r1").public_key()
    assert ocsp_urls(issue_contract_certificate(pki, key, DEFAULT_EMAID)) == ["https://mo.example/ocsp"]
    own = issue_contract_certificate(pki, key, DEFAULT_EMAID, ocsp_url="http://10.0.0.1:2560/")
    assert ocsp_urls(own) == ["http://10.0.0.1:2560/"]
    long = issue_contract_certificate(pki, key, DEFAULT_EMAID, validity_days=1000)
    assert long.not_valid_after_utc == cert(pki, "mo_sub_ca2").not_valid_after_utc


def test_issue_contract_certificate_refuses_bad_input(pki: PkiPaths) -> None:
    key = new_key("secp256r1").public_key()
    with pytest.raises(PkiError, match="eMAID"):
        issue_contract_certificate(pki, key, "DE*MCS*E12345")
    with pytest.raises(PkiError, match="OCSP URL"):
        issue_contract_certificate(pki, key, DEFAULT_EMAID, ocsp_url="ldap://mo/")
    with pytest.raises(PkiError, match="validity_days"):
        issue_contract_certificate(pki, key, DEFAULT_EMAID, validity_days=0)
    with pytest.raises(PkiError, match="Ed25519"):
        issue_contract_certificate(pki, ed25519.Ed25519PrivateKey.generate().public_key(), DEFAULT_EMAID)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("DEMCSC12345678", True),
        ("DEMCSC123456789", True),  # with a check digit
        ("de-mcs-c12345678-9", True),
        ("DE-MCS-C12345678", True),
        ("DE*MCS*C12345678", False),  # "-" is the only separator
        ("DE-MCSC12345678", False),  # separators all or none
        ("DEMCSC1234567", False),  # instance too short
        ("DEMCSC1234567890", False),  # too long
        ("D1MCSC12345678", False),  # country is letters
    ],
)
def test_emaid_syntax(text: str, ok: bool) -> None:
    assert is_emaid(text) is ok


def test_generate_refuses_a_bad_emaid_or_url_before_writing(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="eMAID"):
        generate_pki(tmp_path / "a", emaid="12345")
    with pytest.raises(PkiError, match="OCSP URL"):
        generate_pki(tmp_path / "b", ocsp_url="not a url")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_load_contract_from_a_pki_directory_and_from_credentials(tmp_path: Path) -> None:
    pki = generate_pki(tmp_path / "pki", profile="ed448", password="pw", emaid="FRABCC00000001")
    loaded = load_contract(pki.contract_credentials())
    certificate, sub_certificates, private_key = loaded
    assert certificate == cert(pki, "contract_leaf") and loaded.emaid == "FRABCC00000001"
    assert sub_certificates == (cert(pki, "mo_sub_ca2"), cert(pki, "mo_sub_ca1"))
    assert private_key.public_key() == certificate.public_key()
    again = load_contract(pki.directory, password="pw")
    assert again[:2] == loaded[:2] and again.private_key.public_key() == certificate.public_key()
    with pytest.raises(PkiFileInvalid):
        load_contract(pki.directory)  # the key is encrypted
    other = generate_pki(tmp_path / "other", profile="ed448")
    pki.contract_key.write_bytes(other.contract_key.read_bytes())
    with pytest.raises(PkiFileInvalid, match="not the key"):
        load_contract(pki.directory)


def test_save_contract_round_trips_an_issued_contract(pki: PkiPaths, tmp_path: Path) -> None:
    key = new_key("x448")
    leaf = issue_contract_certificate(pki, key.public_key(), DEFAULT_EMAID)
    subs = tuple(load_certificates(pki.contract_chain)[1:])
    credentials = save_contract(tmp_path / "ev", leaf, subs, key, password="s3cret")
    assert credentials.chain == tmp_path / "ev" / "contract_chain.pem"
    assert credentials.key.stat().st_mode & 0o077 == 0
    assert b"ENCRYPTED" in credentials.key.read_bytes()
    loaded = load_contract(credentials)
    assert loaded.certificate == leaf and loaded.sub_certificates == subs
    assert loaded.private_key.public_key() == key.public_key()
    with pytest.raises(PkiError):
        save_contract(tmp_path / "bad", leaf, subs, new_key("x448"))


def test_ensure_upgrades_a_directory_without_the_pnc_files(tmp_path: Path) -> None:
    old = generate_pki(tmp_path, profile="secp256r1")
    for name in NEW_NAMES:
        old.cert(name).unlink()
        old.key(name).unlink()
    for chain_name in CHAIN_ROOTS:
        old.chain(chain_name).unlink()
    root = old.v2g_root_cert.read_bytes()
    with pytest.raises(PkiError):
        load_pki(tmp_path)
    told: list[PkiPaths] = []
    new = ensure_pki(tmp_path, "secp256r1", generated=told.append)
    assert told == [new] and all(p.is_file() for p in new.all_files())
    assert new.v2g_root_cert.read_bytes() != root  # one consistent PKI, not the old roots with new chains
    assert load_pki(tmp_path) == new
    assert check_chain(load_certificates(new.contract_chain), load_certificates(new.mo_root_cert)).ok
    assert ensure_pki(tmp_path, "secp256r1", generated=told.append) == new and len(told) == 1


def test_ensure_regenerates_for_another_emaid_or_ocsp_url(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, "secp521r1")
    told: list[PkiPaths] = []
    ensure_pki(tmp_path, "secp521r1", emaid=DEFAULT_EMAID, ocsp_url=DEFAULT_OCSP_URL, generated=told.append)
    assert told == []
    ensure_pki(tmp_path, "secp521r1", emaid="DEMCSC00000099", generated=told.append)
    assert len(told) == 1 and common_name(cert(pki, "contract_leaf")) == "DEMCSC00000099"
    ensure_pki(tmp_path, "secp521r1", ocsp_url="http://127.0.0.1:2560/", generated=told.append)
    assert len(told) == 2 and ocsp_urls(cert(pki, "contract_leaf")) == ["http://127.0.0.1:2560/"]


def test_cli_generate_takes_the_pnc_ids_and_lists_the_chains(tmp_path: Path, capsys) -> None:
    argv = ["pki", "generate", "--profile", "ed448", "--dir", str(tmp_path), "--emaid", "DE-ABC-C99999999"]
    assert main([*argv, "--ocsp-url", "http://ocsp.test:8000/", "--pcid", "WMAPCID00000000042"]) == 0
    out = capsys.readouterr().out
    for chain_name in CHAIN_ROOTS:
        assert f"{chain_name}.pem" in out
    assert "mo_root_ca.pem" in out and "mo_ocsp_responder.pem" in out
    pki = load_pki(tmp_path)
    assert common_name(cert(pki, "contract_leaf")) == "DE-ABC-C99999999"
    assert ocsp_urls(cert(pki, "contract_leaf")) == ["http://ocsp.test:8000/"]
    assert common_name(cert(pki, "oem_prov_leaf")) == "WMAPCID00000000042"
    before = pki.contract_cert.read_bytes()
    assert main([*argv, "--if-missing"]) == 0
    assert pki.contract_cert.read_bytes() == before
    assert main([*argv, "--if-missing", "--pcid", "WMAPCID00000000043"]) == 0
    assert common_name(cert(pki, "oem_prov_leaf")) == "WMAPCID00000000043"
    assert common_name(cert(pki, "contract_leaf")) == "DE-ABC-C99999999"
    before = pki.contract_cert.read_bytes()
    assert main([*argv[:-1], "DEMCSC00000001", "--if-missing"]) == 0
    assert pki.contract_cert.read_bytes() != before
    assert main([*argv[:-1], "not-an-emaid"]) == 2
    assert "eMAID" in capsys.readouterr().err


def test_saving_a_contract_into_a_pki_folder_keeps_it_one_pki(pki: PkiPaths) -> None:
    """An installed contract saved into a PKI folder (the folder `--contract` may name) replaces the leaf's own file
    too: the chain, the key and the leaf agree."""
    key = ec.generate_private_key(ec.SECP521R1())
    issued = issue_contract_certificate(pki, key.public_key(), "DEMCSC00000042")
    save_contract(pki.directory, issued, load_certificates(pki.contract_chain)[1:], key)
    assert load_certificates(pki.contract_cert) == [issued]
    assert load_contract(pki.directory).certificate == issued
