"""Josev's EXI codec as an oracle: its own venv, a bridge process, and a small typed client.

Josev (PyPI `iso15118`) is never installed into the project's venv: `ensure_josev` builds a venv of its own
(under `.peers/josev`, or `$MCS_V2G_PEERS_DIR/josev`), and `JosevExi` runs `josev_bridge.py` with that venv's
python, talking JSON lines. This module imports nothing of Josev's and works without it installed.
"""

from __future__ import annotations

import collections
import fcntl
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from stack import schemas

JOSEV_REQUIREMENTS = ("iso15118==0.31.2", "aiofile")  # aiofile: imported by its EVCC, missing from its deps
# the grammar sets of V2G documents (schema id -> namespace, from the registry)
SCHEMAS = {s.id: s.namespace for s in schemas.SCHEMA_SETS.values() if s.payload_type is not None}
# grammar sets for EXI fragments: those of SCHEMAS, and xmldsig on its own (Josev's `XSDCore`)
FRAGMENT_SCHEMAS = {s.id: s.namespace for s in schemas.SCHEMA_SETS.values()}
BRIDGE = Path(__file__).with_name("josev_bridge.py")
_MARKER = ".mcs-v2g-installed"
_REPO_ROOT = Path(__file__).resolve().parents[2]

BenchOp = Literal["encode", "decode", "encode_xml", "decode_xml"]


class PeerUnavailable(Exception):
    """Josev cannot run here (no java, venv or pip failure); `reason` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OracleError(Exception):
    """Josev's codec (Java side) refused the request; the bridge keeps serving."""


class BridgeError(RuntimeError):
    """The bridge process died, answered garbage or timed out; the `JosevExi` is closed."""


def josev_venv_dir() -> Path:
    """`$MCS_V2G_PEERS_DIR/josev` if set, else `<repo root>/.peers/josev`."""
    peers = os.environ.get("MCS_V2G_PEERS_DIR")
    return (Path(peers) if peers else _REPO_ROOT / ".peers") / "josev"


def ensure_josev(progress: Callable[[str], object] = print) -> Path:
    """Create Josev's venv unless a finished one is there; return the venv directory."""
    if shutil.which("java") is None:
        raise PeerUnavailable("java is not on PATH (Josev's EXI codec runs in a JVM)")
    venv = josev_venv_dir()
    wanted = " ".join(JOSEV_REQUIREMENTS)
    if _installed(venv, wanted):
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / "josev.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be building it right now
        if not _installed(venv, wanted):
            _build_venv(venv, wanted, progress)
    return venv


def _installed(venv: Path, wanted: str) -> bool:
    marker = venv / _MARKER
    return marker.is_file() and marker.read_text().strip() == wanted and (venv / "bin" / "python").exists()


