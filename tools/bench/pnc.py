"""`python -m tools.bench pnc`: what Plug & Charge costs.

* Signatures of a PnC_AReqAuthorizationMode (contract chain of 3 certificates): sign (fragment encode + digest +
  SignedInfo + signature) and verify per second, ours for P-256, P-521 and Ed448 (stack/security/xmldsig.py), and
  Josev's `create_signature` / `verify_signature` for P-256 in the same run (its venv, its EXI codec in a JVM
  through py4j, timed inside its process: what a Josev user gets).
* The SECC's check of one AuthorizationReq: `check_contract` of the chain up to the MO root + signature verify.
* Whole sessions over VirtualLink (in memory, virtual clock, real EXI): EIM, PnC, PnC with CertificateInstallation,
  and the tracemalloc peak of one of each.

Rates are 1 / the median time of one call (or session) over the timed calls, after untimed warm-up calls.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x448

from evse_emulator.contract_backend import LocalContractBackend
from examples.minimal_controllers import MinimalEv, MinimalEvse
from stack import exi
from stack.messages import iso20_common as cm
from stack.messages import iso20_types as ct
from stack.security import pki, xmldsig
from stack.security.contract_check import ContractStatus, check_contract
from stack.session.config import EvccConfig, SeccConfig
from stack.session.evcc import EvccSession
from stack.session.exchanges.authorization import PNC_ELEMENT, PNC_ELEMENT_ID
from stack.session.pnc import Contract, EvPnc, Provisioning, SeccPnc
from stack.session.secc import SeccSession
from stack.transport.link import DEFAULT_START, VirtualLink

NOW = dt.datetime.fromtimestamp(DEFAULT_START, dt.UTC)  # VirtualLink's start: the PKIs are valid then
SUITES: dict[pki.Profile, str] = {
    "secp256r1": "P-256 ECDSA-SHA256",
    "secp521r1": "P-521 ECDSA-SHA512",
    "ed448": "Ed448",
}
SESSION_PROFILE: pki.Profile = "secp521r1"  # the -20 default, and the one LocalContractBackend serves
JOSEV_TIMEOUT = 600.0

Progress = Callable[[str], object]


@dataclass(frozen=True)
class Kit:
    """One generated test PKI: its contract (leaf + MO sub-CA 2 and 1) and the MO root the SECC trusts."""

    paths: pki.PkiPaths
    contract: Contract
    mo_roots: tuple[x509.Certificate, ...]


def make_kit(directory: Path, profile: pki.Profile) -> Kit:
    paths = pki.generate_pki(directory / profile, profile=profile, valid_from=NOW - dt.timedelta(days=1))
    loaded = pki.load_contract(paths.directory)
    if isinstance(loaded.private_key, x448.X448PrivateKey):
        raise RuntimeError(f"{profile}: the contract key cannot sign")
    contract = Contract(loaded.certificate, loaded.sub_certificates, loaded.private_key)
    return Kit(paths, contract, tuple(pki.load_certificates(paths.mo_root_cert)))


def authorization_req(contract: Contract, *, signed: bool = True) -> cm.AuthorizationReq:
    """A PnC AuthorizationReq as the EV sends it, signed with the contract key unless `signed` is False."""
    mode = cm.PncAReqAuthorizationMode(
        id=PNC_ELEMENT_ID, gen_challenge=bytes(range(16)), contract_certificate_chain=contract.chain()
    )
    head = ct.MessageHeader(session_id=bytes.fromhex("0102030405060708"), time_stamp=int(DEFAULT_START))
    if signed:
        head.signature = xmldsig.sign([xmldsig.SignedPart(mode, PNC_ELEMENT)], contract.private_key)
    return cm.AuthorizationReq(
        header=head, selected_authorization_service=cm.Authorization.PnC, pnc_a_req_authorization_mode=mode
    )


def secc_check(req: cm.AuthorizationReq, mo_roots: tuple[x509.Certificate, ...], now: dt.datetime) -> str:
    """The SECC's PnC check (as `answer_authorization`, without the challenge compare): the chain, then the
    signature with the leaf's key; the eMAID, or an exception."""
    mode, signature = req.pnc_a_req_authorization_mode, req.header.signature
    if mode is None or signature is None:
        raise ValueError("not a signed PnC AuthorizationReq")
    chain = mode.contract_certificate_chain
    subs = chain.sub_certificates.certificate if chain.sub_certificates is not None else []
    check = check_contract(chain.certificate, subs, mo_roots, now)
    if check.status is not ContractStatus.OK or check.leaf is None or check.emaid is None:
        raise ValueError(f"contract refused: {check.reason}")
    xmldsig.verify(signature, [xmldsig.SignedPart(mode, PNC_ELEMENT)], check.leaf.public_key())
    return check.emaid


