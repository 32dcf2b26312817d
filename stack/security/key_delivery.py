"""Contract key delivery in CertificateInstallationRes `SignedInstallationData` (PROTOCOL.md sections 4.5, 8), sans-I/O.

The CPS side makes an ephemeral key pair on the EV's curve, runs ECDH with the EV's static key, derives an AES-256 key
and AES-GCM-encrypts the contract private key; the EV side repeats the ECDH with its static private key and decrypts.

Facts (source tags as in PROTOCOL.md; **ISO-TEXT** = a Markdown transcription of ISO 15118-20 §7.9.2.5 found in the
public code index, repository not named there, so every such fact is unconfirmed against the published standard):

* Key agreement: one-pass ephemeral-static ECDH (NIST SP 800-56A C(1, 1, ECC CDH)); the CPS is party U, the EV party V.
  KDF: the concatenation KDF with SHA-512, AlgorithmID 0x01, PartyUInfo "U" 0x55, PartyVInfo "V" 0x56, a 256-bit key
  [V2G20-2535] (ISO-TEXT). -2 used the same OtherInfo with SHA-256 and a 128-bit key for AES-128-CBC [V2G2-818]
  (JOSEV `shared/security.py encrypt_priv_key`). WWCP `ContractProvisioning.cs` uses SHA-512 with an *empty*
  OtherInfo and calls its choice "self-consistent only". Default: `KdfProfile.ISO20`; `KdfProfile.WWCP` to interoperate
  with WWCP.
* Cipher: AES-GCM-256, random 96-bit IV, 128-bit tag; the field is IV 12 ‖ ciphertext ‖ tag 16, big-endian
  [V2G20-2494], [V2G20-2497..2502] (ISO-TEXT; the sizes also follow from the **XSD** lengths 94 and 84). SECP521: the
  521-bit scalar padded to 66 bytes, the decrypted top 7 bits must be zero [V2G20-2678] and 0 < d < n [V2G20-2507].
  X448: the 56-byte key as is [V2G20-2509].
* Associated data: PCID (18 ASCII capitals/digits) ‖ the contract certificate's SKI as an upper-case hex string
  [V2G20-2492] (ISO-TEXT; it says "16 bytes" for the hex string, i.e. an 8-byte SKI; we encode whatever SKI the
  certificate has). WWCP uses none. Default: `AssociatedData.PCID_SKI`; `AssociatedData.NONE` for WWCP.
* DHPublicKey: the uncompressed point, 0x04 ‖ X ‖ Y, 133 bytes for SECP521 [V2G20-2489] (ISO-TEXT, WWCP). For X448 the
  ISO-TEXT says 57 bytes (NOTE 6/7 of [V2G20-2489]: first byte 0x04) and forbids padding to 133 [V2G20-2495]; RFC 7748
  keys are 56 bytes. The sender writes `X448PointFormat.PREFIXED` (0x04 ‖ u, 57 bytes) by default; the receiver
  accepts both 57 (with 0x04) and 56. The **XSD** fixes `dhPublicKeyType` at 133 bytes, so an X448 delivery does not
  pass a codec that enforces that facet.
* X448 EV key: the Ed448 OEM provisioning certificate's own key signs; the EV's X448 ECDH key is the certificate's
  "Alternate Subject Public Key" [V2G20-2534] (ISO-TEXT). `cryptography` has no Ed448 -> X448 conversion, and none is
  needed: the caller passes that separate `X448PublicKey` (CPS) or `X448PrivateKey` (EV).
* X448 contract key: 56 bytes [V2G20-2502], while an Ed448 (RFC 8032) private key is 57 bytes, so only an X448 key
  fits the field; an Ed448 contract key is refused with `WrongCurveError` (open point, PROTOCOL.md section 12).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, x448
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from stack.messages.iso20_common import ContractCertificateChain, EcdhCurve, SignedInstallationData

ContractKey = ec.EllipticCurvePrivateKey | x448.X448PrivateKey
ContractPublicKey = ec.EllipticCurvePublicKey | x448.X448PublicKey
EvPublicKey = ec.EllipticCurvePublicKey | x448.X448PublicKey
EvPrivateKey = ec.EllipticCurvePrivateKey | x448.X448PrivateKey

IV_SIZE = 12
TAG_SIZE = 16
AES_KEY_SIZE = 32  # AES-256 [V2G20-2535]
P521_SCALAR_SIZE = 66  # 521 bits padded to whole bytes [V2G20-2497]
P521_POINT_SIZE = 1 + 2 * P521_SCALAR_SIZE  # 0x04 ‖ X ‖ Y = 133 (XSD dhPublicKeyType)
X448_KEY_SIZE = 56
ENCRYPTED_SIZE = {
    EcdhCurve.SECP521: IV_SIZE + P521_SCALAR_SIZE + TAG_SIZE,  # 94 (XSD secp521_EncryptedPrivateKeyType)
    EcdhCurve.X448: IV_SIZE + X448_KEY_SIZE + TAG_SIZE,  # 84 (XSD x448_EncryptedPrivateKeyType)
}
PCID_PATTERN = re.compile(r"[A-Z0-9]{18}")  # [V2G20-2492]
_UNCOMPRESSED = 0x04
_P521_ORDER = ec.SECP521R1().group_order
_ISO20_OTHER_INFO = b"\x01UV"  # AlgorithmID 0x01 ‖ PartyUInfo "U" ‖ PartyVInfo "V" [V2G20-2535], as -2 [V2G2-818]


class KdfProfile(StrEnum):
    """OtherInfo of the SHA-512 concatenation KDF."""

    ISO20 = "iso20"  # 0x01 ‖ "U" ‖ "V" [V2G20-2535]
    WWCP = "wwcp"  # empty OtherInfo (WWCP ContractProvisioning.cs)


class AssociatedData(StrEnum):
    """What AES-GCM authenticates beside the key."""

    PCID_SKI = "pcid+ski"  # [V2G20-2492]
    NONE = "none"  # WWCP ContractProvisioning.cs


class X448PointFormat(StrEnum):
    """How the sender writes an X448 DHPublicKey."""

    PREFIXED = "prefixed"  # 0x04 ‖ u, 57 bytes ([V2G20-2489] NOTE 6/7)
    RAW = "raw"  # u, 56 bytes (RFC 7748)


@dataclass(frozen=True, slots=True)
class KeyDeliverySettings:
    kdf: KdfProfile = KdfProfile.ISO20
    associated_data: AssociatedData = AssociatedData.PCID_SKI
    x448_point_format: X448PointFormat = X448PointFormat.PREFIXED


DEFAULT_SETTINGS = KeyDeliverySettings()


class KeyDeliveryError(ValueError):
    """The contract key cannot be delivered or received; the receiver rejects the response [V2G20-2504]."""


class WrongSizeError(KeyDeliveryError):
    """A field (DHPublicKey, the encrypted key, the IV) has the wrong length."""


class WrongCurveError(KeyDeliveryError):
    """ECDHCurve, the EV key and the contract key do not agree, or a key is of an unsupported kind."""


class UnsupportedDeliveryError(KeyDeliveryError):
    """TPM_EncryptedPrivateKey (TPM 2.0 import) is not handled here."""


class InvalidPublicKeyError(KeyDeliveryError):
    """DHPublicKey is not a usable point of the curve (not on the curve, or a low-order X448 point)."""


class AuthenticationError(KeyDeliveryError):
    """The GCM tag did not verify: tampered data, another EV key, other associated data or another KDF."""


class InvalidPrivateKeyError(KeyDeliveryError):
    """The decrypted value is no private key of the curve ([V2G20-2678], [V2G20-2507])."""


class KeyMismatchError(KeyDeliveryError):
    """The decrypted key does not belong to the contract certificate's public key ([V2G20-2507], [V2G20-2510])."""


