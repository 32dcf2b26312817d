"""A minimal ISO 15118-20 test PKI (PROTOCOL.md section 8), generated with `cryptography`.

Profiles: secp521r1 (ECDSA-SHA512) and ed448 (Ed448 signatures), the -20 ones; secp256r1 (ECDSA-SHA256), the -2
one Josev still uses for -20. Every key of a PKI is of its profile.

Five chains, each root -> sub-CA 1 (pathlen 1) -> sub-CA 2 (pathlen 0) -> leaf:

- V2G root CA -> CPO sub-CA 1 -> CPO sub-CA 2 -> SECC leaf (TLS server, CN = EVSE ID);
- V2G root CA -> CPS sub-CA 1 -> CPS sub-CA 2 -> CPS leaf (signs CertificateInstallationRes);
- OEM root CA -> vehicle sub-CA 1 -> vehicle sub-CA 2 -> vehicle leaf (TLS client, CN = EVCC ID);
- OEM root CA -> OEM sub-CA 1 -> OEM sub-CA 2 -> OEM provisioning leaf (CN = PCID, signs
  CertificateInstallationReq; the CPS does ECDH with its key to encrypt the contract key);
- MO root CA -> MO sub-CA 1 -> MO sub-CA 2 -> contract leaf (CN = eMAID, AIA OCSP URL; signs PnC
  AuthorizationReq), and beside it the MO OCSP responder, issued by MO sub-CA 2 so it answers for contract leaves.

For tests and emulators only: the CA keys lie beside the certificates.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import tempfile
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, x448
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

Profile = Literal["secp521r1", "secp256r1", "ed448"]
PrivateKey = ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed448.Ed448PublicKey
# An installed contract key may also be X448: the 448 key delivery carries 56-byte keys (stack.security.key_delivery).
ContractPrivateKey = PrivateKey | x448.X448PrivateKey
ContractPublicKey = PublicKey | x448.X448PublicKey


@dataclass(frozen=True)
class _Algorithm:
    """How a profile makes keys and signs certificates (`digest` None: Ed448 hashes inside its own signature)."""

    new_key: Callable[[], PrivateKey]
    digest: type[hashes.SHA256 | hashes.SHA512] | None


# -20 leaves are P-521 with ECDSA-SHA512 or Ed448; P-256 with ECDSA-SHA256 is the -2 profile Josev still uses for -20.
PROFILES: dict[str, _Algorithm] = {
    "secp521r1": _Algorithm(lambda: ec.generate_private_key(ec.SECP521R1()), hashes.SHA512),
    "secp256r1": _Algorithm(lambda: ec.generate_private_key(ec.SECP256R1()), hashes.SHA256),
    "ed448": _Algorithm(ed448.Ed448PrivateKey.generate, None),
}
DEFAULT_PROFILE: Profile = "secp521r1"
DEFAULT_VALIDITY_DAYS = 365
DEFAULT_EVSE_ID = "DE*MCS*E12345"
DEFAULT_EVCC_ID = "WMAMCS00000000001"
# The PCID (CN of the OEM provisioning leaf) starts with the maker's WMI (Hubject support article "1.11 Registration
# Authority", https://support.hubject.com/hc/en-us/articles/12567311646493) and has 18 capitals/digits (the ISO-TEXT
# of [V2G20-2492] cited in stack.security.key_delivery, unconfirmed).
DEFAULT_PCID = "WMAMCSPCID00000001"
# eMAID = country code (2 letters), provider ID (3 alphanumerics), eMA instance (9 alphanumerics), optional check
# digit, the parts optionally separated by "-": the ISO 15118-2:2014 ABNF and pattern quoted by Hubject ("2.4
# E-Mobility Authentication Identifier (EMAID)", https://support.hubject.com/hc/en-us/articles/8946415679645); the
# 9-character instance also per chargecloud (https://support.chargecloud.de/hc/de/articles/360000547825, example
# DE*ABC*C12345678*1, instance starting with "C"). The default is country DE, provider MCS, instance C12345678 and
# no check digit (optional; its eMI3 matrix algorithm is not implemented here).
EMAID_PATTERN = re.compile(r"[A-Za-z]{2}(-?)[A-Za-z0-9]{3}\1[A-Za-z0-9]{9}(?:\1[A-Za-z0-9])?")
DEFAULT_EMAID = "DEMCSC12345678"
# Where contract leaves say their status is asked (AIA id-ad-ocsp); the test OCSP responder should listen there.
CPS_DOMAIN = "CPS"  # the DomainComponent of a CPS leaf: what an EV checks before it trusts installation data
DEFAULT_OCSP_URL = "http://127.0.0.1:8080/ocsp"
# SAN entries of the SECC leaf, so a client may also check the host name on loopback tests.
DEFAULT_HOSTNAMES = ("localhost", "127.0.0.1", "::1")
# ensure_pki regenerates when a certificate has less than this left.
MIN_REMAINING = dt.timedelta(days=1)
# Backdating covers small clock differences between processes and hosts.
_BACKDATE = dt.timedelta(minutes=5)

_ORG = "MCS-V2G Test PKI"


class PkiError(Exception):
    """A test PKI could not be generated or loaded."""


class PkiFileMissing(PkiError, FileNotFoundError):
    """A certificate, key or chain file does not exist."""


class PkiFileInvalid(PkiError, ValueError):
    """A file exists but is not the PEM certificate or key it should be (or the password is wrong)."""


Role = Literal["ca", "secc", "vehicle", "cps", "oem_prov", "contract", "ocsp"]


@dataclass(frozen=True)
class _Entity:
    name: str
    common_name: str  # CAs, CPS leaf, OCSP responder; the other leaves carry an ID given to generate_pki
    issuer: str | None  # None: self-signed root
    path_length: int | None = None  # CA certificates only
    role: Role = "ca"


# Generation order: an issuer always comes before what it signs.
_ENTITIES: tuple[_Entity, ...] = (
    _Entity("v2g_root_ca", "V2G Root CA", None, 2),
    _Entity("cpo_sub_ca1", "CPO Sub-CA 1", "v2g_root_ca", 1),
    _Entity("cpo_sub_ca2", "CPO Sub-CA 2", "cpo_sub_ca1", 0),
    _Entity("secc_leaf", "", "cpo_sub_ca2", role="secc"),
    _Entity("oem_root_ca", "OEM Root CA", None, 2),
    _Entity("vehicle_sub_ca1", "Vehicle Sub-CA 1", "oem_root_ca", 1),
    _Entity("vehicle_sub_ca2", "Vehicle Sub-CA 2", "vehicle_sub_ca1", 0),
    _Entity("vehicle_leaf", "", "vehicle_sub_ca2", role="vehicle"),
    _Entity("cps_sub_ca1", "CPS Sub-CA 1", "v2g_root_ca", 1),
    _Entity("cps_sub_ca2", "CPS Sub-CA 2", "cps_sub_ca1", 0),
    _Entity("cps_leaf", "CPS Leaf", "cps_sub_ca2", role="cps"),
    _Entity("oem_sub_ca1", "OEM Sub-CA 1", "oem_root_ca", 1),
    _Entity("oem_sub_ca2", "OEM Sub-CA 2", "oem_sub_ca1", 0),
    _Entity("oem_prov_leaf", "", "oem_sub_ca2", role="oem_prov"),
    _Entity("mo_root_ca", "MO Root CA", None, 2),
    _Entity("mo_sub_ca1", "MO Sub-CA 1", "mo_root_ca", 1),
    _Entity("mo_sub_ca2", "MO Sub-CA 2", "mo_sub_ca1", 0),
    _Entity("contract_leaf", "", "mo_sub_ca2", role="contract"),
    _Entity("mo_ocsp_responder", "MO OCSP Responder", "mo_sub_ca2", role="ocsp"),
)
ENTITY_NAMES = tuple(e.name for e in _ENTITIES)
# Chain files as TLS and the -20 certificate chains send them: leaf first, then the sub-CAs up to (not including)
# the root.
CHAINS = {
    "secc_chain": ("secc_leaf", "cpo_sub_ca2", "cpo_sub_ca1"),
    "vehicle_chain": ("vehicle_leaf", "vehicle_sub_ca2", "vehicle_sub_ca1"),
    "cps_chain": ("cps_leaf", "cps_sub_ca2", "cps_sub_ca1"),
    "oem_prov_chain": ("oem_prov_leaf", "oem_sub_ca2", "oem_sub_ca1"),
    "contract_chain": ("contract_leaf", "mo_sub_ca2", "mo_sub_ca1"),
}
# The files `load_contract` reads in a directory (a PKI directory has them too).
CONTRACT_LEAF = "contract_leaf"  # entity name of the contract leaf (its .pem, its .key)
CONTRACT_CHAIN_FILE = "contract_chain.pem"
CONTRACT_KEY_FILE = f"{CONTRACT_LEAF}.key"

# Key usages of each leaf (PROTOCOL.md section 8, Josev's test PKI). The OEM provisioning key also agrees keys: the
# CPS derives the key that encrypts the contract key by ECDH with it.
_LEAF_USAGES: dict[Role, frozenset[str]] = {
    "secc": frozenset({"digital_signature", "key_agreement"}),
    "vehicle": frozenset({"digital_signature", "key_agreement"}),
    "cps": frozenset({"digital_signature"}),
    "oem_prov": frozenset({"digital_signature", "key_agreement"}),
    "contract": frozenset({"digital_signature", "content_commitment", "key_encipherment", "key_agreement"}),
    "ocsp": frozenset({"digital_signature"}),
}
_LEAF_PURPOSES: dict[Role, x509.ObjectIdentifier] = {
    "secc": ExtendedKeyUsageOID.SERVER_AUTH,
    "vehicle": ExtendedKeyUsageOID.CLIENT_AUTH,
    "ocsp": ExtendedKeyUsageOID.OCSP_SIGNING,
}


@dataclass(frozen=True)
class TlsCredentials:
    """What one TLS endpoint needs: its chain (leaf first), its private key, the roots it trusts."""

    chain: Path
    key: Path
    trust_roots: Path
    key_password: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ContractCredentials:
    """A contract certificate chain file (leaf first, then MO sub-CAs) and the contract's private key file."""

    chain: Path
    key: Path
    key_password: bytes | None = field(default=None, repr=False)


