"""Plug & Charge in whole sessions over VirtualLink (V2GTP and the real EXI codec): PnC authorization for the three
key profiles, the EIM fallbacks, every refusal the SECC can answer a contract with, CertificateInstallation with
the local CPS/MO, what the EV refuses to accept from it, and that no private key reaches an event or a log line.

The fixtures (PKIs, contracts, misbehaving backends) are in `tests/pnc_fixtures.py`; the per-rule walk is in
`test_rulebook.py`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from examples.minimal_controllers import MinimalEv, MinimalEvse
from stack.messages import iso20_common as cm
from stack.messages import iso20_types as ct
from stack.security import xmldsig
from stack.security.ocsp import StaticOcspResponses
from stack.security.pki import Profile
from stack.session.actions import Action, Event, Send, Violation
from stack.session.config import EvccConfig, SeccConfig
from stack.session.controller import AuthorizationStatus
from stack.session.evcc import EvccSession
from stack.session.pnc import Contract, EvPnc, SeccPnc
from stack.session.secc import SeccSession
from stack.transport.link import Transcript, VirtualLink
from tests import pnc_fixtures as pf

RC = ct.ResponseCode
PNC = cm.Authorization.PnC
EIM = cm.Authorization.EIM
T0 = pf.T0
EMAID = "DEMCSC12345678"


# -- running a session ------------------------------------------------------------------------------------------
@dataclass
class RejectingEvse(MinimalEvse):
    """A charger whose backend refuses every eMAID (and accepts EIM)."""

    def authorize(self, now: float, emaid: str | None = None) -> AuthorizationStatus:
        return AuthorizationStatus.REJECTED if emaid is not None else super().authorize(now)


class TamperingEvcc(EvccSession):
    """An EV that changes its AuthorizationReq after its own rules passed it, just before it goes out."""

    def __init__(self, config: EvccConfig, tamper: Callable[[cm.AuthorizationReq], cm.AuthorizationReq]) -> None:
        super().__init__(MinimalEv(charge_loops=2), config)
        self.tamper = tamper

    def start(self, now: float) -> list[Action]:
        return self._tampered(super().start(now))

    def receive(self, message: object, now: float) -> list[Action]:
        return self._tampered(super().receive(message, now))

    def expire(self, now: float) -> list[Action]:
        return self._tampered(super().expire(now))

    def _tampered(self, actions: list[Action]) -> list[Action]:
        return [
            Send(self.tamper(a.message), a.schema)
            if isinstance(a, Send) and isinstance(a.message, cm.AuthorizationReq)
            else a
            for a in actions
        ]


@dataclass
class Run:
    transcript: Transcript
    evcc: EvccSession
    secc: SeccSession
    ev: MinimalEv
    evse: MinimalEvse

    def requests(self, cls: type) -> list[Any]:
        return [m for _, d, m in self.transcript.messages if d == "ev->evse" and isinstance(m, cls)]

    def responses(self, cls: type) -> list[Any]:
        return [m for _, d, m in self.transcript.messages if d == "evse->ev" and isinstance(m, cls)]

    def codes(self, cls: type) -> list[str]:
        return [str(m.response_code) for m in self.responses(cls)]

    def events(self, side: str, kind: str) -> list[dict[str, Any]]:
        return [e.detail for _, s, e in self.transcript.events if s == side and isinstance(e, Event) and e.kind == kind]

    def secc_rules(self) -> list[str]:
        """The rules the SECC applied (broken request rules and decisions), as it announced them."""
        return [d["rule"] for d in self.events("evse", "rule")]


def run(
    ev_pnc: EvPnc | None,
    secc_pnc: SeccPnc | None = None,
    *,
    evse: MinimalEvse | None = None,
    authorizations: tuple[cm.Authorization, ...] = (EIM, PNC),
    tamper: Callable[[cm.AuthorizationReq], cm.AuthorizationReq] | None = None,
) -> Run:
    config = EvccConfig(pnc=ev_pnc)
    evcc = EvccSession(MinimalEv(charge_loops=2), config) if tamper is None else TamperingEvcc(config, tamper)
    evse = evse or MinimalEvse()
    secc = SeccSession(evse, SeccConfig(pnc=secc_pnc, authorizations=authorizations))
    transcript = VirtualLink(evcc, secc, now=T0).run()
    assert isinstance(evcc.controller, MinimalEv)
    return Run(transcript, evcc, secc, evcc.controller, evse)


def assert_charged(session: Run) -> None:
    """The session went all the way (charge loops, welding detection) and ended cleanly on both sides."""
    t = session.transcript
    assert t.ev_close is not None and t.ev_close.ok and t.evse_close is not None and t.evse_close.ok
    assert not t.violations()
    assert session.evcc.charge_loops == 2


def assert_stopped_after_authorization(session: Run, code: str) -> None:
    """The SECC answered the (last) AuthorizationReq with `code`; the EV stopped without charging and without
    error: SessionStop for a WARNING, an immediate close for a FAILED code."""
    t = session.transcript
    assert session.codes(cm.AuthorizationRes)[-1] == code
    assert not t.violations("ev") and session.evcc.charge_loops == 0
    assert not session.requests(cm.PowerDeliveryReq)
    assert session.ev.ended is not None and session.evse.ended is not None
    assert session.evcc.state.authorization is None and not session.secc.state.authorized
    # the eMAID is known only of a contract that passed its checks (a backend refusal comes after them)
    assert (session.secc.ctx.emaid is not None) is (code == "WARNING_GeneralPnCAuthorizationError")
    if code.startswith("FAILED"):
        assert t.ev_close is not None and not t.ev_close.ok and t.ev_close.error is None
        assert code in t.ev_close.reason and not session.requests(cm.SessionStopReq)
    else:
        (stop,) = session.requests(cm.SessionStopReq)
        assert stop.charging_session is cm.ChargingSession.Terminate
        assert any(code in d["why"] for d in session.events("ev", "stopping"))
        assert t.ev_close is not None and t.ev_close.ok


def resigned(key: Any) -> Callable[[cm.AuthorizationReq], cm.AuthorizationReq]:
    """Sign PnC_AReqAuthorizationMode with `key` instead of the contract's."""

    def tamper(req: cm.AuthorizationReq) -> cm.AuthorizationReq:
        parts = [xmldsig.SignedPart(req.pnc_a_req_authorization_mode, "PnC_AReqAuthorizationMode")]
        return replace(req, header=replace(req.header, signature=xmldsig.sign(parts, key)))

    return tamper


