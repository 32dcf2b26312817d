"""TLS 1.3 with mutual authentication over real sockets (asyncio, 127.0.0.1 and ::1, ephemeral ports)."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest

from stack.security import openssl
from stack.security.pki import PkiFileInvalid, PkiFileMissing, PkiPaths, TlsCredentials, generate_pki
from stack.security.tls import (
    TLS13_CIPHERSUITES,
    TlsConfigError,
    client_context,
    server_context,
    set_tls13_ciphersuites,
    tls13_ciphersuites_settable,
)
from tests.prerequisites import requires

TIMEOUT = 10.0
PING = b"ping"


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


HOSTS = [
    "127.0.0.1",
    pytest.param("::1", marks=requires("ipv6", None if _ipv6_loopback() else "cannot bind ::1")),
]
needs_ciphersuites = requires(
    "tls13-ciphersuites", None if tls13_ciphersuites_settable() else "TLS 1.3 cipher suites not settable in this Python"
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> PkiPaths:
    return generate_pki(tmp_path_factory.mktemp("pki521"))


@pytest.fixture(scope="module")
def pki256(tmp_path_factory) -> PkiPaths:
    return generate_pki(tmp_path_factory.mktemp("pki256"), profile="secp256r1")


@pytest.fixture(scope="module")
def other(tmp_path_factory) -> PkiPaths:
    """Same layout, other roots: nothing of it chains to `pki`."""
    return generate_pki(tmp_path_factory.mktemp("other"), evse_id="XX*OTH*E1", evcc_id="OTHER")


@dataclass
class Outcome:
    echoed: bytes = b""
    client_error: BaseException | None = None
    version: str | None = None
    cipher: str | None = None
    server_peer: dict | None = None
    client_peer: dict | None = None
    server_error: BaseException | None = None
    server_done: bool = False

    @property
    def ok(self) -> bool:
        return self.echoed == PING and self.client_error is None and self.server_error is None


def _cn(peer: dict | None) -> str | None:
    for rdn in (peer or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


async def _exchange(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, host: str = "127.0.0.1", *, tls_at_accept: bool = False
) -> Outcome:
    """One connection, one echoed PING.

    tls_at_accept=True hands the context to `start_server` (as the transport will); otherwise the handler
    upgrades with `StreamWriter.start_tls`, so the server's handshake error becomes visible to the test.
    """
    out = Outcome()
    handled = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not tls_at_accept:
                await writer.start_tls(server_ctx)
            out.server_peer = writer.get_extra_info("peercert")
            writer.write(await reader.readexactly(len(PING)))
            await writer.drain()
            out.server_done = True
        except (OSError, asyncio.IncompleteReadError) as exc:
            out.server_error = exc
        finally:
            writer.close()
            handled.set_result(None)

    server = await asyncio.start_server(handle, host, 0, ssl=server_ctx if tls_at_accept else None)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(TIMEOUT):
            try:
                reader, writer = await asyncio.open_connection(host, port, ssl=client_ctx)
                ssl_object = writer.get_extra_info("ssl_object")
                out.version, out.cipher = ssl_object.version(), ssl_object.cipher()[0]
                out.client_peer = writer.get_extra_info("peercert")
                writer.write(PING)
                await writer.drain()
                out.echoed = await reader.read(len(PING))
                writer.close()
            except OSError as exc:  # ssl.SSLError, ConnectionResetError, ...
                out.client_error = exc
            if not tls_at_accept or out.echoed:
                await handled
    finally:
        server.close()
        await server.wait_closed()
    return out


def exchange(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, host: str = "127.0.0.1", **kw) -> Outcome:
    return asyncio.run(_exchange(server_ctx, client_ctx, host, **kw))


def assert_refused_by_server(out: Outcome, reason: str) -> None:
    assert not out.server_done and out.echoed != PING
    assert isinstance(out.server_error, ssl.SSLError), out.server_error
    assert reason in str(out.server_error)


def bare_client(trust: Path) -> ssl.SSLContext:
    """A TLS 1.3 client that trusts the V2G root but presents no certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(trust)
    return ctx


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("profile", ["secp521r1", "secp256r1"])
def test_mutual_tls13_handshake(host: str, profile: str, pki: PkiPaths, pki256: PkiPaths) -> None:
    chosen = pki if profile == "secp521r1" else pki256
    out = exchange(server_context(chosen), client_context(chosen), host, tls_at_accept=True)
    assert out.ok, out
    assert out.version == "TLSv1.3"
    assert out.cipher in TLS13_CIPHERSUITES
    assert _cn(out.server_peer) == "WMAMCS00000000001"  # the SECC saw the vehicle certificate
    assert _cn(out.client_peer) == "DE*MCS*E12345"


@pytest.fixture(scope="module")
def pki448(tmp_path_factory) -> PkiPaths:
    return generate_pki(tmp_path_factory.mktemp("pki448"), profile="ed448")