class LoadedContract(NamedTuple):
    """A contract read by `load_contract`: the leaf (CN = eMAID), its MO sub-CAs (sub-CA 2 first), its private key
    (the order of `stack.session.pnc.Contract`'s fields)."""

    certificate: x509.Certificate
    sub_certificates: tuple[x509.Certificate, ...]
    private_key: ContractPrivateKey

    @property
    def emaid(self) -> str:
        return common_name(self.certificate)


@dataclass(frozen=True)
class PkiPaths:
    """Where the files of one generated test PKI are; `<name>.pem` certificate, `<name>.key` key."""

    directory: Path
    profile: Profile
    key_password: bytes | None = field(default=None, repr=False)

    def cert(self, name: str) -> Path:
        if name not in ENTITY_NAMES:
            raise KeyError(name)
        return self.directory / f"{name}.pem"

    def key(self, name: str) -> Path:
        if name not in ENTITY_NAMES:
            raise KeyError(name)
        return self.directory / f"{name}.key"

    def chain(self, name: str) -> Path:
        if name not in CHAINS:
            raise KeyError(name)
        return self.directory / f"{name}.pem"

    @property
    def v2g_root_cert(self) -> Path:
        return self.cert("v2g_root_ca")

    @property
    def oem_root_cert(self) -> Path:
        return self.cert("oem_root_ca")

    @property
    def mo_root_cert(self) -> Path:
        return self.cert("mo_root_ca")

    @property
    def secc_cert(self) -> Path:
        return self.cert("secc_leaf")

    @property
    def secc_key(self) -> Path:
        return self.key("secc_leaf")

    @property
    def secc_chain(self) -> Path:
        return self.chain("secc_chain")

    @property
    def vehicle_cert(self) -> Path:
        return self.cert("vehicle_leaf")

    @property
    def vehicle_key(self) -> Path:
        return self.key("vehicle_leaf")

    @property
    def vehicle_chain(self) -> Path:
        return self.chain("vehicle_chain")

    @property
    def cps_cert(self) -> Path:
        return self.cert("cps_leaf")

    @property
    def cps_key(self) -> Path:
        return self.key("cps_leaf")

    @property
    def cps_chain(self) -> Path:
        return self.chain("cps_chain")

    @property
    def oem_prov_cert(self) -> Path:
        return self.cert("oem_prov_leaf")

    @property
    def oem_prov_key(self) -> Path:
        return self.key("oem_prov_leaf")

    @property
    def oem_prov_chain(self) -> Path:
        return self.chain("oem_prov_chain")

    @property
    def contract_cert(self) -> Path:
        return self.cert("contract_leaf")

    @property
    def contract_key(self) -> Path:
        return self.key("contract_leaf")

    @property
    def contract_chain(self) -> Path:
        return self.chain("contract_chain")

    @property
    def mo_ocsp_responder_cert(self) -> Path:
        return self.cert("mo_ocsp_responder")

    @property
    def mo_ocsp_responder_key(self) -> Path:
        return self.key("mo_ocsp_responder")

    def all_files(self) -> list[Path]:
        certs = [self.cert(n) for n in ENTITY_NAMES]
        keys = [self.key(n) for n in ENTITY_NAMES]
        return certs + keys + [self.chain(n) for n in CHAINS]

    def secc_credentials(self) -> TlsCredentials:
        """The SECC: presents the SECC chain, verifies vehicles against the OEM root."""
        return TlsCredentials(self.secc_chain, self.secc_key, self.oem_root_cert, self.key_password)

    def evcc_credentials(self) -> TlsCredentials:
        """The EVCC: presents the vehicle chain, verifies SECCs against the V2G root."""
        return TlsCredentials(self.vehicle_chain, self.vehicle_key, self.v2g_root_cert, self.key_password)

    def contract_credentials(self) -> ContractCredentials:
        """The EV's contract of this PKI (CN = the eMAID it was generated with)."""
        return ContractCredentials(self.contract_chain, self.contract_key, self.key_password)