def _mode(req: cm.AuthorizationReq) -> cm.PncAReqAuthorizationMode:
    assert req.pnc_a_req_authorization_mode is not None
    return req.pnc_a_req_authorization_mode


def with_mode(**changes: Any) -> Callable[[cm.AuthorizationReq], cm.AuthorizationReq]:
    def tamper(req: cm.AuthorizationReq) -> cm.AuthorizationReq:
        return replace(req, pnc_a_req_authorization_mode=replace(_mode(req), **changes))

    return tamper


def with_chain(**changes: Any) -> Callable[[cm.AuthorizationReq], cm.AuthorizationReq]:
    def tamper(req: cm.AuthorizationReq) -> cm.AuthorizationReq:
        mode = _mode(req)
        chain = replace(mode.contract_certificate_chain, **changes)
        return replace(req, pnc_a_req_authorization_mode=replace(mode, contract_certificate_chain=chain))

    return tamper


def with_signature(change: Callable[[Any], Any]) -> Callable[[cm.AuthorizationReq], cm.AuthorizationReq]:
    def tamper(req: cm.AuthorizationReq) -> cm.AuthorizationReq:
        return replace(req, header=replace(req.header, signature=change(req.header.signature)))

    return tamper


def _der(contract: Contract) -> bytes:
    return contract.certificate.public_bytes(Encoding.DER)


# -- PnC authorization --------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", pf.PROFILES)
def test_pnc_session(profile: Profile) -> None:
    contract = pf.good_contract(profile)
    session = run(pf.ev_pnc(contract), pf.secc_pnc(profile))
    assert_charged(session)
    assert session.secc.ctx.emaid == EMAID and session.evcc.state.authorization is PNC
    assert session.evcc.state.authorized and session.secc.state.authorization is PNC
    (setup,) = session.responses(cm.AuthorizationSetupRes)
    assert set(setup.authorization_services) == {EIM, PNC} and not setup.certificate_installation_service
    (req,) = session.requests(cm.AuthorizationReq)
    mode = req.pnc_a_req_authorization_mode
    assert req.selected_authorization_service is PNC and req.eim_a_req_authorization_mode is None
    assert mode.gen_challenge == setup.pnc_as_res_authorization_mode.gen_challenge and len(mode.gen_challenge) == 16
    assert mode.contract_certificate_chain.certificate == _der(contract)
    assert req.header.signature is not None
    assert session.codes(cm.AuthorizationRes) == ["OK"]
    assert session.responses(cm.AuthorizationRes)[0].evse_processing is ct.Processing.Finished


def test_each_session_gets_a_fresh_challenge() -> None:
    challenges = [
        run(pf.ev_pnc(pf.good_contract()), pf.secc_pnc()).responses(cm.AuthorizationSetupRes)[0] for _ in range(2)
    ]
    first, second = (c.pnc_as_res_authorization_mode.gen_challenge for c in challenges)
    assert first != second


def test_eim_ev_at_a_pnc_charger() -> None:
    session = run(None, pf.secc_pnc())
    assert_charged(session)
    (setup,) = session.responses(cm.AuthorizationSetupRes)
    assert PNC in setup.authorization_services and setup.pnc_as_res_authorization_mode is not None
    (req,) = session.requests(cm.AuthorizationReq)
    assert req.selected_authorization_service is EIM and req.pnc_a_req_authorization_mode is None
    assert session.evcc.state.authorization is EIM and session.secc.ctx.emaid is None


