"""The regression inputs of the fuzz targets (tests/fuzz/regressions/).

`regressions.jsonl` holds one JSON object per line: `target` (a name of tools/fuzz/targets.py), `reason`
(escaped, slow, memory, hang), `detail`, `found` (which run), the input as `hex`, or as `file` (a file of this
folder, gzip-compressed when it ends in .gz: large inputs), and `awaiting`: null once the bug is fixed, else the
module whose owner must fix it (its test is then a strict expected failure, so that the fix is noticed).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

REGRESSIONS = Path(__file__).resolve().parent / "regressions"


def load_regressions() -> list[dict]:
    return [json.loads(line) for line in (REGRESSIONS / "regressions.jsonl").read_text().splitlines() if line.strip()]


def regression_input(record: dict) -> bytes:
    if "hex" in record:
        return bytes.fromhex(record["hex"])
    data = (REGRESSIONS / record["file"]).read_bytes()
    return gzip.decompress(data) if record["file"].endswith(".gz") else data
