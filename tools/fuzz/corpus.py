"""Seed inputs per target kind: the shared vectors (../shared/vectors, or $MCS_V2G_VECTORS), the benchmark
messages, and the TOML examples of the repository (README.md blocks, tools/fuzz/seeds/*.toml)."""

from __future__ import annotations

import contextlib
import hashlib
import re
from functools import cache
from pathlib import Path

from tools.vectors import VECTOR_SCHEMAS, read_records, vector_files

from .targets import Target

REPO = Path(__file__).resolve().parents[2]
SEEDS_DIR = Path(__file__).resolve().parent / "seeds"
TOML_DICT = SEEDS_DIR / "toml.dict"

SDP_LABELS = {"SDP (V2GTP 0x9000, not EXI)": 0x9000, "SDP (V2GTP 0x9001, not EXI)": 0x9001}
OTHER_SEEDS = 300  # seeds of other schemas given to a decoder, at most about
# payload types of the records that do not name one (-2 and DIN ride on 0x8001 after SAP)
_DEFAULT_PAYLOAD_TYPE = {"iso-2": 0x8001, "din": 0x8001, "AppProtocol": 0x8001, "iso-20 CommonMessages": 0x8002}


@cache
def vector_records() -> tuple[dict, ...]:
    """Every record of the shared vectors (none when the folder is absent)."""
    return tuple(rec for path in vector_files() for rec in read_records(path))


def seeds(target: Target) -> list[bytes]:
    """The seed inputs of a target, without duplicates, the most relevant first."""
    found = {"exi": _exi_seeds, "frame": _frame_seeds, "sdp": _sdp_seeds, "config": _config_seeds}[target.kind](target)
    return list(dict.fromkeys(s for s in found if len(s) <= target.max_len))


def _exi_seeds(target: Target) -> list[bytes]:
    """The target schema's vectors, then every other EXI vector (-2, DIN and the other -20 sets: wrong-schema
    input is what a decoder meets first), then our benchmark messages."""
    schema = target.name.split(".")[1]
    own: list[bytes] = []
    other: list[bytes] = []
    for rec in vector_records():
        if rec["schema"] in SDP_LABELS:
            continue
        data = bytes.fromhex(rec["hex"])
        (own if VECTOR_SCHEMAS.get(rec["schema"]) == schema else other).append(data)
    return own + _thinned(other) + list(_bench_payloads())


def _frame_seeds(target: Target) -> list[bytes]:
    """Every vector in its V2GTP frame (SDP ones included); -2 and DIN thinned out, as for the decoders."""
    from stack import v2gtp

    ours: list[bytes] = []
    legacy: list[bytes] = []
    for rec in vector_records():
        payload = bytes.fromhex(rec["hex"])
        if rec["schema"] in SDP_LABELS:
            ours.append(v2gtp.build(SDP_LABELS[rec["schema"]], payload))
            continue
        payload_type = rec.get("v2gtp_payload_type")
        pt = int(payload_type, 16) if payload_type else _DEFAULT_PAYLOAD_TYPE.get(rec["schema"], 0x8002)
        (ours if rec["schema"] in VECTOR_SCHEMAS else legacy).append(v2gtp.build(pt, payload))
    return ours + _thinned(legacy) + [v2gtp.build(0x8002, p) for p in _bench_payloads()]


def _sdp_seeds(target: Target) -> list[bytes]:
    from ipaddress import IPv6Address

    from stack import sdp, v2gtp

    frames = [
        v2gtp.build(SDP_LABELS[r["schema"]], bytes.fromhex(r["hex"]))
        for r in vector_records()
        if r["schema"] in SDP_LABELS
    ]
    frames.append(sdp.SdpRequest().to_frame())
    frames.append(sdp.SdpResponse(IPv6Address("fe80::1"), 50000, sdp.Security.NO_TLS).to_frame())
    return frames


def _config_seeds(target: Target) -> list[bytes]:
    """The README's TOML blocks, the truck config's documented example, and tools/fuzz/seeds/*.toml."""
    texts = re.findall(r"```toml\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    truck_doc = (REPO / "ev_emulator" / "config.py").read_text().split('"""')[1]
    texts.append("\n".join(line for line in truck_doc.splitlines() if "=" in line))
    texts += [p.read_text() for p in sorted(SEEDS_DIR.glob("*.toml"))]
    return [t.encode() for t in texts]


@cache
def _bench_payloads() -> tuple[bytes, ...]:
    from stack import exi
    from tools.bench.samples import BENCH_MESSAGES

    payloads = []
    for build in BENCH_MESSAGES.values():
        with contextlib.suppress(exi.ExiError):  # a codec being changed: the vectors still seed
            payloads.append(exi.encode(build()))
    return tuple(payloads)


def _thinned(inputs: list[bytes], keep: int = OTHER_SEEDS) -> list[bytes]:
    """At most about `keep` of `inputs`, evenly spread (the -2 and DIN vectors outnumber ours 15 to 1)."""
    return inputs[:: max(1, len(inputs) // keep)]


def write_folder(target: Target, folder: Path) -> int:
    """Put the seeds of `target` into its corpus folder (kept: a later run goes on from what it found)."""
    folder.mkdir(parents=True, exist_ok=True)
    found = seeds(target)
    for data in found:
        (folder / f"seed-{hashlib.sha1(data).hexdigest()[:16]}").write_bytes(data)
    return len(found)


def read_folder(folder: Path, limit: int | None = None) -> list[bytes]:
    """The inputs of a corpus folder, in name order."""
    paths = sorted(p for p in folder.iterdir() if p.is_file())[:limit]
    return [p.read_bytes() for p in paths]