@pytest.mark.parametrize(
    "secc_pnc, authorizations",
    [(None, (EIM, PNC)), (pf.secc_pnc, (EIM,))],
    ids=["charger-without-pnc-settings", "charger-offering-eim-only"],
)
def test_pnc_ev_at_an_eim_charger(secc_pnc: Callable[[], SeccPnc] | None, authorizations: tuple) -> None:
    charger = None if secc_pnc is None else secc_pnc()
    fallback = run(pf.ev_pnc(pf.good_contract()), charger, authorizations=authorizations)
    assert_charged(fallback)
    assert fallback.responses(cm.AuthorizationSetupRes)[0].authorization_services == [EIM]
    assert fallback.evcc.state.authorization is EIM and fallback.secc.ctx.emaid is None

    stop = run(pf.ev_pnc(pf.good_contract(), eim_fallback=False), charger, authorizations=authorizations)
    assert not stop.requests(cm.AuthorizationReq) and stop.evcc.charge_loops == 0
    (why,) = [d["why"] for d in stop.events("ev", "stopping")]
    assert why.startswith("no authorization possible: the EV wants PnC with a contract, the SECC offers")
    (req,) = stop.requests(cm.SessionStopReq)
    assert req.charging_session is cm.ChargingSession.Terminate
    assert stop.transcript.ev_close is not None and not stop.transcript.violations()


def test_pnc_ev_without_contract_or_provisioning_uses_eim() -> None:
    session = run(pf.ev_pnc(None), pf.secc_pnc())
    assert_charged(session)
    assert session.evcc.state.authorization is EIM and not session.requests(cm.CertificateInstallationReq)


# -- what the SECC answers a PnC request with ----------------------------------------------------------------
FAILURES: dict[str, tuple[Callable[[], dict[str, Any]], str, str]] = {
    # name: (run options, code, SECC rule)
    "wrong-challenge": (
        lambda: {"tamper": with_mode(gen_challenge=bytes(16))},
        "WARNING_ChallengeInvalid",
        "V2G20-2565",
    ),
    "no-signature": (lambda: {"tamper": with_signature(lambda s: None)}, "FAILED_SignatureError", "MV-PNC-SIGNED"),
    "tampered-element": (  # the sub-CAs swapped after signing: the signed content changed
        lambda: {
            "tamper": with_chain(
                sub_certificates=cm.SubCertificates(certificate=[_der_of(c) for c in pf.home().mo_subs[::-1]])
            )
        },
        "FAILED_SignatureError",
        "V2G20-461",
    ),
    "another-key": (
        lambda: {"tamper": resigned(ec.generate_private_key(ec.SECP521R1()))},
        "FAILED_SignatureError",
        "V2G20-461",
    ),
    "another-curve": (
        lambda: {"tamper": resigned(ed448.Ed448PrivateKey.generate())},
        "FAILED_SignatureError",
        "V2G20-461",
    ),
    "expired": (
        lambda: {"contract": pf.expired_contract()},
        "WARNING_CertificateExpired",
        "MV-PNC-CONTRACT-EXPIRED",
    ),
    "not-yet-valid": (
        lambda: {"contract": pf.not_yet_valid_contract()},
        "WARNING_CertificateNotYetValid",
        "MV-PNC-CONTRACT-NOT-YET-VALID",
    ),
    "foreign-root": (
        lambda: {"contract": pf.foreign_contract()},
        "WARNING_eMSPUnknown",
        "MV-PNC-CONTRACT-EMSP-UNKNOWN",
    ),
    "broken-chain": (
        lambda: {"contract": pf.broken_chain_contract()},
        "WARNING_CertificateValidationError",
        "MV-PNC-CONTRACT-INVALID",
    ),
    "revoked": (
        lambda: {"revocation": pf.revocation_of(pf.good_contract())},
        "WARNING_CertificateRevoked",
        "MV-PNC-CONTRACT-REVOKED",
    ),
    "emaid-rejected": (
        lambda: {"evse": RejectingEvse()},
        "WARNING_GeneralPnCAuthorizationError",
        "MV-PNC-REFUSED",
    ),
    "garbage-certificate": (
        lambda: {"tamper": with_chain(certificate=b"\x30\x82\x01\x00garbage" * 8)},
        "WARNING_CertificateValidationError",
        "MV-PNC-CONTRACT-INVALID",
    ),
    "version-3-certificate": (
        lambda: {"tamper": with_chain(certificate=_version_3(_der(pf.good_contract())))},
        "WARNING_CertificateValidationError",
        "MV-PNC-CONTRACT-INVALID",
    ),
    "garbage-sub-certificate": (
        lambda: {"tamper": with_chain(sub_certificates=cm.SubCertificates(certificate=[b"\x00" * 40]))},
        "WARNING_CertificateValidationError",
        "MV-PNC-CONTRACT-INVALID",
    ),
    "empty-certificate": (
        lambda: {"tamper": with_chain(certificate=b"\x30")},
        "WARNING_CertificateValidationError",
        "MV-PNC-CONTRACT-INVALID",
    ),
    "garbage-signature-value": (
        lambda: {
            "tamper": with_signature(
                lambda s: replace(s, signature_value=replace(s.signature_value, value=b"\xab" * 132))
            )
        },
        "FAILED_SignatureError",
        "V2G20-461",
    ),
    "short-signature-value": (
        lambda: {
            "tamper": with_signature(lambda s: replace(s, signature_value=replace(s.signature_value, value=b"\x01")))
        },
        "FAILED_SignatureError",
        "V2G20-461",
    ),
    "garbage-digest": (
        lambda: {"tamper": with_signature(_garbage_digest)},
        "FAILED_SignatureError",
        "V2G20-461",
    ),
    "unknown-algorithm": (
        lambda: {"tamper": with_signature(_unknown_algorithm)},
        "FAILED_SignatureError",
        "V2G20-461",
    ),
    "reference-to-nothing": (
        lambda: {"tamper": with_signature(_dangling_reference)},
        "FAILED_SignatureError",
        "V2G20-461",
    ),
}


