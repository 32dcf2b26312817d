"""The EXI codec's cost grows linearly with the message, measured as work, not time.

A shift of the int a generated decoder reads from costs O(bits held above the read position); an encoder's
shift costs O(bits in its accumulator). Every generated function is wrapped to record those sizes on entry:
they must stay bounded by the window and the flush threshold, and their sum must grow like the message
(a 16x larger message: about 16x the work; the old whole-stream int gave 16 * 16x). Big messages round-trip,
and the re-basing and flushing give the same bytes and messages however often they happen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

import pytest

from stack import exi
from stack.exi import codec
from stack.exi.codec import codec_module
from stack.exi.gen import shared
from stack.exi.runtime import Reader, Writer
from stack.schemas import SCHEMA_IDS
from tests.conftest import load_vectors, vectors_missing
from tests.prerequisites import requires
from tools.bench.samples import grown_schedule_exchange_res, string_table_frame

VECTORS = list({(v["schema_id"], v["hex"]): v for v in load_vectors()}.values())
needs_vectors = requires("vectors", vectors_missing(VECTORS))
BIG = exi.ExiLimits(max_array_items=100_000)


@dataclass
class Work:
    """Sizes seen on entry of the generated functions: decoders' bits above p, encoders' accumulator bits."""

    decode: list[int] = field(default_factory=list)
    encode: list[int] = field(default_factory=list)


@contextmanager
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[Work]:
    work = Work()

    def decoder(fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def wrapped(r: Reader, v: int, n: int, p: int) -> Any:
            work.decode.append(v.bit_length() - (n - p))  # what `v >> (n - p)` has to move
            return fn(r, v, n, p)

        return wrapped

    def encoder(fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def wrapped(a: int, o: object, w: object) -> Any:
            work.encode.append(a.bit_length())
            return fn(a, o, w)

        return wrapped

    with monkeypatch.context() as m:
        for mod in {codec_module(schema) for schema in SCHEMA_IDS} | {shared}:
            for name, fn in list(vars(mod).items()):
                if name.startswith("_d_"):
                    m.setattr(mod, name, decoder(fn))
                elif name.startswith("_e_"):
                    m.setattr(mod, name, encoder(fn))
        yield work


def round_trip(msg: object, limits: exi.ExiLimits = BIG, string_table: bool = False) -> bytes:
    data = exi.encode(msg, string_table=string_table)
    assert exi.decode(data, "iso20-common", limits=limits) == msg
    return data


def test_the_reader_never_shifts_more_than_its_window(monkeypatch: pytest.MonkeyPatch) -> None:
    msg = grown_schedule_exchange_res(1024)
    with recorded(monkeypatch) as work:
        data = round_trip(msg)
    assert len(data) > 14_000
    assert len(work.decode) > 2 * 1024 and len(work.encode) > 2 * 1024
    assert max(work.decode) <= Reader.REBASE_BITS + Reader.SLACK_BITS < len(data) * 8 // 2
    assert max(work.encode) <= Writer.flush_at.bit_length() + 1_024 < len(data) * 8 // 2


@pytest.mark.parametrize(
    ("small", "large", "string_table"),
    [
        (lambda: grown_schedule_exchange_res(64), lambda: grown_schedule_exchange_res(1024), False),
        (lambda: string_table_frame(640), lambda: string_table_frame(10_240), True),
    ],
    ids=["schedule entries", "string-table hits"],
)
def test_sixteen_times_the_message_is_about_sixteen_times_the_work(
    monkeypatch: pytest.MonkeyPatch, small: Callable[[], object], large: Callable[[], object], string_table: bool
) -> None:
    with recorded(monkeypatch) as small_work:
        small_size = len(round_trip(small(), string_table=string_table))
    with recorded(monkeypatch) as large_work:
        large_size = len(round_trip(large(), string_table=string_table))
    size = large_size / small_size
    assert 14 < size < 18
    for kind in ("decode", "encode"):
        before, after = getattr(small_work, kind), getattr(large_work, kind)
        calls = len(after) / len(before)
        shifted = sum(after) / max(1, sum(before))
        assert calls < 1.2 * size, kind
        assert shifted < 1.5 * size, f"{kind}: {size:.1f}x the bytes cost {shifted:.1f}x the shifted bits"


def test_a_64_kb_frame_of_string_table_hits_round_trips() -> None:
    msg = string_table_frame(10_500)
    data = round_trip(msg, string_table=True)
    assert 60_000 < len(data) <= exi.DEFAULT_LIMITS.max_message_bytes
    with pytest.raises(exi.ExiLimitError, match="max_array_items"):
        exi.decode(data, "iso20-common")  # the default limit on an unbounded list stops it


def test_two_schedules_of_1024_entries_round_trip() -> None:
    msg = grown_schedule_exchange_res(1024)
    data = round_trip(msg, limits=exi.DEFAULT_LIMITS)
    with pytest.raises(exi.ExiTruncatedError):
        exi.decode(data[: len(data) // 2], "iso20-common")


@needs_vectors
def test_constant_rebasing_and_flushing_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every vector and the big samples, decoded with a window re-based at every checkpoint and encoded with
    a flush at every loop iteration, give the same messages and bytes."""
    cases = [(r["schema_id"], bytes.fromhex(r["hex"]), False) for r in VECTORS]
    cases.append(("iso20-common", exi.encode(grown_schedule_exchange_res(300)), False))
    cases.append(("iso20-common", exi.encode(string_table_frame(300), string_table=True), True))
    expected = [exi.decode(data, schema, limits=BIG) for schema, data, _ in cases]
    monkeypatch.setattr(Reader, "REBASE_BITS", 1)
    monkeypatch.setattr(Writer, "flush_at", 1 << 9)
    for (schema, data, table), msg in zip(cases, expected, strict=True):
        assert exi.decode(data, schema, limits=BIG) == msg
        assert exi.encode(msg, schema=schema, string_table=table) == data


