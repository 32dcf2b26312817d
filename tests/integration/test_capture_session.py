"""Our EVCC and SECC over real sockets through a recording TCP proxy: the ciphertext and the key log as the
conformance runner records them, written to pcapng, read back, decrypted and decoded from the file alone."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from examples.minimal_controllers import MinimalEv, MinimalEvse
from mcs_v2g.capture.check import check
from mcs_v2g.capture.decode import decode
from mcs_v2g.capture.pcapng import write_pcapng
from mcs_v2g.capture.reader import read_capture
from mcs_v2g.capture.tls13 import HRR_RANDOM
from mcs_v2g.capture.wire import Connection, Endpoint, Recording, Segment
from mcs_v2g.cli import main
from stack.security.pki import PkiPaths, generate_pki
from stack.security.tls import client_context, server_context, set_tls13_ciphersuites, tls13_ciphersuites_settable
from stack.session.evcc import EvccConfig
from stack.session.timers import EvccTimers
from stack.transport.evcc_client import run_evcc
from stack.transport.secc_server import SeccServer
from tests.prerequisites import requires

FAST = EvccConfig(timers=EvccTimers(loop_interval=0.0, charge_loop_interval=0.0))
SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
needs_suites = requires(
    "tls13-ciphersuites", None if tls13_ciphersuites_settable() else "TLS 1.3 cipher suites not settable here"
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> PkiPaths:
    return generate_pki(tmp_path_factory.mktemp("pki"))


class RecordingProxy:
    """A TCP proxy on ::1 that records every chunk it forwards, with its time, as the runner records."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.segments: list[Segment] = []
        self.ends: list[tuple[Endpoint, Endpoint]] = []
        self.done = asyncio.Event()

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._handle, "::1", 0)
        return self.server.sockets[0].getsockname()[:2]

    async def _handle(self, ev_reader: asyncio.StreamReader, ev_writer: asyncio.StreamWriter) -> None:
        conn = len(self.ends)
        peer = ev_writer.get_extra_info("peername")
        self.ends.append((Endpoint(peer[0], peer[1]), Endpoint(*self.upstream)))
        evse_reader, evse_writer = await asyncio.open_connection(*self.upstream)
        await asyncio.gather(
            self._pump(ev_reader, evse_writer, conn, True), self._pump(evse_reader, ev_writer, conn, False)
        )
        self.done.set()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: int, to_evse: bool) -> None:
        try:
            while data := await reader.read(65536):
                self.segments.append(Segment(time.time(), conn, to_evse, data))
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    def recording(self, tls: bool, keylog: str = "") -> Recording:
        connections = tuple(Connection(i, ev, evse, tls) for i, (ev, evse) in enumerate(self.ends))
        return Recording(connections, tuple(self.segments), (), keylog)


def run_session(server_ctx=None, client_ctx=None) -> RecordingProxy:
    async def main_() -> RecordingProxy:
        async with SeccServer(MinimalEvse, ssl_context=server_ctx) as server:
            proxy = RecordingProxy(await server.start("::1", 0))
            host, port = await proxy.start()
            close, _ = await run_evcc(host, port, MinimalEv(), FAST, ssl_context=client_ctx)
            assert close.ok, close
            await asyncio.wait_for(proxy.done.wait(), 10)
            proxy.server.close()
            return proxy

    return asyncio.run(main_())


def tls_session(
    pki: PkiPaths, tmp_path: Path, suite: str | None = None, client_group: str | None = "auto"
) -> Recording:
    keylog = tmp_path / "keys.log"
    server_ctx = server_context(pki)
    client_ctx = client_context(pki, keylog_file=keylog, ecdh_group=client_group)
    if suite is not None:
        set_tls13_ciphersuites(server_ctx, (suite,))
        set_tls13_ciphersuites(client_ctx, (suite,))
    proxy = run_session(server_ctx, client_ctx)
    return proxy.recording(True, keylog.read_text())


def names(recording: Recording) -> list[str]:
    return [e.message for e in decode(recording).events]


def test_a_tls13_session_decodes_from_the_pcapng_alone(pki, tmp_path) -> None:
    recording = tls_session(pki, tmp_path)
    assert b"SessionSetupReq" not in b"".join(s.data for s in recording.segments)
    path = tmp_path / "run.pcapng"
    write_pcapng(recording, path)
    timeline = decode(read_capture(path))  # no key file: the secrets come from the pcapng
    events = timeline.events
    assert all(e.known for e in events), [e.reason for e in events if not e.known]
    messages = [e.message for e in events]
    assert messages[:4] == ["supportedAppProtocolReq", "supportedAppProtocolRes", "SessionSetupReq", "SessionSetupRes"]
    assert messages.count("DC_ChargeLoopReq") == 10 and messages[-1] == "SessionStopRes"
    assert messages == names(recording)  # the file gives what the recording held
    loop = next(e for e in events if e.message == "DC_ChargeLoopRes")
    assert "EVSEPresentVoltage" in loop.values and loop.response_code == "OK"
    assert check(timeline).findings == []


@needs_suites
@pytest.mark.parametrize("suite", SUITES)
def test_every_tls13_suite_decrypts(pki, tmp_path, suite: str) -> None:
    recording = tls_session(pki, tmp_path, suite)
    path = tmp_path / "run.pcapng"
    write_pcapng(recording, path)
    timeline = decode(read_capture(path))
    assert timeline.events and all(e.known for e in timeline.events), timeline.notes
    assert not timeline.notes


def test_without_the_keys_tls_is_listed_not_decoded(pki, tmp_path) -> None:
    recording = tls_session(pki, tmp_path)
    timeline = decode(Recording(recording.connections, recording.segments))
    assert timeline.events == () and "no key log" in timeline.notes[0]
    wrong = "\n".join(line[:-4] + "0000" for line in recording.keylog.splitlines())
    timeline = decode(Recording(recording.connections, recording.segments, (), wrong))
    assert timeline.events == () and any("does not decrypt with the handshake keys" in n for n in timeline.notes)


def test_keylog_file_option(pki, tmp_path, capsys) -> None:
    recording = tls_session(pki, tmp_path)
    path = tmp_path / "nokeys.pcapng"
    write_pcapng(Recording(recording.connections, recording.segments), path)
    keys = tmp_path / "keys.log"
    assert main(["capture", "decode", str(path)]) == 0
    assert "SessionSetupReq" not in capsys.readouterr().out
    assert main(["capture", "decode", str(path), "--keylog", str(keys), "--json", "--check"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["findings"] == [] and out["events"][2]["message"] == "SessionSetupReq"


def test_a_clean_tcp_session_has_no_findings(tmp_path, capsys) -> None:
    recording = run_session().recording(False)
    path = tmp_path / "tcp.pcapng"
    write_pcapng(recording, path)
    assert main(["pcap", "decode", str(path), "--check"]) == 0
    out = capsys.readouterr().out
    assert "findings: 0" in out and "DC_ChargeLoopReq" in out and "EVPresentVoltage=" in out


def test_a_hello_retry_request_is_followed(pki, tmp_path) -> None:
    # the client offers OpenSSL's default key share (X25519); the SECC takes only P-521 and asks again
    recording = tls_session(pki, tmp_path, client_group=None)
    server_hellos = recording.stream(0, False)
    assert HRR_RANDOM in server_hellos[:200]
    timeline = decode(recording)
    assert not timeline.notes and timeline.events[2].message == "SessionSetupReq"
