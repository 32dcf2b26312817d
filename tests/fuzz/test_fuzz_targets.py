"""A short, deterministic fuzz run of every target (the CI's share of tools/fuzz) and every regression input.

Each target gets SHORT_RUN inputs from a seeded `random.Random` (mutated seeds: the shared vectors when present,
the benchmark messages, the repository's TOML examples), run through the contract harness. The assertions are
counters: every input ran and none broke the contract. The per-input time limit of the short run is 1 s of CPU
time instead of the release run's 100 ms because CI shares its 2 cores with other work and the short run draws
30,000 inputs (one outlier is enough); memory keeps its 50 MB and is measured for every input (the release run
samples, see tools/fuzz/contract.py). The regression inputs are held to the release limits.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.regression_inputs import load_regressions, regression_input
from tools.fuzz import corpus, hypothesis_engine, mutate, runner
from tools.fuzz.contract import Harness, Violation
from tools.fuzz.targets import TARGETS

SHORT_RUN = 2_000
CI_LIMIT_MS = 1_000.0
RANDOM_SEED = 20_118


def _describe(violations: list[tuple[Violation, bytes]]) -> str:
    lines = [
        f"{v.reason}: {v.detail} (input {data[:64].hex()}{'...' if len(data) > 64 else ''})" for v, data in violations
    ]
    return "\n".join(lines[:5])


@pytest.mark.parametrize("name", list(TARGETS))
def test_short_run_keeps_the_contract(name: str) -> None:
    target = TARGETS[name]
    seeds = corpus.seeds(target)
    assert seeds, f"{name} has no seeds"
    harness = Harness(target, limit_ms=CI_LIMIT_MS, trace_every=1)
    violations = []
    for data in mutate.random_inputs(seeds, target.max_len, SHORT_RUN, RANDOM_SEED):
        violation = harness.one(data)
        if violation is not None:
            violations.append((violation, data))
    assert harness.counters.inputs == SHORT_RUN
    assert harness.counters.violations == 0, _describe(violations)


def _regression_params() -> list:
    params = []
    for n, record in enumerate(load_regressions(), 1):
        marks = []
        if record.get("awaiting"):
            marks.append(pytest.mark.xfail(strict=True, reason=f"awaiting fix in {record['awaiting']}"))
        params.append(pytest.param(record, id=f"{n}-{record['target']}-{record['reason']}", marks=marks))
    return params


@pytest.mark.parametrize("record", _regression_params())
def test_regression_input_keeps_the_contract(record: dict) -> None:
    """One input at a time, so the release limits hold: 100 ms of CPU time (best of three) barely moves on a
    shared machine, and a fixed input runs far below it."""
    harness = Harness(TARGETS[record["target"]], trace_every=1)
    violation = harness.one(regression_input(record))
    assert violation is None, f"{violation.reason}: {violation.detail[:300]}"


def test_the_hypothesis_engine_runs_its_inputs_through_the_harness() -> None:
    target = TARGETS["sdp.request"]
    harness = Harness(target, limit_ms=CI_LIMIT_MS, trace_every=1)
    hypothesis_engine.run(harness.one, corpus.seeds(target), target.max_len, runs=50, random_seed=RANDOM_SEED)
    assert harness.counters.inputs == 50
    assert harness.counters.violations == 0


def test_the_random_inputs_are_the_same_on_every_run() -> None:
    seeds = [b"\x01\xfe\x90\x00\x00\x00\x00\x02\x10\x00"]
    first = list(mutate.random_inputs(seeds, 64, 100, RANDOM_SEED))
    assert first == list(mutate.random_inputs(seeds, 64, 100, RANDOM_SEED))
    assert len(set(first)) > 50  # and they differ from each other


@pytest.mark.parametrize("wanted", ["hypothesis", "auto"])
def test_the_release_runner_fuzzes_a_target_in_a_worker_and_reports_it(tmp_path: Path, wanted: str) -> None:
    """`python -m tools.bench fuzz` end to end on one cheap target: seeds written, worker run, one table row
    (auto: atheris where it is installed)."""
    engine = runner.available_engine(wanted)
    rows = runner.run(["sdp.request"], runs=300, jobs=1, engine=engine, out=tmp_path, progress=lambda line: None)
    assert [r["target"] for r in rows] == ["sdp.request"]
    assert rows[0]["inputs"] >= 300
    assert (rows[0]["violations"], rows[0]["crash_files"]) == (0, 0)
    assert rows[0]["engine"] == engine
    assert len(list((tmp_path / "corpus" / "sdp.request").iterdir())) >= len(corpus.seeds(TARGETS["sdp.request"]))
    assert "sdp.request" in runner.table(rows)