PKI_DIR_ENV = "MCS_V2G_PKI_DIR"


def pki_home() -> Path:
    """Where test PKIs are kept unless a directory is given: `$MCS_V2G_PKI_DIR`, else the user's data directory
    (`$XDG_DATA_HOME/mcs-v2g/pki`, `~/.local/share/mcs-v2g/pki`); never the working directory."""
    if os.environ.get(PKI_DIR_ENV):
        return Path(os.environ[PKI_DIR_ENV]).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME")
    base = Path(data_home) if data_home and Path(data_home).is_absolute() else Path.home() / ".local" / "share"
    return base / "mcs-v2g" / "pki"


def default_pki_dir(profile: str = DEFAULT_PROFILE) -> Path:
    """The test PKI of `profile` under `pki_home()`."""
    return pki_home() / profile


def is_emaid(text: str) -> bool:
    """Whether `text` has the eMAID syntax (`EMAID_PATTERN`; the check digit is not verified)."""
    return EMAID_PATTERN.fullmatch(text) is not None


def common_name(cert: x509.Certificate) -> str:
    """The subject CN of `cert` ("" when it has none)."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def domain_component(cert: x509.Certificate) -> str | None:
    """The DomainComponent (DC) of the subject: the domain of a leaf in the -2 profiles (CPO, CPS, MO)."""
    values = cert.subject.get_attributes_for_oid(NameOID.DOMAIN_COMPONENT)
    return str(values[0].value) if values else None


def ocsp_urls(cert: x509.Certificate) -> list[str]:
    """The OCSP responder URLs of `cert`'s authorityInfoAccess extension, in order (none: [])."""
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    return [str(d.access_location.value) for d in aia if d.access_method == AuthorityInformationAccessOID.OCSP]


