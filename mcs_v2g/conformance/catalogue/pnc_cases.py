"""Plug & Charge, charger under test (the tester as the EV, signing with its contract): a PnC session, a fresh
GenChallenge per session, the refusals of a wrong challenge, a missing or broken signature and of contracts the
charger must not accept, and CertificateInstallation when the charger offers it. The truck's side is in
`pnc_truck`. Without the tester's PnC material (profile [pnc] table or test PKI) a case is inconclusive."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from stack.messages import iso20_types as ct
from stack.security.pki import DEFAULT_PROFILE
from stack.session import conduct
from stack.session.exchanges import authorization, certificate_installation
from stack.session.pnc import CHALLENGE_BYTES, Contract, EvPnc, Provisioning
from stack.session.rules import Rule

from ..bench import Bench
from ..case import Breaker, Case
from ..driver import Fault, Script, Then, play
from ..judges import answered_with, clean_session, code_of, first_then, no_violation
from ..trace import Kind, Trace
from ..verdict import Verdict, failed
from .common import continue_with, tester_ev, with_code
from .pnc_kit import (
    AUTH,
    INSTALL,
    INSTALL_NEEDS,
    PNC,
    PNC_NEEDS,
    PNC_SETUP,
    TesterPnc,
    flipped,
    foreign_contract,
    issued,
    need_contract,
    need_provisioning,
    new_key_like,
    other_challenge,
    pnc_play,
    pnc_signature,
    signed_other,
    with_mode,
)
from .secc_rules import ev_for
from .secc_session import accepting, refused_then_closed

ACCEPTED = ("OK", "OK_CertificateExpiresSoon")
WARNINGS = tuple(code.value for code in ct.ResponseCode if code.value.startswith("WARNING"))
ACCEPTS_VALID = conduct.ACCEPTS_VALID.id
FRESH = conduct.PNC_CHALLENGE_FRESH.id
INSTALLED = conduct.PNC_INSTALLATION_VALID.id
ContractOf = Callable[[TesterPnc, Bench], Contract]
Mutation = Callable[[TesterPnc, Contract], Callable[[Any], Any]]


async def pnc_session(
    bench: Bench,
    contract: Contract | None,
    script: Script | None = None,
    provisioning: Provisioning | None = None,
) -> None:
    """One session of the tester's EV that authorizes by PnC only (with `provisioning` and no contract: it asks
    for one by CertificateInstallation first)."""
    ev = EvPnc(contract=contract, provisioning=provisioning, install=contract is None, eim_fallback=False)
    conversation = await bench.open()
    await play(tester_ev(**ev_for(bench, PNC_NEEDS), pnc=ev), conversation, script or Script())


def pnc_breaker(rule: str, *faults: Fault, **pnc: Any) -> Breaker:
    """Our charger with PnC (from the test PKI, `pnc` options) and these faults."""
    return Breaker(lambda: Script(faults), rule, {PNC_SETUP: pnc})


def accepting_pnc(code: str, rule: str, **pnc: Any) -> Breaker:
    """Our charger with PnC that answers OK where it refuses with `code`."""
    return dataclasses.replace(accepting(code, rule), settings={PNC_SETUP: pnc})


def offered(trace: Trace, installation: bool = False) -> Verdict | None:
    """A fail when the charger's AuthorizationSetupRes did not offer PnC (or CertificateInstallation), which its
    profile says it does."""
    setups = trace.received("AuthorizationSetupRes")
    setup: Any = setups[-1].message if setups else None
    if setup is None or PNC not in setup.authorization_services or setup.pnc_as_res_authorization_mode is None:
        seen = "no AuthorizationSetupRes" if setup is None else f"offered {setup.authorization_services}"
        return failed(ACCEPTS_VALID, "PnC offered with a GenChallenge (the profile says so)", seen)
    if installation and not setup.certificate_installation_service:
        return failed(INSTALLED, "CertificateInstallationService true (the profile says so)", "false", t=setups[-1].t)
    return None


def authorized(trace: Trace) -> Verdict | None:
    """A fail unless the charger accepted the tester's PnC AuthorizationReq."""
    pnc = [e for e in trace.sent(AUTH) if getattr(e.message, "selected_authorization_service", None) is PNC]
    if not pnc:
        return offered(trace) or failed(ACCEPTS_VALID, "a PnC AuthorizationReq", "the EV never got to send one")
    answer = answered_with(trace, AUTH, ACCEPTED, ACCEPTS_VALID)
    return None if answer.ok else answer


