"""TLS, both roles (tag "tls"): TLS 1.3 only ([V2G20-2356]), the -20 cipher suites ([V2G20-1856]), mutual
authentication against the trusted roots (MV-TLS-MUTUAL) and the key exchange groups of the -20 profiles
(MV-TLS-GROUP). Each case offers the device one TLS variant; the handshake's outcome is the verdict.

The Ed448 profile cases (tag "ed448", MV-TLS-ED448) need the bench's test PKI to be of the ed448 profile, with roots
the device trusts: the tester then presents Ed448 chains and offers X448 only; with another PKI they are inconclusive.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import ssl
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from stack.security.pki import PkiFileInvalid, PkiPaths, TlsCredentials, generate_pki, profile_of
from stack.security.tls import (
    TLS13_CIPHERSUITES,
    client_context,
    server_context,
    set_tls13_ciphersuites,
    tls13_ciphersuites_settable,
)
from stack.session import conduct

from ..bench import Bench
from ..case import Breaker, Case, Needs
from ..driver import Conversation, Fault, Script, Then, play
from ..judges import clean_session, no_violation
from ..stream import HandshakeFailed
from ..trace import Kind, Trace
from ..verdict import Verdict, failed, inconclusive, passed
from .common import tester_ev, tester_evse

TLS_CONTEXT = "tls_context"  # ours.TLS_CONTEXT (ours imports the catalogue: no import back)
AES_256, CHACHA = TLS13_CIPHERSUITES
AES_128 = "TLS_AES_128_GCM_SHA256"
SHORT = {AES_256: "AES256", CHACHA: "CHACHA20"}
ContextFactory = Callable[[PkiPaths], ssl.SSLContext]
OBSERVE_S = 5.0


@functools.cache
def other_pki() -> PkiPaths:
    """A second test PKI (other roots, same P-521 profile): a chain the device must not trust."""
    directory = tempfile.mkdtemp(prefix="mcs-v2g-other-pki-")
    atexit.register(shutil.rmtree, directory, True)
    return generate_pki(Path(directory), profile="secp521r1")


def tls12_only(context: ssl.SSLContext) -> ssl.SSLContext:
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


def with_suites(context: ssl.SSLContext, *suites: str) -> ssl.SSLContext:
    set_tls13_ciphersuites(context, suites)
    return context


def ev_without_certificate(pki: PkiPaths) -> ssl.SSLContext:
    """An EV that verifies the charger but has no certificate of its own."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(cafile=pki.evcc_credentials().trust_roots)
    context.set_ecdh_curve("secp521r1")
    return context


def ev_from_other_root(pki: PkiPaths) -> ssl.SSLContext:
    """An EV presenting a vehicle chain of another root (it verifies the charger as usual)."""
    other = other_pki().evcc_credentials()
    return client_context(TlsCredentials(other.chain, other.key, pki.evcc_credentials().trust_roots))


def charger_from_other_root(pki: PkiPaths) -> ssl.SSLContext:
    """A charger presenting an SECC chain of another root (it verifies the truck as usual)."""
    other = other_pki().secc_credentials()
    return server_context(TlsCredentials(other.chain, other.key, pki.secc_credentials().trust_roots))


def trusting_other_root(make: ContextFactory) -> ContextFactory:
    """Our peer's context that trusts the other PKI's roots too (a peer that does not check the chain's root)."""

    def build(pki: PkiPaths) -> ssl.SSLContext:
        context = make(pki)
        context.load_verify_locations(cafile=other_pki().oem_root_cert)
        context.load_verify_locations(cafile=other_pki().v2g_root_cert)
        return context

    return build


@dataclass(frozen=True)
class Variant:
    """One TLS variant the tester offers, whether the device must refuse it, and our peer that does otherwise."""

    detail: str
    title: str
    tester: Callable[[Bench], ssl.SSLContext]
    refused: bool
    rule: str
    breaker: ContextFactory
    suites: bool = False  # needs the TLS 1.3 suites settable in this Python


def _ours(role: str) -> ContextFactory:
    """Our peer of the device's role: the charger's context when the device is a charger."""
    return server_context if role == "secc" else client_context


def _ours_with(role: str, **variant: object) -> ContextFactory:
    make = _ours(role)
    return lambda pki: make(pki, **variant)  # type: ignore[operator]


def _ours_suites(role: str, *suites: str) -> ContextFactory:
    make = _ours(role)
    return lambda pki: with_suites(make(pki), *suites)