def per_call(fn: Callable[[], object], calls: int, warmup: int) -> list[float]:
    """Seconds of each of `calls` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def rate(times: list[float]) -> float:
    return 1.0 / statistics.median(times)


def measure_suite(kit: Kit, calls: int, warmup: int) -> dict[str, float]:
    """Signs, verifies (from the leaf's DER, as Josev's verify_signature) and SECC checks per second."""
    req = authorization_req(kit.contract)
    mode, signature = req.pnc_a_req_authorization_mode, req.header.signature
    assert mode is not None and signature is not None
    leaf = mode.contract_certificate_chain.certificate
    key = kit.contract.private_key

    def sign() -> object:
        return xmldsig.sign([xmldsig.SignedPart(mode, PNC_ELEMENT)], key)

    def verify() -> None:
        public_key = x509.load_der_x509_certificate(leaf).public_key()
        xmldsig.verify(signature, [xmldsig.SignedPart(mode, PNC_ELEMENT)], public_key)

    data = exi.encode(req)
    return {
        "fragment_bytes": len(xmldsig.SignedPart(mode, PNC_ELEMENT).fragment()),
        "request_bytes": len(data),
        "sign_per_s": rate(per_call(sign, calls, warmup)),
        "verify_per_s": rate(per_call(verify, calls, warmup)),
        "check_per_s": rate(per_call(lambda: secc_check(req, kit.mo_roots, NOW), calls, warmup)),
        "decode_us": 1e6 / rate(per_call(lambda: exi.decode(data, "iso20-common"), calls, warmup)),
    }


# -- Josev ---------------------------------------------------------------------------------------------------------

# Run by Josev's venv python: its EVCC's signing call and its SECC's verifying call (iso15118 0.31.2,
# evcc/states/iso15118_20_states.py and secc/states/iso15118_20_states.py), each with the element's EXI fragment
# made by its own codec, timed around the whole call; PROGRESS and RESULT lines on stdout.
JOSEV_HELPER = """
import json, sys, time
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from iso15118.shared.exi_codec import EXI
from iso15118.shared.messages.enums import Namespace
from iso15118.shared.security import create_signature, verify_signature
from iso15118.shared.settings import load_shared_settings

def say(text):
    print("PROGRESS " + text, flush=True)

request = json.loads(sys.stdin.read())
load_shared_settings()
started = time.perf_counter()
EXI().get_exi_codec()
jvm_s = time.perf_counter() - started
say(f"Josev: JVM up in {jvm_s:.1f} s")
ns = Namespace.ISO_V20_COMMON_MSG
element = EXI().from_exi(bytes.fromhex(request["message"]), ns).pnc_params
key = load_pem_private_key(request["key"].encode(), None)
cert = bytes.fromhex(request["cert"])

def sign():
    return create_signature([(element.id, EXI().to_exi(element, ns))], key)

def verify():
    if not verify_signature(signature, [(element.id, EXI().to_exi(element, ns))], cert):
        raise RuntimeError("Josev's verify_signature refused its own signature")

def timed(name, fn):
    for _ in range(request["warmup"]):
        fn()
    times = []
    for i in range(request["calls"]):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if i == 0 or (i + 1) % 10 == 0:
            say(f"Josev {name} {i + 1}/{request['calls']} ({1000 * times[-1]:.0f} ms per call)")
    return times

signature = sign()
result = {"jvm_s": jvm_s, "fragment": EXI().to_exi(element, ns).hex()}
result["sign_s"] = timed("create_signature", sign)
result["verify_s"] = timed("verify_signature", verify)
print("RESULT " + json.dumps(result), flush=True)
"""


def run_josev_helper(venv: Path, request: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """JOSEV_HELPER under Josev's python; its PROGRESS lines go to `progress`, its RESULT comes back."""
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            [str(venv / "bin" / "python"), "-I", "-c", JOSEV_HELPER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            cwd=venv,  # Josev reads a .env from its working directory
        )
        timer = threading.Timer(JOSEV_TIMEOUT, process.kill)
        timer.start()
        try:
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(json.dumps(request))
            process.stdin.close()
            result = None
            for line in process.stdout:
                if line.startswith("PROGRESS "):
                    progress("  " + line[len("PROGRESS ") :].rstrip())
                elif line.startswith("RESULT "):
                    result = json.loads(line[len("RESULT ") :])
            code = process.wait()
        finally:
            timer.cancel()
        if code != 0 or result is None:
            errors.seek(0)
            tail = [line for line in errors.read().splitlines() if line.strip()][-1:] or [f"exit code {code}"]
            raise RuntimeError(f"Josev's helper failed: {tail[0][:200]}")
        answer: dict[str, Any] = result
        return answer


