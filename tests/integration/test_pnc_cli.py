"""Plug & Charge through the command line, each product in its own process over TLS 1.3 on loopback: a truck
without a contract installs one (and keeps it), authorizes with it the next time; a contract revoked at the
charger's OCSP responder is refused; the sim plays a PnC session with and without installation. Bad PnC input
is a one-line error with exit status 2."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcs_v2g.cli import main
from stack.security import pki
from stack.security.ocsp import LocalOcspResponder, OcspStatus
from stack.security.ocsp_http import serve_ocsp
from stack.security.ocsp_staple import stapled_response, stapled_status
from stack.security.tls import client_context

REPO = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "mcs_v2g"]
TRUCK = ["--charge-loops", "3", "--loop-interval", "0.05", "--json"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run([*COMMAND, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def summaries(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture
def test_pki(tmp_path: Path) -> pki.PkiPaths:
    return pki.generate_pki(tmp_path / "pki", ocsp_url=f"http://127.0.0.1:{free_port()}/ocsp")


def charger(paths: pki.PkiPaths, port: int, sessions: int, *extra: str) -> subprocess.Popen:
    argv = [*COMMAND, "evse", "--listen", f"127.0.0.1:{port}", "--sessions", str(sessions), "--json"]
    argv += ["--auth", "eim,pnc", "--pki", str(paths.directory), *extra]
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def truck(paths: pki.PkiPaths, port: int, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    for _ in range(100):  # the charger process needs a moment to listen
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        threading.Event().wait(0.1)
    done = run("ev", "--connect", f"127.0.0.1:{port}", "--pki", str(paths.directory), "--auth", "pnc", *TRUCK, *extra)
    (summary,) = summaries(done.stdout)
    return done, summary


def finished(process: subprocess.Popen) -> tuple[int, list[dict], str]:
    out, err = process.communicate(timeout=60)
    assert "Traceback" not in err, err
    return process.returncode, summaries(out), err


def test_a_truck_installs_a_contract_keeps_it_and_authorizes_with_it(test_pki: pki.PkiPaths, tmp_path: Path) -> None:
    port, folder = free_port(), tmp_path / "contract"
    evse = charger(test_pki, port, 2)
    done, first = truck(test_pki, port, "--contract", str(folder))
    assert done.returncode == 0, done.stderr
    assert (first["result"], first["auth"], first["emaid"], first["contract_installed"]) == (
        "ok",
        "pnc",
        pki.DEFAULT_EMAID,
        True,
    )
    kept = pki.load_contract(folder)  # the installed contract, its key matching its certificate
    assert kept.emaid == pki.DEFAULT_EMAID and "CertificateInstallationReq" in done.stderr
    done, second = truck(test_pki, port, "--contract", str(folder))
    assert done.returncode == 0 and second["contract_installed"] is False and second["auth"] == "pnc"
    assert "CertificateInstallationReq" not in done.stderr
    assert pki.load_contract(folder).certificate == kept.certificate  # the same contract, not a new one
    status, charged, _ = finished(evse)
    assert status == 0 and [(s["auth"], s["emaid"]) for s in charged] == [("pnc", pki.DEFAULT_EMAID)] * 2


class Responder:
    """An OCSP responder for MO sub-CA 2 of a test PKI, on a thread of its own (the processes under test call it)."""

    def __init__(self, paths: pki.PkiPaths, port: int) -> None:
        load = pki.load_certificates
        self.responder = LocalOcspResponder(
            load(paths.mo_ocsp_responder_cert)[0],
            pki.load_private_key(paths.mo_ocsp_responder_key),
            load(paths.cert("mo_sub_ca2"))[0],
        )
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(serve_ocsp(self.responder, "127.0.0.1", self.port))
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self) -> LocalOcspResponder:
        self.thread.start()
        assert self.ready.wait(10)
        return self.responder

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def responder(test_pki: pki.PkiPaths) -> Iterator[LocalOcspResponder]:
    url = pki.ocsp_urls(pki.load_certificates(test_pki.contract_cert)[0])[0]
    with Responder(test_pki, int(url.rsplit(":", 1)[1].split("/")[0])) as running:
        yield running


def test_the_charger_asks_the_contracts_ocsp_responder(test_pki: pki.PkiPaths, responder: LocalOcspResponder) -> None:
    port = free_port()
    evse = charger(test_pki, port, 1, "--ocsp", "aia")
    done, good = truck(test_pki, port, "--contract", str(test_pki.directory))
    assert done.returncode == 0 and (good["result"], good["auth"]) == ("ok", "pnc"), done.stderr
    assert finished(evse)[0] == 0
    contract = pki.load_certificates(test_pki.contract_cert)[0]
    responder.revoke(contract.serial_number, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    # a charger keeps a good answer until its nextUpdate: a new charger process asks again
    port = free_port()
    evse = charger(test_pki, port, 1, "--ocsp", "aia")
    done, revoked = truck(test_pki, port, "--contract", str(test_pki.directory))
    assert done.returncode != 0 and revoked["result"] != "ok" and revoked["auth"] is None
    assert "WARNING_CertificateRevoked" in done.stderr
    status, charged, _ = finished(evse)
    assert [s["auth"] for s in charged] == [None]


@pytest.mark.parametrize("install", [False, True], ids=["contract", "install"])
def test_sim_plays_a_pnc_session(install: bool) -> None:
    extra = ["--install-contract"] if install else []
    done = run("sim", "--auth", "pnc", *extra, "--json", timeout=300)
    (summary,) = summaries(done.stdout)
    assert done.returncode == 0 and summary["result"] == "ok", done.stderr
    assert (summary["auth"], summary["emaid"], summary["contract_installed"]) == ("pnc", pki.DEFAULT_EMAID, install)
    assert summary["messages"].get("CertificateInstallationReq", 0) == int(install)
    assert summary["messages"]["MeteringConfirmationRes"] == 1  # a signed meter reading, verified by the charger


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["sim", "--auth", "pnc", "--no-tls"], "needs TLS"),
        (["sim", "--install-contract", "--auth", "eim"], "add --auth pnc"),
        (["sim", "--install-contract"], "add --auth pnc"),
        (["ev", "--connect", "127.0.0.1:1", "--contract", "x"], "add --auth pnc"),
        (["ev", "--connect", "127.0.0.1:1", "--auth", "pnc", "--no-tls"], "needs TLS"),
        (["evse", "--listen", "127.0.0.1:1", "--auth", "pnc,rfid"], "--auth"),
        (["evse", "--listen", "127.0.0.1:1", "--ocsp", "x.der"], "add --auth eim,pnc"),
        (["evse", "--listen", "127.0.0.1:1", "--auth", "pnc", "--ocsp", "/nonexistent.der"], "--ocsp"),
        (["evse", "--listen", "127.0.0.1:1", "--auth", "pnc", "--ocsp", "https://ocsp.example"], "HTTPS"),
        (["evse", "--listen", "127.0.0.1:1", "--auth", "pnc", "--mo-roots", "/nonexistent.pem"], "MO roots"),
        (["evse", "--listen", "127.0.0.1:1", "--auth", "pnc", "--ocsp-strict"], "needs --ocsp"),
        (["evse", "--listen", "127.0.0.1:1", "--ocsp-strict"], "add --auth eim,pnc"),
        (["ev", "--connect", "127.0.0.1:1", "--auth", "PNC", "--contract", "/etc/hostname"], "a folder is needed"),
    ],
)
def test_bad_pnc_input_is_one_line_and_exit_2(args: list[str], error: str, tmp_path: Path, capsys) -> None:
    """Refused at the door, before anything is simulated or connected (so in this process)."""
    status = main([*args, "--pki", str(tmp_path / "pki")] if args[0] != "sim" else args)
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and lines[-1].startswith("mcs-v2g: error:") and error in lines[-1], lines


def secc_staple(test_pki: pki.PkiPaths, path: Path, *, revoked: bool = False) -> Path:
    """A DER OCSP response for the SECC leaf, signed by its issuer (CPO sub-CA 2), written to `path`."""
    leaf, issuer = pki.load_certificates(test_pki.secc_cert)[0], pki.load_certificates(test_pki.cert("cpo_sub_ca2"))[0]
    responder = LocalOcspResponder(issuer, pki.load_private_key(test_pki.key("cpo_sub_ca2")), issuer)
    now = dt.datetime.now(dt.UTC)
    if revoked:
        responder.revoke(leaf.serial_number, now - dt.timedelta(hours=1))
    path.write_bytes(responder.response_for(leaf, now))
    return path


def test_the_charger_staples_its_ocsp_response(test_pki: pki.PkiPaths, tmp_path: Path) -> None:
    staple = secc_staple(test_pki, tmp_path / "secc.ocsp")
    port = free_port()
    evse = charger(test_pki, port, 1, "--ocsp-staple", str(staple))
    context = client_context(test_pki, request_ocsp_staple=True)
    for _ in range(100):
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            break
        except OSError:
            threading.Event().wait(0.1)
    with context.wrap_socket(raw) as tls:
        assert stapled_response(tls) == staple.read_bytes()
        issuer = pki.load_certificates(test_pki.cert("cpo_sub_ca2"))[0]
        assert stapled_status(tls, dt.datetime.now(dt.UTC), issuer=issuer) is OcspStatus.GOOD
    evse.kill()
    evse.communicate()


def test_a_staple_that_is_no_ocsp_response_is_refused(test_pki: pki.PkiPaths, tmp_path: Path) -> None:
    (tmp_path / "x.der").write_bytes(b"not ocsp")
    bad = str(tmp_path / "x.der")
    done = run("evse", "--listen", "127.0.0.1:1", "--pki", str(test_pki.directory), "--ocsp-staple", bad)
    assert done.returncode == 2 and "--ocsp-staple" in done.stderr.strip().splitlines()[-1]


def test_a_revoked_or_foreign_staple_is_refused_at_start(test_pki: pki.PkiPaths, tmp_path: Path, capsys) -> None:
    load = pki.load_certificates
    revoked, foreign = secc_staple(test_pki, tmp_path / "revoked.der", revoked=True), tmp_path / "foreign.der"
    contract, mo_sub = load(test_pki.contract_cert)[0], load(test_pki.cert("mo_sub_ca2"))[0]
    mo = LocalOcspResponder(mo_sub, pki.load_private_key(test_pki.key("mo_sub_ca2")), mo_sub)
    foreign.write_bytes(mo.response_for(contract, dt.datetime.now(dt.UTC)))
    for staple, error in ((revoked, "says REVOKED"), (foreign, "not a current OCSP response for the SECC leaf")):
        argv = ["evse", "--listen", "127.0.0.1:1", "--pki", str(test_pki.directory), "--ocsp-staple", str(staple)]
        assert main(argv) == 2
        assert error in capsys.readouterr().err.strip().splitlines()[-1]


def test_a_pnc_truck_at_an_eim_charger_is_not_ok(test_pki: pki.PkiPaths, tmp_path: Path) -> None:
    """PnC asked for and not done: the truck says why and its verdict is not ok (it charged nothing)."""
    port = free_port()
    argv = [*COMMAND, "evse", "--listen", f"127.0.0.1:{port}", "--sessions", "1", "--json", "--auth", "eim"]
    evse = subprocess.Popen(
        [*argv, "--pki", str(test_pki.directory)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    done, summary = truck(test_pki, port, "--contract", str(test_pki.directory))
    assert done.returncode != 0 and summary["result"] == "aborted" and summary["auth"] is None
    assert summary["reason"].startswith("Plug & Charge did not happen: no authorization possible")
    assert "the SECC offers EIM" in summary["reason"] and summary["emaid"] is None
    evse.communicate(timeout=60)


def test_a_truck_that_requires_a_staple_gets_one_or_starts_no_session(test_pki: pki.PkiPaths, tmp_path: Path) -> None:
    staple = secc_staple(test_pki, tmp_path / "secc.ocsp")
    port = free_port()
    evse = charger(test_pki, port, 1, "--ocsp-staple", str(staple))
    done, stapled = truck(test_pki, port, "--contract", str(test_pki.directory), "--require-ocsp-staple")
    assert done.returncode == 0 and (stapled["result"], stapled["auth"]) == ("ok", "pnc"), done.stderr
    assert finished(evse)[0] == 0
    port = free_port()
    evse = charger(test_pki, port, 1)  # staples nothing
    done, refused = truck(test_pki, port, "--contract", str(test_pki.directory), "--require-ocsp-staple")
    assert done.returncode != 0 and refused["session_id"] is None
    assert refused["reason"] == "no session: PeerRefused: the SECC stapled no OCSP response"
    evse.kill()
    evse.communicate()