def test_refills_are_counted_and_bounded() -> None:
    data = exi.encode(grown_schedule_exchange_res(1024))
    r = Reader(data)
    mod = codec_module("iso20-common")
    _, dec = mod.DOCUMENT_DECODERS[(r.v >> (r.n - 8 - mod.DOCUMENT_WIDTH)) & ((1 << mod.DOCUMENT_WIDTH) - 1)]
    assert dec is not None
    _, p = dec(r, r.v, r.n, 8 + mod.DOCUMENT_WIDTH)
    assert p <= len(data) * 8
    # one re-basing per REBASE_BITS read, give or take one loop iteration each
    assert len(data) * 8 / (2 * Reader.REBASE_BITS) < r.refills <= len(data) * 8 / Reader.REBASE_BITS + 1


@needs_vectors
def test_a_path_longer_than_the_slack_decodes_again_with_the_proven_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a slack far below what real paths read, first attempts run past the window; the codec decodes
    again with the schema set's WINDOW_BITS and gets the same message."""
    cases = [(r["schema_id"], bytes.fromhex(r["hex"])) for r in VECTORS[::5]]
    expected = [exi.decode(data, schema) for schema, data in cases]
    slacks: list[int] = []
    decode = codec._decode

    def spy(r: Reader, mod: object, fragment: bool) -> tuple[str, object]:
        slacks.append(r.slack)
        return decode(r, mod, fragment)  # type: ignore[arg-type]

    monkeypatch.setattr(Reader, "SLACK_BITS", 16)
    monkeypatch.setattr(codec, "_decode", spy)
    for (schema, data), msg in zip(cases, expected, strict=True):
        assert exi.decode(data, schema) == msg
    retries = [s for s in slacks if s != 16]
    assert retries and len(slacks) == len(cases) + len(retries)
    assert set(retries) <= {codec_module(schema).WINDOW_BITS for schema, _ in cases}
