"""TLS 1.3 decryption of a recorded connection with an NSS key log (RFC 8446, RFC 8448 for the key schedule).

Why not scapy's TLS layer: scapy 2.8 does decrypt TLS 1.3 with an NSS key log (tried on our own pcapng: the
encrypted handshake and the application data come out once `TLS` is bound to the V2G port), but only through
process-wide state (`conf.tls_session_enable`, `conf.tls_nss_filename`, `bind_layers` per port) and its own
packet-by-packet TCP session, and a record it cannot open stays silently undecoded. The decoder needs plaintext
per direction of an already reassembled stream, with the reason when it fails. What that takes is small and
standard (tshark is not needed either): the key log gives the traffic secrets (CLIENT_/SERVER_
HANDSHAKE_TRAFFIC_SECRET, CLIENT_/SERVER_TRAFFIC_SECRET_0) under the ClientHello's random, HKDF-Expand-Label
derives key and IV, and an AEAD of `cryptography` opens each record (nonce = IV xor sequence number, the record
header as associated data). Suites: TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384,
TLS_CHACHA20_POLY1305_SHA256, TLS_AES_128_CCM_SHA256 and TLS_AES_128_CCM_8_SHA256; KeyUpdate is followed.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

HANDSHAKE, CHANGE_CIPHER_SPEC, ALERT, APPLICATION_DATA = 22, 20, 21, 23
CLIENT_HELLO, SERVER_HELLO, FINISHED, KEY_UPDATE = 1, 2, 20, 24
SUPPORTED_VERSIONS = 43
# ServerHello.random of a HelloRetryRequest (RFC 8446 section 4.1.3)
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")

Aead = Callable[[bytes], AESGCM | AESCCM | ChaCha20Poly1305]


@dataclass(frozen=True, slots=True)
class Suite:
    name: str
    hash: hashes.HashAlgorithm
    key_size: int
    aead: Aead


SUITES = {
    0x1301: Suite("TLS_AES_128_GCM_SHA256", hashes.SHA256(), 16, AESGCM),
    0x1302: Suite("TLS_AES_256_GCM_SHA384", hashes.SHA384(), 32, AESGCM),
    0x1303: Suite("TLS_CHACHA20_POLY1305_SHA256", hashes.SHA256(), 32, ChaCha20Poly1305),
    0x1304: Suite("TLS_AES_128_CCM_SHA256", hashes.SHA256(), 16, AESCCM),
    0x1305: Suite("TLS_AES_128_CCM_8_SHA256", hashes.SHA256(), 16, lambda key: AESCCM(key, tag_length=8)),
}


class TlsDecryptError(Exception):
    """The connection cannot be decrypted (no keys for it, not TLS 1.3, an unknown suite, a record that fails)."""


@dataclass(slots=True)
class Decrypted:
    """The plaintext of both directions, each chunk with the index of the input chunk that completed its record."""

    to_evse: list[tuple[int, bytes]] = field(default_factory=list)
    to_ev: list[tuple[int, bytes]] = field(default_factory=list)
    suite: str = ""
    notes: list[str] = field(default_factory=list)


def parse_keylog(text: str) -> dict[tuple[str, bytes], bytes]:
    """(label, client random) -> secret, from NSS key log lines; comments and bad lines are skipped."""
    keys = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or line.startswith("#"):
            continue
        try:
            keys[(parts[0], bytes.fromhex(parts[1]))] = bytes.fromhex(parts[2])
        except ValueError:
            continue
    return keys


def hkdf_expand_label(secret: bytes, label: str, context: bytes, length: int, algorithm: hashes.HashAlgorithm) -> bytes:
    """HKDF-Expand-Label of RFC 8446 section 7.1."""
    full = b"tls13 " + label.encode()
    info = struct.pack(">HB", length, len(full)) + full + struct.pack(">B", len(context)) + context
    return HKDFExpand(algorithm, length, info).derive(secret)


class _Direction:
    """Record protection of one direction: the current traffic secret, its key, IV and sequence number."""

    def __init__(self, suite: Suite, secret: bytes) -> None:
        self.suite = suite
        self.set_secret(secret)

    def set_secret(self, secret: bytes) -> None:
        self.secret = secret
        self.cipher = self.suite.aead(hkdf_expand_label(secret, "key", b"", self.suite.key_size, self.suite.hash))
        self.iv = hkdf_expand_label(secret, "iv", b"", 12, self.suite.hash)
        self.seq = 0

    def open(self, header: bytes, body: bytes) -> tuple[int, bytes]:
        """(inner content type, content) of one protected record."""
        nonce = bytes(a ^ b for a, b in zip(self.iv, self.seq.to_bytes(12, "big"), strict=True))
        plain = self.cipher.decrypt(nonce, body, header)
        self.seq += 1
        inner = plain.rstrip(b"\x00")
        if not inner:
            raise TlsDecryptError("a record with no content type")
        return inner[-1], inner[:-1]

    def update(self) -> None:
        """KeyUpdate: the next secret of this direction (RFC 8446 section 7.2)."""
        size = self.suite.hash.digest_size
        self.set_secret(hkdf_expand_label(self.secret, "traffic upd", b"", size, self.suite.hash))


@dataclass(frozen=True, slots=True)
class _Record:
    t: float
    chunk: int  # index of the input chunk holding its last byte
    type: int
    header: bytes
    body: bytes


def records(chunks: Sequence[tuple[float, bytes]]) -> tuple[list[_Record], int]:
    """The TLS records of one direction, each stamped with the chunk (and time) of its last byte; and bytes left
    over."""
    stream = b"".join(data for _, data in chunks)
    ends, total = [], 0
    for _, data in chunks:
        total += len(data)
        ends.append(total)
    out, pos = [], 0
    while len(stream) - pos >= 5:
        kind, _, length = struct.unpack_from(">BHH", stream, pos)
        if len(stream) - pos - 5 < length:
            break
        end = pos + 5 + length
        i = bisect.bisect_left(ends, end)
        out.append(_Record(chunks[i][0], i, kind, stream[pos : pos + 5], stream[pos + 5 : end]))
        pos = end
    return out, len(stream) - pos


def decrypt(to_evse: Sequence[tuple[float, bytes]], to_ev: Sequence[tuple[float, bytes]], keylog: str) -> Decrypted:
    """Decrypt one TLS 1.3 connection (the EV is the client). Raises TlsDecryptError when it cannot start."""
    client_records, client_rest = records(to_evse)
    server_records, server_rest = records(to_ev)
    random = _client_random(client_records)
    suite_id = _server_suite(server_records)
    suite = SUITES.get(suite_id)
    if suite is None:
        raise TlsDecryptError(f"cipher suite {suite_id:#06x} is not one this decoder knows")
    keys = parse_keylog(keylog)
    secrets = {}
    for label in (
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    ):
        secret = keys.get((label, random))
        if secret is None:
            raise TlsDecryptError(f"the key log has no {label} for client random {random.hex()[:16]}...")
        secrets[label] = secret
    out = Decrypted(suite=suite.name)
    for name, recs, rest, plain, prefix in (
        ("EV->EVSE", client_records, client_rest, out.to_evse, "CLIENT"),
        ("EVSE->EV", server_records, server_rest, out.to_ev, "SERVER"),
    ):
        handshake = secrets[f"{prefix}_HANDSHAKE_TRAFFIC_SECRET"]
        application = secrets[f"{prefix}_TRAFFIC_SECRET_0"]
        note = _open_direction(recs, suite, handshake, application, plain)
        if note:
            out.notes.append(f"{name}: {note}")
        if rest:
            out.notes.append(f"{name}: {rest} bytes of an incomplete TLS record at the end")
    return out


def _open_direction(
    recs: list[_Record], suite: Suite, handshake: bytes, application: bytes, plain: list[tuple[int, bytes]]
) -> str:
    """Decrypt one direction's records into `plain`; a note when something could not be decrypted."""
    protection = _Direction(suite, handshake)
    in_handshake = True
    buffer = b""  # handshake messages may span records
    for record in recs:
        if record.type != APPLICATION_DATA:
            continue  # plaintext ClientHello/ServerHello, compatibility ChangeCipherSpec, plaintext alerts
        try:
            kind, content = protection.open(record.header, record.body)
        except (InvalidTag, ValueError):
            phase = "handshake" if in_handshake else "application"
            return f"a record at t={record.t:.6f} does not decrypt with the {phase} keys of the key log"
        except TlsDecryptError as exc:
            return str(exc)
        if kind == APPLICATION_DATA:
            plain.append((record.chunk, content))
        elif kind == ALERT and len(content) >= 2 and content[1] != 0:
            return f"TLS alert {content[1]} at t={record.t:.6f}"
        elif kind == HANDSHAKE:
            buffer += content
            while len(buffer) >= 4:
                length = int.from_bytes(buffer[1:4], "big")
                if len(buffer) < 4 + length:
                    break
                message_type, buffer = buffer[0], buffer[4 + length :]
                if message_type == FINISHED and in_handshake:
                    in_handshake = False
                    protection = _Direction(suite, application)
                elif message_type == KEY_UPDATE:
                    protection.update()
    return ""