def _der_of(cert: Any) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _garbage_digest(signature: Any) -> Any:
    (ref,) = signature.signed_info.reference
    garbage = replace(ref, digest_value=bytes(len(ref.digest_value)))
    return replace(signature, signed_info=replace(signature.signed_info, reference=[garbage]))


def _dangling_reference(signature: Any) -> Any:
    (ref,) = signature.signed_info.reference
    return replace(signature, signed_info=replace(signature.signed_info, reference=[replace(ref, uri="#nothing")]))


def _unknown_algorithm(signature: Any) -> Any:
    method = replace(signature.signed_info.signature_method, algorithm="urn:example:no-such-algorithm")
    return replace(signature, signed_info=replace(signature.signed_info, signature_method=method))


REQUEST_RULES = {"V2G20-2565", "MV-PNC-SIGNED"}


@pytest.mark.parametrize("case", list(FAILURES))
def test_secc_refuses_the_contract(case: str) -> None:
    options, code, rule = FAILURES[case]
    given = options()
    contract = given.pop("contract", pf.good_contract())
    revocation = given.pop("revocation", None)
    session = run(pf.ev_pnc(contract), pf.secc_pnc(revocation=revocation), **given)
    assert session.codes(cm.AuthorizationRes) == [code]
    assert session.secc_rules() == [rule]
    broken = [v.rule_id for v in session.transcript.violations("evse")]
    assert broken == ([rule] if rule in REQUEST_RULES else [])  # a decision is no fault of the EV
    assert_stopped_after_authorization(session, code)


PER_PROFILE: dict[str, tuple[Callable[[Profile], dict[str, Any]], str]] = {
    "expired": (lambda p: {"contract": pf.expired_contract(p)}, "WARNING_CertificateExpired"),
    "not-yet-valid": (lambda p: {"contract": pf.not_yet_valid_contract(p)}, "WARNING_CertificateNotYetValid"),
    "foreign-root": (lambda p: {"contract": pf.foreign_contract(p)}, "WARNING_eMSPUnknown"),
    "broken-chain": (lambda p: {"contract": pf.broken_chain_contract(p)}, "WARNING_CertificateValidationError"),
    "revoked": (lambda p: {"revocation": pf.revocation_of(pf.good_contract(p), p)}, "WARNING_CertificateRevoked"),
    "another-key": (lambda p: {"tamper": resigned(pf.expired_contract(p).private_key)}, "FAILED_SignatureError"),
}


@pytest.mark.parametrize("case", list(PER_PROFILE))
@pytest.mark.parametrize("profile", ["ed448", "secp256r1"])
def test_secc_refuses_the_contract_of_other_profiles(profile: Profile, case: str) -> None:
    options, code = PER_PROFILE[case]
    given = options(profile)
    contract = given.pop("contract", pf.good_contract(profile))
    revocation = given.pop("revocation", None)
    session = run(pf.ev_pnc(contract), pf.secc_pnc(profile, revocation=revocation), **given)
    assert session.codes(cm.AuthorizationRes) == [code]
    assert_stopped_after_authorization(session, code)


def test_pnc_while_the_charger_waits_for_its_backend() -> None:
    """Ongoing_WaitingForCustomerInteraction: each repeated PnC request is signed again (a new header)."""
    session = run(pf.ev_pnc(pf.good_contract()), pf.secc_pnc(), evse=MinimalEvse(authorization_steps=2))
    assert_charged(session)
    requests = session.requests(cm.AuthorizationReq)
    assert len(requests) == 3 and session.codes(cm.AuthorizationRes) == ["OK"] * 3
    assert all(r.header.signature is not None and r.pnc_a_req_authorization_mode for r in requests)
    assert session.evcc.state.authorization is PNC and session.secc.ctx.emaid == EMAID


def test_pending_revocation_answers_ongoing_until_the_ocsp_answer_arrives() -> None:
    edge = pf.OcspEdge(pf.home().ocsp_responder(), ready=T0 + 0.35)
    session = run(pf.ev_pnc(pf.good_contract()), pf.secc_pnc(revocation=edge))
    assert_charged(session)
    responses = session.responses(cm.AuthorizationRes)
    assert [str(r.response_code) for r in responses] == ["OK"] * len(responses)
    processing = [r.evse_processing for r in responses]
    assert len(processing) >= 3 and processing[-1] is ct.Processing.Finished
    assert set(processing[:-1]) == {ct.Processing.Ongoing}
    assert edge.fetched >= 1 and session.secc.ctx.emaid == EMAID
    requests = session.requests(cm.AuthorizationReq)
    assert len(requests) == len(responses) and all(r.header.signature is not None for r in requests)
    assert len({r.pnc_a_req_authorization_mode.gen_challenge for r in requests}) == 1  # one challenge per session


