"""TLS contexts for ISO 15118-20 (PROTOCOL.md section 8): TLS 1.3 only, mutual authentication.

The SECC presents the SECC chain and requires a vehicle chain that verifies against the OEM root; the EVCC
presents the vehicle chain and verifies the SECC chain against the V2G root.

Python 3.11's `ssl` cannot set the TLS 1.3 cipher suites ([V2G20-1856] asks for exactly TLS_AES_256_GCM_SHA384
then TLS_CHACHA20_POLY1305_SHA256; OpenSSL 3 also enables TLS_AES_128_GCM_SHA256 by default).
`set_tls13_ciphersuites` calls OpenSSL's `SSL_CTX_set_ciphersuites` on the context's own `SSL_CTX` through
ctypes, after proving it holds the right pointer of the same OpenSSL; where that is impossible the contexts keep
OpenSSL's default list, with a warning. The key exchange group is pinned to the leaf's profile with
`set_ecdh_curve` (secp521r1 for P-521, X448 for Ed448), which OpenSSL 3 turns into a one-group list for TLS 1.3 too.
OCSP stapling of the SECC leaf (`stack.security.ocsp_staple`) goes through the same access to OpenSSL.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path

from . import openssl
from .ocsp_staple import request_ocsp, staple_ocsp
from .openssl import TlsConfigError
from .pki import PkiFileInvalid, PkiFileMissing, PkiPaths, TlsCredentials, load_certificates, profile_of

log = logging.getLogger(__name__)

TLS13_CIPHERSUITES = ("TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
# The -2 compatibility suite (ECDH-ECDSA-AES128-SHA256 is gone from OpenSSL 3).
TLS12_CIPHERS = "ECDHE-ECDSA-AES128-SHA256"
# OpenSSL group names of the key exchange group matching each leaf profile (EVerest pins the group to the leaf curve
# because some EVs abort otherwise; the -20 Ed448 profile exchanges keys with X448).
ECDH_GROUPS = {"secp521r1": "secp521r1", "secp256r1": "prime256v1", "ed448": "X448"}

Pki = PkiPaths | TlsCredentials


def tls13_ciphersuites_settable() -> bool:
    """Whether `set_tls13_ciphersuites` works in this interpreter."""
    lib = openssl.libssl()
    return lib is not None and openssl.ssl_ctx_pointer(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), lib) is not None


def set_tls13_ciphersuites(ctx: ssl.SSLContext, suites: Sequence[str] = TLS13_CIPHERSUITES) -> None:
    """Restrict the TLS 1.3 cipher suites of `ctx` to `suites`, in that preference order."""
    lib = openssl.libssl()
    pointer = openssl.ssl_ctx_pointer(ctx, lib) if lib is not None else None
    if lib is None or pointer is None:
        raise TlsConfigError("this Python's ssl module gives no access to SSL_CTX_set_ciphersuites")
    if not lib.SSL_CTX_set_ciphersuites(pointer, ":".join(suites).encode("ascii")):
        raise TlsConfigError(f"OpenSSL rejected the TLS 1.3 cipher suites {list(suites)}")
    active = [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.3"]
    if active != list(suites):
        raise TlsConfigError(f"TLS 1.3 cipher suites are {active} after setting {list(suites)}")


def _credentials(pki: Pki, server_side: bool) -> TlsCredentials:
    if isinstance(pki, TlsCredentials):
        return pki
    return pki.secc_credentials() if server_side else pki.evcc_credentials()


def _load(ctx: ssl.SSLContext, creds: TlsCredentials) -> None:
    for path in (creds.chain, creds.key, creds.trust_roots):
        if not Path(path).is_file():
            raise PkiFileMissing(f"missing TLS file {path}")

    def no_password() -> bytes:
        # Without a callback OpenSSL would prompt for a pass phrase on the terminal.
        raise PkiFileInvalid(f"{creds.key} is encrypted and no key password was given")

    try:
        ctx.load_cert_chain(creds.chain, creds.key, password=creds.key_password or no_password)
    except ssl.SSLError as exc:
        raise PkiFileInvalid(f"cannot load {creds.chain} with key {creds.key}: {exc}") from None
    try:
        ctx.load_verify_locations(cafile=creds.trust_roots)
    except ssl.SSLError as exc:
        raise PkiFileInvalid(f"cannot load trusted roots {creds.trust_roots}: {exc}") from None


def _configure(
    ctx: ssl.SSLContext,
    creds: TlsCredentials,
    *,
    allow_tls12: bool,
    keylog_file: Path | str | None,
    ecdh_group: str | None,
) -> None:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2 if allow_tls12 else ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    if allow_tls12:
        ctx.set_ciphers(TLS12_CIPHERS)
    try:
        set_tls13_ciphersuites(ctx)
    except TlsConfigError as exc:
        log.warning("%s: keeping OpenSSL's default TLS 1.3 cipher suites", exc)
    _load(ctx, creds)
    if ecdh_group == "auto":
        ecdh_group = ECDH_GROUPS[profile_of(load_certificates(Path(creds.chain))[0])]
    if ecdh_group is not None:
        # With OpenSSL 3 this is SSL_CTX_set1_groups with the one group: the only one offered or accepted.
        try:
            ctx.set_ecdh_curve(ecdh_group)
        except (ValueError, ssl.SSLError) as exc:
            raise TlsConfigError(f"ECDHE group {ecdh_group!r}: {exc}") from None
    if keylog_file is not None:
        ctx.keylog_filename = str(keylog_file)


def server_context(
    pki: Pki,
    *,
    require_client_cert: bool = True,
    allow_tls12: bool = False,
    keylog_file: Path | str | None = None,
    ecdh_group: str | None = "auto",
    ocsp_staple: Callable[[], bytes | None] | None = None,
) -> ssl.SSLContext:
    """The SECC's context.

    `require_client_cert=False` still verifies a certificate the EV sends (-2 and private environments).
    It applies to TLS 1.2 too (the stdlib has no ClientHello callback to require it for 1.3 only).
    `ecdh_group`: "auto" pins the group matching the leaf curve, None keeps OpenSSL's groups, else an OpenSSL name.
    `keylog_file` appends TLS secrets in SSLKEYLOGFILE format: testing only.
    `ocsp_staple`: staples the DER OCSP response it returns about the SECC leaf (see `ocsp_staple.staple_ocsp`).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    # The server's order decides ([V2G20-1856] lists TLS_AES_256_GCM_SHA384 first); CPython sets it, we insist.
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    _configure(ctx, _credentials(pki, True), allow_tls12=allow_tls12, keylog_file=keylog_file, ecdh_group=ecdh_group)
    if ocsp_staple is not None:
        staple_ocsp(ctx, ocsp_staple)
    return ctx


def client_context(
    pki: Pki,
    *,
    allow_tls12: bool = False,
    keylog_file: Path | str | None = None,
    check_hostname: bool = False,
    ecdh_group: str | None = "auto",
    request_ocsp_staple: bool = False,
) -> ssl.SSLContext:
    """The EVCC's context: always verifies the SECC chain; host names only on request (SECCs have none).

    `request_ocsp_staple` asks the SECC for its stapled OCSP response (read it with `ocsp_staple.stapled_status`).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    _configure(ctx, _credentials(pki, False), allow_tls12=allow_tls12, keylog_file=keylog_file, ecdh_group=ecdh_group)
    if request_ocsp_staple:
        request_ocsp(ctx)
    return ctx
