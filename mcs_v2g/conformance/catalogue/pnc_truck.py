"""Plug & Charge, truck under test (the tester as the charger, trusting its MO roots): the truck's PnC
AuthorizationReq (the challenge echoed, signed by its contract key, a chain the roots accept), how it stops when its
authorization is refused, and, when it installs contracts, its signed CertificateInstallationReq and its refusal of a
contract whose CPS signature does not verify."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from evse_emulator.contract_backend import LocalContractBackend
from stack.messages import iso20_common as cm
from stack.security import pki, xmldsig
from stack.security.chain_check import CertificateParseError, load_certificate
from stack.session import conduct
from stack.session.actions import Action
from stack.session.exchanges import authorization, certificate_installation
from stack.session.pnc import SeccPnc
from stack.session.rulebook import BY_NAME
from stack.session.rules import Rule
from stack.transport.drive import SessionMachine

from ..bench import Bench
from ..case import Breaker, Case
from ..driver import Fault, Script, Then
from ..judges import CLOSE_WITHIN_S, closed_after, code_of, first_then, no_violation
from ..trace import Entry, Kind, Trace
from ..verdict import Verdict, failed, inconclusive
from .common import continue_with, request_like, with_code
from .evcc_faults import LINGER_S, OBSERVE_S, STOPS, spoiled
from .evcc_session import serve, whole_session
from .pnc_kit import (
    AUTH,
    INSTALL,
    INSTALL_NEEDS,
    PNC,
    PNC_NEEDS,
    PNC_SETUP,
    WRAP,
    NoPncMaterial,
    TesterPnc,
    flipped,
    need_installer,
    new_key_like,
    pnc_play,
    pnc_signature,
)

USES_PNC = conduct.EV_AUTHORIZES_BY_PNC.id
STOPS_REFUSED = conduct.EV_STOPS_AFTER_PNC_REFUSED.id
CHECKS = conduct.EV_CHECKS_INSTALLATION.id
SEQUENCE_TIMEOUT_S = 60.0  # V2G_SECC_Sequence_Timeout: the tester's charger gives up on a silent truck then
INSTALLATION = "CertificateInstallationRes"


def charger(kit: TesterPnc, *, install: bool = False, eim: bool = False) -> dict[str, Any]:
    """SeccConfig settings of the tester's charger: PnC (and EIM) offered, the tester's MO roots trusted, and with
    `install` CertificateInstallation by the test PKI's CPS and MO."""
    if not kit.mo_roots:
        raise NoPncMaterial("no MO root for the tester's charger (pnc.mo_roots in the profile, or a test PKI)")
    roots, backend = kit.mo_roots, None
    if install:  # the contracts it installs come from the test PKI's MO: its root is trusted too
        installer = need_installer(kit)
        roots = (*roots, *pki.load_certificates(installer.mo_root_cert))
        backend = LocalContractBackend(installer)
    services = (cm.Authorization.EIM, PNC) if eim else (PNC,)
    return {"authorizations": services, "pnc": SeccPnc(mo_roots=roots, backend=backend)}


def truck_breaker(rule: str, *faults: Fault, install: bool = False, **settings: Any) -> Breaker:
    """Our truck with PnC from the test PKI and these faults (the flow goes on after each)."""
    return Breaker(lambda: Script(faults), rule, {PNC_SETUP: {"install": install}, **settings})


def decision_of(entry: Entry) -> Rule | None:
    """The decision of the rulebook behind a refusal the tester's charger sent (None: not a refusal)."""
    code = code_of(entry)
    if not entry.name.endswith("Res") or code.startswith("OK"):
        return None
    exchange = BY_NAME.get(entry.name.removesuffix("Res") + "Req")
    return (
        next((r for r in exchange.decisions if r.code is not None and r.code.value == code), None) if exchange else None
    )


def decisions(trace: Trace) -> Verdict | None:
    """A fail for the first PnC refusal of the tester's charger (the truck's request earned it); inconclusive when
    the tester's own contract backend could not serve the truck."""
    backend = set(certificate_installation.BACKEND_REFUSED.values())
    for entry in trace.sent():
        rule = decision_of(entry)
        if rule in backend:
            return inconclusive(
                f"the tester's contract backend refused the installation ({code_of(entry)}): the truck's OEM "
                "provisioning chain must come from the tester's test PKI"
            )
        if rule is not None:
            return failed(
                rule.id, "a request the charger accepts", f"{entry.name} {code_of(entry)}", entry.name, entry.t
            )
    return None


def used_pnc(trace: Trace) -> Verdict | None:
    """A fail unless the truck's AuthorizationReq selected PnC (the tester offered only PnC)."""
    requests = trace.received(AUTH)
    if requests and all(getattr(e.message, "selected_authorization_service", None) is PNC for e in requests):
        return None
    seen = "no AuthorizationReq" if not requests else "EIM selected"
    return failed(USES_PNC, "a PnC AuthorizationReq", seen, AUTH, requests[-1].t if requests else None)


