"""OCSP over HTTP (RFC 6960 appendix A.1) on asyncio streams, stdlib only: a server for a `LocalOcspResponder`,
a client, and `OcspFetcher`, which fills an `OcspCache` from the OCSP URL in a certificate's AIA extension while
the SECC answers Ongoing.

Minimal HTTP/1.1: one request per connection, bodies by Content-Length, bounded sizes, `Connection: close`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

from stack.security.ocsp import LocalOcspResponder, OcspCache, OcspError, ocsp_request

MAX_HEADER = 8 * 1024
# An OCSP request is ~100 bytes; a response with a responder certificate a few kilobytes.
MAX_REQUEST = 16 * 1024
MAX_RESPONSE = 256 * 1024
READ_TIMEOUT = 10.0
_REQUEST_TYPE = "application/ocsp-request"
_RESPONSE_TYPE = "application/ocsp-response"
_REASONS = {200: "OK", 400: "Bad Request", 405: "Method Not Allowed", 413: "Content Too Large"}

Clock = Callable[[], dt.datetime]


class OcspFetchError(OcspError):
    """No OCSP response came back: timeout, connection, HTTP status, or a URL this client cannot use."""


class _BadRequest(Exception):
    def __init__(self, status: int, why: str):
        super().__init__(why)
        self.status = status


@dataclass(frozen=True)
class _Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def serve_ocsp(
    responder: LocalOcspResponder,
    host: str,
    port: int,
    *,
    clock: Clock = _utc_now,
    read_timeout: float = READ_TIMEOUT,
) -> asyncio.Server:
    """A started server answering OCSP POST and GET requests at any path; port 0 picks a free one."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(_read_request(reader), read_timeout)
            der = _request_der(request)
            _write(writer, 200, responder.respond(der, clock()), _RESPONSE_TYPE)
        except _BadRequest as bad:
            _write(writer, bad.status, f"{bad}\n".encode(), "text/plain")
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    return await asyncio.start_server(handle, host, port, limit=MAX_HEADER)


async def _read_request(reader: asyncio.StreamReader) -> _Request:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise _BadRequest(400, "request head too large") from None
    try:
        lines = head.decode("ascii").split("\r\n")
        method, target, version = lines[0].split(" ")
    except (UnicodeDecodeError, ValueError):
        raise _BadRequest(400, "not an HTTP request") from None
    if not version.startswith("HTTP/1."):
        raise _BadRequest(400, f"unsupported version {version}")
    headers = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequest(400, "malformed header")
            headers[name.strip().lower()] = value.strip()
    body = b""
    if method == "POST":
        length = headers.get("content-length", "")
        if not length.isdigit():
            raise _BadRequest(400, "POST without Content-Length")
        if int(length) > MAX_REQUEST:
            raise _BadRequest(413, f"body over {MAX_REQUEST} bytes")
        body = await reader.readexactly(int(length))
    return _Request(method, target, headers, body)


def _request_der(request: _Request) -> bytes:
    """The DER OCSP request a POST carries, or a GET has base64-encoded as the last part(s) of its path."""
    if request.method == "POST":
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != _REQUEST_TYPE:
            raise _BadRequest(400, f"Content-Type is not {_REQUEST_TYPE}")
        return request.body
    if request.method != "GET":
        raise _BadRequest(405, f"{request.method} is not GET or POST")
    path = urllib.parse.urlsplit(request.target).path
    if len(path) > MAX_REQUEST:
        raise _BadRequest(413, "path too long")
    # base64 may hold "/" (RFC 6960 A.1 wants it URL-encoded, not every client does): of the suffixes of the path
    # after each "/", the longest that decodes to an OCSP request; else the shortest that is base64 at all.
    decoded = []
    for i, char in enumerate(path):
        if char == "/":
            with contextlib.suppress(binascii.Error, ValueError):
                decoded.append(base64.b64decode(urllib.parse.unquote(path[i + 1 :]), validate=True))
    decoded = [der for der in decoded if der]
    for der in decoded:
        with contextlib.suppress(ValueError):
            ocsp.load_der_ocsp_request(der)
            return der
    if not decoded:
        raise _BadRequest(400, "no base64 OCSP request in the path")
    return decoded[-1]


