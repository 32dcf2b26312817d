"""A local contract-certificate backend: the CPS and MO of the test PKI, answering CertificateInstallation.

A real charger forwards CertificateInstallationReq to its backend (a CPS through the CSMS); this one does what that
backend does, with the keys of the test PKI (`mcs-v2g pki generate`): it checks the EV's OEM provisioning chain
against the OEM root, makes a contract key, has the MO sub-CA issue the contract certificate (CN = eMAID), encrypts
the key to the EV's provisioning key (`stack.security.key_delivery`) and signs `SignedInstallationData` with the
CPS leaf. For tests and emulators only: a real CPS never lets the charger see a contract key.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from stack.messages import iso20_common as cm
from stack.messages import iso20_types as ct
from stack.messages import xmldsig as ds
from stack.security import key_delivery, pki, xmldsig
from stack.security.chain_check import Finding, check_chain, load_certificate
from stack.session.pnc import InstallationAnswer

log = logging.getLogger(__name__)
RC = ct.ResponseCode
ELEMENT_ID = "id1"
BACKDATE = dt.timedelta(minutes=5)  # a contract is valid from a little before it was issued (clock differences)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _chain(certs: list[x509.Certificate]) -> cm.CertificateChain:
    return cm.CertificateChain(
        certificate=_der(certs[0]), sub_certificates=cm.SubCertificates(certificate=[_der(c) for c in certs[1:]])
    )


@dataclass
class LocalContractBackend:
    """Issues a contract (eMAID `emaid`) for every valid OEM provisioning chain whose EV trusts our V2G root. Only P-521
    provisioning keys: the X448 delivery of an Ed448 PKI cannot be built from the sources (README, Plug & Charge)."""

    paths: pki.PkiPaths
    emaid: str = pki.DEFAULT_EMAID
    validity_days: int = pki.DEFAULT_VALIDITY_DAYS
    signature: xmldsig.SignatureSettings = field(default_factory=xmldsig.SignatureSettings)
    key_delivery: key_delivery.KeyDeliverySettings = key_delivery.DEFAULT_SETTINGS
    issued: list[str] = field(default_factory=list)  # eMAIDs issued, in order

    def __post_init__(self) -> None:
        self._cps = pki.load_certificates(self.paths.cps_chain)
        self._cps_key = pki.load_private_key(self.paths.cps_key, self.paths.key_password)
        self._oem_root = pki.load_certificates(self.paths.oem_root_cert)
        self._v2g_root = pki.load_certificates(self.paths.v2g_root_cert)[0]

    def _names_our_root(self, root_id: ds.X509IssuerSerial) -> bool:
        """The EV's root ID is our V2G root: its serial, and its name (RFC 4514, or another rendering of the same
        name, as Josev sends Python's repr) holds our root's CN."""
        if root_id.x509_serial_number != self._v2g_root.serial_number:
            return False
        return f"CN={pki.common_name(self._v2g_root)}" in root_id.x509_issuer_name

    def install(self, request: cm.CertificateInstallationReq, now: float) -> InstallationAnswer:
        when = dt.datetime.fromtimestamp(now, dt.UTC)
        chain = request.oem_provisioning_certificate_chain
        try:
            leaf = load_certificate(chain.certificate)
            subs = [load_certificate(d) for d in (chain.sub_certificates.certificate if chain.sub_certificates else [])]
        except ValueError as exc:
            log.warning("CertificateInstallation: the OEM provisioning chain does not parse (%s)", exc)
            return InstallationAnswer(RC.WARNING_CertificateValidationError)
        report = check_chain([leaf, *subs], self._oem_root, when)
        if not report.ok:
            log.warning("CertificateInstallation: OEM provisioning chain refused: %s", report.problems[0])
            expired = bool(report.of(Finding.EXPIRED))
            return InstallationAnswer(
                RC.WARNING_CertificateExpired if expired else RC.WARNING_CertificateValidationError
            )
        ids = request.list_of_root_certificate_ids.root_certificate_id
        if not any(self._names_our_root(i) for i in ids):
            log.warning("CertificateInstallation: the EV trusts none of our roots for the CPS chain")
            return InstallationAnswer(RC.WARNING_NoCertificateAvailable)
        ev_key = leaf.public_key()
        if not isinstance(ev_key, ec.EllipticCurvePublicKey) or not isinstance(ev_key.curve, ec.SECP521R1):
            log.warning(
                "CertificateInstallation: only P-521 provisioning keys are served (got %s)", type(ev_key).__name__
            )
            return InstallationAnswer(RC.WARNING_NoCertificateAvailable)
        # the MO holds one contract for every EV here: `emaid`, whatever the EV would prefer (PrioritizedEMAIDs
        # only orders the contracts an EV is entitled to; it never names a new one)
        emaid = self.emaid
        prioritized = request.prioritized_emaids.emaid if request.prioritized_emaids else []
        if prioritized and emaid not in prioritized:
            log.info("CertificateInstallation: the EV prefers %s; its contract is %s", ", ".join(prioritized), emaid)
        contract_key = ec.generate_private_key(ec.SECP521R1())
        contract = pki.issue_contract_certificate(
            self.paths, contract_key.public_key(), emaid, validity_days=self.validity_days, valid_from=when - BACKDATE
        )
        mo_subs = pki.load_certificates(self.paths.contract_chain)[1:]
        contract_chain = cm.ContractCertificateChain(
            certificate=_der(contract), sub_certificates=cm.SubCertificates(certificate=[_der(c) for c in mo_subs])
        )
        delivered = key_delivery.encrypt_contract_key(
            contract_key,
            ev_key,
            pcid=pki.common_name(leaf),
            contract_ski=contract.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest,
            settings=self.key_delivery,
        )
        data = delivered.to_installation_data(ELEMENT_ID, contract_chain)
        signature = xmldsig.sign([xmldsig.SignedPart(data, "SignedInstallationData")], self._cps_key, self.signature)
        self.issued.append(emaid)
        return InstallationAnswer(
            RC.OK, cps_chain=_chain(self._cps), data=data, signature=signature, remaining=0, emaid=emaid
        )
