"""Every real AppProtocol / ISO 15118-20 EXI message decodes, re-encodes to the same bytes, and its XML
view is valid against the XSD and parses back to the same message."""

from __future__ import annotations

from collections import Counter

import pytest

from stack import exi
from tests.conftest import load_vectors, vectors_missing
from tests.prerequisites import requires

# Records known to be malformed at the source, excluded on purpose: none so far.
KNOWN_MALFORMED: set[str] = set()

VECTORS = [v for v in load_vectors() if v["id"] not in KNOWN_MALFORMED]
needs_vectors = requires("vectors", vectors_missing(VECTORS))


@needs_vectors
@pytest.mark.parametrize("rec", VECTORS or [{}], ids=[v["id"] for v in VECTORS] or ["no-vectors"])
def test_vector_round_trip(rec: dict) -> None:
    data = bytes.fromhex(rec["hex"])
    msg = exi.decode(data, rec["schema_id"])
    assert exi.encode(msg, schema=rec["schema_id"]) == data
    xml = exi.to_xml(msg)
    exi.validate_xml(xml)
    assert exi.from_xml(xml) == msg


@needs_vectors
@pytest.mark.parametrize("trailer", [b"\x00", b"\xff\xff", bytes(range(16))], ids=["zero", "ones", "garbage"])
def test_trailing_bytes_after_the_document_are_ignored(trailer: bytes) -> None:
    """Real cars send bytes after the end of the EXI document; the decoder reads the document and stops."""
    for rec in VECTORS[::7]:
        data = bytes.fromhex(rec["hex"])
        assert exi.decode(data + trailer, rec["schema_id"]) == exi.decode(data, rec["schema_id"])


@needs_vectors
def test_vector_counts_per_source(capsys: pytest.CaptureFixture[str]) -> None:
    counts = Counter((v["source_file"], v["schema"]) for v in VECTORS)
    with capsys.disabled():
        print("\nEXI vectors round-tripped byte-identically, per source:")
        for (source, schema), n in sorted(counts.items()):
            print(f"  {source:40s} {schema:24s} {n:5d}")
        print(f"  {'total':40s} {'':24s} {sum(counts.values()):5d}")
    assert sum(counts.values()) == len(VECTORS)
