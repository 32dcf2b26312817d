"""OCSP: the local responder (good, revoked, unknown, malformed requests), the check of a response (issuer-signed,
delegated, forged, about another certificate, out of date), the static and cached revocation sources, and the
HTTP edge on a real local server (POST, GET, garbage, timeouts) feeding a contract check that waits for it."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import given, settings
from hypothesis import strategies as st

from stack.security.contract_check import ContractStatus, check_contract
from stack.security.ocsp import (
    LocalOcspResponder,
    OcspCache,
    OcspError,
    OcspStale,
    OcspStatus,
    StaticOcspResponses,
    check_ocsp_response,
    ocsp_request,
)
from stack.security.ocsp_http import OcspFetcher, OcspFetchError, fetch_ocsp, ocsp_url, serve_ocsp
from tests.unit.test_contract_check import NOW, MoChain, issue, make_chain

HOUR = dt.timedelta(hours=1)
OCSP_SIGNING = ExtendedKeyUsageOID.OCSP_SIGNING


@pytest.fixture(scope="module", params=["secp521r1", "ed448", "secp256r1"])
def chain(request: pytest.FixtureRequest) -> MoChain:
    return make_chain(request.param)


@pytest.fixture(scope="module")
def p521() -> MoChain:
    return make_chain("secp521r1")


def _status(response: bytes) -> ocsp.OCSPResponseStatus:
    return ocsp.load_der_ocsp_response(response).response_status


def test_the_responder_says_good_then_revoked_from_the_revocation_time(chain: MoChain) -> None:
    responder = chain.local_responder()
    leaf, issuer = chain.leaf.cert, chain.sub2.cert
    assert check_ocsp_response(responder.response_for(leaf, NOW), leaf, issuer, NOW) is OcspStatus.GOOD
    responder.revoke(leaf.serial_number, NOW + HOUR, x509.ReasonFlags.key_compromise)
    assert check_ocsp_response(responder.response_for(leaf, NOW), leaf, issuer, NOW) is OcspStatus.GOOD
    later = NOW + 2 * HOUR
    revoked = responder.response_for(leaf, later)
    assert check_ocsp_response(revoked, leaf, issuer, later) is OcspStatus.REVOKED
    single = ocsp.load_der_ocsp_response(revoked)
    assert single.revocation_time_utc == NOW + HOUR and single.revocation_reason is x509.ReasonFlags.key_compromise
    assert single.certificates == [chain.responder.cert]


def test_a_request_is_answered_for_its_cert_id_and_other_issuers_are_unknown(p521: MoChain) -> None:
    responder = p521.local_responder()
    leaf, sub2 = p521.leaf.cert, p521.sub2.cert
    for algorithm in (hashes.SHA1(), hashes.SHA256()):
        request = ocsp.OCSPRequestBuilder().add_certificate(leaf, sub2, algorithm).build()
        answer = responder.respond(request.public_bytes(serialization.Encoding.DER), NOW)
        assert check_ocsp_response(answer, leaf, sub2, NOW) is OcspStatus.GOOD
    # A certificate sub-CA 2 did not issue: unknown (and signed by a responder its issuer never authorised).
    foreign = responder.respond(ocsp_request(p521.sub2.cert, p521.sub1.cert), NOW)
    assert ocsp.load_der_ocsp_response(foreign).certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    with pytest.raises(OcspError, match="signed neither"):
        check_ocsp_response(foreign, p521.sub2.cert, p521.sub1.cert, NOW)
    unknown = ocsp.load_der_ocsp_response(responder.response_for(sub2, NOW))
    assert unknown.certificate_status is ocsp.OCSPCertStatus.UNKNOWN


_SMALL = make_chain("secp256r1")
_RESPONDER = _SMALL.local_responder()
_REQUEST = ocsp_request(_SMALL.leaf.cert, _SMALL.sub2.cert)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.integers(0, len(_REQUEST) - 1).map(lambda n: _REQUEST[:n]))
def test_a_malformed_request_gets_malformed_request_never_an_exception(data: bytes) -> None:
    assert _status(_RESPONDER.respond(data, NOW)) is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_garbage_request_bytes_are_malformed(p521: MoChain) -> None:
    request = ocsp_request(p521.leaf.cert, p521.sub2.cert)
    name_hash = ocsp.load_der_ocsp_request(request).issuer_name_hash
    # The same request with a 19-byte SHA-1 name hash: each enclosing SEQUENCE (short lengths at 1, 3, .., 9) shrinks.
    short = bytearray(request.replace(b"\x04\x14" + name_hash, b"\x04\x13" + name_hash[:19]))
    for at in (1, 3, 5, 7, 9):
        short[at] -= 1
    assert len(ocsp.load_der_ocsp_request(bytes(short)).issuer_name_hash) == 19
    for data in (b"", b"GET / HTTP/1.1", p521.leaf.der, bytes(short)):
        assert _status(p521.local_responder().respond(data, NOW)) is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_a_response_signed_by_the_issuer_itself_is_accepted(p521: MoChain) -> None:
    by_issuer = LocalOcspResponder(p521.sub2.cert, p521.sub2.key, p521.sub2.cert)
    response = by_issuer.response_for(p521.leaf.cert, NOW)
    assert ocsp.load_der_ocsp_response(response).certificates == []
    assert check_ocsp_response(response, p521.leaf.cert, p521.sub2.cert, NOW) is OcspStatus.GOOD


def test_responses_that_cannot_be_relied_on_raise(p521: MoChain) -> None:
    leaf, sub2 = p521.leaf.cert, p521.sub2.cert
    no_eku = issue("MO OCSP without EKU", p521.key(), p521.sub2, ca=False)
    tls = issue("MO TLS", p521.key(), p521.sub2, ca=False, eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    elsewhere = issue("MO OCSP of sub-CA 1", p521.key(), p521.sub1, ca=False, eku=[OCSP_SIGNING])
    old = issue("MO OCSP old", p521.key(), p521.sub2, ca=False, eku=[OCSP_SIGNING], valid=(NOW - 9 * HOUR, NOW - HOUR))
    for responder in (no_eku, tls, elsewhere, old):
        forged = LocalOcspResponder(responder.cert, responder.key, sub2).response_for(leaf, NOW)
        with pytest.raises(OcspError, match="signed neither"):
            check_ocsp_response(forged, leaf, sub2, NOW)
    good = p521.local_responder().response_for(leaf, NOW)
    by_issuer = LocalOcspResponder(sub2, p521.sub2.key, sub2).response_for(leaf, NOW)
    tampered = bytearray(by_issuer)
    tampered[-5] ^= 0x01  # the signature ends the response when no certificate follows it
    with pytest.raises(OcspError, match="does not verify"):
        check_ocsp_response(bytes(tampered), leaf, sub2, NOW)
    with pytest.raises(OcspError, match="says nothing"):
        check_ocsp_response(good, p521.contract().cert, sub2, NOW)
    with pytest.raises(OcspError, match="not an OCSP response"):
        check_ocsp_response(b"\x30\x00", leaf, sub2, NOW)
    unauthorized = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
    with pytest.raises(OcspError, match="UNAUTHORIZED"):
        check_ocsp_response(unauthorized.public_bytes(serialization.Encoding.DER), leaf, sub2, NOW)


def test_the_update_window_allows_a_small_skew_only(p521: MoChain) -> None:
    leaf, sub2 = p521.leaf.cert, p521.sub2.cert
    response = p521.local_responder().response_for(leaf, NOW, validity=HOUR)
    minute = dt.timedelta(minutes=1)
    assert check_ocsp_response(response, leaf, sub2, NOW - 4 * minute) is OcspStatus.GOOD
    assert check_ocsp_response(response, leaf, sub2, NOW + HOUR + 4 * minute) is OcspStatus.GOOD
    with pytest.raises(OcspError, match="not valid yet"):
        check_ocsp_response(response, leaf, sub2, NOW - 6 * minute)
    with pytest.raises(OcspStale):
        check_ocsp_response(response, leaf, sub2, NOW + HOUR + 6 * minute)


def test_static_responses_from_files(p521: MoChain, tmp_path: Path) -> None:
    responder = p521.local_responder()
    revoked = p521.contract()
    responder.revoke(revoked.cert.serial_number, NOW - HOUR)
    paths = []
    for i, cert in enumerate((p521.leaf.cert, revoked.cert)):
        paths.append(tmp_path / f"r{i}.der")
        paths[-1].write_bytes(responder.response_for(cert, NOW))
    static = StaticOcspResponses.load(paths)
    assert static.status(p521.leaf.cert, p521.sub2.cert, NOW) is OcspStatus.GOOD
    assert static.status(revoked.cert, p521.sub2.cert, NOW) is OcspStatus.REVOKED
    assert static.status(p521.contract().cert, p521.sub2.cert, NOW) is OcspStatus.UNKNOWN
    assert static.status(p521.leaf.cert, p521.sub2.cert, NOW + 3 * dt.timedelta(days=1)) is OcspStatus.UNKNOWN
    (tmp_path / "junk.der").write_bytes(b"junk")
    with pytest.raises(OcspError, match="junk.der"):
        StaticOcspResponses.load([tmp_path / "junk.der"])
    with pytest.raises(OcspError, match="missing.der"):
        StaticOcspResponses.load([tmp_path / "missing.der"])


def test_the_cache_wants_what_it_lacks_and_what_went_stale(p521: MoChain) -> None:
    cache = OcspCache(retry_after=HOUR)
    leaf, sub2 = p521.leaf.cert, p521.sub2.cert
    assert cache.status(leaf, sub2, NOW) is None
    assert cache.wanted() == [(leaf, sub2)] and cache.wanted() == []
    cache.put(leaf, sub2, p521.local_responder().response_for(leaf, NOW, validity=HOUR))
    assert cache.status(leaf, sub2, NOW) is OcspStatus.GOOD
    assert cache.status(leaf, sub2, NOW + 2 * HOUR) is None and cache.wanted() == [(leaf, sub2)]
    cache.fail(leaf, sub2, "no route", NOW)
    assert cache.status(leaf, sub2, NOW) is OcspStatus.UNKNOWN and cache.failure(leaf, sub2) == "no route"
    assert cache.wanted() == []
    assert cache.status(leaf, sub2, NOW + 2 * HOUR) is None and cache.wanted() == [(leaf, sub2)]
    cache.put(leaf, sub2, b"garbage")
    assert cache.status(leaf, sub2, NOW) is OcspStatus.UNKNOWN


# The HTTP edge: a real server on 127.0.0.1 on a free port; server, fetcher and checks all read the fixed clock NOW.


@asynccontextmanager
async def _server(responder: LocalOcspResponder) -> AsyncIterator[str]:
    server = await serve_ocsp(responder, "127.0.0.1", 0, clock=lambda: NOW)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def _raw(base: str, data: bytes) -> bytes:
    """Send `data`, half-close, read the answer to its end (b"reset" when the server reset the connection)."""
    parts = urllib.parse.urlsplit(base)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(data)
        writer.write_eof()
        await writer.drain()
        return await reader.read()
    except ConnectionResetError:
        return b"reset"
    finally:
        writer.close()


def _body(answer: bytes) -> bytes:
    return answer.partition(b"\r\n\r\n")[2]


def _run(scenario: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(scenario(), 60)

    asyncio.run(bounded())


def test_post_and_get_are_answered_and_garbage_gets_an_http_error(p521: MoChain) -> None:
    leaf, sub2 = p521.leaf.cert, p521.sub2.cert

    async def scenario() -> None:
        responder = p521.local_responder()
        responder.revoke(leaf.serial_number, NOW - HOUR)
        request = ocsp_request(leaf, sub2)
        # One request whose base64 holds a "/", as GET paths from clients that do not URL-encode it have.
        slashed = next(
            r for r in (ocsp_request(p521.contract().cert, sub2) for _ in range(50)) if b"/" in base64.b64encode(r)
        )
        async with _server(responder) as base:
            answer = await fetch_ocsp(base + "/ocsp", request, timeout=10)
            assert check_ocsp_response(answer, leaf, sub2, NOW) is OcspStatus.REVOKED
            encoded = base64.b64encode(request).decode()
            for path in (f"/{urllib.parse.quote(encoded, safe='')}", f"/ocsp/{encoded}"):
                got = await _raw(base, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                assert got.startswith(b"HTTP/1.1 200 ") and b"application/ocsp-response" in got
                assert check_ocsp_response(_body(got), leaf, sub2, NOW) is OcspStatus.REVOKED
            got = await _raw(base, f"GET /ocsp/{base64.b64encode(slashed).decode()} HTTP/1.1\r\n\r\n".encode())
            single = ocsp.load_der_ocsp_response(_body(got))
            assert single.serial_number == ocsp.load_der_ocsp_request(slashed).serial_number
            bad = {
                b"nonsense\r\n\r\n": b"400",
                b"GET / HTTP/1.1\r\n\r\n": b"400",
                b"GET /!!! HTTP/1.1\r\n\r\n": b"400",
                b"GET / HTTP/2\r\n\r\n": b"400",
                b"PUT / HTTP/1.1\r\n\r\n": b"405",
                b"POST / HTTP/1.1\r\nContent-Type: application/ocsp-request\r\n\r\n": b"400",
                b"POST / HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc": b"400",
                b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n": b"413",
                b"GET / HTTP/1.1\r\nbroken header\r\n\r\n": b"400",
                b"\xff\xfe\r\n\r\n": b"400",
            }
            for data, status in bad.items():
                got = await _raw(base, data)
                assert got.startswith(b"HTTP/1.1 " + status + b" "), (data[:40], got[:40])
            # A head over the limit: 400, or a reset when the server closes on the unread rest.
            got = await _raw(base, b"GET / HTTP/1.1\r\nX: " + b"a" * 10000 + b"\r\n\r\n")
            assert got.startswith(b"HTTP/1.1 400 ") or got in (b"reset", b"")
            junk = b"POST / HTTP/1.1\r\nContent-Type: application/ocsp-request\r\nContent-Length: 4\r\n\r\njunk"
            assert _status(_body(await _raw(base, junk))) is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
            assert await _raw(base, b"POST / HTTP/1.1\r\nContent-Le") == b""  # half a request, then EOF
            again = await fetch_ocsp(base + "/", request, timeout=10)  # the server lives on
            assert check_ocsp_response(again, leaf, sub2, NOW) is OcspStatus.REVOKED

    _run(scenario)


def test_fetch_errors_are_typed() -> None:
    async def scenario() -> None:
        release = asyncio.Event()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await release.wait()
            writer.close()

        async def not_found(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        servers = [await asyncio.start_server(handler, "127.0.0.1", 0) for handler in (silent, not_found)]
        ports = [server.sockets[0].getsockname()[1] for server in servers]
        try:
            with pytest.raises(OcspFetchError, match="no answer"):
                await fetch_ocsp(f"http://127.0.0.1:{ports[0]}/", b"req", timeout=0.2)
            with pytest.raises(OcspFetchError, match="HTTP 404"):
                await fetch_ocsp(f"http://127.0.0.1:{ports[1]}/", b"req", timeout=10)
            for url in ("https://127.0.0.1/", "ftp://x/", "http:///nohost", "http://127.0.0.1:99999/"):
                with pytest.raises(OcspFetchError):
                    await fetch_ocsp(url, b"req", timeout=10)
        finally:
            release.set()
            for server in servers:
                server.close()
                await server.wait_closed()

    _run(scenario)


def test_the_fetcher_fills_the_cache_while_the_contract_check_waits() -> None:
    chain = make_chain("ed448")

    async def scenario() -> None:
        responder = chain.local_responder()
        async with _server(responder) as base:
            good = issue("EMAID-GOOD", chain.key(), chain.sub2, ca=False, ocsp_url=base + "/ocsp")
            revoked = issue("EMAID-REVOKED", chain.key(), chain.sub2, ca=False, ocsp_url=base + "/ocsp")
            responder.revoke(revoked.cert.serial_number, NOW - HOUR)
            assert ocsp_url(good.cert) == base + "/ocsp" and ocsp_url(chain.sub2.cert) is None
            cache = OcspCache()
            fetcher = OcspFetcher(cache, timeout=10, clock=lambda: NOW)
            roots = [chain.root.cert]
            for leaf, final in ((good, ContractStatus.OK), (revoked, ContractStatus.REVOKED)):
                first = check_contract(leaf.der, chain.sub_ders, roots, NOW, revocation=cache)
                assert first.status is ContractStatus.PENDING, first.reason
                await fetcher.fetch_wanted()
                second = check_contract(leaf.der, chain.sub_ders, roots, NOW, revocation=cache)
                assert second.status is final, second.reason
            # The sub-CAs carry no OCSP URL: their fetch failed, and the cache says why.
            assert cache.failure(chain.sub2.cert, chain.sub1.cert) == "no OCSP URL in the certificate"
            assert cache.status(good.cert, chain.sub2.cert, NOW) is OcspStatus.GOOD

    _run(scenario)


def test_an_unreachable_responder_is_recorded_as_a_failure(p521: MoChain) -> None:
    async def scenario() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        leaf = issue("EMAID-NOWHERE", p521.key(), p521.sub2, ca=False, ocsp_url=f"http://127.0.0.1:{port}/")
        cache = OcspCache()
        await OcspFetcher(cache, timeout=5, clock=lambda: NOW).fetch(leaf.cert, p521.sub2.cert)
        assert cache.status(leaf.cert, p521.sub2.cert, NOW) is OcspStatus.UNKNOWN
        assert "127.0.0.1" in (cache.failure(leaf.cert, p521.sub2.cert) or "")

    _run(scenario)


def test_a_revocation_does_not_go_out_of_date(p521: MoChain) -> None:
    """A response past its nextUpdate no longer vouches for a good certificate, but a revocation stays one."""
    leaf, sub2 = p521.leaf.cert, p521.sub2.cert
    responder = p521.local_responder()
    responder.revoke(leaf.serial_number, NOW - HOUR)
    old = responder.response_for(leaf, NOW, validity=HOUR)
    assert check_ocsp_response(old, leaf, sub2, NOW + 10 * HOUR) is OcspStatus.REVOKED
    good = p521.local_responder().response_for(leaf, NOW, validity=HOUR)
    with pytest.raises(OcspStale):
        check_ocsp_response(good, leaf, sub2, NOW + 10 * HOUR)