def _password_bytes(password: bytes | str | None) -> bytes | None:
    return password.encode() if isinstance(password, str) else password


def _check_profile(profile: str) -> Profile:
    if profile not in PROFILES:
        raise PkiError(f"unknown PKI profile {profile!r} (one of {', '.join(PROFILES)})")
    return profile  # type: ignore[return-value]


def _check_emaid(emaid: str) -> str:
    if not is_emaid(emaid):
        raise PkiError(f"{emaid!r} is not an eMAID (e.g. {DEFAULT_EMAID}: country, provider, 9-character instance)")
    return emaid


def _check_ocsp_url(url: str) -> str:
    # OCSP over HTTP (RFC 6960 appendix A).
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PkiError(f"the OCSP URL {url!r} is not an http:// or https:// URL")
    return url


@dataclass(frozen=True)
class _LeafIds:
    """The IDs generate_pki puts into the leaves' subjects."""

    evse_id: str
    evcc_id: str
    pcid: str
    emaid: str


def _name(common: str, domain: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG), x509.NameAttribute(NameOID.COMMON_NAME, common)]
    if domain:
        attrs.append(x509.NameAttribute(NameOID.DOMAIN_COMPONENT, domain))
    return x509.Name(attrs)


def _subject(entity: _Entity, ids: _LeafIds) -> x509.Name:
    # As in the -2 certificate profiles: the CN carries the ID, DC says the domain (SECC: CPO, CPS: CPS, contract: MO).
    if entity.role == "secc":
        return _name(ids.evse_id, "CPO")
    if entity.role == "cps":
        return _name(entity.common_name, CPS_DOMAIN)
    if entity.role == "contract":
        return _name(ids.emaid, "MO")
    if entity.role == "vehicle":
        return _name(ids.evcc_id)
    if entity.role == "oem_prov":
        return _name(ids.pcid)
    return _name(entity.common_name)