def _write(writer: asyncio.StreamWriter, status: int, body: bytes, content_type: str) -> None:
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode("ascii") + body)


async def fetch_ocsp(url: str, request_der: bytes, timeout: float) -> bytes:
    """POST `request_der` to an http:// OCSP URL and return the response body; OcspFetchError on any failure."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise OcspFetchError(f"not an http:// URL: {url!r}")
    try:
        port = parts.port or 80
    except ValueError:
        raise OcspFetchError(f"bad port in {url!r}") from None
    host_header = parts.netloc.rpartition("@")[2]
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\nContent-Type: {_REQUEST_TYPE}\r\n"
        f"Accept: {_RESPONSE_TYPE}\r\nContent-Length: {len(request_der)}\r\nConnection: close\r\n\r\n"
    )
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(parts.hostname, port, limit=MAX_HEADER)
            try:
                writer.write(head.encode("ascii") + request_der)
                await writer.drain()
                return await _read_response(reader, url)
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
    except TimeoutError:
        raise OcspFetchError(f"no answer from {url} within {timeout} s") from None
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, UnicodeEncodeError) as exc:
        raise OcspFetchError(f"{url}: {type(exc).__name__}: {exc}") from None


async def _read_response(reader: asyncio.StreamReader, url: str) -> bytes:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status_line = head[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/1.") or not status_line[1].isdigit():
        raise OcspFetchError(f"{url}: not an HTTP response")
    if status_line[1] != "200":
        raise OcspFetchError(f"{url}: HTTP {' '.join(status_line[1:])}")
    headers = dict((n.strip().lower(), v.strip()) for n, _, v in (line.partition(":") for line in head[1:] if line))
    length = headers.get("content-length")
    if length is None:
        body = await reader.read(MAX_RESPONSE + 1)
    elif length.isdigit() and int(length) <= MAX_RESPONSE:
        body = await reader.readexactly(int(length))
    else:
        raise OcspFetchError(f"{url}: Content-Length {length!r} not accepted")
    if len(body) > MAX_RESPONSE:
        raise OcspFetchError(f"{url}: response over {MAX_RESPONSE} bytes")
    return body


def ocsp_url(cert: x509.Certificate) -> str | None:
    """The first OCSP URL of the certificate's AuthorityInformationAccess extension."""
    try:
        access = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    for description in access:
        location = description.access_location
        if description.access_method == AuthorityInformationAccessOID.OCSP and isinstance(
            location, x509.UniformResourceIdentifier
        ):
            return location.value
    return None


class OcspFetcher:
    """Fetches what an `OcspCache` wants (the certificates a contract check found no answer for) from the OCSP URLs
    in their AIA extensions (or from `url`). A failure is recorded in the cache, so the check stops waiting for it."""

    def __init__(
        self, cache: OcspCache, *, timeout: float = 5.0, clock: Clock = _utc_now, url: str | None = None
    ) -> None:
        self.cache = cache
        self._timeout = timeout
        self._clock = clock
        self._url = url  # one responder for every certificate (None: each certificate's AIA OCSP URL)

    async def fetch(self, cert: x509.Certificate, issuer: x509.Certificate) -> None:
        url = self._url or ocsp_url(cert)
        if url is None:
            self.cache.fail(cert, issuer, "no OCSP URL in the certificate", self._clock())
            return
        try:
            self.cache.put(cert, issuer, await fetch_ocsp(url, ocsp_request(cert, issuer), self._timeout))
        except OcspError as exc:
            self.cache.fail(cert, issuer, str(exc), self._clock())

    async def fetch_wanted(self) -> None:
        """Fetch, side by side, every certificate the cache wants now."""
        await asyncio.gather(*(self.fetch(cert, issuer) for cert, issuer in self.cache.wanted()))