def test_pending_revocation_then_revoked() -> None:
    contract = pf.good_contract()
    responder = pf.home().ocsp_responder()
    responder.revoke(contract.certificate.serial_number, pf.NOW - dt.timedelta(hours=1))
    session = run(pf.ev_pnc(contract), pf.secc_pnc(revocation=pf.OcspEdge(responder, ready=T0 + 0.25)))
    codes = session.codes(cm.AuthorizationRes)
    assert codes[0] == "OK" and codes[-1] == "WARNING_CertificateRevoked" and len(codes) >= 2
    assert_stopped_after_authorization(session, "WARNING_CertificateRevoked")


@pytest.mark.parametrize("days, code", [(10, "OK_CertificateExpiresSoon"), (20, "OK")])
def test_contract_expiring_soon(days: int, code: str) -> None:
    session = run(pf.ev_pnc(pf.expiring_contract(days=days)), pf.secc_pnc())
    assert session.codes(cm.AuthorizationRes) == [code]
    assert_charged(session)  # a warning to the EV, not a refusal
    assert session.evcc.state.authorization is PNC and session.secc.ctx.emaid == EMAID


# -- CertificateInstallation ---------------------------------------------------------------------------------
def installing(
    backend: Any = None,
    *,
    contract: Contract | None = None,
    provisioning: Any = None,
    authorizations: tuple[cm.Authorization, ...] = (EIM, PNC),
    **ev_options: Any,
) -> Run:
    prov = provisioning or pf.home().provisioning()
    ev = pf.ev_pnc(contract, provisioning=prov, **ev_options)
    return run(ev, pf.secc_pnc(backend=backend or pf.local_backend()), authorizations=authorizations)


def test_installation_then_pnc_in_the_same_session() -> None:
    backend = pf.local_backend()
    session = installing(backend)
    assert_charged(session)
    assert session.transcript.names("ev->evse")[2:5] == [
        "AuthorizationSetupReq",
        "CertificateInstallationReq",
        "AuthorizationReq",
    ]
    (setup,) = session.responses(cm.AuthorizationSetupRes)
    assert setup.certificate_installation_service
    assert session.codes(cm.CertificateInstallationRes) == ["OK"]
    assert backend.issued == [EMAID]  # type: ignore[attr-defined]
    installed = session.evcc.ctx.contract
    assert installed is not None and session.evcc.ctx.contract_installed and installed.emaid == EMAID
    assert installed.private_key.public_key() == installed.certificate.public_key()
    (req,) = session.requests(cm.AuthorizationReq)
    assert req.pnc_a_req_authorization_mode.contract_certificate_chain.certificate == _der(installed)
    assert session.evcc.state.authorization is PNC and session.secc.ctx.emaid == EMAID
    assert session.events("ev", "contract_installed") == [{"emaid": EMAID}]


def test_installation_request_is_signed_by_the_provisioning_key() -> None:
    session = installing()
    (req,) = session.requests(cm.CertificateInstallationReq)
    prov = pf.home().provisioning()
    parts = [xmldsig.SignedPart(req.oem_provisioning_certificate_chain, "OEMProvisioningCertificateChain")]
    xmldsig.verify(req.header.signature, parts, prov.certificate.public_key())
    assert req.list_of_root_certificate_ids == prov.root_ids()


def test_installation_ongoing_first() -> None:
    backend = pf.OngoingFirst(pf.local_backend(), times=2)
    session = installing(backend)
    assert_charged(session)
    responses = session.responses(cm.CertificateInstallationRes)
    assert [r.evse_processing for r in responses] == [ct.Processing.Ongoing] * 2 + [ct.Processing.Finished]
    assert session.codes(cm.CertificateInstallationRes) == ["OK"] * 3 and backend.calls == 3
    assert all(r.header.signature is not None for r in session.requests(cm.CertificateInstallationReq))
    assert session.evcc.ctx.contract_installed and session.evcc.state.authorization is PNC


def _rejected(session: Run, why: str) -> None:
    """The EV refused what the SECC delivered and says why: in an event when it goes on, in its stop if not."""
    rejected = [d["why"] for d in session.events("ev", "installation_rejected")]
    stopping = [d["why"] for d in session.events("ev", "stopping")]
    assert [w.startswith(why) for w in rejected] == [True] or [
        w.startswith(f"installation rejected ({why}") for w in stopping
    ] == [True], (rejected, stopping)
    assert session.evcc.ctx.contract is None and not session.evcc.ctx.contract_installed
    assert session.codes(cm.CertificateInstallationRes) == ["OK"]  # the SECC delivered; the EV refused it
    assert not session.transcript.violations()