def _key_usage(*usages: str) -> x509.KeyUsage:
    flags = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement"]
    flags += ["key_cert_sign", "crl_sign"]
    return x509.KeyUsage(**{f: f in usages for f in flags}, encipher_only=False, decipher_only=False)


Extensions = list[tuple[x509.ExtensionType, bool]]  # (extension, critical)


def _leaf_extensions(
    role: Role, hostnames: Sequence[str] = (), ocsp_url: str = "", *, agreement_only: bool = False
) -> Extensions:
    """`agreement_only`: an X25519/X448 key, whose keyUsage may only be keyAgreement (RFC 8410 section 5)."""
    usages = ("key_agreement",) if agreement_only else _LEAF_USAGES[role]
    extensions: Extensions = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_key_usage(*usages), True),
    ]
    if role in _LEAF_PURPOSES:
        extensions.append((x509.ExtendedKeyUsage([_LEAF_PURPOSES[role]]), False))
    if role == "secc" and hostnames:
        extensions.append((x509.SubjectAlternativeName([_general_name(h) for h in hostnames]), False))
    if role == "contract":
        access = x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))
        extensions.append((x509.AuthorityInformationAccess([access]), False))
    if role == "ocsp":
        # id-pkix-ocsp-nocheck (RFC 6960 4.2.2.2.1): nobody asks about the responder's own status.
        extensions.append((x509.OCSPNoCheck(), False))
    return extensions


