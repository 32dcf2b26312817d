"""`mcs-v2g pki inspect`: a chain of the test PKI checks out against its root; a chain out of order, one from
another root, one checked after it expired and a non-CA issuer are each found; bad files exit 2."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509

from mcs_v2g.cli import main
from stack.security.chain_check import check_chain
from stack.security.pki import PkiPaths, generate_pki, load_certificates


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    return generate_pki(tmp_path_factory.mktemp("inspect"))


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    return generate_pki(tmp_path_factory.mktemp("inspect-other"), profile="ed448")


def chain_of(pki: PkiPaths) -> list[x509.Certificate]:
    return load_certificates(pki.secc_chain)


def test_a_test_pki_chain_checks_out_against_its_root(pki: PkiPaths) -> None:
    report = check_chain(chain_of(pki), load_certificates(pki.v2g_root_cert))
    assert report.ok, report.problems
    leaf, *cas = report.certificates
    assert not leaf.ca and all(c.ca for c in cas) and leaf.key == "EC secp521r1"


def test_each_broken_chain_is_named(pki: PkiPaths, other: PkiPaths) -> None:
    chain, root = chain_of(pki), load_certificates(pki.v2g_root_cert)
    assert any("not issued by the next" in p for p in check_chain(chain[::-1], root).problems)
    assert any("trusted root" in p for p in check_chain(chain, load_certificates(other.v2g_root_cert)).problems)
    later = chain[0].not_valid_after_utc + dt.timedelta(days=1)
    assert any("has expired" in p for p in check_chain(chain, root, later).problems)
    vehicle_leaf = load_certificates(pki.vehicle_chain)[0]
    assert any("is not issued by" in p for p in check_chain([chain[0], vehicle_leaf], root).problems)


def test_the_command_prints_the_chain_and_its_verdict(pki: PkiPaths, other: PkiPaths, capsys) -> None:
    assert main(["pki", "inspect", str(pki.secc_chain), "--roots", str(pki.v2g_root_cert)]) == 0
    out = capsys.readouterr().out
    assert out.count("issuer ") == len(chain_of(pki)) and "chain ok" in out
    assert main(["pki", "inspect", str(other.secc_chain), "--roots", str(pki.v2g_root_cert)]) == 1
    out = capsys.readouterr().out
    assert "chain NOT ok" in out and "Ed448" in out


def test_bad_files_exit_2(tmp_path: Path, capsys) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    assert main(["pki", "inspect", str(tmp_path / "junk.pem")]) == 2
    assert main(["pki", "inspect", str(tmp_path / "missing.pem")]) == 2
    assert capsys.readouterr().err.count("mcs-v2g: error:") == 2
