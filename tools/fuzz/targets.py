"""The fuzz targets: one parser each, the bytes it takes, and the error types it may raise on bad input.

A target's `run(data)` feeds the bytes to one parser of the product. Whatever it raises that is not one of
`allowed` (or a subclass) breaks the contract (tools/fuzz/README.md has the table). Product modules are
imported lazily so that the atheris worker can instrument them before they load.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

# schema ids of stack/schemas.py whose EXI documents are fuzzed, and those also fuzzed as fragments
DOCUMENT_SCHEMAS = ("appProtocol", "iso20-common", "iso20-dc", "iso20-ac", "iso20-acdp", "iso20-wpt", "xmldsig")
FRAGMENT_SCHEMAS = ("xmldsig",)

EXI_MAX_LEN = 64 * 1024 + 8  # the default V2GTP payload limit, plus a header
SDP_MAX_LEN = 64
CONFIG_MAX_LEN = 8 * 1024
SCRATCH_ENV = "MCS_V2G_FUZZ_SCRATCH"


@dataclass(frozen=True, slots=True)
class Target:
    """One parser under test."""

    name: str
    kind: str  # exi | frame | sdp | config: picks the seeds (tools/fuzz/corpus.py)
    entry: str  # what is called, for the contract table
    allowed_names: tuple[str, ...]  # "module:Class" of the error types that may escape
    max_len: int
    call: Callable[[bytes], object]

    @property
    def allowed(self) -> tuple[type[BaseException], ...]:
        return _classes(self.allowed_names)

    def run(self, data: bytes) -> object:
        return self.call(data)


@cache
def _classes(names: tuple[str, ...]) -> tuple[type[BaseException], ...]:
    out = []
    for name in names:
        module, _, attr = name.partition(":")
        out.append(getattr(importlib.import_module(module), attr))
    return tuple(out)


def _exi_document(schema: str) -> Callable[[bytes], object]:
    def call(data: bytes) -> object:
        from stack import exi

        return exi.decode(data, schema)

    return call


def _exi_fragment(schema: str) -> Callable[[bytes], object]:
    def call(data: bytes) -> object:
        from stack import exi

        return exi.decode_fragment(data, schema)

    return call


def _v2gtp(data: bytes) -> object:
    """The whole-frame parser, then the incremental reader fed in chunks whose sizes the first byte picks."""
    from stack import v2gtp

    with contextlib.suppress(v2gtp.V2gtpError):
        v2gtp.parse_frame(data)
    reader = v2gtp.FrameReader()
    step = 1 + (data[0] % 16 if data else 0)
    frames = []
    for start in range(0, len(data), step):
        frames += reader.feed(data[start : start + step])
    return frames


def _channel_frame(data: bytes) -> object:
    from stack import channel

    return channel.decode_frame(data)


def _sdp_request(data: bytes) -> object:
    from stack import sdp

    return sdp.SdpRequest.from_frame(data)


def _sdp_response(data: bytes) -> object:
    from stack import sdp

    return sdp.SdpResponse.from_frame(data)


class _TomlFile:
    """One scratch file per process that every config input is written to (the loaders take a path): in the
    folder the runner names in $MCS_V2G_FUZZ_SCRATCH (it removes it), else in a new one removed at exit; in
    memory (/dev/shm) where there is one, so that a disk busy with other work does not make an input slow."""

    path: Path | None = None

    @classmethod
    def write(cls, data: bytes) -> Path:
        if cls.path is None:
            cls.path = scratch_folder() / f"input-{os.getpid()}.toml"
        with open(cls.path, "wb") as f:
            f.write(data)
        return cls.path


def scratch_folder() -> Path:
    """$MCS_V2G_FUZZ_SCRATCH, or a new folder (in /dev/shm where there is one) removed when the process exits."""
    named = os.environ.get(SCRATCH_ENV)
    if named:
        return Path(named)
    folder = Path(tempfile.mkdtemp(prefix="mcs-v2g-fuzz-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def _scenario(data: bytes) -> object:
    from mcs_v2g.sim import scenario

    return scenario.load(_TomlFile.write(data))


def _charger(data: bytes) -> object:
    from evse_emulator import config

    return config.load_charger_config(_TomlFile.write(data))


def _truck(data: bytes) -> object:
    from ev_emulator import config

    return config.load_truck_config(_TomlFile.write(data))


EXI_ERROR = ("stack.exi.errors:ExiError",)


def _build() -> dict[str, Target]:
    targets = [
        Target(f"exi.{s}", "exi", f"stack.exi.decode(data, {s!r})", EXI_ERROR, EXI_MAX_LEN, _exi_document(s))
        for s in DOCUMENT_SCHEMAS
    ]
    targets += [
        Target(
            f"exi.{s}.fragment",
            "exi",
            f"stack.exi.decode_fragment(data, {s!r})",
            EXI_ERROR,
            EXI_MAX_LEN,
            _exi_fragment(s),
        )
        for s in FRAGMENT_SCHEMAS
    ]
    targets += [
        Target(
            "v2gtp",
            "frame",
            "stack.v2gtp.parse_frame(data); FrameReader().feed(chunks)",
            ("stack.v2gtp:V2gtpError",),
            EXI_MAX_LEN,
            _v2gtp,
        ),
        Target(
            "channel.frame",
            "frame",
            "stack.channel.decode_frame(data)",
            ("stack.channel:ChannelError",),
            EXI_MAX_LEN,
            _channel_frame,
        ),
        Target(
            "sdp.request",
            "sdp",
            "stack.sdp.SdpRequest.from_frame(data)",
            ("stack.sdp:SdpError",),
            SDP_MAX_LEN,
            _sdp_request,
        ),
        Target(
            "sdp.response",
            "sdp",
            "stack.sdp.SdpResponse.from_frame(data)",
            ("stack.sdp:SdpError",),
            SDP_MAX_LEN,
            _sdp_response,
        ),
        Target(
            "config.scenario",
            "config",
            "mcs_v2g.sim.scenario.load(path)",
            ("mcs_v2g.sim.scenario:ScenarioError",),
            CONFIG_MAX_LEN,
            _scenario,
        ),
        Target(
            "config.charger",
            "config",
            "evse_emulator.config.load_charger_config(path)",
            ("evse_emulator.config:ChargerConfigError",),
            CONFIG_MAX_LEN,
            _charger,
        ),
        Target(
            "config.truck",
            "config",
            "ev_emulator.config.load_truck_config(path)",
            ("ev_emulator.config:TruckConfigError",),
            CONFIG_MAX_LEN,
            _truck,
        ),
    ]
    return {t.name: t for t in targets}


TARGETS: dict[str, Target] = _build()


def target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise KeyError(f"unknown fuzz target {name!r}; known: {', '.join(TARGETS)}") from None


def contract_table() -> str:
    """The Markdown table of tools/fuzz/README.md: target, entry point, error types that may escape."""
    rows = ["| target | entry point | may raise (and subclasses) |", "| --- | --- | --- |"]
    for t in TARGETS.values():
        allowed = ", ".join(f"`{n.replace(':', '.')}`" for n in t.allowed_names)
        rows.append(f"| `{t.name}` | `{t.entry}` | {allowed} |")
    return "\n".join(rows)