def _tampered_key(data: cm.SignedInstallationData) -> cm.SignedInstallationData:
    """One bit of the encrypted contract key flipped (in the ciphertext, past the IV)."""
    key = data.secp521_encrypted_private_key
    assert key is not None
    return replace(data, secp521_encrypted_private_key=key[:20] + bytes([key[20] ^ 0x01]) + key[21:])


EV_REJECTS: dict[str, tuple[Callable[[], Any], str]] = {
    "signed-by-another-key": (
        lambda: pf.Doctored(pf.local_backend(), signer=ec.generate_private_key(ec.SECP521R1())),
        "CPS signature",
    ),
    "tampered-key-resigned": (  # the CPS signs what it sends; the encrypted key itself does not decrypt
        lambda: pf.Doctored(
            pf.local_backend(),
            signer=pf.home().key("cps_leaf"),
            change=_tampered_key,
        ),
        "contract key",
    ),
    "tampered-key-unsigned": (  # changed on the way: the CPS signature no longer holds
        lambda: pf.Doctored(
            pf.local_backend(),
            change=_tampered_key,
        ),
        "CPS signature",
    ),
    "signed-by-a-chargers-own-leaf": (  # a leaf under the trusted V2G root, but a CPO's (DC=CPO), not a CPS's
        lambda: pf.Doctored(
            pf.local_backend(), signer=pf.home().key("secc_leaf"), cps_chain=pf.secc_chain_of(pf.home())
        ),
        "CPS chain: its leaf DC=CPO",
    ),
    "cps-of-an-untrusted-root": (
        lambda: pf.Doctored(
            pf.local_backend(), signer=pf.foreign().key("cps_leaf"), cps_chain=pf.cps_chain_of(pf.foreign())
        ),
        "CPS chain",
    ),
    "cps-leaf-of-version-3": (
        lambda: pf.Doctored(pf.local_backend(), cps_chain=_with_version_3_leaf(pf.cps_chain_of(pf.home()))),
        "a certificate does not parse",
    ),
}


@pytest.mark.parametrize("case", list(EV_REJECTS))
def test_ev_rejects_the_installation_and_falls_back_to_eim(case: str) -> None:
    backend, why = EV_REJECTS[case]
    session = installing(backend())
    _rejected(session, why)
    assert_charged(session)
    assert session.evcc.state.authorization is EIM and session.secc.ctx.emaid is None


@pytest.mark.parametrize("case", list(EV_REJECTS))
def test_ev_rejects_the_installation_and_stops_without_eim(case: str) -> None:
    backend, why = EV_REJECTS[case]
    session = installing(backend(), authorizations=(PNC,))
    _rejected(session, why)
    assert not session.requests(cm.AuthorizationReq) and session.evcc.charge_loops == 0
    (stopping,) = session.events("ev", "stopping")
    assert (
        stopping["why"].startswith(f"installation rejected ({why}") and "no authorization possible" in stopping["why"]
    )
    assert not session.events("ev", "installation_rejected")
    assert session.requests(cm.SessionStopReq) and session.transcript.ev_close is not None


def test_ev_without_eim_fallback_stops_after_a_rejected_installation() -> None:
    session = installing(EV_REJECTS["cps-of-an-untrusted-root"][0](), eim_fallback=False)
    _rejected(session, "CPS chain")
    assert not session.requests(cm.AuthorizationReq) and session.events("ev", "stopping")


@pytest.mark.parametrize(
    "code",
    [RC.WARNING_NoContractMatchingPCIDFound, RC.WARNING_NoCertificateAvailable, RC.WARNING_CertificateRevoked],
    ids=str,
)
def test_backend_refusal_then_eim(code: RC) -> None:
    backend = pf.RefusingBackend(code)
    session = installing(backend)
    assert session.codes(cm.CertificateInstallationRes) == [str(code)] and backend.calls == 1
    assert session.secc_rules() == [f"MV-INSTALLATION-{code.value.removeprefix('WARNING_')}"]
    assert session.events("ev", "installation_refused") == [{"code": str(code)}]
    assert_charged(session)
    assert session.evcc.state.authorization is EIM and session.evcc.ctx.contract is None


def test_backend_refusal_at_a_pnc_only_charger_stops() -> None:
    session = installing(pf.RefusingBackend(RC.WARNING_NoCertificateAvailable), authorizations=(PNC,))
    (stopping,) = session.events("ev", "stopping")
    assert stopping["why"].startswith("installation refused (WARNING_NoCertificateAvailable); no authorization")
    assert not session.requests(cm.AuthorizationReq) and session.requests(cm.SessionStopReq)
    assert not session.transcript.violations()


def test_backend_failure_ends_the_session() -> None:
    session = installing(pf.RefusingBackend(RC.FAILED))
    assert session.codes(cm.CertificateInstallationRes) == ["FAILED"]
    assert session.secc_rules() == ["MV-INSTALLATION-FAILED"]
    t = session.transcript
    assert t.ev_close is not None and not t.ev_close.ok and "FAILED" in t.ev_close.reason
    assert not session.requests(cm.AuthorizationReq) and not t.violations()


