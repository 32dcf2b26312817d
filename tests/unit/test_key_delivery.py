"""Contract key delivery (stack/security/key_delivery.py): sizes, round trips, tampering, the KDF pinned."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, x448
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from stack.messages.iso20_common import ContractCertificateChain, EcdhCurve, SignedInstallationData, SubCertificates
from stack.security.key_delivery import (
    DEFAULT_SETTINGS,
    AssociatedData,
    AssociatedDataError,
    AuthenticationError,
    ContractKey,
    DeliveredKey,
    EvPrivateKey,
    InvalidPrivateKeyError,
    InvalidPublicKeyError,
    KdfProfile,
    KeyDeliveryError,
    KeyDeliverySettings,
    KeyMismatchError,
    UnsupportedDeliveryError,
    WrongCurveError,
    WrongSizeError,
    X448PointFormat,
    decrypt_contract_key,
    encrypt_contract_key,
    installation_aad,
)

PCID = "MCSV2GPROVCERT0001"
SKI = bytes.fromhex("0123456789abcdef")
IV = bytes(range(12))
P521 = ec.SECP521R1()


def p521(scalar: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(scalar, P521)


def x448_key(first: int) -> x448.X448PrivateKey:
    return x448.X448PrivateKey.from_private_bytes(bytes((first + i) % 256 for i in range(56)))


EV_P521 = p521(0x1F2E3D4C5B6A79881726354453627180AABBCCDDEEFF)
CONTRACT_P521 = p521(2**520 + 0xC0FFEE)  # a full-width scalar
EPHEMERAL_P521 = p521(0xE9E9E9E9E9E9E9E9E9E9)
EV_X448, CONTRACT_X448, EPHEMERAL_X448 = x448_key(1), x448_key(100), x448_key(200)

KEYS: dict[EcdhCurve, tuple[EvPrivateKey, ContractKey, EvPrivateKey]] = {
    EcdhCurve.SECP521: (EV_P521, CONTRACT_P521, EPHEMERAL_P521),
    EcdhCurve.X448: (EV_X448, CONTRACT_X448, EPHEMERAL_X448),
}

# Computed once with the module as written (ConcatKDF SHA-512, OtherInfo 01 55 56, AAD PCID ‖ SKI hex); a change of
# KDF, associated data or layout changes these bytes.
KAT_ENCRYPTED = {
    EcdhCurve.SECP521: (
        "000102030405060708090a0b48a83810d9895cee8438cabc622642b7560f5250e49c5ceef5a8fc02bc14487e0052924bdc3f698b40"
        "9cab53fc15809ae98aa0e2defbc28e825c934104ca7b22adae5401252eedde6d96fdf52f7812b39841"
    ),
    EcdhCurve.X448: (
        "000102030405060708090a0b36d4128fee26b0316c37d83512b10faea0ce379b4d3d99093497815dee342926114c6f477df73d3b33"
        "78ddf96aa69a9553ea00e861945039dd4c747239bc6ef573528648b396ad82"
    ),
}


def deliver(curve: EcdhCurve, settings: KeyDeliverySettings = DEFAULT_SETTINGS, pinned: bool = False) -> DeliveredKey:
    """`pinned`: the fixed ephemeral key and IV of the known-answer tests."""
    ev, contract, ephemeral = KEYS[curve]
    return encrypt_contract_key(
        contract,
        ev.public_key(),
        pcid=PCID,
        contract_ski=SKI,
        settings=settings,
        ephemeral_key=ephemeral if pinned else None,
        iv=IV if pinned else None,
    )


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def public_bytes(key: ec.EllipticCurvePrivateKey | x448.X448PrivateKey) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return key.public_key().public_bytes_raw()


def reference_seal(curve: EcdhCurve, plain: bytes) -> DeliveredKey:
    """The construction rebuilt from NIST SP 800-56A by hand: key = SHA-512(00000001 ‖ Z ‖ 01 55 56)[:32]."""
    ev, _, ephemeral = KEYS[curve]
    if isinstance(ephemeral, ec.EllipticCurvePrivateKey) and isinstance(ev, ec.EllipticCurvePrivateKey):
        shared = ephemeral.exchange(ec.ECDH(), ev.public_key())
    else:
        assert isinstance(ephemeral, x448.X448PrivateKey) and isinstance(ev, x448.X448PrivateKey)
        shared = ephemeral.exchange(ev.public_key())
    key = hashlib.sha512(b"\x00\x00\x00\x01" + shared + b"\x01UV").digest()[:32]
    aad = PCID.encode() + b"0123456789ABCDEF"
    point = public_bytes(ephemeral) if curve is EcdhCurve.SECP521 else b"\x04" + public_bytes(ephemeral)
    return DeliveredKey(curve, point, IV + AESGCM(key).encrypt(IV, plain, aad))


@pytest.mark.parametrize(
    ("curve", "dh_size", "encrypted_size"), [(EcdhCurve.SECP521, 133, 94), (EcdhCurve.X448, 57, 84)]
)
def test_round_trip_and_sizes(curve: EcdhCurve, dh_size: int, encrypted_size: int) -> None:
    ev, contract, _ = KEYS[curve]
    delivered = deliver(curve)
    assert delivered.curve is curve
    assert (len(delivered.dh_public_key), len(delivered.encrypted)) == (dh_size, encrypted_size)
    assert delivered.dh_public_key[0] == 0x04
    key = decrypt_contract_key(delivered, ev, pcid=PCID, contract_ski=SKI, expected_public_key=contract.public_key())
    assert public_bytes(key) == public_bytes(contract)


def test_round_trip_with_fresh_keys_is_random() -> None:
    ev, contract = ec.generate_private_key(P521), ec.generate_private_key(P521)
    first = encrypt_contract_key(contract, ev.public_key(), pcid=PCID, contract_ski=SKI)
    second = encrypt_contract_key(contract, ev.public_key(), pcid=PCID, contract_ski=SKI)
    assert first.dh_public_key != second.dh_public_key
    assert first.encrypted[:12] != second.encrypted[:12]
    key = decrypt_contract_key(second, ev, pcid=PCID, contract_ski=SKI)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.private_numbers().private_value == contract.private_numbers().private_value


def test_x448_raw_point_format_is_56_bytes_and_accepted() -> None:
    raw = deliver(EcdhCurve.X448, settings=KeyDeliverySettings(x448_point_format=X448PointFormat.RAW))
    assert len(raw.dh_public_key) == 56
    assert public_bytes(decrypt_contract_key(raw, EV_X448, pcid=PCID, contract_ski=SKI)) == public_bytes(CONTRACT_X448)


@pytest.mark.parametrize("curve", list(EcdhCurve))
def test_matches_the_hand_built_construction(curve: EcdhCurve) -> None:
    _, contract, _ = KEYS[curve]
    plain = (
        contract.private_numbers().private_value.to_bytes(66, "big")
        if isinstance(contract, ec.EllipticCurvePrivateKey)
        else contract.private_bytes_raw()
    )
    assert deliver(curve, pinned=True) == reference_seal(curve, plain)


@pytest.mark.parametrize("curve", list(EcdhCurve))
def test_known_answer(curve: EcdhCurve) -> None:
    _, _, ephemeral = KEYS[curve]
    delivered = deliver(curve, pinned=True)
    assert delivered.dh_public_key.endswith(public_bytes(ephemeral)[-56:])
    assert delivered.encrypted.hex() == KAT_ENCRYPTED[curve]


@pytest.mark.parametrize("curve", list(EcdhCurve))
@pytest.mark.parametrize("where", ["iv", "ciphertext", "tag"])
def test_tampered_encrypted_key_fails_authentication(curve: EcdhCurve, where: str) -> None:
    delivered = deliver(curve)
    index = {"iv": 3, "ciphertext": 12 + 20, "tag": len(delivered.encrypted) - 1}[where]
    tampered = DeliveredKey(curve, delivered.dh_public_key, flip(delivered.encrypted, index))
    with pytest.raises(AuthenticationError):
        decrypt_contract_key(tampered, KEYS[curve][0], pcid=PCID, contract_ski=SKI)


def test_tampered_p521_point_is_off_the_curve() -> None:
    delivered = deliver(EcdhCurve.SECP521)
    for dh in (flip(delivered.dh_public_key, 40), b"\x02" + delivered.dh_public_key[1:]):
        with pytest.raises(InvalidPublicKeyError):
            decrypt_contract_key(
                DeliveredKey(EcdhCurve.SECP521, dh, delivered.encrypted), EV_P521, pcid=PCID, contract_ski=SKI
            )


def test_tampered_x448_point_fails_authentication_and_low_order_point_is_refused() -> None:
    delivered = deliver(EcdhCurve.X448)
    with pytest.raises(AuthenticationError):
        decrypt_contract_key(
            DeliveredKey(EcdhCurve.X448, flip(delivered.dh_public_key, 9), delivered.encrypted),
            EV_X448,
            pcid=PCID,
            contract_ski=SKI,
        )
    with pytest.raises(InvalidPublicKeyError):
        decrypt_contract_key(
            DeliveredKey(EcdhCurve.X448, bytes(56), delivered.encrypted), EV_X448, pcid=PCID, contract_ski=SKI
        )


@pytest.mark.parametrize("curve", list(EcdhCurve))
def test_wrong_sizes(curve: EcdhCurve) -> None:
    delivered = deliver(curve)
    for dh, encrypted in (
        (delivered.dh_public_key[:-1] + b"\x00\x00", delivered.encrypted),
        (delivered.dh_public_key, delivered.encrypted[:-1]),
        (delivered.dh_public_key, delivered.encrypted + b"\x00"),
        (b"", delivered.encrypted),
    ):
        with pytest.raises(WrongSizeError):
            decrypt_contract_key(DeliveredKey(curve, dh, encrypted), KEYS[curve][0], pcid=PCID, contract_ski=SKI)


def test_wrong_ev_key_fails_authentication() -> None:
    with pytest.raises(AuthenticationError):
        decrypt_contract_key(deliver(EcdhCurve.SECP521), p521(12345), pcid=PCID, contract_ski=SKI)
    with pytest.raises(AuthenticationError):
        decrypt_contract_key(deliver(EcdhCurve.X448), x448_key(7), pcid=PCID, contract_ski=SKI)


def test_curve_must_match_the_ev_key() -> None:
    with pytest.raises(WrongCurveError):
        decrypt_contract_key(deliver(EcdhCurve.SECP521), EV_X448, pcid=PCID, contract_ski=SKI)
    with pytest.raises(WrongCurveError):
        decrypt_contract_key(deliver(EcdhCurve.X448), EV_P521, pcid=PCID, contract_ski=SKI)
    with pytest.raises(WrongCurveError):
        decrypt_contract_key(
            deliver(EcdhCurve.SECP521), ec.generate_private_key(ec.SECP256R1()), pcid=PCID, contract_ski=SKI
        )


def test_sender_refuses_keys_of_other_curves() -> None:
    with pytest.raises(WrongCurveError):  # contract key on another curve than the EV key
        encrypt_contract_key(CONTRACT_X448, EV_P521.public_key(), pcid=PCID, contract_ski=SKI)
    with pytest.raises(WrongCurveError):  # a 57-byte Ed448 key does not fit the 56-byte field
        encrypt_contract_key(ed448.Ed448PrivateKey.generate(), EV_X448.public_key(), pcid=PCID, contract_ski=SKI)  # type: ignore[arg-type]
    with pytest.raises(WrongCurveError):  # -2's P-256 OEM key
        encrypt_contract_key(
            CONTRACT_P521, ec.generate_private_key(ec.SECP256R1()).public_key(), pcid=PCID, contract_ski=SKI
        )
    with pytest.raises(WrongCurveError):
        encrypt_contract_key(
            CONTRACT_P521, EV_P521.public_key(), pcid=PCID, contract_ski=SKI, ephemeral_key=EPHEMERAL_X448
        )
    with pytest.raises(WrongSizeError):
        encrypt_contract_key(CONTRACT_P521, EV_P521.public_key(), pcid=PCID, contract_ski=SKI, iv=bytes(16))


@pytest.mark.parametrize("curve", list(EcdhCurve))
def test_key_mismatch(curve: EcdhCurve) -> None:
    other = p521(99).public_key() if curve is EcdhCurve.SECP521 else x448_key(42).public_key()
    with pytest.raises(KeyMismatchError):
        decrypt_contract_key(deliver(curve), KEYS[curve][0], pcid=PCID, contract_ski=SKI, expected_public_key=other)


def test_expected_key_of_another_kind_is_wrong_curve() -> None:
    with pytest.raises(WrongCurveError):
        decrypt_contract_key(
            deliver(EcdhCurve.SECP521), EV_P521, pcid=PCID, contract_ski=SKI, expected_public_key=EV_X448.public_key()
        )
    with pytest.raises(WrongCurveError):
        decrypt_contract_key(
            deliver(EcdhCurve.X448), EV_X448, pcid=PCID, contract_ski=SKI, expected_public_key=EV_P521.public_key()
        )


@pytest.mark.parametrize(
    "plain",
    [
        (2**521).to_bytes(66, "big"),  # a top bit set [V2G20-2678]
        bytes(66),  # zero
        P521.group_order.to_bytes(66, "big"),  # not below the order [V2G20-2507]
    ],
)
def test_decrypted_scalar_out_of_range(plain: bytes) -> None:
    with pytest.raises(InvalidPrivateKeyError):
        decrypt_contract_key(reference_seal(EcdhCurve.SECP521, plain), EV_P521, pcid=PCID, contract_ski=SKI)


def test_associated_data_binds_pcid_and_ski() -> None:
    delivered = deliver(EcdhCurve.SECP521)
    with pytest.raises(AuthenticationError):
        decrypt_contract_key(delivered, EV_P521, pcid="MCSV2GPROVCERT0002", contract_ski=SKI)
    with pytest.raises(AuthenticationError):
        decrypt_contract_key(delivered, EV_P521, pcid=PCID, contract_ski=SKI[::-1])
    with pytest.raises(AssociatedDataError):
        decrypt_contract_key(delivered, EV_P521)
    for pcid in ("mcsv2gprovcert0001", "MCS-V2GPROVCERT001", "SHORT"):
        with pytest.raises(AssociatedDataError):
            decrypt_contract_key(delivered, EV_P521, pcid=pcid, contract_ski=SKI)


def test_installation_aad_layout() -> None:
    assert installation_aad(PCID, SKI) == b"MCSV2GPROVCERT00010123456789ABCDEF"
    with pytest.raises(AssociatedDataError):
        installation_aad(PCID, b"")


def test_wwcp_settings_interoperate_only_with_themselves() -> None:
    wwcp = KeyDeliverySettings(kdf=KdfProfile.WWCP, associated_data=AssociatedData.NONE)
    delivered = encrypt_contract_key(CONTRACT_P521, EV_P521.public_key(), settings=wwcp)
    assert public_bytes(decrypt_contract_key(delivered, EV_P521, settings=wwcp)) == public_bytes(CONTRACT_P521)
    with pytest.raises(AuthenticationError):  # the KDF alone differs
        decrypt_contract_key(delivered, EV_P521, settings=KeyDeliverySettings(associated_data=AssociatedData.NONE))
    with pytest.raises(AuthenticationError):  # the ISO 15118-20 defaults
        decrypt_contract_key(delivered, EV_P521, pcid=PCID, contract_ski=SKI)


def test_installation_data_round_trip() -> None:
    chain = ContractCertificateChain(
        certificate=b"\x30\x00", sub_certificates=SubCertificates(certificate=[b"\x30\x00"])
    )
    for curve in EcdhCurve:
        delivered = deliver(curve)
        data = delivered.to_installation_data("sid1", chain)
        assert DeliveredKey.from_installation_data(data) == delivered
    data = deliver(EcdhCurve.X448).to_installation_data("sid1", chain)
    assert data.x448_encrypted_private_key is not None and data.secp521_encrypted_private_key is None
    with pytest.raises(WrongCurveError):
        DeliveredKey.from_installation_data(
            SignedInstallationData(
                id="sid1",
                contract_certificate_chain=chain,
                ecdh_curve=EcdhCurve.SECP521,
                dh_public_key=data.dh_public_key,
                x448_encrypted_private_key=data.x448_encrypted_private_key,
            )
        )
    with pytest.raises(UnsupportedDeliveryError):
        DeliveredKey.from_installation_data(
            SignedInstallationData(
                id="sid1",
                contract_certificate_chain=chain,
                ecdh_curve=EcdhCurve.SECP521,
                dh_public_key=data.dh_public_key,
                tpm_encrypted_private_key=bytes(206),
            )
        )


def test_delivered_key_refuses_unknown_curve_and_non_bytes() -> None:
    with pytest.raises(WrongCurveError):
        DeliveredKey("TPM", b"", b"")  # type: ignore[arg-type]
    with pytest.raises(WrongSizeError):
        DeliveredKey(EcdhCurve.X448, None, b"")  # type: ignore[arg-type]
    assert DeliveredKey("X448", bytearray(b"a"), b"b").curve is EcdhCurve.X448  # type: ignore[arg-type]


def _sizes(curve_sizes: tuple[int, ...]) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=140), *(st.binary(min_size=n, max_size=n) for n in curve_sizes))


@settings(max_examples=300, deadline=None)
@given(
    curve=st.sampled_from(list(EcdhCurve)),
    dh=_sizes((133, 57, 56)),
    encrypted=_sizes((94, 84)),
    prefix=st.booleans(),
    ev_curve=st.sampled_from(list(EcdhCurve)),
    pcid=st.one_of(st.none(), st.just(PCID), st.text(max_size=20)),
    ski=st.one_of(st.none(), st.binary(max_size=20)),
)
def test_garbage_is_always_a_key_delivery_error(
    curve: EcdhCurve,
    dh: bytes,
    encrypted: bytes,
    prefix: bool,
    ev_curve: EcdhCurve,
    pcid: str | None,
    ski: bytes | None,
) -> None:
    if prefix and dh:
        dh = b"\x04" + dh[1:]
    with pytest.raises(KeyDeliveryError):
        decrypt_contract_key(DeliveredKey(curve, dh, encrypted), KEYS[ev_curve][0], pcid=pcid, contract_ski=ski)