def test_ed448_profile_handshakes_with_x448(pki: PkiPaths, pki448: PkiPaths) -> None:
    """The other -20 profile: Ed448 certificates both ways; the group is pinned to X448, so a P-521 peer offering
    only its own group gets no key share."""
    out = exchange(server_context(pki448), client_context(pki448), tls_at_accept=True)
    assert out.ok and out.version == "TLSv1.3", out
    assert _cn(out.server_peer) == "WMAMCS00000000001" and _cn(out.client_peer) == "DE*MCS*E12345"
    assert_refused_by_server(
        exchange(server_context(pki448), client_context(pki448, ecdh_group="secp521r1")), "NO_SUITABLE_KEY_SHARE"
    )


def test_server_order_is_the_20_order(pki: PkiPaths) -> None:
    # [V2G20-1856]: TLS_AES_256_GCM_SHA384 first, whatever the client prefers.
    client = client_context(pki)
    set_tls13_ciphersuites(client, ["TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_256_GCM_SHA384"])
    assert exchange(server_context(pki), client).cipher == "TLS_AES_256_GCM_SHA384"


def test_chacha20_only_client(pki: PkiPaths) -> None:
    client = client_context(pki)
    set_tls13_ciphersuites(client, ["TLS_CHACHA20_POLY1305_SHA256"])
    out = exchange(server_context(pki), client)
    assert out.ok and out.cipher == "TLS_CHACHA20_POLY1305_SHA256"