def variants(role: str) -> Iterator[Variant]:
    who = "charger" if role == "secc" else "truck"
    peer = "EV" if role == "secc" else "charger"
    yield Variant(
        "TLS12",
        f"A {peer} offering TLS 1.2 only: the {who} refuses the handshake",
        lambda b: tls12_only(b.context(allow_tls12=True)),
        True,
        conduct.TLS13_ONLY.id,
        _ours_with(role, allow_tls12=True),
    )
    if role == "secc":
        yield Variant(
            "NO-CLIENT-CERT",
            "An EV without a certificate: the charger refuses the connection",
            lambda b: ev_without_certificate(_pki(b)),
            True,
            conduct.TLS_MUTUAL.id,
            _ours_with(role, require_client_cert=False),
        )
    other = ev_from_other_root if role == "secc" else charger_from_other_root
    yield Variant(
        "UNKNOWN-ROOT",
        f"A {peer} whose chain comes from a root the {who} does not trust: refused",
        lambda b: other(_pki(b)),
        True,
        conduct.TLS_MUTUAL.id,
        trusting_other_root(_ours(role)),
    )
    for group in ("prime256v1", "X25519"):
        yield Variant(
            f"GROUP-{group.upper()}",
            f"A {peer} offering only the {group} key exchange group (not a -20 profile's): refused",
            lambda b, g=group: b.context(ecdh_group=g),  # type: ignore[misc]
            True,
            conduct.TLS_GROUP.id,
            _ours_with(role, ecdh_group=None),
        )
    yield Variant(
        "P521",
        f"TLS 1.3 with the secp521r1 group and P-521 chains: the {who} completes the handshake and the session",
        lambda b: b.context(),
        False,
        conduct.TLS_GROUP.id,
        _ours_with(role, ecdh_group="prime256v1"),
    )
    yield from suite_variants(role, who, peer)


def suite_variants(role: str, who: str, peer: str) -> Iterator[Variant]:
    if role == "secc":
        yield Variant(
            "SUITE-CHOICE",
            f"A {peer} preferring TLS_AES_128_GCM_SHA256: the {who} chooses {AES_256} or {CHACHA}",
            lambda b: with_suites(b.context(), AES_128, AES_256, CHACHA),
            False,
            conduct.TLS_SUITES.id,
            _ours_suites(role, AES_128, AES_256, CHACHA),
            suites=True,
        )
    for suite, other in ((AES_256, CHACHA), (CHACHA, AES_256)):
        yield Variant(
            f"SUITE-{SHORT[suite]}",
            f"A {peer} offering only {suite}: the {who} completes the handshake",
            lambda b, s=suite: with_suites(b.context(), s),  # type: ignore[misc]
            False,
            conduct.TLS_SUITES.id,
            _ours_suites(role, other),
            suites=True,
        )
    yield Variant(
        "SUITE-AES128-REFUSED",
        f"A {peer} offering only {AES_128} (not a -20 suite): the {who} refuses the handshake",
        lambda b: with_suites(b.context(), AES_128),
        True,
        conduct.TLS_SUITES.id,
        _ours_suites(role, AES_256, CHACHA, AES_128),
        suites=True,
    )


def _pki(bench: Bench) -> PkiPaths:
    if bench.pki is None:
        raise HandshakeFailed("no test PKI for TLS")
    return bench.pki


def tls_case(variant: Variant, role: str) -> Case:
    async def run(bench: Bench) -> Verdict:
        if variant.suites and not tls13_ciphersuites_settable():
            return inconclusive("this Python cannot set the TLS 1.3 cipher suites of the tester")
        try:
            conversation = await bench.open(context=variant.tester(bench))
        except HandshakeFailed as exc:
            if variant.refused:
                return passed()
            return failed(variant.rule, "a TLS 1.3 handshake", f"refused: {exc.reason}")
        if variant.refused:
            return await _answered_anyway(bench, conversation, role, variant.rule)
        return await _works(bench, conversation, role, variant.rule)

    return Case(
        f"{role.upper()}-TLS-{variant.detail}",
        variant.title,
        role,
        (variant.rule,),
        run,
        Breaker(Script, variant.rule, {TLS_CONTEXT: variant.breaker}),
        Needs(features=("tls",)),
        ("tls",),
    )


