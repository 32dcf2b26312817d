"""Shared test fixtures: where the real EXI vectors live; the prerequisite plugin (tests/prerequisites.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.mosquitto import broker  # noqa: F401  (the real-broker fixture of the MQTT tests)
from tests.prerequisites import (  # noqa: F401  (hooks of the prerequisite plugin)
    pytest_configure,
    pytest_make_collect_report,
    pytest_runtest_makereport,
    pytest_runtest_setup,
    pytest_terminal_summary,
    require,
)
from tools.vectors import VECTOR_SCHEMAS, vector_files, vectors_dir

REPO = Path(__file__).resolve().parents[1]

VECTORS_DIR = vectors_dir()


def load_vectors() -> list[dict[str, Any]]:
    """Every AppProtocol and ISO 15118-20 record of the shared vectors (empty when there are none)."""
    records: list[dict[str, Any]] = []
    for path in vector_files():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            rec = json.loads(line)
            if rec["schema"] in VECTOR_SCHEMAS:
                rec["schema_id"] = VECTOR_SCHEMAS[rec["schema"]]
                rec["id"] = f"{path.stem}:{n}:{rec['message']}"
                rec["source_file"] = path.name
                records.append(rec)
    return records


def vectors_missing(records: list[dict[str, Any]]) -> str | None:
    """Why `records` (what `load_vectors` found) is empty, for `require("vectors", ...)`; None when it is not."""
    if records:
        return None
    if VECTORS_DIR is None:
        return f"no shared/vectors folder in {REPO} or above it (set MCS_V2G_VECTORS)"
    if not VECTORS_DIR.is_dir():
        return f"{VECTORS_DIR} is not a folder (MCS_V2G_VECTORS)"
    return f"no AppProtocol or ISO 15118-20 record in {VECTORS_DIR}/*.jsonl"


@pytest.fixture(scope="session")
def vectors() -> list[dict[str, Any]]:
    records = load_vectors()
    require("vectors", vectors_missing(records))
    return records


@pytest.fixture(autouse=True, scope="session")
def _test_pki_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Test PKIs go to a temporary folder (child processes inherit it), never to the user's data directory."""
    old = os.environ.get("MCS_V2G_PKI_DIR")
    os.environ["MCS_V2G_PKI_DIR"] = str(tmp_path_factory.mktemp("pki-home"))
    yield
    if old is None:
        os.environ.pop("MCS_V2G_PKI_DIR", None)
    else:
        os.environ["MCS_V2G_PKI_DIR"] = old