def test_backend_does_not_trust_the_oem_chain() -> None:
    untrusted = pf.foreign().provisioning(trusted_roots=(pf.home().v2g_root,))
    session = installing(provisioning=untrusted)
    assert session.codes(cm.CertificateInstallationRes) == ["WARNING_CertificateValidationError"]
    assert session.secc_rules() == ["MV-INSTALLATION-CertificateValidationError"]
    assert_charged(session)
    assert session.evcc.state.authorization is EIM and session.evcc.ctx.contract is None


def test_backend_serves_only_p521_provisioning_keys() -> None:
    """The local CPS of an Ed448 PKI refuses: the X448 key delivery is not settled (PROTOCOL.md 8)."""
    from evse_emulator.contract_backend import LocalContractBackend

    ed = pf.home("ed448")
    session = run(
        pf.ev_pnc(provisioning=ed.provisioning()), pf.secc_pnc("ed448", backend=LocalContractBackend(ed.paths))
    )
    assert session.codes(cm.CertificateInstallationRes) == ["WARNING_NoCertificateAvailable"]
    assert_charged(session)
    assert session.evcc.state.authorization is EIM


def test_install_replaces_an_existing_contract() -> None:
    old = pf.good_contract()
    backend = pf.local_backend(emaid=pf.OTHER_EMAID)
    session = installing(backend, contract=old, install=True)
    assert_charged(session)
    new = session.evcc.ctx.contract
    assert new is not None and new.certificate != old.certificate and new.emaid == pf.OTHER_EMAID
    (req,) = session.requests(cm.AuthorizationReq)
    assert req.pnc_a_req_authorization_mode.contract_certificate_chain.certificate == _der(new)
    assert session.secc.ctx.emaid == pf.OTHER_EMAID


def test_install_refused_keeps_the_old_contract() -> None:
    old = pf.good_contract()
    session = installing(pf.RefusingBackend(RC.WARNING_NoCertificateAvailable), contract=old, install=True)
    assert_charged(session)
    assert session.evcc.ctx.contract == old and not session.evcc.ctx.contract_installed
    (req,) = session.requests(cm.AuthorizationReq)
    assert req.pnc_a_req_authorization_mode is not None
    assert req.pnc_a_req_authorization_mode.contract_certificate_chain.certificate == _der(old)


def test_a_contract_is_not_reinstalled_without_install() -> None:
    backend = pf.local_backend()
    session = installing(backend, contract=pf.good_contract())
    assert_charged(session)
    assert not session.requests(cm.CertificateInstallationReq) and backend.issued == []  # type: ignore[attr-defined]


