"""Where the shared EXI vectors are and how their schema labels map to ours (tests, benchmarks and the fuzzer
read them through this one module)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# vector "schema" labels -> our schema ids (records of other protocols are left out)
VECTOR_SCHEMAS = {
    "AppProtocol": "appProtocol",
    "iso-20 CommonMessages": "iso20-common",
    "iso-20 DC": "iso20-dc",
    "iso-20 AC": "iso20-ac",
    "iso-20 ACDP": "iso20-acdp",
    "iso-20 WPT": "iso20-wpt",
}


def vectors_dir() -> Path | None:
    """`$MCS_V2G_VECTORS`, else the first `shared/vectors` folder in the checkout or above it (CI lays `shared/`
    beside the clone); None when there is none."""
    if env := os.environ.get("MCS_V2G_VECTORS"):
        return Path(env)
    for folder in (REPO, *REPO.parents):
        if (folder / "shared" / "vectors").is_dir():
            return folder / "shared" / "vectors"
    return None


def vector_files() -> list[Path]:
    """The JSONL files of the shared vectors, sorted (none when the folder is absent)."""
    folder = vectors_dir()
    if folder is None or not folder.is_dir():
        return []
    return sorted(folder.glob("*.jsonl"))


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of one JSONL file, in order."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
