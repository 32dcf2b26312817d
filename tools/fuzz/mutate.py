"""Byte mutations of a seed, for the engines without coverage guidance: hypothesis draws which and where in the
fallback engine, a seeded `random.Random` in the short run of the tests."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

# values that sit on the edges of lengths, counts and integers of the formats under test
INTERESTING = (b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00", b"\xff\xff", b"\xff\xff\xff\xff", b"\x80\x00\x00\x00")


def apply(seed: bytes, mutations: Sequence[tuple[int, int, bytes]]) -> bytes:
    """`seed` after each (operation, position, bytes) in turn; positions wrap around the current length."""
    data = bytearray(seed)
    for op, pos, chunk in mutations:
        OPERATIONS[op % len(OPERATIONS)](data, pos, chunk)
    return bytes(data)


def _flip(data: bytearray, pos: int, chunk: bytes) -> None:
    if data:
        data[pos % len(data)] ^= 1 << (chunk[0] % 8 if chunk else 0)


def _overwrite(data: bytearray, pos: int, chunk: bytes) -> None:
    if data:
        at = pos % len(data)
        data[at : at + len(chunk)] = chunk


def _insert(data: bytearray, pos: int, chunk: bytes) -> None:
    at = pos % (len(data) + 1)
    data[at:at] = chunk


def _delete(data: bytearray, pos: int, chunk: bytes) -> None:
    if data:
        at = pos % len(data)
        del data[at : at + 1 + (chunk[0] if chunk else 0) % 16]


def _interesting(data: bytearray, pos: int, chunk: bytes) -> None:
    _overwrite(data, pos, INTERESTING[(chunk[0] if chunk else 0) % len(INTERESTING)])


def _repeat(data: bytearray, pos: int, chunk: bytes) -> None:
    """Duplicate a slice many times: long strings, arrays and string-table hits."""
    if data:
        at = pos % len(data)
        piece = data[at : at + 1 + (chunk[0] if chunk else 0) % 32]
        data[at:at] = piece * (1 + (chunk[-1] if chunk else 0) % 64)


def _truncate(data: bytearray, pos: int, chunk: bytes) -> None:
    del data[pos % (len(data) + 1) :]


OPERATIONS = (_flip, _overwrite, _insert, _delete, _interesting, _repeat, _truncate)


def random_inputs(seeds: Sequence[bytes], max_len: int, count: int, seed: int) -> Iterator[bytes]:
    """`count` inputs drawn from `random.Random(seed)`, the same on every run: mostly seeds after 1 to 6
    mutations, sometimes two seeds spliced, sometimes raw bytes (the short run of the tests)."""
    rng = random.Random(seed)
    for _ in range(count):
        roll = rng.random()
        if not seeds or roll < 0.1:
            data = rng.randbytes(rng.randrange(64))
        else:
            data = rng.choice(seeds)
            if roll < 0.2:
                other = rng.choice(seeds)
                data = data[: rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1) :]
            ops = [
                (rng.randrange(len(OPERATIONS)), rng.randrange(2**16), rng.randbytes(rng.randrange(1, 9)))
                for _ in range(rng.randrange(1, 7))
            ]
            data = apply(data, ops)
        yield data[:max_len]