class AssociatedDataError(KeyDeliveryError):
    """The PCID or the contract certificate's SKI is missing or malformed."""


@dataclass(frozen=True, slots=True)
class DeliveredKey:
    """The three key fields of SignedInstallationData; `encrypted` is IV ‖ ciphertext ‖ tag."""

    curve: EcdhCurve
    dh_public_key: bytes
    encrypted: bytes

    def __post_init__(self) -> None:
        try:
            curve = EcdhCurve(self.curve)
        except ValueError:
            raise WrongCurveError(f"unknown ECDHCurve {self.curve!r}") from None
        if not isinstance(self.dh_public_key, bytes | bytearray) or not isinstance(self.encrypted, bytes | bytearray):
            raise WrongSizeError("DHPublicKey and the encrypted key must be bytes")
        object.__setattr__(self, "curve", curve)
        object.__setattr__(self, "dh_public_key", bytes(self.dh_public_key))
        object.__setattr__(self, "encrypted", bytes(self.encrypted))

    @classmethod
    def from_installation_data(cls, data: SignedInstallationData) -> DeliveredKey:
        """Pick the encrypted-key field that ECDHCurve names (the XSD choice holds exactly one)."""
        if data.tpm_encrypted_private_key is not None:
            raise UnsupportedDeliveryError("TPM_EncryptedPrivateKey is not supported")
        field = {
            EcdhCurve.SECP521: data.secp521_encrypted_private_key,
            EcdhCurve.X448: data.x448_encrypted_private_key,
        }.get(data.ecdh_curve)
        if field is None:
            raise WrongCurveError(f"no encrypted key field for ECDHCurve {data.ecdh_curve!r}")
        return cls(data.ecdh_curve, data.dh_public_key, field)

    def to_installation_data(
        self, id: str, contract_certificate_chain: ContractCertificateChain
    ) -> SignedInstallationData:
        """SignedInstallationData carrying this key (the CPS signs it afterwards)."""
        secp521 = self.encrypted if self.curve is EcdhCurve.SECP521 else None
        x448_key = self.encrypted if self.curve is EcdhCurve.X448 else None
        return SignedInstallationData(
            id=id,
            contract_certificate_chain=contract_certificate_chain,
            ecdh_curve=self.curve,
            dh_public_key=self.dh_public_key,
            secp521_encrypted_private_key=secp521,
            x448_encrypted_private_key=x448_key,
        )


