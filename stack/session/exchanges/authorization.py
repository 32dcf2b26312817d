"""AuthorizationSetupReq/Res and AuthorizationReq/Res, EIM and Plug & Charge (PROTOCOL.md 4.3, 4.4).

Plug & Charge: the SECC sends a fresh GenChallenge; the EV answers it in PnC_AReqAuthorizationMode with its contract
chain and signs that element with its contract key (the signature in the header). The SECC checks the challenge (a
request rule), the signature against the contract leaf, the chain against its MO roots, the validity and the
revocation status (`stack.security.contract_check`), then asks its controller with the eMAID.
"""

from __future__ import annotations

import datetime as dt
import hmac

from cryptography.hazmat.primitives.asymmetric import ec, ed448

from stack.messages import iso20_common as cm
from stack.messages import iso20_types as ct
from stack.security import contract_check as cc
from stack.security import xmldsig
from stack.security.chain_check import load_certificate

from ..controller import AuthorizationStatus
from ..exchange import Answer, EvccContext, Handlers, Repeat, SeccContext, SendNext, Step, StopSession
from ..pnc import SeccPnc
from ..rules import Rule, decision, request_rule
from ..state import Outcome, SessionState
from .common import code_outcome, header, processing_outcome

RC = ct.ResponseCode
PNC = cm.Authorization.PnC
EIM = cm.Authorization.EIM
PNC_ELEMENT = "PnC_AReqAuthorizationMode"
PNC_ELEMENT_ID = "id1"


# -- AuthorizationSetup ----------------------------------------------------------------------------------------


def offered_authorizations(secc: SeccContext) -> list[cm.Authorization]:
    """EIM and PnC as configured; PnC only with the trust it needs (`SeccConfig.pnc`)."""
    config = secc.config
    return [a for a in config.authorizations if a is not PNC or config.pnc is not None]


def answer_setup(secc: SeccContext, req: cm.AuthorizationSetupReq, now: float) -> Answer:
    offered = offered_authorizations(secc)
    pnc = secc.config.pnc
    res = cm.AuthorizationSetupRes(
        header=header(secc.state.session_id, now),
        response_code=RC.OK,
        authorization_services=offered,
        certificate_installation_service=pnc is not None and pnc.backend is not None and PNC in offered,
    )
    # with PnC offered the PnC branch (its GenChallenge) is sent even when EIM is offered too ([V2G20-2567/2568])
    if PNC in offered and pnc is not None:
        res.pnc_as_res_authorization_mode = cm.PncAsResAuthorizationMode(gen_challenge=pnc.new_challenge())
    else:
        res.eim_as_res_authorization_mode = cm.EimAsResAuthorizationMode()
    return Answer(res)


def setup_outcome(req: cm.AuthorizationSetupReq, res: cm.AuthorizationSetupRes) -> Outcome:
    return code_outcome(res.response_code) or Outcome.OK


def apply_setup(
    state: SessionState, req: cm.AuthorizationSetupReq, res: cm.AuthorizationSetupRes, result: Outcome
) -> SessionState:
    pnc = res.pnc_as_res_authorization_mode
    return state.to(
        state.phase,
        authorization_services=frozenset(res.authorization_services),
        gen_challenge=None if pnc is None else pnc.gen_challenge,
        certificate_installation=res.certificate_installation_service,
    )


def build_setup(ev: EvccContext, now: float) -> cm.AuthorizationSetupReq:
    return cm.AuthorizationSetupReq(header=header(ev.state.session_id, now))


def next_authorization_step(ev: EvccContext) -> Step:
    """After AuthorizationSetup (or an installation): install a contract, authorize by PnC, or by EIM."""
    offered = ev.state.authorization_services
    pnc = ev.config.pnc
    if pnc is not None and PNC in offered:
        wants_contract = ev.contract is None or (pnc.install and not ev.contract_installed)
        can_install = pnc.provisioning is not None and ev.state.certificate_installation
        if wants_contract and can_install and not ev.installation_tried:
            return SendNext(cm.CertificateInstallationReq)
        if ev.contract is not None:
            return SendNext(cm.AuthorizationReq, options={"service": PNC})
    if EIM in offered and (pnc is None or pnc.eim_fallback):
        return SendNext(cm.AuthorizationReq, options={"service": EIM})
    wanted = "EIM" if pnc is None else "PnC with a contract" + (" or EIM" if pnc.eim_fallback else "")
    names = ", ".join(sorted(a.value for a in offered)) or "nothing"
    return StopSession(f"no authorization possible: the EV wants {wanted}, the SECC offers {names}")


def react_setup(
    ev: EvccContext, req: cm.AuthorizationSetupReq, res: cm.AuthorizationSetupRes, result: Outcome, now: float
) -> Step:
    return next_authorization_step(ev)


