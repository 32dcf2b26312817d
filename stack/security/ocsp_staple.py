"""OCSP stapling on the stdlib's TLS contexts (RFC 6066 section 8 status_request; RFC 8446 section 4.4.2.1).

The SECC staples the OCSP response about its own leaf into the handshake, so an EVCC without a backend connection
learns the leaf is not revoked; the EVCC asks for it and reads it. Python's `ssl` has no OCSP API: as
`stack.security.tls.set_tls13_ciphersuites` does, these functions call the OpenSSL that `_ssl` links through
ctypes, on the `SSL_CTX` and `SSL` pointers of the stdlib objects, after proving each pointer is the right one
(`TlsConfigError` where that is impossible, never a guess).

Only the leaf's response is stapled (OpenSSL's status_request, not the multi-response status_request_v2).
"""

from __future__ import annotations

import _ssl
import ctypes
import datetime as dt
import functools
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509

from . import openssl
from .ocsp import DEFAULT_SKEW, OcspError, OcspStatus, check_ocsp_response
from .openssl import TlsConfigError

log = logging.getLogger(__name__)

OcspSource = Callable[[], bytes | None]
"""Called at each handshake that asks for a staple: the DER response to staple, or None. Runs inside the
handshake, in the thread doing it (the event loop's, with asyncio): keep it fast, no I/O, and thread-safe."""

# /usr/include/openssl/ssl.h and tls1.h (OpenSSL 1.1.0 to 3.x)
_SET_STATUS_CB = 63  # SSL_CTRL_SET_TLSEXT_STATUS_REQ_CB
_SET_STATUS_TYPE = 65  # SSL_CTRL_SET_TLSEXT_STATUS_REQ_TYPE
_GET_OCSP_RESPONSE = 70  # SSL_CTRL_GET_TLSEXT_STATUS_REQ_OCSP_RESP
_SET_OCSP_RESPONSE = 71  # SSL_CTRL_SET_TLSEXT_STATUS_REQ_OCSP_RESP
_GET_STATUS_TYPE = 127  # SSL_CTRL_GET_TLSEXT_STATUS_REQ_TYPE
_GET_STATUS_CB = 128  # SSL_CTRL_GET_TLSEXT_STATUS_REQ_CB
_STATUSTYPE_OCSP = 1  # TLSEXT_STATUSTYPE_ocsp
_ERR_OK = 0  # SSL_TLSEXT_ERR_OK: send the response set on the SSL
_ERR_NOACK = 3  # SSL_TLSEXT_ERR_NOACK: send no response

# int (*cb)(SSL *s, void *arg): OpenSSL calls it on the server when a ClientHello carries status_request.
_StatusCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
# Where a context keeps its callbacks alive: as long as the context, which every socket made from it holds.
_KEEP_ALIVE = "_ocsp_status_callbacks"


@dataclass(frozen=True)
class _Functions:
    """The OpenSSL functions used here, with prototypes of their own (the shared CDLL's stay as tls.py set them)."""

    ctx_callback_ctrl: Callable[..., int]
    ctx_ctrl: Callable[..., int]
    ssl_ctrl: Callable[..., int]
    get_ssl_ctx: Callable[..., int | None]
    malloc: Callable[..., int | None]
    free: Callable[..., None]


@functools.cache
def _bind(lib: ctypes.CDLL) -> _Functions | None:
    void_p, c_long, c_int = ctypes.c_void_p, ctypes.c_long, ctypes.c_int
    try:
        return _Functions(
            ctypes.CFUNCTYPE(c_long, void_p, c_int, _StatusCallback)(("SSL_CTX_callback_ctrl", lib)),
            ctypes.CFUNCTYPE(c_long, void_p, c_int, c_long, void_p)(("SSL_CTX_ctrl", lib)),
            ctypes.CFUNCTYPE(c_long, void_p, c_int, c_long, void_p)(("SSL_ctrl", lib)),
            ctypes.CFUNCTYPE(void_p, void_p)(("SSL_get_SSL_CTX", lib)),
            ctypes.CFUNCTYPE(void_p, ctypes.c_size_t, ctypes.c_char_p, c_int)(("CRYPTO_malloc", lib)),
            ctypes.CFUNCTYPE(None, void_p, ctypes.c_char_p, c_int)(("CRYPTO_free", lib)),
        )
    except AttributeError:
        return None


def _functions() -> _Functions:
    lib = openssl.libssl()
    functions = _bind(lib) if lib is not None else None
    if functions is None:
        raise TlsConfigError("this Python's ssl module gives no access to OpenSSL's OCSP stapling functions")
    return functions


def _ctx_pointer(context: ssl.SSLContext) -> int:
    lib = openssl.libssl()
    pointer = openssl.ssl_ctx_pointer(context, lib) if lib is not None else None
    if pointer is None:
        raise TlsConfigError("cannot reach the SSL_CTX of this ssl.SSLContext for OCSP stapling")
    return pointer