def installation_aad(pcid: str, contract_ski: bytes) -> bytes:
    """AES-GCM associated data: PCID ‖ upper-case hex of the contract certificate's SKI, ASCII [V2G20-2492]."""
    if not isinstance(pcid, str) or PCID_PATTERN.fullmatch(pcid) is None:
        raise AssociatedDataError(f"PCID must be 18 capital letters or digits, got {pcid!r}")
    if not isinstance(contract_ski, bytes | bytearray) or not contract_ski:
        raise AssociatedDataError("the contract certificate's SKI is missing")
    return pcid.encode("ascii") + contract_ski.hex().upper().encode("ascii")


def encrypt_contract_key(
    contract_key: ContractKey,
    ev_public_key: EvPublicKey,
    *,
    pcid: str | None = None,
    contract_ski: bytes | None = None,
    settings: KeyDeliverySettings = DEFAULT_SETTINGS,
    ephemeral_key: EvPrivateKey | None = None,
    iv: bytes | None = None,
) -> DeliveredKey:
    """CPS side: encrypt `contract_key` for the holder of `ev_public_key` (the OEM provisioning key: P-521, or the
    certificate's alternate X448 key). `ephemeral_key` and `iv` are for reproducible tests only; never reuse them."""
    curve = _public_curve(ev_public_key, "EV public key")
    if _private_curve(contract_key, "contract key") is not curve:
        raise WrongCurveError(f"the contract key is not on the EV key's curve {curve}")
    if ephemeral_key is None:
        ephemeral_key = (
            ec.generate_private_key(ec.SECP521R1()) if curve is EcdhCurve.SECP521 else x448.X448PrivateKey.generate()
        )
    elif _private_curve(ephemeral_key, "ephemeral key") is not curve:
        raise WrongCurveError(f"the ephemeral key is not on the EV key's curve {curve}")
    iv = os.urandom(IV_SIZE) if iv is None else iv
    if len(iv) != IV_SIZE:
        raise WrongSizeError(f"IV of {len(iv)} bytes, {IV_SIZE} needed")
    aad = _associated_data(settings, pcid, contract_ski)
    shared = _exchange(ephemeral_key, ev_public_key)
    sealed = AESGCM(_derive_key(shared, settings)).encrypt(iv, _private_bytes(contract_key), aad)
    return DeliveredKey(curve, _encode_point(ephemeral_key, settings), iv + sealed)


def decrypt_contract_key(
    delivered: DeliveredKey,
    ev_private_key: EvPrivateKey,
    *,
    pcid: str | None = None,
    contract_ski: bytes | None = None,
    expected_public_key: object = None,
    settings: KeyDeliverySettings = DEFAULT_SETTINGS,
) -> ContractKey:
    """EV side: the contract private key, checked against `expected_public_key` (the contract certificate's key)
    when given. Every failure is a `KeyDeliveryError`."""
    if not isinstance(delivered, DeliveredKey):
        raise KeyDeliveryError(f"expected a DeliveredKey, got {type(delivered).__name__}")
    curve = delivered.curve
    if _private_curve(ev_private_key, "EV private key") is not curve:
        raise WrongCurveError(f"ECDHCurve {curve} does not match the EV key")
    if len(delivered.encrypted) != ENCRYPTED_SIZE[curve]:
        raise WrongSizeError(
            f"{curve} encrypted key of {len(delivered.encrypted)} bytes, {ENCRYPTED_SIZE[curve]} needed"
        )
    peer = _decode_point(curve, delivered.dh_public_key)
    aad = _associated_data(settings, pcid, contract_ski)
    shared = _exchange(ev_private_key, peer)
    iv, sealed = delivered.encrypted[:IV_SIZE], delivered.encrypted[IV_SIZE:]
    try:
        plain = AESGCM(_derive_key(shared, settings)).decrypt(iv, sealed, aad)
    except InvalidTag:
        raise AuthenticationError(f"{curve} encrypted key failed authentication") from None
    key = _load_private(curve, plain)
    if expected_public_key is not None:
        _check_match(key, expected_public_key)
    return key


