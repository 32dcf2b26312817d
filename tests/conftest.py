"""Shared test fixtures: where the real EXI vectors live."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

VECTORS_DIR = Path(os.environ.get("MCS_V2G_VECTORS", Path(__file__).resolve().parents[2] / "shared" / "vectors"))

# vector "schema" labels -> our schema ids
VECTOR_SCHEMAS = {
    "AppProtocol": "appProtocol",
    "iso-20 CommonMessages": "iso20-common",
    "iso-20 DC": "iso20-dc",
    "iso-20 AC": "iso20-ac",
    "iso-20 ACDP": "iso20-acdp",
    "iso-20 WPT": "iso20-wpt",
}


def load_vectors() -> list[dict]:
    """Every AppProtocol and ISO 15118-20 record of ../shared/vectors (empty when the folder is absent)."""
    records = []
    if not VECTORS_DIR.is_dir():
        return records
    for path in sorted(VECTORS_DIR.glob("*.jsonl")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            rec = json.loads(line)
            if rec["schema"] in VECTOR_SCHEMAS:
                rec["schema_id"] = VECTOR_SCHEMAS[rec["schema"]]
                rec["id"] = f"{path.stem}:{n}:{rec['message']}"
                rec["source_file"] = path.name
                records.append(rec)
    return records


@pytest.fixture(scope="session")
def vectors() -> list[dict]:
    records = load_vectors()
    if not records:
        pytest.skip(f"no EXI vectors at {VECTORS_DIR} (set MCS_V2G_VECTORS)")
    return records
