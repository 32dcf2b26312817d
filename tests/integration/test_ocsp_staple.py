"""OCSP stapling of the SECC leaf over real TLS sockets on 127.0.0.1 (asyncio, blocking sockets, openssl s_client)."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import resource
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from stack.security import openssl
from stack.security.ocsp import LocalOcspResponder, OcspError, OcspStatus, ResponderKey, check_ocsp_response
from stack.security.ocsp_staple import (
    ocsp_stapling_available,
    request_ocsp,
    staple_ocsp,
    stapled_response,
    stapled_status,
)
from stack.security.pki import PkiPaths, generate_pki, load_certificates
from stack.security.tls import TlsConfigError, client_context, server_context
from tests.prerequisites import require

TIMEOUT = 10.0
PING = b"ping"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass
class Secc:
    """A test PKI and what staples for its SECC leaf: the CPO sub-CA 2 answering as its own OCSP responder."""

    pki: PkiPaths
    leaf: x509.Certificate
    issuer: x509.Certificate
    issuer_key: ResponderKey

    def responder(self) -> LocalOcspResponder:
        return LocalOcspResponder(self.issuer, self.issuer_key, self.issuer)

    def response(self) -> bytes:
        return self.responder().response_for(self.leaf, NOW)


def _secc(pki: PkiPaths) -> Secc:
    issuer = load_certificates(pki.cert("cpo_sub_ca2"))[0]
    key = cast(ResponderKey, serialization.load_pem_private_key(pki.key("cpo_sub_ca2").read_bytes(), None))
    return Secc(pki, load_certificates(pki.secc_cert)[0], issuer, key)


@pytest.fixture(scope="module", params=["secp521r1", "ed448"])
def secc(request, tmp_path_factory) -> Secc:
    return _secc(generate_pki(tmp_path_factory.mktemp(request.param), profile=request.param))


@pytest.fixture(scope="module")
def secc521(tmp_path_factory) -> Secc:
    return _secc(generate_pki(tmp_path_factory.mktemp("p521")))


class Counted:
    """An OCSP source that counts its calls and remembers its last answer."""

    def __init__(self, produce: Callable[[], bytes | None]):
        self.produce = produce
        self.calls = 0
        self.last: bytes | None = None

    def __call__(self) -> bytes | None:
        self.calls += 1
        self.last = self.produce()
        return self.last


@dataclass
class Seen:
    """What the EVCC saw of one connection, and of how many connections in a row had a staple."""

    staple: bytes | None
    status: OcspStatus | None
    version: str | None
    stapled: int = 0


async def _connect(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, count: int, check: bool) -> Seen:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(await reader.readexactly(len(PING)))
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    seen, stapled = Seen(None, None, None), 0
    try:
        async with asyncio.timeout(TIMEOUT * max(1, count // 50)):
            for _ in range(count):
                reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
                ssl_object = writer.get_extra_info("ssl_object")
                status = stapled_status(ssl_object, NOW) if check else None
                seen = Seen(stapled_response(ssl_object), status, ssl_object.version())
                stapled += seen.staple is not None
                writer.write(PING)
                assert await reader.readexactly(len(PING)) == PING  # the connection works after the staple
                writer.close()
                await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
    seen.stapled = stapled
    return seen


def connect(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, *, count: int = 1, check: bool = True) -> Seen:
    """`count` connections in a row; what the EVCC saw of the last one (`stapled`: of all of them)."""
    return asyncio.run(_connect(server_ctx, client_ctx, count, check))


def test_evcc_sees_the_staple_and_it_is_good(secc: Secc) -> None:
    source = Counted(secc.response)
    server = server_context(secc.pki, ocsp_staple=source)
    gc.collect()  # the callback lives as long as the context, not as long as a local variable
    seen = connect(server, client_context(secc.pki, request_ocsp_staple=True))
    assert seen.version == "TLSv1.3" and source.calls == 1
    assert seen.staple is not None and seen.staple == source.last
    assert check_ocsp_response(seen.staple, secc.leaf, secc.issuer, NOW) is OcspStatus.GOOD
    assert seen.status is OcspStatus.GOOD  # the issuer taken from the verified chain


def test_revoked_leaf(secc: Secc) -> None:
    responder = secc.responder()
    responder.revoke(secc.leaf.serial_number, NOW - dt.timedelta(hours=1), x509.ReasonFlags.key_compromise)
    server = server_context(secc.pki, ocsp_staple=lambda: responder.response_for(secc.leaf, NOW))
    seen = connect(server, client_context(secc.pki, request_ocsp_staple=True))
    assert seen.staple is not None
    assert check_ocsp_response(seen.staple, secc.leaf, secc.issuer, NOW) is OcspStatus.REVOKED
    assert seen.status is OcspStatus.REVOKED


def test_no_staple_without_a_source_or_when_it_has_none(secc521: Secc) -> None:
    client = client_context(secc521.pki, request_ocsp_staple=True)
    assert connect(server_context(secc521.pki), client) == Seen(None, None, "TLSv1.3", 0)
    declining = Counted(lambda: None)
    assert connect(server_context(secc521.pki, ocsp_staple=declining), client) == Seen(None, None, "TLSv1.3", 0)
    assert declining.calls == 1  # asked, and it said no


def test_client_that_does_not_ask_gets_none(secc521: Secc) -> None:
    source = Counted(secc521.response)
    seen = connect(server_context(secc521.pki, ocsp_staple=source), client_context(secc521.pki))
    assert seen == Seen(None, None, "TLSv1.3", 0)
    assert source.calls == 0


def test_the_source_is_asked_at_each_handshake_and_can_be_replaced(secc521: Secc) -> None:
    earlier = secc521.responder().response_for(secc521.leaf, NOW - dt.timedelta(hours=1))
    responses = iter([secc521.response(), earlier])
    server = server_context(secc521.pki, ocsp_staple=lambda: next(responses))
    client = client_context(secc521.pki, request_ocsp_staple=True)
    first, second = connect(server, client).staple, connect(server, client).staple
    assert first is not None and second is not None and first != second
    staple_ocsp(server, lambda: b"replaced")
    assert connect(server, client, check=False).staple == b"replaced"


@pytest.mark.parametrize("broken", [lambda: 1 / 0, lambda: "not bytes"], ids=["raises", "returns-str"])
def test_a_broken_source_staples_nothing(secc521: Secc, broken: Callable[[], bytes], caplog) -> None:
    server = server_context(secc521.pki, ocsp_staple=broken)
    assert connect(server, client_context(secc521.pki, request_ocsp_staple=True)) == Seen(None, None, "TLSv1.3", 0)
    assert "no OCSP staple in this handshake" in caplog.text


def test_staple_about_another_certificate_is_not_relied_on(secc521: Secc) -> None:
    # The sub-CA 2 answering about the vehicle leaf (which it did not issue): says nothing about the SECC leaf.
    vehicle = load_certificates(secc521.pki.vehicle_cert)[0]
    server = server_context(secc521.pki, ocsp_staple=lambda: secc521.responder().response_for(vehicle, NOW))
    client = client_context(secc521.pki, request_ocsp_staple=True)
    seen = connect(server, client, check=False)
    assert seen.staple is not None
    with pytest.raises(OcspError, match="says nothing about serial"):
        check_ocsp_response(seen.staple, secc521.leaf, secc521.issuer, NOW)
    with pytest.raises(OcspError, match="says nothing about serial"):
        connect(server, client)


def test_tls12_staples_too(secc521: Secc) -> None:
    client = client_context(secc521.pki, allow_tls12=True, request_ocsp_staple=True)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    seen = connect(server_context(secc521.pki, allow_tls12=True, ocsp_staple=secc521.response), client)
    assert (seen.version, seen.status) == ("TLSv1.2", OcspStatus.GOOD)


def test_many_handshakes_neither_leak_nor_crash(secc521: Secc) -> None:
    # Near the largest staple a TLS 1.3 extension holds: 500 leaked ones would be about 30 MB on each side.
    size, count = 60_000, 500
    source = Counted(lambda: source.calls.to_bytes(4, "big") * (size // 4))
    server = server_context(secc521.pki, ocsp_staple=source)
    client = client_context(secc521.pki, request_ocsp_staple=True)
    connect(server, client, count=50, check=False)  # warm up the allocator
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    last = connect(server, client, count=count, check=False)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert source.calls == 50 + count and last.stapled == count
    assert last.staple == source.calls.to_bytes(4, "big") * (size // 4)  # each handshake staples its own
    assert grown < 12 * 1024, f"peak RSS grew by {grown} KiB over {count} handshakes"


def _serve_once(ctx: ssl.SSLContext) -> tuple[int, threading.Thread]:
    """A blocking TLS server on 127.0.0.1 for one connection: it reads until the client closes."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            conn.settimeout(TIMEOUT)
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls_conn:
                    while tls_conn.recv(1024):
                        pass
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def test_blocking_sockets(secc521: Secc) -> None:
    der = secc521.response()
    port, thread = _serve_once(server_context(secc521.pki, ocsp_staple=lambda: der))
    client = client_context(secc521.pki, request_ocsp_staple=True)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw, client.wrap_socket(raw) as conn:
        assert stapled_response(conn) == der
        assert stapled_status(conn, NOW, issuer=secc521.issuer) is OcspStatus.GOOD
    thread.join(TIMEOUT)
    with pytest.raises(TlsConfigError, match="no TLS connection"):
        stapled_response(conn)  # closed


