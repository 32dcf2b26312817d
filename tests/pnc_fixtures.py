"""Shared Plug & Charge fixtures: test PKIs made once per process, contracts good and bad, the settings of both
sides, and small contract-certificate backends that misbehave on purpose.

Every PKI is valid from 60 days before the tests' T0 (virtual time) for a year, so a contract can be issued that
expired before T0, that starts after it, or that expires within the 14 days of OK_CertificateExpiresSoon.
"""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, x448
from cryptography.hazmat.primitives.serialization import Encoding

from stack.messages import iso20_common as cm
from stack.messages import iso20_types as ct
from stack.security import pki, xmldsig
from stack.security.contract_check import RevocationSource
from stack.security.ocsp import LocalOcspResponder, OcspCache, OcspStatus, StaticOcspResponses, ocsp_request
from stack.session.pnc import Contract, ContractBackend, EvPnc, InstallationAnswer, Provisioning, SeccPnc

RC = ct.ResponseCode
T0 = 1_795_000_000.0
NOW = dt.datetime.fromtimestamp(T0, dt.UTC)
PKI_VALID_FROM = NOW - dt.timedelta(days=60)
PROFILES: tuple[pki.Profile, ...] = ("secp521r1", "ed448", "secp256r1")
OTHER_EMAID = "DEMCSC87654321"

_root = Path(tempfile.mkdtemp(prefix="pnc-fixtures-"))
atexit.register(shutil.rmtree, _root, ignore_errors=True)


def _new_key(profile: pki.Profile) -> pki.PrivateKey:
    if profile == "ed448":
        return ed448.Ed448PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1() if profile == "secp256r1" else ec.SECP521R1())


@dataclass(frozen=True)
class Pki:
    """One generated test PKI (V2G, OEM and MO roots with their chains) and what the tests take from it."""

    paths: pki.PkiPaths
    profile: pki.Profile

    def cert(self, name: str) -> x509.Certificate:
        return pki.load_certificates(self.paths.cert(name))[0]

    def key(self, name: str) -> pki.PrivateKey:
        return pki.load_private_key(self.paths.key(name))

    @property
    def mo_root(self) -> x509.Certificate:
        return self.cert("mo_root_ca")

    @property
    def v2g_root(self) -> x509.Certificate:
        return self.cert("v2g_root_ca")

    @property
    def mo_subs(self) -> tuple[x509.Certificate, ...]:
        """MO sub-CA 2 then 1, as a contract chain carries them."""
        return (self.cert("mo_sub_ca2"), self.cert("mo_sub_ca1"))

    def contract(self) -> Contract:
        """The PKI's own contract (valid as long as the PKI)."""
        loaded = pki.load_contract(self.paths.directory)
        assert not isinstance(loaded.private_key, x448.X448PrivateKey)  # a signing key
        return Contract(loaded.certificate, loaded.sub_certificates, loaded.private_key)

    def issue(self, *, valid_from: dt.datetime, validity_days: int = 30, emaid: str = pki.DEFAULT_EMAID) -> Contract:
        """A fresh contract (new key of the profile) issued by MO sub-CA 2 for the given period."""
        key = _new_key(self.profile)
        leaf = pki.issue_contract_certificate(
            self.paths, key.public_key(), emaid, validity_days=validity_days, valid_from=valid_from
        )
        return Contract(leaf, self.mo_subs, key)

    def provisioning(self, trusted_roots: tuple[x509.Certificate, ...] | None = None) -> Provisioning:
        """The EV's OEM provisioning chain and key; it trusts this PKI's V2G root for the CPS chain by default."""
        chain = pki.load_certificates(self.paths.oem_prov_chain)
        roots = (self.v2g_root,) if trusted_roots is None else trusted_roots
        return Provisioning(chain[0], tuple(chain[1:]), self.key("oem_prov_leaf"), roots)

    def ocsp_responder(self) -> LocalOcspResponder:
        """The MO's OCSP responder for what MO sub-CA 2 issued (contract leaves)."""
        return LocalOcspResponder(
            self.cert("mo_ocsp_responder"), self.key("mo_ocsp_responder"), self.cert("mo_sub_ca2")
        )


@functools.cache
def make_pki(profile: pki.Profile = "secp521r1", name: str = "home") -> Pki:
    """A PKI per (profile, name), generated once per process; `name` tells apart PKIs of separate operators."""
    paths = pki.generate_pki(_root / f"{name}-{profile}", profile=profile, valid_from=PKI_VALID_FROM)
    return Pki(paths, profile)


def home(profile: pki.Profile = "secp521r1") -> Pki:
    return make_pki(profile)


def foreign(profile: pki.Profile = "secp521r1") -> Pki:
    """Another operator's PKI: the same subject names, other keys (roots the charger does not know)."""
    return make_pki(profile, "foreign")


# -- contracts --------------------------------------------------------------------------------------------------
def good_contract(profile: pki.Profile = "secp521r1") -> Contract:
    return home(profile).contract()


@functools.cache
def expired_contract(profile: pki.Profile = "secp521r1") -> Contract:
    return home(profile).issue(valid_from=NOW - dt.timedelta(days=40), validity_days=10)


@functools.cache
def not_yet_valid_contract(profile: pki.Profile = "secp521r1") -> Contract:
    return home(profile).issue(valid_from=NOW + dt.timedelta(days=1))


@functools.cache
def expiring_contract(profile: pki.Profile = "secp521r1", days: int = 10) -> Contract:
    """Valid now, but for less than `days` more (within 14 days: OK_CertificateExpiresSoon)."""
    return home(profile).issue(valid_from=NOW - dt.timedelta(days=1), validity_days=days)