# -- secrets stay secret -------------------------------------------------------------------------------------
def _secrets(key: Any) -> list[str]:
    """Ways a private key could show up in text: its scalar in hex and decimal, its raw bytes."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        value = key.private_numbers().private_value
        raw = value.to_bytes((key.curve.key_size + 7) // 8, "big")
        return [f"{value:x}", f"{value:X}", str(value), raw.hex(), repr(raw)[2:-1][:40]]
    if isinstance(key, ed448.Ed448PrivateKey):
        raw = key.private_bytes_raw()
        return [raw.hex(), raw.hex().upper(), repr(raw)[2:-1][:40]]
    raise AssertionError(type(key))


@pytest.mark.parametrize("profile", pf.PROFILES)
def test_no_private_key_in_events_or_logs(profile: Profile, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="mcs_v2g")  # a sim run earlier in the process may have quietened it
    home = pf.home(profile)
    sessions = [run(pf.ev_pnc(pf.good_contract(profile)), pf.secc_pnc(profile))]
    keys = [pf.good_contract(profile).private_key, home.key("oem_prov_leaf")]
    if profile == "secp521r1":  # installation: the local CPS serves P-521 only
        sessions.append(installing(pf.local_backend()))
        installed = sessions[-1].evcc.ctx.contract
        assert installed is not None
        keys += [installed.private_key, home.key("cps_leaf")]
    texts = [r.getMessage() for r in caplog.records]
    for session in sessions:
        texts += [repr(e) for _, _, e in session.transcript.events]
        texts += [repr(session.evcc.ctx.contract), repr(session.evcc.config.pnc)]
    assert len(caplog.records) > 20 and any("AuthorizationReq" in t for t in texts)  # the logs were seen
    blob = "\n".join(texts)
    assert "PRIVATE KEY" not in blob
    for key in keys:
        for secret in _secrets(key):
            assert secret not in blob


def test_secret_search_would_find_a_leak() -> None:
    key = pf.good_contract().private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    leaked = repr(Event("oops", {"key": key.private_numbers().private_value}))
    assert any(secret in leaked for secret in _secrets(key))


def test_events_are_plain() -> None:
    """What the EV reports about an installation is plain text (no objects that could carry a key)."""
    session = installing(EV_REJECTS["tampered-key-resigned"][0]())
    for _, _, e in session.transcript.events:
        if isinstance(e, Event):
            assert all(isinstance(v, str | int | float | bool | type(None)) for v in e.detail.values()), e
        else:
            assert isinstance(e, Violation)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    certificate=st.one_of(st.none(), st.binary(min_size=1, max_size=300)),
    signature_value=st.one_of(st.none(), st.binary(min_size=1, max_size=200)),
    digest=st.one_of(st.none(), st.binary(min_size=1, max_size=80)),
)
def test_garbage_never_raises(certificate: bytes | None, signature_value: bytes | None, digest: bytes | None) -> None:
    """Whatever bytes the EV puts in the certificate, the signature value or the digest: a WARNING_ or FAILED_
    code (OK only when nothing changed), never an exception, on either side."""

    def tamper(req: cm.AuthorizationReq) -> cm.AuthorizationReq:
        if certificate is not None:
            req = with_chain(certificate=certificate)(req)
        if signature_value is not None:
            req = with_signature(
                lambda s: replace(s, signature_value=replace(s.signature_value, value=signature_value))
            )(req)
        if digest is not None:
            req = with_signature(lambda s: _digest(s, digest))(req)
        return req

    session = run(pf.ev_pnc(pf.good_contract()), pf.secc_pnc(), tamper=tamper)
    (code,) = session.codes(cm.AuthorizationRes)
    if certificate is None and signature_value is None and digest is None:
        assert code == "OK"
    else:
        assert code.startswith(("WARNING_", "FAILED_")), code
        assert_stopped_after_authorization(session, code)


def _digest(signature: Any, value: bytes) -> Any:
    (ref,) = signature.signed_info.reference
    return replace(signature, signed_info=replace(signature.signed_info, reference=[replace(ref, digest_value=value)]))


# -- revocation that stays unknown: soft-fail (logged) by default, refused when strict ----------------------------
def test_an_unknown_revocation_status_is_accepted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    nothing = StaticOcspResponses([])  # no response covers the contract: UNKNOWN
    session = run(pf.ev_pnc(pf.good_contract()), pf.secc_pnc(revocation=nothing))
    assert_charged(session)
    assert session.codes(cm.AuthorizationRes) == ["OK"]
    assert any("revocation status" in r.getMessage() and "soft-fail" in r.getMessage() for r in caplog.records)


def test_strict_revocation_refuses_an_unknown_status() -> None:
    nothing = StaticOcspResponses([])
    session = run(pf.ev_pnc(pf.good_contract()), replace(pf.secc_pnc(revocation=nothing), strict_revocation=True))
    assert_stopped_after_authorization(session, "WARNING_CertificateValidationError")


def test_an_installed_contract_is_kept_at_once() -> None:
    """The product stores an installed contract when it arrives, not when the session ends (it may be cut short)."""
    kept: list[Contract] = []
    session = installing(pf.local_backend(), keep=kept.append)
    assert_charged(session)
    assert kept == [session.evcc.ctx.contract]


def _version_3(der: bytes) -> bytes:
    """The certificate with its version field 3 (v3 is 2): cryptography raises InvalidVersion, no ValueError."""
    return der[:12] + bytes([der[12] ^ 1]) + der[13:]


def _with_version_3_leaf(chain: cm.CertificateChain) -> cm.CertificateChain:
    return replace(chain, certificate=_version_3(chain.certificate))


@pytest.mark.parametrize(
    "garble",
    [lambda _: b"", lambda _: b"\x30\x82\x01\x00garbage" * 8, lambda _: bytes(1600), _version_3],
    ids=["empty", "garbage", "zeros", "version-3"],
)
def test_a_garbage_provisioning_certificate_is_a_signature_error(garble: Callable[[bytes], bytes]) -> None:
    """The SECC reads the OEM provisioning leaf to check the request's signature: garbage there is
    FAILED_SignatureError (MV-INSTALLATION-SIGNATURE) and the session ends, never an exception."""
    from tests.unit.test_rulebook import _installing_pair

    pair = _installing_pair()
    request = pair.at(cm.CertificateInstallationReq)
    certificate = garble(request.oem_provisioning_certificate_chain.certificate)
    chain = replace(request.oem_provisioning_certificate_chain, certificate=certificate)
    actions = pair.to_secc(replace(request, oem_provisioning_certificate_chain=chain))
    (response,) = [a.message for a in actions if isinstance(a, Send)]
    assert str(response.response_code) == "FAILED_SignatureError"
    assert pair.secc.closed is not None


def test_the_testers_stranger_signature_leaves_a_request_whose_leaf_does_not_parse_as_it_is() -> None:
    """The conformance runner re-signs a truck's PnC AuthorizationReq with a fresh key; a truck whose contract leaf
    is garbage (version 3) keeps its request, which the charger refuses as it is (no tester error)."""
    from mcs_v2g.conformance.catalogue.pnc_truck import signed_by_stranger

    session = run(pf.ev_pnc(pf.good_contract()), pf.secc_pnc())
    (req,) = session.requests(cm.AuthorizationReq)
    assert signed_by_stranger(req).header.signature != req.header.signature
    garbage = with_chain(certificate=_version_3(_der(pf.good_contract())))(req)
    assert signed_by_stranger(garbage) is garbage