def measure_josev(kit: Kit, calls: int, warmup: int, progress: Progress) -> dict[str, Any] | str:
    """Josev's P-256 sign and verify per second, or why not."""
    from tools.peers.josev import PeerUnavailable, ensure_josev

    try:
        venv = ensure_josev(progress)
    except PeerUnavailable as exc:
        return f"unavailable ({exc.reason})"
    req = authorization_req(kit.contract, signed=False)
    mode = req.pnc_a_req_authorization_mode
    assert mode is not None
    pem = kit.contract.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    request = {
        "message": exi.encode(req).hex(),
        "key": pem.decode(),
        "cert": mode.contract_certificate_chain.certificate.hex(),
        "calls": calls,
        "warmup": warmup,
    }
    try:
        answer = run_josev_helper(venv, request, progress)
    except (OSError, RuntimeError, ValueError) as exc:  # the peer is optional: report, do not crash the bench
        return f"failed ({exc})"
    ours = xmldsig.SignedPart(mode, PNC_ELEMENT).fragment().hex()
    return {
        "sign_per_s": rate(answer["sign_s"]),
        "verify_per_s": rate(answer["verify_s"]),
        "jvm_start_s": answer["jvm_s"],
        "same_fragment": answer["fragment"] == ours,
    }


# -- sessions ------------------------------------------------------------------------------------------------------

SessionConfigs = tuple[EvccConfig, SeccConfig, cm.Authorization, bool]  # EV, SECC, expected auth, installs


def session_kinds(kit: Kit) -> dict[str, SessionConfigs]:
    paths = kit.paths
    prov_chain = pki.load_certificates(paths.oem_prov_chain)
    prov_key = pki.load_private_key(paths.oem_prov_key)
    roots = tuple(pki.load_certificates(paths.v2g_root_cert))
    provisioning = Provisioning(prov_chain[0], tuple(prov_chain[1:]), prov_key, roots)
    evse_pnc = SeccConfig(pnc=SeccPnc(mo_roots=kit.mo_roots, backend=LocalContractBackend(paths)))
    return {
        "EIM": (EvccConfig(), SeccConfig(), cm.Authorization.EIM, False),
        "PnC": (EvccConfig(pnc=EvPnc(contract=kit.contract)), evse_pnc, cm.Authorization.PnC, False),
        "PnC + CertificateInstallation": (
            EvccConfig(pnc=EvPnc(provisioning=provisioning)),
            evse_pnc,
            cm.Authorization.PnC,
            True,
        ),
    }


def one_session(configs: SessionConfigs, loops: int) -> int:
    """One session over VirtualLink; the number of messages both sides sent (RuntimeError if it went wrong)."""
    ev_config, evse_config, auth, installs = configs
    evcc = EvccSession(MinimalEv(charge_loops=loops), ev_config)
    secc = SeccSession(MinimalEvse(), evse_config)
    transcript = VirtualLink(evcc, secc).run()
    ok = transcript.ev_close is not None and transcript.ev_close.ok
    ok = ok and transcript.evse_close is not None and transcript.evse_close.ok
    if not ok or evcc.state.authorization is not auth or evcc.ctx.contract_installed is not installs:
        raise RuntimeError(f"session failed: {transcript.ev_close}, {evcc.state.authorization}")
    return len(transcript.messages)