def _ca_extensions(entity: _Entity) -> Extensions:
    return [
        (x509.BasicConstraints(ca=True, path_length=entity.path_length), True),
        (_key_usage("key_cert_sign", "crl_sign"), True),
    ]


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _sign(
    subject: x509.Name,
    public_key: ContractPublicKey,
    issuer_cert: x509.Certificate | None,
    signing_key: PrivateKey,
    extensions: Extensions,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    """A certificate of `public_key` signed with `signing_key`, the key of `issuer_cert` (None: self-signed), with
    SKI and (issued) AKI."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer_cert is not None:
        ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    digest = _digest_for(signing_key)
    return builder.sign(signing_key, digest() if digest else None)


def _digest_for(key: PrivateKey) -> type[hashes.SHA256 | hashes.SHA512] | None:
    if isinstance(key, ed448.Ed448PrivateKey):
        return None
    if key.curve.name not in PROFILES:
        raise PkiError(f"a {key.curve.name} key belongs to no PKI profile")
    return PROFILES[key.curve.name].digest


def _write_atomic(path: Path, data: bytes, *, private: bool = False) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o600 if private else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _key_pem(key: ContractPrivateKey, password: bytes | None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def _pem(certs: Sequence[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def generate_pki(
    directory: Path | str | None = None,
    *,
    profile: Profile = DEFAULT_PROFILE,
    validity_days: int = DEFAULT_VALIDITY_DAYS,
    evse_id: str = DEFAULT_EVSE_ID,
    evcc_id: str = DEFAULT_EVCC_ID,
    password: bytes | str | None = None,
    hostnames: Sequence[str] = DEFAULT_HOSTNAMES,
    emaid: str = DEFAULT_EMAID,
    pcid: str = DEFAULT_PCID,
    ocsp_url: str = DEFAULT_OCSP_URL,
    valid_from: dt.datetime | None = None,
) -> PkiPaths:
    """Write a fresh test PKI as PEM files into `directory` (default `default_pki_dir(profile)`); every certificate
    is valid for `validity_days` from `valid_from` (default: a few minutes ago, for clock differences)."""
    profile = _check_profile(profile)
    if validity_days < 1:
        raise PkiError("validity_days must be at least 1")
    ids = _LeafIds(evse_id, evcc_id, pcid, _check_emaid(emaid))
    _check_ocsp_url(ocsp_url)
    algorithm = PROFILES[profile]
    secret = _password_bytes(password)
    paths = PkiPaths(Path(directory) if directory is not None else default_pki_dir(profile), profile, secret)
    paths.directory.mkdir(parents=True, exist_ok=True)
    not_before = valid_from or dt.datetime.now(dt.UTC) - _BACKDATE
    not_after = not_before + _BACKDATE + dt.timedelta(days=validity_days)
    keys: dict[str, PrivateKey] = {}
    certs: dict[str, x509.Certificate] = {}
    for entity in _ENTITIES:
        key = algorithm.new_key()
        issuer_cert = certs[entity.issuer] if entity.issuer else None
        signing_key = keys[entity.issuer] if entity.issuer else key
        extensions = (
            _ca_extensions(entity) if entity.role == "ca" else _leaf_extensions(entity.role, hostnames, ocsp_url)
        )
        subject = _subject(entity, ids)
        cert = _sign(subject, key.public_key(), issuer_cert, signing_key, extensions, not_before, not_after)
        keys[entity.name], certs[entity.name] = key, cert
        _write_atomic(paths.key(entity.name), _key_pem(key, secret), private=True)
        _write_atomic(paths.cert(entity.name), _pem([cert]))
    for chain_name, members in CHAINS.items():
        _write_atomic(paths.chain(chain_name), _pem([certs[m] for m in members]))
    return paths


def issue_contract_certificate(
    paths: PkiPaths,
    public_key: ContractPublicKey,
    emaid: str,
    *,
    validity_days: int = DEFAULT_VALIDITY_DAYS,
    ocsp_url: str | None = None,
    valid_from: dt.datetime | None = None,
) -> x509.Certificate:
    """A contract leaf for `public_key` (P-521, P-256, Ed448 or X448, whatever the PKI's profile), CN = `emaid`,
    signed by MO sub-CA 2 of the PKI in `paths`, with the extensions of the PKI's own contract leaf (an X448 key gets
    keyUsage keyAgreement only). `ocsp_url` None: the URL of the PKI's contract leaf. It never outlives MO sub-CA 2."""
    if validity_days < 1:
        raise PkiError("validity_days must be at least 1")
    if not isinstance(public_key, ec.EllipticCurvePublicKey | ed448.Ed448PublicKey | x448.X448PublicKey):
        raise PkiError(f"a contract key must be EC, Ed448 or X448, not {type(public_key).__name__}")
    _check_emaid(emaid)
    sub_ca = load_certificates(paths.cert("mo_sub_ca2"))[0]
    sub_ca_key = load_private_key(paths.key("mo_sub_ca2"), paths.key_password)
    if ocsp_url is None:
        known = ocsp_urls(load_certificates(paths.contract_cert)[0]) if paths.contract_cert.is_file() else []
        ocsp_url = known[0] if known else DEFAULT_OCSP_URL
    not_before = valid_from or dt.datetime.now(dt.UTC) - _BACKDATE
    not_after = min(not_before + _BACKDATE + dt.timedelta(days=validity_days), sub_ca.not_valid_after_utc)
    agreement_only = isinstance(public_key, x448.X448PublicKey)
    extensions = _leaf_extensions("contract", ocsp_url=_check_ocsp_url(ocsp_url), agreement_only=agreement_only)
    return _sign(_name(emaid, "MO"), public_key, sub_ca, sub_ca_key, extensions, not_before, not_after)


def load_contract(source: Path | str | ContractCredentials, *, password: bytes | str | None = None) -> LoadedContract:
    """The contract in `source`: a directory with `contract_chain.pem` (leaf first, then MO sub-CAs) and
    `contract_leaf.key` (a PKI directory is one), or the files of `ContractCredentials` (`password` None: theirs).
    The key must belong to the leaf."""
    if isinstance(source, ContractCredentials):
        chain_file, key_file = source.chain, source.key
        secret = password if password is not None else source.key_password
    else:
        chain_file, key_file, secret = Path(source) / CONTRACT_CHAIN_FILE, Path(source) / CONTRACT_KEY_FILE, password
    leaf, *sub_cas = load_certificates(chain_file)
    key = _read_key(key_file, secret)
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey | x448.X448PrivateKey):
        raise PkiFileInvalid(f"{key_file}: not an EC, Ed448 or X448 private key")
    if key.public_key() != leaf.public_key():
        raise PkiFileInvalid(f"{key_file} is not the key of the contract certificate in {chain_file}")
    return LoadedContract(leaf, tuple(sub_cas), key)


