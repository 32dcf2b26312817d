"""A minimal ISO 15118-20 test PKI (PROTOCOL.md section 8), generated with `cryptography`.

Profiles: secp521r1 (ECDSA-SHA512) and ed448 (Ed448 signatures), the -20 ones; secp256r1 (ECDSA-SHA256), the -2
one Josev still uses for -20. Every key of a PKI is of its profile.

Two chains, each root -> sub-CA 1 (pathlen 1) -> sub-CA 2 (pathlen 0) -> leaf:

- V2G root CA -> CPO sub-CA 1 -> CPO sub-CA 2 -> SECC leaf (TLS server, CN = EVSE ID);
- OEM root CA -> vehicle sub-CA 1 -> vehicle sub-CA 2 -> vehicle leaf (TLS client, CN = EVCC ID).

For tests and emulators only: the CA keys lie beside the certificates. The CPS, MO and OEM provisioning
chains of Plug & Charge come later.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Profile = Literal["secp521r1", "secp256r1", "ed448"]
PrivateKey = ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey


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


@dataclass(frozen=True)
class _Entity:
    name: str
    common_name: str
    issuer: str | None  # None: self-signed root
    path_length: int | None = None  # CA certificates only
    role: Literal["ca", "secc", "vehicle"] = "ca"


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
)
ENTITY_NAMES = tuple(e.name for e in _ENTITIES)
# Chain files as TLS sends them: leaf first, then the sub-CAs up to (not including) the root.
CHAINS = {
    "secc_chain": ("secc_leaf", "cpo_sub_ca2", "cpo_sub_ca1"),
    "vehicle_chain": ("vehicle_leaf", "vehicle_sub_ca2", "vehicle_sub_ca1"),
}


@dataclass(frozen=True)
class TlsCredentials:
    """What one TLS endpoint needs: its chain (leaf first), its private key, the roots it trusts."""

    chain: Path
    key: Path
    trust_roots: Path
    key_password: bytes | None = field(default=None, repr=False)


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


def _password_bytes(password: bytes | str | None) -> bytes | None:
    return password.encode() if isinstance(password, str) else password


def _check_profile(profile: str) -> Profile:
    if profile not in PROFILES:
        raise PkiError(f"unknown PKI profile {profile!r} (one of {', '.join(PROFILES)})")
    return profile  # type: ignore[return-value]


def _subject(entity: _Entity, evse_id: str, evcc_id: str) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG)]
    if entity.role == "secc":
        # As in the -2 SECC certificate profile: CN carries the EVSE ID, DC says the domain.
        attrs += [x509.NameAttribute(NameOID.COMMON_NAME, evse_id), x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "CPO")]
    elif entity.role == "vehicle":
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, evcc_id))
    else:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, entity.common_name))
    return x509.Name(attrs)


def _leaf_extensions(
    builder: x509.CertificateBuilder, entity: _Entity, hostnames: Sequence[str]
) -> x509.CertificateBuilder:
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=True,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    usage = ExtendedKeyUsageOID.SERVER_AUTH if entity.role == "secc" else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if entity.role == "secc" and hostnames:
        builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hostnames]), False)
    return builder


def _ca_extensions(builder: x509.CertificateBuilder, entity: _Entity) -> x509.CertificateBuilder:
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=entity.path_length), critical=True)
    return builder.add_extension(
        x509.KeyUsage(
            digital_signature=False,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


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


def generate_pki(
    directory: Path | str | None = None,
    *,
    profile: Profile = DEFAULT_PROFILE,
    validity_days: int = DEFAULT_VALIDITY_DAYS,
    evse_id: str = DEFAULT_EVSE_ID,
    evcc_id: str = DEFAULT_EVCC_ID,
    password: bytes | str | None = None,
    hostnames: Sequence[str] = DEFAULT_HOSTNAMES,
) -> PkiPaths:
    """Write a fresh test PKI as PEM files into `directory` (default `default_pki_dir(profile)`)."""
    profile = _check_profile(profile)
    if validity_days < 1:
        raise PkiError("validity_days must be at least 1")
    algorithm = PROFILES[profile]
    secret = _password_bytes(password)
    paths = PkiPaths(Path(directory) if directory is not None else default_pki_dir(profile), profile, secret)
    paths.directory.mkdir(parents=True, exist_ok=True)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(secret) if secret else serialization.NoEncryption()
    )
    now = dt.datetime.now(dt.UTC)
    keys: dict[str, PrivateKey] = {}
    certs: dict[str, x509.Certificate] = {}
    for entity in _ENTITIES:
        key = algorithm.new_key()
        subject = _subject(entity, evse_id, evcc_id)
        issuer_cert = certs[entity.issuer] if entity.issuer else None
        signing_key = keys[entity.issuer] if entity.issuer else key
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_cert.subject if issuer_cert else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + dt.timedelta(days=validity_days))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )
        if issuer_cert is not None:
            ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
            builder = builder.add_extension(aki, critical=False)
        builder = (
            _ca_extensions(builder, entity) if entity.role == "ca" else _leaf_extensions(builder, entity, hostnames)
        )
        keys[entity.name] = key
        certs[entity.name] = builder.sign(signing_key, algorithm.digest() if algorithm.digest else None)
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        _write_atomic(paths.key(entity.name), key_pem, private=True)
        _write_atomic(paths.cert(entity.name), certs[entity.name].public_bytes(serialization.Encoding.PEM))
    for chain_name, members in CHAINS.items():
        pem = b"".join(certs[m].public_bytes(serialization.Encoding.PEM) for m in members)
        _write_atomic(paths.chain(chain_name), pem)
    return paths


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
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PkiFileMissing(f"missing key file {path}") from None
    try:
        key = serialization.load_pem_private_key(data, _password_bytes(password))
    except (ValueError, TypeError) as exc:
        raise PkiFileInvalid(f"{path}: cannot load the private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey):
        raise PkiFileInvalid(f"{path}: not an EC or Ed448 private key")
    return key


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


def _is_current(paths: PkiPaths, evse_id: str | None, evcc_id: str | None, min_remaining: dt.timedelta) -> bool:
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

    def common_name(cert: x509.Certificate) -> str:
        return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)

    if evse_id is not None and common_name(certs["secc_leaf"]) != evse_id:
        return False
    return evcc_id is None or common_name(certs["vehicle_leaf"]) == evcc_id


def ensure_pki(
    directory: Path | str | None = None,
    profile: Profile = DEFAULT_PROFILE,
    *,
    password: bytes | str | None = None,
    evse_id: str | None = None,
    evcc_id: str | None = None,
    validity_days: int = DEFAULT_VALIDITY_DAYS,
    min_remaining: dt.timedelta = MIN_REMAINING,
    generated: Callable[[PkiPaths], None] | None = None,
) -> PkiPaths:
    """The test PKI in `directory` (default `default_pki_dir(profile)`), generated only when missing, of another
    profile, expiring or with other IDs; `generated` is told when it was (a command says where, private keys
    included).

    `evse_id`/`evcc_id` None accept whatever IDs the existing certificates carry. Not safe against two processes
    generating the same directory at the same moment (each file is replaced atomically, the set is not).
    """
    profile = _check_profile(profile)
    path = Path(directory) if directory is not None else default_pki_dir(profile)
    paths = PkiPaths(path, profile, _password_bytes(password))
    if _is_current(paths, evse_id, evcc_id, min_remaining):
        return paths
    made = generate_pki(
        path,
        profile=profile,
        validity_days=validity_days,
        evse_id=evse_id if evse_id is not None else DEFAULT_EVSE_ID,
        evcc_id=evcc_id if evcc_id is not None else DEFAULT_EVCC_ID,
        password=password,
    )
    if generated is not None:
        generated(made)
    return made