AUTHORIZATION_SETUP = Handlers(
    answer=answer_setup, outcome=setup_outcome, build=build_setup, react=react_setup, apply=apply_setup
)

# -- Authorization -----------------------------------------------------------------------------------------------

EIM_REFUSED = decision(
    "V2G20-2230",
    RC.WARNING_EIMAuthorizationFailure,
    "EIM authorization refused: the SECC answers Finished with WARNING_EIMAuthorizationFailure.",
    "PROTOCOL.md 4.3 (LIB15118 authorization.cpp)",
)


@request_rule("V2G20-2209", RC.WARNING_AuthorizationSelectionInvalid, "PROTOCOL.md 4.3 ([V2G20-2209/2226], LIB15118)")
def selected_authorization_offered(state: SessionState, req: cm.AuthorizationReq) -> bool:
    """The EV selects an authorization service the SECC offered in AuthorizationSetupRes."""
    return req.selected_authorization_service in state.authorization_services


@request_rule(
    "MV-AUTHORIZATION-MODE",
    RC.WARNING_AuthorizationSelectionInvalid,
    "XSD AuthorizationReq (choice EIM_AReqAuthorizationMode | PnC_AReqAuthorizationMode); LIB15118 authorization.cpp",
)
def mode_element_of_the_selection(state: SessionState, req: cm.AuthorizationReq) -> bool:
    """The AuthorizationReq carries the element of the service it selects (EIM or PnC)."""
    if req.selected_authorization_service == cm.Authorization.EIM:
        return req.eim_a_req_authorization_mode is not None
    return req.pnc_a_req_authorization_mode is not None


@request_rule("V2G20-2565", RC.WARNING_ChallengeInvalid, "PROTOCOL.md 4.3, 4.4 (JOSEV secc Authorization)")
def challenge_answered(state: SessionState, req: cm.AuthorizationReq) -> bool:
    """A PnC AuthorizationReq carries the GenChallenge of this session's AuthorizationSetupRes."""
    mode = req.pnc_a_req_authorization_mode
    sent = state.gen_challenge
    return mode is None or (sent is not None and hmac.compare_digest(bytes(mode.gen_challenge), sent))


@request_rule("MV-PNC-SIGNED", RC.FAILED_SignatureError, "PROTOCOL.md 4.3 and section 8 (the Signature in the header)")
def pnc_request_signed(state: SessionState, req: cm.AuthorizationReq) -> bool:
    """A PnC AuthorizationReq carries a header Signature over its PnC_AReqAuthorizationMode."""
    return req.pnc_a_req_authorization_mode is None or req.header.signature is not None


PNC_SIGNATURE_INVALID = decision(
    "V2G20-461",
    RC.FAILED_SignatureError,
    "The signature over PnC_AReqAuthorizationMode verifies with the contract certificate's key; else FAILED.",
    "PROTOCOL.md 4.4 ([V2G20-461]), section 8; JOSEV secc Authorization",
)
PNC_REFUSED = decision(
    "MV-PNC-REFUSED",
    RC.WARNING_GeneralPnCAuthorizationError,
    "The charger's backend refused the eMAID of a valid contract: WARNING_GeneralPnCAuthorizationError.",
    "XSD responseCodeType; Josev's AuthorizationRes code table (PROTOCOL.md 4.3)",
)
# a contract that fails its checks: the code of its status, each a decision of its own
CONTRACT_REFUSED: dict[cc.ContractStatus, Rule] = {
    status: decision(
        f"MV-PNC-CONTRACT-{status.name.replace('_', '-')}",
        code,
        f"A contract chain that is {status.value.replace('_', ' ')} is answered {code}.",
        "PROTOCOL.md 4.4 (EVerest PR 2849), XSD responseCodeType; stack/security/contract_check.py",
    )
    for status, code in cc.RESPONSE_CODES.items()
    if code is not RC.OK and not str(code).startswith("OK")
}


def answer_authorization(secc: SeccContext, req: cm.AuthorizationReq, now: float) -> Answer:
    head = header(secc.state.session_id, now)
    emaid = None
    if req.pnc_a_req_authorization_mode is not None and secc.config.pnc is not None:
        refused, emaid, ok_code = _check_pnc(secc.config.pnc, req, now)
        if refused is not None:
            return refused_answer(head, refused)
        if emaid is None:  # the revocation status is not known yet
            return Answer(cm.AuthorizationRes(header=head, response_code=RC.OK, evse_processing=ct.Processing.Ongoing))
        secc.emaid = emaid
        secc.contract_key = _contract_key(req)
    status = secc.controller.authorize(now, emaid=emaid)
    if status is AuthorizationStatus.ONGOING:
        processing = ct.Processing.Ongoing_WaitingForCustomerInteraction
        return Answer(cm.AuthorizationRes(header=head, response_code=RC.OK, evse_processing=processing))
    if status is AuthorizationStatus.REJECTED:
        return refused_answer(head, EIM_REFUSED if emaid is None else PNC_REFUSED)
    code = RC.OK if emaid is None else ok_code
    return Answer(cm.AuthorizationRes(header=head, response_code=code, evse_processing=ct.Processing.Finished))


