"""The release run: one worker process per target, `jobs` at a time, progress while they run, one row each.

A worker that dies (libFuzzer's RSS limit, a crash below Python) is recorded as a crash of its target and
started again for the inputs it had left, at most `MAX_RESTARTS` times.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .corpus import REPO, write_folder
from .targets import SCRATCH_ENV, TARGETS, scratch_folder

MAX_RESTARTS = 3
PROGRESS_EVERY_S = 30.0
_COVERAGE = re.compile(r"\bcov: (\d+) ft: (\d+)")


def available_engine(wanted: str = "auto") -> str:
    """`atheris` when it imports (and is wanted), else `hypothesis`."""
    if wanted in ("auto", "atheris"):
        try:
            import atheris  # type: ignore[import-untyped]  # noqa: F401
        except ImportError:
            if wanted == "atheris":
                raise
        else:
            return "atheris"
    return "hypothesis"


@dataclass
class Job:
    name: str
    runs: int
    log: Path
    process: subprocess.Popen | None = None
    finished: list[dict] = field(default_factory=list)  # stats of the workers that ended (restarts)
    restarts: int = 0

    def current(self, out: Path) -> dict | None:
        path = out / "stats" / f"{self.name}.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def inputs_done(self, out: Path) -> int:
        running = self.current(out) if self.process is not None else None
        return sum(s["inputs"] for s in self.finished) + (running["inputs"] if running else 0)


def run(
    names: list[str],
    *,
    runs: int,
    jobs: int,
    engine: str,
    out: Path,
    seed: int = 1,
    progress: Callable[[str], object] = lambda line: print(line, flush=True),
) -> list[dict]:
    """Fuzz each target for `runs` inputs; the final row of each (see `row`)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    for name in names:
        count = write_folder(TARGETS[name], out / "corpus" / name)
        progress(f"fuzz {name}: {count} seeds")
    scratch = str(scratch_folder())  # the config targets' files, removed when this process exits
    queue = [Job(name, runs, out / "logs" / f"{name}.log") for name in names]
    active: list[Job] = []
    done: list[Job] = []
    started = time.monotonic()
    last_progress = started
    while queue or active:
        while queue and len(active) < jobs:
            job = queue.pop(0)
            _start(job, job.runs, engine, out, seed, scratch)
            active.append(job)
        time.sleep(1.0)
        for job in list(active):
            if job.process is None or job.process.poll() is None:
                continue
            stats = job.current(out)
            if stats is not None:
                job.finished.append(stats)
            left = runs - job.inputs_done(out)
            if job.process.returncode != 0 and left > 0 and job.restarts < MAX_RESTARTS:
                progress(f"fuzz {job.name}: worker exited {job.process.returncode}, restarting for {left:,} inputs")
                job.restarts += 1
                _start(job, left, engine, out, seed + job.restarts, scratch)
                continue
            job.process = None
            active.remove(job)
            done.append(job)
            progress("fuzz done: " + _progress_line(row(job, out)))
        if active and time.monotonic() - last_progress >= PROGRESS_EVERY_S:
            last_progress = time.monotonic()
            elapsed = time.strftime("%H:%M:%S", time.gmtime(last_progress - started))
            for job in active:
                progress(f"fuzz {elapsed} " + _progress_line(row(job, out)))
    order = {name: i for i, name in enumerate(names)}
    return [row(job, out) for job in sorted(done, key=lambda j: order[j.name])]


def _start(job: Job, runs: int, engine: str, out: Path, seed: int, scratch: str) -> None:
    (out / "stats" / f"{job.name}.json").unlink(missing_ok=True)
    command = [sys.executable, "-m", "tools.fuzz.worker", "--engine", engine, "--target", job.name]
    command += ["--runs", str(runs), "--out", str(out), "--seed", str(seed)]
    with open(job.log, "a") as log:
        env = {**os.environ, SCRATCH_ENV: scratch}
        job.process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)


def row(job: Job, out: Path) -> dict:
    """Figures of one target over all its workers: inputs, exec/s, coverage edges (atheris), violations by
    reason, crash files, slowest input (ms), peak traced memory of one input (MB)."""
    parts = list(job.finished)
    if job.process is not None:
        parts.append(job.current(out) or {})
    parts = [p for p in parts if p]
    inputs = sum(p["inputs"] for p in parts)
    elapsed = sum(p["elapsed_s"] for p in parts)
    by_reason: dict[str, int] = {}
    for p in parts:
        for reason, n in p["by_reason"].items():
            by_reason[reason] = by_reason.get(reason, 0) + n
    if job.restarts:
        by_reason["worker-died"] = job.restarts
    return {
        "target": job.name,
        "engine": parts[-1]["engine"] if parts else "",
        "inputs": inputs,
        "runs": job.runs,
        "exec_per_s": round(inputs / elapsed, 1) if elapsed else 0.0,
        "edges": _edges(job.log),
        "violations": sum(by_reason.values()),
        "by_reason": by_reason,
        "crash_files": _crash_files(out, job.name),
        "slowest_ms": max((p["slowest_ms"] for p in parts), default=0.0),
        "peak_mb": max((p["peak_mb"] for p in parts), default=0.0),
        "elapsed_s": round(elapsed, 1),
    }


def collect(out: Path, names: list[str]) -> list[dict]:
    """The rows of a run folder as they stand (a run still going, or one that ended)."""
    rows = []
    for name in names:
        job = Job(name, 0, out / "logs" / f"{name}.log")
        stats = job.current(out)
        if stats is not None:
            job.runs = stats["runs"]
            job.finished.append(stats)
            rows.append(row(job, out))
    return rows


def _edges(log: Path) -> int | None:
    """Coverage edges of libFuzzer's last status line (atheris only)."""
    try:
        found = _COVERAGE.findall(log.read_text(errors="replace"))
    except OSError:
        return None
    return int(found[-1][0]) if found else None


def _crash_files(out: Path, name: str) -> int:
    return len(list((out / "crashes").glob(f"{name}--*")))


def _progress_line(r: dict) -> str:
    edges = f", {r['edges']} edges" if r["edges"] is not None else ""
    return (
        f"{r['target']} {r['inputs']:,}/{r['runs']:,} inputs, {r['exec_per_s']:,.0f}/s{edges}, "
        f"{r['violations']} violations, slowest {r['slowest_ms']:.1f} ms, peak {r['peak_mb']:.2f} MB"
    )


def table(rows: list[dict]) -> str:
    """The final table of a release run."""
    head = ("target", "engine", "inputs", "exec/s", "edges", "violations", "crash files", "slowest ms", "peak MB")
    lines = [head]
    for r in rows:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(r["by_reason"].items()))
        lines.append(
            (
                r["target"],
                r["engine"],
                f"{r['inputs']:,}",
                f"{r['exec_per_s']:,.0f}",
                "-" if r["edges"] is None else str(r["edges"]),
                f"{r['violations']}" + (f" ({reasons})" if reasons else ""),
                str(r["crash_files"]),
                f"{r['slowest_ms']:.1f}",
                f"{r['peak_mb']:.2f}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines)