def _client_random(recs: list[_Record]) -> bytes:
    for record in recs:
        if record.type == HANDSHAKE and len(record.body) >= 38 and record.body[0] == CLIENT_HELLO:
            return record.body[6:38]
    raise TlsDecryptError("no ClientHello in the capture: the key log cannot be matched")


def _server_suite(recs: list[_Record]) -> int:
    """The cipher suite of the ServerHello (after a HelloRetryRequest, of the second); TLS 1.3 only."""
    for record in recs:
        body = record.body
        if record.type != HANDSHAKE or len(body) < 39 or body[0] != SERVER_HELLO or body[6:38] == HRR_RANDOM:
            continue
        session_id_length = body[38]
        at = 39 + session_id_length
        if len(body) < at + 5:
            break
        suite = int.from_bytes(body[at : at + 2], "big")
        if not _is_tls13(body[at + 3 :]):
            raise TlsDecryptError("TLS 1.2 or older: only TLS 1.3 is decrypted")
        return suite
    raise TlsDecryptError("no ServerHello in the capture")


def _is_tls13(extensions: bytes) -> bool:
    """Whether the ServerHello's extensions select TLS 1.3 (supported_versions = 0x0304)."""
    pos = 2
    while pos + 4 <= len(extensions):
        kind, length = struct.unpack_from(">HH", extensions, pos)
        if kind == SUPPORTED_VERSIONS:
            return extensions[pos + 4 : pos + 6] == b"\x03\x04"
        pos += 4 + length
    return False