async def _answered_anyway(bench: Bench, conversation: Conversation, role: str, rule: str) -> Verdict:
    """The handshake completed on the tester's side. In TLS 1.3 a charger refuses the EV's certificate after the
    EV finished: the first exchange shows whether the device really took the connection."""
    tls = bench.trace.first(Kind.TLS)
    detail = tls.detail if tls is not None else "TLS"
    if role == "evcc":
        await conversation.close("the handshake should have failed")
        return failed(rule, "the handshake refused", f"completed: {detail}")
    stop = Fault("SessionSetupReq", replace=lambda m: None, then=Then.CLOSE, note="one exchange is enough")
    await play(tester_ev(), conversation, Script((stop,), observe_s=OBSERVE_S))
    answer = next(iter(bench.trace.received()), None)
    if answer is not None:
        return failed(rule, "the connection refused", f"{answer.name} over {detail}", answer.name, answer.t)
    return passed()


async def _works(bench: Bench, conversation: Conversation, role: str, rule: str) -> Verdict:
    """The handshake completed: TLS 1.3 with a -20 suite, then a whole session."""
    stream_tls = conversation.stream.tls
    suite = stream_tls.cipher() if stream_tls is not None else None
    version = stream_tls.version() if stream_tls is not None else None
    if version != "TLSv1.3":
        return failed(conduct.TLS13_ONLY.id, "TLSv1.3", str(version))
    if suite is None or suite[0] not in TLS13_CIPHERSUITES:
        return failed(conduct.TLS_SUITES.id, " or ".join(TLS13_CIPHERSUITES), suite[0] if suite else "none")
    if role == "secc":
        await play(tester_ev(), conversation, Script())
        return clean_session(bench.trace)
    await play(tester_evse(), conversation, Script())
    return _truck_session(bench.trace, rule)


def _truck_session(trace: Trace, rule: str) -> Verdict:
    broken = no_violation(trace)
    if broken is not None:
        return broken
    if not trace.received("SessionStopReq"):
        ended = trace.ended()
        return failed(rule, "a whole session over TLS", ended.detail if ended else "it did not end")
    return passed()


def ed448_case(role: str) -> Case:
    """The -20 Ed448 profile: the tester presents the bench PKI's Ed448 chain and offers only X448 (its context pins
    the group to the leaf's profile), so a completed handshake ran X448; the device's leaf must be Ed448. The ssl
    module of Python 3.11 does not name the negotiated group, hence no check of it beyond the one-group offer."""
    who, peer = ("charger", "EV") if role == "secc" else ("truck", "charger")
    rule = conduct.TLS_ED448.id

    async def run(bench: Bench) -> Verdict:
        if bench.pki is None or bench.pki.profile != "ed448":
            return inconclusive("the test PKI is not of the Ed448 profile (give the tester an Ed448 PKI)")
        try:
            conversation = await bench.open(context=bench.context())
        except HandshakeFailed as exc:
            return failed(rule, "a TLS 1.3 handshake with Ed448 certificates and X448", f"refused: {exc.reason}")
        leaf = _peer_profile(conversation)
        if leaf != "ed448":
            await conversation.close("the device's certificate is not Ed448")
            return failed(rule, "the device's certificate of the ed448 profile", f"{leaf} certificate")
        return await _works(bench, conversation, role, rule)

    return Case(
        f"{role.upper()}-TLS-ED448",
        f"TLS 1.3 of the Ed448 profile (Ed448 chains, X448): the {who} completes the handshake with an Ed448 "
        f"{peer} and the session",
        role,
        (rule, conduct.TLS13_ONLY.id, conduct.TLS_SUITES.id),
        run,
        # our peer with the P-521 profile only: the other PKI's P-521 chain, its group pinned to secp521r1
        Breaker(Script, rule, {TLS_CONTEXT: charger_from_other_root if role == "secc" else ev_from_other_root}),
        Needs(features=("tls", "ed448")),
        ("tls", "ed448"),
    )


def _peer_profile(conversation: Conversation) -> str:
    """The PKI profile of the certificate the device presented ("ed448", "secp521r1", else its key's type)."""
    tls = conversation.stream.tls
    der = tls.getpeercert(binary_form=True) if tls is not None else None
    if not der:
        return "missing"
    cert = x509.load_der_x509_certificate(der)
    try:
        return profile_of(cert)
    except PkiFileInvalid:
        return type(cert.public_key()).__name__


def cases() -> Iterator[Case]:
    for role in ("secc", "evcc"):
        for variant in variants(role):
            yield tls_case(variant, role)
        yield ed448_case(role)
