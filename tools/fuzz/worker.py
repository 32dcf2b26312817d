"""One fuzzing process for one target: `python -m tools.fuzz.worker --target NAME --runs N --out DIR ...`.

Engines:
- `atheris`: coverage-guided (libFuzzer over the Python bytecode edges of the product packages, INSTRUMENTED).
  The corpus folder is libFuzzer's: it starts with the seeds and keeps every input that found new coverage.
- `hypothesis`: no coverage guidance (hypothesis has none); inputs are raw bytes or seeds mutated by
  tools/fuzz/mutate.py, drawn by hypothesis from a fixed seed.

Both run every input through the contract harness; a violation is saved as a crash file and fuzzing goes on.
The counters are written to `<out>/stats/<target>.json` every few seconds and at the end, the slowest input so
far to `<out>/stats/<target>.slowest.bin`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

from .corpus import read_folder

# product packages whose bytecode atheris instruments (not tomllib: stdlib, and it would halve the config rate)
INSTRUMENTED = ["stack", "mcs_v2g", "evse_emulator", "ev_emulator"]
STATS_EVERY_S = 2.0


class Run:
    """The harness, the crash store and the stats file of one worker."""

    def __init__(self, name: str, runs: int, out: Path, engine: str) -> None:
        from .contract import Harness
        from .crashes import CrashStore
        from .targets import target

        self.target = target(name)
        self.runs = runs
        self.engine = engine
        self.harness = Harness(self.target)
        self.crashes = CrashStore(out / "crashes", name)
        self.stats_path = out / "stats" / f"{name}.json"
        self.stats_path.parent.mkdir(parents=True, exist_ok=True)
        self.slowest_path = out / "stats" / f"{name}.slowest.bin"
        self.started = time.perf_counter()
        self._last_write = 0.0

    def warm_up(self, samples: list[bytes]) -> None:
        """Run the seeds once, unmeasured: what the target imports or caches on first use is then in place (and,
        under atheris, instrumented)."""
        for data in samples:
            with contextlib.suppress(Exception):  # any outcome will do
                self.target.run(data)

    def one(self, data: bytes) -> None:
        slowest = self.harness.counters.slowest_ms
        violation = self.harness.one(data)
        if violation is not None:
            self.crashes.record(violation, data)
        if self.harness.counters.slowest_ms > slowest:  # kept to look at, violation or not
            self.slowest_path.write_bytes(data)
        count = self.harness.counters.inputs
        if count >= self.runs or time.perf_counter() - self._last_write > STATS_EVERY_S:
            self.write_stats(done=count >= self.runs)

    def write_stats(self, *, done: bool) -> None:
        c = self.harness.counters
        elapsed = time.perf_counter() - self.started
        stats = {
            "target": self.target.name,
            "engine": self.engine,
            "inputs": c.inputs,
            "runs": self.runs,
            "elapsed_s": round(elapsed, 1),
            "exec_per_s": round(c.inputs / elapsed, 1) if elapsed > 0 else 0.0,
            "traced": c.traced,
            "violations": c.violations,
            "by_reason": c.by_reason,
            "crash_files": self.crashes.saved,
            "slowest_ms": round(c.slowest_ms, 2),
            "peak_mb": round(c.peak_bytes / 2**20, 2),
            "done": done,
        }
        tmp = self.stats_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stats))
        tmp.replace(self.stats_path)
        self._last_write = time.perf_counter()


def run_atheris(args: argparse.Namespace) -> None:
    import atheris  # type: ignore[import-untyped]

    corpus = args.out / "corpus" / args.target
    with atheris.instrument_imports(include=INSTRUMENTED):
        run = Run(args.target, args.runs, args.out, "atheris")
        run.warm_up(read_folder(corpus))

    def test_one_input(data: bytes) -> None:
        run.one(data)

    argv = [
        sys.argv[0],
        str(corpus),
        f"-runs={args.runs}",
        f"-seed={args.seed}",
        f"-max_len={run.target.max_len}",
        "-timeout=0",  # the harness times inputs itself (SIGALRM hang limit)
        "-rss_limit_mb=4096",
        "-print_final_stats=1",
        f"-artifact_prefix={args.out / 'crashes'}/{args.target}--libfuzzer-",
    ]
    if run.target.kind == "config":
        from .corpus import TOML_DICT

        argv.append(f"-dict={TOML_DICT}")
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()  # exits the process after -runs inputs


def run_hypothesis(args: argparse.Namespace) -> None:
    from . import hypothesis_engine

    run = Run(args.target, args.runs, args.out, "hypothesis")
    corpus = read_folder(args.out / "corpus" / args.target)
    run.warm_up(corpus)
    hypothesis_engine.run(run.one, corpus, run.target.max_len, args.runs, args.seed)
    run.write_stats(done=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.fuzz.worker", description=__doc__)
    p.add_argument("--target", required=True)
    p.add_argument("--runs", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--engine", choices=("atheris", "hypothesis"), required=True)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    (run_atheris if args.engine == "atheris" else run_hypothesis)(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
