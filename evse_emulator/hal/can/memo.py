"""cantools encoding and decoding, memoised.

A rack's modules and their driver exchange the same few payloads again and again (a status, a reading that has
not moved, the same poll every second), and cantools checks and packs each one afresh: a quarter of a CAN
session's time. The caches are bounded; what cantools raises is raised every time (nothing failed is kept).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from cantools.database.can import Message
from cantools.typechecking import SignalValueType

CACHE_SIZE = 8192  # payloads per cache


def encode(message: Message, signals: Mapping[str, float | str]) -> bytes:
    """`message.encode(signals)` (cantools' checks included)."""
    return _encode(message, tuple(signals.items()))


def decode(message: Message, data: bytes | bytearray, choices: bool = True) -> dict[str, SignalValueType]:
    """`message.decode(data)` as a fresh dict, enumerations as cantools' named values unless not `choices`."""
    return dict(_decode(message, bytes(data), choices))


@lru_cache(CACHE_SIZE)
def _encode(message: Message, signals: tuple[tuple[str, float | str], ...]) -> bytes:
    return bytes(message.encode(dict(signals)))


@lru_cache(CACHE_SIZE)
def _decode(message: Message, data: bytes, choices: bool) -> tuple[tuple[str, SignalValueType], ...]:
    decoded = message.decode(data, decode_choices=choices)
    if not isinstance(decoded, dict):
        raise TypeError(f"{message.name} is a container message")
    return tuple(decoded.items())