def _build_venv(venv: Path, wanted: str, progress: Callable[[str], object]) -> None:
    if venv.exists() and any(venv.iterdir()) and not (venv / "pyvenv.cfg").exists():
        raise PeerUnavailable(f"{venv} exists and is not a venv")
    progress(f"creating Josev's venv at {venv} ({wanted})")
    _run([sys.executable, "-m", "venv", "--clear", str(venv)], "python -m venv", timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    _run([*pip, "-q", *JOSEV_REQUIREMENTS], f"pip install {wanted}", timeout=1800)
    (venv / _MARKER).write_text(wanted + "\n")
    progress("Josev's venv is ready")


def _run(command: list[str], what: str, timeout: float) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PeerUnavailable(f"{what} failed: {exc}") from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")] or lines or ["no output"]
        raise PeerUnavailable(f"{what} failed (exit {done.returncode}): {errors[-1].strip()}")


class JosevExi:
    """Josev's EXI codec in a bridge process: EXIficient 1.55 with the jar's grammars and options.

    `string_table=False` is Josev's own configuration (the V2G profile); `True` is the same grammars and
    fidelity options with EXIficient's default string-table options. `grammars="xsd"` builds the grammars
    with EXIficient from the official XSDs shipped in the iso15118 package instead of the jar's compiled
    ones (they agree byte for byte; see tools/peers/README.md).
    """

    def __init__(
        self,
        *,
        grammars: Literal["josev", "xsd"] = "josev",
        timeout: float = 60.0,
        start_timeout: float = 180.0,
        progress: Callable[[str], object] = print,
    ) -> None:
        self.grammars = grammars
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.progress = progress
        self.info: dict[str, Any] = {}
        self._process: subprocess.Popen[str] | None = None
        self._answers: queue.Queue[str | None] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._lock = threading.Lock()

    # ---- lifecycle ----

    def __enter__(self) -> JosevExi:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        """Make sure the venv exists, start the bridge and wait for its JVM (raises PeerUnavailable)."""
        if self._process is not None:
            return
        venv = ensure_josev(self.progress)
        self._process = subprocess.Popen(
            [str(venv / "bin" / "python"), "-I", str(BRIDGE), self.grammars],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
            cwd=venv,  # Josev reads a .env from its working directory
        )
        assert self._process.stdout is not None and self._process.stderr is not None
        threading.Thread(target=self._pump, args=(self._process.stdout, self._answers.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self._process.stderr, self._keep_stderr), daemon=True).start()
        try:
            self.info = self._receive(self.start_timeout)
        except (OracleError, BridgeError) as exc:
            self.close()
            raise PeerUnavailable(f"Josev bridge did not start: {exc}") from None

    def close(self) -> None:
        """Stop the bridge (its JVM exits with it)."""
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        try:
            process.stdin.close()
            process.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait(timeout=15)

    # ---- the XML path: EXIficient's SAX encoder/decoder ----

    def encode_xml(
        self,
        xml_text: str,
        *,
        string_table: bool = False,
        validate: bool = True,
        fragment: bool = False,
        schema: str | None = None,
    ) -> bytes:
        """EXI bytes for an XML message; its root element's namespace picks the grammar.

        `validate` checks the XML against the official XSD first (Xerces): non-strict EXIficient would
        otherwise encode schema deviations (unknown elements, out-of-range values) without a word.

        `fragment=True` gives an EXI fragment (EXIficient's `setFragment(true)`, otherwise the same grammars
        and options) holding the root element of `xml_text`, in the grammar set `schema` (required: a
        schema id of SCHEMAS or "xmldsig", or a namespace). A fragment's root may be a local element
        (PnC_AReqAuthorizationMode), which Xerces cannot validate alone: the bridge then encodes it once with
        strict grammars instead, which refuse unknown or misplaced elements and attributes and values outside
        their EXI datatype, but not length or pattern facets (EXI does not encode those).
        """
        request: dict[str, Any] = {"op": "encode_xml", "xml": xml_text, "string_table": string_table}
        request["validate"] = validate
        if fragment:
            if schema is None:
                raise ValueError("encode_xml(fragment=True) needs schema=")
            request.update(fragment=True, schema=_schema(schema, fragment=True))
        return bytes.fromhex(self._call(request))

    def decode_to_xml(self, data: bytes, schema: str, *, string_table: bool = False, fragment: bool = False) -> str:
        """EXIficient's XML for an EXI stream (no XML declaration; prefixes are EXIficient's ns3, ns4...).

        `fragment=True` decodes an EXI fragment of the grammar set `schema` (which may be "xmldsig").
        """
        request = {"op": "decode_to_xml", "hex": data.hex(), "schema": _schema(schema, fragment=fragment)}
        return str(self._call({**request, "string_table": string_table, "fragment": fragment}))

    def fragment_elements(self, schema: str) -> list[str]:
        """The element qnames (`{uri}local`) of EXIficient's fragment grammar for a grammar set, in
        event-code order: SE(qname) has the code of its index, SE(*) and ED come after them."""
        return [str(q) for q in self._call({"op": "fragment_elements", "schema": _schema(schema, fragment=True)})]

    # ---- Josev's JSON API (what Josev itself calls) ----

    def encode_json(self, json_text: str, ns: str, *, string_table: bool = False) -> bytes:
        """Josev's `codec.encode(json, namespace)`; `ns` is a schema id or its namespace URN."""
        request = {"op": "encode_json", "json": json_text, "schema": _schema(ns), "string_table": string_table}
        return bytes.fromhex(self._call(request))

    def decode_json(self, data: bytes, ns: str, *, string_table: bool = False) -> str:
        """Josev's `codec.decode(bytes, namespace)`: wire JSON text."""
        request = {"op": "decode_json", "hex": data.hex(), "schema": _schema(ns), "string_table": string_table}
        return str(self._call(request))

    def bench(
        self,
        op: BenchOp,
        payload: bytes | str,
        schema: str,
        n: int,
        *,
        string_table: bool = False,
        warmup: int = 1,
    ) -> list[float]:
        """Seconds per call, timed inside the bridge around the codec call, after `warmup` untimed calls.

        `encode`/`decode` time Josev's JSON API, `encode_xml`/`decode_xml` EXIficient's SAX API. `payload` is
        the EXI stream (for the encode ops it is decoded once, untimed, to the JSON or XML to encode), or
        the wire JSON / XML text itself for the encode ops.
        """
        request: dict[str, Any] = {"op": "bench", "bench_op": op, "schema": _schema(schema), "n": n}
        request.update(string_table=string_table, warmup=warmup)
        request.update({"text": payload} if isinstance(payload, str) else {"hex": payload.hex()})
        return [float(t) for t in self._call(request, timeout=self.timeout + (n + warmup) * 5.0)]

    # ---- plumbing ----

    def _call(self, request: dict[str, Any], timeout: float | None = None) -> Any:
        with self._lock:
            if self._process is None:
                raise BridgeError("the Josev bridge is not running")
            assert self._process.stdin is not None
            try:
                self._process.stdin.write(json.dumps(request) + "\n")
                self._process.stdin.flush()
            except OSError as exc:
                raise self._died(f"cannot write to the bridge: {exc}") from None
            return self._receive(timeout or self.timeout)

    def _receive(self, timeout: float) -> Any:
        try:
            line = self._answers.get(timeout=timeout)
        except queue.Empty:
            raise self._died(f"no answer from the Josev bridge within {timeout:.0f} s") from None
        if line is None:
            raise self._died("the Josev bridge exited")
        try:
            answer = json.loads(line)
        except json.JSONDecodeError:
            raise self._died(f"garbage from the Josev bridge: {line[:200]!r}") from None
        if not answer.get("ok"):
            raise OracleError(answer.get("error", "unknown error"))
        return answer["result"]

    def _died(self, what: str) -> BridgeError:
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
        code = process.wait(timeout=15) if process is not None else None
        self._process = None
        tail = " | ".join(line.strip() for line in list(self._stderr)[-5:])
        return BridgeError(f"{what} (exit code {code}){': ' + tail if tail else ''}")

    def _keep_stderr(self, line: str | None) -> None:
        if line is not None:
            self._stderr.append(line)

    @staticmethod
    def _pump(stream: Any, sink: Callable[[Any], object]) -> None:
        for line in stream:
            sink(line)
        sink(None)


def _schema(name: str, *, fragment: bool = False) -> str:
    """Our schema id for a schema id or a namespace URN (fragments also know "xmldsig")."""
    known = FRAGMENT_SCHEMAS if fragment else SCHEMAS
    if name in known:
        return name
    for schema, namespace in known.items():
        if namespace == name:
            return schema
    raise ValueError(f"unknown schema {name!r}: one of {', '.join(known)} or their namespaces")


def xml_infoset(xml_text: str) -> tuple[Any, ...]:
    """A comparable form of an XML message: expanded names, attributes, non-blank text; prefixes ignored."""

    def walk(element: ET.Element) -> tuple[Any, ...]:
        text = (element.text or "").strip()
        return (element.tag, tuple(sorted(element.attrib.items())), text, tuple(walk(c) for c in element))

    return walk(ET.fromstring(xml_text.strip()))