def save_contract(
    directory: Path | str,
    certificate: x509.Certificate,
    sub_certificates: Sequence[x509.Certificate],
    private_key: ContractPrivateKey,
    *,
    password: bytes | str | None = None,
) -> ContractCredentials:
    """Write a contract (say, one just installed) as `load_contract` reads it; the key 0600, encrypted when
    `password` is given. In a PKI folder the contract leaf's own file follows, so the folder stays one PKI."""
    if private_key.public_key() != certificate.public_key():
        raise PkiError("the key does not belong to the contract certificate")
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    secret = _password_bytes(password)
    credentials = ContractCredentials(path / CONTRACT_CHAIN_FILE, path / CONTRACT_KEY_FILE, secret)
    _write_atomic(credentials.key, _key_pem(private_key, secret), private=True)
    _write_atomic(credentials.chain, _pem([certificate, *sub_certificates]))
    leaf_file = path / f"{CONTRACT_LEAF}.pem"
    if leaf_file.exists():
        _write_atomic(leaf_file, _pem([certificate]))
    return credentials


def load_certificates(path: Path) -> list[x509.Certificate]:
    """All certificates of a PEM file, in file order."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PkiFileMissing(f"missing certificate file {path}") from None
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise PkiFileInvalid(f"{path}: not a PEM certificate file ({exc})") from None
    if not certs:
        raise PkiFileInvalid(f"{path}: no certificate in the file")
    return certs


def load_private_key(path: Path, password: bytes | str | None = None) -> PrivateKey:
    """The EC or Ed448 private key of a PEM file (PKCS#8, encrypted or not)."""
    key = _read_key(path, password)
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey):
        raise PkiFileInvalid(f"{path}: not an EC or Ed448 private key")
    return key


def _read_key(path: Path, password: bytes | str | None) -> PrivateKeyTypes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PkiFileMissing(f"missing key file {path}") from None
    try:
        return serialization.load_pem_private_key(data, _password_bytes(password))
    except (ValueError, TypeError) as exc:
        raise PkiFileInvalid(f"{path}: cannot load the private key ({exc})") from None


def profile_of(cert: x509.Certificate) -> Profile:
    """The PKI profile a certificate's public key belongs to."""
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in PROFILES:
        return key.curve.name  # type: ignore[return-value]
    if isinstance(key, ed448.Ed448PublicKey):
        return "ed448"
    raise PkiFileInvalid(f"certificate {cert.subject.rfc4514_string()} has no key of a known profile")