# -- sessions and challenges ---------------------------------------------------------------------------------------


def session_case() -> Case:
    async def run(bench: Bench, kit: TesterPnc) -> Verdict:
        await pnc_session(bench, need_contract(kit))
        return first_then(no_violation(bench.trace), authorized(bench.trace), clean_session(bench.trace))

    refusing = continue_with("AuthorizationRes", mutate=lambda m: with_code(m, "FAILED_SignatureError"))
    return Case(
        "SECC-PNC-SESSION",
        "A whole PnC session with a valid contract: AuthorizationRes OK (or OK_CertificateExpiresSoon), every "
        "request accepted",
        "secc",
        (ACCEPTS_VALID, authorization.challenge_answered.id, authorization.PNC_SIGNATURE_INVALID.id),
        pnc_play(run),
        pnc_breaker(ACCEPTS_VALID, refusing),
        PNC_NEEDS,
        ("pnc", "session"),
    )


def challenge_case() -> Case:
    async def run(bench: Bench, kit: TesterPnc) -> Verdict:
        contract = need_contract(kit)
        for _ in range(2):
            await pnc_session(bench, contract)
        return first_then(offered(bench.trace), fresh_challenges(bench.trace))

    return Case(
        "SECC-PNC-CHALLENGE-FRESH",
        f"Two PnC sessions: each AuthorizationSetupRes carries a GenChallenge of {CHALLENGE_BYTES} bytes, a new one",
        "secc",
        (FRESH,),
        pnc_play(run),
        Breaker(Script, FRESH, {PNC_SETUP: {"challenge": lambda: bytes(CHALLENGE_BYTES)}}),
        PNC_NEEDS,
        ("pnc", "challenge"),
    )


def fresh_challenges(trace: Trace) -> Verdict | None:
    entries = trace.received("AuthorizationSetupRes")
    seen: dict[bytes, float] = {}
    for entry in entries:
        mode = getattr(entry.message, "pnc_as_res_authorization_mode", None)
        challenge = b"" if mode is None else mode.gen_challenge
        if len(challenge) != CHALLENGE_BYTES:
            return failed(
                FRESH, f"a {CHALLENGE_BYTES}-byte GenChallenge", f"{len(challenge)} bytes", entry.name, entry.t
            )
        if challenge in seen:
            return failed(FRESH, "a new GenChallenge", f"{challenge.hex()} again", entry.name, entry.t)
        seen[challenge] = entry.t
    if len(seen) < 2:
        return failed(FRESH, "two sessions with a GenChallenge each", f"{len(seen)}")
    return None


# -- refusals of the PnC AuthorizationReq ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Refusal:
    """A PnC AuthorizationReq the charger must refuse with the `rule`'s code (`codes`: any of these will do): how
    the tester's EV changes its request (None: as made), the contract it signs with (None: the tester's own), and
    whether a valid PnC session follows (the charger keeps serving)."""

    tail: str
    title: str
    rule: Rule
    mutation: Mutation | None = None
    contract: ContractOf | None = None
    codes: tuple[str, ...] = ()
    again: bool = False

    @property
    def code(self) -> str:
        return self.rule.rc.value


