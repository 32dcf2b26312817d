"""CertificateInstallationReq/Res: the EV gets a contract by Plug & Charge provisioning (PROTOCOL.md 4.4, 4.5, 8).

The EV signs its OEM provisioning chain (`OEMProvisioningCertificateChain`) with the provisioning key and names the
roots it trusts. The SECC checks that signature and hands the request to its contract-certificate backend (a CPS;
`SeccPnc.backend`), which answers with the contract chain and the contract private key encrypted to the EV's
provisioning key (`stack.security.key_delivery`), all in `SignedInstallationData` signed by the CPS leaf. The EV
checks the CPS chain against its roots and that signature, decrypts the key, checks that it matches the contract
certificate, keeps the contract, and authorizes by PnC in the same session.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from stack.messages import iso20_common as cm
from stack.messages import iso20_types as ct
from stack.messages.minimal import minimal
from stack.security import key_delivery, xmldsig
from stack.security.chain_check import check_chain, load_certificate
from stack.security.pki import common_name, domain_component

from ..actions import Event
from ..exchange import Answer, EvccContext, Handlers, Repeat, SeccContext, SendNext, Step, StopSession
from ..pnc import Contract
from ..rules import Rule, decision, request_rule, response_rule
from ..state import Outcome, SessionState
from .authorization import next_authorization_step
from .common import header, processing_outcome

RC = ct.ResponseCode
OEM_ELEMENT = "OEMProvisioningCertificateChain"
INSTALLATION_ELEMENT = "SignedInstallationData"
ELEMENT_ID = "id1"


@request_rule(
    "MV-INSTALLATION-OFFERED",
    RC.FAILED_SequenceError,
    "PROTOCOL.md 4.4: only when AuthorizationSetupRes offers it (CertificateInstallationService)",
)
def installation_offered(state: SessionState, req: cm.CertificateInstallationReq) -> bool:
    """The EV asks for a contract only when the SECC offered CertificateInstallation."""
    return state.certificate_installation


@request_rule("MV-INSTALLATION-SIGNED", RC.FAILED_SignatureError, "PROTOCOL.md section 8 (signed -20 elements)")
def installation_request_signed(state: SessionState, req: cm.CertificateInstallationReq) -> bool:
    """A CertificateInstallationReq carries a header Signature over its OEMProvisioningCertificateChain."""
    return req.header.signature is not None


@response_rule("MV-INSTALLATION-KEY", "XSD SignedInstallationDataType; PROTOCOL.md 4.5 and section 8 (sizes)")
def one_key_of_the_curve(
    state: SessionState, req: cm.CertificateInstallationReq, res: cm.CertificateInstallationRes
) -> bool:
    """SignedInstallationData carries one encrypted private key, the one of its ECDHCurve."""
    data = res.signed_installation_data
    if str(res.response_code) != "OK" or res.evse_processing is not ct.Processing.Finished:
        return True
    keys = (data.secp521_encrypted_private_key, data.x448_encrypted_private_key, data.tpm_encrypted_private_key)
    present = [k for k in keys if k is not None]
    own = (
        data.secp521_encrypted_private_key
        if data.ecdh_curve is cm.EcdhCurve.SECP521
        else data.x448_encrypted_private_key
    )
    return len(present) == 1 and (own is not None or data.tpm_encrypted_private_key is not None)


OEM_SIGNATURE_INVALID = decision(
    "MV-INSTALLATION-SIGNATURE",
    RC.FAILED_SignatureError,
    "The signature over OEMProvisioningCertificateChain verifies with its leaf's key; else FAILED_SignatureError.",
    "PROTOCOL.md section 8 (signer: OEM provisioning key); XSD responseCodeType",
)
# what a backend may refuse with, each a decision with its code
BACKEND_REFUSED: dict[RC, Rule] = {
    code: decision(
        f"MV-INSTALLATION-{code.value.removeprefix('WARNING_').removeprefix('FAILED_')}",
        code,
        f"The contract-certificate backend refused the installation: {code.value}.",
        "XSD responseCodeType; SeccPnc.backend (ContractBackend)",
    )
    for code in (
        RC.WARNING_NoCertificateAvailable,
        RC.WARNING_CertificateValidationError,
        RC.WARNING_CertificateExpired,
        RC.WARNING_CertificateNotYetValid,
        RC.WARNING_CertificateRevoked,
        RC.WARNING_NoContractMatchingPCIDFound,
        RC.FAILED,
    )
}


def _refusal(secc: SeccContext, rule: Rule, now: float) -> Answer:
    res = minimal(
        cm.CertificateInstallationRes,
        header=header(secc.state.session_id, now),
        response_code=rule.rc,
        evse_processing=ct.Processing.Finished,
    )
    return Answer(res, rule)


def answer_installation(secc: SeccContext, req: cm.CertificateInstallationReq, now: float) -> Answer:
    pnc = secc.config.pnc
    if pnc is None or pnc.backend is None:  # installation_offered holds: only a reconfigured charger gets here
        return _refusal(secc, BACKEND_REFUSED[RC.WARNING_NoCertificateAvailable], now)
    chain = req.oem_provisioning_certificate_chain
    signature = req.header.signature
    assert signature is not None  # installation_request_signed holds
    try:
        leaf = load_certificate(chain.certificate)
        xmldsig.verify(signature, [xmldsig.SignedPart(chain, OEM_ELEMENT)], leaf.public_key(), pnc.signature)
    except (ValueError, TypeError, xmldsig.SignatureError):
        return _refusal(secc, OEM_SIGNATURE_INVALID, now)
    answer = pnc.backend.install(req, now)
    if answer.response_code is not RC.OK:
        return _refusal(secc, BACKEND_REFUSED.get(answer.response_code, BACKEND_REFUSED[RC.FAILED]), now)
    head = header(secc.state.session_id, now)
    if answer.data is None or answer.cps_chain is None:  # the backend is still working
        res = minimal(
            cm.CertificateInstallationRes, header=head, response_code=RC.OK, evse_processing=ct.Processing.Ongoing
        )
        return Answer(res)
    head.signature = answer.signature
    res = cm.CertificateInstallationRes(
        header=head,
        response_code=RC.OK,
        evse_processing=ct.Processing.Finished,
        cps_certificate_chain=answer.cps_chain,
        signed_installation_data=answer.data,
        remaining_contract_certificate_chains=answer.remaining,
    )
    return Answer(res)


def installation_outcome(req: cm.CertificateInstallationReq, res: cm.CertificateInstallationRes) -> Outcome:
    return processing_outcome(res.response_code, res.evse_processing)


def build_installation(ev: EvccContext, now: float) -> cm.CertificateInstallationReq:
    pnc = ev.config.pnc
    assert pnc is not None and pnc.provisioning is not None  # next_authorization_step
    prov = pnc.provisioning
    chain = cm.SignedCertificateChain(
        id=ELEMENT_ID,
        certificate=_der(prov.certificate),
        sub_certificates=cm.SubCertificates(certificate=[_der(c) for c in prov.sub_certificates]),
    )
    head = header(ev.state.session_id, now)
    head.signature = xmldsig.sign([xmldsig.SignedPart(chain, OEM_ELEMENT)], prov.private_key, pnc.signature)
    ev.installation_tried = True
    return cm.CertificateInstallationReq(
        header=head,
        oem_provisioning_certificate_chain=chain,
        list_of_root_certificate_ids=prov.root_ids(),
        maximum_contract_certificate_chains=prov.max_contract_chains,
    )


def react_installation(
    ev: EvccContext, req: cm.CertificateInstallationReq, res: cm.CertificateInstallationRes, result: Outcome, now: float
) -> Step:
    if result is Outcome.ONGOING:  # the same request again, its signature kept ([V2G20-1582])
        return Repeat(ev.config.timers.loop_interval)
    if result is not Outcome.OK:
        return _then(ev, Event("installation_refused", {"code": str(res.response_code)}))
    try:
        contract = _accept(ev, res, now)
    except InstallationRejected as exc:
        return _then(ev, Event("installation_rejected", {"why": str(exc)}))
    ev.contract = contract
    ev.contract_installed = True
    if ev.config.pnc is not None and ev.config.pnc.keep is not None:
        ev.config.pnc.keep(contract)
    return _then(ev, Event("contract_installed", {"emaid": contract.emaid}))


def _then(ev: EvccContext, event: Event) -> Step:
    step = next_authorization_step(ev)
    if isinstance(step, SendNext):
        return SendNext(step.request, step.after, step.options, (*step.events, event))
    if isinstance(step, StopSession):  # the stop says why the installation gave nothing
        detail = ", ".join(str(v) for v in event.detail.values())
        return StopSession(f"{event.kind.replace('_', ' ')} ({detail}); {step.why}")
    return step


class InstallationRejected(Exception):
    """The EV does not accept what CertificateInstallationRes delivered."""


def _accept(ev: EvccContext, res: cm.CertificateInstallationRes, now: float) -> Contract:
    """Check the CPS chain and signature, decrypt the contract key and check it against the contract certificate."""
    pnc = ev.config.pnc
    assert pnc is not None and pnc.provisioning is not None
    prov = pnc.provisioning
    when = dt.datetime.fromtimestamp(now, dt.UTC)
    try:
        cps = [
            load_certificate(res.cps_certificate_chain.certificate),
            *_loads(res.cps_certificate_chain.sub_certificates),
        ]
        data = res.signed_installation_data
        contract_chain = data.contract_certificate_chain
        leaf = load_certificate(contract_chain.certificate)
        subs = tuple(_loads(contract_chain.sub_certificates))
    except ValueError as exc:
        raise InstallationRejected(f"a certificate does not parse: {exc}") from None
    report = check_chain(cps, prov.trusted_roots, when)
    if not report.ok:
        raise InstallationRejected(f"CPS chain: {report.problems[0]}")
    if pnc.cps_domain is not None and domain_component(cps[0]) != pnc.cps_domain:
        signer = cps[0].subject.rfc4514_string()
        raise InstallationRejected(f"CPS chain: its leaf {signer} is not a CPS's (DC={pnc.cps_domain})")
    signature = res.header.signature
    if signature is None:
        raise InstallationRejected("CertificateInstallationRes carries no signature")
    try:
        xmldsig.verify(signature, [xmldsig.SignedPart(data, INSTALLATION_ELEMENT)], cps[0].public_key(), pnc.signature)
    except xmldsig.SignatureError as exc:
        raise InstallationRejected(f"CPS signature: {exc}") from None
    if not isinstance(prov.private_key, ec.EllipticCurvePrivateKey):
        raise InstallationRejected("only a P-521 provisioning key receives a contract (X448 delivery: PROTOCOL.md 8)")
    try:
        key = key_delivery.decrypt_contract_key(
            key_delivery.DeliveredKey.from_installation_data(data),
            prov.private_key,
            pcid=common_name(prov.certificate),
            contract_ski=_ski(leaf),
            expected_public_key=leaf.public_key(),
            settings=pnc.key_delivery,
        )
    except key_delivery.KeyDeliveryError as exc:
        raise InstallationRejected(f"contract key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InstallationRejected("an X448 contract key cannot sign PnC authorizations")
    return Contract(leaf, subs, key)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _ski(cert: x509.Certificate) -> bytes:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return b""


def _loads(subs: cm.SubCertificates | None) -> list[x509.Certificate]:
    return [] if subs is None else [load_certificate(d) for d in subs.certificate]


CERTIFICATE_INSTALLATION = Handlers(
    answer=answer_installation,
    outcome=installation_outcome,
    build=build_installation,
    react=react_installation,
)