def _public_curve(key: object, what: str) -> EcdhCurve:
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP521R1):
        return EcdhCurve.SECP521
    if isinstance(key, x448.X448PublicKey):
        return EcdhCurve.X448
    raise WrongCurveError(f"{what}: {type(key).__name__} is neither a P-521 nor an X448 key")


def _private_curve(key: object, what: str) -> EcdhCurve:
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP521R1):
        return EcdhCurve.SECP521
    if isinstance(key, x448.X448PrivateKey):
        return EcdhCurve.X448
    raise WrongCurveError(f"{what}: {type(key).__name__} is neither a P-521 nor an X448 key")


def _associated_data(settings: KeyDeliverySettings, pcid: str | None, contract_ski: bytes | None) -> bytes | None:
    if settings.associated_data is AssociatedData.NONE:
        return None
    if pcid is None or contract_ski is None:
        raise AssociatedDataError("the PCID and the contract certificate's SKI are needed for the associated data")
    return installation_aad(pcid, contract_ski)


def _derive_key(shared: bytes, settings: KeyDeliverySettings) -> bytes:
    other_info = _ISO20_OTHER_INFO if settings.kdf is KdfProfile.ISO20 else None
    return ConcatKDFHash(algorithm=hashes.SHA512(), length=AES_KEY_SIZE, otherinfo=other_info).derive(shared)


def _exchange(private: EvPrivateKey, public: EvPublicKey) -> bytes:
    try:
        if isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(public, ec.EllipticCurvePublicKey):
            return private.exchange(ec.ECDH(), public)
        if isinstance(private, x448.X448PrivateKey) and isinstance(public, x448.X448PublicKey):
            return private.exchange(public)  # the RFC 7748 shared secret; all-zero (low-order point) raises
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidPublicKeyError(f"ECDH failed: {exc}") from None
    raise WrongCurveError("the two ECDH keys are of different kinds")


def _encode_point(key: EvPrivateKey, settings: KeyDeliverySettings) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    raw = key.public_key().public_bytes_raw()
    return bytes([_UNCOMPRESSED]) + raw if settings.x448_point_format is X448PointFormat.PREFIXED else raw


def _decode_point(curve: EcdhCurve, data: bytes) -> EvPublicKey:
    if curve is EcdhCurve.SECP521:
        if len(data) != P521_POINT_SIZE:
            raise WrongSizeError(f"SECP521 DHPublicKey of {len(data)} bytes, {P521_POINT_SIZE} needed")
        if data[0] != _UNCOMPRESSED:
            raise InvalidPublicKeyError("SECP521 DHPublicKey is not an uncompressed point (0x04)")
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP521R1(), data)
        except ValueError:
            raise InvalidPublicKeyError("SECP521 DHPublicKey is not a point of the curve") from None
    if len(data) == X448_KEY_SIZE + 1 and data[0] == _UNCOMPRESSED:
        data = data[1:]
    elif len(data) != X448_KEY_SIZE:
        raise WrongSizeError(f"X448 DHPublicKey of {len(data)} bytes, {X448_KEY_SIZE + 1} (0x04 ‖ u) or 56 needed")
    try:
        return x448.X448PublicKey.from_public_bytes(data)
    except ValueError:
        raise InvalidPublicKeyError("X448 DHPublicKey is not a valid u-coordinate") from None


def _private_bytes(key: ContractKey) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.private_numbers().private_value.to_bytes(P521_SCALAR_SIZE, "big")
    return key.private_bytes_raw()


def _load_private(curve: EcdhCurve, plain: bytes) -> ContractKey:
    if curve is EcdhCurve.X448:
        try:
            return x448.X448PrivateKey.from_private_bytes(plain)
        except ValueError:
            raise InvalidPrivateKeyError("the decrypted X448 key is not 56 bytes") from None
    scalar = int.from_bytes(plain, "big")
    if scalar >> 521:
        raise InvalidPrivateKeyError("the decrypted SECP521 key has a non-zero bit among its top 7 [V2G20-2678]")
    if not 0 < scalar < _P521_ORDER:
        raise InvalidPrivateKeyError("the decrypted SECP521 key is not below the group order [V2G20-2507]")
    return ec.derive_private_key(scalar, ec.SECP521R1())


def _check_match(key: ContractKey, expected: object) -> None:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(expected, ec.EllipticCurvePublicKey) or not isinstance(expected.curve, ec.SECP521R1):
            raise WrongCurveError(f"the contract certificate's key ({type(expected).__name__}) is not a P-521 key")
        actual = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        wanted = expected.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    else:
        if not isinstance(expected, x448.X448PublicKey):
            raise WrongCurveError(f"the contract certificate's key ({type(expected).__name__}) is not an X448 key")
        actual, wanted = key.public_key().public_bytes_raw(), expected.public_bytes_raw()
    if actual != wanted:
        raise KeyMismatchError("the decrypted key does not match the contract certificate's public key")
