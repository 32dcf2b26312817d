"""The engine where atheris does not install: hypothesis draws raw bytes, or a seed after mutations
(tools/fuzz/mutate.py). Hypothesis has no coverage guidance: it explores, it does not learn from coverage."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from . import mutate


def fuzz_inputs(seeds: list[bytes], max_len: int) -> st.SearchStrategy[bytes]:
    mutation = st.tuples(
        st.integers(0, len(mutate.OPERATIONS) - 1), st.integers(0, 2**16), st.binary(min_size=1, max_size=8)
    )
    raw = st.binary(max_size=min(max_len, 512))
    if not seeds:
        return raw
    mutated = st.builds(mutate.apply, st.sampled_from(seeds), st.lists(mutation, max_size=6))
    return st.one_of(raw, mutated, mutated, mutated).map(lambda data: data[:max_len])


def run(one: Callable[[bytes], object], seeds: list[bytes], max_len: int, runs: int, random_seed: int) -> None:
    """Call `one` on `runs` inputs drawn from a fixed seed (no database, no shrinking: `one` records, never fails)."""

    @seed(random_seed)
    @settings(
        max_examples=runs,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(fuzz_inputs(seeds, max_len))
    def fuzz(data: bytes) -> None:
        one(data)

    fuzz()