def refusal_case(refusal: Refusal) -> Case:
    code, rule = refusal.code, refusal.rule.id
    codes = refusal.codes or (code,)
    fails = code.startswith("FAILED")

    async def run(bench: Bench, kit: TesterPnc) -> Verdict:
        contract = refusal.contract(kit, bench) if refusal.contract else need_contract(kit)
        then = Then.OBSERVE if fails else Then.CONTINUE
        faults = () if refusal.mutation is None else (Fault(AUTH, mutate=refusal.mutation(kit, contract), then=then),)
        await pnc_session(bench, contract, Script(faults))
        trace = bench.trace
        if not any(getattr(e.message, "pnc_a_req_authorization_mode", None) for e in trace.sent(AUTH)):
            return offered(trace) or failed(rule, "a PnC AuthorizationReq sent", "the EV never got there")
        if fails:
            return refused_then_closed(trace, AUTH, code, rule)
        answer = answered_with(trace, AUTH, codes, rule)
        if not answer.ok and refusal.codes:
            answer = dataclasses.replace(answer, expected="a WARNING_* code")
        verdict = first_then(
            None if answer.ok else answer, answered_with(trace, "SessionStopReq", ("OK",), ACCEPTS_VALID)
        )
        if verdict.ok and refusal.again:
            mark = len(trace.entries)
            await pnc_session(bench, need_contract(kit))
            return _served_again(trace, mark)
        return verdict

    expected = "a WARNING code" if refusal.codes else code
    then = "then the session ends" if fails else "the session goes on"
    more = (conduct.SERVES_AFTER_ABUSE.id,) if refusal.again else ()
    last = conduct.ENDS_AFTER_FAILED.id if fails else ACCEPTS_VALID
    return Case(
        f"SECC-PNC-{refusal.tail}",
        f"{refusal.title}: {expected}, {then}",
        "secc",
        (rule, *more, last),
        pnc_play(run),
        accepting_pnc(code, rule),
        PNC_NEEDS,
        ("pnc", "failed-codes" if fails else "warning-codes"),
    )


def _served_again(trace: Trace, mark: int) -> Verdict:
    """The session after the refused one was authorized by PnC and ended well."""
    later = Trace(trace.entries[mark:], trace.started)
    verdict = first_then(authorized(later), clean_session(later))
    if verdict.ok:
        return verdict
    return dataclasses.replace(verdict, rule=conduct.SERVES_AFTER_ABUSE.id)


def _wrong_challenge(kit: TesterPnc, contract: Contract) -> Callable[[Any], Any]:
    def mutate(req: Any) -> Any:
        mode = req.pnc_a_req_authorization_mode
        return with_mode(req, contract.private_key, gen_challenge=other_challenge(mode.gen_challenge))

    return mutate


def _unsigned(kit: TesterPnc, contract: Contract) -> Callable[[Any], Any]:
    return lambda req: with_mode(req, None)


def _changed_after_signing(kit: TesterPnc, contract: Contract) -> Callable[[Any], Any]:
    return lambda req: signed_other(req, contract.private_key)


def _other_key(kit: TesterPnc, contract: Contract) -> Callable[[Any], Any]:
    stranger = new_key_like(contract.private_key)  # a key no contract certificate holds

    def mutate(req: Any) -> Any:
        signature = pnc_signature(req.pnc_a_req_authorization_mode, stranger)
        return dataclasses.replace(req, header=dataclasses.replace(req.header, signature=signature))

    return mutate


def _garbage(kit: TesterPnc, contract: Contract) -> Callable[[Any], Any]:
    def mutate(req: Any) -> Any:
        chain = req.pnc_a_req_authorization_mode.contract_certificate_chain
        junk = dataclasses.replace(chain, certificate=b"\x30\x82\x01\x00" + bytes(range(256)))
        return with_mode(req, contract.private_key, contract_certificate_chain=junk)

    return mutate