def foreign_contract(profile: pki.Profile = "secp521r1") -> Contract:
    """A valid contract of an MO root the charger does not trust."""
    return foreign(profile).contract()


def broken_chain_contract(profile: pki.Profile = "secp521r1") -> Contract:
    """Our leaf with the other operator's sub-CAs: the names link, the signatures do not."""
    return replace(good_contract(profile), sub_certificates=foreign(profile).mo_subs)


def revocation_of(contract: Contract, profile: pki.Profile = "secp521r1") -> StaticOcspResponses:
    """A fixed OCSP answer (signed by the MO's responder) that says the contract leaf was revoked a day ago."""
    responder = home(profile).ocsp_responder()
    responder.revoke(contract.certificate.serial_number, NOW - dt.timedelta(days=1), x509.ReasonFlags.key_compromise)
    return StaticOcspResponses([responder.response_for(contract.certificate, NOW)])


@dataclass
class OcspEdge:
    """An `OcspCache` and the edge fetcher that fills it: until `ready` (virtual time) nothing has come back (the
    SECC sees None: pending); from then on each wanted certificate is fetched from `responder`."""

    responder: LocalOcspResponder
    ready: float
    cache: OcspCache = field(default_factory=OcspCache)
    fetched: int = 0

    def status(self, cert: x509.Certificate, issuer: x509.Certificate, now: dt.datetime) -> OcspStatus | None:
        if now.timestamp() >= self.ready:
            for wanted, by in self.cache.wanted():
                self.cache.put(wanted, by, self.responder.respond(ocsp_request(wanted, by), now))
                self.fetched += 1
        return self.cache.status(cert, issuer, now)


# -- the settings of both sides ------------------------------------------------------------------------------
def ev_pnc(contract: Contract | None = None, *, provisioning: Provisioning | None = None, **options: object) -> EvPnc:
    return EvPnc(contract=contract, provisioning=provisioning, **options)  # type: ignore[arg-type]


def secc_pnc(
    profile: pki.Profile = "secp521r1",
    *,
    revocation: RevocationSource | None = None,
    backend: ContractBackend | None = None,
    challenge: bytes | None = None,
) -> SeccPnc:
    """The charger trusts the home MO root of `profile`; `challenge` fixes the GenChallenge it sends."""
    pnc = SeccPnc(mo_roots=(home(profile).mo_root,), revocation=revocation, backend=backend)
    return pnc if challenge is None else replace(pnc, new_challenge=lambda: challenge)


def local_backend(**options: object) -> ContractBackend:
    from evse_emulator.contract_backend import LocalContractBackend

    return LocalContractBackend(home().paths, **options)  # type: ignore[arg-type]


# -- backends that misbehave ---------------------------------------------------------------------------------
@dataclass
class RefusingBackend:
    """Refuses every installation with `code`."""

    code: RC
    calls: int = 0

    def install(self, request: cm.CertificateInstallationReq, now: float) -> InstallationAnswer:
        self.calls += 1
        return InstallationAnswer(self.code)


@dataclass
class OngoingFirst:
    """Answers Ongoing (no data yet) `times` times, then what `backend` answers."""

    backend: ContractBackend
    times: int = 1
    calls: int = 0

    def install(self, request: cm.CertificateInstallationReq, now: float) -> InstallationAnswer:
        self.calls += 1
        if self.calls <= self.times:
            return InstallationAnswer(RC.OK)
        return self.backend.install(request, now)


@dataclass
class Doctored:
    """What `backend` answers, with the data changed by `change` and then signed by `signer` (None: not re-signed),
    optionally with another CPS chain."""

    backend: ContractBackend
    signer: pki.PrivateKey | None = None
    change: Callable[[cm.SignedInstallationData], cm.SignedInstallationData] | None = None
    cps_chain: cm.CertificateChain | None = None

    def install(self, request: cm.CertificateInstallationReq, now: float) -> InstallationAnswer:
        answer = self.backend.install(request, now)
        assert answer.data is not None
        data = answer.data if self.change is None else self.change(answer.data)
        signature = answer.signature
        if self.signer is not None:
            signature = xmldsig.sign([xmldsig.SignedPart(data, "SignedInstallationData")], self.signer)
        return replace(answer, data=data, signature=signature, cps_chain=self.cps_chain or answer.cps_chain)


def cps_chain_of(source: Pki) -> cm.CertificateChain:
    """The CPS chain of `source` as CertificateInstallationRes carries it."""
    certs = pki.load_certificates(source.paths.cps_chain)
    der = [c.public_bytes(Encoding.DER) for c in certs]
    return cm.CertificateChain(certificate=der[0], sub_certificates=cm.SubCertificates(certificate=der[1:]))


def secc_chain_of(source: Pki) -> cm.CertificateChain:
    """The charger's own TLS chain of `source` (V2G root -> CPO sub-CAs -> SECC leaf), posing as a CPS chain."""
    certs = pki.load_certificates(source.paths.secc_chain)
    der = [c.public_bytes(Encoding.DER) for c in certs]
    return cm.CertificateChain(certificate=der[0], sub_certificates=cm.SubCertificates(certificate=der[1:]))


def with_two_keys(data: cm.SignedInstallationData) -> cm.SignedInstallationData:
    """SignedInstallationData carrying an X448 key besides its P-521 one (MV-INSTALLATION-KEY)."""
    return replace(data, x448_encrypted_private_key=bytes(84))