@needs_ciphersuites
def test_contexts_offer_only_the_two_20_suites(pki: PkiPaths) -> None:
    for ctx in (server_context(pki), client_context(pki)):
        assert [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.3"] == list(TLS13_CIPHERSUITES)


@needs_ciphersuites
def test_suite_outside_the_20_list_is_refused(pki: PkiPaths) -> None:
    client = client_context(pki)
    set_tls13_ciphersuites(client, ["TLS_AES_128_GCM_SHA256"])  # OpenSSL's default list has it, -20 has not
    assert_refused_by_server(exchange(server_context(pki), client), "NO_SHARED_CIPHER")


def test_fallback_without_ciphersuite_access(pki: PkiPaths, monkeypatch, caplog) -> None:
    # Where SSL_CTX_set_ciphersuites is out of reach, OpenSSL's default list (AES-256-GCM, ChaCha20, AES-128-GCM)
    # stays and the server's preference still picks a -20 suite for any client that offers one.

    monkeypatch.setattr(openssl, "libssl", lambda: None)
    server, client = server_context(pki), client_context(pki)
    assert "keeping OpenSSL's default TLS 1.3 cipher suites" in caplog.text
    offered = [c["name"] for c in server.get_ciphers() if c["protocol"] == "TLSv1.3"]
    assert offered[:2] == list(TLS13_CIPHERSUITES)
    assert exchange(server, client).cipher == "TLS_AES_256_GCM_SHA384"


def test_ecdhe_group_is_pinned_to_the_leaf_curve(pki: PkiPaths, pki256: PkiPaths) -> None:
    # A client offering only P-256 gets no P-521 key share from a P-521 SECC, and the reverse.
    assert_refused_by_server(
        exchange(server_context(pki), client_context(pki, ecdh_group="prime256v1")), "NO_SUITABLE_KEY_SHARE"
    )
    assert_refused_by_server(
        exchange(server_context(pki256), client_context(pki256, ecdh_group="secp521r1")), "NO_SUITABLE_KEY_SHARE"
    )
    # The EVCC offers only the leaf's curve, so a success means ECDHE ran on it.
    assert exchange(server_context(pki), client_context(pki, ecdh_group="secp521r1")).ok
    assert exchange(server_context(pki, ecdh_group=None), client_context(pki, ecdh_group=None)).ok
    with pytest.raises(TlsConfigError):
        server_context(pki, ecdh_group="no-such-curve")


def test_client_without_certificate_is_refused(pki: PkiPaths) -> None:
    out = exchange(server_context(pki), bare_client(pki.v2g_root_cert))
    assert_refused_by_server(out, "PEER_DID_NOT_RETURN_A_CERTIFICATE")


def test_client_certificate_optional_when_not_required(pki: PkiPaths) -> None:
    out = exchange(server_context(pki, require_client_cert=False), bare_client(pki.v2g_root_cert))
    assert out.ok and not out.server_peer


def test_client_certificate_from_another_root_is_refused(pki: PkiPaths, other: PkiPaths) -> None:
    stranger = TlsCredentials(other.vehicle_chain, other.vehicle_key, pki.v2g_root_cert)
    out = exchange(server_context(pki), client_context(stranger))
    assert_refused_by_server(out, "CERTIFICATE_VERIFY_FAILED")
    # even when it is optional, a certificate that is sent must verify
    out = exchange(server_context(pki, require_client_cert=False), client_context(stranger))
    assert_refused_by_server(out, "CERTIFICATE_VERIFY_FAILED")


def test_evcc_refuses_server_from_another_root(pki: PkiPaths, other: PkiPaths) -> None:
    out = exchange(server_context(other), client_context(pki))
    assert isinstance(out.client_error, ssl.SSLCertVerificationError), out.client_error
    assert out.version is None and not out.server_done


def tls12_client(pki: PkiPaths) -> ssl.SSLContext:
    ctx = client_context(pki, allow_tls12=True)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def test_tls12_client_is_refused(pki: PkiPaths) -> None:
    assert_refused_by_server(exchange(server_context(pki), tls12_client(pki)), "UNSUPPORTED_PROTOCOL")


def test_tls12_client_accepted_with_allow_tls12(pki: PkiPaths) -> None:
    out = exchange(server_context(pki, allow_tls12=True), tls12_client(pki))
    assert out.ok, out
    assert (out.version, out.cipher) == ("TLSv1.2", "ECDHE-ECDSA-AES128-SHA256")
    # a 1.3-capable client still gets 1.3 from the same server
    assert exchange(server_context(pki, allow_tls12=True), client_context(pki)).version == "TLSv1.3"


def test_evcc_refuses_tls12_server(pki: PkiPaths) -> None:
    server = server_context(pki, allow_tls12=True)
    server.maximum_version = ssl.TLSVersion.TLSv1_2
    out = exchange(server, client_context(pki))
    assert_refused_by_server(out, "UNSUPPORTED_PROTOCOL")  # a 1.3-only ClientHello to a 1.2-only server
    assert out.version is None


def test_key_log_files(pki: PkiPaths, tmp_path: Path) -> None:
    server_log, client_log = tmp_path / "secc.keys", tmp_path / "evcc.keys"
    out = exchange(server_context(pki, keylog_file=server_log), client_context(pki, keylog_file=client_log))
    assert out.ok
    labels = {
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
        "EXPORTER_SECRET",
    }
    entries = []
    for path in (server_log, client_log):
        lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
        # NSS key log format: LABEL <32-byte client random> <secret>; SHA-384 secrets for TLS_AES_256_GCM_SHA384
        assert all(re.fullmatch(r"[A-Z_0-9]+ [0-9a-f]{64} [0-9a-f]{96}", line) for line in lines), lines
        entries.append({tuple(line.split()) for line in lines})
        assert {line.split()[0] for line in lines} == labels
    assert entries[0] == entries[1]  # both ends logged the same secrets of the same handshake


def test_certificates_pass_x509_strict_and_hostname_check(pki: PkiPaths) -> None:
    server, client = server_context(pki), client_context(pki, check_hostname=True)
    for ctx in (server, client):
        ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    assert exchange(server, client, "127.0.0.1").ok  # server_hostname 127.0.0.1 matches the IP SAN


def test_hostname_mismatch_when_checked(pki: PkiPaths) -> None:
    client = client_context(pki, check_hostname=True)
    server = server_context(pki)

    async def run() -> BaseException | None:
        srv = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server)
        port = srv.sockets[0].getsockname()[1]
        try:
            async with asyncio.timeout(TIMEOUT):
                await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname="secc.example")
        except ssl.SSLCertVerificationError as exc:
            return exc
        finally:
            srv.close()
            await srv.wait_closed()
        return None

    assert "Hostname mismatch" in str(asyncio.run(run()))


def test_encrypted_keys(tmp_path: Path) -> None:
    pki = generate_pki(tmp_path, password="pw")
    assert exchange(server_context(pki), client_context(pki)).ok
    with pytest.raises(PkiFileInvalid, match="encrypted"):  # never a pass phrase prompt on the terminal
        server_context(PkiPaths(pki.directory, pki.profile))
    with pytest.raises(PkiFileInvalid):
        client_context(PkiPaths(pki.directory, pki.profile, b"wrong"))


def test_missing_and_invalid_files(tmp_path: Path, pki: PkiPaths) -> None:
    with pytest.raises(PkiFileMissing):
        server_context(PkiPaths(tmp_path / "none", "secp521r1"))
    with pytest.raises(PkiFileMissing):
        client_context(TlsCredentials(pki.vehicle_chain, pki.vehicle_key, tmp_path / "root.pem"))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(PkiFileInvalid):
        client_context(TlsCredentials(garbage, pki.vehicle_key, pki.v2g_root_cert))
    with pytest.raises(PkiFileInvalid):
        client_context(TlsCredentials(pki.vehicle_chain, pki.secc_key, pki.v2g_root_cert))  # key of another cert
    with pytest.raises(PkiFileInvalid):
        server_context(TlsCredentials(pki.secc_chain, pki.secc_key, garbage))