def load_pki(directory: Path | str | None = None, *, password: bytes | str | None = None) -> PkiPaths:
    """The paths of an existing test PKI; every file must exist, the profile is read from the SECC leaf."""
    path = Path(directory) if directory is not None else default_pki_dir()
    probe = PkiPaths(path, DEFAULT_PROFILE)
    missing = [p.name for p in probe.all_files() if not p.is_file()]
    if missing:
        raise PkiFileMissing(f"test PKI in {path} is incomplete, missing: {', '.join(missing)}")
    leaf = load_certificates(probe.secc_cert)[0]
    return PkiPaths(path, profile_of(leaf), _password_bytes(password))


@dataclass(frozen=True)
class _Wanted:
    """What ensure_pki asks of an existing PKI; None accepts whatever it has."""

    evse_id: str | None
    evcc_id: str | None
    pcid: str | None
    emaid: str | None
    ocsp_url: str | None


def _is_current(paths: PkiPaths, wanted: _Wanted, min_remaining: dt.timedelta) -> bool:
    try:
        loaded = load_pki(paths.directory)
        certs = {n: load_certificates(paths.cert(n))[0] for n in ENTITY_NAMES}
    except PkiError:
        return False
    if loaded.profile != paths.profile:
        return False
    now = dt.datetime.now(dt.UTC)
    if any(c.not_valid_before_utc > now or c.not_valid_after_utc < now + min_remaining for c in certs.values()):
        return False
    encrypted = b"ENCRYPTED" in paths.secc_key.read_bytes()[:64]
    if encrypted != (paths.key_password is not None):
        return False
    if domain_component(certs["cps_leaf"]) != CPS_DOMAIN:  # made before CPS leaves said their domain
        return False
    checks = (
        (wanted.evse_id, common_name(certs["secc_leaf"])),
        (wanted.evcc_id, common_name(certs["vehicle_leaf"])),
        (wanted.pcid, common_name(certs["oem_prov_leaf"])),
        (wanted.emaid, common_name(certs["contract_leaf"])),
        (wanted.ocsp_url, next(iter(ocsp_urls(certs["contract_leaf"])), None)),
    )
    return all(want is None or want == have for want, have in checks)


def ensure_pki(
    directory: Path | str | None = None,
    profile: Profile = DEFAULT_PROFILE,
    *,
    password: bytes | str | None = None,
    evse_id: str | None = None,
    evcc_id: str | None = None,
    pcid: str | None = None,
    emaid: str | None = None,
    ocsp_url: str | None = None,
    validity_days: int = DEFAULT_VALIDITY_DAYS,
    min_remaining: dt.timedelta = MIN_REMAINING,
    generated: Callable[[PkiPaths], None] | None = None,
) -> PkiPaths:
    """The test PKI in `directory` (default `default_pki_dir(profile)`), generated only when missing, incomplete
    (as a directory of an older version without the Plug & Charge chains), of another profile, expiring or with
    other IDs; `generated` is told when it was (a command says where, private keys included).

    `evse_id`/`evcc_id`/`pcid`/`emaid`/`ocsp_url` None accept whatever the existing certificates carry. Not safe against
    two processes generating the same directory at the same moment (each file is replaced atomically, the set is
    not).
    """
    profile = _check_profile(profile)
    path = Path(directory) if directory is not None else default_pki_dir(profile)
    paths = PkiPaths(path, profile, _password_bytes(password))
    if _is_current(paths, _Wanted(evse_id, evcc_id, pcid, emaid, ocsp_url), min_remaining):
        return paths
    made = generate_pki(
        path,
        profile=profile,
        validity_days=validity_days,
        evse_id=evse_id if evse_id is not None else DEFAULT_EVSE_ID,
        evcc_id=evcc_id if evcc_id is not None else DEFAULT_EVCC_ID,
        pcid=pcid if pcid is not None else DEFAULT_PCID,
        emaid=emaid if emaid is not None else DEFAULT_EMAID,
        ocsp_url=ocsp_url if ocsp_url is not None else DEFAULT_OCSP_URL,
        password=password,
    )
    if generated is not None:
        generated(made)
    return made