def peak_kib(fn: Callable[[], object]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 1024
    finally:
        tracemalloc.stop()


def measure_sessions(kit: Kit, runs: int, warmup: int, loops: int, progress: Progress) -> dict[str, dict[str, float]]:
    rows = {}
    for name, configs in session_kinds(kit).items():
        progress(f"sessions: {name}, {warmup} + {runs} ...")
        session = functools.partial(one_session, configs, loops)
        messages = session()
        times = per_call(session, runs, warmup)
        median = statistics.median(times)
        rows[name] = {
            "median_ms": 1000 * median,
            "sessions_per_s": 1 / median,
            "messages": messages,
            "messages_per_s": messages / median,
            "peak_kib": peak_kib(session),
        }
    return rows


# -- run and report ------------------------------------------------------------------------------------------------


def run(
    *,
    calls: int = 300,
    warmup: int = 20,
    josev_calls: int = 40,
    josev_warmup: int = 20,
    sessions: int = 50,
    session_warmup: int = 3,
    loops: int = 10,
    josev: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    started = time.monotonic()
    say = progress or (lambda text: print(f"[{time.monotonic() - started:5.1f} s] {text}", file=sys.stderr, flush=True))
    with tempfile.TemporaryDirectory(prefix="bench-pnc-") as tmp:
        say("generating the test PKIs (P-256, P-521, Ed448) ...")
        kits = {profile: make_kit(Path(tmp), profile) for profile in SUITES}
        suites = {}
        for profile, label in SUITES.items():
            say(f"ours, {label}: sign, verify, SECC check, {warmup} + {calls} calls each ...")
            suites[profile] = measure_suite(kits[profile], calls, warmup)
        their: dict[str, Any] | str = "skipped (--no-josev)"
        if josev:
            say(f"Josev, P-256: its venv and JVM, then {josev_warmup} + {josev_calls} calls each ...")
            their = measure_josev(kits["secp256r1"], josev_calls, josev_warmup, say)
        rows = measure_sessions(kits[SESSION_PROFILE], sessions, session_warmup, loops, say)
    return {
        "python": sys.version.split()[0],
        "calls": {"ours": calls, "warmup": warmup, "josev": josev_calls, "josev_warmup": josev_warmup},
        "suites": suites,
        "josev": their,
        "sessions": {"runs": sessions, "warmup": session_warmup, "charge_loops": loops, "rows": rows},
    }


def report(r: dict[str, Any]) -> str:
    calls, suites, sessions = r["calls"], r["suites"], r["sessions"]
    lines = [
        f"Plug & Charge benchmark, CPython {r['python']}; per second = 1 / median time of one call",
        f"PnC_AReqAuthorizationMode (contract chain: leaf + 2 sub-CAs), ours: {calls['ours']} calls after"
        f" {calls['warmup']} warm-up calls",
        "  sign = fragment encode + digest + SignedInfo + signature; verify = the same, key from the leaf's DER;",
        "  SECC check = check_contract (chain to the MO root, dates, no revocation source) + signature verify",
        f"{'suite':20s} {'frag B':>7s} {'sign/s':>8s} {'verify/s':>9s} {'check/s':>8s} {'decode µs':>10s}",
    ]
    for profile, label in SUITES.items():
        s = suites[profile]
        lines.append(
            f"{label:20s} {s['fragment_bytes']:7d} {s['sign_per_s']:8.0f} {s['verify_per_s']:9.0f}"
            f" {s['check_per_s']:8.0f} {s['decode_us']:10.0f}"
        )
    lines.append("  decode µs: exi.decode of the whole signed AuthorizationReq, before the check")
    lines.append(_josev_line(r["josev"], suites["secp256r1"], calls))
    rows = sessions["rows"]
    lines.append(
        f"whole sessions over VirtualLink (in memory, virtual clock, real EXI; P-521 PKI; {sessions['charge_loops']}"
        f" charge loops; median of {sessions['runs']} after {sessions['warmup']} warm-up; peak: tracemalloc of one)"
    )
    lines.append(f"{'session':30s} {'ms':>7s} {'sessions/s':>11s} {'messages':>9s} {'msgs/s':>8s} {'peak KiB':>9s}")
    for name, row in rows.items():
        lines.append(
            f"{name:30s} {row['median_ms']:7.1f} {row['sessions_per_s']:11.1f} {row['messages']:9d}"
            f" {row['messages_per_s']:8.0f} {row['peak_kib']:9.0f}"
        )
    eim, pnc, install = rows["EIM"], rows["PnC"], rows["PnC + CertificateInstallation"]
    lines.append(
        f"PnC costs {pnc['median_ms'] - eim['median_ms']:+.1f} ms per session over EIM"
        f" ({100 * (pnc['median_ms'] / eim['median_ms'] - 1):+.0f} %); CertificateInstallation adds"
        f" {install['median_ms'] - pnc['median_ms']:+.1f} ms"
    )
    return "\n".join(lines)


def _josev_line(josev: dict[str, Any] | str, ours: dict[str, float], calls: dict[str, int]) -> str:
    if not isinstance(josev, dict):
        return f"Josev: {josev}"
    same = "same fragment bytes as ours" if josev["same_fragment"] else "its fragment DIFFERS from ours"
    return (
        f"Josev 0.31.2, P-256 (create_signature / verify_signature, its EXI in a JVM via py4j, {calls['josev']} calls"
        f" after {calls['josev_warmup']} warm-up, timed in its process; JVM start {josev['jvm_start_s']:.1f} s not"
        f" counted): sign {josev['sign_per_s']:.1f}/s, verify {josev['verify_per_s']:.1f}/s; ours/Josev: sign"
        f" {ours['sign_per_s'] / josev['sign_per_s']:.0f}x, verify {ours['verify_per_s'] / josev['verify_per_s']:.0f}x;"
        f" {same}"
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calls", type=int, default=300, help="timed calls per figure of ours (default 300)")
    p.add_argument("--josev-calls", type=int, default=40, help="timed calls of Josev's sign and verify (default 40)")
    p.add_argument("--sessions", type=int, default=50, help="timed sessions of each kind (default 50)")
    p.add_argument("--no-josev", action="store_true", help="skip Josev (it needs Java and its own venv)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")


def main(args: argparse.Namespace) -> int:
    results = run(calls=args.calls, josev_calls=args.josev_calls, sessions=args.sessions, josev=not args.no_josev)
    print(json.dumps(results, indent=2) if args.json else report(results))
    return 0
