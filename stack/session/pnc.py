"""What each side needs for Plug & Charge (PROTOCOL.md 4.4, section 8), as plain settings of the session machines.

The EV holds a contract (its chain and private key) to sign AuthorizationReq, and its OEM provisioning chain to ask
for a contract by CertificateInstallation. The charger holds the MO roots it trusts, a revocation source, and a
contract-certificate backend that answers CertificateInstallation. The cryptography is in `stack.security`; the
machines stay sans-I/O (an OCSP fetch or a backend call happens at the edge and is seen here as "not yet known").
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from stack.messages import iso20_common as cm
from stack.messages import iso20_types as ct
from stack.messages import xmldsig as ds
from stack.security.contract_check import RevocationSource
from stack.security.key_delivery import DEFAULT_SETTINGS, KeyDeliverySettings
from stack.security.pki import CPS_DOMAIN, PrivateKey, common_name
from stack.security.xmldsig import SignatureSettings

CHALLENGE_BYTES = 16  # GenChallenge (XSD genChallengeType: 16 bytes)
EXPIRES_SOON = dt.timedelta(days=14)  # [V2G20-2218]: OK_CertificateExpiresSoon (PROTOCOL.md 4.4)
MAX_SUB_CERTIFICATES = 3  # XSD SubCertificatesType


@dataclass(frozen=True)
class Contract:
    """A contract certificate chain with its private key: what the EV signs PnC authorizations with."""

    certificate: x509.Certificate
    sub_certificates: tuple[x509.Certificate, ...]
    private_key: PrivateKey = field(repr=False)

    @property
    def emaid(self) -> str:
        return common_name(self.certificate)

    def chain(self) -> cm.ContractCertificateChain:
        der = Encoding.DER
        return cm.ContractCertificateChain(
            certificate=self.certificate.public_bytes(der),
            sub_certificates=cm.SubCertificates(certificate=[c.public_bytes(der) for c in self.sub_certificates]),
        )


@dataclass(frozen=True)
class Provisioning:
    """The EV's OEM provisioning chain and key (signs CertificateInstallationReq, receives the contract key), and
    the roots it trusts for the CPS chain (sent as ListOfRootCertificateIDs)."""

    certificate: x509.Certificate
    sub_certificates: tuple[x509.Certificate, ...]
    private_key: PrivateKey = field(repr=False)
    trusted_roots: tuple[x509.Certificate, ...]
    max_contract_chains: int = 1

    def root_ids(self) -> ct.ListOfRootCertificateIds:
        return ct.ListOfRootCertificateIds(
            root_certificate_id=[
                ds.X509IssuerSerial(
                    x509_issuer_name=root.issuer.rfc4514_string(), x509_serial_number=root.serial_number
                )
                for root in self.trusted_roots
            ]
        )


@dataclass(frozen=True)
class EvPnc:
    """The EV's Plug & Charge settings: authorize by PnC when the charger offers it (else EIM, if allowed)."""

    contract: Contract | None = None
    provisioning: Provisioning | None = None  # to install a contract when it has none (or `install` is set)
    install: bool = False  # ask for a new contract even when it holds one
    eim_fallback: bool = True
    signature: SignatureSettings = field(default_factory=SignatureSettings)
    key_delivery: KeyDeliverySettings = DEFAULT_SETTINGS
    # the DomainComponent the signer of SignedInstallationData must have: a CPS, not any leaf under the V2G root
    # (a charger's own leaf is one too); as the -2 certificate profiles name the domain. None: not checked
    cps_domain: str | None = CPS_DOMAIN
    # called with a contract as soon as it is installed (the product stores it: a session may still be cut short)
    keep: Callable[[Contract], None] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class InstallationAnswer:
    """What a contract-certificate backend answers: Ongoing (None data), a refusal code, or the signed data."""

    response_code: ct.ResponseCode = ct.ResponseCode.OK
    cps_chain: cm.CertificateChain | None = None
    data: cm.SignedInstallationData | None = None
    signature: ds.Signature | None = None  # over `data`, by the CPS leaf
    remaining: int = 0
    emaid: str | None = None


class ContractBackend(Protocol):
    """Issues contract certificates for CertificateInstallation (a CPS, or the local test one)."""

    def install(self, request: cm.CertificateInstallationReq, now: float) -> InstallationAnswer: ...


@dataclass(frozen=True)
class SeccPnc:
    """The charger's Plug & Charge settings: the MO roots a contract must chain to, revocation, installation."""

    mo_roots: tuple[x509.Certificate, ...]
    revocation: RevocationSource | None = None
    strict_revocation: bool = False  # an unknown revocation status refuses the contract (default: soft-fail, logged)
    backend: ContractBackend | None = None  # offers CertificateInstallation when set
    expires_soon: dt.timedelta = EXPIRES_SOON
    signature: SignatureSettings = field(default_factory=SignatureSettings)
    new_challenge: Callable[[], bytes] = field(default=lambda: os.urandom(CHALLENGE_BYTES), repr=False)


def authorization_summary(
    authorization: cm.Authorization | None, emaid: str | None, installed: bool | None = None
) -> dict[str, object]:
    """How a session was authorized, for reports: `auth` eim | pnc | None, the contract's eMAID under PnC, and
    (the EV's side) whether a contract was installed in it."""
    report: dict[str, object] = {"auth": None if authorization is None else authorization.value.lower(), "emaid": emaid}
    if installed is not None:
        report["contract_installed"] = installed
    return report