def test_openssl_s_client_sees_the_staple(secc: Secc) -> None:
    openssl = shutil.which("openssl")
    require("openssl", None if openssl else "not on PATH")
    assert openssl is not None
    port, thread = _serve_once(server_context(secc.pki, require_client_cert=False, ocsp_staple=secc.response))
    args = ["s_client", "-connect", f"127.0.0.1:{port}", "-status", "-tls1_3", "-CAfile", str(secc.pki.v2g_root_cert)]
    out = subprocess.run([openssl, *args], input=b"Q\n", capture_output=True, timeout=TIMEOUT)
    thread.join(TIMEOUT)
    text = out.stdout.decode(errors="replace")
    assert "OCSP Response Status: successful" in text, text
    assert "Cert Status: good" in text and "Verify return code: 0 (ok)" in text, text


def test_each_side_its_own_half() -> None:
    with pytest.raises(TlsConfigError, match="PROTOCOL_TLS_SERVER context is needed"):
        staple_ocsp(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), lambda: None)
    with pytest.raises(TlsConfigError, match="PROTOCOL_TLS_CLIENT context is needed"):
        request_ocsp(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))


def test_clear_error_where_openssl_is_out_of_reach(secc521: Secc, monkeypatch) -> None:
    assert ocsp_stapling_available()
    monkeypatch.setattr(openssl, "libssl", lambda: None)
    assert not ocsp_stapling_available()
    with pytest.raises(TlsConfigError, match="OCSP stapling"):
        server_context(secc521.pki, ocsp_staple=secc521.response)
    with pytest.raises(TlsConfigError, match="OCSP stapling"):
        client_context(secc521.pki, request_ocsp_staple=True)
    monkeypatch.undo()
    monkeypatch.setattr(openssl, "ssl_ctx_pointer", lambda ctx, lib: None)  # a CPython whose layout we do not know
    with pytest.raises(TlsConfigError, match="cannot reach the SSL_CTX"):
        staple_ocsp(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), secc521.response)
    with pytest.raises(TlsConfigError, match="cannot reach the SSL_CTX"):
        request_ocsp(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
