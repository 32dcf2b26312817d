"""The OpenSSL that Python's `ssl` links, reached through ctypes where `ssl` has no API (TLS 1.3 cipher suites,
OCSP stapling): the library (only when it is the same OpenSSL as `ssl`'s) and the `SSL_CTX` of a context (only when
its pointer proves to be the right one). Where either is out of reach, the callers raise `TlsConfigError`."""

from __future__ import annotations

import _ssl
import ctypes
import functools
import ssl


class TlsConfigError(Exception):
    """A TLS context cannot be configured as asked."""


@functools.cache
def libssl() -> ctypes.CDLL | None:
    """The libssl the `_ssl` module is linked against, or None when its symbols cannot be reached."""
    # dlsym on the _ssl extension's handle also searches the libraries it loaded, i.e. exactly its libssl.
    try:
        lib = ctypes.CDLL(getattr(_ssl, "__file__", None))
        lib.OpenSSL_version_num.restype = ctypes.c_ulong
        lib.OpenSSL_version_num.argtypes = []
        lib.SSL_CTX_get_options.restype = ctypes.c_uint64
        lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_set_ciphersuites.restype = ctypes.c_int
        lib.SSL_CTX_set_ciphersuites.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    except (OSError, AttributeError):
        return None
    if lib.OpenSSL_version_num() != ssl.OPENSSL_VERSION_NUMBER:
        return None
    return lib


def ssl_ctx_pointer(ctx: ssl.SSLContext, lib: ctypes.CDLL) -> int | None:
    # CPython's PySSLContext starts with PyObject_HEAD followed by `SSL_CTX *ctx` (3.7 to 3.13 at least).
    if type(ctx).__basicsize__ < object.__basicsize__ + ctypes.sizeof(ctypes.c_void_p):
        return None
    pointer = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not pointer or lib.SSL_CTX_get_options(pointer) != int(ctx.options):
        return None
    return pointer