def signed_by_stranger(req: Any) -> Any:
    """`req` signed by a fresh key instead of the contract's (a PnC request; others unchanged, and so is one whose
    contract leaf does not parse: the charger refuses that as it is)."""
    mode = req.pnc_a_req_authorization_mode
    if mode is None:
        return req
    try:
        leaf = load_certificate(mode.contract_certificate_chain.certificate)
    except CertificateParseError:
        return req
    signature = pnc_signature(mode, new_key_like(leaf.public_key()))
    return dataclasses.replace(req, header=dataclasses.replace(req.header, signature=signature))


def authorization_case() -> Case:
    async def run(bench: Bench, kit: TesterPnc) -> Verdict:
        await serve(bench, Script(), **charger(kit))
        trace = bench.trace
        return first_then(no_violation(trace), decisions(trace), used_pnc(trace), whole_session(trace))

    pnc_rules = (authorization.challenge_answered.id, authorization.pnc_request_signed.id)
    # the tester's charger checks no revocation: every other contract refusal it can give
    contract_rules = tuple(r.id for s, r in authorization.CONTRACT_REFUSED.items() if s.name != "REVOKED")
    bad_signature = authorization.PNC_SIGNATURE_INVALID.id
    return Case(
        "EVCC-PNC-AUTH",
        "Offered PnC only, the truck sends a PnC AuthorizationReq: the GenChallenge echoed, signed by its contract "
        "key, a contract chain the tester's MO roots accept; then it charges and ends with SessionStop",
        "evcc",
        (USES_PNC, *pnc_rules, bad_signature, *contract_rules),
        pnc_play(run),
        truck_breaker(bad_signature, continue_with(AUTH, mutate=signed_by_stranger)),
        PNC_NEEDS,
        ("pnc", "session"),
    )


# -- refused authorizations ------------------------------------------------------------------------------------


def refused_case(code: str) -> Case:
    fails = code.startswith("FAILED")
    note = f"AuthorizationRes answers {code}"
    then = Then.OBSERVE if fails else Then.CONTINUE
    fault = Fault("AuthorizationRes", mutate=lambda m: with_code(m, code), then=then, note=note)

    async def run(bench: Bench, kit: TesterPnc) -> Verdict:
        await serve(bench, Script((fault,), observe_s=OBSERVE_S), **charger(kit))
        trace = bench.trace
        pnc = used_pnc(trace)
        if pnc is not None:
            return pnc
        if fails:
            return closed_after(trace, spoiled(trace), CLOSE_WITHIN_S, STOPS, f"after {code}")
        return first_then(stopped_cleanly(trace, spoiled(trace)))

    if fails:  # our truck ends its session as it should, but keeps the connection open after it
        breaker = Breaker(lambda: Script(linger_s=LINGER_S), STOPS, {PNC_SETUP: {}})
    else:  # our truck goes on after the refusal: ServiceDiscoveryReq instead of its SessionStopReq
        breaker = truck_breaker(STOPS_REFUSED, Fault("SessionStopReq", replace=_going_on, then=Then.OBSERVE))
    rule = STOPS if fails else STOPS_REFUSED
    return Case(
        f"EVCC-PNC-{'SIGNATURE-ERROR' if fails else 'CHALLENGE-INVALID'}",
        f"The truck's PnC AuthorizationReq answered {code}: it "
        + ("sends nothing more and closes within 5 s" if fails else "ends with SessionStop or closes, nothing else"),
        "evcc",
        (rule, USES_PNC),
        pnc_play(run),
        breaker,
        PNC_NEEDS,
        ("pnc", "failed-codes" if fails else "warning-codes"),
    )


def _going_on(stop: Any) -> Any:
    return request_like("ServiceDiscoveryReq", stop.header.session_id)


def stopped_cleanly(trace: Trace, refusal: Entry | None) -> Verdict | None:
    """After the refusal the truck sent at most SessionStopReq and closed (or ended with SessionStop) before the
    tester's sequence timeout."""
    if refusal is None:
        return failed(STOPS_REFUSED, "a refused PnC AuthorizationReq", "the case never got there")
    later = trace.after(refusal)
    other = next((e for e in later if e.kind is Kind.RECEIVED and e.name != "SessionStopReq"), None)
    if other is not None:
        return failed(STOPS_REFUSED, "SessionStopReq or the connection closed", other.name, other.name, other.t)
    if any(e.kind is Kind.RECEIVED for e in later):
        return None
    end = next((e for e in later if e.kind in (Kind.PEER_CLOSED, Kind.WE_CLOSED, Kind.SILENCE)), None)
    if end is None or end.kind is not Kind.PEER_CLOSED or end.t - refusal.t >= SEQUENCE_TIMEOUT_S:
        seen = "the truck stayed silent" if end is None else end.detail
        return failed(STOPS_REFUSED, "SessionStopReq or a close before the sequence timeout", seen)
    return None


# -- CertificateInstallation -----------------------------------------------------------------------------------


def installs(trace: Trace) -> Verdict | None:
    """Inconclusive when the truck did not ask for a contract (holding a valid one, it need not)."""
    if trace.received(INSTALL):
        return None
    return inconclusive("the truck asked for no contract (CertificateInstallationReq) when offered")