def refused_answer(head: ct.MessageHeader, rule: Rule) -> Answer:
    return Answer(cm.AuthorizationRes(header=head, response_code=rule.rc, evse_processing=ct.Processing.Finished), rule)


def _check_pnc(pnc: SeccPnc, req: cm.AuthorizationReq, now: float) -> tuple[Rule | None, str | None, RC]:
    """(refusal, eMAID, OK code) of a PnC request: the signature, then the chain; eMAID None while pending."""
    mode = req.pnc_a_req_authorization_mode
    signature = req.header.signature
    assert mode is not None and signature is not None  # the request rules hold
    chain = mode.contract_certificate_chain
    subs = chain.sub_certificates.certificate if chain.sub_certificates is not None else []
    check = cc.check_contract(
        chain.certificate,
        subs,
        pnc.mo_roots,
        dt.datetime.fromtimestamp(now, dt.UTC),
        expires_soon=pnc.expires_soon,
        revocation=pnc.revocation,
        strict_revocation=pnc.strict_revocation,
    )
    if check.leaf is not None:
        key = check.leaf.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey | ed448.Ed448PublicKey):
            return CONTRACT_REFUSED[cc.ContractStatus.INVALID], None, RC.OK
        try:
            xmldsig.verify(signature, [xmldsig.SignedPart(mode, PNC_ELEMENT)], key, pnc.signature)
        except xmldsig.SignatureError:
            return PNC_SIGNATURE_INVALID, None, RC.OK
    code = cc.RESPONSE_CODES[check.status]
    if check.status is cc.ContractStatus.PENDING:
        return None, None, RC.OK
    if check.status in CONTRACT_REFUSED:
        return CONTRACT_REFUSED[check.status], None, RC.OK
    return None, check.emaid, code


def _contract_key(req: cm.AuthorizationReq) -> xmldsig.PublicKey | None:
    """The contract leaf's public key of a PnC request that passed `_check_pnc` (it verifies MeteringConfirmation)."""
    mode = req.pnc_a_req_authorization_mode
    assert mode is not None  # a PnC request
    key = load_certificate(mode.contract_certificate_chain.certificate).public_key()
    return key if isinstance(key, ec.EllipticCurvePublicKey | ed448.Ed448PublicKey) else None


def authorization_outcome(req: cm.AuthorizationReq, res: cm.AuthorizationRes) -> Outcome:
    return processing_outcome(res.response_code, res.evse_processing)


def apply_authorization(
    state: SessionState, req: cm.AuthorizationReq, res: cm.AuthorizationRes, result: Outcome
) -> SessionState:
    if result is not Outcome.OK:
        return state
    return state.to(state.phase, authorized=True, authorization=req.selected_authorization_service)


def build_authorization(ev: EvccContext, now: float, service: cm.Authorization = EIM) -> cm.AuthorizationReq:
    head = header(ev.state.session_id, now)
    if service is not PNC:
        return cm.AuthorizationReq(
            header=head, selected_authorization_service=EIM, eim_a_req_authorization_mode=cm.EimAReqAuthorizationMode()
        )
    contract, pnc = ev.contract, ev.config.pnc
    assert contract is not None and pnc is not None and ev.state.gen_challenge is not None  # next_authorization_step
    mode = cm.PncAReqAuthorizationMode(
        id=PNC_ELEMENT_ID, gen_challenge=ev.state.gen_challenge, contract_certificate_chain=contract.chain()
    )
    head.signature = xmldsig.sign([xmldsig.SignedPart(mode, PNC_ELEMENT)], contract.private_key, pnc.signature)
    return cm.AuthorizationReq(header=head, selected_authorization_service=PNC, pnc_a_req_authorization_mode=mode)


def react_authorization(
    ev: EvccContext, req: cm.AuthorizationReq, res: cm.AuthorizationRes, result: Outcome, now: float
) -> Step:
    if result is Outcome.ONGOING:  # the same request again, its signature kept ([V2G20-1582])
        return Repeat(ev.config.timers.loop_interval)
    if result is Outcome.REFUSED:
        return StopSession(f"authorization refused: {res.response_code}")
    return SendNext(cm.ServiceDiscoveryReq)


AUTHORIZATION = Handlers(
    answer=answer_authorization,
    outcome=authorization_outcome,
    build=build_authorization,
    react=react_authorization,
    apply=apply_authorization,
)