def ocsp_stapling_available() -> bool:
    """Whether `staple_ocsp`, `request_ocsp` and `stapled_response` work in this interpreter."""
    try:
        _functions()
        _ctx_pointer(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    except TlsConfigError:
        return False
    return True


def staple_ocsp(context: ssl.SSLContext, response: OcspSource) -> None:
    """Make the server `context` staple what `response()` returns to every client that asks (none when None).

    A `response` that raises or returns something else than bytes staples nothing (logged); the handshake goes on.
    Calling it again on the same context replaces the source. TlsConfigError when OpenSSL cannot be reached.
    """
    # On a client context OpenSSL calls the same callback to judge the server's response, with other return values.
    _require_side(context, ssl.PROTOCOL_TLS_SERVER)
    functions, pointer = _functions(), _ctx_pointer(context)
    callback = _StatusCallback(functools.partial(_on_status_request, functions, response))
    keep = vars(context).setdefault(_KEEP_ALIVE, [])
    keep.append(callback)  # the replaced ones too: a handshake in another thread may still be inside one
    functions.ctx_callback_ctrl(pointer, _SET_STATUS_CB, callback)
    installed = ctypes.c_void_p()
    functions.ctx_ctrl(pointer, _GET_STATUS_CB, 0, ctypes.byref(installed))
    if installed.value != ctypes.cast(callback, ctypes.c_void_p).value:
        raise TlsConfigError("OpenSSL did not take the OCSP status callback")


def _on_status_request(functions: _Functions, response: OcspSource, ssl_pointer: int | None, _arg: int | None) -> int:
    # An exception must not leave a ctypes callback: OpenSSL would read an undefined return value.
    try:
        der = response()
        if not der:
            return _ERR_NOACK
        if not isinstance(der, bytes):
            raise TypeError(f"the OCSP source returned {type(der).__name__}, not bytes")
        # OpenSSL takes ownership and frees it with the SSL (or when a new response replaces it): no leak.
        buffer = functions.malloc(len(der), b"ocsp_staple", 0)
        if not buffer:
            raise MemoryError("CRYPTO_malloc failed")
        ctypes.memmove(buffer, der, len(der))
        if functions.ssl_ctrl(ssl_pointer, _SET_OCSP_RESPONSE, len(der), buffer) != 1:
            functions.free(buffer, b"ocsp_staple", 0)
            raise TlsConfigError("OpenSSL did not take the OCSP response")
    except Exception:
        log.exception("no OCSP staple in this handshake")
        return _ERR_NOACK
    return _ERR_OK


def request_ocsp(context: ssl.SSLContext) -> None:
    """Make every connection of the client `context` made from now on ask the server for a stapled OCSP response
    (a server that has none still completes the handshake). TlsConfigError when OpenSSL cannot be reached."""
    _require_side(context, ssl.PROTOCOL_TLS_CLIENT)
    functions, pointer = _functions(), _ctx_pointer(context)
    functions.ctx_ctrl(pointer, _SET_STATUS_TYPE, _STATUSTYPE_OCSP, None)
    if functions.ctx_ctrl(pointer, _GET_STATUS_TYPE, 0, None) != _STATUSTYPE_OCSP:
        raise TlsConfigError("OpenSSL did not take the OCSP status request")


def stapled_response(connection: ssl.SSLSocket | ssl.SSLObject) -> bytes | None:
    """The DER OCSP response the server stapled in the handshake of `connection` (an SSLSocket, or the SSLObject
    asyncio's `get_extra_info("ssl_object")` gives), None when it stapled none. Unchecked: see `stapled_status`."""
    functions = _functions()
    ssl_pointer = _ssl_pointer(connection, functions)
    response = ctypes.c_void_p()
    length = functions.ssl_ctrl(ssl_pointer, _GET_OCSP_RESPONSE, 0, ctypes.byref(response))
    if length <= 0 or not response.value:
        return None
    return ctypes.string_at(response.value, length)


def stapled_status(
    connection: ssl.SSLSocket | ssl.SSLObject,
    now: dt.datetime,
    *,
    issuer: x509.Certificate | None = None,
    skew: dt.timedelta = DEFAULT_SKEW,
) -> OcspStatus | None:
    """What the staple says about the server's leaf, checked by `check_ocsp_response`; None without a staple.

    `issuer` defaults to the second certificate of the verified chain. OcspError for a staple that cannot be
    relied on (wrong signer, another certificate, out of date, not OCSP).
    """
    der = stapled_response(connection)
    leaf = connection.getpeercert(binary_form=True)
    if der is None or leaf is None:
        return None
    if issuer is None:
        chain = _verified_chain(connection)
        if len(chain) < 2:
            raise OcspError("the server's verified chain names no issuer of its leaf")
        issuer = chain[1]
    return check_ocsp_response(der, x509.load_der_x509_certificate(leaf), issuer, now, skew=skew)


def _require_side(context: ssl.SSLContext, protocol: ssl._SSLMethod) -> None:
    if context.protocol != protocol:
        raise TlsConfigError(f"OCSP stapling: a {protocol.name} context is needed, not {context.protocol.name}")


def _ssl_pointer(connection: ssl.SSLSocket | ssl.SSLObject, functions: _Functions) -> int:
    inner = getattr(connection, "_sslobj", None)
    if inner is None:
        raise TlsConfigError(f"{type(connection).__name__} has no TLS connection (not connected, or closed)")
    # CPython's PySSLSocket starts with PyObject_HEAD, `PyObject *Socket`, then `SSL *ssl` (3.7 to 3.13 at least).
    offset = object.__basicsize__ + ctypes.sizeof(ctypes.c_void_p)
    if type(inner).__basicsize__ < offset + ctypes.sizeof(ctypes.c_void_p):
        raise TlsConfigError("cannot reach the SSL of this connection")
    pointer = ctypes.c_void_p.from_address(id(inner) + offset).value
    if not pointer or functions.get_ssl_ctx(pointer) != _ctx_pointer(inner.context):
        raise TlsConfigError("cannot reach the SSL of this connection")
    return pointer


def _verified_chain(connection: ssl.SSLSocket | ssl.SSLObject) -> list[x509.Certificate]:
    # Public as `get_verified_chain()` from Python 3.13; the `_ssl` object has it since 3.10.
    get_chain = getattr(getattr(connection, "_sslobj", None), "get_verified_chain", None)
    if get_chain is None:
        raise TlsConfigError("this Python does not give the verified chain: pass the issuer")
    return [x509.load_der_x509_certificate(cert.public_bytes(_ssl.ENCODING_DER)) for cert in get_chain()]