def install_case() -> Case:
    async def run(bench: Bench, kit: TesterPnc) -> Verdict:
        await serve(bench, Script(), **charger(kit, install=True))
        trace = bench.trace
        return first_then(no_violation(trace), decisions(trace), installs(trace), whole_session(trace))

    def stranger(req: Any) -> Any:
        chain = req.oem_provisioning_certificate_chain
        try:
            leaf = load_certificate(chain.certificate)
        except CertificateParseError:  # the charger refuses the truck's own garbage as it is
            return req
        part = xmldsig.SignedPart(chain, certificate_installation.OEM_ELEMENT)
        signature = xmldsig.sign([part], new_key_like(leaf.public_key()), xmldsig.SignatureSettings())
        return dataclasses.replace(req, header=dataclasses.replace(req.header, signature=signature))

    signed, signature = (
        certificate_installation.installation_request_signed,
        certificate_installation.OEM_SIGNATURE_INVALID,
    )
    return Case(
        "EVCC-PNC-INSTALL",
        "Offered PnC and CertificateInstallation, the truck's CertificateInstallationReq is signed by its OEM "
        "provisioning leaf; it authorizes with the installed contract and ends with SessionStop",
        "evcc",
        (signed.id, signature.id, USES_PNC),
        pnc_play(run),
        truck_breaker(signature.id, continue_with(INSTALL, mutate=stranger), install=True),
        INSTALL_NEEDS,
        ("pnc", "installation"),
    )


def bad_cps_case() -> Case:
    tampered = continue_with(INSTALLATION, mutate=_unsigned_by_cps, note="SignedInstallationData's signature broken")

    async def run(bench: Bench, kit: TesterPnc) -> Verdict:
        await serve(bench, Script((tampered,), observe_s=OBSERVE_S), **charger(kit, install=True, eim=True))
        trace = bench.trace
        return first_then(installs(trace), not_used(trace))

    return Case(
        "EVCC-PNC-INSTALL-BAD-CPS",
        "CertificateInstallationRes whose CPS signature does not verify: the truck never authorizes by PnC with that "
        "contract (EIM, another contract, or it stops)",
        "evcc",
        (CHECKS,),
        pnc_play(run),
        truck_breaker(CHECKS, install=True, **{WRAP: Trusting}),
        INSTALL_NEEDS,
        ("pnc", "installation"),
    )


def _unsigned_by_cps(res: Any) -> Any:
    return dataclasses.replace(res, header=dataclasses.replace(res.header, signature=flipped(res.header.signature)))


def not_used(trace: Trace) -> Verdict | None:
    """A fail when a PnC AuthorizationReq carries the contract certificate of the spoiled installation."""
    delivered = [e.message for e in trace.sent(INSTALLATION) if getattr(e.message, "signed_installation_data", None)]
    if not delivered:
        return inconclusive("the tester's charger delivered no contract")
    certificate = delivered[-1].signed_installation_data.contract_certificate_chain.certificate  # type: ignore[attr-defined]
    for entry in trace.received(AUTH):
        mode = getattr(entry.message, "pnc_a_req_authorization_mode", None)
        if mode is not None and mode.contract_certificate_chain.certificate == certificate:
            return failed(CHECKS, "no PnC authorization with the contract of a bad CertificateInstallationRes",
                          "a PnC AuthorizationReq with that contract", AUTH, entry.t)  # fmt: skip
    return None


class Trusting:
    """Our truck that checks nothing in CertificateInstallationRes (the broken peer of EVCC-PNC-INSTALL-BAD-CPS):
    it has the test CPS sign SignedInstallationData again before its machine sees it."""

    def __init__(self, machine: SessionMachine, paths: pki.PkiPaths) -> None:
        self.machine = machine
        self.key = pki.load_private_key(paths.cps_key, paths.key_password)

    @property
    def closed(self) -> Any:
        return self.machine.closed

    @property
    def deadline(self) -> float | None:
        return self.machine.deadline

    def start(self, now: float) -> list[Action]:
        return self.machine.start(now)

    def receive(self, message: object, now: float) -> list[Action]:
        if isinstance(message, cm.CertificateInstallationRes) and message.header.signature is not None:
            part = xmldsig.SignedPart(message.signed_installation_data, certificate_installation.INSTALLATION_ELEMENT)
            signature = xmldsig.sign([part], self.key, xmldsig.SignatureSettings())
            message = dataclasses.replace(message, header=dataclasses.replace(message.header, signature=signature))
        return self.machine.receive(message, now)

    def expire(self, now: float) -> list[Action]:
        return self.machine.expire(now)

    def connection_lost(self, now: float) -> list[Action]:
        return self.machine.connection_lost(now)


def cases() -> Iterator[Case]:
    yield authorization_case()
    for code in ("WARNING_ChallengeInvalid", "FAILED_SignatureError"):
        yield refused_case(code)
    yield install_case()
    yield bad_cps_case()