def _foreign(kit: TesterPnc, bench: Bench) -> Contract:
    return foreign_contract(int(bench.clock.now() // 86_400), bench.pki.profile if bench.pki else DEFAULT_PROFILE)


def _expired(kit: TesterPnc, bench: Bench) -> Contract:
    return issued(kit, bench.clock.now(), expired=True)


def _not_yet_valid(kit: TesterPnc, bench: Bench) -> Contract:
    return issued(kit, bench.clock.now(), expired=False)


def refusals() -> Iterator[Refusal]:
    contract = {status.name: rule for status, rule in authorization.CONTRACT_REFUSED.items()}
    yield Refusal(
        "CHALLENGE-WRONG",
        "PnC AuthorizationReq echoing another GenChallenge (signed correctly)",
        authorization.challenge_answered,
        _wrong_challenge,
    )
    yield Refusal("UNSIGNED", "PnC AuthorizationReq without a header Signature", authorization.pnc_request_signed,
                  _unsigned)  # fmt: skip
    yield Refusal(
        "SIG-TAMPERED",
        "PnC AuthorizationReq whose element was changed after signing",
        authorization.PNC_SIGNATURE_INVALID,
        _changed_after_signing,
    )
    yield Refusal(
        "SIG-OTHER-KEY",
        "PnC AuthorizationReq signed by a key other than the contract's",
        authorization.PNC_SIGNATURE_INVALID,
        _other_key,
    )
    yield Refusal(
        "EMSP-UNKNOWN",
        "PnC AuthorizationReq with a contract of an MO root the charger does not know",
        contract["EMSP_UNKNOWN"],
        contract=_foreign,
    )
    yield Refusal(
        "EXPIRED",
        "PnC AuthorizationReq with an expired contract (issued by the MO sub-CA)",
        contract["EXPIRED"],
        contract=_expired,
    )
    yield Refusal(
        "NOT-YET-VALID",
        "PnC AuthorizationReq with a contract valid only from next week on",
        contract["NOT_YET_VALID"],
        contract=_not_yet_valid,
    )
    yield Refusal(
        "GARBAGE-CERT",
        "PnC AuthorizationReq whose contract certificate is not DER (signed), then a valid PnC session",
        contract["INVALID"],
        _garbage,
        codes=WARNINGS,
        again=True,
    )


# -- CertificateInstallation -----------------------------------------------------------------------------------


def installation_case() -> Case:
    async def run(bench: Bench, kit: TesterPnc) -> Verdict:
        await pnc_session(bench, None, provisioning=need_provisioning(kit))
        trace = bench.trace
        return first_then(
            offered(trace, installation=True), no_violation(trace), installed(trace), authorized(trace),
            clean_session(trace),
        )  # fmt: skip

    def tampered(res: Any) -> Any:
        return dataclasses.replace(res, header=dataclasses.replace(res.header, signature=flipped(res.header.signature)))

    return Case(
        "SECC-PNC-INSTALL",
        "CertificateInstallation with the tester's OEM provisioning chain: SignedInstallationData signed by the CPS, "
        "its key decrypts to the contract's, and the installed contract authorizes",
        "secc",
        (INSTALLED, certificate_installation.one_key_of_the_curve.id, ACCEPTS_VALID),
        pnc_play(run),
        pnc_breaker(INSTALLED, continue_with("CertificateInstallationRes", mutate=tampered), install=True),
        INSTALL_NEEDS,
        ("pnc", "installation"),
    )


def installed(trace: Trace) -> Verdict | None:
    """A fail unless the tester's EV accepted what CertificateInstallationRes delivered (its checks: the CPS chain
    to its roots, the CPS signature, the decrypted key against the contract certificate)."""
    for entry in trace.entries:
        if entry.kind is Kind.EVENT and entry.name == "contract_installed":
            return None
        if entry.kind is Kind.EVENT and (entry.name.startswith("installation") or "installation" in entry.detail):
            return failed(INSTALLED, "a contract the EV can check and use", entry.detail, "CertificateInstallationRes",
                          entry.t)  # fmt: skip
    answers = trace.received("CertificateInstallationRes")
    seen = f"CertificateInstallationRes {code_of(answers[-1])}" if answers else "no CertificateInstallationRes"
    return failed(INSTALLED, "a contract installed", seen)


def _without_signature(req: Any) -> Any:
    return dataclasses.replace(req, header=dataclasses.replace(req.header, signature=None))


def unsigned_installation_case() -> Case:
    rule = certificate_installation.installation_request_signed

    async def run(bench: Bench, kit: TesterPnc) -> Verdict:
        unsigned = Fault(INSTALL, mutate=_without_signature)
        await pnc_session(bench, None, Script((unsigned,)), provisioning=need_provisioning(kit))
        trace = bench.trace
        return first_then(
            offered(trace, installation=True), refused_then_closed(trace, INSTALL, rule.rc.value, rule.id)
        )

    return Case(
        "SECC-PNC-INSTALL-UNSIGNED",
        f"CertificateInstallationReq without a header Signature: {rule.rc.value}, then the session ends",
        "secc",
        (rule.id, conduct.ENDS_AFTER_FAILED.id),
        pnc_play(run),
        accepting_pnc(rule.rc.value, rule.id, install=True),
        INSTALL_NEEDS,
        ("pnc", "installation", "failed-codes"),
    )


def cases() -> Iterator[Case]:
    yield session_case()
    yield challenge_case()
    for refusal in refusals():
        yield refusal_case(refusal)
    yield installation_case()
    yield unsigned_installation_case()
