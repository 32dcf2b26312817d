"""Crash files: every contract violation worth keeping, as the input bytes plus one JSON line that says why.

`<folder>/<target>--<reason>-<id>.bin` holds the input; `<folder>/<target>.jsonl` one record per saved file
(target, reason, detail, ms, peak bytes, hex). Escapes are kept once per signature (exception type and the
innermost frame in this repository); for slow and memory, each input worse than the worst so far is kept.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .contract import Violation


class CrashStore:
    """The crash files of one target in one run folder."""

    def __init__(self, folder: Path, target: str) -> None:
        self.folder = folder
        self.target = target
        self.saved = 0
        self._seen: set[str] = set()
        self._worst: dict[str, float] = {}
        folder.mkdir(parents=True, exist_ok=True)

    def record(self, violation: Violation, data: bytes) -> Path | None:
        """Save the input when it is new (or the worst of its kind); the file written, if any."""
        if violation.reason in ("slow", "memory"):
            figure = violation.ms if violation.reason == "slow" else violation.peak_bytes
            if figure <= self._worst.get(violation.reason, -1.0):
                return None
            self._worst[violation.reason] = figure
        elif violation.signature in self._seen:
            return None
        self._seen.add(violation.signature)
        digest = hashlib.sha1(data).hexdigest()[:12]
        path = self.folder / f"{self.target}--{violation.reason}-{digest}.bin"
        path.write_bytes(data)
        record = {
            "target": self.target,
            "reason": violation.reason,
            "detail": violation.detail,
            "ms": round(violation.ms, 2),
            "peak_bytes": violation.peak_bytes,
            "file": path.name,
            "hex": data.hex() if len(data) <= 4096 else data[:4096].hex() + "...",
        }
        with open(self.folder / f"{self.target}.jsonl", "a") as log:
            log.write(json.dumps(record) + "\n")
        self.saved += 1
        return path
