"""Every case of the conformance catalogue passes against our own device and fails, naming the right rule,
against our peer broken by the case's breaker: a case that cannot fail would prove nothing."""

from __future__ import annotations

import pytest

from mcs_v2g.conformance.catalogue import CATALOGUE
from mcs_v2g.conformance.verdict import Outcome
from stack.session.rulebook import all_rules
from stack.session.rules import RuleKind

from .harness import make_pki, play_against

RULE_IDS = {rule.id for rule in all_rules()}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("conformance-pki"))


@pytest.mark.parametrize("case", CATALOGUE, ids=lambda c: c.id)
def test_passes_against_our_device(case, pki) -> None:
    result = play_against(case, pki, good=True)
    assert result.verdict.outcome is Outcome.PASS, result.verdict


# a case that judges what identifies a vehicle without TLS: over TLS its certificate does, so it cannot judge
NEEDS_PLAIN_TCP = {"SECC-PAUSE-OTHER-EVCCID"}


@pytest.mark.parametrize("case", [c for c in CATALOGUE if "tls" not in c.tags], ids=lambda c: c.id)
def test_passes_against_our_device_over_tls(case, pki) -> None:
    """The whole catalogue again with every connection over TLS 1.3 (mutual authentication, P-521)."""
    result = play_against(case, pki, good=True, tls=True)
    wanted = Outcome.INCONCLUSIVE if case.id in NEEDS_PLAIN_TCP else Outcome.PASS
    assert result.verdict.outcome is wanted, result.verdict


@pytest.mark.parametrize("case", CATALOGUE, ids=lambda c: c.id)
def test_fails_against_a_broken_peer(case, pki) -> None:
    result = play_against(case, pki, good=False)
    assert result.verdict.outcome is Outcome.FAIL, result.verdict
    assert result.verdict.rule == case.breaker.rule, result.verdict


def test_cases_name_rules_of_the_rulebook() -> None:
    for case in CATALOGUE:
        assert case.rules and set(case.rules) <= RULE_IDS, case.id
        assert case.breaker.rule in case.rules, case.id


def test_every_rule_of_conduct_is_judged_by_a_case() -> None:
    judged = {rule for case in CATALOGUE for rule in case.rules}
    conduct = {rule.id for rule in all_rules() if rule.kind is RuleKind.CONDUCT}
    assert conduct <= judged, sorted(conduct - judged)


def test_the_catalogue_covers_both_roles_with_150_cases() -> None:
    assert len(CATALOGUE) >= 150
    assert {case.role for case in CATALOGUE} == {"secc", "evcc"}
