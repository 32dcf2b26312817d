"""TLS 1.3 key schedule and record parsing of the capture decryptor (RFC 8448 vectors)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes

from mcs_v2g.capture.tls13 import TlsDecryptError, decrypt, hkdf_expand_label, parse_keylog, records

# RFC 8448 section 3 (Simple 1-RTT Handshake): server handshake traffic secret -> write key and IV
SERVER_HS_SECRET = bytes.fromhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")


def test_hkdf_expand_label_rfc8448() -> None:
    key = hkdf_expand_label(SERVER_HS_SECRET, "key", b"", 16, hashes.SHA256())
    iv = hkdf_expand_label(SERVER_HS_SECRET, "iv", b"", 12, hashes.SHA256())
    assert key.hex() == "3fce516009c21727d0f2e4e86ee403bc"
    assert iv.hex() == "5d313eb2671276ee13000b30"


def test_parse_keylog_skips_comments_and_bad_lines() -> None:
    text = "# comment\nCLIENT_TRAFFIC_SECRET_0 0a0b 0c0d\nBAD LINE\nSERVER_TRAFFIC_SECRET_0 zz 00\n"
    assert parse_keylog(text) == {("CLIENT_TRAFFIC_SECRET_0", b"\x0a\x0b"): b"\x0c\x0d"}


def test_records_are_stamped_with_the_chunk_of_their_last_byte() -> None:
    record = b"\x17\x03\x03\x00\x04abcd"
    found, rest = records([(1.0, record[:3]), (2.0, record[3:] + record[:2]), (3.0, record[2:] + b"\x17")])
    assert [(r.t, r.chunk, r.body) for r in found] == [(2.0, 1, b"abcd"), (3.0, 2, b"abcd")]
    assert rest == 1


@pytest.mark.parametrize(
    ("to_evse", "to_ev", "why"),
    [
        ([(1.0, b"\x01\xfe\x80\x01\x00\x00\x00\x00")], [], "no ClientHello"),
        ([(1.0, b"\x16\x03\x01\x00\x26\x01" + bytes(37))], [], "no ServerHello"),
    ],
)
def test_what_cannot_be_decrypted_says_why(to_evse, to_ev, why: str) -> None:
    with pytest.raises(TlsDecryptError, match=why):
        decrypt(to_evse, to_ev, "")
