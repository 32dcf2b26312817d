"""ISO 15118-20 Plug & Charge against Josev (PyPI `iso15118==0.31.2`), both directions, in network namespaces.

Josev signs and verifies -20 PnC with the -2 algorithms (ECDSA-SHA256 over P-256, SHA-256 digests), so both
sides run on one secp256r1 test PKI of ours; `write_josev_pki(pnc=True)` copies its files under Josev's names
($PKI_PATH/iso15118_2/, contract and OEM certificates as DER). TLS 1.3 with mutual authentication (PnC needs
TLS; ENABLE_TLS_1_3 on Josev's side, see test_josev_sessions.py). DC_BPT Scheduled, 3 charge loops.

What each test proves (a gap test asserts Josev's exact failure, so it fails once Josev changes):
- our EV -> Josev's SECC (AUTH_MODES=PNC): PnC authorization and a whole DC_BPT session pass: Josev verifies our
  signature (its `verify_signature`) and answers OK/Finished.
  Gap: Josev's -20 SECC checks only the signature with the leaf the EV sends, no chain: it accepts a contract of
  an MO it has never heard of (`verify_signature` gets no sub-CAs or root and logs so).
  Gap: its SECC offers CertificateInstallation by default (ALLOW_CERT_INSTALL_SERVICE=true) but raises
  NotImplementedError on the request and sends no response; our EV ends on its message timeout.
- Josev's EV -> our SECC (`mcs-v2g evse --auth eim,pnc`): PnC authorization and a whole session pass; it does
  not use the installation our SECC offers unless isCertInstallNeeded.
  Gap: it ignores AuthorizationRes' ResponseCode: refused (WARNING_eMSPUnknown, Finished) for a contract our
  SECC does not trust, it carries on with ServiceDiscoveryReq, which our SECC answers FAILED_SequenceError.
  Gap: with isCertInstallNeeded it sends CertificateInstallationReq with the V2GTP payload type 0x8001 (the -2
  one; -20 common messages are 0x8002); our SECC closes on it. With the launcher mending the payload type our
  SECC verifies Josev's signature and OEM chain and answers WARNING_NoCertificateAvailable (-20 key delivery is
  P-521 or X448 only, Josev's key is P-256); Josev then raises NotImplementedError on the response. Its
  ListOfRootCertificateIDs names the V2G root by Python's repr of the issuer ("<Name(O=...,CN=...)>"), not by
  an RFC 4514 name; our test CPS matches the serial number only.

Needs root (namespaces), Java and Josev's venv, else the prerequisites skip or fail the tests with the reason.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from stack.security import pki as ours
from stack.security.contract_check import ContractStatus, check_contract
from tests.interop.test_josev_sessions import (
    REPO,
    SECC_TOML,
    Traced,
    check_josev_clean_end,
    check_same_messages,
    check_sequence,
    ev_view_of_josev,
    ev_view_of_trace,
    josev_codes,
    our_cli,
    read_trace,
    trace_codes,
)
from tests.netns import VethPair, netns_marks, veth_pair_fixture
from tests.prerequisites import requires
from tools.peers.josev_session import JosevProcess, LogMessage, start_josev_evcc, start_josev_secc, write_josev_pki

SESSION_TIMEOUT = 60.0  # s, one session with Josev's JVM start
CHARGE_LOOPS = 3
LOOP_INTERVAL = "0.05"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
# Josev's words for its failures (shared/comm_session.py stop reasons, shared/security.py verify_signature)
JOSEV_NOT_IMPLEMENTED = (
    "NotImplementedError occurred while processing message  in state CertificateInstallation : "
    "CertificateInstallation not yet implemented."
)
JOSEV_NO_CHAIN_CHECK = "Sub-CA and root CA certificates were not used to verify signatures along the certificate chain"
JOSEV_SEQUENCE_ERROR = (
    "Negative response code ResponseCode.FAILED_SEQUENCE_ERROR received with message ServiceDiscoveryRes"
)
JOSEV_PEER_CLOSED = "TCP peer closed connection"
# ours (stack/session/evcc.py, stack/transport, evse_emulator/contract_backend.py)
OUR_PAYLOAD_REFUSAL = "SECC: closing on a malformed message: payload type 0x8001 is not valid"
OUR_P256_REFUSAL = "CertificateInstallation: only P-521 provisioning keys are served"
OUR_INSTALL_TIMEOUT = "V2G_EVCC_Msg_Timeout: no answer to CertificateInstallationReq in time"
PNC_MISSED = "Plug & Charge did not happen: "

pytestmark = [
    *netns_marks(),
    requires("java", None if shutil.which("java") else "java is not on PATH (Josev's EXI codec runs in a JVM)"),
]

veth_pair = veth_pair_fixture("function")


@dataclass(frozen=True)
class Pki:
    """Our P-256 test PKI, the same files as Josev's PKI_PATH, and a second PKI whose MO root nobody trusts."""

    paths: ours.PkiPaths
    josev_path: Path
    foreign: ours.PkiPaths

    @property
    def env(self) -> dict[str, str]:
        return {"PKI_PATH": f"{self.josev_path}/"}

    def cli(self) -> list[str]:
        return ["--pki", str(self.paths.directory), "--pki-profile", "secp256r1"]


