"""The Plug & Charge cases pass against our own charger and truck with PnC (the test PKI's contract, MO root, OEM
provisioning chain and CPS) and fail, naming the case's rule, against our peer broken by the case's breaker; the
profile's [pnc] table and the tester's missing material make a case inconclusive, never a fail."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from mcs_v2g.conformance.bench import LinkBench
from mcs_v2g.conformance.case import Case
from mcs_v2g.conformance.catalogue import BY_ID, PNC
from mcs_v2g.conformance.ours import broken, our_evcc, our_secc
from mcs_v2g.conformance.profile import DeviceProfile, PncFiles, ProfileError, load_profile, with_pnc
from mcs_v2g.conformance.runner import run_case
from mcs_v2g.conformance.verdict import CaseResult, Outcome
from stack.clock import VirtualClock
from stack.security.pki import PkiPaths, generate_pki
from stack.session.conduct import PNC_CONDUCT_RULES
from stack.session.rulebook import all_rules

RULE_IDS = {rule.id for rule in all_rules()} | {rule.id for rule in PNC_CONDUCT_RULES}
START = dt.datetime.fromtimestamp(VirtualClock().start, dt.UTC)
PNC_PROFILE = PncFiles(certificate_installation=True)
VALIDITY_DAYS = 3650  # TLS checks the wall clock, PnC the virtual one: valid for both


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    """A test PKI valid on the virtual clock (and now, for TLS): from 90 days before its start, for ten years."""
    return generate_pki(
        tmp_path_factory.mktemp("pnc-pki"), validity_days=VALIDITY_DAYS, valid_from=START - dt.timedelta(days=90)
    )


def play(
    case: Case,
    pki: PkiPaths,
    *,
    good: bool,
    tls: bool = False,
    profile: DeviceProfile | None = None,
    install: bool = True,
) -> CaseResult:
    """The case against our device with PnC (or our broken peer), on a virtual clock over an in-memory link."""
    clock = VirtualClock()
    profile = profile or DeviceProfile(role=case.role, tls=tls, authorization=("eim", "pnc"), pnc=PNC_PROFILE)
    if not good:
        device = broken(case.role, case.breaker, clock, pki, tls)
    elif case.role == "secc":
        device = our_secc(clock, pki, tls, plug_and_charge=True, install=install)
    else:
        device = our_evcc(clock, pki, tls, plug_and_charge=True, install=install)
    return clock.run(run_case(case, LinkBench(profile, clock, pki, device)))


def test_cases_name_rules_and_judge_every_pnc_rule() -> None:
    for case in PNC:
        assert case.rules and set(case.rules) <= RULE_IDS, case.id
        assert case.breaker.rule in case.rules, case.id
        assert "pnc" in case.tags, case.id
    judged = {rule for case in PNC for rule in case.rules}
    assert {rule.id for rule in PNC_CONDUCT_RULES} <= judged


def test_inconclusive_without_pnc_in_the_profile(pki: PkiPaths) -> None:
    for case_id in ("SECC-PNC-SESSION", "EVCC-PNC-AUTH"):
        role = BY_ID[case_id].role
        result = play(BY_ID[case_id], pki, good=True, profile=DeviceProfile(role=role))
        assert result.verdict.outcome is Outcome.INCONCLUSIVE, result.verdict
    eim_only = DeviceProfile(role="secc", authorization=("eim", "pnc"))  # PnC, but no CertificateInstallation
    result = play(BY_ID["SECC-PNC-INSTALL"], pki, good=True, profile=eim_only)
    assert result.verdict.outcome is Outcome.INCONCLUSIVE, result.verdict


def test_a_charger_that_does_not_offer_pnc_fails_the_session_case(pki: PkiPaths) -> None:
    """The profile claims PnC, our charger offers EIM only: the case fails (it does not pass by EIM)."""
    clock = VirtualClock()
    case = BY_ID["SECC-PNC-SESSION"]
    profile = DeviceProfile(role="secc", tls=False, authorization=("eim", "pnc"))
    result = clock.run(run_case(case, LinkBench(profile, clock, pki, our_secc(clock, pki, False))))
    assert result.verdict.outcome is Outcome.FAIL and result.verdict.rule == "MV-ACCEPT-VALID", result.verdict


def test_a_truck_that_keeps_its_contract_is_inconclusive_for_installation(pki: PkiPaths) -> None:
    result = play(BY_ID["EVCC-PNC-INSTALL"], pki, good=True, install=False)
    assert result.verdict.outcome is Outcome.INCONCLUSIVE, result.verdict


def test_profile_contract_without_mo_ca_makes_the_expired_case_inconclusive(pki: PkiPaths, tmp_path: Path) -> None:
    """A contract named by the profile (copied out of the PKI): the tester cannot issue an expired one."""
    folder = tmp_path / "contract"
    folder.mkdir()
    for name in ("contract_chain.pem", "contract_leaf.key"):
        shutil.copy(pki.directory / name, folder / name)
    toml = 'role = "secc"\ntls = false\nauthorization = ["eim", "pnc"]\n[pnc]\ncontract = "contract"\n'
    (tmp_path / "p.toml").write_text(toml)
    profile = load_profile(tmp_path / "p.toml", "secc")
    assert profile.pnc.contract == folder and profile.supports("pnc")
    for case_id, wanted in (("SECC-PNC-EXPIRED", Outcome.INCONCLUSIVE), ("SECC-PNC-SESSION", Outcome.PASS)):
        result = play(BY_ID[case_id], pki, good=True, profile=profile)
        assert result.verdict.outcome is wanted, (case_id, result.verdict)


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ('[pnc]\ncolour = "red"\n', "unknown key pnc.colour"),
        ("[pnc]\ncertificate_installation = 1\n", "must be true or false"),
        ('[pnc]\nmo_roots = "nowhere.pem"\n', "does not exist"),
        ('pnc = "yes"\n', "must be a table"),
    ],
)
def test_profile_pnc_table_errors(tmp_path: Path, table: str, error: str) -> None:
    (tmp_path / "p.toml").write_text(f'role = "evcc"\n{table}')
    with pytest.raises(ProfileError, match=error):
        load_profile(tmp_path / "p.toml", "evcc")


def test_a_truck_the_testers_cps_cannot_serve_is_inconclusive(pki: PkiPaths, tmp_path: Path) -> None:
    """A truck provisioned by another OEM root: the tester's contract backend refuses it, which judges the tester."""
    other = generate_pki(tmp_path / "other", valid_from=START - dt.timedelta(days=90))
    clock = VirtualClock()
    profile = DeviceProfile(role="evcc", tls=False, authorization=("eim", "pnc"), pnc=PNC_PROFILE)
    truck = our_evcc(clock, other, False, plug_and_charge=True, install=True)
    result = clock.run(run_case(BY_ID["EVCC-PNC-INSTALL"], LinkBench(profile, clock, pki, truck)))
    assert result.verdict.outcome is Outcome.INCONCLUSIVE and "backend" in result.verdict.seen, result.verdict


def test_the_pnc_option_claims_pnc_with_installation() -> None:
    profile = with_pnc(DeviceProfile(role="secc"))
    assert profile.authorization == ("eim", "pnc") and profile.supports("certificate_installation")
    assert with_pnc(profile) == profile
    assert not DeviceProfile(role="secc").supports("pnc")