@pytest.fixture(scope="module")
def p256(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    base = tmp_path_factory.mktemp("pnc-pki")
    paths = ours.ensure_pki(base / "ours", "secp256r1")
    foreign = ours.ensure_pki(base / "foreign", "secp256r1")
    return Pki(paths, write_josev_pki(paths.directory, base / "josev", pnc=True), foreign)


# ---- reading both sides ----


def by_name(messages: list[LogMessage], name: str, *, sent: bool) -> list[dict[str, Any]]:
    return [m.body for m in messages if m.name == name and m.sent is sent]


def one(messages: list[LogMessage], name: str, *, sent: bool) -> dict[str, Any]:
    found = by_name(messages, name, sent=sent)
    assert len(found) == 1, f"{'sent' if sent else 'received'} {name}: {len(found)} times in Josev's log"
    return found[0]


def check_josev_signature(authorization_req: dict[str, Any]) -> None:
    """The PnC AuthorizationReq as Josev saw it: signed over id1 with the -2 algorithms."""
    assert authorization_req["SelectedAuthorizationService"] == "PnC"
    mode = authorization_req["PnC_AReqAuthorizationMode"]
    signed_info = authorization_req["Header"]["Signature"]["SignedInfo"]
    assert signed_info["SignatureMethod"]["Algorithm"] == ECDSA_SHA256
    (reference,) = signed_info["Reference"]
    assert reference["URI"] == f"#{mode['Id']}"
    assert reference["DigestMethod"]["Algorithm"] == SHA256


def traced(trace: list[Traced], name: str) -> list[Traced]:
    return [m for m in trace if m.name == name]


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


def context(**parts: str) -> str:
    return "\n".join(f"--- {title} (tail) ---\n{_tail(text)}" for title, text in parts.items())


# ---- our processes ----


@dataclass(frozen=True)
class EvRun:
    """How `mcs-v2g ev` ended: exit status, its JSON summary, its log (stderr) and trace."""

    returncode: int
    summary: dict[str, Any]
    log: str
    trace: list[Traced]


def run_our_ev(pair: VethPair, tmp_path: Path, p256: Pki, *extra: str) -> EvRun:
    trace = tmp_path / "ev-trace.xml"
    argv = ["ev", "--interface", "vb", "--auth", "pnc", *p256.cli(), "--service", "dc-bpt", "--control", "scheduled"]
    argv += ["--charge-loops", str(CHARGE_LOOPS), "--loop-interval", LOOP_INTERVAL, "--json", "--trace", str(trace)]
    ev = pair.popen("b", our_cli(*argv, *extra, "-v"), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = ev.communicate(timeout=SESSION_TIMEOUT)
    except subprocess.TimeoutExpired:
        ev.kill()
        out, err = ev.communicate()
    log = err.decode(errors="replace")
    lines = [line for line in out.decode(errors="replace").splitlines() if line.startswith("{")]
    assert lines, f"our EV printed no summary (exit {ev.returncode})\n{_tail(log)}"
    return EvRun(ev.returncode, json.loads(lines[-1]), log, read_trace(trace) if trace.is_file() else [])


def our_contract(tmp_path: Path, source: ours.PkiPaths) -> Path:
    """A contract folder of its own (an installed contract would be saved there, never into the PKI)."""
    folder = tmp_path / "contract"
    folder.mkdir()
    for name in (ours.CONTRACT_CHAIN_FILE, ours.CONTRACT_KEY_FILE):
        shutil.copy(source.directory / name, folder / name)
    return folder


@dataclass(frozen=True)
class OurSecc:
    process: subprocess.Popen[bytes]
    log_path: Path
    trace_dir: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def trace(self) -> list[Traced]:
        return read_trace(self.trace_dir / "secc-session-1.xml")


@contextmanager
def our_secc(pair: VethPair, tmp_path: Path, p256: Pki, *extra: str) -> Iterator[OurSecc]:
    """`mcs-v2g evse --auth eim,pnc` (TLS 1.3, the P-256 PKI, one session) on va, once it listens."""
    config = tmp_path / "secc.toml"
    config.write_text(SECC_TOML)
    log, trace_dir = tmp_path / "our-secc.log", tmp_path / "trace"
    argv = ["evse", "--interface", "va", "--auth", "eim,pnc", *p256.cli(), "--config", str(config)]
    argv += ["--trace", str(trace_dir), "--sessions", "1", *extra, "-v"]
    with open(log, "wb") as out:
        process = pair.popen("a", our_cli(*argv), cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    secc = OurSecc(process, log, trace_dir)
    try:
        deadline = time.monotonic() + 20
        while "SECC listening" not in secc.log():
            assert process.poll() is None, f"our SECC exited:\n{secc.log()}"
            assert time.monotonic() < deadline, f"our SECC not listening after 20 s:\n{secc.log()}"
            time.sleep(0.05)
        yield secc
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def josev_secc(pair: VethPair, tmp_path: Path, p256: Pki) -> JosevProcess:
    """Josev's SECC offering PnC only, over TLS 1.3, with CertificateInstallation offered (its default)."""
    return start_josev_secc(
        pair, "a", tmp_path / "josev-secc", tls=True, enable_tls_1_3=True, auth_modes="PNC", extra_env=p256.env
    )


def josev_ev(
    pair: VethPair, tmp_path: Path, p256: Pki, *, cert_install_needed: bool = False, mend_payload_type: bool = False
) -> JosevProcess:
    """Josev's EVCC over TLS 1.3 with the contract of our PKI (it authorizes by PnC when offered)."""
    return start_josev_evcc(
        pair,
        "b",
        tmp_path / "josev-evcc",
        control="scheduled",
        charge_loops=CHARGE_LOOPS,
        use_tls=True,
        enforce_tls=True,
        enable_tls_1_3=True,
        cert_install_needed=cert_install_needed,
        mend_payload_type=mend_payload_type,
        extra_env=p256.env,
    )


def josev_ends(josev: JosevProcess, secc: OurSecc) -> tuple[list[str], str]:
    """Josev EV's end reasons once it logged one (then it is stopped, and our one-session SECC has exited), and
    both logs for failure messages."""
    try:
        josev.wait_for_log("Reason: ", SESSION_TIMEOUT)
    finally:
        josev.stop()
    why = context(josev_ev=josev.log(), our_secc=secc.log())
    try:
        secc.process.wait(10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"our SECC still runs after its one session\n{why}")
    return josev.end_reasons(), why


# ---- our EVCC against Josev's SECC ----


def test_our_evcc_pnc_against_josev_secc(veth_pair: VethPair, josev: Path, p256: Pki, tmp_path: Path) -> None:
    secc = josev_secc(veth_pair, tmp_path, p256)
    try:
        ev = run_our_ev(veth_pair, tmp_path, p256, "--contract", str(our_contract(tmp_path, p256.paths)))
        secc.wait_for_log("Reason: ", 10)
    finally:
        secc.stop()
    why = context(our_ev=ev.log, josev_secc=secc.log())
    assert ev.returncode == 0, why
    assert ev.summary["auth"] == "pnc" and ev.summary["emaid"] == ours.DEFAULT_EMAID, ev.summary
    assert ev.summary["charge_loops"] == CHARGE_LOOPS, ev.summary

    theirs = secc.messages()
    setup = one(theirs, "AuthorizationSetupRes", sent=True)
    assert setup["AuthorizationServices"] == ["PnC"] and setup["CertificateInstallationService"] is True, setup
    challenge = setup["PnC_ASResAuthorizationMode"]["GenChallenge"]
    request = one(theirs, "AuthorizationReq", sent=False)
    check_josev_signature(request)
    assert request["PnC_AReqAuthorizationMode"]["GenChallenge"] == challenge
    answer = one(theirs, "AuthorizationRes", sent=True)
    assert (answer["ResponseCode"], answer["EVSEProcessing"]) == ("OK", "Finished"), why

    check_sequence(ev_view_of_trace(ev.trace, we_are_ev=True), trace_codes(ev.trace), "our EV")
    check_sequence(ev_view_of_josev(theirs, josev_is_ev=False), josev_codes(theirs), "Josev SECC")
    check_same_messages(ev_view_of_trace(ev.trace, we_are_ev=True), ev_view_of_josev(theirs, josev_is_ev=False))
    check_josev_clean_end(secc)


def test_josev_secc_accepts_contract_of_unknown_mo(veth_pair: VethPair, josev: Path, p256: Pki, tmp_path: Path) -> None:
    """Josev's gap: no contract chain check in its -20 SECC (secc/states/iso15118_20_states.py Authorization calls
    verify_signature with the leaf only); a contract whose MO root nobody trusts is authorized."""
    contract = our_contract(tmp_path, p256.foreign)
    loaded = ours.load_contract(contract)
    verdict = check_contract(
        loaded.certificate.public_bytes(Encoding.DER),
        [c.public_bytes(Encoding.DER) for c in loaded.sub_certificates],
        ours.load_certificates(p256.paths.mo_root_cert),
        dt.datetime.now(dt.UTC),
    )
    assert verdict.status is ContractStatus.EMSP_UNKNOWN  # foreign indeed: our SECC would refuse it

    secc = josev_secc(veth_pair, tmp_path, p256)
    try:
        ev = run_our_ev(veth_pair, tmp_path, p256, "--contract", str(contract))
        secc.wait_for_log("Reason: ", 10)
    finally:
        secc.stop()
    why = context(our_ev=ev.log, josev_secc=secc.log())
    answer = one(secc.messages(), "AuthorizationRes", sent=True)
    assert (answer["ResponseCode"], answer["EVSEProcessing"]) == ("OK", "Finished"), why
    assert JOSEV_NO_CHAIN_CHECK in secc.log(), why
    assert ev.returncode == 0 and ev.summary["auth"] == "pnc", why


def test_josev_secc_offers_installation_but_cannot(veth_pair: VethPair, josev: Path, p256: Pki, tmp_path: Path) -> None:
    """Josev's gap: AuthorizationSetupRes says CertificateInstallationService=true, CertificateInstallationReq
    ends its session with NotImplementedError and no response."""
    secc = josev_secc(veth_pair, tmp_path, p256)
    try:
        contract = our_contract(tmp_path, p256.paths)
        ev = run_our_ev(veth_pair, tmp_path, p256, "--contract", str(contract), "--install-contract")
        secc.wait_for_log("Reason: ", 10)
    finally:
        secc.stop()
    why = context(our_ev=ev.log, josev_secc=secc.log())
    theirs = secc.messages()
    assert one(theirs, "AuthorizationSetupRes", sent=True)["CertificateInstallationService"] is True
    one(theirs, "CertificateInstallationReq", sent=False)  # it decoded our request ...
    assert not by_name(theirs, "CertificateInstallationRes", sent=True), why  # ... and never answered
    assert secc.end_reasons() == [JOSEV_NOT_IMPLEMENTED], why

    # our EV: no answer within its 5 s timeout (or Josev closes TCP first, 5 s after its error): aborted
    assert ev.returncode == 4 and ev.summary["result"] == "aborted", why
    # the truck asked for PnC and did not get it: its reason says so, then why (mcs_v2g/cli/ev.py)
    reasons = {f"{PNC_MISSED}{r}" for r in (OUR_INSTALL_TIMEOUT, "connection lost")}
    assert ev.summary["reason"] in reasons, why
    assert ev.summary["contract_installed"] is False and ev.summary["auth"] is None
    assert [m.name for m in ev.trace][-1] == "CertificateInstallationReq"


# ---- Josev's EVCC against our SECC ----


def test_josev_evcc_pnc_against_our_secc(veth_pair: VethPair, josev: Path, p256: Pki, tmp_path: Path) -> None:
    with our_secc(veth_pair, tmp_path, p256) as secc:
        ev = josev_ev(veth_pair, tmp_path, p256)
        _, why = josev_ends(ev, secc)
    assert secc.process.returncode == 0, why
    check_josev_clean_end(ev)

    theirs = ev.messages()
    setup = one(theirs, "AuthorizationSetupRes", sent=False)
    assert setup["AuthorizationServices"] == ["EIM", "PnC"] and setup["CertificateInstallationService"] is True
    request = one(theirs, "AuthorizationReq", sent=True)
    check_josev_signature(request)
    assert request["PnC_AReqAuthorizationMode"]["GenChallenge"] == setup["PnC_ASResAuthorizationMode"]["GenChallenge"]
    answer = one(theirs, "AuthorizationRes", sent=False)
    assert (answer["ResponseCode"], answer["EVSEProcessing"]) == ("OK", "Finished"), why
    assert not by_name(theirs, "CertificateInstallationReq", sent=True)  # offered, not used (isCertInstallNeeded)

    trace = secc.trace()
    (authorization,) = traced(trace, "AuthorizationReq")
    assert authorization.text("SelectedAuthorizationService") == "PnC"
    assert authorization.find("PnC_AReqAuthorizationMode") is not None and authorization.find("Signature") is not None
    check_sequence(ev_view_of_trace(trace, we_are_ev=False), trace_codes(trace), "our SECC")
    check_sequence(ev_view_of_josev(theirs, josev_is_ev=True), josev_codes(theirs), "Josev EV")
    check_same_messages(ev_view_of_trace(trace, we_are_ev=False), ev_view_of_josev(theirs, josev_is_ev=True))


def test_josev_evcc_ignores_refused_authorization(veth_pair: VethPair, josev: Path, p256: Pki, tmp_path: Path) -> None:
    """Josev's gap: its -20 EV does not act on AuthorizationRes' ResponseCode (evcc Authorization: "TODO Act upon
    the response codes"): refused with Finished, it goes on to ServiceDiscovery."""
    mo_roots = str(p256.foreign.mo_root_cert)  # our SECC trusts another MO than the one of Josev's contract
    with our_secc(veth_pair, tmp_path, p256, "--mo-roots", mo_roots) as secc:
        reasons, why = josev_ends(josev_ev(veth_pair, tmp_path, p256), secc)
    assert secc.process.returncode == 4, why
    assert reasons == [JOSEV_SEQUENCE_ERROR], why

    trace = secc.trace()
    names = [(m.sent, m.name, m.text("ResponseCode")) for m in trace]
    assert names[-4:] == [
        (False, "AuthorizationReq", None),
        (True, "AuthorizationRes", "WARNING_eMSPUnknown"),
        (False, "ServiceDiscoveryReq", None),
        (True, "ServiceDiscoveryRes", "FAILED_SequenceError"),
    ], why
    (refusal,) = traced(trace, "AuthorizationRes")
    assert refusal.text("EVSEProcessing") == "Finished"


def test_josev_evcc_installation_request_payload_type(
    veth_pair: VethPair, josev: Path, p256: Pki, tmp_path: Path
) -> None:
    """Josev's gap: its -20 CertificateInstallationReq goes out with V2GTP payload type 0x8001 (evcc
    AuthorizationSetup passes no payload type to create_next_message, whose default is the -2 one); -20 common
    messages are 0x8002 (PROTOCOL.md 2), so our SECC closes without answering."""
    with our_secc(veth_pair, tmp_path, p256) as secc:
        reasons, why = josev_ends(josev_ev(veth_pair, tmp_path, p256, cert_install_needed=True), secc)
    assert secc.process.returncode == 4, why
    assert reasons == [JOSEV_PEER_CLOSED], why
    assert OUR_PAYLOAD_REFUSAL in secc.log(), why
    assert [m.name for m in secc.trace()][-1] == "AuthorizationSetupRes", why


def test_josev_evcc_installation_not_implemented(veth_pair: VethPair, josev: Path, p256: Pki, tmp_path: Path) -> None:
    """With the payload type mended by the launcher: our SECC verifies Josev's signature (ECDSA-SHA256) and OEM
    chain, then refuses the P-256 provisioning key (-20 delivers contract keys to P-521 or X448 keys only:
    WARNING_NoCertificateAvailable); Josev's EV raises NotImplementedError on the response, whatever it says."""
    with our_secc(veth_pair, tmp_path, p256) as secc:
        ev = josev_ev(veth_pair, tmp_path, p256, cert_install_needed=True, mend_payload_type=True)
        reasons, why = josev_ends(ev, secc)
    assert reasons == [JOSEV_NOT_IMPLEMENTED], why
    assert OUR_P256_REFUSAL in secc.log(), why

    trace = secc.trace()
    request, response = traced(trace, "CertificateInstallationReq"), traced(trace, "CertificateInstallationRes")
    assert len(request) == 1 and request[0].find("Signature") is not None
    # Josev names the root by Python's repr of its issuer, not by an RFC 4514 name (shared/security.py
    # get_cert_issuer_serial returns `issuer.__str__()`); our test CPS matches the serial number only
    assert request[0].text("X509IssuerName") == "<Name(O=MCS-V2G Test PKI,CN=V2G Root CA)>"
    assert [r.text("ResponseCode") for r in response] == ["WARNING_NoCertificateAvailable"], why
    received = one(ev.messages(), "CertificateInstallationRes", sent=False)
    assert received["ResponseCode"] == "WARNING_NoCertificateAvailable"
